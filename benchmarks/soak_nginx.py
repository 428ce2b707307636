"""Soak fastwsgi behind a real nginx with many concurrent clients; watch its RSS, fds and nginx's error log.

Theory of operation: start `python -m fastwsgi tests.functional.apps:app` (soak.py's ServerProcess) with
an HTTP bind and a uwsgi bind and `--keep-alive 20`, then one nginx (harness/nginx_front.py's template,
`--nginx-workers` workers, error log at `info`) in front of it with three locations: `/` proxy_pass to an
upstream with `keepalive 32` (`keepalive_timeout 15s`, shorter than fastwsgi's keep-alive, as README.md
advises), `/u/` uwsgi_pass to the uwsgi bind (a new backend connection per request), `/s/` proxy_pass
with request and response buffering off (chunked uploads reach fastwsgi chunked). Two loads run at once:
- wrk (harness/measure.run_wrk, one thread, `--connections`, default 256, keep-alive to nginx) sends a
  weighted mix of prebuilt requests (GET /hello and /p/wN, POST /hash with a 16 KiB Content-Length body
  and a chunked one, GET of a 64 KiB download) to `/` and `/u/` (and chunked POSTs to `/s/`); every
  response must be a 200 whose body is one of the mix's exact answers (its Lua `response()` counts the
  others), and wrk's own connect/read/write/timeout errors must stay 0;
- `--clients` checker threads (soak.py's Load and Client, one connection to nginx at a time) send 1-8
  requests per connection to one of the locations: unique GET targets, random bodies up to 256 KiB
  (Content-Length or chunked) to /hash, downloads of random length up to 1 MiB, /environ with a unique
  X-Soak-Id; each response is checked exactly against its own request (status, body bytes).
The phases and samples are soak.py's (run_phases: warm-up, *warm idle* once nginx's pooled upstream
connections have timed out, the measured run sampled every `--fine` s, *end idle*); wrk runs during the
warm-up and the measured run. The report (markdown on stdout) is soak.py's (RSS floors per quarter, fds
under load and idle, the checker's errors, fastwsgi's log lines by shape), then wrk's totals and nginx's
error.log lines grouped by kind (`finding` marks upstream and error-level kinds). Raw files (nginx.conf,
error.log, wrk output) stay in the printed scratch directory.

    python benchmarks/soak_nginx.py --http-parser c --duration 480
    python benchmarks/soak_nginx.py --http-parser c -w 2 --threads 4 --duration 480
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak  # noqa: E402  (also puts the repository on sys.path)
from harness import measure, nginx_front  # noqa: E402

from tests.functional.apps import pattern_bytes  # noqa: E402
from tests.functional.client import build_request, chunked  # noqa: E402
from tests.functional.ops import children  # noqa: E402
from tests.functional.test_uwsgi import listening_urls  # noqa: E402

KEEP_ALIVE, UPSTREAM_KEEPALIVE_TIMEOUT = 20, 15
IDLE_WAIT = KEEP_ALIVE + 5  # nginx has closed its pooled upstream connections, fastwsgi the rest
DOWNLOAD = pattern_bytes(1 << 20)  # every download is a prefix of it
# inside nginx_front.CONF's `location / { ... }`: ends it and opens /u/ and /s/ (the template closes /s/)
MORE_LOCATIONS = """
        }}
        location /u/ {{
            include {params};
            rewrite ^/u(/.*)$ $1 break;
            uwsgi_pass 127.0.0.1:{uwsgi_port};
        }}
        location /s/ {{
            rewrite ^/s(/.*)$ $1 break;
            proxy_request_buffering off;
            proxy_buffering off;
{proxy}"""
POOL = f"\n        keepalive 32;\n        keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT}s;"
BODY_LIMITS = "\n    client_max_body_size 8m;\n    client_body_buffer_size 512k;"


def nginx_conf(prefix: Path, listen_port: int, http_port: int, uwsgi_port: int, workers: int) -> str:
    proxy = nginx_front.LOCATION_HTTP.format(keepalive_headers=nginx_front.KEEPALIVE_HEADERS)
    upstream = nginx_front.UPSTREAM_HTTP.format(backend=f"127.0.0.1:{http_port}", keepalive=POOL) + BODY_LIMITS
    location = proxy + MORE_LOCATIONS.format(params=nginx_front.UWSGI_PARAMS, uwsgi_port=uwsgi_port, proxy=proxy)
    conf = nginx_front.CONF.format(user="user root;" if os.geteuid() == 0 else "", prefix=prefix,
                                   listen_port=listen_port, upstream=upstream, location=location)
    return (conf.replace("worker_processes 1;", f"worker_processes {workers};")
            .replace("error.log warn;", "error.log info;"))


# -- the checker: soak.py scenarios, one per nginx location ---------------------------------------------

def checked_request(conn, prefix: str, rng) -> None:
    """One request of a random kind to nginx's `prefix` location; the response must answer exactly it."""
    kind = rng.choices(("get", "post", "chunked", "download", "environ"), (4, 2, 2, 2, 1))[0]
    soak_id = f"{os.getpid()}-{threading.get_ident()}-{rng.getrandbits(48):x}"
    if kind == "get":
        target = f"/p/{soak_id}?r={rng.getrandbits(30)}"
        conn.request("GET", prefix + target)
        want = f"GET {target}".encode()
    elif kind in ("post", "chunked"):
        body = rng.randbytes(rng.choice((0, rng.randrange(1, 4096), rng.randrange(1, 256 << 10))))
        if kind == "post":
            conn.request("POST", prefix + "/hash", body=body)
        else:
            cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, rng.randrange(1, 6))))
            pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
            conn.send(build_request("POST", prefix + "/hash", headers=[("Transfer-Encoding", "chunked")])
                      + chunked(*pieces))
        want = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    elif kind == "download":
        n = rng.randrange(0, len(DOWNLOAD) + 1)
        conn.request("GET", f"{prefix}/download?n={n}")
        want = DOWNLOAD[:n]
    else:
        conn.request("GET", prefix + "/environ", headers=[("X-Soak-Id", soak_id)])
        environ = soak.environ_of(conn.read_response(timeout=30), f"{prefix or '/'} environ")
        seen = (environ.get("HTTP_X_SOAK_ID"), environ.get("PATH_INFO"))
        soak.expect(seen == (soak_id, "/environ"), "environ", f"{prefix or '/'} environ: {seen}, sent {soak_id}")
        return
    resp = conn.read_response(timeout=30)
    soak.expect_status(resp, 200, f"{prefix or '/'} {kind}")
    soak.expect(resp.body == want, "body", f"{prefix or '/'} {kind}: {len(resp.body)} bytes {resp.body[:60]!r}, "
                                           f"wanted {len(want)} {want[:60]!r}")


