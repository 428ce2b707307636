"""RequestBody.buffer_rest, the look-ahead that decides, before the response head, whether a chunked
body the application did not read to its end can be drained (tests/functional/test_connection.py
drives it over real sockets). What a socket cannot show: a whole body over DRAIN_LIMIT already in
the input buffer (the server never buffers that far ahead of a request) is refused, and in every
outcome the application can still read the whole body. Also RequestBody.receive_ahead, which takes a
body into its read buffer before the application is called (tests/functional/test_body_ahead.py over
sockets): here split at every place, byte by byte. Both parser backends' decoders."""

from types import SimpleNamespace

import pytest

from fastwsgi.parser import Limits, get_backend
from fastwsgi.server.body import DRAIN_LIMIT, LOOKAHEAD, BodyError, RequestBody

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


# -- receive_ahead: the body received before the application is called (Connection.begin) ----------

@pytest.mark.parametrize("backend", ["c", "python"])
def test_a_chunked_body_received_ahead_in_two_pieces_split_anywhere(backend):
    data = b"0\r\n\r\nGET /x HTTP/1.1\r\n" + bytes(range(40))
    wire = chunked_body(data, piece=7)
    for cut in range(len(wire)):
        body = body_over(wire[:cut], backend)
        assert body.receive_ahead(DRAIN_LIMIT) is False, cut
        body.conn.inbuf += wire[cut:] + NEXT
        assert body.receive_ahead(DRAIN_LIMIT) is True, cut
        assert body.conn.inbuf == NEXT
        assert body.read() == data


@pytest.mark.parametrize("backend", ["c", "python"])
def test_a_chunked_body_received_ahead_a_byte_at_a_time(backend):
    data = b"line one\nline two\n" * 3
    wire = chunked_body(data, piece=5)
    body = body_over(b"", backend)
    for i in range(len(wire)):
        body.conn.inbuf += wire[i:i + 1]
        assert body.receive_ahead(DRAIN_LIMIT) is (i == len(wire) - 1), i
    assert body.readline() == b"line one\n" and body.read() == data[9:]


def test_a_content_length_body_is_received_ahead_up_to_the_bound():
    """Past the bound the application is called with what came; the rest stays to be read."""
    conn = SimpleNamespace(inbuf=b"x" * 10, must_close=False, broken=False)
    body = RequestBody(conn, 100, None, 0, False)
    assert body.receive_ahead(30) is False
    conn.inbuf = b"y" * 25
    assert body.receive_ahead(30) is True
    assert body.buf == b"x" * 10 + b"y" * 25 and body.remaining == 65 and not body.complete
    assert body.read(35) == body.buf


@pytest.mark.parametrize("backend", ["c", "python"])
def test_a_malformed_chunked_body_ends_the_wait_and_fails_the_read(backend):
    body = body_over(b"5\r\nhello\r\n", backend)
    assert body.receive_ahead(DRAIN_LIMIT) is False
    body.conn.inbuf += b"5\r\nworldXX\r\n0\r\n\r\n"
    assert body.receive_ahead(DRAIN_LIMIT) is True  # the application is called: its read says 400
    assert body.read(5) == b"hello"
    with pytest.raises(BodyError) as caught:
        body.read()
    assert caught.value.status == 400


# -- the spool: the part of a body received ahead past LOOKAHEAD, in a temporary file ----------------

def spooled_body(data: bytes, tmp_path) -> RequestBody:
    """A Content-Length body of `data` received ahead in two pieces, so its part past LOOKAHEAD is in
    a temporary file in tmp_path (the server's --tmp-upload-dir)."""
    server = SimpleNamespace(tmp_upload_dir=str(tmp_path))
    conn = SimpleNamespace(inbuf=data[:1000], must_close=False, broken=False, server=server)
    body = RequestBody(conn, len(data), None, 0, False)
    assert body.receive_ahead(len(data)) is False
    conn.inbuf = data[1000:] + NEXT
    assert body.receive_ahead(len(data)) is True
    assert body.queued is not None and conn.inbuf == NEXT
    return body


def test_a_spooled_body_reads_back_whole_and_in_order(tmp_path):
    data = bytes(range(256)) * (3 * LOOKAHEAD // 256) + b"tail"
    body = spooled_body(data, tmp_path)
    spool = body.queued[0]
    assert body.readline() == data[:data.index(b"\n") + 1]
    assert body.read(LOOKAHEAD) == data[data.index(b"\n") + 1:data.index(b"\n") + 1 + LOOKAHEAD]
    assert body.read() == data[data.index(b"\n") + 1 + LOOKAHEAD:]
    assert spool.closed  # read to its end


def test_a_late_read_that_meets_the_spool_closed_raises_body_error(tmp_path):
    """A thread the application left behind reads wsgi.input while the response completes: it may
    have taken the queue before end_reads() closed the file in it. Its read raises the BodyError
    that any read after the response raises, not the file's ValueError."""
    data = b"x" * (3 * LOOKAHEAD)
    body = spooled_body(data, tmp_path)
    assert body.read(LOOKAHEAD + 10) == data[:LOOKAHEAD + 10]  # into the file's first piece
    assert body.read(len(data)) == data[LOOKAHEAD + 10:]
    body = spooled_body(data, tmp_path)
    queue_seen_by_the_thread = body.queued
    body.end_reads()  # the response is complete: the file is closed
    assert queue_seen_by_the_thread[0].closed
    body.queued = queue_seen_by_the_thread  # the read goes on with the queue it took before
    with pytest.raises(BodyError, match="after the response was complete"):
        body.read()
