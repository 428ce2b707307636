#!/usr/bin/env python3
"""nginx in front of fastwsgi and uWSGI, over HTTP and over uwsgi: CPU per request of the pair.

    python3 benchmarks/behind_nginx.py                 # 5 rounds of 4 s, a strace and a cProfile pass
    python3 benchmarks/behind_nginx.py --quick         # 1 round of 2 s, to see that everything runs
    python3 benchmarks/behind_nginx.py --rounds 9 --duration 5 --configs uwsgi-uwsgi,fastwsgi-c-uwsgi

Theory of operation (the server comparison's harness, benchmarks/harness/, does the measuring):
1. Configurations (CONFIGS): Debian's nginx (harness/nginx_front.py: own prefix in a temporary
   directory, one worker, loopback) in front of one backend process serving wsgi_apps:hello, over
   `proxy_pass` with upstream keep-alive ("http") or over `uwsgi_pass` ("uwsgi"; nginx opens a new
   backend connection for every request there), over TCP loopback or a UNIX socket. The backend
   commands are harness/servers.py's with the listening flag changed (uWSGI `--socket` / `--http-socket`,
   fastwsgi `--bind uwsgi://...`). fastwsgi runs from its benchmark venv (reinstalled from this
   repository when its sources changed); a fastwsgi without uwsgi support (no "uwsgi" in `python -m
   fastwsgi --help`, or a parser backend without UwsgiParser) marks its uwsgi rows `unsupported`, and
   they are not run.
2. Each run starts the backend and then nginx fresh, BOTH pinned to CPU 0 (measure.ServerProcess), each
   in a session of its own; wrk (one thread, 16 keep-alive connections to nginx) runs on CPU 1. The
   first run of a configuration checks it through nginx (harness/httpcheck.py: status 200, the body,
   keep-alive between client and nginx) and a configuration that fails is never timed. Then a 1 s
   warm-up, then the timed wrk run, with the user and system CPU time and the context switches of each
   session read from /proc before and after (harness/procstat.py), and CPU 0's /proc/stat line (how
   much of it other processes took meanwhile); nginx's error log must stay free of errors.
3. Rounds interleave the configurations (A B C A B C ...); the report takes medians over rounds of
   requests/s and of CPU µs per request for nginx, for the backend, and for their sum (the median of the
   per-run sums), and the two target ratios from the same run, both as a ratio of medians and as the
   median of the per-round ratios.
4. Two separate short passes show where the per-connection cost of the uwsgi rows goes: strace -c
   (harness/syscalls.py) counts the system calls per request of the backend and of nginx in each
   configuration, and cProfile (harness/pyprofile.py) the Python functions per request of fastwsgi.
The report goes to benchmarks/results/behind-nginx-<date>.md (--out), every run's figures, the wrk
output, server logs, nginx configurations, strace tables and profiles to a raw directory (--raw, default a new
temporary directory, printed). Progress goes to stderr. Exit status 0 when something was measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import envs, httpcheck, measure, nginx_front, procstat, pyprofile, report, syscalls  # noqa: E402
from harness import scenarios as scenario_table  # noqa: E402
from harness import servers as server_table  # noqa: E402
from harness.scenarios import APPS_DIR, BENCH_DIR  # noqa: E402

SCENARIO = scenario_table.BY_NAME["hello"]  # wsgi_apps:hello, GET /, 16 keep-alive connections
RESULTS_DIR = BENCH_DIR / "results"
TIMED_STATUSES = ("ok",)
TARGET_SUBJECT, TARGET_PEER, TARGET_HTTP = "fastwsgi-c-uwsgi", "uwsgi-uwsgi", "fastwsgi-c-http"
TARGET_RATIO = 0.7
REFERENCE_UWSGI_US = 58  # nginx + uWSGI over uwsgi, µs per request, as issue 6 quotes it
SYSCALL_ROWS_MIN = 0.05  # syscalls per request below this (in every configuration) are not listed
PROFILE_ROWS = 15


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- configurations ----------------------------------------------------------------------------------

def _replace(argv: list[str], old: str, new: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(old)] = new
    return argv


def _uwsgi_flag(flag: str) -> Callable[[list[str], str, str], list[str]]:
    """uWSGI's command from servers.py, listening with FLAG on TARGET instead of --http11-socket ADDRESS."""
    return lambda argv, address, target: _replace(_replace(argv, "--http11-socket", flag), address, target)


def _fastwsgi_bind(scheme: str) -> Callable[[list[str], str, str], list[str]]:
    """fastwsgi's command from servers.py, its --bind written with a scheme ("" for plain HTTP)."""
    return lambda argv, address, target: _replace(argv, address, f"{scheme}{target}")


@dataclass(frozen=True)
class Config:
    name: str
    server: str  # the ServerSpec in harness/servers.py whose command and venv are used
    protocol: str  # between nginx and the backend: "http" or "uwsgi"
    # (servers.py argv, its "HOST:PORT", where to listen: "HOST:PORT" or a UNIX socket path) -> backend argv
    adapt: Callable[[list[str], str, str], list[str]]
    note: str
    needs_fastwsgi_uwsgi: bool = False
    upstream_keepalive: bool = True  # http only: an nginx keep-alive pool (False: the backend closes anyway)
    unix: bool = False  # nginx reaches the backend over a UNIX socket instead of TCP loopback

    def backend_argv(self, port: int, socket_path: Path | None) -> list[str]:
        launch = server_table.Launch(port, SCENARIO.app, None, SCENARIO)
        argv = server_table.BY_NAME[self.server].argv(launch)
        if not self.unix:
            return self.adapt(argv, launch.address, launch.address)
        target = f"unix:{socket_path}" if self.server.startswith("fastwsgi") else str(socket_path)
        return self.adapt(argv, launch.address, target)


