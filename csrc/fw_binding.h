/*
 * fw_binding.h - one extra entry point for the Python binding (not part of
 * the public C API in fastwsgi.h).
 *
 * Theory of operation
 * -------------------
 * A cffi call costs more than parsing a short header line, so the Python
 * layer (fastwsgi/parser/_cffi.py) makes exactly one call per parse():
 * fw_parse_packed parses and, once the head is complete, writes everything
 * Python needs into one latin-1 buffer it can split with one str.split:
 *
 *     ( VALUE \0 )* METHOD \0 TARGET \0 VERSION \0 QUERY \0 PATH_INFO \0 KEY ( \0 KEY )*
 *
 * (one VALUE per environ KEY, in the same order; no KEY part without keys).
 * str.split("\0", nkeys + 5) leaves the keys as one string: Python maps it
 * to a cached tuple of key strings (the same client sends the same names
 * request after request), so the only new strings are the values and the
 * dict needs no key hashing.  The scalars come back in the result's high
 * bits, so no struct field has to be read on the common path.
 */
#ifndef FW_BINDING_H
#define FW_BINDING_H

#include "fastwsgi.h"

/* bits of (result >> 32) when fw_parse_packed returns >= 0 */
#define FW_PACKED_FLAGS_MASK   0x0Fu    /* FW_REQ_* */
#define FW_PACKED_MINOR_SHIFT  4        /* HTTP minor version, 4 bits */
#define FW_PACKED_HAS_LENGTH   0x100u   /* Content-Length present: read req->content_length */
#define FW_PACKED_USE_ENVIRON  0x200u   /* rare: PATH_INFO holds a NUL (the split would be
                                           ambiguous) or too many keys to count here: take the
                                           environ from fw_pack_environ instead */
#define FW_PACKED_KEYS_SHIFT   10       /* number of environ keys, up to FW_PACKED_MAX_KEYS */
#define FW_PACKED_MAX_KEYS     0x1FFFFFu   /* keeps the result positive */

#define FW_PACKED_TOO_SMALL (-3)        /* `out` too small: 8 * head length + 128 always suffices
                                           (the packed bytes, then 8 bytes per field of scratch
                                           for finding repeated names) */

/*
 * fw_request_init when `fresh` (the first call for a request; saves the
 * binding a call), fw_parse_request, then on a complete head the packed form above into
 * out[0:cap].  Returns FW_INCOMPLETE, FW_ERROR (reason in req), or
 * FW_PACKED_TOO_SMALL (the head is parsed; calling again only re-packs), or
 * the packed length (low 32 bits) | info << 32.  The head's length is in
 * req->line_start.
 */
long long fw_parse_packed(const char *buf, size_t len, const fw_limits *lim, fw_request *req,
                          fw_header *headers, char *out, size_t cap, int fresh);

/* ---- fw_parse_head: the same, with per-thread buffers and a memo of names ----
 *
 * The Python parser's call.  Its buffers live in an fw_scratch shared by all
 * parsers of one thread (each call fills and reads them before returning);
 * a parser owns only its fw_parser.  The memo keeps the last FW_MEMO_SLOTS
 * field-name sequences seen by the thread (as sent, in order) with their
 * name index, so a head whose names repeat an earlier head's (clients send the
 * same names request after request) skips indexing and writing the keys:
 * the packed form then ends after PATH_INFO, and Python takes the keys from
 * its own per-thread copy of that slot.  Layout as above but with the
 * separator FW_HEAD_SEP and a terminating NUL (Python takes it with
 * ffi.string, so the result needs no length):
 *
 *     ( VALUE SEP )* METHOD SEP TARGET SEP VERSION SEP QUERY SEP PATH_INFO ( SEP KEY )* NUL
 *
 * with the keys present exactly when the keys state is FW_HEAD_STORED + slot
 * or FW_HEAD_NEW (so a split on SEP gives n values, 5 fields and n or 0
 * keys).  The parser also keeps (in p->prev, when they fit p->prev_cap) the
 * values it last packed for memoised names, stamped with the memo slot's
 * store count: a head with the same names in a slot of the same stamp and
 * byte-identical values (a keep-alive client's next request, usually) comes
 * back as FW_HEAD_REPEAT with only METHOD ... PATH_INFO written, and Python
 * reuses the strings (and environ template) of the head it kept them from.
 * When only a few values differ from those kept (a link followed: the target
 * and the Referer change), the answer is FW_HEAD_CHANGED: only the values
 * that differ, the request fields and the changed values' indexes:
 *
 *     ( VALUE SEP )* METHOD SEP TARGET SEP VERSION SEP QUERY SEP PATH_INFO SEP INDEXES NUL
 *
 * INDEXES holds one byte per value written, FW_HEAD_CHANGE_INDEX_BASE + its
 * index among the head's values, in order.  The values kept stay: a client
 * alternating two requests repeats one and changes the other.  The same
 * change as the last answer's (since the last repeat) comes back FOUND and is
 * kept instead: a value changed for good then changes one head, not all.
 * A head with an absolute-form target and no Host field gets an
 * HTTP_HOST key its names do not give (RFC 9112 3.2.2, parser.c
 * fw_env_host_of): it is neither looked up in the memo nor stored, so its
 * keys are always written (FW_HEAD_NEW).  The result is below 2**30 (one CPython long digit: cheap to take
 * apart); a head longer than FW_HEAD_CONSUMED_MASK or a PATH_INFO holding a
 * NUL or SEP comes back as FW_HEAD_SLOW, to be read from the struct.
 */
