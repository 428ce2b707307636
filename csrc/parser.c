/*
 * parser.c - the HTTP/1.1 request-head parser and the environ packer.
 *
 * Theory of operation
 * -------------------
 * fw_parse_request walks the head one line at a time.  The state that lets it
 * resume is two offsets: `line_start` (the first line not yet complete) and
 * `scan_pos` (bytes before it hold no LF), so each byte is searched for an LF
 * once however the input is split, and every other check runs once, on a
 * complete line.  Lines are found with memchr; their bytes are checked with
 * the class table of fw_internal.h.
 *
 *   line 1        request line  -> method/target/version offsets (RFC 9112 3)
 *   lines 2..n    field lines   -> fw_header offsets            (RFC 9112 5)
 *   empty line    end of head   -> the semantic checks over all fields
 *                                  (Host, Transfer-Encoding, Content-Length,
 *                                  Connection, Expect, Upgrade) in the order
 *                                  of docs/parser-spec.md, then the length.
 *
 * Nothing is copied: results are offsets into the caller's buffer.
 * fw_pack_environ then turns a complete head into one latin-1 string holding
 * PATH_INFO and the CGI variables, which the Python layer splits into a dict.
 */
#include "fastwsgi.h"
#include "fw_internal.h"

#define FW_SEEN_NOTHING 0u  /* seen_request_line: still before the request line */
#define FW_SEEN_LINE 1u     /* request line parsed, reading field lines */
#define FW_SEEN_ALL 2u      /* head complete; line_start is its length */

static long fw_fail(fw_request *req, int error)
{
    req->error = error;
    req->status = fw_error_status(error);
    return FW_ERROR;
}

void fw_request_init(fw_request *req)
{
    memset(req, 0, sizeof *req);
    req->content_length = -1;
}

/* ---- request line (RFC 9112 3) -------------------------------------------- */

static int fw_parse_request_line(const unsigned char *b, size_t start, size_t end,
                                 fw_request *req)
{
    const unsigned char *p = b + start;
    size_t n = end - start;
    const unsigned char *sp1, *sp2, *t, *v;
    size_t method_len, target_len, i;

    /* method SP request-target SP HTTP-version: exactly two SP bytes */
    sp1 = (const unsigned char *)memchr(p, ' ', n);
    if (sp1 == NULL)
        return FW_E_BAD_REQUEST_LINE;
    sp2 = (const unsigned char *)memchr(sp1 + 1, ' ', (size_t)(p + n - (sp1 + 1)));
    if (sp2 == NULL || memchr(sp2 + 1, ' ', (size_t)(p + n - (sp2 + 1))) != NULL)
        return FW_E_BAD_REQUEST_LINE;

    method_len = (size_t)(sp1 - p);
    if (method_len == 0 || fw_span(p, method_len, FW_C_TCHAR) != method_len)
        return FW_E_BAD_METHOD;                     /* method = token (RFC 9110 9.1) */

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3) */
    v = sp2 + 1;
    if ((size_t)(p + n - v) != 8 || memcmp(v, "HTTP/", 5) != 0 || !FW_IS_DIGIT(v[5]) ||
        v[6] != '.' || !FW_IS_DIGIT(v[7]))
        return FW_E_BAD_VERSION;
    if (v[5] != '1')
        return FW_E_VERSION_NOT_SUPPORTED;

    t = sp1 + 1;
    target_len = (size_t)(sp2 - t);
    if (fw_span(t, target_len, FW_C_TARGET) != target_len)
        return FW_E_BAD_TARGET;

    req->method_off = (uint32_t)start;
    req->method_len = (uint32_t)method_len;
    req->target_off = (uint32_t)(t - b);
    req->target_len = (uint32_t)target_len;
    req->version_off = (uint32_t)(v - b);
    req->version_major = 1;
    req->version_minor = (uint8_t)(v[7] - '0');
    req->query_off = 0;
    req->query_len = 0;

    /* request-target forms (RFC 9112 3.2) */
    if (target_len > 0 && t[0] == '/') {            /* origin-form */
        i = 0;
    } else if (target_len == 1 && t[0] == '*') {    /* asterisk-form, OPTIONS only */
        if (method_len != 7 || memcmp(p, "OPTIONS", 7) != 0)
            return FW_E_BAD_TARGET;
        req->path_off = req->target_off;
        req->path_len = 1;
        return FW_E_NONE;
    } else {                                        /* absolute-form: scheme "://" authority */
        if (target_len == 0 || !FW_HAS(t[0], FW_C_ALPHA))
            return FW_E_BAD_TARGET;
        i = 1 + fw_span(t + 1, target_len - 1, FW_C_SCHEME);
        if (target_len - i < 3 || memcmp(t + i, "://", 3) != 0)
            return FW_E_BAD_TARGET;
        i += 3;
        while (i < target_len && t[i] != '/' && t[i] != '?')
            i++;
    }
    /* t[i:] is the path (up to the first '?') followed by the query */
    {
        const unsigned char *q = (const unsigned char *)memchr(t + i, '?', target_len - i);
        size_t path_end = q != NULL ? (size_t)(q - t) : target_len;
        req->path_off = req->target_off + (uint32_t)i;
        req->path_len = (uint32_t)(path_end - i);
        if (q != NULL) {
            req->query_off = req->target_off + (uint32_t)path_end + 1;
            req->query_len = (uint32_t)(target_len - path_end - 1);
        }
    }
    return FW_E_NONE;
}