CONFIGS = [
    Config("uwsgi-uwsgi", "uwsgi", "uwsgi", _uwsgi_flag("--socket"),
           "uWSGI `--socket` (uwsgi protocol), 1 process, no threads; `uwsgi_pass`"),
    Config("fastwsgi-c-http", "fastwsgi-c", "http", _fastwsgi_bind(""),
           "fastwsgi, C parser, HTTP/1.1; `proxy_pass` to an upstream with `keepalive 16`"),
    Config("fastwsgi-c-uwsgi", "fastwsgi-c", "uwsgi", _fastwsgi_bind("uwsgi://"),
           "fastwsgi, C parser, `--bind uwsgi://...`; `uwsgi_pass`", needs_fastwsgi_uwsgi=True),
    Config("uwsgi-http", "uwsgi", "http", _uwsgi_flag("--http-socket"),
           "uWSGI `--http-socket`, 1 process, no threads: it closes after every response, so `proxy_pass` "
           "without an upstream keep-alive pool", upstream_keepalive=False),
    Config("fastwsgi-py-uwsgi", "fastwsgi-py", "uwsgi", _fastwsgi_bind("uwsgi://"),
           "fastwsgi, pure-Python parser, `--bind uwsgi://...`; `uwsgi_pass`", needs_fastwsgi_uwsgi=True),
    Config("uwsgi-uwsgi-unix", "uwsgi", "uwsgi", _uwsgi_flag("--socket"),
           "as uwsgi-uwsgi, over a UNIX socket (`uwsgi_pass unix:...`)", unix=True),
    Config("fastwsgi-c-uwsgi-unix", "fastwsgi-c", "uwsgi", _fastwsgi_bind("uwsgi://"),
           "as fastwsgi-c-uwsgi, over a UNIX socket (`--bind uwsgi://unix:...`)", needs_fastwsgi_uwsgi=True,
           unix=True),
]
BY_NAME = {config.name: config for config in CONFIGS}


