/*
 * fw_internal.h - helpers shared by the C core's translation units.
 *
 * Theory of operation
 * -------------------
 * Every byte-level rule of the grammar (RFC 9110 / RFC 9112) is one bit in a
 * 256-entry class table, so a scan is one load and one AND per byte.  The
 * table is computed by the compiler from the FW_CLASS_OF() expression below,
 * which reads like the ABNF it implements; there is no generated file and no
 * run-time initialisation (nothing global is ever written).
 *
 * The rest are the pieces both the request parser and the chunked decoder's
 * trailer section need: finding the end of a line under the limit rules of
 * docs/parser-spec.md ("Lines"), and checking one field line; and the
 * request parser's state values with the early answer for a call that adds
 * a few bytes and no LF, which the binding's entries use too.
 */
#ifndef FW_INTERNAL_H
#define FW_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastwsgi.h"

#if defined(__GNUC__) || defined(__clang__)
#define FW_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define FW_NOINLINE __attribute__((noinline))
#else
#define FW_UNLIKELY(x) (x)
#define FW_NOINLINE
#endif

/* ---- character classes --------------------------------------------------- */

#define FW_C_TCHAR    0x0001u /* tchar (RFC 9110 5.6.2) */
#define FW_C_FVALUE   0x0002u /* field-vchar / SP / HTAB (RFC 9110 5.5): HTAB, SP, 0x21-0x7E, obs-text */
#define FW_C_TARGET   0x0004u /* request-target byte: 0x21-0x7E */
#define FW_C_DIGIT    0x0008u
#define FW_C_HEX      0x0010u
#define FW_C_ALPHA    0x0020u
#define FW_C_SCHEME   0x0040u /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 3.1) */
#define FW_C_REGNAME  0x0080u /* unreserved / sub-delims (reg-name without pct-encoded, RFC 3986 3.2.2) */
#define FW_C_IPLIT    0x0100u /* unreserved / sub-delims / ":" (inside "[...]") */
#define FW_C_QDTEXT   0x0200u /* qdtext (RFC 9110 5.6.4) */
#define FW_C_OWS      0x0800u /* SP / HTAB */
#define FW_C_QPAIR    0x1000u /* byte allowed after "\" in a quoted-pair */

#define FW_IS_ALPHA(c) (((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z'))
#define FW_IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define FW_IS_HEX(c) (FW_IS_DIGIT(c) || ((c) >= 'A' && (c) <= 'F') || ((c) >= 'a' && (c) <= 'f'))
#define FW_IS_OWS(c) ((c) == ' ' || (c) == '\t')
#define FW_IS_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7E)
#define FW_IS_OBSTEXT(c) ((c) >= 0x80 && (c) <= 0xFF)
/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
#define FW_IS_TCHAR(c) (FW_IS_ALPHA(c) || FW_IS_DIGIT(c) || (c) == '!' || (c) == '#' || \
    (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || \
    (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
/* unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 2.3) */
#define FW_IS_UNRESERVED(c) (FW_IS_ALPHA(c) || FW_IS_DIGIT(c) || (c) == '-' || (c) == '.' || \
    (c) == '_' || (c) == '~')
/* sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "=" (RFC 3986 2.2) */
#define FW_IS_SUBDELIM(c) ((c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || \
    (c) == ')' || (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=')

#define FW_CLASS_OF(c) ((uint16_t)( \
    (FW_IS_TCHAR(c) ? FW_C_TCHAR : 0) | \
    ((c) == '\t' || (c) == ' ' || FW_IS_VCHAR(c) || FW_IS_OBSTEXT(c) ? FW_C_FVALUE : 0) | \
    (FW_IS_VCHAR(c) ? FW_C_TARGET : 0) | \
    (FW_IS_DIGIT(c) ? FW_C_DIGIT : 0) | \
    (FW_IS_HEX(c) ? FW_C_HEX : 0) | \
    (FW_IS_ALPHA(c) ? FW_C_ALPHA : 0) | \
    (FW_IS_ALPHA(c) || FW_IS_DIGIT(c) || (c) == '+' || (c) == '-' || (c) == '.' ? FW_C_SCHEME : 0) | \
    (FW_IS_UNRESERVED(c) || FW_IS_SUBDELIM(c) ? FW_C_REGNAME : 0) | \
    (FW_IS_UNRESERVED(c) || FW_IS_SUBDELIM(c) || (c) == ':' ? FW_C_IPLIT : 0) | \
    ((c) == '\t' || (c) == ' ' || (c) == 0x21 || ((c) >= 0x23 && (c) <= 0x5B) || \
     ((c) >= 0x5D && (c) <= 0x7E) || FW_IS_OBSTEXT(c) ? FW_C_QDTEXT : 0) | \
    (FW_IS_OWS(c) ? FW_C_OWS : 0) | \
    ((c) == '\t' || (c) == ' ' || FW_IS_VCHAR(c) || FW_IS_OBSTEXT(c) ? FW_C_QPAIR : 0)))

