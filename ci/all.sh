#!/usr/bin/env bash
# Everything CI checks, in order. Each step prints a banner; the first failure stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "system packages"
ci/install_system.sh

step "virtual environment + install (C extension required)"
python3 -m venv .venv-ci
. .venv-ci/bin/activate
python -m pip install -q --upgrade pip
FASTWSGI_REQUIRE_EXTENSION=1 python -m pip install -q -e ".[test]"
python - <<'PY'
import fastwsgi, fastwsgi.parser as p
assert p.c_available(), f"C backend did not build: {p.C_IMPORT_ERROR}"
assert fastwsgi.BACKEND == "c", fastwsgi.BACKEND
print("C backend active:", fastwsgi.BACKEND)
PY

step "test suite (README test command), default backend = C"
python -m pytest --durations=25  # (the slowest tests: where CI's time goes)

step "test suite again with FASTWSGI_PUREPYTHON=1"
FASTWSGI_PUREPYTHON=1 python -c 'import fastwsgi; assert fastwsgi.BACKEND == "python"'
FASTWSGI_PUREPYTHON=1 python -m pytest

step "functional tests of the event loop on the poll(2) fallback (macOS/BSD, forced on Linux)"
FASTWSGI_POLLER=poll python -c 'from fastwsgi.server.poller import poller_class; assert poller_class().NAME == "poll"'
# (without the files whose subject is configuration, the command line, processes or logging, not the
# event loop: they would run the same on either poller, and take a third of the functional time; and
# on the C parser's concurrency models only: ci/some_models.sh)
. ci/some_models.sh
FASTWSGI_POLLER=poll python -m pytest tests/functional -q -k "$SOME_MODELS" \
    --ignore=tests/functional/test_gunicorn_compat.py --ignore=tests/functional/test_cli.py \
    --ignore=tests/functional/test_config_sources.py --ignore=tests/functional/test_process_options.py \
    --ignore=tests/functional/test_privileges.py --ignore=tests/functional/test_hooks.py \
    --ignore=tests/functional/test_daemon.py --ignore=tests/functional/test_sdnotify.py \
    --ignore=tests/functional/test_capture_name.py --ignore=tests/functional/test_live_parity.py \
    --ignore=tests/functional/test_access_log.py --ignore=tests/functional/test_error_log.py

step "test suite on the oldest supported and the newest installed CPython"
ci/python_versions.sh 3.10 3.13

step "C hygiene: warnings, ASan/UBSan guard-page tests, bounded fuzzing"
ci/c_checks.sh

step "packaging: sdist, abi3 wheel, wheel from sdist, fallback without a compiler, manylinux repair"
ci/check_packaging.sh

step "benchmark harness, quick mode"
ci/bench_quick.sh

step "all CI steps passed"