# -- command line ------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round of 2 s, strace pass of 1 s")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per timed run (default 4; quick 2)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run (default 1)")
    parser.add_argument("--strace-duration", type=int,
                        help="seconds of load in the strace pass (default 2; quick 1; 0: no strace pass)")
    parser.add_argument("--profile-duration", type=int,
                        help="seconds of load in the cProfile pass of the fastwsgi backends (default 2; quick 1; "
                             "0: none)")
    parser.add_argument("--configs", help="comma-separated subset of: " + ",".join(BY_NAME))
    parser.add_argument("--out", type=Path, help="report path (default benchmarks/results/behind-nginx-<date>.md)")
    parser.add_argument("--raw", type=Path, help="directory for raw output (default: a new temporary one)")
    parser.add_argument("--no-install", action="store_true", help="use the benchmark venvs as they are")
    parser.add_argument("--rebuild", type=Path, metavar="RAW",
                        help="only rewrite the report from RAW/results.json (after a change to the report)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.duration = args.duration or (2 if args.quick else 4)
    for name in ("strace_duration", "profile_duration"):
        if getattr(args, name) is None:
            setattr(args, name, 1 if args.quick else 2)
    if min(args.rounds, args.duration) < 1 or min(args.warmup, args.strace_duration, args.profile_duration) < 0:
        parser.error("--rounds and --duration must be >= 1; --warmup and the pass durations >= 0")
    names = [n.strip() for n in (args.configs or ",".join(BY_NAME)).split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    args.configs = [BY_NAME[n] for n in names]
    return args


# -- preparation -------------------------------------------------------------------------------------

def prepare(configs: list[Config], no_install: bool) -> tuple[dict, dict]:
    """Installs the venvs; returns ({config: status for those that cannot run}, {name: versions})."""
    unavailable: dict[str, str] = {}
    versions: dict[str, dict] = {"nginx": {"nginx": nginx_front.check_available()}}
    venv_problems: dict[str, str] = {}
    for venv_name in dict.fromkeys(server_table.BY_NAME[c.server].venv for c in configs):
        try:
            if no_install:
                if not envs.python_of(venv_name).exists():
                    raise envs.InstallError(f"venv {venv_name} missing (--no-install)")
            else:
                envs.ensure(venv_name, log=log)
            versions[venv_name] = envs.versions(venv_name)
            if venv_name == "fastwsgi":
                versions[venv_name]["source"] = source_state()
        except envs.InstallError as exc:
            venv_problems[venv_name] = f"failed: install: {exc}"
    for config in configs:
        spec = server_table.BY_NAME[config.server]
        if spec.venv in venv_problems:
            unavailable[config.name] = venv_problems[spec.venv]
        elif config.needs_fastwsgi_uwsgi and (missing := fastwsgi_uwsgi_missing(spec)):
            unavailable[config.name] = f"unsupported: {missing}"
        elif spec.expect_backend:
            code = f"import fastwsgi.parser as p; print(p.get_backend({spec.expect_backend!r}).NAME)"
            try:
                envs.check_output(spec.venv, code, dict(spec.env))
            except envs.InstallError as exc:
                unavailable[config.name] = f"failed: {spec.expect_backend} backend: {exc}"
    return unavailable, versions


def source_state() -> str:
    """The commit fastwsgi was installed from, and the hash of its sources when the tree had changes."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(envs.REPO_DIR), *args], capture_output=True, text=True,
                                timeout=60)
        return result.stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "fastwsgi", "csrc", "setup.py", "pyproject.toml")
    return f"{head} + uncommitted changes (sources {envs._repo_source_hash()})" if dirty else head


def fastwsgi_uwsgi_missing(spec: server_table.ServerSpec) -> str | None:
    """Why this fastwsgi cannot serve uwsgi with the spec's parser backend (None: it can)."""
    result = subprocess.run([str(envs.python_of(spec.venv)), "-m", "fastwsgi", "--help"],
                            capture_output=True, text=True, timeout=60, cwd=envs.VENVS_DIR)
    if "uwsgi" not in result.stdout.lower():
        return "this fastwsgi has no uwsgi protocol (no `uwsgi` in `python -m fastwsgi --help`)"
    code = (f"import fastwsgi.parser as p; b = p.get_backend({spec.expect_backend!r}); "
            "print(hasattr(b, 'UwsgiParser'))")
    try:
        if envs.check_output(spec.venv, code, dict(spec.env)) != "True":
            return f"the {spec.expect_backend} parser backend has no UwsgiParser yet"
    except envs.InstallError as exc:
        return f"{spec.expect_backend} backend: {exc}"
    return None


def backend_env(config: Config) -> dict:
    """The environment run.py gives a server: no outer venv, the apps importable, its own variables."""
    return scenario_table.server_environment(dict(server_table.BY_NAME[config.server].env))


# -- one run -----------------------------------------------------------------------------------------

class UnixServerProcess(measure.ServerProcess):
    """A server listening on a UNIX socket: ready once a connection to the path succeeds."""

    def __init__(self, argv, env, cwd, log_path, socket_path: Path):
        super().__init__(argv, env, cwd, log_path, 0)
        self.socket_path = socket_path

    def probe(self) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1.0)
            sock.connect(str(self.socket_path))


class Pair:
    """The backend, then nginx in front of it, both started fresh and pinned; stopped in reverse order."""

    def __init__(self, config: Config, raw: Path, stem: str, sockets: Path, profile_to: Path | None = None):
        self.config = config
        self.backend_port = measure.free_port()
        self.front_port = measure.free_port()
        self.prefix = raw / "nginx" / stem
        socket_path = sockets / f"{stem}.sock" if config.unix else None
        argv = config.backend_argv(self.backend_port, socket_path)
        if profile_to is not None:
            argv = pyprofile.profiled_argv(argv, profile_to)
        log_path = raw / f"{stem}.backend.log"
        if socket_path:
            self.backend = UnixServerProcess(argv, backend_env(config), APPS_DIR, log_path, socket_path)
            upstream = f"unix:{socket_path}"
        else:
            self.backend = measure.ServerProcess(argv, backend_env(config), APPS_DIR, log_path, self.backend_port)
            upstream = f"127.0.0.1:{self.backend_port}"
        self.front = measure.ServerProcess(
            nginx_front.front_argv(config.protocol, self.front_port, upstream, self.prefix,
                                   config.upstream_keepalive),
            dict(os.environ), self.prefix, raw / f"{stem}.nginx.log", self.front_port)

    def __enter__(self):
        self.backend.start()
        try:
            self.front.start()
        except BaseException:
            self.backend.stop()
            raise
        return self

    def __exit__(self, *exc_info):
        self.front.stop()
        self.backend.stop()

    def counters(self) -> dict:
        """{side: (user ticks, system ticks, voluntary, involuntary context switches)}, plus CPU 0's
        /proc/stat counters and its ksoftirqd's ticks."""
        counters = {side: procstat.session_cpu_split(process.session_id)
                    + procstat.session_context_switches(process.session_id)
                    for side, process in (("nginx", self.front), ("backend", self.backend))}
        counters["cpu"] = procstat.cpu_ticks(int(measure.SERVER_CPU))
        counters["ksoftirqd"] = procstat.kernel_thread_ticks(f"ksoftirqd/{measure.SERVER_CPU}")
        return counters

    def still_running(self) -> None:
        for name, process in (("backend", self.backend), ("nginx", self.front)):
            if process.process.poll() is not None:
                raise measure.StartError(f"{name} exited during the run: {process.log_tail()}")

    def error_log_problems(self) -> list[str]:
        """Lines of nginx's error log at level error or worse (upstream failures show up there)."""
        try:
            lines = (self.prefix / "error.log").read_text(errors="replace").splitlines()
        except OSError:
            return []
        levels = ("[error]", "[crit]", "[alert]", "[emerg]")
        return [line for line in lines if any(level in line for level in levels)]


class Bench:
    def __init__(self, args: argparse.Namespace, raw: Path, unavailable: dict):
        self.args = args
        self.raw = raw
        self.statuses: dict[str, str] = dict(unavailable)
        self.runs: list[dict] = []
        self.failures: list[str] = []
        self.loads: list[tuple[float, float, float]] = []
        self.syscalls: dict[str, dict] = {}
        self.profiles: dict[str, dict] = {}
        self.sockets = Path(tempfile.mkdtemp(prefix="bn-"))  # short: UNIX socket paths have <= 107 bytes
        self.script = raw / "hello.lua"
        self.script.write_text(SCENARIO.wrk_script())

    def runnable(self) -> list[Config]:
        return [c for c in self.args.configs if self.statuses.get(c.name, "ok") in TIMED_STATUSES]

    def run_rounds(self) -> None:
        for round_index in range(self.args.rounds):
            self.loads.append(os.getloadavg())
            log(f"round {round_index + 1}/{self.args.rounds} (load average {self.loads[-1][0]:.2f})")
            for config in self.runnable():
                self.run_one(config, round_index)

    def run_one(self, config: Config, round_index: int) -> None:
        stem = f"{config.name}-r{round_index + 1}"
        try:
            with Pair(config, self.raw, stem, self.sockets) as pair:
                if config.name not in self.statuses:
                    self.statuses[config.name] = self.check(pair)
                    log(f"  {config.name}: check {self.statuses[config.name]}")
                    if self.statuses[config.name] not in TIMED_STATUSES:
                        return
                if self.args.warmup:
                    measure.run_wrk(pair.front_port, SCENARIO.path, self.script, SCENARIO.connections,
                                    self.args.warmup)
                before = pair.counters()
                wrk = measure.run_wrk(pair.front_port, SCENARIO.path, self.script, SCENARIO.connections,
                                      self.args.duration, self.raw / f"{stem}.wrk.txt")
                after = pair.counters()
                pair.still_running()
                problems = pair.error_log_problems()
        except (measure.StartError, RuntimeError, OSError) as exc:
            message = f"{config.name} round {round_index + 1}: {exc}"
            self.failures.append(message)
            log(f"  failed: {message}")
            self.statuses.setdefault(config.name, f"failed: {exc}")
            return
        record = self.record(config, round_index, wrk, before, after, problems)
        self.runs.append(record)
        log(f"  {config.name}: {record['rps']:,.0f} req/s, nginx {record['nginx_us']:.1f} + backend "
            f"{record['backend_us']:.1f} = {record['total_us']:.1f} µs/request")

    def check(self, pair: Pair) -> str:
        status = httpcheck.check(pair.front_port, SCENARIO.method, SCENARIO.path, b"", SCENARIO.body_ok(),
                                 1, False)
        problems = pair.error_log_problems()
        if status == "ok" and problems:
            return f"broken: nginx error log: {problems[0][-200:]}"
        return status

    def record(self, config, round_index, wrk, before, after, problems) -> dict:
        summary = wrk.summary
        requests = summary["requests"]
        seconds = summary["duration_us"] / 1e6
        per_request = 1e6 / measure.CLOCK_TICK / requests if requests else float("nan")
        figures = {"config": config.name, "round": round_index + 1, "requests": requests,
                   "duration_s": seconds, "rps": requests / seconds if seconds else None,
                   **report.latency_percentiles(summary["latency_us"]),
                   "errors": summary["errors"], "nginx_error_log_lines": len(problems),
                   "wrk_cpu_share": wrk.wrk_cpu_seconds / wrk.wall_seconds if wrk.wall_seconds else None}
        for side in ("nginx", "backend"):
            user, system, voluntary, involuntary = (a - b for a, b in zip(after[side], before[side]))
            figures[f"{side}_user_us"] = user * per_request
            figures[f"{side}_sys_us"] = system * per_request
            figures[f"{side}_us"] = (user + system) * per_request
            figures[f"{side}_switches"] = (voluntary + involuntary) / requests if requests else None
            figures[f"{side}_involuntary"] = involuntary / requests if requests else None
        figures["total_us"] = figures["nginx_us"] + figures["backend_us"]
        figures["cpu0_share"] = (figures["total_us"] * requests / 1e6 / seconds) if seconds else None
        ksoftirqd = after["ksoftirqd"] - before["ksoftirqd"]
        figures["ksoftirqd_us"] = ksoftirqd * per_request
        cpu = {key: after["cpu"][key] - before["cpu"][key] for key in after["cpu"]}
        if cpu["total"]:
            ours_ticks = figures["total_us"] * requests / 1e6 * measure.CLOCK_TICK
            figures["cpu0_others_share"] = max(cpu["busy"] - ours_ticks - ksoftirqd, 0) / cpu["total"]
            figures["cpu0_steal_share"] = cpu["steal"] / cpu["total"]
        return figures

    # strace pass
    def count_syscalls(self) -> None:
        if not self.args.strace_duration:
            return
        log(f"strace pass ({self.args.strace_duration} s per configuration)")
        for config in self.runnable():
            stem = f"{config.name}-strace"
            try:
                with Pair(config, self.raw, stem, self.sockets) as pair:
                    if self.args.warmup:
                        measure.run_wrk(pair.front_port, SCENARIO.path, self.script, SCENARIO.connections,
                                        self.args.warmup)
                    with syscalls.SyscallCount(pair.backend.session_id, self.raw / f"{stem}.backend.strace") \
                            as backend_count, \
                            syscalls.SyscallCount(pair.front.session_id, self.raw / f"{stem}.nginx.strace") \
                            as nginx_count:
                        wrk = measure.run_wrk(pair.front_port, SCENARIO.path, self.script,
                                              SCENARIO.connections, self.args.strace_duration,
                                              self.raw / f"{stem}.wrk.txt")
            except (measure.StartError, RuntimeError, OSError, syscalls.StraceUnavailable) as exc:
                self.failures.append(f"{config.name} strace pass: {exc}")
                log(f"  strace pass failed for {config.name}: {exc}")
                continue
            requests = wrk.summary["requests"]
            self.syscalls[config.name] = {"requests": requests, "backend": backend_count.result,
                                          "nginx": nginx_count.result}
            accepts = sum(backend_count.result.get(name, (0, 0))[0] - backend_count.result.get(name, (0, 0))[1]
                          for name in ("accept", "accept4"))
            log(f"  {config.name}: {requests} requests under strace, backend accepts "
                f"{accepts / max(requests, 1):.2f} connections per request")

    # cProfile pass (Python backends)
    def profile_python(self) -> None:
        if not self.args.profile_duration:
            return
        log(f"cProfile pass ({self.args.profile_duration} s per fastwsgi configuration)")
        for config in self.runnable():
            if server_table.BY_NAME[config.server].venv != "fastwsgi":
                continue
            stem = f"{config.name}-cprofile"
            output = self.raw / f"{stem}.pstats"
            try:
                with Pair(config, self.raw, stem, self.sockets, profile_to=output) as pair:
                    wrk = measure.run_wrk(pair.front_port, SCENARIO.path, self.script, SCENARIO.connections,
                                          self.args.profile_duration, self.raw / f"{stem}.wrk.txt")
                requests = wrk.summary["requests"]
                self.profiles[config.name] = {
                    "requests": requests, "total_own_us": pyprofile.total_own_us(output, requests),
                    "top": pyprofile.top_functions(output, requests, PROFILE_ROWS)}
            except (measure.StartError, RuntimeError, OSError) as exc:
                self.failures.append(f"{config.name} cProfile pass: {exc}")
                log(f"  cProfile pass failed for {config.name}: {exc}")


# -- results -----------------------------------------------------------------------------------------

FIGURES = ("rps", "p50_us", "p99_us", "nginx_us", "nginx_user_us", "nginx_sys_us", "backend_us",
           "backend_user_us", "backend_sys_us", "total_us", "cpu0_share", "wrk_cpu_share", "nginx_switches",
           "nginx_involuntary", "backend_switches", "backend_involuntary", "ksoftirqd_us", "cpu0_others_share",
           "cpu0_steal_share")


def medians(runs: list[dict], configs: list[Config]) -> dict:
    table = {}
    for config in configs:
        mine = [run for run in runs if run["config"] == config.name]
        if not mine:
            continue
        entry = {"rounds": len(mine), "requests_total": sum(r["requests"] for r in mine),
                 "error_total": sum(sum(r["errors"].values()) for r in mine),
                 "nginx_error_log_lines": sum(r["nginx_error_log_lines"] for r in mine)}
        for name in FIGURES:
            values = [run[name] for run in mine if run.get(name) is not None]
            entry[name] = statistics.median(values) if values else None
        table[config.name] = entry
    return table


def ratio(runs: list[dict], summary: dict, subject: str, peer: str, figure: str = "total_us") -> dict | None:
    """subject / peer CPU per request (FIGURE): ratio of the medians, and median of per-round ratios."""
    if subject not in summary or peer not in summary:
        return None
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["config"]] = run[figure]
    paired = [row[subject] / row[peer] for row in by_round.values() if subject in row and peer in row]
    return {"subject": subject, "peer": peer, "figure": figure,
            "of_medians": summary[subject][figure] / summary[peer][figure],
            "median_of_rounds": statistics.median(paired) if paired else None,
            "per_round": paired}