/* Defined once in errors.c. */
extern const uint16_t fw_char_class[256];

#define FW_HAS(c, cls) (fw_char_class[(unsigned char)(c)] & (cls))

/* ASCII lower-casing (locale independent). */
static inline unsigned char fw_lower(unsigned char c)
{
    return (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
}

/* Case-insensitive comparison of p[0:n] with a lower-case literal of length n. */
static inline int fw_ieq(const unsigned char *p, size_t n, const char *lit, size_t lit_len)
{
    size_t i;
    if (n != lit_len)
        return 0;
    for (i = 0; i < n; i++)
        if (fw_lower(p[i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}
#define FW_IEQ(p, n, lit) fw_ieq((p), (n), (lit), sizeof(lit) - 1)

/* Index of the first byte in p[0:n] without class `cls`, or n. */
static inline size_t fw_span(const unsigned char *p, size_t n, unsigned cls)
{
    size_t i = 0;
    while (i + 4 <= n) {
        if (!FW_HAS(p[i], cls)) return i;
        if (!FW_HAS(p[i + 1], cls)) return i + 1;
        if (!FW_HAS(p[i + 2], cls)) return i + 2;
        if (!FW_HAS(p[i + 3], cls)) return i + 3;
        i += 4;
    }
    while (i < n && FW_HAS(p[i], cls))
        i++;
    return i;
}

/* Length of the token or quoted-string (RFC 9110 5.6.2, 5.6.4) at the start of p[0:n], or 0 when
 * there is none: the value of a chunk extension and of a transfer-coding parameter. */
static inline size_t fw_token_or_quoted(const unsigned char *p, size_t n)
{
    size_t k = 1;
    if (n == 0 || p[0] != '"')
        return fw_span(p, n, FW_C_TCHAR);
    while (k < n) {
        if (p[k] == '"')
            return k + 1;
        if (p[k] == '\\') {
            if (k + 1 == n || !FW_HAS(p[k + 1], FW_C_QPAIR))
                return 0;
            k += 2;
        } else if (FW_HAS(p[k], FW_C_QDTEXT)) {
            k++;
        } else {
            return 0;
        }
    }
    return 0;                                       /* no closing quote */
}

/*
 * fw_span(p, n, FW_C_FVALUE), eight bytes at a time while no byte can be a
 * control: field values (cookies, user agents) are the bulk of a head.  A
 * word holding a byte < 0x20 (HTAB included) or 0x7F falls back to the table
 * from there on (SWAR "hasless"/"haszero", exact for existence).
 */
static inline size_t fw_span_field_value(const unsigned char *p, size_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t x, del;
        memcpy(&x, p + i, 8);
        del = x ^ (ones * 0x7F);
        if ((((x - ones * 0x20) & ~x) | ((del - ones) & ~del)) & highs)
            break;
        i += 8;
    }
    return i + fw_span(p + i, n - i, FW_C_FVALUE);
}

/* ---- lines (docs/parser-spec.md, "Lines") -------------------------------- */

/*
 * Find the end of the line that starts at `start` in b[0:len].  Bytes before
 * `*scan` (>= start) are already known to hold no LF.  `line_max` is the line
 * limit L, `head_base + (x - start)` maps buffer offset x to an offset in the
 * head (or trailer section) whose size limit is `head_max`.
 *
 * Returns 1 and the LF's offset in *lf when the line is complete and within
 * both limits, 0 when more bytes are needed (and advances *scan), or -1 with
 * *error set to line_error or FW_E_HEAD_TOO_LARGE.  When both limits are
 * crossed the smaller trip point (buffer length) wins, the line limit on a tie.
 */
static inline int fw_find_line(const unsigned char *b, size_t len, size_t start, size_t *scan,
                               uint64_t line_max, uint64_t head_base, uint64_t head_max,
                               int line_error, size_t *lf, int *error)
{
    uint64_t line_trip = (uint64_t)start + line_max + 1;     /* buffer length that trips L */
    uint64_t head_trip = head_max + 1 - head_base + start;   /* buffer length that trips H */
    size_t search_end = (uint64_t)len < line_trip ? len : (size_t)line_trip;
    const unsigned char *nl = NULL;

    if (*scan < search_end)
        nl = (const unsigned char *)memchr(b + *scan, '\n', search_end - *scan);
    if (nl != NULL) {
        size_t at = (size_t)(nl - b);
        /* LF at head offset >= H: the head (section) holds more than H bytes */
        if ((uint64_t)at + 1 >= head_trip) {
            *error = FW_E_HEAD_TOO_LARGE;
            return -1;
        }
        *lf = at;
        return 1;
    }
    {
        int line_tripped = (uint64_t)len >= line_trip;
        int head_tripped = (uint64_t)len >= head_trip;
        if (line_tripped && (!head_tripped || line_trip <= head_trip)) {
            *error = line_error;
            return -1;
        }
        if (head_tripped) {
            *error = FW_E_HEAD_TOO_LARGE;
            return -1;
        }
    }
    *scan = len;
    return 0;
}

/*
 * Given a complete line b[start:lf], strip the CR before the LF and check the
 * terminator and CR-inside rules.  Returns FW_E_NONE and the content end in
 * *content_end, or an error code.
 */
static inline int fw_line_content(const unsigned char *b, size_t start, size_t lf,
                                  int allow_bare_lf, size_t *content_end)
{
    size_t end = lf;
    if (lf > start && b[lf - 1] == '\r')
        end = lf - 1;
    else if (!allow_bare_lf)
        return FW_E_BARE_LF;                       /* RFC 9112 2.2 */
    if (end > start && memchr(b + start, '\r', end - start) != NULL)
        return FW_E_BARE_CR;                       /* RFC 9112 2.2 */
    *content_end = end;
    return FW_E_NONE;
}

/*
 * Check one non-empty field line's content p[0:n] (RFC 9112 5, RFC 9110 5.5),
 * rules 3-7 of docs/parser-spec.md "Field lines".  On success fills the name
 * and trimmed value as offsets relative to p plus `base`.
 */
static inline int fw_check_field_line(const unsigned char *p, size_t n, uint32_t base,
                                      fw_header *h)
{
    size_t name_len, v, end;

    if (FW_IS_OWS(p[0]))
        return FW_E_OBS_FOLD;                      /* RFC 9112 5.2 */
    name_len = fw_span(p, n, FW_C_TCHAR);
    if (FW_UNLIKELY(name_len == n || p[name_len] != ':' || name_len == 0)) {
        const unsigned char *colon = (const unsigned char *)memchr(p, ':', n);
        if (colon == NULL)
            return FW_E_BAD_HEADER_NAME;
        name_len = (size_t)(colon - p);
        if (name_len > 0 && FW_IS_OWS(p[name_len - 1]))
            return FW_E_SPACE_BEFORE_COLON;        /* RFC 9112 5.1 */
        return FW_E_BAD_HEADER_NAME;
    }
    v = name_len + 1;
    while (v < n && FW_IS_OWS(p[v]))
        v++;
    end = n;
    while (end > v && FW_IS_OWS(p[end - 1]))
        end--;
    if (fw_span_field_value(p + v, end - v) != end - v)
        return FW_E_BAD_HEADER_VALUE;              /* RFC 9110 5.5 */
    if (h != NULL) {
        h->name_off = base;
        h->name_len = (uint32_t)name_len;
        h->value_off = base + (uint32_t)v;
        h->value_len = (uint32_t)(end - v);
    }
    return FW_E_NONE;
}

/* ---- the request parser's state (parser.c), shared with binding.c ------------ */

/* fw_request.seen_request_line: */
#define FW_SEEN_NOTHING 0u  /* before the request line, or in its method prefix */
#define FW_SEEN_METHOD 1u   /* the request line's method prefix ended at SP, HTAB, CR or LF */
#define FW_SEEN_LINE 2u     /* request line parsed, reading field lines */
#define FW_SEEN_ALL 3u      /* head complete; line_start is its length */

/* New bytes fw_still_incomplete looks at itself (more go to memchr). */
#define FW_FEW_NEW_BYTES 16u

/*
 * The usual call while a head arrives in small pieces: no error yet, a few
 * new bytes, no LF among them, past the request line's method prefix, and
 * the open line and the head both below their limits ("Lines" 1: the line
 * trips at buffer length line_start + L + 1, the head at H + 1).  Then
 * fw_parse_request's answer is FW_INCOMPLETE with scan_pos = len: this
 * stores scan_pos = len and returns 1 without fw_parse_request's set-up or a
 * memchr call for a byte or two, so the per-call cost of feeding a head byte
 * by byte stays near the per-byte cost of feeding it whole.  (The binding's
 * entries call it first too, before their own set-up.)  Returns 0, having
 * changed nothing, for every other call.
 */
static inline int fw_still_incomplete(const unsigned char *b, size_t len, const fw_limits *lim,
                                      fw_request *req)
{
    size_t i = req->scan_pos;
    uint32_t line_max;
    if (req->error != FW_E_NONE || len - i > FW_FEW_NEW_BYTES)
        return 0;                                   /* (len < scan_pos wraps: not few) */
    if (req->seen_request_line == FW_SEEN_LINE)
        line_max = lim->max_header_line;
    else if (req->seen_request_line == FW_SEEN_METHOD)
        line_max = lim->max_request_line;
    else
        return 0;                                   /* in the method prefix, or done */
    if ((uint64_t)len > (uint64_t)req->line_start + line_max || len > lim->max_head_size)
        return 0;
    for (; i < len; i++)
        if (b[i] == '\n')
            return 0;
    req->scan_pos = (uint32_t)len;
    return 1;
}

/* ---- environ items (parser.c), shared with binding.c ----------------------- */

/* HTTP_HOST when an absolute-form target gives it (RFC 9112 3.2.2: the server
 * MUST use the target's host information instead of the Host field): the
 * target's authority as sent.  `field` is the Host field whose value it
 * replaces, or num_headers when there is none (HTTP/1.0, allow_missing_host):
 * HTTP_HOST is then one more key, after those of the fields. */
typedef struct fw_env_host {
    uint32_t off, len;      /* the authority, offsets into the buffer */
    uint32_t field;
} fw_env_host;

/* Fill *host and return 1 when the complete head's target is absolute-form;
 * 0 for origin-form and asterisk-form (the Host field is HTTP_HOST). */
int fw_env_host_of(const unsigned char *b, const fw_request *req, const fw_header *headers,
                   fw_env_host *host);

/* Upper bound of what the environ writers below write for a complete head:
 * PATH_INFO plus, per field, "HTTP_" + name + value + 4 bytes of separators
 * (a '\0' after the key and after the value, or the ',' or "; " joining it), plus
 * "HTTP_HOST" + the authority + 3 when `host` is not NULL. */
size_t fw_environ_size(const fw_request *req, const fw_header *headers, const fw_env_host *host);

/* next[i] of fw_index_names: the field gets no environ key of its own (its
 * name came earlier, or holds '_'); the low bits are 1 + the index of the next
 * field of the same name, 0 for the last. */
#define FW_NAME_NO_KEY 0x80000000u

/* Words of scratch fw_index_names needs for n fields (2n). */
size_t fw_names_scratch_words(uint32_t n);

/* Index the repeated names of a complete head in O(L log n) (one stable sort
 * of the field indices by lower-cased name); returns next[0:n], which lies in
 * `scratch` (fw_names_scratch_words(n) words, 4-byte aligned). */
uint32_t *fw_index_names(const unsigned char *b, const fw_header *headers, uint32_t n,
                         uint32_t *scratch);

/* PATH_INFO (the path percent-decoded) into o; returns its length. */
size_t fw_write_path(const unsigned char *b, const fw_request *req, unsigned char *o);
/* Environ key of field h: CONTENT_TYPE, CONTENT_LENGTH or HTTP_<NAME>
 * (upper-cased, '-' -> '_'); returns its length (at most 5 + name length). */
size_t fw_write_key(const unsigned char *b, const fw_header *h, unsigned char *o);
/* Value of field i joined with ',' (Cookie: "; ", RFC 9113 8.2.3) to the values
 * of the later fields of its name, in arrival order (next[] of fw_index_names);
 * returns its length. */
size_t fw_write_value(const unsigned char *b, const fw_header *headers, const uint32_t *next,
                      uint32_t i, unsigned char *o);

#endif /* FW_INTERNAL_H */