/* ---- end-of-head checks ------------------------------------------------------ */

/* Fields the framing depends on, recognised by their lower-cased name. */
enum fw_field_kind {
    FW_F_OTHER, FW_F_HOST, FW_F_TE, FW_F_CL, FW_F_CONNECTION, FW_F_EXPECT, FW_F_UPGRADE,
    FW_F_CONTENT_TYPE
};

static enum fw_field_kind fw_field_kind(const unsigned char *name, size_t n)
{
    switch (n) {
    case 4: return FW_IEQ(name, n, "host") ? FW_F_HOST : FW_F_OTHER;
    case 6: return FW_IEQ(name, n, "expect") ? FW_F_EXPECT : FW_F_OTHER;
    case 7: return FW_IEQ(name, n, "upgrade") ? FW_F_UPGRADE : FW_F_OTHER;
    case 10: return FW_IEQ(name, n, "connection") ? FW_F_CONNECTION : FW_F_OTHER;
    case 12: return FW_IEQ(name, n, "content-type") ? FW_F_CONTENT_TYPE : FW_F_OTHER;
    case 14: return FW_IEQ(name, n, "content-length") ? FW_F_CL : FW_F_OTHER;
    case 17: return FW_IEQ(name, n, "transfer-encoding") ? FW_F_TE : FW_F_OTHER;
    default: return FW_F_OTHER;
    }
}

/* Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2); empty is allowed. */
static int fw_host_ok(const unsigned char *p, size_t n)
{
    size_t i;
    if (n == 0)
        return 1;
    if (p[0] == '[') {                               /* IP-literal, loosely */
        i = 1 + fw_span(p + 1, n - 1, FW_C_IPLIT);
        if (i == 1 || i >= n || p[i] != ']')
            return 0;
        i++;
    } else {
        i = fw_span(p, n, FW_C_REGNAME);
    }
    if (i == n)
        return 1;
    if (p[i] != ':')
        return 0;
    i++;
    return fw_span(p + i, n - i, FW_C_DIGIT) == n - i;   /* port = *DIGIT */
}

/* Calls `each(element, len, ctx)` for each non-empty, OWS-trimmed element of
 * a comma-separated list (RFC 9110 5.6.1). */
typedef void (*fw_element_fn)(const unsigned char *p, size_t n, void *ctx);

static void fw_each_element(const unsigned char *p, size_t n, fw_element_fn each, void *ctx)
{
    size_t i = 0;
    while (i <= n) {
        const unsigned char *comma = (const unsigned char *)memchr(p + i, ',', n - i);
        size_t end = comma != NULL ? (size_t)(comma - p) : n;
        size_t s = i, e = end;
        while (s < e && FW_IS_OWS(p[s]))
            s++;
        while (e > s && FW_IS_OWS(p[e - 1]))
            e--;
        if (e > s)
            each(p + s, e - s, ctx);
        i = end + 1;
    }
}

/* Transfer-Encoding = #transfer-coding (RFC 9112 6.1, RFC 9110 10.1.4) */
struct fw_te_state {
    unsigned bad_syntax, chunked_count, last_is_chunked, other_count;
};

