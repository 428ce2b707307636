/*
 * fastwsgi.h - the one public header of fastwsgi's C core.
 *
 * Theory of operation
 * -------------------
 * Three sans-IO pieces, each a plain function over caller-owned memory:
 *
 *   fw_parse_request   bytes of a request head  -> offsets of method, target,
 *                      version and header fields, plus the framing facts the
 *                      server needs (Content-Length, chunked, keep-alive, ...).
 *   fw_pack_environ    a parsed head            -> the CGI part of the WSGI
 *                      environ as one packed latin-1 string that Python turns
 *                      into a dict with a split and a zip.
 *   fw_decode_chunked  chunked body bytes       -> decoded body bytes.
 *   fw_serialize_head  status + headers         -> a response head.
 *   fw_parse_uwsgi     a uwsgi packet (nginx uwsgi_pass) -> offsets of its
 *                      CGI variables and the request facts (csrc/uwsgi.c,
 *                      docs/uwsgi-spec.md).  Unlike fw_parse_request it
 *                      keeps no state between calls: before the packet is
 *                      complete only its 4-byte header is looked at, so
 *                      re-parsing from the first byte costs O(1) per call
 *                      until the last one, which parses the block once.
 *
 * Nothing here allocates, nothing keeps global state, and every limit comes
 * from the caller in an fw_limits.  Return convention (as picohttpparser):
 * a value >= 0 is a byte count, FW_INCOMPLETE (-2) means "call again with the
 * same bytes plus more", FW_ERROR (-1) means the input is rejected and the
 * reason is in the state struct's `error` (an FW_E_* code) and `status` (the
 * HTTP status to answer with).  Errors are sticky: call the init function
 * before reusing a state struct.
 *
 * The behaviour (which input gives which result) is specified in
 * docs/parser-spec.md and shared by the pure-Python twin in
 * fastwsgi/parser/_python.py; tests/conformance/ holds the corpus both must
 * pass.  The error table below is mirrored by fastwsgi/errors.py and a test
 * checks the two agree.
 */
#ifndef FASTWSGI_H
#define FASTWSGI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a struct layout or a code changes; the Python layer
 * refuses an extension built from another version (a stale .so). */
#define FW_ABI_VERSION 7

#define FW_ERROR (-1)
#define FW_INCOMPLETE (-2)

/* ---- error codes: name, number, HTTP status ------------------------------
 * X-macro so the list exists once; fastwsgi/errors.py mirrors it. */
#define FW_ERROR_TABLE(X) \
    X(FW_E_NONE,                      0,   0) \
    X(FW_E_BAD_REQUEST_LINE,          1, 400) \
    X(FW_E_BAD_METHOD,                2, 400) \
    X(FW_E_BAD_TARGET,                3, 400) \
    X(FW_E_BAD_VERSION,               4, 400) \
    X(FW_E_VERSION_NOT_SUPPORTED,     5, 505) \
    X(FW_E_BARE_LF,                   6, 400) \
    X(FW_E_BARE_CR,                   7, 400) \
    X(FW_E_OBS_FOLD,                  8, 400) \
    X(FW_E_BAD_HEADER_NAME,           9, 400) \
    X(FW_E_SPACE_BEFORE_COLON,       10, 400) \
    X(FW_E_BAD_HEADER_VALUE,         11, 400) \
    X(FW_E_MISSING_HOST,             12, 400) \
    X(FW_E_DUPLICATE_HOST,           13, 400) \
    X(FW_E_BAD_HOST,                 14, 400) \
    X(FW_E_BAD_CONTENT_LENGTH,       15, 400) \
    X(FW_E_DUPLICATE_CONTENT_LENGTH, 16, 400) \
    X(FW_E_CONTENT_LENGTH_AND_TE,    17, 400) \
    X(FW_E_TE_ON_HTTP10,             18, 400) \
    X(FW_E_BAD_TRANSFER_ENCODING,    19, 400) \
    X(FW_E_UNKNOWN_TRANSFER_CODING,  20, 501) \
    X(FW_E_BAD_EXPECT,               21, 417) \
    X(FW_E_URI_TOO_LONG,             22, 414) \
    X(FW_E_HEADER_LINE_TOO_LONG,     23, 431) \
    X(FW_E_TOO_MANY_HEADERS,         24, 431) \
    X(FW_E_HEAD_TOO_LARGE,           25, 431) \
    X(FW_E_BAD_CHUNK_SIZE,           26, 400) \
    X(FW_E_BAD_CHUNK_EXTENSION,      27, 400) \
    X(FW_E_CHUNK_LINE_TOO_LONG,      28, 400) \
    X(FW_E_BAD_CHUNK_DATA_END,       29, 400) \
    X(FW_E_BAD_STATUS,               30, 500) \
    X(FW_E_BAD_RESPONSE_HEADER_NAME, 31, 500) \
    X(FW_E_BAD_RESPONSE_HEADER_VALUE,32, 500) \
    X(FW_E_HOP_BY_HOP_HEADER,        33, 500) \
    X(FW_E_BUFFER_TOO_SMALL,         34, 500) \
    X(FW_E_UWSGI_BAD_MODIFIER,       35, 400) \
    X(FW_E_UWSGI_BAD_VARS,           36, 400) \
    X(FW_E_UWSGI_DUPLICATE_VAR,      37, 400) \
    X(FW_E_METHOD_NOT_IMPLEMENTED,   38, 501)

