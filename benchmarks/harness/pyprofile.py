"""Profiling a Python server under load with the stdlib's cProfile, to see which functions a request costs.

Theory of operation: `profiled_argv()` turns a server command `PYTHON -m MODULE ARGS...` into
`PYTHON -m cProfile -o OUT -m MODULE ARGS...`. The harness runs it like any server and stops it with
SIGTERM; a server that shuts down by returning from its main (fastwsgi does) lets cProfile write OUT.
`top_functions()` reads OUT with pstats and returns the functions with the most own time, as calls and
microseconds per request. cProfile's overhead per Python call is large, so the times are inflated for
Python-heavy code and only the ranking and the call counts per request are meant to be read.
"""

from __future__ import annotations

import pstats
import re
from pathlib import Path


def profiled_argv(argv: list[str], output_path: Path) -> list[str]:
    index = argv.index("-m")
    return [*argv[:index], "-m", "cProfile", "-o", str(output_path), *argv[index:]]


def _label(function: tuple[str, int, str]) -> str:
    filename, line, name = function
    if filename == "~":  # a built-in: name is already "<method 'x' of 'y' objects>" or similar
        return re.sub(r" at 0x[0-9a-f]+", "", name)
    parts = Path(filename).parts
    package = max((i for i, part in enumerate(parts) if part == "fastwsgi"), default=None)
    short = "/".join(parts[package:]) if package is not None else Path(filename).name
    return f"{short}:{line} {name}"


def top_functions(path: Path, requests: int, count: int = 15) -> list[dict]:
    """The `count` functions with the most own time: calls, own and cumulative µs per request."""
    stats = pstats.Stats(str(path)).stats  # {function: (primitive calls, calls, tottime, cumtime, callers)}
    requests = max(requests, 1)
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:count]
    return [{"function": _label(function), "calls_per_request": calls / requests,
             "own_us_per_request": tottime * 1e6 / requests, "cumulative_us_per_request": cumtime * 1e6 / requests}
            for function, (_, calls, tottime, cumtime, _) in rows]


def total_own_us(path: Path, requests: int) -> float:
    stats = pstats.Stats(str(path)).stats
    return sum(entry[2] for entry in stats.values()) * 1e6 / max(requests, 1)