static void fw_te_element(const unsigned char *p, size_t n, void *ctx)
{
    struct fw_te_state *te = (struct fw_te_state *)ctx;
    size_t name_len = fw_span(p, n, FW_C_TCHAR);
    size_t i = name_len;
    if (name_len == 0) {
        te->bad_syntax = 1;
        return;
    }
    /* transfer-coding = token *( OWS ";" OWS transfer-parameter ) */
    while (i < n && FW_IS_OWS(p[i]))
        i++;
    if (i < n && (p[i] != ';' || fw_span(p + i, n - i, FW_C_TEPARAM) != n - i)) {
        te->bad_syntax = 1;
        return;
    }
    if (FW_IEQ(p, name_len, "chunked")) {
        te->chunked_count++;
        te->last_is_chunked = 1;
    } else {
        te->other_count++;
        te->last_is_chunked = 0;
    }
}

/* Connection = #connection-option (RFC 9110 7.6.1) */
#define FW_CONN_CLOSE 1u
#define FW_CONN_KEEP_ALIVE 2u
#define FW_CONN_UPGRADE 4u

static void fw_connection_element(const unsigned char *p, size_t n, void *ctx)
{
    unsigned *seen = (unsigned *)ctx;
    if (FW_IEQ(p, n, "close"))
        *seen |= FW_CONN_CLOSE;
    else if (FW_IEQ(p, n, "keep-alive"))
        *seen |= FW_CONN_KEEP_ALIVE;
    else if (FW_IEQ(p, n, "upgrade"))
        *seen |= FW_CONN_UPGRADE;
}

static int fw_finish_head(const unsigned char *b, fw_request *req, const fw_header *headers,
                          const fw_limits *lim)
{
    uint32_t i, host_count = 0, te_count = 0, cl_count = 0;
    const fw_header *host = NULL, *cl = NULL;
    unsigned connection = 0, has_upgrade = 0, bad_expect = 0, expect = 0;
    struct fw_te_state te = {0, 0, 0, 0};
    int http11 = req->version_minor >= 1;

    for (i = 0; i < req->num_headers; i++) {
        const fw_header *h = &headers[i];
        const unsigned char *value = b + h->value_off;
        switch (fw_field_kind(b + h->name_off, h->name_len)) {
        case FW_F_HOST:
            if (host_count++ == 0)
                host = h;
            break;
        case FW_F_TE:
            te_count++;
            fw_each_element(value, h->value_len, fw_te_element, &te);
            break;
        case FW_F_CL:
            if (cl_count++ == 0)
                cl = h;
            break;
        case FW_F_CONNECTION:
            fw_each_element(value, h->value_len, fw_connection_element, &connection);
            break;
        case FW_F_EXPECT:
            if (h->value_len == 0)
                break;
            if (FW_IEQ(value, h->value_len, "100-continue"))
                expect = 1;
            else
                bad_expect = 1;
            break;
        case FW_F_UPGRADE:
            has_upgrade = 1;
            break;
        default:
            break;
        }
    }

    /* 1. Host (RFC 9112 3.2) */
    if (host_count > 1)
        return FW_E_DUPLICATE_HOST;
    if (host_count == 0 && http11 && !(lim->flags & FW_ALLOW_MISSING_HOST))
        return FW_E_MISSING_HOST;
    if (host != NULL && !fw_host_ok(b + host->value_off, host->value_len))
        return FW_E_BAD_HOST;

    /* 2. Transfer-Encoding (RFC 9112 6.1, 6.3) */
    req->flags = 0;
    if (te_count > 0) {
        if (!http11)
            return FW_E_TE_ON_HTTP10;
        if (cl_count > 0)
            return FW_E_CONTENT_LENGTH_AND_TE;
        if (te.bad_syntax || te.chunked_count != 1 || !te.last_is_chunked)
            return FW_E_BAD_TRANSFER_ENCODING;
        if (te.other_count > 0)
            return FW_E_UNKNOWN_TRANSFER_CODING;
        req->flags |= FW_REQ_CHUNKED;
    }

    /* 3. Content-Length = 1*DIGIT (RFC 9110 8.6) */
    req->content_length = -1;
    if (cl_count > 1)
        return FW_E_DUPLICATE_CONTENT_LENGTH;
    if (cl != NULL) {
        const unsigned char *d = b + cl->value_off;
        uint64_t value = 0;
        if (cl->value_len == 0)
            return FW_E_BAD_CONTENT_LENGTH;
        for (i = 0; i < cl->value_len; i++) {
            if (!FW_IS_DIGIT(d[i]))
                return FW_E_BAD_CONTENT_LENGTH;
            if (value > (UINT64_C(0x7FFFFFFFFFFFFFFF) - (uint64_t)(d[i] - '0')) / 10)
                return FW_E_BAD_CONTENT_LENGTH;     /* more than 2^63-1 */
            value = value * 10 + (uint64_t)(d[i] - '0');
        }
        req->content_length = (int64_t)value;
    }

    /* 4. Connection (RFC 9112 9.3) */
    if (!(connection & FW_CONN_CLOSE) && (http11 || (connection & FW_CONN_KEEP_ALIVE)))
        req->flags |= FW_REQ_KEEP_ALIVE;

    /* 5. Expect (RFC 9110 10.1.1): only HTTP/1.1 clients may expect */
    if (http11) {
        if (bad_expect)
            return FW_E_BAD_EXPECT;
        if (expect)
            req->flags |= FW_REQ_EXPECT_CONTINUE;
    }

    /* 6. Upgrade (RFC 9110 7.8): ignored on an HTTP/1.0 request */
    if (http11 && (connection & FW_CONN_UPGRADE) && has_upgrade)
        req->flags |= FW_REQ_UPGRADE;
    return FW_E_NONE;
}

