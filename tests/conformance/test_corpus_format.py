"""The corpus loader must read cases exactly and refuse anything malformed.

A loader that silently skipped a misspelt key would drop a check without anyone noticing, so these
tests feed it small hand-written files and expect precise bytes or a CorpusError.
"""

import pytest

from fastwsgi.parser import Limits

from . import corpus
from .runner import split


def load_text(tmp_path, kind, text):
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    return corpus.read_file(path, kind)


@pytest.mark.parametrize("text, expected", [
    (r"a\r\n", b"a\r\n"),
    (r"\x00\xff\t\\", b"\x00\xff\t\\"),
    (r"\{3*ab}", b"ababab"),
    (r"\{2*x\{2*\r}}y", b"x\r\rx\r\ry"),
    (r"\{0*z}", b""),
])
def test_unescape(text, expected):
    assert corpus.unescape(text) == expected


@pytest.mark.parametrize("text", [r"\q", r"\x4", r"\xzz", r"\{3*ab", r"\{x*a}"])
def test_unescape_rejects(text):
    with pytest.raises(corpus.CorpusError):
        corpus.unescape(text)


HEAD = """\
=== ok
ref: test
limits: max_header_line=10 allow_bare_lf
> GET / HTTP/1.1\\r\\n
> Host: a\\r\\n
> \\r\\n
consumed: all
method: GET
target: /
path: /
query:
version: HTTP/1.1
minor: 1
env: HTTP_HOST=a
"""


def test_head_case_is_read_exactly(tmp_path):
    (case,) = load_text(tmp_path, "head", HEAD)
    assert case.data == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert case.limits == Limits(max_header_line=10, allow_bare_lf=True)
    assert case.expected == {
        "consumed": 27, "method": "GET", "target": "/", "path": "/", "query": "",
        "version": "HTTP/1.1", "minor": 1, "headers": {"HTTP_HOST": "a"}, "content_length": -1,
        "chunked": False, "keep_alive": True, "expect_continue": False, "upgrade": False,
    }


@pytest.mark.parametrize("bad", [
    HEAD.replace("ref: test\n", ""),                      # no reference
    HEAD.replace("minor: 1\n", ""),                       # a Head field missing
    HEAD.replace("env: HTTP_HOST=a\n", ""),               # environ not stated
    HEAD.replace("query:\n", "qurey:\n"),                 # misspelt key
    HEAD.replace("allow_bare_lf", "allow_bare_cr"),       # unknown limit
    HEAD + "error: BAD_METHOD 400\n",                     # two outcomes
    HEAD.replace("consumed: all", "consumed: 99"),        # beyond the input
    HEAD.replace("> \\r\\n", "> \\r\\n\t"),               # literal tab in data
    HEAD.replace("> \\r\\n", "> \\r\\n "),                # trailing space in data
    HEAD + "keep_alive: maybe\n",                        # not yes/no
    HEAD + HEAD,                                          # duplicate name
    "=== x\nref: t\n> GET\nerror: BAD_METHOD 404\n",      # wrong status for the code
    "=== x\nref: t\n> GET\nerror: NO_SUCH_CODE 400\n",
])
def test_head_case_rejects(tmp_path, bad):
    with pytest.raises(corpus.CorpusError):
        load_text(tmp_path, "head", bad)


def test_split_strategies_cover_the_input():
    data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nxyz"
    for strategy in ("whole", "bytewise", "lines", "cr", "random0", "random4"):
        pieces = split(data, strategy, "seed")
        assert b"".join(pieces) == data and all(pieces), strategy
    assert split(data, "lines", "s")[0] == b"GET / HTTP/1.1\r\n"
    assert split(data, "cr", "s")[0] == b"GET / HTTP/1.1\r"
    assert split(data, "random1", "s") == split(data, "random1", "s")
    assert split(b"", "bytewise", "s") == [b""]


UWSGI = """\
=== ok
ref: test
packet:
modifier2: 0
var: REQUEST_METHOD=GET
var: K\\x3d=a=b\\r
append: \\x01
> body
consumed: packet
method: GET
target:
path:
query:
version: HTTP/1.0
minor: 0
env: REQUEST_METHOD=GET
env: K\\x3d=a=b\\r
"""


def test_uwsgi_packet_is_built_exactly(tmp_path):
    (case,) = load_text(tmp_path, "uwsgi", UWSGI)
    block = b"\x0e\x00REQUEST_METHOD\x03\x00GET" + b"\x02\x00K=\x04\x00a=b\r" + b"\x01"
    assert case.data == b"\x00" + bytes([len(block), 0]) + b"\x00" + block + b"body"
    assert case.expected["consumed"] == 4 + len(block)
    assert case.expected["headers"] == {"REQUEST_METHOD": "GET", "K=": "a=b\r"}
    assert not any(case.expected[key] for key in ("chunked", "keep_alive", "expect_continue",
                                                  "upgrade"))


def test_uwsgi_overrides_and_truncate(tmp_path):
    text = ("=== t\nref: t\npacket:\nmodifier1: 7\ndatasize: 300\nvar: A=\n"
            "truncate: 5\nincomplete\n")
    (case,) = load_text(tmp_path, "uwsgi", text)
    assert case.data == b"\x07\x2c\x01\x00\x01"


@pytest.mark.parametrize("bad", [
    UWSGI.replace("packet:\n", ""),                        # var lines without packet:
    UWSGI.replace("packet:\n", "packet: x\n"),             # packet: takes no value
    UWSGI.replace("var: K\\x3d=a=b\\r", "var: NOEQUALS"),   # var without '='
    UWSGI.replace("modifier2: 0", "modifier2: 256"),       # not a byte
    UWSGI.replace("modifier2: 0", "datasize: 65536"),      # not a u16
    UWSGI.replace("> body", "truncate: 999"),              # truncate that does not shorten
])
def test_uwsgi_case_rejects(tmp_path, bad):
    with pytest.raises(corpus.CorpusError):
        load_text(tmp_path, "uwsgi", bad)
