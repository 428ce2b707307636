/*
 * uwsgi_binding.h - the one call behind fastwsgi/parser/_uwsgi_c.py (not
 * part of the public C API in fastwsgi.h; the uwsgi twin of fw_binding.h).
 *
 * Theory of operation
 * -------------------
 * A cffi call costs more than parsing a short variable in C, so the Python
 * layer makes exactly one call per parse(): fw_parse_uwsgi_packed runs
 * fw_parse_uwsgi and, once the packet is complete, writes every variable
 * into one latin-1 buffer that Python splits with one str.split:
 *
 *     ( VALUE \0 )* KEY ( \0 KEY )*
 *
 * (all num_vars values in block order, then the keys in the same order; a
 * packet always has REQUEST_METHOD, so there is at least one pair).  Values
 * hold no NUL (rule 4) and keys are visible ASCII, so the split is exact.
 * split("\0", num_vars) leaves the keys as one string, which Python maps to
 * a cached tuple (a front end sends the same keys request after request).
 * The packed form is never longer than the vars block (each pair has 4 size
 * bytes and needs at most 2 separators), so `cap` >= datasize suffices.
 * The count, the datasize and whether CONTENT_LENGTH was set come back
 * in the result's high bits, so no struct field is read on the common path.
 */
#ifndef FW_UWSGI_BINDING_H
#define FW_UWSGI_BINDING_H

#include "fastwsgi.h"

/* bits of (result >> 32) when fw_parse_uwsgi_packed returns >= 0 */
#define FW_UWSGI_PACKED_HAS_LENGTH   0x1u   /* CONTENT_LENGTH set: read pkt->content_length */
#define FW_UWSGI_PACKED_VARS_SHIFT   1      /* num_vars, 14 bits (a pair takes >= 5 bytes, so a
                                               block holds at most 13107) */
#define FW_UWSGI_PACKED_VARS_MASK    0x3FFFu
#define FW_UWSGI_PACKED_DATASIZE_SHIFT 15   /* datasize, 16 bits: the packet is 4 + datasize;
                                               info stays below 2^31, the result positive */

#define FW_UWSGI_PACKED_TOO_SMALL (-3)      /* cap < pkt->datasize: call again with more room */

/*
 * fw_parse_uwsgi, then on a complete packet the packed form above into
 * out[0:cap].  Returns FW_INCOMPLETE, FW_ERROR (reason in pkt),
 * FW_UWSGI_PACKED_TOO_SMALL, or the packed length (low 32 bits) | info << 32.
 */
long long fw_parse_uwsgi_packed(const char *buf, size_t len, const fw_limits *lim, fw_uwsgi *pkt,
                                fw_header *vars, size_t max_vars, char *out, size_t cap);

#endif /* FW_UWSGI_BINDING_H */
