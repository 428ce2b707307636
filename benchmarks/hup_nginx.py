"""Do reloads and worker recycling behind nginx's upstream keep-alive pool lose requests?

Theory of operation: start `python -m fastwsgi -w WORKERS` serving tests/deploy/probe_app.py (its
/info answers the worker's pid, its /body the size and SHA-256 of the body it read) and one nginx
(tests/deploy/nginx_pool.conf.in, README.md's configuration: one worker, an upstream with `keepalive
32`, `proxy_http_version 1.1` and an empty Connection header; error log at `info`); nginx's upstream
`keepalive_timeout` is its default, 60 s, unless --nginx-keepalive-timeout. The load is
tests/deploy/test_nginx_recycle.Load: `--clients` threads each keep one HTTP/1.1 connection to nginx
and send, for `--duration` seconds, GET /info and POST /body (a `--body` byte random body, its answer
checked) in turn, pausing `--pause` s (uniformly 0.8x to 1.2x) after each. Meanwhile one of these
disturbances runs (`--mode`):

- `hup`: SIGHUP to the master every `--every` s (a new generation of workers starts, then the old
  one drains);
- `max-requests`: the server runs with `--max-requests N --max-requests-jitter J` (workers drain on
  their own);
- `idle`: nothing; with `--keep-alive 1` and `--pause 1` the requests arrive around fastwsgi's
  keep-alive deadline, on connections nginx still holds in its pool (`--burst`: all clients at once,
  every `--pause` s, so nginx needs many pooled connections at the moment they reach that deadline;
  `--busy N`: N more clients that never pause keep nginx and fastwsgi busy meanwhile).

The report (markdown on stdout) counts requests by method and outcome (a status, or the client's
exception), the distinct worker pids that answered, nginx's error.log lines at level error and above
by kind (numbers blanked), and fastwsgi's log lines other than the usual start/stop ones. `--repeat N`
runs the whole thing N times, each with a fresh server and nginx.

    python benchmarks/hup_nginx.py --mode hup --every 2 --duration 30
    python benchmarks/hup_nginx.py --mode max-requests --max-requests 50 --duration 30
    python benchmarks/hup_nginx.py --mode idle --keep-alive 1 --pause 1 --duration 30
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.deploy.test_nginx_recycle import Load, start_pool_nginx  # noqa: E402
from tests.functional.ops import children  # noqa: E402
from tests.functional.serverproc import ServerProcess  # noqa: E402

NGINX_LINE = re.compile(r"^\S+ \S+ \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$")
SERIOUS = ("error", "crit", "alert", "emerg")
USUAL_SERVER_LINES = re.compile(r"Booting worker|Master \d+: |Listening at|Using worker|Graceful stop|Reloading|Reload "
                                r"complete|reached max requests|Handling signal|Starting fastwsgi|"
                                r"Shutting down|parser:|poller:")


def start_stack(args, scratch: Path):
    extra = ["-w", str(args.workers), "--keep-alive", str(args.keep_alive), "--threads", str(args.threads)]
    if args.mode == "max-requests":
        extra += ["--max-requests", str(args.max_requests), "--max-requests-jitter", str(args.jitter)]
    server = ServerProcess(["--bind", "127.0.0.1:0", "--http-parser", args.http_parser, *extra,
                            "tests.deploy.probe_app:app"]).start()
    deadline = time.monotonic() + 20
    while len(children(server.proc.pid)) < args.workers and time.monotonic() < deadline:
        time.sleep(0.05)
    timeout = f"\n        keepalive_timeout {args.nginx_keepalive_timeout}s;" if args.nginx_keepalive_timeout else ""
    return server, start_pool_nginx(scratch / "nginx", server.port, timeout)


def nginx_kinds(text: str) -> collections.Counter:
    kinds = collections.Counter()
    for line in text.splitlines():
        m = NGINX_LINE.match(line)
        if m and m.group(1) in SERIOUS:
            kinds[f"[{m.group(1)}] " + re.sub(r"\d+", "N", m.group(2).split(", client:")[0])[:140]] += 1
    return kinds


def one_run(args, number: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="fastwsgi-hup-nginx-"))
    server, nginx = start_stack(args, scratch)
    load = Load(nginx.port, args.clients, args.pause, args.burst, args.body, args.seed * 1000 + number)
    busy = Load(nginx.port, args.busy, body=args.body, seed=args.seed * 1000 + number + 500)
    hups = 0
    try:
        load.start()
        busy.start()
        end = time.monotonic() + args.duration
        next_hup = time.monotonic() + args.every
        while time.monotonic() < end:
            time.sleep(0.05)
            if args.mode == "hup" and time.monotonic() >= next_hup:
                server.signal(signal.SIGHUP)
                hups += 1
                next_hup += args.every
    finally:
        load.stop()
        busy.stop()
        nginx.stop()
        server.stop(40)
    server_lines = [line.rstrip() for line in server.stderr_lines if not USUAL_SERVER_LINES.search(line)]
    return {"outcomes": load.outcomes + busy.outcomes, "pids": len(load.pids | busy.pids), "hups": hups,
            "nginx": nginx_kinds(nginx.log_text()), "server": server_lines,
            "first": load.failures + busy.failures, "scratch": str(scratch)}


def report(args, runs: list[dict]) -> None:
    flags = {"hup": f"SIGHUP every {args.every} s",
             "max-requests": f"--max-requests {args.max_requests} --max-requests-jitter {args.jitter}",
             "idle": "no disturbance"}[args.mode]
    print(f"## {args.mode}: -w {args.workers} --threads {args.threads} --keep-alive {args.keep_alive} "
          f"--http-parser {args.http_parser}, {flags}\n")
    pacing = f"in bursts every {args.pause} s" if args.burst else f"pause {args.pause} s (0.8-1.2x)"
    busy = f" + {args.busy} clients without pauses" if args.busy else ""
    print(f"{args.clients} clients, {pacing}{busy}, POST body {args.body} B, {args.duration} s per run; "
          f"nginx upstream keepalive 32, keepalive_timeout {args.nginx_keepalive_timeout or 60} s\n")
    print("| run | requests | GET not 200 | POST not 200 | outcomes other than 200 | worker pids | HUPs | "
          "nginx error-level lines |\n|---|---|---|---|---|---|---|---|")
    for i, run in enumerate(runs, 1):
        out = run["outcomes"]
        bad = {k: v for k, v in out.items() if k[1] != "200"}
        get_bad = sum(v for (m, _), v in bad.items() if m == "GET")
        post_bad = sum(v for (m, _), v in bad.items() if m == "POST")
        print(f"| {i} | {sum(out.values())} | {get_bad} | {post_bad} | "
              f"{', '.join(f'{m} {o}: {v}' for (m, o), v in sorted(bad.items())) or '-'} | {run['pids']} | "
              f"{run['hups']} | {sum(run['nginx'].values())} |")
    kinds = collections.Counter()
    for run in runs:
        kinds.update(run["nginx"])
    print("\n**nginx error.log, level error and above, all runs**\n")
    for kind, count in kinds.most_common():
        print(f"- {count} x `{kind}`")
    if not kinds:
        print("- none")
    lines = [line for run in runs for line in run["server"]]
    print(f"\n**fastwsgi log lines other than start/stop/reload** ({len(lines)})\n")
    for line in lines[:10]:
        print(f"    {line[:200]}")
    for i, run in enumerate(runs, 1):
        if run["first"]:
            print(f"\nrun {i} first failures: {run['first']} (scratch {run['scratch']})")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("hup", "max-requests", "idle"), required=True)
    ap.add_argument("--http-parser", default="c", choices=("c", "python"))
    ap.add_argument("-w", "--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--keep-alive", type=float, default=5, help="fastwsgi's --keep-alive")
    ap.add_argument("--nginx-keepalive-timeout", type=float, default=0, help="0: nginx's default (60 s)")
    ap.add_argument("--every", type=float, default=2.0, help="hup: seconds between SIGHUPs")
    ap.add_argument("--max-requests", type=int, default=50)
    ap.add_argument("--jitter", type=int, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--pause", type=float, default=0.0, help="seconds each client waits between requests")
    ap.add_argument("--burst", action="store_true",
                    help="the clients send together every --pause s, instead of each pausing 0.8-1.2x --pause")
    ap.add_argument("--busy", type=int, default=0,
                    help="more clients that never pause (their requests are counted with the others)")
    ap.add_argument("--body", type=int, default=200, help="POST body bytes")
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    runs = []
    for number in range(args.repeat):
        runs.append(one_run(args, number))
        print(f"run {number + 1}: {dict(runs[-1]['outcomes'])}", file=sys.stderr, flush=True)
    report(args, runs)


if __name__ == "__main__":
    main()