#define FW_ENUM_ITEM(name, num, status) name = num,
enum fw_error { FW_ERROR_TABLE(FW_ENUM_ITEM) FW_E__COUNT };
#undef FW_ENUM_ITEM

/* HTTP status to answer with for an error code (0 for FW_E_NONE). */
int fw_error_status(int error);
/* Name of an error code without the FW_E_ prefix, e.g. "BAD_METHOD". */
const char *fw_error_name(int error);

/* ---- limits and leniencies -------------------------------------------- */

/* Leniencies: every one is off by default (strict RFC 9112). */
#define FW_ALLOW_BARE_LF      0x1u  /* accept LF without CR as a line end */
#define FW_ALLOW_MISSING_HOST 0x2u  /* accept HTTP/1.1 requests without Host */

typedef struct fw_limits {
    uint32_t max_request_line;  /* bytes of the request line before its LF -> 414 */
    uint32_t max_header_line;   /* bytes of one field line before its LF   -> 431 */
    uint32_t max_header_count;  /* field lines in one head (or trailer)   -> 431 */
    uint32_t max_head_size;     /* bytes of the whole head through the final LF,
                                   and of a trailer section                -> 431 */
    uint32_t max_chunk_line;    /* bytes of a chunk-size line before its LF -> 400 */
    uint32_t flags;             /* FW_ALLOW_* */
} fw_limits;

/* ---- request head parser ----------------------------------------------- */

typedef struct fw_header {
    uint32_t name_off, name_len;    /* field name as sent */
    uint32_t value_off, value_len;  /* field value, leading/trailing OWS trimmed */
} fw_header;

/* framing facts, in fw_request.flags */
#define FW_REQ_CHUNKED         0x01u  /* Transfer-Encoding ends in chunked */
#define FW_REQ_KEEP_ALIVE      0x02u  /* connection may be reused after this request */
#define FW_REQ_EXPECT_CONTINUE 0x04u  /* Expect: 100-continue on HTTP/1.1 */
#define FW_REQ_UPGRADE         0x08u  /* Connection: upgrade and an Upgrade field */

