"""Value types shared by both parser backends: the caller's limits and the parsed head.

Both backends build exactly these objects, so the server (and the parity tests) never know which
backend produced a result. See docs/parser-spec.md for what each field means.
"""

from dataclasses import dataclass

__all__ = ["Limits", "Head"]


@dataclass(frozen=True)
class Limits:
    max_request_line: int = 8190
    max_header_line: int = 8190
    max_header_count: int = 100
    max_head_size: int = 65536
    max_chunk_line: int = 4096
    allow_bare_lf: bool = False
    allow_missing_host: bool = False


class Head:
    """A complete, validated request head."""

    __slots__ = (
        "consumed", "method", "target", "path", "query", "version", "minor", "headers",
        "content_length", "chunked", "keep_alive", "expect_continue", "upgrade",
    )

    def __init__(self, consumed, method, target, path, query, version, minor, headers,
                 content_length, chunked, keep_alive, expect_continue, upgrade):
        self.consumed = consumed
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.minor = minor
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other):
        return isinstance(other, Head) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return f"Head({self.as_dict()!r})"
