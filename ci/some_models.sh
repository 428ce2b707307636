# Sourced by ci/all.sh and ci/python_versions.sh: a pytest -k expression for CI's extra runs (the
# poll(2) event loop, the other CPythons), which take the functional tests on two concurrency models
# of the four. A test run under c-t0, c-t4, python-t0 and python-t4 (FULL_MATRIX in
# tests/functional/conftest.py), or under t0 and t2 of each parser, keeps c-t0 and the Python
# parser's thread pools (python-t4, python-t2); the other models run the same code, and the main runs
# (C, then FASTWSGI_PUREPYTHON=1) take every model.
SOME_MODELS="not c-t4 and not python-t0 and not c-t2"