/* ---- the parser ------------------------------------------------------------ */

long fw_parse_request(const char *buf, size_t len, const fw_limits *lim, fw_request *req,
                      fw_header *headers)
{
    const unsigned char *b = (const unsigned char *)buf;
    int allow_bare_lf = (lim->flags & FW_ALLOW_BARE_LF) != 0;

    if (req->error != FW_E_NONE)
        return FW_ERROR;                            /* errors are sticky */
    if (len < req->line_start)
        return FW_INCOMPLETE;                       /* not the bytes of the last call: read nothing */
    if (req->seen_request_line == FW_SEEN_ALL)
        return (long)req->line_start;

    for (;;) {
        size_t start = req->line_start, scan = req->scan_pos, lf, end;
        int before_request_line = req->seen_request_line == FW_SEEN_NOTHING;
        int error = FW_E_NONE;
        int found = fw_find_line(
            b, len, start, &scan,
            before_request_line ? lim->max_request_line : lim->max_header_line,
            start, lim->max_head_size,
            before_request_line ? FW_E_URI_TOO_LONG : FW_E_HEADER_LINE_TOO_LONG, &lf, &error);
        if (found == 0) {
            req->scan_pos = (uint32_t)scan;
            return FW_INCOMPLETE;
        }
        if (found < 0)
            return fw_fail(req, error);
        error = fw_line_content(b, start, lf, allow_bare_lf, &end);
        if (error != FW_E_NONE)
            return fw_fail(req, error);
        req->line_start = req->scan_pos = (uint32_t)(lf + 1);

        if (end == start) {                         /* an empty line */
            if (before_request_line)
                continue;                           /* RFC 9112 2.2: skip leading CRLFs */
            error = fw_finish_head(b, req, headers, lim);
            if (error != FW_E_NONE)
                return fw_fail(req, error);
            req->seen_request_line = FW_SEEN_ALL;
            return (long)req->line_start;
        }
        if (before_request_line) {
            error = fw_parse_request_line(b, start, end, req);
            req->seen_request_line = FW_SEEN_LINE;
        } else if (req->num_headers >= lim->max_header_count) {
            error = FW_E_TOO_MANY_HEADERS;
        } else {
            error = fw_check_field_line(b + start, end - start, (uint32_t)start,
                                        &headers[req->num_headers]);
            req->num_headers++;
        }
        if (error != FW_E_NONE)
            return fw_fail(req, error);
    }
}

/* ---- environ packing ------------------------------------------------------ */

static int fw_hex_value(unsigned char c)
{
    if (c <= '9')
        return c - '0';
    return fw_lower(c) - 'a' + 10;
}

/* Percent-decode p[0:n] into out (RFC 3986 2.1); a '%' not followed by two
 * hex digits is kept as is, like urllib.parse.unquote_to_bytes. */
static size_t fw_percent_decode(const unsigned char *p, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        const unsigned char *pct = (const unsigned char *)memchr(p + i, '%', n - i);
        size_t run = pct != NULL ? (size_t)(pct - (p + i)) : n - i;
        memcpy(out + o, p + i, run);
        o += run;
        i += run;
        if (i >= n)
            break;
        if (i + 2 < n && FW_HAS(p[i + 1], FW_C_HEX) && FW_HAS(p[i + 2], FW_C_HEX)) {
            out[o++] = (unsigned char)(fw_hex_value(p[i + 1]) * 16 + fw_hex_value(p[i + 2]));
            i += 3;
        } else {
            out[o++] = '%';
            i++;
        }
    }
    return o;
}

