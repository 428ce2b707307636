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
                                           (half of it is scratch space) */

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

#endif /* FW_BINDING_H */
