"""Errors that cross layers as values.

Every way a request can be rejected is one `ParseError` carrying a code name and the HTTP status to
answer with, so the connection turns any parse failure into a response without a lookup table. The
table mirrors `FW_ERROR_TABLE` in `csrc/fastwsgi.h` (one source of truth; tests/unit checks the mirror).
"""

__all__ = ["ERRORS", "ParseError", "ResponseError", "status_of"]

# name -> (number, HTTP status); keep in the order of csrc/fastwsgi.h
ERRORS = {
    "NONE": (0, 0),
    "BAD_REQUEST_LINE": (1, 400),
    "BAD_METHOD": (2, 400),
    "BAD_TARGET": (3, 400),
    "BAD_VERSION": (4, 400),
    "VERSION_NOT_SUPPORTED": (5, 505),
    "BARE_LF": (6, 400),
    "BARE_CR": (7, 400),
    "OBS_FOLD": (8, 400),
    "BAD_HEADER_NAME": (9, 400),
    "SPACE_BEFORE_COLON": (10, 400),
    "BAD_HEADER_VALUE": (11, 400),
    "MISSING_HOST": (12, 400),
    "DUPLICATE_HOST": (13, 400),
    "BAD_HOST": (14, 400),
    "BAD_CONTENT_LENGTH": (15, 400),
    "DUPLICATE_CONTENT_LENGTH": (16, 400),
    "CONTENT_LENGTH_AND_TE": (17, 400),
    "TE_ON_HTTP10": (18, 400),
    "BAD_TRANSFER_ENCODING": (19, 400),
    "UNKNOWN_TRANSFER_CODING": (20, 501),
    "BAD_EXPECT": (21, 417),
    "URI_TOO_LONG": (22, 414),
    "HEADER_LINE_TOO_LONG": (23, 431),
    "TOO_MANY_HEADERS": (24, 431),
    "HEAD_TOO_LARGE": (25, 431),
    "BAD_CHUNK_SIZE": (26, 400),
    "BAD_CHUNK_EXTENSION": (27, 400),
    "CHUNK_LINE_TOO_LONG": (28, 400),
    "BAD_CHUNK_DATA_END": (29, 400),
    "BAD_STATUS": (30, 500),
    "BAD_RESPONSE_HEADER_NAME": (31, 500),
    "BAD_RESPONSE_HEADER_VALUE": (32, 500),
    "HOP_BY_HOP_HEADER": (33, 500),
    "BUFFER_TOO_SMALL": (34, 500),
    "UWSGI_BAD_MODIFIER": (35, 400),
    "UWSGI_BAD_VARS": (36, 400),
    "UWSGI_DUPLICATE_VAR": (37, 400),
    "METHOD_NOT_IMPLEMENTED": (38, 501),
}

NAMES_BY_NUMBER = {number: name for name, (number, _status) in ERRORS.items()}


def status_of(code: str) -> int:
    return ERRORS[code][1]


class ParseError(Exception):
    """A request the server must refuse: `.code` names the rule, `.status` is the answer."""

    def __init__(self, code: str, status: int | None = None):
        if status is None:
            status = ERRORS[code][1]
        super().__init__(f"{code} ({status})")
        self.code = code
        self.status = status

    def __eq__(self, other):
        return isinstance(other, ParseError) and (self.code, self.status) == (other.code, other.status)

    def __hash__(self):
        return hash((self.code, self.status))


class ResponseError(ValueError):
    """The application's status line or headers cannot be sent as they are."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
