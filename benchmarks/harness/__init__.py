"""Harness of the server comparison (run.py): scenarios, servers, venvs, checks, measurement, report."""
