"""Count one parser contender under callgrind (see parser-callgrind-2026-11-22e.md); run from the repo root:
valgrind --tool=callgrind --toggle-collect=consume_iterator PYTHON THIS_FILE CONTENDER "browser GET"."""
import collections, itertools, sys
sys.path[:0] = ['.', 'benchmarks']
import test_parser_bench as tb
contender, req = sys.argv[1], sys.argv[2]
parse, inputs = tb.ready_parser(contender, req)  # one input, or a cycle a keep-alive client sends
for data in itertools.islice(itertools.cycle(inputs), 300): parse(data)
def consume_iterator(it): collections.deque(it, maxlen=0)
consume_iterator(map(parse, itertools.islice(itertools.cycle(inputs), 2000)))