def all_ratios(runs: list[dict], summary: dict) -> dict:
    return {"target": ratio(runs, summary, TARGET_SUBJECT, TARGET_PEER),
            "target_backend_only": ratio(runs, summary, TARGET_SUBJECT, TARGET_PEER, "backend_us"),
            "versus_http": ratio(runs, summary, TARGET_SUBJECT, TARGET_HTTP),
            "target_unix": ratio(runs, summary, TARGET_SUBJECT + "-unix", TARGET_PEER + "-unix"),
            "unix_versus_http": ratio(runs, summary, TARGET_SUBJECT + "-unix", TARGET_HTTP)}


def per_request_syscalls(counts: dict, side: str, errors: bool = False) -> dict[str, dict[str, float]]:
    """{config: {syscall: calls (or failed calls) per request}} for one side ("backend" or "nginx")."""
    table = {}
    for name, entry in counts.items():
        requests = max(entry["requests"], 1)
        table[name] = {call: (failed if errors else calls) / requests
                       for call, (calls, failed) in entry[side].items()}
    return table


def _n(value, digits=1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(result: dict) -> str:
    machine, summary, configs = result["machine"], result["summary"], result["configs"]
    loads = result["load_average"]
    lines = [f"# fastwsgi behind nginx: HTTP vs uwsgi, {result['date']}", "",
             f"Command: `{result['command']}`  ",
             f"Rounds: {result['rounds']} (interleaved across configurations), {result['duration']} s of wrk per "
             f"run after {result['warmup']} s of warm-up, every run with a freshly started backend and nginx; "
             f"medians shown. nginx (1 worker) and the backend (1 process) both pinned to CPU "
             f"{measure.SERVER_CPU}; wrk (1 thread, {SCENARIO.connections} keep-alive connections to nginx) "
             f"on CPU {measure.CLIENT_CPU}; loopback; app `{SCENARIO.app}` (13-byte body). "
             f"Total time {result['elapsed_seconds'] / 60:.1f} min.", "",
             "## Machine", "",
             f"{machine['cpu_model']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB, {machine['os']}, "
             f"Linux {machine['kernel']}, {machine['wrk']}. Versions: "
             + "; ".join(f"{venv}: " + ", ".join(f"{k} {v}" for k, v in sorted(vs.items()))
                         for venv, vs in result["versions"].items()) + ".  ",
             f"Load average (1, 5, 15 min) at start: {report._loads(loads['start'])}; at the end: "
             f"{report._loads(loads['end'])}; at the start of each round: "
             f"{'; '.join(report._loads(x) for x in loads['rounds']) or '-'}. Other work shared this 2-core "
             "machine during the run: absolute numbers are noisy, ratios within the run less so.", ""]
    lines += ["## CPU per request (µs, lower is better) and throughput", "",
              "| configuration | status | req/s | nginx µs/req | backend µs/req | **nginx + backend µs/req** | "
              "backend connections per request | flags |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for config in configs:
        name = config["name"]
        status = result["statuses"].get(name, "not run")
        entry = summary.get(name)
        if entry is None:
            lines.append(f"| {name} | {status} | | | | | | |")
            continue
        flags = []
        if entry["error_total"]:
            flags.append(f"wrk errors: {entry['error_total']:,} of {entry['requests_total']:,} requests")
        if entry["nginx_error_log_lines"]:
            flags.append(f"{entry['nginx_error_log_lines']} nginx error-log lines")
        lines.append(
            f"| {name} | {status} | {_n(entry['rps'], 0)} | {_n(entry['nginx_us'])} | {_n(entry['backend_us'])} | "
            f"**{_n(entry['total_us'])}** | {_n(result['connections_per_request'].get(name), 2)} | "
            f"{', '.join(flags)} |")
    lines += ["", "Each cell is the median over rounds; the sum column is the median of the per-run sums, so it "
              "need not equal the sum of the two medians. Backend connections per request: successful "
              "accept/accept4 calls per request in the strace pass: over uwsgi nginx connects anew for every "
              "request (it has no upstream keep-alive for uwsgi), and uWSGI's `--http-socket` closes after "
              "every response, so nginx cannot reuse those connections either. On loopback the kernel runs "
              "much of the receiving side's TCP work in the sender's context, so part of the backend's kernel "
              "time is charged to nginx and the other way round: nginx's column moves with the backend, and the "
              "sum is the figure to compare.", "",
              "### Where the CPU time goes (medians, per request)", "",
              "| configuration | nginx user + sys µs | backend user + sys µs | nginx context switches "
              "(involuntary) | backend context switches (involuntary) | ksoftirqd µs | CPU 0: ours / others / steal "
              "| wrk CPU | p50 latency ms |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for config in configs:
        entry = summary.get(config["name"])
        if entry is not None:
            lines.append(
                f"| {config['name']} | {_n(entry['nginx_user_us'])} + {_n(entry['nginx_sys_us'])} | "
                f"{_n(entry['backend_user_us'])} + {_n(entry['backend_sys_us'])} | "
                f"{_n(entry['nginx_switches'], 2)} ({_n(entry['nginx_involuntary'], 2)}) | "
                f"{_n(entry['backend_switches'], 2)} ({_n(entry['backend_involuntary'], 2)}) | "
                f"{_n(entry['ksoftirqd_us'])} | {_percent(entry['cpu0_share'])} / "
                f"{_percent(entry['cpu0_others_share'])} / {_percent(entry['cpu0_steal_share'])} | "
                f"{_percent(entry['wrk_cpu_share'])} | "
                f"{_n(entry['p50_us'] / 1000 if entry['p50_us'] else None, 2)} |")
    lines += ["", "user/sys: utime/stime from /proc (the kernel's share: accept, connect, read, write, close, epoll). "
              "Context switches: voluntary + involuntary of every thread, from /proc/<pid>/task/*/status; "
              "nginx and the backend share CPU 0, so each request is handed back and forth. ksoftirqd: CPU time of "
              f"ksoftirqd/{measure.SERVER_CPU} per request (network softirqs the kernel deferred to it, charged to "
              "neither process; not in the sums above). CPU 0: the share of its time used by nginx + backend, by "
              "every other process (the helpers sharing this machine), and taken by the hypervisor (steal), "
              "from /proc/stat; the more the others took, the noisier the run.", ""]
    lines += ["## Configurations", "", "| configuration | backend and nginx |", "|---|---|"]
    lines += [f"| {c['name']} | {c['note']} |" for c in configs]
    lines += ["", "Backend commands and nginx locations are in the raw directory (`*.backend.log` start with the "
              "command, `nginx/<run>/nginx.conf`).", ""]
    lines += ["## Issue 6 target", "",
              f"Target: `{TARGET_SUBJECT}` at most {TARGET_RATIO}x the nginx + backend CPU per request of "
              f"`{TARGET_PEER}`, and lower than `{TARGET_HTTP}`. Ratios < 1 favour fastwsgi over uwsgi.", ""]
    lines += _target_lines(result)
    lines.append("")
    lines += ["## nginx + backend µs per request, every round", "",
              "| configuration | " + " | ".join(f"r{i + 1}" for i in range(result["rounds"])) + " |",
              "|---|" + "---:|" * result["rounds"]]
    for config in configs:
        mine = {r["round"]: r["total_us"] for r in result["runs"] if r["config"] == config["name"]}
        if mine:
            lines.append(f"| {config['name']} | "
                         + " | ".join(_n(mine.get(i + 1)) for i in range(result["rounds"])) + " |")
    lines.append("")
    if result["syscalls"]:
        lines += _syscall_tables(result)
    if result["profiles"]:
        lines += _profile_tables(result)
    if result["failures"]:
        lines += ["## Runs that failed", ""] + [f"- {f}" for f in result["failures"]] + [""]
    return "\n".join(lines)


def _ratio_line(entry: dict, what: str, goal: str) -> str:
    return (f"- `{entry['subject']}` / `{entry['peer']}`, {what}: **{entry['of_medians']:.2f}x** (ratio of medians; "
            f"median of the per-round ratios {_n(entry['median_of_rounds'], 2)}x; rounds: "
            f"{', '.join(f'{x:.2f}' for x in entry['per_round'])}){goal}")


def _target_lines(result: dict) -> list[str]:
    ratios, summary, statuses = result["ratios"], result["summary"], result["statuses"]
    lines = []
    target = ratios.get("target")
    if target is None:
        return [f"Not measured: `{TARGET_SUBJECT}` is {statuses.get(TARGET_SUBJECT, 'not run')}, "
                f"`{TARGET_PEER}` is {statuses.get(TARGET_PEER, 'not run')}."]
    met = "met" if target["of_medians"] <= TARGET_RATIO else "**not met**"
    lines.append(_ratio_line(target, "nginx + backend", f". Target <= {TARGET_RATIO}x: {met}."))
    if ratios.get("target_backend_only"):
        lines.append(_ratio_line(ratios["target_backend_only"], "backend alone", "."))
    if ratios.get("versus_http"):
        lower = "lower" if ratios["versus_http"]["of_medians"] < 1 else "**not lower**"
        lines.append(_ratio_line(ratios["versus_http"], "nginx + backend",
                                 f": fastwsgi over uwsgi is {lower} than over HTTP."))
    for key, goal in (("target_unix", f" (target {TARGET_RATIO}x, here over UNIX sockets)."),
                      ("unix_versus_http", " (uwsgi over a UNIX socket vs HTTP over TCP with keep-alive).")):
        if ratios.get(key):
            lines.append(_ratio_line(ratios[key], "nginx + backend", goal))
    subject, peer, http = summary[TARGET_SUBJECT], summary[TARGET_PEER], summary.get(TARGET_HTTP)
    budget = peer["total_us"] * TARGET_RATIO
    lines += ["", f"What the target leaves: `{TARGET_PEER}` measured {peer['total_us']:.1f} µs per request here "
              f"(issue 6 quotes {REFERENCE_UWSGI_US} µs), so {TARGET_RATIO}x is {budget:.1f} µs. nginx itself "
              f"costs {subject['nginx_us']:.1f} µs per request in front of fastwsgi over uwsgi "
              f"({peer['nginx_us']:.1f} µs in front of uWSGI; part of each is loopback kernel work done for the "
              f"backend): that leaves {budget - subject['nginx_us']:.1f} µs for "
              f"fastwsgi's backend, which now takes {subject['backend_us']:.1f} µs (uWSGI's: "
              f"{peer['backend_us']:.1f} µs)."]
    if http:
        extra = subject["nginx_us"] - http["nginx_us"]
        lines.append(f"Versus HTTP: nginx costs {http['nginx_us']:.1f} µs per request over HTTP with upstream "
                     f"keep-alive and {subject['nginx_us']:.1f} µs over uwsgi, {extra:+.1f} µs for the backend "
                     f"connection it opens per request (socket, connect, close, epoll registration: see the "
                     f"nginx system calls below). fastwsgi over uwsgi beats fastwsgi over HTTP only if its backend "
                     f"costs less than {http['backend_us']:.1f} - ({extra:.1f}) = {http['backend_us'] - extra:.1f} µs "
                     f"per request; it now costs {subject['backend_us']:.1f} µs.")
    return lines


def _syscall_tables(result: dict) -> list[str]:
    counts = result["syscalls"]
    names = [c["name"] for c in result["configs"] if c["name"] in counts]
    lines = [f"## System calls per request (strace -c, {result['strace_duration']} s per configuration)", "",
             "One extra run per configuration with `strace -c -f` attached to every process of the backend and, "
             "separately, of nginx (strace slows system calls down, so only the counts are used). Requests "
             "under strace: " + ", ".join(f"{n} {counts[n]['requests']:,}" for n in names) + ". Rows below "
             f"{SYSCALL_ROWS_MIN} per request in every configuration are left out; `total` counts all. "
             "\"failed\" calls are expected ones: nginx's non-blocking connect() returns EINPROGRESS, and an "
             "accept4() that finds no pending connection returns EAGAIN.", ""]
    for side in ("backend", "nginx"):
        table = per_request_syscalls(counts, side)
        failed = per_request_syscalls(counts, side, errors=True)
        calls = sorted({call for row in table.values() for call, value in row.items()
                        if value >= SYSCALL_ROWS_MIN and call != "total"},
                       key=lambda call: -max(row.get(call, 0) for row in table.values()))
        lines += [f"### {side}", "", "| syscall | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for call in calls + ["total"]:
            cells = []
            for n in names:
                cell = _n(table[n].get(call), 2)
                if failed[n].get(call, 0) >= SYSCALL_ROWS_MIN:
                    cell += f" ({failed[n][call]:.2f} failed)"
                cells.append(cell)
            lines.append(f"| {call} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _profile_tables(result: dict) -> list[str]:
    lines = [f"## Python functions per request in the fastwsgi backends (cProfile, {result['profile_duration']} s)",
             "", "One extra run per fastwsgi configuration under `python -m cProfile` (stopped with SIGTERM, so "
             "the profile is written on a clean exit). cProfile adds a large cost to every Python call, and its "
             "clock is wall time: a system call that wakes nginx on the shared CPU (send, close) or waits for "
             "work (epoll poll) is charged with nginx's time too. Read the calls per request and the ranking of "
             f"the Python functions, not the absolute times. The {PROFILE_ROWS} functions with the most own "
             "time.", ""]
    for name, entry in result["profiles"].items():
        lines += [f"### {name} ({entry['requests']:,} requests, {entry['total_own_us']:.0f} µs of profiled "
                  "time per request)", "",
                  "| function | calls/req | own µs/req | cumulative µs/req |", "|---|---:|---:|---:|"]
        for row in entry["top"]:
            lines.append(f"| `{row['function']}` | {row['calls_per_request']:.2f} | "
                         f"{row['own_us_per_request']:.1f} | {row['cumulative_us_per_request']:.1f} |")
        lines.append("")
    return lines


def _percent(share) -> str:
    return "-" if share is None else f"{share * 100:.0f} %"


def connections_per_request(counts: dict) -> dict[str, float]:
    """Connections the backend accepted per request: successful accept/accept4 calls."""
    calls = per_request_syscalls(counts, "backend")
    failed = per_request_syscalls(counts, "backend", errors=True)
    return {name: sum(row.get(c, 0) - failed[name].get(c, 0) for c in ("accept", "accept4"))
            for name, row in calls.items()}


# -- main --------------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.rebuild:
        result = json.loads((args.rebuild / "results.json").read_text())
        out = args.out or RESULTS_DIR / f"behind-nginx-{result['date'].split()[0]}.md"
        out.write_text(markdown(result))
        log(f"report rewritten to {out} from {args.rebuild / 'results.json'}")
        return 0
    started = time.monotonic()
    machine = report.machine_info()
    load_start = os.getloadavg()
    try:
        os.sched_setaffinity(0, {int(measure.CLIENT_CPU)})  # keep the harness off the servers' CPU
    except (OSError, ValueError):
        pass
    date = datetime.datetime.now(datetime.timezone.utc)
    out = args.out or RESULTS_DIR / f"behind-nginx-{date:%Y-%m-%d}.md"
    raw = args.raw or Path(tempfile.mkdtemp(prefix="behind-nginx-"))
    raw.mkdir(parents=True, exist_ok=True)
    log(f"raw output in {raw}")
    try:
        unavailable, versions = prepare(args.configs, args.no_install)
    except nginx_front.NginxUnavailable as exc:
        log(f"behind_nginx.py: {exc}")
        return 1
    for name, status in unavailable.items():
        log(f"  {name}: {status}")
    bench = Bench(args, raw, unavailable)
    runs_planned = len(bench.runnable()) * args.rounds
    log(f"{runs_planned} timed runs, about {runs_planned * (args.duration + args.warmup + 1.5) / 60:.0f} min")
    bench.run_rounds()
    bench.count_syscalls()
    bench.profile_python()
    shutil.rmtree(bench.sockets, ignore_errors=True)
    summary = medians(bench.runs, args.configs)
    result = {
        "date": date.strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python3 benchmarks/behind_nginx.py", *argv]),
        "rounds": args.rounds, "duration": args.duration, "warmup": args.warmup,
        "strace_duration": args.strace_duration,
        "elapsed_seconds": time.monotonic() - started,
        "machine": machine,
        "load_average": {"start": load_start, "rounds": bench.loads, "end": os.getloadavg()},
        "versions": versions,
        "configs": [{"name": c.name, "note": c.note, "protocol": c.protocol} for c in args.configs],
        "statuses": bench.statuses,
        "summary": summary,
        "ratios": all_ratios(bench.runs, summary),
        "connections_per_request": connections_per_request(bench.syscalls),
        "syscalls": bench.syscalls,
        "profiles": bench.profiles, "profile_duration": args.profile_duration,
        "failures": bench.failures,
        "runs": bench.runs,
    }
    (raw / "results.json").write_text(json.dumps(result, indent=1))
    text = markdown(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(text)
    log(f"report written to {out}; raw output (results.json, logs, nginx configs, strace tables) in {raw}")
    return 0 if bench.runs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
