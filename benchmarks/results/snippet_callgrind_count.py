"""Instructions of one Python statement, 2,000 runs under callgrind (see parser-callgrind-2026-11-23.md).

From the repository root (PY: the real interpreter binary, not a pyenv shim):
    valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect=consume_iterator \\
        $PY benchmarks/results/snippet_callgrind_count.py SETUP STATEMENT
divide "Collected" by 2,000. SETUP is run once; STATEMENT runs 300 times to warm up, then 2,000 times
inside deque(maxlen=0), whose C function consume_iterator is what callgrind counts. An empty
statement (`pass`) costs ~590 instructions: the harness's own share.
Example: SETUP='from fastwsgi.parser import _python as P, Limits; import test_parser_bench as tb;
p = P.RequestParser(Limits())'; STATEMENT='p._layout = None; p.reset(); p.parse(tb.BROWSER_GET).environ({})'
"""
import collections
import sys

sys.path[:0] = [".", "benchmarks"]
setup, statement = sys.argv[1], sys.argv[2]
namespace: dict = {}
exec(setup, namespace)
exec("def run(_):\n    " + statement.replace("\n", "\n    "), namespace)
run = namespace["run"]
for _ in range(300):
    run(0)
collections.deque(map(run, range(2000)), maxlen=0)
