# Sourced by ci/all.sh and ci/python_versions.sh: a pytest -k expression for CI's extra runs (the
# poll(2) event loop, the other CPythons), which run the functional tests that start a server per
# concurrency model (ids c-t0, c-t4, python-t4, ... from tests/functional/conftest.py) on the C
# parser's models only: the loop, the thread pool and the workers are the same code whatever parser
# serves, and the pure-Python parser itself is checked on every interpreter by the conformance corpus
# (tests/conformance, both backends, run in full). About 40% of the functional time; the main runs
# (C, then FASTWSGI_PUREPYTHON=1) take every model.
SOME_MODELS="not python-t and not python-w"
