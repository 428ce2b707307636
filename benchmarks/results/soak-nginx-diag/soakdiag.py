# The wrapper application of run k (soak-nginx-2026-11-23.md): the soak app, plus /__objects (glibc
# mallinfo2 and RSS of the worker that answers) and /__trim (the same, malloc_trim(0), and again).
import ctypes, gc, json, os, sys, threading
from tests.functional.apps import app as inner

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
_libc = ctypes.CDLL(None)
_libc.mallinfo2.restype = MallInfo2
_libc.malloc_trim.argtypes = [ctypes.c_size_t]

def _rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

def _facts():
    m = _libc.mallinfo2()
    return {"rss_kib": _rss(), "arena_kib": m.arena >> 10, "mmap_kib": m.hblkhd >> 10,
            "in_use_kib": m.uordblks >> 10, "free_kib": m.fordblks >> 10}

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path in ("/__objects", "/__trim"):
        gc.collect()
        out = {"pid": os.getpid(), "before": _facts()}
        if path == "/__trim":
            out["trimmed"] = _libc.malloc_trim(0)
            out["after"] = _facts()
        body = json.dumps(out).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    return inner(environ, start_response)