/* Environ key bytes: 'a'-'z' upper-cased and '-' -> '_' (PEP 3333, CGI RFC 3875 4.1.18). */
#define FW_ENV_CHAR(c) ((unsigned char)((c) == '-' ? '_' : ((c) >= 'a' && (c) <= 'z') ? (c) - 32 : (c)))
#define FW_ENV_ROW(h) \
    FW_ENV_CHAR((h) + 0x0), FW_ENV_CHAR((h) + 0x1), FW_ENV_CHAR((h) + 0x2), FW_ENV_CHAR((h) + 0x3), \
    FW_ENV_CHAR((h) + 0x4), FW_ENV_CHAR((h) + 0x5), FW_ENV_CHAR((h) + 0x6), FW_ENV_CHAR((h) + 0x7), \
    FW_ENV_CHAR((h) + 0x8), FW_ENV_CHAR((h) + 0x9), FW_ENV_CHAR((h) + 0xA), FW_ENV_CHAR((h) + 0xB), \
    FW_ENV_CHAR((h) + 0xC), FW_ENV_CHAR((h) + 0xD), FW_ENV_CHAR((h) + 0xE), FW_ENV_CHAR((h) + 0xF)
static const unsigned char fw_env_char[256] = {
    FW_ENV_ROW(0x00), FW_ENV_ROW(0x10), FW_ENV_ROW(0x20), FW_ENV_ROW(0x30),
    FW_ENV_ROW(0x40), FW_ENV_ROW(0x50), FW_ENV_ROW(0x60), FW_ENV_ROW(0x70),
    FW_ENV_ROW(0x80), FW_ENV_ROW(0x90), FW_ENV_ROW(0xA0), FW_ENV_ROW(0xB0),
    FW_ENV_ROW(0xC0), FW_ENV_ROW(0xD0), FW_ENV_ROW(0xE0), FW_ENV_ROW(0xF0),
};

/* A case-insensitive signature of a field name (FNV-1a over lower-cased
 * bytes): equal names have equal signatures, so comparing the bytes of two
 * names only happens when they are almost certainly equal, which keeps the
 * duplicate search cheap even against a head full of look-alike names. */
static uint32_t fw_name_signature(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++)
        h = (h ^ fw_lower(p[i])) * 16777619u;
    return h;
}

static int fw_names_equal(const unsigned char *b, const fw_header *x, const fw_header *y)
{
    uint32_t i;
    if (x->name_len != y->name_len)
        return 0;
    for (i = 0; i < x->name_len; i++)
        if (fw_lower(b[x->name_off + i]) != fw_lower(b[y->name_off + i]))
            return 0;
    return 1;
}

size_t fw_environ_size(const fw_request *req, const fw_header *headers)
{
    /* the path, and per field "HTTP_" + name + 2 separators + value + a ',' if joined */
    size_t need = req->path_len;
    uint32_t i;
    for (i = 0; i < req->num_headers; i++)
        need += 5 + headers[i].name_len + 3 + headers[i].value_len;
    return need;
}

#define FW_SIGNATURES 128  /* names whose signature is kept (on the stack) */
#define FW_SAME_NAME(i, j) (((i) >= FW_SIGNATURES || (j) >= FW_SIGNATURES || sig[i] == sig[j]) && \
                            fw_names_equal(b, &headers[i], &headers[j]))

/* What fw_write_environ knows about the names of one head. */
struct fw_names {
    const unsigned char *b;
    const fw_header *headers;
    uint32_t n;
    uint32_t sig[FW_SIGNATURES];
    unsigned char bucket_count[256];  /* names per signature bucket: 1 means surely unique */
    unsigned char emitted[FW_SIGNATURES]; /* header i got an environ key */
};

/* Is header i the first field of its name?  Only a name sharing its bucket can be repeated. */
static int fw_first_of_name(const struct fw_names *names, uint32_t i)
{
    const unsigned char *b = names->b;
    const fw_header *headers = names->headers;
    const uint32_t *sig = names->sig;
    uint32_t j;
    if (i < FW_SIGNATURES && names->n <= FW_SIGNATURES &&
        names->bucket_count[sig[i] & 0xFF] < 2)
        return 1;
    for (j = 0; j < i; j++)
        if (FW_SAME_NAME(j, i))
            return 0;
    return 1;
}

