"""Instructions per call, bytes -> complete environ: `valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=consume_iterator python count.py CONTENDER` (CONTENDER: capi, fastwsgi-c, httptools).
Checks first that the C-API environ equals fastwsgi's head.environ({}) for both bench requests."""
import collections
import itertools
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[2]), str(HERE.parents[1])]
import capi_environ  # noqa: E402
import test_parser_bench as tb  # noqa: E402
from fastwsgi.parser import Limits, get_backend  # noqa: E402

for data in (tb.BROWSER_GET, tb.JSON_POST):
    parser = get_backend("c").RequestParser(Limits())
    assert capi_environ.environ(data, {}) == parser.parse(data).environ({})

contender = sys.argv[1]
data = tb.BROWSER_GET
if contender == "capi":
    def parse(data, _environ=capi_environ.environ, _base={}):
        return _environ(data, _base)
else:
    parse, (data,) = tb.ready_parser(contender, "browser GET")
for _ in range(300):
    parse(data)


def consume_iterator(it):
    collections.deque(it, maxlen=0)


consume_iterator(map(parse, itertools.repeat(data, 2000)))
