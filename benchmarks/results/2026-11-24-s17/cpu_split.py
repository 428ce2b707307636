"""user/system CPU per request, bjoern vs fastwsgi-c, plain wrk (no Lua), interleaved rounds."""
import os, re, statistics, subprocess, sys, time
from pathlib import Path
B = Path("/work/main/benchmarks")
APPS = B / "apps"
PORT = 8912
SERVERS = {
    "bjoern": [str(B / ".venvs/bjoern/bin/python"), str(B / "harness/serve_runner.py"), "bjoern", "wsgi_apps:hello", str(PORT)],
    "fastwsgi-c": [str(B / ".venvs/fastwsgi/bin/python"), "-m", "fastwsgi", "--bind", f"127.0.0.1:{PORT}", "--http-parser", "c", "--log-level", "warning", "wsgi_apps:hello"],
}
def cpu(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    t = os.sysconf("SC_CLK_TCK"); return int(f[11]) / t, int(f[12]) / t
def wrk(sec, close):
    extra = ["-H", "Connection: close"] if close else []
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{sec}s", *extra, f"http://127.0.0.1:{PORT}/"], capture_output=True, text=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))
rounds = int(sys.argv[1]); close = len(sys.argv) > 2
res = {s: [] for s in SERVERS}
for r in range(rounds):
    for name, argv in SERVERS.items():
        p = subprocess.Popen(["taskset", "-c", "0", *argv], cwd=APPS, env={**os.environ, "PYTHONPATH": str(APPS)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5); wrk(1, close)
        u0, s0 = cpu(p.pid); n = wrk(4, close); u1, s1 = cpu(p.pid)
        p.terminate(); p.wait()
        res[name].append(((u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6))
        print(name, r, [round(x, 2) for x in res[name][-1]], flush=True)
for name, v in res.items():
    u = statistics.median(x[0] for x in v); s = statistics.median(x[1] for x in v); t = statistics.median(x[0] + x[1] for x in v)
    print(f"{name:12s} user {u:.2f} sys {s:.2f} total {t:.2f}")
