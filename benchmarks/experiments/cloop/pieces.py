#!/usr/bin/env python3
"""Instructions per step of the prototype's Python callback, under callgrind (no sockets):
`python benchmarks/experiments/cloop/pieces.py OUT_DIR [--n 20000]`.

Theory of operation: each step of serve.py's cloop_on_request (below, copied statement for statement
into cumulative stages) runs N times in a fresh `valgrind --tool=callgrind` process, and once with
N = 0; the difference of the two instruction totals divided by N is the cost of the stages up to it
(the loop itself included, ~100 instructions). Stage k minus stage k-1 is step k. The packed head is
a real fw_parse_head output for wrk's request (`GET / HTTP/1.1`, `Host: 127.0.0.1:PORT`), with the
keys found in the memo, as in the steady state of a keep-alive run.
"""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent

STAGES = [
    ("loop + call of an empty function", ""),
    ("decode and split the packed head", """
    items = _string(packed).decode("latin-1").split("\\x01")
    keys_state = head >> _KEYS_SHIFT
    keys = slot_keys[keys_state]
    count = len(keys)
    method, target, version, query, path = items[count:count + 5]"""),
    ("environ = base.copy()", """
    environ = connection_base.copy()"""),
    ("environ.update(zip(keys, items))", """
    environ.update(zip(keys, items))"""),
    ("6 request keys", """
    environ["REQUEST_METHOD"] = method
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = environ["REQUEST_URI"] = target
    environ["SERVER_PROTOCOL"] = version"""),
    ("apply_forwarded", """
    apply_forwarded(environ, trusted)"""),
    ("reset the Reply, the application + start_response", """
    reply.status = reply.headers = reply.written = None
    result = app(environ, start_response)"""),
    ("join the body, pack and encode the head", """
    body = b"".join(result)
    status, headers = reply.status, reply.headers
    packed_head = (status + "\\0" + "\\0".join(map(_join_pair, headers))).encode("latin-1")"""),
]

PRELUDE = f"""
import sys
sys.path[:0] = [{str(HERE)!r}, {str(ROOT)!r}, {str(ROOT / "benchmarks" / "apps")!r}]
from fastwsgi._cparser import ffi, lib
from fastwsgi.proxy import TrustedProxies, apply_forwarded
import serve, wsgi_apps
app, _string, _KEYS_SHIFT, _join_pair = wsgi_apps.hello, ffi.string, lib.FW_HEAD_KEYS_SHIFT, serve._join_pair
reply = serve.Reply()
start_response = reply.start_response
parser, scratch = ffi.new("fw_parser *"), ffi.new("fw_scratch *")
out, headers, lim = ffi.new("char[]", 16384), ffi.new("fw_header[]", 100), ffi.new("fw_limits *")
scratch.out, scratch.cap, scratch.headers = out, 16384, headers
lim.max_request_line = lim.max_header_line = 8190
lim.max_header_count, lim.max_head_size, lim.max_chunk_line = 100, 65536, 4096
parser.lim, parser.scratch = lim, scratch
request = b"GET / HTTP/1.1\\r\\nHost: 127.0.0.1:8080\\r\\n\\r\\n"
lib.fw_parse_head(parser, request, len(request), 1)
head = lib.fw_parse_head(parser, request, len(request), 1)  # keys found in memo slot 0
packed = ffi.cast("const char *", out)
slot_keys = [("HTTP_HOST",)] * lib.FW_MEMO_SLOTS
connection_base = serve.base_environ("127.0.0.1", 8080)
trusted = TrustedProxies.parse()
"""


def program(stage: int, n: int) -> str:
    body = "".join(code for _, code in STAGES[:stage + 1]) or "\n    pass"
    return PRELUDE + f"\ndef step():{body}\n    return 0\n\nfor _ in range({n}):\n    step()\n"


def instructions(source: str, out: Path, name: str) -> int:
    script = out / f"{name}.py"
    script.write_text(source)
    dump = out / f"{name}.callgrind"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}", sys.executable, str(script)],
                   check=True, capture_output=True, env=dict(os.environ, PYTHONHASHSEED="0"), timeout=600)
    for line in dump.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def main(argv):
    out = Path(argv[0])
    n = int(argv[2]) if len(argv) > 2 and argv[1] == "--n" else 20000
    out.mkdir(parents=True, exist_ok=True)
    base = instructions(program(len(STAGES) - 1, 0), out, "zero")
    previous = 0.0
    lines = ["| step | instructions | cumulative |", "|---|---:|---:|"]
    for index, (label, _) in enumerate(STAGES):
        cumulative = (instructions(program(index, n), out, f"stage{index}") - base) / n
        lines.append(f"| {label} | {cumulative - previous:,.0f} | {cumulative:,.0f} |")
        print(lines[-1], flush=True)
        previous = cumulative
    (out / "pieces.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
