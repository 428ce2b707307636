"""Server-side instructions per keep-alive browser-like GET (10 fields), hello app, under callgrind
(see parser-callgrind-2026-11-23.md). From the repository root:
    python benchmarks/results/server_browser_callgrind.py TREE OUT_DIR fastwsgi-py,fastwsgi-c 1000
TREE is the fastwsgi checkout to serve from (its C extension built in place). Reuses
benchmarks/experiments/cloop/callgrind.py (server under valgrind, 300 warm-up requests, dump, N
requests on one keep-alive connection, dump) with the request replaced by test_parser_bench's
BROWSER_GET. Not part of the test suite."""
import sys, dataclasses
from pathlib import Path
wt = str(Path(sys.argv[1]).resolve()); out = Path(sys.argv[2]); names = sys.argv[3].split(","); n = int(sys.argv[4])
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "cloop"))
import callgrind
from callgrind import server_table
BOOT = ("import sys; sys.path.insert(0, %r); import runpy; "
        "runpy.run_module('fastwsgi', run_name='__main__', alter_sys=True)") % wt
def make(parser):
    def argv(launch):
        return [sys.executable, "-c", BOOT, "--bind", launch.address, "--http-parser", parser,
                "--log-level", "warning", launch.app]
    return argv
for name in names:
    spec = server_table.BY_NAME[name]
    server_table.BY_NAME[name] = dataclasses.replace(spec, argv=make("c" if name.endswith("-c") else "python"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_parser_bench as tb
def request(port, close):
    return tb.BROWSER_GET
callgrind.request = request
out.mkdir(parents=True, exist_ok=True)
for name in names:
    print(wt, name, f"{callgrind.count(name, False, n, out):,.0f}", flush=True)