/* Environ key of header h: CONTENT_TYPE, CONTENT_LENGTH or HTTP_<NAME>. */
static size_t fw_write_key(const unsigned char *b, const fw_header *h, unsigned char *o)
{
    const unsigned char *name = b + h->name_off;
    uint32_t k;
    switch (fw_field_kind(name, h->name_len)) {
    case FW_F_CONTENT_TYPE:
        memcpy(o, "CONTENT_TYPE", 12);
        return 12;
    case FW_F_CL:
        memcpy(o, "CONTENT_LENGTH", 14);
        return 14;
    default:
        memcpy(o, "HTTP_", 5);
        for (k = 0; k < h->name_len; k++)
            o[5 + k] = fw_env_char[name[k]];
        return 5 + (size_t)h->name_len;
    }
}

/* Value of header i, with the values of later fields of its name joined by ','. */
static size_t fw_write_value(const struct fw_names *names, uint32_t i, unsigned char *o)
{
    const unsigned char *b = names->b;
    const fw_header *headers = names->headers;
    const uint32_t *sig = names->sig;
    size_t pos = headers[i].value_len;
    uint32_t k;
    memcpy(o, b + headers[i].value_off, pos);
    if (i < FW_SIGNATURES && names->n <= FW_SIGNATURES &&
        names->bucket_count[sig[i] & 0xFF] < 2)
        return pos;
    for (k = i + 1; k < names->n; k++) {
        if (FW_SAME_NAME(k, i)) {
            o[pos++] = ',';
            memcpy(o + pos, b + headers[k].value_off, headers[k].value_len);
            pos += headers[k].value_len;
        }
    }
    return pos;
}

size_t fw_write_environ(const unsigned char *b, const fw_request *req, const fw_header *headers,
                        unsigned char *o, unsigned layout, size_t *path_len, uint32_t *nkeys)
{
    struct fw_names names;
    uint32_t i, n = req->num_headers, count = 0;
    size_t pos = fw_percent_decode(b + req->path_off, req->path_len, o);
    int sep = (layout & FW_ENV_SEP_FIRST) != 0;

    *path_len = pos;
    names.b = b;
    names.headers = headers;
    names.n = n;
    memset(names.bucket_count, 0, sizeof names.bucket_count);
    for (i = 0; i < n && i < FW_SIGNATURES; i++) {
        uint32_t sig = fw_name_signature(b + headers[i].name_off, headers[i].name_len);
        names.sig[i] = sig;
        if (names.bucket_count[sig & 0xFF] < 2)
            names.bucket_count[sig & 0xFF]++;
    }

    /* keys (each followed by its value unless FW_ENV_KEYS_FIRST) */
    for (i = 0; i < n; i++) {
        const fw_header *h = &headers[i];
        /* CVE-2015-0219: a name with '_' could pose as its dash-named twin: skipped */
        int emit = fw_first_of_name(&names, i) && memchr(b + h->name_off, '_', h->name_len) == NULL;
        if (i < FW_SIGNATURES)
            names.emitted[i] = (unsigned char)emit;
        if (!emit)
            continue;
        if (sep)
            o[pos++] = '\0';
        sep = 1;
        count++;
        pos += fw_write_key(b, h, o + pos);
        if (!(layout & FW_ENV_KEYS_FIRST)) {
            o[pos++] = '\0';
            pos += fw_write_value(&names, i, o + pos);
        }
    }
    /* then the values in the same order */
    if (layout & FW_ENV_KEYS_FIRST) {
        for (i = 0; i < n; i++) {
            const fw_header *h = &headers[i];
            if (i < FW_SIGNATURES ? !names.emitted[i]
                                  : !fw_first_of_name(&names, i) ||
                                        memchr(b + h->name_off, '_', h->name_len) != NULL)
                continue;
            o[pos++] = '\0';
            pos += fw_write_value(&names, i, o + pos);
        }
    }
    *nkeys = count;
    return pos;
}

long fw_pack_environ(const char *buf, const fw_request *req, const fw_header *headers,
                     char *out, size_t cap, size_t *path_len)
{
    if (fw_environ_size(req, headers) > cap)
        return FW_ERROR;
    uint32_t nkeys;
    return (long)fw_write_environ((const unsigned char *)buf, req, headers, (unsigned char *)out,
                                  0, path_len, &nkeys);
}
