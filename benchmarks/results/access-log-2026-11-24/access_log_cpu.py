"""Server CPU per request of fastwsgi's hello app with and without an access log, trees side by side.

Usage: python access_log_cpu.py ROUNDS TREE [TREE ...]
Each TREE is a fastwsgi checkout with its C extension built in place (`python setup.py build_ext
--inplace`); it is served with `python -m fastwsgi` and PYTHONPATH=TREE. Per round, for every tree
and every variant in turn (interleaved): the server pinned to CPU 0 serves benchmarks/apps
wsgi_apps:hello; wrk -t1 -c16 pinned to CPU 1 warms up 1 s, then runs 4 s; server CPU = utime +
stime from /proc around the timed run, divided by the requests wrk counted. Variants: no access log;
--access-logfile to a file; --access-logfile - with stdout a pipe read by `cat > /dev/null` (what
systemd's journal or a container runtime reads). Prints every run and the medians, and each
variant's median over the same tree's no-log median.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APPS = Path(__file__).resolve().parents[2] / "apps"
VARIANTS = ("none", "file", "stdout-pipe")
PORT = 8911


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(seconds: int) -> int:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds}s",
                          f"http://127.0.0.1:{PORT}/"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def one_run(tree: str, variant: str, logdir: str) -> float:
    extra = {"none": [], "file": ["--access-logfile", f"{logdir}/access.log"],
             "stdout-pipe": ["--access-logfile", "-"]}[variant]
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{APPS}"}
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "fastwsgi", "--bind",
                               f"127.0.0.1:{PORT}", *extra, "wsgi_apps:hello"], cwd=APPS, env=env,
                              stdout=subprocess.PIPE if variant == "stdout-pipe" else subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    sink = (subprocess.Popen(["cat"], stdin=server.stdout, stdout=subprocess.DEVNULL)
            if variant == "stdout-pipe" else None)
    try:
        time.sleep(1.5)
        wrk(1)
        before = cpu_seconds(server.pid)
        requests = wrk(4)
        return (cpu_seconds(server.pid) - before) / requests * 1e6
    finally:
        server.terminate()
        server.wait()
        if sink is not None:
            server.stdout.close()
            sink.wait()
        if os.path.exists(f"{logdir}/access.log"):
            os.unlink(f"{logdir}/access.log")


def main() -> None:
    rounds, trees = int(sys.argv[1]), sys.argv[2:]
    results = {(tree, variant): [] for tree in trees for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as logdir:
        for round_ in range(rounds):
            for tree in trees:
                for variant in VARIANTS:
                    results[tree, variant].append(one_run(tree, variant, logdir))
                    print(f"round {round_ + 1} {tree} {variant}: {results[tree, variant][-1]:.2f} us/request",
                          flush=True)
    print(f"\n| tree | variant | median us/request | / no log | runs |\n|---|---|---:|---:|---|")
    for tree in trees:
        base = statistics.median(results[tree, "none"])
        for variant in VARIANTS:
            runs = results[tree, variant]
            median = statistics.median(runs)
            print(f"| {tree} | {variant} | {median:.2f} | {median / base:.2f}x | "
                  f"{', '.join(f'{run:.2f}' for run in runs)} |")


if __name__ == "__main__":
    main()