typedef struct fw_request {
    /* resumable state: zeroed by fw_request_init, owned by the parser */
    uint32_t line_start;     /* offset of the first line not yet complete */
    uint32_t scan_pos;       /* bytes up to here are known to hold no LF past line_start */
    uint32_t seen_request_line;
    /* results so far; all offsets are into the caller's buffer */
    uint32_t num_headers;
    uint32_t method_off, method_len;
    uint32_t target_off, target_len;  /* the request-target as sent */
    uint32_t path_off, path_len;      /* path part (origin/absolute form), raw */
    uint32_t query_off, query_len;    /* after the first '?', raw */
    uint32_t version_off;             /* "HTTP/x.y", 8 bytes */
    uint8_t version_major, version_minor;
    uint8_t _pad[2];
    int64_t content_length;           /* -1 when the request has no Content-Length */
    uint32_t flags;                   /* FW_REQ_* */
    int32_t error;                    /* FW_E_* once FW_ERROR was returned */
    int32_t status;                   /* HTTP status for `error` */
} fw_request;

void fw_request_init(fw_request *req);

/*
 * Parse (more of) a request head.  `buf`/`len` is everything received for
 * this request so far, starting at its first byte; call again with the same
 * bytes plus more after FW_INCOMPLETE.  The parser resumes where it stopped,
 * so feeding a head in n pieces costs O(total length), not O(n * length).
 * `headers` has room for lim->max_header_count entries and must be the same
 * array on every call for one request.
 *
 * Returns the length of the head (through the blank line's LF) when it is
 * complete, FW_INCOMPLETE, or FW_ERROR.
 */
long fw_parse_request(const char *buf, size_t len, const fw_limits *lim,
                      fw_request *req, fw_header *headers);

/*
 * Write the CGI variables of a parsed head into `out` as latin-1:
 *   PATH_INFO bytes (target path, percent-decoded), length stored in *path_len,
 *   then for each environ key:  KEY "\0" VALUE, items separated by "\0".
 * Keys are HTTP_<NAME> (upper-cased, '-' -> '_'), CONTENT_TYPE and
 * CONTENT_LENGTH; names containing '_' are skipped; repeated names are joined
 * with ',' (Cookie with "; ") in arrival order under their first occurrence.  With an
 * absolute-form target, HTTP_HOST is the target's authority (RFC 9112 3.2.2):
 * the Host field's item takes it as value, or, without a Host field, an
 * HTTP_HOST item is added last.  Returns the number
 * of bytes written, or FW_ERROR if `cap` is too small (3 * head length + 64
 * always suffices).
 */
long fw_pack_environ(const char *buf, const fw_request *req,
                     const fw_header *headers, char *out, size_t cap,
                     size_t *path_len);

/* ---- chunked body decoder ----------------------------------------------- */

typedef struct fw_chunked {
    uint32_t state;          /* internal */
    uint32_t line_scanned;   /* bytes of a pending line already known to hold no LF */
    uint64_t remaining;      /* bytes left in the current chunk's data */
    uint32_t trailer_bytes;  /* size of the trailer section so far */
    uint32_t trailer_count;  /* trailer field lines so far */
    uint32_t done;           /* the last chunk and trailers have been consumed */
    int32_t error;
    int32_t status;
} fw_chunked;

void fw_chunked_init(fw_chunked *st);

/*
 * Decode chunked framing from src[0:len] into dst (which may equal src:
 * decoding in place is safe).  *dst_len holds dst's capacity on entry and the
 * number of decoded body bytes on return.  Returns the number of src bytes
 * consumed; bytes of an incomplete chunk-size, data-end or trailer line are
 * not consumed, so the caller passes them again followed by more data.
 * st->done is set once the terminating trailer section has been consumed
 * (bytes after it belong to the next request).  FW_ERROR with st->error.
 */
long fw_decode_chunked(fw_chunked *st, const char *src, size_t len,
                       char *dst, size_t *dst_len, const fw_limits *lim);

/* ---- response head serializer ------------------------------------------ */

#define FW_RESP_CHUNKED    0x1u  /* add Transfer-Encoding: chunked */
#define FW_RESP_CLOSE      0x2u  /* add Connection: close */
#define FW_RESP_KEEP_ALIVE 0x4u  /* add Connection: keep-alive (HTTP/1.0 peers) */