def scenario(prefix: str):
    def run(c: soak.Client, rng) -> int:
        count = rng.randrange(1, 9)
        with c.connect(timeout=30) as conn:
            for _ in range(count):
                checked_request(conn, prefix, rng)
        return count
    return run


CHECKER = {"http": (scenario(""), 4), "uwsgi": (scenario("/u"), 4), "stream": (scenario("/s"), 2)}


# -- wrk: prebuilt requests, every response one of their exact answers ------------------------------------

WRK_LUA = """-- written by benchmarks/soak_nginx.py: a weighted mix of prebuilt requests (files), exact answers
local function slurp(path) local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
   requests, answers = {}, {}
   for _, entry in ipairs({%(requests)s}) do
      local raw = slurp(entry[2])
      for i = 1, entry[1] do requests[#requests + 1] = raw end
   end
   for _, path in ipairs({%(answers)s}) do answers[slurp(path)] = true end
   bad_status, bad_body, first_bad = 0, 0, ""
end
function request() return requests[math.random(#requests)] end
function response(status, headers, body)
   if status ~= 200 then bad_status = bad_status + 1
   elseif not answers[body] then
      bad_body = bad_body + 1
      if first_bad == "" then first_bad = status .. " " .. #body .. " " .. body:sub(1, 60) end
   end
end
"""
WRK_DONE = """
local report_done = done
done = function(summary, latency, requests)
   report_done(summary, latency, requests)
   local s, b, first = 0, 0, ""
   for _, t in ipairs(threads) do
      s, b = s + t:get("bad_status"), b + t:get("bad_body")
      if first == "" then first = t:get("first_bad") end
   end
   io.write(string.format("SOAK_JSON {\\"bad_status\\": %d, \\"bad_body\\": %d}\\n", s, b))
   io.write("SOAK_FIRST_BAD " .. first .. "\\n")
end
"""


