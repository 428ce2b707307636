"""The C backend's per-thread scratch (fastwsgi/parser/_cffi.py `_ThreadScratch`), which the HTTP
RequestParser and the uwsgi UwsgiParser share: each call fills the thread's buffers and reads them
back before it returns, so parsers of one thread, of either protocol, never see each other's data,
and since cffi releases the GIL during the call, threads never share them.

Every result is compared with the pure-Python twin's Head for the same bytes. get_backend("c")
raises when the extension is not built: these tests then fail, never skip.
"""

import struct
import threading

from fastwsgi.parser import Limits, get_backend

C = get_backend("c")
PY = get_backend("python")
LIMITS = Limits(max_header_count=300)

HTTP_HEAD = (b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.org\r\nUser-Agent: test/1\r\n"
             b"Accept: */*\r\nX-Custom: " + b"v" * 200 + b"\r\n\r\n")


def packet(pairs) -> bytes:
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs)
    return struct.pack("<BHB", 0, len(block), 0) + block


def uwsgi_packet(tag: int, headers: int = 3, value_size: int = 10) -> bytes:
    pairs = [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/t%d" % tag), (b"QUERY_STRING", b"n=%d" % tag),
             (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"CONTENT_LENGTH", b"%d" % tag)]
    pairs += [(b"HTTP_X_%d" % i, (b"%d-" % tag) + b"v" * value_size) for i in range(headers)]
    return packet(pairs)


def twin_head(parser_name: str, data: bytes):
    return getattr(PY, parser_name)(LIMITS).parse(data)


def test_an_http_head_in_pieces_survives_uwsgi_parses_that_grow_the_thread_buffers():
    """The HTTP parser keeps a partial head's fields across calls; a uwsgi packet parsed in between
    on the same thread (250 vars, 40 KiB: the thread's header array and output buffer both grow)
    must not disturb it, and each parser gets the twin's Head."""
    http = C.RequestParser(LIMITS)
    cut = HTTP_HEAD.index(b"Accept")
    assert http.parse(HTTP_HEAD[:cut]) is None
    big = uwsgi_packet(7, headers=250, value_size=150)
    assert len(big) > 32768
    uwsgi = C.UwsgiParser(LIMITS)
    assert uwsgi.parse(big) == twin_head("UwsgiParser", big)
    assert http.parse(HTTP_HEAD) == twin_head("RequestParser", HTTP_HEAD)
    small = uwsgi_packet(8)  # after the growth, a small packet on the grown buffers
    assert C.UwsgiParser(LIMITS).parse(small) == twin_head("UwsgiParser", small)


def test_parsers_of_many_threads_never_see_each_others_packets():
    """Four threads parse different packets at once, each with parsers made in the main thread
    (which rebind to the thread that uses them) and with their own; every Head is the twin's."""
    packets = [uwsgi_packet(tag, headers=tag % 40, value_size=tag * 7 % 300) for tag in range(60)]
    expected = [twin_head("UwsgiParser", data) for data in packets]
    made_here = [C.UwsgiParser(LIMITS) for _ in range(4)]
    wrong = []

    def work(index: int) -> None:
        parsers = (made_here[index], C.UwsgiParser(LIMITS))
        for round_ in range(40):
            for number in range(index, len(packets), 2):
                parser = parsers[round_ % 2]
                parser.reset()
                try:
                    head = parser.parse(packets[number])
                except Exception as exc:  # another thread's packet in our buffers: any error
                    head = exc
                if head != expected[number]:
                    wrong.append((index, number, head))
                    return

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
