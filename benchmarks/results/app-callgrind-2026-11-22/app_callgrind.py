"""Server-side user-space instructions per keep-alive request of a real application view, under callgrind.

Usage (from the repository root):
    python benchmarks/results/app-callgrind-2026-11-22/app_callgrind.py . OUT_DIR bjoern,fastwsgi-c,fastwsgi-py 500 django
    python benchmarks/results/app-callgrind-2026-11-22/app_callgrind.py . OUT_DIR bjoern,fastwsgi-c 500 flask
    python benchmarks/results/app-callgrind-2026-11-22/app_callgrind.py TREE OUT_DIR fastwsgi-py 1000 hello browser
(the last: each request is test_parser_bench's 10-field BROWSER_GET; parser-callgrind-2026-11-23.md;
with next-page instead of browser, BROWSER_GET and BROWSER_NEXT_PAGE in turn; with changed-once,
BROWSER_GET for the warm-up and BROWSER_NEXT_PAGE for every measured request; with close, each request
on a new connection with `Connection: close`, per connection instead of per keep-alive request)

Reuses benchmarks/experiments/cloop/callgrind.py (server started under valgrind, warm-up, dump, N
requests on one keep-alive connection, dump) with the harness's django or flask scenario (GET /json)
instead of hello. fastwsgi runs from the given tree with the current interpreter (which needs django
and flask); bjoern from its harness venv. Not part of the test suite.
"""
import sys, dataclasses, socket
from pathlib import Path
wt = str(Path(sys.argv[1]).resolve()); out = Path(sys.argv[2]); names = sys.argv[3].split(","); requests = int(sys.argv[4])
scen = sys.argv[5] if len(sys.argv) > 5 else "django"
sys.path.insert(0, wt + "/benchmarks/experiments/cloop")
import callgrind
from callgrind import server_table, scenario_table
BOOT = ("import sys; sys.path.insert(0, %r); import runpy; "
        "runpy.run_module('fastwsgi', run_name='__main__', alter_sys=True)") % wt
def make(parser):
    def argv(launch):
        return [sys.executable, "-c", BOOT, "--bind", launch.address, "--http-parser", parser,
                "--log-level", "warning", launch.app]
    return argv
for name in names:
    if name.startswith("fastwsgi"):
        spec = server_table.BY_NAME[name]
        server_table.BY_NAME[name] = dataclasses.replace(spec, argv=make("c" if name.endswith("-c") else "python"))
sc = scenario_table.BY_NAME[scen]
scenario_table.BY_NAME["hello"] = sc
scenario_table.APPS_DIR = scenario_table.DJANGO_DIR if scen == "django" else scenario_table.APPS_DIR
def request(port, close):
    return b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n" % (
        sc.path.encode(), port, b"Connection: close\r\n" if close else b"")
if len(sys.argv) > 6 and sys.argv[6] == "browser":  # the parser bench's 10-field browser GET instead
    sys.path.insert(0, wt + "/benchmarks")
    from test_parser_bench import BROWSER_GET
    def request(port, close):
        return BROWSER_GET
if len(sys.argv) > 6 and sys.argv[6] == "next-page":  # BROWSER_GET and BROWSER_NEXT_PAGE in turn
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this tree's bench: the heads
    from test_parser_bench import BROWSER_GET, BROWSER_NEXT_PAGE
    def drive(port, count, close):  # callgrind.drive, one keep-alive connection, the heads in turn
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rest = b""
            for number in range(count):
                sock.sendall(BROWSER_NEXT_PAGE if number % 2 else BROWSER_GET)
                rest = callgrind.read_response(sock, rest)
    callgrind.drive = drive
if len(sys.argv) > 6 and sys.argv[6] == "changed-once":  # BROWSER_GET warms up, then BROWSER_NEXT_PAGE
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from test_parser_bench import BROWSER_GET, BROWSER_NEXT_PAGE
    heads = [BROWSER_GET, BROWSER_NEXT_PAGE]  # callgrind.drive asks once per phase
    def request(port, close):
        return heads.pop(0)
CLOSE = len(sys.argv) > 6 and sys.argv[6] == "close"
callgrind.request = request  # (the modes above that replace drive do not use it)
import os
os.environ["PYTHONPATH"] = ""
out.mkdir(parents=True, exist_ok=True)
for name in names:
    print(name, scen, f"{callgrind.count(name, CLOSE, requests, out):,.0f}", flush=True)
