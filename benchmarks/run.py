#!/usr/bin/env python3
"""Server comparison: `python benchmarks/run.py` (full, < 40 min) or `python benchmarks/run.py --quick`.

Theory of operation (details in benchmarks/README.md and each harness module):
1. Make sure wrk is there (apt-get install it when missing and running as root), then create or update
   one venv per server under benchmarks/.venvs/ (harness/envs.py); fastwsgi is installed from this
   repository. A server whose install fails is reported as failed, the rest still run.
2. Plan: every selected (scenario, server) pair, repeated for N rounds; a round visits every pair once,
   so rounds interleave across servers (A B C A B C) and slow drift on a shared machine hits all alike.
3. Each run starts the server fresh on CPU 0 (harness/measure.py); the first run of a pair checks its
   protocol behaviour (harness/httpcheck.py) and a pair that fails is marked and never timed; then a wrk
   warm-up, then the timed wrk run on CPU 1 with server CPU sampled from /proc around it.
4. Medians over rounds go to benchmarks/results/<date>/: results.json, results.md, raw/ (wrk output,
   server logs, the Lua scripts), throughput.png and cpu_per_request.png (drawn in the harness venv).
Progress is printed to stderr. Exit status: 0 when results were written, 1 when nothing could be measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import envs, httpcheck, measure, report  # noqa: E402
from harness.scenarios import APPS_DIR, BENCH_DIR, ensure_bench_file  # noqa: E402
from harness import scenarios as scenario_table  # noqa: E402
from harness import servers as server_table  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
TIMED_STATUSES = ("ok", "no-keepalive", "serial")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one short round of two scenarios on wsgiref and fastwsgi (what CI runs)")
    parser.add_argument("--rounds", type=int, help="rounds per pair (default 3; quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per timed run (default 4; quick 2)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up before each timed run (default 1)")
    parser.add_argument("--servers", help="comma-separated subset of: "
                        + ",".join(s.name for s in server_table.SERVERS))
    parser.add_argument("--scenarios", help="comma-separated subset of: "
                        + ",".join(s.name for s in scenario_table.SCENARIOS))
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results/<date>)")
    parser.add_argument("--no-charts", action="store_true", help="skip the matplotlib charts")
    parser.add_argument("--no-install", action="store_true",
                        help="use the venvs as they are (fail the servers whose venv is missing)")
    parser.add_argument("--rebuild", type=Path, metavar="DIR",
                        help="only recompute results.md, the medians and the charts from DIR/results.json")
    args = parser.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.duration = args.duration or (2 if quick else 4)
    args.warmup = 1 if args.warmup is None else args.warmup
    args.server_names = _pick(args.servers, server_table.BY_NAME,
                              server_table.QUICK if quick else list(server_table.BY_NAME), parser)
    args.scenario_names = _pick(args.scenarios, scenario_table.BY_NAME,
                                scenario_table.QUICK if quick else list(scenario_table.BY_NAME), parser)
    if min(args.rounds, args.duration) < 1 or args.warmup < 0:
        parser.error("--rounds and --duration must be >= 1 and --warmup >= 0 (wrk takes whole seconds)")
    return args


def _pick(text: str | None, table: dict, default: list[str], parser) -> list[str]:
    if not text:
        return list(default)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in table]
    if unknown:
        parser.error(f"unknown name(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    return names


LOG_COPY: list = []  # the open raw/harness.log, once the results directory exists


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    for handle in LOG_COPY:
        handle.write(message + "\n")
        handle.flush()


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        sys.exit("run.py: wrk is not installed; install it (Debian: apt-get install wrk) and rerun")
    log("installing wrk from Debian")
    subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, timeout=600)


class Progress:
    """A one-line progress bar on stderr (a new line per step when stderr is not a terminal)."""

    def __init__(self, total: int):
        self.total = max(total, 1)
        self.done = 0
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0
        filled = int(30 * self.done / self.total)
        line = (f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                f"elapsed {elapsed / 60:4.1f} min, eta {eta / 60:4.1f} min  {label}")
        print(("\r" + line.ljust(110)) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)
        self.done += 1

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr)


class Bench:
    def __init__(self, args: argparse.Namespace, out: Path):
        self.args = args
        self.out = out
        self.raw = out / "raw"
        self.servers = [server_table.BY_NAME[name] for name in args.server_names]
        self.scenarios = [scenario_table.BY_NAME[name] for name in args.scenario_names]
        self.statuses: dict[tuple[str, str], str] = {}
        self.unavailable: dict[str, str] = {}
        self.versions: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.failures: list[str] = []
        self.machine = report.machine_info()  # before anything of ours loads the machine
        self.machine["load_average_per_round"] = []

    # 1. installs
    def install(self) -> None:
        packages = tuple(sorted({p for scenario in self.scenarios for p in scenario.packages}))
        for venv_name in dict.fromkeys(server.venv for server in self.servers if server.venv):
            try:
                if self.args.no_install:
                    if not envs.python_of(venv_name).exists():
                        raise envs.InstallError(f"venv {venv_name} missing (--no-install)")
                else:
                    envs.ensure(venv_name, packages, log=log)
            except envs.InstallError as exc:
                for server in self.servers:
                    if server.venv == venv_name:
                        self.unavailable[server.name] = f"failed: install: {exc}"
        for server in self.servers:
            if not server.venv and shutil.which(server.name) is None:
                self.unavailable[server.name] = f"failed: {server.name} is not installed"
            if server.name in self.unavailable:
                continue
            if server.expect_backend:
                code = ("import fastwsgi.parser as p; "
                        f"print(p.get_backend({server.expect_backend!r}).NAME)")
                try:
                    envs.check_output(server.venv, code, dict(server.env))
                except envs.InstallError as exc:
                    self.unavailable[server.name] = f"failed: {server.expect_backend} backend: {exc}"
                    continue
            self.versions[server.name] = (envs.versions(server.venv) if server.venv
                                          else envs.system_version(server.name))
        if not self.args.no_charts:
            try:
                envs.ensure("harness", log=log)
            except envs.InstallError as exc:
                log(f"charts disabled: {exc}")
                self.args.no_charts = True

    # 2. plan
    def pairs(self):
        for scenario in self.scenarios:
            for server in self.servers:
                if server.serves(scenario):  # single-threaded servers skip the thread-pool scenario
                    yield scenario, server

    def run(self) -> None:
        self.raw.mkdir(parents=True, exist_ok=True)
        self.scripts = {}
        for scenario in self.scenarios:
            path = self.raw / "lua" / f"{scenario.name}.lua"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(scenario.wrk_script())
            self.scripts[scenario.name] = path
        pairs = list(self.pairs())
        for scenario, server in pairs:
            if server.name in self.unavailable:
                self.statuses[(server.name, scenario.name)] = self.unavailable[server.name]
        progress = Progress(self.args.rounds * len(pairs))
        for round_index in range(self.args.rounds):
            loads = os.getloadavg()
            self.machine["load_average_per_round"].append(loads)
            log(f"round {round_index + 1}/{self.args.rounds} (load average {loads[0]:.2f})")
            for scenario, server in pairs:
                progress.step(f"round {round_index + 1} {scenario.name} {server.name}")
                status = self.statuses.get((server.name, scenario.name))
                if status is not None and status not in TIMED_STATUSES:
                    continue
                self.run_one(server, scenario, round_index)
        progress.finish()

    # 3. one run
    def run_one(self, server, scenario, round_index: int) -> None:
        key = (server.name, scenario.name)
        port = measure.free_port()
        launch = server_table.Launch(port, scenario.app, scenario.threads, scenario)
        env = scenario_table.server_environment(dict(server.env), scenario.env)
        stem = f"{scenario.name}-{server.name}-r{round_index + 1}"
        process = measure.ServerProcess(server.argv(launch), env, APPS_DIR, self.raw / f"{stem}.server.log",
                                        port)
        try:
            with process:
                if key not in self.statuses:
                    self.statuses[key] = httpcheck.check(
                        port, scenario.method, scenario.path, scenario.request_body, scenario.body_ok(),
                        scenario.pipeline, scenario.close)
                    if self.statuses[key] not in TIMED_STATUSES:
                        log(f"  {server.name} / {scenario.name}: {self.statuses[key]}")
                        return
                script = self.scripts[scenario.name]
                if self.args.warmup:
                    measure.run_wrk(port, scenario.path, script, scenario.connections, self.args.warmup)
                cpu_before = process.cpu_seconds()
                threads = measure.thread_count(process.session_id)
                wrk = measure.run_wrk(port, scenario.path, script, scenario.connections, self.args.duration,
                                      self.raw / f"{stem}.wrk.txt")
                cpu_after = process.cpu_seconds()
                if process.process.poll() is not None:
                    raise measure.StartError(f"server exited during the run: {process.log_tail()}")
        except (measure.StartError, RuntimeError, OSError) as exc:
            message = f"{server.name} / {scenario.name} round {round_index + 1}: {exc}"
            self.failures.append(message)
            log(f"  failed: {message}")
            self.statuses.setdefault(key, f"failed: {exc}")
            return
        self.runs.append(self.record(server, scenario, round_index, wrk, cpu_after - cpu_before, threads))

    def record(self, server, scenario, round_index, wrk, server_cpu: float, threads: int) -> dict:
        summary = wrk.summary
        requests = summary["requests"]
        seconds = summary["duration_us"] / 1e6
        wrk_share = wrk.wrk_cpu_seconds / wrk.wall_seconds if wrk.wall_seconds else None
        errors = summary["errors"]
        return {
            "server": server.name, "scenario": scenario.name, "round": round_index + 1,
            "requests": requests, "duration_s": seconds,
            "rps": requests / seconds if seconds else None,
            **report.latency_percentiles(summary["latency_us"]),
            "server_cpu_s": server_cpu,
            "cpu_us_per_request": server_cpu * 1e6 / requests if requests else None,
            "server_cpu_share": server_cpu / seconds if seconds else None,
            "wrk_cpu_share": wrk_share,
            "client_bound": bool(wrk_share and wrk_share >= measure.CLIENT_BOUND_SHARE),
            "errors": errors, "error_count": sum(errors.values()),
            "server_threads": threads,
        }

    # 4. results
    def write(self, started: float, command: str) -> dict:
        summary = report.summarize(self.runs, self.statuses, self.scenarios, self.servers)
        result = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "elapsed_seconds": time.monotonic() - started,
            "machine": self.machine,
            "config": {
                "command": command, "quick": self.args.quick, "rounds": self.args.rounds,
                "duration": self.args.duration, "warmup": self.args.warmup,
                "server_cpu": measure.SERVER_CPU, "client_cpu": measure.CLIENT_CPU,
                "servers": [s.name for s in self.servers], "scenarios": [s.name for s in self.scenarios],
                "scenario_titles": {s.name: s.title for s in self.scenarios},
                "connections": {s.name: s.connections for s in self.scenarios},
                "notes": {s.name: s.note for s in self.servers},
            },
            "versions": self.versions,
            "summary": summary,
            "ratios": {name: report.ratios_to_peers(summary, name) for name in ("fastwsgi-c", "fastwsgi-py")
                       if name in summary.get(self.scenarios[0].name, {})},
            "failures": self.failures,
            "runs": self.runs,
        }
        write_results(self.out, result, charts=not self.args.no_charts)
        return result


def write_results(out: Path, result: dict, charts: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "results.md").write_text(report.markdown(result))
    if charts:
        drawn = subprocess.run([str(envs.harness_python()), str(Path(__file__).parent / "harness" / "charts.py"),
                                str(out)], capture_output=True, text=True, timeout=300)
        if drawn.returncode != 0:
            log(f"charts failed: {drawn.stderr.strip()[-500:]}")


def rebuild(out: Path, charts: bool) -> int:
    """Recomputes medians, tables and charts from the runs stored in OUT/results.json."""
    result = json.loads((out / "results.json").read_text())
    for run in result["runs"]:
        run.update(report.latency_percentiles(run))
    scenarios = [scenario_table.BY_NAME[name] for name in result["config"]["scenarios"]]
    servers = [server_table.BY_NAME[name] for name in result["config"]["servers"]]
    statuses = {(server, scenario): entry["status"]
                for scenario, row in result["summary"].items() for server, entry in row.items()}
    result["summary"] = summary = report.summarize(result["runs"], statuses, scenarios, servers)
    result["ratios"] = {name: report.ratios_to_peers(summary, name) for name in ("fastwsgi-c", "fastwsgi-py")
                        if name in summary.get(scenarios[0].name, {})}
    write_results(out, result, charts)
    log(f"rebuilt {out / 'results.md'}")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.rebuild:
        return rebuild(args.rebuild, charts=not args.no_charts)
    started = time.monotonic()
    try:
        os.sched_setaffinity(0, {int(measure.CLIENT_CPU)})  # keep the harness off the server's CPU
    except (OSError, ValueError):
        pass
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out = args.out or RESULTS_DIR / (f"{date}-quick" if args.quick else date)
    ensure_wrk()
    ensure_bench_file()
    bench = Bench(args, out)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    LOG_COPY.append(open(out / "raw" / "harness.log", "w"))
    bench.install()
    pairs = len(list(bench.pairs()))
    per_run = args.duration + args.warmup + 1.0
    log(f"{pairs} server/scenario pairs x {args.rounds} rounds, about "
        f"{pairs * args.rounds * per_run / 60:.0f} min; results in {out}")
    bench.run()
    bench.write(started, " ".join(["python benchmarks/run.py", *argv]))
    log((out / "results.md").read_text())
    log(f"results written to {out} in {(time.monotonic() - started) / 60:.1f} min")
    return 0 if bench.runs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
