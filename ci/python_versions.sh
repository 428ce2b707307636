#!/usr/bin/env bash
# The test suite on the oldest supported CPython and the newest one this machine has.
#
# CI's main runs use the machine's python3 (3.11 on Debian 12). pyproject.toml promises >= 3.10 and the
# wheel is abi3 for every CPython >= 3.10, so this runs the README's test command once more on each
# other interpreter found: a fresh venv, the editable install with the C extension required, the C
# backend checked, then `python -m pytest` (which runs the corpus and the functional tests on both
# backends) with the functional tests on the C parser's concurrency models (ci/some_models.sh).
# Interpreters are looked up as pythonX.Y on PATH, then under pyenv's versions directory.
# One that is not installed is reported as NOT TESTED (it cannot be fetched here: the machine reaches
# PyPI and Debian only), not as a failure; any other problem fails.
#
# Usage: ci/python_versions.sh [X.Y ...]   (default: 3.10 3.13)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(3.10 3.13)
export PIP_DISABLE_PIP_VERSION_CHECK=1
. "$ROOT/ci/some_models.sh"

find_python() {
    local version=$1 candidate
    if candidate=$(command -v "python$version" 2>/dev/null) && "$candidate" -c 'import venv' 2>/dev/null; then
        echo "$candidate"
        return 0
    fi
    local pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    for candidate in "$pyenv_root"/versions/"$version".*/bin/python"$version"; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

for version in "${VERSIONS[@]}"; do
    printf '\n=== Python %s\n' "$version"
    if ! python=$(find_python "$version"); then
        echo "NOT TESTED: no python$version on this machine (PATH or \$PYENV_ROOT/versions)"
        continue
    fi
    venv="$ROOT/.venv-ci-$version"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    (
        cd "$ROOT"
        . "$venv/bin/activate"
        python --version
        FASTWSGI_REQUIRE_EXTENSION=1 python -m pip install -q -e ".[test]"
        python -c 'import fastwsgi; assert fastwsgi.BACKEND == "c", fastwsgi.BACKEND; print("C backend active")'
        python -m pytest -q -p no:cacheprovider -k "$SOME_MODELS"
    )
done
