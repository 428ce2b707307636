#!/usr/bin/env python3
"""bjoern vs fastwsgi-c vs the C-loop prototype, with benchmarks/run.py's own method:
`python benchmarks/experiments/cloop/compare.py OUT_DIR [--rounds 3] [--duration 4] [--strace 3]`.

Theory of operation: nothing here times anything by itself.
1. The prototype becomes one more row of the harness's server table (`cloop`, run by the fastwsgi
   venv's Python, so it imports the fastwsgi built from this tree), added at run time instead of in
   harness/servers.py. Then benchmarks/run.py's main() runs as usual (venvs, protocol checks,
   interleaved rounds, server on CPU 0, wrk on CPU 1, server CPU from /proc) and writes
   OUT_DIR/results.{json,md}. Two small hooks give every timed run its user/system split:
   ServerProcess.cpu_seconds() (read before and after the timed wrk run) also reads
   harness.procstat.session_cpu_split, and Bench.record() stores the difference per request.
2. Syscalls per request: for each server and scenario, one more start, a warm-up, then
   harness.syscalls.SyscallCount (strace -c -f) around a short wrk run; counts / requests.
3. OUT_DIR/breakdown.md: medians of user and system µs per request, and the syscall table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH_DIR = HERE.parent.parent
sys.path.insert(0, str(BENCH_DIR))

import run  # noqa: E402
from harness import measure, procstat, syscalls  # noqa: E402
from harness import scenarios as scenario_table  # noqa: E402
from harness import servers as server_table  # noqa: E402

SERVERS = ["bjoern", "fastwsgi-c", "cloop", "cloop-capi", "cloop-canned"]
SCENARIOS = ["hello", "close"]
SHOWN_CALLS = ("accept4", "accept", "read", "recvfrom", "write", "sendto", "epoll_wait", "epoll_ctl",
               "close", "shutdown", "getsockname", "ioctl", "setsockopt", "fcntl")



def _cloop(*flags):
    return lambda launch: [str(run.envs.python_of("fastwsgi")), str(HERE / "serve.py"), "--bind",
                           launch.address, *flags, launch.app]


for _spec in (
        server_table.ServerSpec("cloop", "fastwsgi", False, _cloop(),
                                "prototype: C epoll loop (benchmarks/experiments/cloop), one Python "
                                "callback per request", only=("hello", "close")),
        server_table.ServerSpec("cloop-capi", "fastwsgi", False, _cloop("--capi"),
                                "the prototype with environ and start_response in C through the "
                                "CPython API (capi.c), no cffi callback", only=("hello", "close")),
        server_table.ServerSpec("cloop-canned", "fastwsgi", False, _cloop("--canned"),
                                "the prototype's floor: the callback answers a constant response "
                                "(no environ, no application)", only=("hello", "close"))):
    server_table.SERVERS.append(_spec)
    server_table.BY_NAME[_spec.name] = _spec


class SplitServerProcess(measure.ServerProcess):
    """cpu_seconds() also notes (user, system) ticks, so each timed run gets the split too."""

    samples: list = []

    def cpu_seconds(self) -> float:
        SplitServerProcess.samples.append(procstat.session_cpu_split(self.session_id))
        return super().cpu_seconds()


class SplitBench(run.Bench):
    def record(self, server, scenario, round_index, wrk, server_cpu, threads):
        row = super().record(server, scenario, round_index, wrk, server_cpu, threads)
        (user0, sys0), (user1, sys1) = SplitServerProcess.samples[-2:]
        requests = row["requests"] or 1
        row["user_us_per_request"] = (user1 - user0) / measure.CLOCK_TICK * 1e6 / requests
        row["sys_us_per_request"] = (sys1 - sys0) / measure.CLOCK_TICK * 1e6 / requests
        return row


def count_syscalls(out: Path, seconds: int) -> dict:
    """{scenario: {server: {syscall: calls per request}}} from one strace'd wrk run per pair."""
    raw = out / "raw"
    scripts = {name: raw / "lua" / f"{name}.lua" for name in SCENARIOS}
    table: dict = {}
    for scenario_name in SCENARIOS:
        scenario = scenario_table.BY_NAME[scenario_name]
        for name in SERVERS:
            server = server_table.BY_NAME[name]
            port = measure.free_port()
            launch = server_table.Launch(port, scenario.app, None, scenario)
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
            env.update(dict(server.env), PYTHONPATH=f"{scenario_table.APPS_DIR}", PYTHONUNBUFFERED="1")
            with measure.ServerProcess(server.argv(launch), env, scenario_table.APPS_DIR,
                                       raw / f"strace-{scenario_name}-{name}.server.log", port) as process:
                measure.run_wrk(port, scenario.path, scripts[scenario_name], scenario.connections, 1)
                with syscalls.SyscallCount(process.session_id,
                                           raw / f"strace-{scenario_name}-{name}.txt") as count:
                    wrk = measure.run_wrk(port, scenario.path, scripts[scenario_name], scenario.connections,
                                          seconds)
            requests = wrk.summary["requests"] or 1
            table.setdefault(scenario_name, {})[name] = {
                call: calls / requests for call, (calls, _errors) in count.result.items()}
            table[scenario_name][name]["_requests"] = requests
    return table


def breakdown(result: dict, calls: dict) -> str:
    lines = ["# CPU split and syscalls per request", "",
             "Medians over the timed runs of results.json (user = utime, system = stime, /proc).", "",
             "| scenario | server | total µs/req | user µs/req | system µs/req | total / bjoern |",
             "|---|---|---:|---:|---:|---:|"]
    for scenario in SCENARIOS:
        base = None
        for server in SERVERS:
            runs = [r for r in result["runs"] if r["server"] == server and r["scenario"] == scenario]
            if not runs:
                continue
            total = statistics.median(r["cpu_us_per_request"] for r in runs)
            user = statistics.median(r["user_us_per_request"] for r in runs)
            system = statistics.median(r["sys_us_per_request"] for r in runs)
            base = base or (total if server == "bjoern" else None)
            ratio = f"{total / base:.2f}x" if base else ""
            lines.append(f"| {scenario} | {server} | {total:.1f} | {user:.1f} | {system:.1f} | {ratio} |")
    if calls:
        lines += ["", "Syscalls per request (strace -c -f, one separate run per pair; counts only).", "",
                  "| scenario | server | requests | " + " | ".join(SHOWN_CALLS) + " | all |",
                  "|---|---|---:|" + "---:|" * (len(SHOWN_CALLS) + 1)]
        for scenario, row in calls.items():
            for server, counts in row.items():
                cells = [f"{counts.get(call, 0):.2f}" if counts.get(call) else "" for call in SHOWN_CALLS]
                lines.append(f"| {scenario} | {server} | {counts['_requests']} | " + " | ".join(cells)
                             + f" | {counts.get('total', 0):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--strace", type=int, default=3, help="seconds of strace'd wrk per pair (0: none)")
    args = parser.parse_args(argv)
    measure.ServerProcess = SplitServerProcess
    run.Bench = SplitBench
    status = run.main(["--servers", ",".join(SERVERS), "--scenarios", ",".join(SCENARIOS),
                       "--rounds", str(args.rounds), "--duration", str(args.duration), "--no-charts",
                       "--out", str(args.out)])
    if status != 0:
        return status
    measure.ServerProcess = SplitServerProcess.__mro__[1]
    calls = count_syscalls(args.out, args.strace) if args.strace else {}
    result = json.loads((args.out / "results.json").read_text())
    text = breakdown(result, calls)
    (args.out / "breakdown.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