#define FW_MEMO_SLOTS 8u
#define FW_MEMO_FIELDS 64u        /* heads with more fields are not memoised */
#define FW_MEMO_NAME_BYTES 1024u  /* nor heads whose names (+1 each) take more */

typedef struct fw_names_memo {
    uint32_t clock;                              /* the slot to fill next */
    uint64_t stores;                             /* names stored so far: stamps the slots */
    uint64_t stamp[FW_MEMO_SLOTS];               /* `stores` when each slot was filled */
    uint32_t nfields[FW_MEMO_SLOTS];             /* 0: empty slot */
    uint32_t names_len[FW_MEMO_SLOTS];
    uint32_t next[FW_MEMO_SLOTS][FW_MEMO_FIELDS];  /* fw_index_names' result */
    unsigned char names[FW_MEMO_SLOTS][FW_MEMO_NAME_BYTES];  /* each name + ':' */
} fw_names_memo;

typedef struct fw_scratch {
    char *out;              /* packed output: 8 * head length + 128 always suffices */
    size_t cap;
    fw_header *headers;     /* header array for parsers without one of their own */
    fw_names_memo memo;
} fw_scratch;

typedef struct fw_parser {
    fw_request req;
    const fw_limits *lim;
    fw_header *own_headers;  /* NULL: scratch->headers (the Python layer sets this when a head
                                with fields arrives in pieces, after copying them over) */
    fw_scratch *scratch;
    /* The values this parser last packed for memoised names (fw_parse_head keeps them when they
     * fit prev_cap; the Python layer allocates `prev` and clears prev_stamp when it rebinds the
     * parser to another thread's scratch): */
    char *prev;
    uint32_t prev_cap;
    uint32_t prev_len;
    uint64_t prev_stamp;     /* memo.stamp of the names' slot then; 0: nothing kept */
    uint64_t last_change;    /* hash of the last FW_HEAD_CHANGED answer's changes since the values
                                were kept or repeated; 0: none */
} fw_parser;

#define FW_HEAD_SEP '\x01'   /* no byte of a value, key, method, target or query */

#define FW_HEAD_KEEP_FIELDS (-4)  /* incomplete, and fields so far sit in scratch->headers:
                                     copy them to an array of the parser's own (own_headers)
                                     before the next call (the head continues from them) */

/* result bits when fw_parse_head returns >= 0 */
#define FW_HEAD_CONSUMED_MASK 0x1FFFFu  /* the head's length (bits 0-16); 0 with FW_HEAD_SLOW */
#define FW_HEAD_FLAGS_SHIFT   17        /* FW_REQ_* (4 bits) */
#define FW_HEAD_MINOR_SHIFT   21        /* HTTP minor version (4 bits) */
#define FW_HEAD_KEYS_SHIFT    25        /* keys state (5 bits): */
#define FW_HEAD_FOUND   0u   /* + slot: names found in memo slot; no keys written */
#define FW_HEAD_STORED  8u   /* + slot: keys written; the names were stored in that slot */
#define FW_HEAD_NEW    16u   /* keys written; not memoised */
#define FW_HEAD_SLOW   17u   /* nothing usable written: build the head from the struct */
#define FW_HEAD_REPEAT 18u   /* the names and every value are those this parser last kept (prev):
                                only METHOD SEP TARGET SEP VERSION SEP QUERY SEP PATH_INFO written */
#define FW_HEAD_CHANGED 19u  /* the names kept, and values that differ from those kept in at least
                                one and at most FW_HEAD_CHANGED_MAX(n) of its n values: only
                                those, the request fields and their indexes written (above) */
#define FW_HEAD_CHANGED_MAX(n) ((n) / 2u)  /* more go the FOUND way, and are kept */
#define FW_HEAD_CHANGE_INDEX_BASE 0x21u  /* '!': indexes 0..63 are '!'..'`', never SEP or NUL */

/*
 * fw_request_init when `fresh`, fw_parse_request, then on a complete head the
 * packed form into p->scratch->out.  Returns FW_INCOMPLETE, FW_HEAD_KEEP_FIELDS,
 * FW_ERROR (reason in p->req), FW_PACKED_TOO_SMALL (grow scratch->out to 8 * head length + 128 and
 * call again), or the result bits above.
 */
long long fw_parse_head(fw_parser *p, const char *buf, size_t len, int fresh);

#endif /* FW_BINDING_H */