/*
 * Serialize "HTTP/1.1 <status>\r\n", then Server (if server_len > 0 and the
 * application sent none), Date (if the application sent none), the
 * application's headers in order, Transfer-Encoding/Connection per `flags`,
 * and the blank line, into out[0:cap].
 *
 * `fields` holds the application's headers packed as
 *   name "\0" value "\0" name "\0" value ... (no trailing "\0")
 * and `nfields` is the number of (name, value) pairs; a NUL inside a name or
 * value shows up as a wrong separator count and is rejected.  Names must be
 * tokens and not hop-by-hop; values and the status must not contain CR, LF,
 * NUL or other controls except HTAB.
 *
 * Returns the number of bytes written, or FW_ERROR with *error set to an
 * FW_E_* code (FW_E_BUFFER_TOO_SMALL when cap was not enough).
 */
long fw_serialize_head(char *out, size_t cap,
                       const char *status, size_t status_len,
                       const char *fields, size_t fields_len, size_t nfields,
                       const char *date, size_t date_len,
                       const char *server, size_t server_len,
                       unsigned flags, int *error);

/* ---- uwsgi packet parser (docs/uwsgi-spec.md) ---------------------------- */

#define FW_UWSGI_MAX_CGI_VARS 64u      /* variables not starting with HTTP_ -> 431 beyond */
#define FW_UWSGI_NO_VAR 0xFFFFFFFFu    /* an fw_uwsgi index for a variable that is absent */
#define FW_UWSGI_MAX_VARS 13107u       /* the most pairs a packet can hold: 65535 / 5 */

typedef struct fw_uwsgi {
    uint32_t datasize;       /* length of the vars block: the packet is 4 + datasize bytes */
    uint32_t num_vars;       /* pairs written to vars[], in block order */
    /* indexes into vars[] of the variables the Head is made of, or FW_UWSGI_NO_VAR */
    uint32_t method_var;     /* REQUEST_METHOD (always present on success) */
    uint32_t path_var;       /* PATH_INFO */
    uint32_t query_var;      /* QUERY_STRING */
    uint32_t uri_var;        /* REQUEST_URI */
    uint32_t protocol_var;   /* SERVER_PROTOCOL */
    uint32_t length_var;     /* CONTENT_LENGTH */
    uint32_t version_major;  /* SERVER_PROTOCOL's digits; 1.0 when it is absent */
    uint32_t version_minor;
    int64_t content_length;  /* -1 when CONTENT_LENGTH is absent or empty */
    int32_t error;           /* FW_E_* once FW_ERROR was returned, else FW_E_NONE */
    int32_t status;          /* HTTP status for `error` */
} fw_uwsgi;

/*
 * Parse a uwsgi packet: `buf`/`len` is everything received so far, from the
 * packet's first byte (calls are independent: pass the same bytes plus more
 * after FW_INCOMPLETE; *pkt is rewritten by every call).  On success every
 * variable of the block is in vars[0:num_vars] in block order, as offsets
 * into buf (name = key, value = value as sent; an HTTP_ key sent twice
 * appears twice, the caller joins the values).  `max_vars` =
 * lim->max_header_count + FW_UWSGI_MAX_CGI_VARS always suffices (a packet
 * needing more is rejected by the limits first), and so does
 * FW_UWSGI_MAX_VARS (a pair takes at least 5 bytes of a block of at most
 * 65535); with less, a packet that does not fit fails with
 * FW_E_BUFFER_TOO_SMALL.
 *
 * Returns the packet length (4 + datasize; the request body follows it),
 * FW_INCOMPLETE, or FW_ERROR with pkt->error / pkt->status.  Reads nothing
 * past buf[len - 1] nor past the packet; time linear in datasize (a CGI key
 * is compared with at most FW_UWSGI_MAX_CGI_VARS - 1 earlier ones).
 */
long fw_parse_uwsgi(const char *buf, size_t len, const fw_limits *lim, fw_uwsgi *pkt,
                    fw_header *vars, size_t max_vars);

#ifdef __cplusplus
}
#endif
#endif /* FASTWSGI_H */