def wrk_script(scratch: Path) -> Path:
    post = pattern_bytes(16384)[::-1]
    digest = f"{len(post)} {hashlib.sha256(post).hexdigest()}".encode()
    mix = [(7, "GET", "/hello", [], b"", b"hello"), (4, "GET", "/p/w1", [], b"", b"GET /p/w1?"),
           (4, "POST", "/hash", [], post, digest),
           (2, "POST", "/hash", [("Transfer-Encoding", "chunked")], chunked(post[:5000], post[5000:]), digest),
           (3, "GET", "/download?n=65536", [], b"", DOWNLOAD[:65536])]
    requests, answers = [], []
    for prefix, share in (("", 1), ("/u", 1), ("/s", 0)):
        for i, (weight, method, path, headers, body, answer) in enumerate(mix):
            if share or headers:  # /s/: the chunked POST only (streamed to fastwsgi as chunks)
                name = scratch / f"wrk-req{len(requests)}.bin"
                name.write_bytes(build_request(method, prefix + path, headers=headers, body=body))
                requests.append(f'{{{weight}, "{name}"}}')
                answers.append(scratch / f"wrk-answer{i}.bin")
                answers[-1].write_bytes(answer)
    script = scratch / "soak.lua"
    script.write_text(WRK_LUA % {"requests": ", ".join(requests),
                                 "answers": ", ".join(f'"{a}"' for a in sorted(set(answers)))}
                      + (soak.REPO / "benchmarks" / "lua" / "report.lua").read_text() + WRK_DONE)
    return script


class Wrk:
    """One wrk run at a time in a thread (measure.run_wrk), its summary kept by phase."""

    def __init__(self, port: int, script: Path, connections: int, scratch: Path):
        self.port, self.script, self.connections, self.scratch = port, script, connections, scratch
        self.results: dict[str, dict] = {}
        self.stops: list[float] = []  # when each wrk run ended (it closes its connections mid-request)
        self.thread: threading.Thread | None = None

    def start(self, phase: str, seconds: float) -> None:
        def run():
            try:
                result = measure.run_wrk(self.port, "/", self.script, self.connections, int(seconds),
                                         self.scratch / f"wrk-{phase}.txt")
                soak_line = next(line for line in result.output.splitlines() if line.startswith("SOAK_JSON "))
                first = next((line[15:] for line in result.output.splitlines()
                              if line.startswith("SOAK_FIRST_BAD ")), "")
                self.results[phase] = {**result.summary, **json.loads(soak_line[10:]), "first_bad": first,
                                       "wall": result.wall_seconds, "wrk_cpu": result.wrk_cpu_seconds}
            except Exception as exc:  # noqa: BLE001 - reported as the phase's result
                self.results[phase] = {"failed": repr(exc)}
            self.stops.append(time.time())
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


# -- nginx's error log -------------------------------------------------------------------------------------

NGINX_LINE = re.compile(r"^\S+ (\S+) \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$")


def error_log_kinds(path: Path, stops: list[float], window: float = 3) -> tuple[dict, dict]:
    """{"[level] message shape": [count, count away from wrk's stops]} (the message up to its `, client:`
    context, numbers blanked; a line is at a stop when its second is within `window` s of a wrk run's
    end) and each kind's first line, away from the stops when there is one."""
    kinds, first = collections.defaultdict(lambda: [0, 0]), {}
    for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
        m = NGINX_LINE.match(line)
        stamp, level, message = m.groups() if m else ("?", "?", line)
        kind = f"[{level}] " + re.sub(r"\d+", "N", message.split(", client:")[0])[:150]
        try:
            at = time.mktime(time.strptime(line[:19], "%Y/%m/%d %H:%M:%S"))
        except ValueError:
            at = 0.0
        away = not any(stop - window <= at <= stop + window for stop in stops)
        kinds[kind][0] += 1
        kinds[kind][1] += away
        if kind not in first or (away and kinds[kind][1] == 1):
            first[kind] = line[:400]
    return kinds, first


def is_finding(kind: str, away: int) -> bool:
    """Upstream and error-level kinds, unless every line came at a wrk stop (wrk closing its connections)."""
    return away > 0 and ("upstream" in kind or kind.startswith(("[error]", "[crit]", "[alert]", "[emerg]")))


