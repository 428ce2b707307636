"""cffi builder for fastwsgi's C core (API, out-of-line mode); run by setuptools, never imported at run time.

Theory of operation: `setup.py` names `ffibuilder` in `cffi_modules`, so building the package compiles the
csrc/*.c files together with a small generated wrapper into the extension `fastwsgi._cparser`. The cdef
is read from csrc/fastwsgi_cdef.h (a pycparser-readable copy of the declarations), while the wrapper
#includes the real csrc/fastwsgi.h: a declaration that drifted from the header is a compile error.
The extension uses the stable ABI (abi3), so one wheel serves every CPython >= 3.10.

To rebuild in place after editing csrc/: `python setup.py build_ext --inplace` (or `pip install -e .`).
"""

import os
import sys

from cffi import FFI

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CSRC = os.path.join(_ROOT, "csrc")
_SOURCES = ["errors.c", "parser.c", "chunked.c", "serializer.c", "binding.c", "uwsgi.c",
            "uwsgi_binding.c"]
_HEADERS = ["fastwsgi.h", "fw_binding.h", "uwsgi_binding.h", "fw_internal.h", "fastwsgi_cdef.h"]


def _rel(path: str) -> str:
    """setuptools wants source paths relative to the project root (the cwd while it builds)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def _compile_args() -> list:
    if sys.platform == "win32":
        return []
    return ["-O3", "-std=c99", "-Wall", "-Wextra"]


ffibuilder = FFI()
with open(os.path.join(_CSRC, "fastwsgi_cdef.h"), encoding="ascii") as _cdef:
    ffibuilder.cdef(_cdef.read())

ffibuilder.set_source(
    "fastwsgi._cparser",
    '#include "fastwsgi.h"\n#include "fw_binding.h"\n#include "uwsgi_binding.h"\n',
    sources=[_rel(os.path.join(_CSRC, name)) for name in _SOURCES],
    include_dirs=[_rel(_CSRC)],
    depends=[_rel(os.path.join(_CSRC, name)) for name in _HEADERS],
    extra_compile_args=_compile_args(),
    py_limited_api=True,
)
