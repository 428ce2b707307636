"""cffi builder (API, out-of-line mode) for the C-loop prototype: `python build_cloop.py [BUILD_DIR]`.

Theory of operation: compiles cloop.c together with the project's own parser and serializer sources
(csrc/parser.c, binding.c, serializer.c, errors.c, unchanged) into the extension `_cloop` in BUILD_DIR
(default: ./build next to this file, git-ignored), with -O2 -Wall -Wextra -Werror so that any warning
fails the build. The cdef declares cloop.h's calls and the one callback, `extern "Python+C"` so that
cloop.c (a separate translation unit) can call it. `ensure_built()` rebuilds when a source is newer
than the extension; serve.py calls it before importing.
"""

import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
CSRC = os.path.join(ROOT, "csrc")
BUILD_DIR = os.path.join(HERE, "build")
SOURCES = [os.path.join(HERE, "cloop.c"), os.path.join(HERE, "capi.c")] + [os.path.join(CSRC, name) for name in
                                            ("parser.c", "binding.c", "serializer.c", "errors.c")]
HEADERS = [os.path.join(HERE, "cloop.h")] + glob.glob(os.path.join(CSRC, "*.h"))

CDEF = """
typedef struct cloop_loop cloop_loop;
typedef struct cloop_conn cloop_conn;
cloop_loop *cloop_new(int listen_fd);
int cloop_run(cloop_loop *loop);
int cloop_capi_run(cloop_loop *loop);
int cloop_respond(cloop_conn *conn, const char *status_fields, size_t len, size_t nfields,
                  const char *body, size_t body_len, int must_close);
extern "Python+C" int cloop_on_request(cloop_conn *conn, int fd, int first, const char *peer,
                                       long long head, const char *packed);
"""


def builder():
    from cffi import FFI

    ffibuilder = FFI()
    ffibuilder.cdef(CDEF)
    ffibuilder.set_source("_cloop", '#include "cloop.h"\n', sources=SOURCES, include_dirs=[HERE, CSRC],
                          depends=HEADERS,
                          extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"])
    return ffibuilder


def built_path(build_dir: str = BUILD_DIR) -> str | None:
    found = glob.glob(os.path.join(build_dir, "_cloop*.so"))
    return found[0] if found else None


def ensure_built(build_dir: str = BUILD_DIR) -> str:
    """Build when missing or older than a source; returns the directory to put on sys.path."""
    path = built_path(build_dir)
    newest = max(os.path.getmtime(name) for name in SOURCES + HEADERS + [__file__])
    if path is None or os.path.getmtime(path) < newest:
        os.makedirs(build_dir, exist_ok=True)
        builder().compile(tmpdir=build_dir, verbose=False)
    return build_dir


if __name__ == "__main__":
    print(built_path(ensure_built(sys.argv[1] if len(sys.argv) > 1 else BUILD_DIR)))