def print_wrk_and_nginx(wrk: Wrk, args, nginx_argv, kinds, first) -> None:
    print(f"\n**nginx** (`{' '.join(nginx_argv)}`, {args.nginx_workers} workers) **and wrk** "
          f"(`-t1 -c{args.connections}`, timeout {measure.WRK_TIMEOUT})\n")
    print("| wrk phase | requests | req/s | connect / read / write / timeout errors | status >= 400 | "
          "not 200 | wrong body | p50 / p99 / max latency ms |\n|---|---|---|---|---|---|---|---|")
    for phase, r in wrk.results.items():
        if "failed" in r:
            print(f"| {phase} | failed: {r['failed']} | | | | | | |")
            continue
        e, lat = r["errors"], r["latency_us"]
        print(f"| {phase} | {r['requests']} | {r['requests'] / (r['duration_us'] / 1e6):.0f} | "
              f"{e['connect']} / {e['read']} / {e['write']} / {e['timeout']} | {e['status']} | {r['bad_status']} | "
              f"{r['bad_body']}{' (first: `' + r['first_bad'] + '`)' if r['first_bad'] else ''} | "
              f"{lat['p50'] / 1000:.1f} / {lat['p99'] / 1000:.1f} / {lat['max'] / 1000:.0f} |")
    print("\n**nginx error.log (level info) by kind**\n")
    print("| count | away from wrk's stops | kind | finding | example (away from the stops if any) |\n"
          "|---|---|---|---|---|")
    for kind, (n, away) in sorted(kinds.items(), key=lambda item: -item[1][0]):
        print(f"| {n} | {away} | `{kind.replace('|', '/')}` | {'**yes**' if is_finding(kind, away) else 'no'} | "
              f"`{first[kind].replace('|', '/')[:300]}` |")
    if not kinds:
        print("| 0 | 0 | (empty) | | |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--http-parser", default="c", choices=("c", "python"))
    ap.add_argument("--threads", type=int, default=0, help="the server's --threads")
    ap.add_argument("-w", "--workers", type=int, default=0, help="the server's -w (0: no master)")
    ap.add_argument("--nginx-workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=256, help="wrk's connections to nginx")
    ap.add_argument("--clients", type=int, default=24, help="checker threads (one connection each)")
    ap.add_argument("--duration", type=float, default=480, help="measured seconds (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=30)
    ap.add_argument("--every", type=float, default=30, help="seconds between the table's rows")
    ap.add_argument("--fine", type=float, default=3, help="seconds between samples for the RSS floor")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--app", default="tests.functional.apps:app")
    ap.set_defaults(tls=False, hooks=False, proxy_protocol=False, unix=False, http10=False, max_requests=0,
                    stalls=False, poller=None)
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="fastwsgi-soak-nginx-"))
    print(f"scratch: {scratch}", file=sys.stderr, flush=True)
    server_args = ["--bind", "127.0.0.1:0", "--bind", "uwsgi://127.0.0.1:0", "--http-parser", args.http_parser,
                   "--threads", str(args.threads), "--keep-alive", str(KEEP_ALIVE)]
    if args.workers:
        server_args += ["--workers", str(args.workers)]
    server = soak.ServerProcess([*server_args, args.app]).start()
    urls = listening_urls(server, 2)
    http_port, uwsgi_port = (int(next(u for u in urls if u.startswith(s)).rsplit(":", 1)[1].rstrip("/"))
                             for s in ("http:", "uwsgi:"))
    deadline = time.monotonic() + 20
    while args.workers and len(children(server.proc.pid)) < args.workers and time.monotonic() < deadline:
        time.sleep(0.1)
    listen_port = measure.free_port()
    prefix = scratch / "nginx"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(nginx_conf(prefix, listen_port, http_port, uwsgi_port, args.nginx_workers))
    nginx_argv = [nginx_front.NGINX_BIN, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    nginx = measure.ServerProcess(nginx_argv, dict(os.environ), prefix, prefix / "nginx.out", listen_port)
    nginx.argv = nginx_argv  # not pinned (measure pins to one CPU): its workers share both with fastwsgi

    soak.ALL_SCENARIOS.update(CHECKER)
    load = soak.Load(soak.Client(listen_port, None, None), args.clients, args.seed, [])
    load.names, load.weights = list(CHECKER), [weight for _, weight in CHECKER.values()]
    wrk = Wrk(listen_port, wrk_script(scratch), args.connections, scratch)

    def on_phase(phase: str) -> None:
        if phase in ("warmup", "measured"):
            wrk.start(phase, args.warmup if phase == "warmup" else args.duration)
        else:
            wrk.join()

    try:
        nginx.start()
        rows, fine = soak.run_phases(args, server, load, bool(args.workers), IDLE_WAIT, on_phase)
    finally:
        wrk.join()
        nginx_alive = nginx.process is not None and nginx.process.poll() is None
        nginx.stop()
        alive = server.alive()
        code = server.stop(30)
    (scratch / "samples.json").write_text(json.dumps({"rows": rows, "fine": fine, "wrk": wrk.results}))
    soak.print_report(args, server, rows, fine, load, alive, code,
                      [f"nginx alive at the end: {nginx_alive}; scratch {scratch}"])
    print_wrk_and_nginx(wrk, args, nginx_argv, *error_log_kinds(prefix / "error.log", wrk.stops))


if __name__ == "__main__":
    main()
