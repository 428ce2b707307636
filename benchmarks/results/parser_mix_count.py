"""One C parser fed 5,000 browser heads of CLIENTS clients in random order (each client following
links: target and Referer change; clients differ in User-Agent, X-Real-IP, X-Forwarded-For and
Cookie), as an nginx upstream keep-alive connection carries them: which answers (repeat, change,
full) does the parser give, and what do the last 4,000 cost? See parser-changed-2026-11-23.md.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect=consume_iterator \
        $PY benchmarks/results/parser_mix_count.py CLIENTS TREE     # per request: Collected / 4000

(TREE: the checkout whose fastwsgi is measured; consume_iterator is CPython's C function behind
deque(iterator, maxlen=0).)"""
import collections, random, sys
sys.path[:0] = [sys.argv[2], '/work/main/benchmarks']
import fastwsgi.parser
import test_parser_bench as tb
from fastwsgi.parser import get_backend, Limits

def profile(ua, cookie, accept=b"text/html,application/xhtml+xml,*/*;q=0.8"):
    def head(path, referer):
        return (b"GET " + path + b" HTTP/1.1\r\nHost: www.example.com\r\nX-Real-IP: 10.0.0.%d\r\n"
                b"X-Forwarded-For: 10.0.0.%d\r\nX-Forwarded-Proto: https\r\nConnection: keep-alive\r\n"
                b"User-Agent: " + ua + b"\r\nAccept: " + accept + b"\r\nAccept-Language: en-US,en;q=0.5\r\n"
                b"Accept-Encoding: gzip, deflate, br\r\nReferer: " + referer + b"\r\nCookie: " + cookie + b"\r\n\r\n") % (len(ua) % 250, len(ua) % 250)
    return head

clients = [profile(b"Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.%d" % i,
                   b"sessionid=%032x; csrftoken=%016x" % (random.Random(i).getrandbits(128), i)) for i in range(int(sys.argv[1]))]
BASE = {"SERVER_NAME": "x", "wsgi.url_scheme": "http"}  # per connection, as the server holds it
rng = random.Random(1)
parser = get_backend("c").RequestParser(Limits())
kinds = collections.Counter()
pages = [b"/articles/%d" % i for i in range(20)]
state = [pages[0]] * len(clients)
heads = []
for _ in range(5000):
    c = rng.randrange(len(clients))
    nxt = rng.choice(pages)
    heads.append(clients[c](nxt, b"https://www.example.com" + state[c]))
    state[c] = nxt
def one(h):
    parser.reset(); head = parser.parse(h); head.environ(BASE)
    return type(head).__name__
for h in heads[:1000]:
    one(h)
names = []
collections.deque(map(names.append, map(one, heads[1000:])), maxlen=0)  # C consume_iterator
kinds.update(names)
print(sys.argv[1], "clients:", dict(kinds))
