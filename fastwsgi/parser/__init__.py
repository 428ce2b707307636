"""The request parser, chunked decoder and response-head serializer, in two interchangeable backends.

`_cffi` wraps the C core in csrc/ (built by csrc/build_ffi.py); `_python` is its pure-Python twin.
Both expose the same names (NAME, RequestParser, UwsgiParser, ChunkedDecoder, serialize_head) and behave
identically (docs/parser-spec.md, docs/uwsgi-spec.md, tests/conformance/). The default backend ("auto")
is resolved when a server is built: `FASTWSGI_PUREPYTHON=1` forces Python (also when --env sets it;
1/true/yes/on force it, unset/empty/0/false/no/off do not, any other value is a RuntimeError),
otherwise C when the extension is built; `BACKEND` names what "auto" resolves to at the time it is
read. Asking for "c" when it is not built is an error, never a silent fallback.
"""

import os

from ._types import Head, Limits

__all__ = ["Head", "Limits", "BACKEND", "get_backend", "c_available", "C_IMPORT_ERROR"]

C_IMPORT_ERROR = None
try:
    from . import _cffi as _c_backend
except ImportError as exc:  # extension not built (or stale): the Python twin serves
    _c_backend = None
    C_IMPORT_ERROR = str(exc)

from . import _python as _python_backend  # noqa: E402


def c_available() -> bool:
    return _c_backend is not None


def python_forced() -> bool:
    """FASTWSGI_PUREPYTHON read as a boolean; a value that is neither is an error, not a guess (it
    used to force Python for any value but "0", FASTWSGI_PUREPYTHON=false included)."""
    value = os.environ.get("FASTWSGI_PUREPYTHON", "")
    word = value.strip().lower()
    if word in ("", "0", "false", "no", "off"):
        return False
    if word in ("1", "true", "yes", "on"):
        return True
    raise RuntimeError(f"FASTWSGI_PUREPYTHON={value!r} is not a boolean: set it to 1 to force the "
                       f"pure-Python parser, 0 (or unset it) for the default")


def get_backend(name: str = "auto"):
    """Return the backend module for "auto", "c" or "python"."""
    if name == "python":
        return _python_backend
    if name == "c":
        if _c_backend is None:
            raise RuntimeError(f"the C parser is not built ({C_IMPORT_ERROR}); "
                               "reinstall with a C compiler or use --http-parser python")
        return _c_backend
    if name == "auto":
        if python_forced():
            return _python_backend
        return _c_backend or _python_backend
    raise ValueError(f"unknown parser backend {name!r} (choose auto, c or python)")


def __getattr__(name: str):
    if name == "BACKEND":  # read each time: FASTWSGI_PUREPYTHON may be set after our import (--env)
        return get_backend("auto").NAME
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
