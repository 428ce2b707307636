"""RequestBody.buffer_rest, the look-ahead that decides, before the response head, whether a chunked
body the application did not read to its end can be drained (tests/functional/test_connection.py
drives it over real sockets). What a socket cannot show: a whole body over DRAIN_LIMIT already in
the input buffer (the server never buffers that far ahead of a request) is refused, and in every
outcome the application can still read the whole body. Both parser backends' decoders."""

from types import SimpleNamespace

import pytest

from fastwsgi.parser import Limits, get_backend
from fastwsgi.server.body import DRAIN_LIMIT, BodyError, RequestBody

NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


def chunked_body(data: bytes, piece: int = 65536) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + piece]), data[i:i + piece])
                      for i in range(0, len(data), piece))
    return chunks + b"0\r\nX-Checksum: 1\r\n\r\n"


def body_over(inbuf: bytes, backend: str) -> RequestBody:
    conn = SimpleNamespace(inbuf=inbuf, must_close=False, broken=False)
    return RequestBody(conn, 0, get_backend(backend).ChunkedDecoder(Limits()), 0, False)


@pytest.mark.parametrize("backend", ["c", "python"])
@pytest.mark.parametrize("size, fits", [(DRAIN_LIMIT, True), (DRAIN_LIMIT + 1, False)])
def test_a_whole_buffered_body_is_drainable_up_to_the_limit(backend, size, fits):
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    body = body_over(chunked_body(data) + NEXT, backend)
    assert body.buffer_rest(DRAIN_LIMIT) is fits
    assert body.conn.inbuf == NEXT  # the body's bytes, and only them, left the input
    assert body.read(10) == data[:10] and body.read() == data[10:]  # nothing lost either way
    assert body.drain_buffered()


@pytest.mark.parametrize("backend", ["c", "python"])
def test_a_body_partly_read_then_looked_ahead_reads_on_in_order(backend):
    body = body_over(chunked_body(b"line one\nline two\nthree", piece=5) + NEXT, backend)
    assert body.readline() == b"line one\n"
    assert body.buffer_rest(DRAIN_LIMIT)
    assert body.readline() == b"line two\n"
    assert body.read() == b"three"
    assert body.conn.inbuf == NEXT


@pytest.mark.parametrize("backend", ["c", "python"])
def test_a_failure_met_by_the_look_ahead_is_raised_by_every_later_read(backend):
    body = body_over(b"5\r\nhello\r\n5\r\nworldXX\r\n0\r\n\r\n" + NEXT, backend)
    assert body.buffer_rest(DRAIN_LIMIT) is False
    assert body.conn.must_close
    for _ in range(2):
        with pytest.raises(BodyError) as caught:
            body.read()
        assert caught.value.status == 400
    assert body.buffer_rest(DRAIN_LIMIT) is False
