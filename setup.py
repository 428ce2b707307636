"""Build script: everything declarative lives in pyproject.toml; this file only wires the C extension.

Theory of operation: `cffi_modules` makes cffi add the `fastwsgi._cparser` extension (built from csrc/ by
csrc/build_ffi.py, outside the package: a wheel carries the extension, not the script that needs
csrc/). The extension is optional: if it cannot be compiled (no compiler, no headers), the install
still succeeds with a WARNING (pip shows it with -v; `fastwsgi --version` says so too) and fastwsgi
runs on its pure-Python parser, unless
FASTWSGI_REQUIRE_EXTENSION=1 asks for a hard failure (CI and wheel builds set it). Wheels are tagged
abi3 (cp310) because the extension only uses the stable ABI.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


def _extension_required() -> bool:
    return os.environ.get("FASTWSGI_REQUIRE_EXTENSION", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """build_ext that degrades to pure Python when the C compiler fails."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # e.g. DistutilsPlatformError: no compiler at all
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError, DistutilsExecError, ...
            self._skip(exc)

    @staticmethod
    def _skip(exc: BaseException):
        if _extension_required():
            raise exc
        print(f"WARNING: fastwsgi: C extension not built, using the pure-Python parser: {exc}",
              file=sys.stderr)


setup(
    cffi_modules=["csrc/build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
