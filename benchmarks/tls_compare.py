#!/usr/bin/env python3
"""HTTPS served by the WSGI server itself: fastwsgi's --certfile against gunicorn's, CPU per request.

    python3 benchmarks/tls_compare.py                      # 3 rounds of 4 s
    python3 benchmarks/tls_compare.py --quick              # 1 round of 2 s, to see that everything runs
    python3 benchmarks/tls_compare.py --rounds 5 --out benchmarks/results/tls-DATE.md

Theory of operation (the server comparison's harness, benchmarks/harness/, does the measuring):
1. A test CA and a localhost certificate (RSA 2048) are made with the openssl command in a temporary
   directory. Each server serves wsgi_apps:hello with that certificate and key, one process pinned to
   CPU 0 (measure.ServerProcess), from its benchmark venv (fastwsgi's is reinstalled from this
   repository when its sources changed): fastwsgi with the C and with the Python parser (threads 0),
   gunicorn's gthread worker (4 threads, as in the server comparison) and, as the reference of what TLS
   costs, fastwsgi-c over plain HTTP.
2. Scenarios: `keep-alive` (wrk, 1 thread on CPU 1, 16 connections kept open: the handshake is paid
   once, then every request is encryption and decryption) and `close` (Connection: close: a full TLS
   handshake per request, which is what a client without keep-alive costs).
3. Rounds interleave the servers (A B C A B C ...); each run has a 1 s warm-up, then the timed run with
   the server's CPU time (user + system, all its processes and threads) read from /proc before and
   after. The report gives medians over rounds of requests/s and of server CPU µs per request, and each
   server's ratio to gunicorn's median in the same scenario.
The report goes to --out (default: stdout only); every run's wrk output and server log go to --raw.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import envs, measure  # noqa: E402
from harness import scenarios as scenario_table  # noqa: E402
from harness.scenarios import APPS_DIR  # noqa: E402

APP = "wsgi_apps:hello"


def make_certificate(directory: Path) -> tuple[str, str]:
    """(cert, key) of a localhost certificate signed by a throwaway CA."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=bench CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return str(directory / "server.pem"), str(directory / "server.key")


def servers(cert: str, key: str) -> dict:
    """name -> (venv, scheme, argv(port))."""
    fastwsgi = str(envs.python_of("fastwsgi"))
    gunicorn = str(envs.bin_of("gunicorn", "gunicorn"))
    tls = ["--certfile", cert, "--keyfile", key]

    def fw(parser, with_tls=True):
        return lambda port: [fastwsgi, "-m", "fastwsgi", "--bind", f"127.0.0.1:{port}", "--http-parser",
                             parser, "--log-level", "warning", *(tls if with_tls else []), APP]
    return {
        "fastwsgi-c": ("fastwsgi", "https", fw("c")),
        "fastwsgi-py": ("fastwsgi", "https", fw("python")),
        "gunicorn-gthread": ("gunicorn", "https", lambda port: [
            gunicorn, "--workers", "1", "--worker-class", "gthread", "--threads", "4", "--bind",
            f"127.0.0.1:{port}", "--log-level", "warning", *tls, APP]),
        "fastwsgi-c plain HTTP": ("fastwsgi", "http", fw("c", with_tls=False)),
    }


SCENARIOS = {"keep-alive": scenario_table.BY_NAME["hello"], "close": scenario_table.BY_NAME["close"]}


def one_run(name, spec, scenario, duration, raw: Path, tag: str) -> dict:
    venv, scheme, argv = spec
    port = measure.free_port()
    env = scenario_table.server_environment()
    script = raw / f"{scenario.name}.lua"
    script.write_text(scenario.wrk_script())
    slug = name.replace(" ", "-")
    with measure.ServerProcess(argv(port), env, APPS_DIR, raw / f"{slug}.log", port) as server:
        measure.run_wrk(port, scenario.path, script, scenario.connections, 1, scheme=scheme)  # warm-up
        before = server.cpu_seconds()
        wrk = measure.run_wrk(port, scenario.path, script, scenario.connections, duration,
                              raw / f"{tag}-{slug}-{scenario.name}.txt", scheme=scheme)
        cpu = server.cpu_seconds() - before
    requests = wrk.summary["requests"]
    errors = sum(wrk.summary["errors"].values())
    return {"rps": requests / (wrk.summary["duration_us"] / 1e6), "cpu_us": cpu * 1e6 / max(requests, 1),
            "errors": errors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s")
    parser.add_argument("--out", type=Path, help="write the Markdown report here too")
    parser.add_argument("--raw", type=Path, help="wrk outputs and server logs (default: a temporary dir)")
    args = parser.parse_args(argv)
    rounds, duration = (1, 2) if args.quick else (args.rounds, args.duration)
    raw = args.raw or Path(tempfile.mkdtemp(prefix="tls-bench-"))
    raw.mkdir(parents=True, exist_ok=True)
    for venv in ("fastwsgi", "gunicorn"):
        envs.ensure(venv, log=lambda text: print(text, file=sys.stderr))
    cert, key = make_certificate(raw)
    table = servers(cert, key)
    results = {(s, n): [] for s in SCENARIOS for n in table}
    started = datetime.datetime.now(datetime.timezone.utc)
    for round_number in range(1, rounds + 1):
        for scenario_name, scenario in SCENARIOS.items():
            for name, spec in table.items():
                result = one_run(name, spec, scenario, duration, raw, f"r{round_number}")
                results[scenario_name, name].append(result)
                print(f"round {round_number} {scenario_name:10} {name:22} {result['rps']:9.0f} req/s "
                      f"{result['cpu_us']:7.1f} µs/req errors {result['errors']}", file=sys.stderr)
    lines = [f"# HTTPS served by the WSGI server: fastwsgi --certfile vs gunicorn --certfile "
             f"({started:%Y-%m-%d %H:%M} UTC)", "",
             f"Command: `python3 benchmarks/tls_compare.py --rounds {rounds} --duration {duration}`. "
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
             f"load average at the end {os.getloadavg()[0]:.1f}. Server on CPU {measure.SERVER_CPU}, "
             f"wrk -t1 -c16 on CPU {measure.CLIENT_CPU}, {APP}, RSA 2048 certificate. Versions: "
             f"{envs.versions('fastwsgi').get('fastwsgi', '?')} / gunicorn "
             f"{envs.versions('gunicorn').get('gunicorn', '?')}. Medians of {rounds} interleaved rounds; "
             "ratio = server CPU per request / gunicorn's in the same scenario.", ""]
    for scenario_name in SCENARIOS:
        gunicorn = statistics.median(r["cpu_us"] for r in results[scenario_name, "gunicorn-gthread"])
        lines += [f"## {scenario_name}", "", "| server | req/s | server CPU µs/req | / gunicorn | "
                  "rounds (µs/req) | errors |", "|---|---:|---:|---:|---|---:|"]
        for name in table:
            runs = results[scenario_name, name]
            cpu = statistics.median(r["cpu_us"] for r in runs)
            per_round = " / ".join(f"{r['cpu_us']:.1f}" for r in runs)
            lines.append(f"| {name} | {statistics.median(r['rps'] for r in runs):,.0f} | {cpu:.1f} | "
                         f"{cpu / gunicorn:.2f}x | {per_round} | {sum(r['errors'] for r in runs)} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    print(f"raw: {raw}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
