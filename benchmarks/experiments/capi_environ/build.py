"""Build the experiment in place: `python build.py` (a plain CPython extension, not shipped)."""
import os
import sysconfig
import subprocess
HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "..", "..", "..", "csrc")
SOURCES = ["capi_environ.c"] + [os.path.join(CSRC, n) for n in ("parser.c", "binding.c", "errors.c", "serializer.c")]
OUT = os.path.join(HERE, "capi_environ" + sysconfig.get_config_var("EXT_SUFFIX"))
subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-std=c99", "-Wall", "-Wextra", "-Werror",
                f"-I{sysconfig.get_paths()['include']}", f"-I{CSRC}", *SOURCES, "-o", OUT],
               cwd=HERE, check=True)
print(OUT)
