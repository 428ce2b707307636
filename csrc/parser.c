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
 * the class table of fw_internal.h.  The one check made before a line is
 * complete is the request line's method prefix (a TLS ClientHello or a uwsgi
 * packet sent to the HTTP port fails at its first byte): its bytes are spanned
 * for tchar once, also resuming at `scan_pos`, before memchr looks further.
 * A call that adds a few bytes and no LF (a head fed in small pieces) is
 * answered by fw_still_incomplete (fw_internal.h) before any set-up.
 *
 *   line 1        request line  -> method/target/version offsets (RFC 9112 3)
 *   lines 2..n    field lines   -> fw_header offsets            (RFC 9112 5)
 *   empty line    end of head   -> the semantic checks over all fields
 *                                  (Host, Transfer-Encoding, Content-Length,
 *                                  Connection, Expect, Upgrade) in the order
 *                                  of docs/parser-spec.md, then the length.
 *
 * Nothing is copied: results are offsets into the caller's buffer.  A CR
 * inside a line is looked for only once the line is rejected (every rule of
 * the request and field lines rejects a CR, so a line that passes holds none).
 *
 * The environ side (fw_pack_environ here, fw_parse_packed and fw_parse_head
 * in binding.c) turns a complete head into latin-1 CGI variables.  Repeated
 * names are joined, so fw_index_names first links every field to the next
 * one of its name: a hash table on the stack for up to FW_SMALL_FIELDS
 * fields, else a stable sort of the field indices in caller-provided scratch,
 * so no head costs more than O(L log n) however many fields it has (the old
 * per-pair search was quadratic beyond 128 fields).
 */
#include "fastwsgi.h"
#include "fw_internal.h"

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

static int fw_host_ok(const unsigned char *p, size_t n);

/* The number of DIGIT bytes p[0:n] ends with. */
static size_t fw_span_back_digits(const unsigned char *p, size_t n)
{
    size_t k = 0;
    while (k < n && FW_IS_DIGIT(p[n - 1 - k]))
        k++;
    return k;
}

static int fw_parse_request_line(const unsigned char *b, size_t start, size_t end,
                                 fw_request *req)
{
    const unsigned char *p = b + start;
    size_t n = end - start;
    const unsigned char *sp1, *sp2, *t, *v;
    size_t method_len, target_len, i, a;

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
    /* 0x21-0x7E but '#': no form of request-target has a fragment (RFC 9112 3.2) */
    if (fw_span(t, target_len, FW_C_TARGET) != target_len || memchr(t, '#', target_len) != NULL)
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
    if (method_len == 7 && memcmp(p, "CONNECT", 7) == 0) {
        /* authority-form = uri-host ":" port, the only form for CONNECT (RFC 9112 3.2.3), with a
         * host (RFC 9110 4.2.1) and a port (RFC 9110 9.3.6: there is no default); a well-formed
         * CONNECT is then refused: a WSGI server cannot hand the connection over as a tunnel
         * (RFC 9110 9.1: 501 for a method the origin server does not implement) */
        a = fw_span_back_digits(t, target_len);
        if (a == 0 || a == target_len || t[target_len - a - 1] != ':' || t[0] == ':' ||
            !fw_host_ok(t, target_len))
            return FW_E_BAD_TARGET;
        return FW_E_METHOD_NOT_IMPLEMENTED;
    }
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
        a = i;
        while (i < target_len && t[i] != '/' && t[i] != '?')
            i++;
        /* authority = uri-host [ ":" port ], the host not empty (RFC 9110 4.2.1); no userinfo
         * (RFC 9110 4.2.4) */
        if (i == a || t[a] == ':' || !fw_host_ok(t + a, i - a))
            return FW_E_BAD_TARGET;
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

/*
 * docs/parser-spec.md "Method prefix": the request line starting at `start`
 * is rejected as soon as its first non-tchar byte is in, unless that byte is
 * SP, HTAB, CR or LF.  Only bytes whose arrival trips no limit are looked at
 * (offsets below start + L and H): from the next byte on a limit trips first
 * or at the same length, and fw_find_line reports it.  While the prefix is
 * open every byte before scan_pos is a tchar, so scan_pos is where the scan
 * resumes: each byte is looked at once, however the input is split.
 */
static int fw_scan_method_prefix(const unsigned char *b, size_t len, size_t start,
                                 const fw_limits *lim, fw_request *req)
{
    uint64_t bound = (uint64_t)start + lim->max_request_line;
    size_t from = req->scan_pos, p;
    if (bound > lim->max_head_size)
        bound = lim->max_head_size;
    if (bound > len)
        bound = len;
    if (from >= bound)
        return FW_E_NONE;
    p = from + fw_span(b + from, (size_t)bound - from, FW_C_TCHAR);
    if (p < bound) {
        if (b[p] != ' ' && b[p] != '\t' && b[p] != '\r' && b[p] != '\n')
            return FW_E_BAD_METHOD;                 /* method = token (RFC 9110 9.1) */
        req->seen_request_line = FW_SEEN_METHOD;    /* the line is checked when complete */
    }
    req->scan_pos = (uint32_t)p;                    /* tchar bytes hold no LF */
    return FW_E_NONE;
}

/* ---- end-of-head checks ------------------------------------------------------ */

/* Fields the framing depends on, recognised by their lower-cased name. */
enum fw_field_kind {
    FW_F_OTHER, FW_F_HOST, FW_F_TE, FW_F_CL, FW_F_CONNECTION, FW_F_EXPECT, FW_F_UPGRADE,
    FW_F_CONTENT_TYPE, FW_F_COOKIE
};

static enum fw_field_kind fw_field_kind(const unsigned char *name, size_t n)
{
    switch (n) {
    case 4: return FW_IEQ(name, n, "host") ? FW_F_HOST : FW_F_OTHER;
    case 6:
        return FW_IEQ(name, n, "expect") ? FW_F_EXPECT : FW_IEQ(name, n, "cookie") ? FW_F_COOKIE : FW_F_OTHER;
    case 7: return FW_IEQ(name, n, "upgrade") ? FW_F_UPGRADE : FW_F_OTHER;
    case 10: return FW_IEQ(name, n, "connection") ? FW_F_CONNECTION : FW_F_OTHER;
    case 12: return FW_IEQ(name, n, "content-type") ? FW_F_CONTENT_TYPE : FW_F_OTHER;
    case 14: return FW_IEQ(name, n, "content-length") ? FW_F_CL : FW_F_OTHER;
    case 17: return FW_IEQ(name, n, "transfer-encoding") ? FW_F_TE : FW_F_OTHER;
    default: return FW_F_OTHER;
    }
}

/* IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet, the whole of p[0:n];
 * dec-octet = 0-255 without leading zeros (RFC 3986 3.2.2) */
static int fw_ipv4_ok(const unsigned char *p, size_t n)
{
    size_t i = 0, len, k;
    unsigned octet, value;
    for (octet = 0; octet < 4; octet++) {
        if (octet > 0) {
            if (i == n || p[i] != '.')
                return 0;
            i++;
        }
        len = fw_span(p + i, n - i, FW_C_DIGIT);
        if (len == 0 || len > 3 || (len > 1 && p[i] == '0'))
            return 0;
        for (value = 0, k = 0; k < len; k++)
            value = value * 10 + (unsigned)(p[i + k] - '0');
        if (value > 255)
            return 0;
        i += len;
    }
    return i == n;
}

/* IPv6address (RFC 3986 3.2.2), the whole of p[0:n]: 8 groups of 1-4 HEXDIG separated by ":",
 * at most one "::" standing for one or more zero groups (so at most 7 written groups with it), the
 * last two groups optionally written as an IPv4address. */
static int fw_ipv6_ok(const unsigned char *p, size_t n)
{
    size_t i = 0, len, groups = 0;
    int gap = 0;
    if (n >= 2 && p[0] == ':' && p[1] == ':') {
        gap = 1;
        i = 2;
    }
    while (i < n) {
        len = fw_span(p + i, n - i, FW_C_HEX);
        if (i + len < n && p[i + len] == '.') {     /* ls32 as IPv4address: must end the address */
            if (!fw_ipv4_ok(p + i, n - i))
                return 0;
            groups += 2;
            break;
        }
        if (len == 0 || len > 4)
            return 0;
        groups++;
        i += len;
        if (i == n)
            break;
        if (p[i] != ':' || i + 1 == n)              /* ":" then more */
            return 0;
        i++;
        if (p[i] == ':') {
            if (gap)
                return 0;
            gap = 1;
            i++;
        }
    }
    return gap ? groups <= 7 : groups == 8;
}

/* IP-literal = "[" ( IPv6address / IPvFuture ) "]" with the brackets stripped;
 * IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) (RFC 3986 3.2.2) */
static int fw_ip_literal_ok(const unsigned char *p, size_t n)
{
    size_t len;
    if (n > 0 && (p[0] == 'v' || p[0] == 'V')) {
        len = fw_span(p + 1, n - 1, FW_C_HEX);
        if (len == 0 || 1 + len == n || p[1 + len] != '.' || 2 + len == n)
            return 0;
        return fw_span(p + 2 + len, n - 2 - len, FW_C_IPLIT) == n - 2 - len;
    }
    return fw_ipv6_ok(p, n);
}

/* Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2); empty is allowed.
 * uri-host = IP-literal / reg-name (IPv4address is a reg-name too);
 * reg-name = *( unreserved / pct-encoded / sub-delims ); pct-encoded = "%" HEXDIG HEXDIG */
static int fw_host_ok(const unsigned char *p, size_t n)
{
    size_t i, close;
    if (n == 0)
        return 1;
    if (p[0] == '[') {
        const unsigned char *end = (const unsigned char *)memchr(p, ']', n);
        if (end == NULL)
            return 0;
        close = (size_t)(end - p);
        if (!fw_ip_literal_ok(p + 1, close - 1))
            return 0;
        i = close + 1;
    } else {
        i = 0;
        for (;;) {
            i += fw_span(p + i, n - i, FW_C_REGNAME);
            if (i == n || p[i] != '%')
                break;
            if (i + 2 >= n || !FW_HAS(p[i + 1], FW_C_HEX) || !FW_HAS(p[i + 2], FW_C_HEX))
                return 0;
            i += 3;
        }
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

/* Transfer-Encoding = #transfer-coding (RFC 9112 6.1, RFC 9110 10.1.4)
 * transfer-coding    = token *( OWS ";" OWS transfer-parameter )
 * transfer-parameter = token BWS "=" BWS ( token / quoted-string )     (RFC 9112 7)
 * One field line's value, scanned left to right (not split on ',' first: a quoted-string may hold
 * a comma); empty list elements are skipped (RFC 9110 5.6.1). */
struct fw_te_state {
    unsigned bad_syntax, chunked_count, last_is_chunked, other_count;
};

static size_t fw_skip_ows(const unsigned char *p, size_t n, size_t i)
{
    while (i < n && FW_IS_OWS(p[i]))
        i++;
    return i;
}

static void fw_te_value(const unsigned char *p, size_t n, struct fw_te_state *te)
{
    size_t i = 0, len;
    for (;;) {
        while (i < n && (p[i] == ',' || FW_IS_OWS(p[i])))
            i++;
        if (i == n)
            return;
        len = fw_span(p + i, n - i, FW_C_TCHAR);
        if (len == 0)
            goto bad;
        if (FW_IEQ(p + i, len, "chunked")) {
            te->chunked_count++;
            te->last_is_chunked = 1;
        } else {
            te->other_count++;
            te->last_is_chunked = 0;
        }
        i = fw_skip_ows(p, n, i + len);
        while (i < n && p[i] == ';') {              /* parameters */
            i = fw_skip_ows(p, n, i + 1);
            len = fw_span(p + i, n - i, FW_C_TCHAR);
            if (len == 0)
                goto bad;
            i = fw_skip_ows(p, n, i + len);
            if (i == n || p[i] != '=')
                goto bad;
            i = fw_skip_ows(p, n, i + 1);
            len = fw_token_or_quoted(p + i, n - i);
            if (len == 0)
                goto bad;
            i = fw_skip_ows(p, n, i + len);
        }
        if (i < n && p[i] != ',')
            goto bad;
    }
bad:
    te->bad_syntax = 1;
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
            fw_te_value(value, h->value_len, &te);
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

/*
 * Take the line at line_start: find its LF under the limits of "Lines" 1
 * (line limit `line_max`, reported as `line_error`; head limit `head_max`)
 * and check its terminator ("Lines" 3).  Returns the offset where its
 * content ends (line_start and scan_pos then point past the LF), or
 * FW_INCOMPLETE (scan_pos advanced) or FW_ERROR.  A CR inside the line is
 * looked for only when the line is rejected (fw_reject_line): a line that
 * passes holds none.  The limits come as values read once per call: stores
 * to *req could alias *lim, which would make the compiler reload them for
 * every line.
 */
static inline long fw_take_line(const unsigned char *b, size_t len, fw_request *req,
                                uint32_t line_max, int line_error, uint32_t head_max,
                                int allow_bare_lf)
{
    size_t start = req->line_start, scan = req->scan_pos, lf, end;
    int error = FW_E_NONE;
    int found = fw_find_line(b, len, start, &scan, line_max, start, head_max, line_error, &lf,
                             &error);
    if (found == 0) {
        req->scan_pos = (uint32_t)scan;
        return FW_INCOMPLETE;
    }
    if (found < 0)
        return fw_fail(req, error);
    end = lf;
    if (lf > start && b[lf - 1] == '\r')
        end = lf - 1;
    else if (!allow_bare_lf)
        return fw_fail(req, FW_E_BARE_LF);          /* RFC 9112 2.2 */
    req->line_start = req->scan_pos = (uint32_t)(lf + 1);
    return (long)end;
}

/* Reject the complete line b[start:end] with `error`, or with BARE_CR if it
 * holds a CR: the spec checks CR-inside first (docs/parser-spec.md "Lines" 4),
 * and every rule of the request and field lines rejects a CR, so only a
 * rejected line can hold one. */
static long fw_reject_line(const unsigned char *b, size_t start, size_t end, fw_request *req,
                           int error)
{
    if (memchr(b + start, '\r', end - start) != NULL)
        error = FW_E_BARE_CR;
    return fw_fail(req, error);
}

static FW_NOINLINE long fw_parse_lines(const unsigned char *b, size_t len, const fw_limits *lim,
                                       fw_request *req, fw_header *headers)
{
    const uint32_t head_max = lim->max_head_size, field_line_max = lim->max_header_line;
    const uint32_t max_fields = lim->max_header_count;
    const int allow_bare_lf = (lim->flags & FW_ALLOW_BARE_LF) != 0;
    int error;

    while (req->seen_request_line != FW_SEEN_LINE) {   /* leading empty lines, request line */
        size_t start = req->line_start;
        long end;
        if (req->seen_request_line == FW_SEEN_NOTHING) {
            error = fw_scan_method_prefix(b, len, start, lim, req);
            if (error != FW_E_NONE)
                return fw_fail(req, error);
        }
        end = fw_take_line(b, len, req, lim->max_request_line, FW_E_URI_TOO_LONG, head_max,
                           allow_bare_lf);
        if (end < 0)
            return end;
        if ((size_t)end == start) {                 /* RFC 9112 2.2: skip leading CRLFs */
            req->seen_request_line = FW_SEEN_NOTHING;  /* a method prefix may follow */
            continue;
        }
        req->seen_request_line = FW_SEEN_LINE;
        error = fw_parse_request_line(b, start, (size_t)end, req);
        if (error != FW_E_NONE)
            return fw_reject_line(b, start, (size_t)end, req, error);
    }
    for (;;) {                                      /* field lines, up to the empty line */
        size_t start = req->line_start;
        long end = fw_take_line(b, len, req, field_line_max, FW_E_HEADER_LINE_TOO_LONG, head_max,
                                allow_bare_lf);
        if (end < 0)
            return end;
        if ((size_t)end == start) {
            error = fw_finish_head(b, req, headers, lim);
            if (error != FW_E_NONE)
                return fw_fail(req, error);
            req->seen_request_line = FW_SEEN_ALL;
            return (long)req->line_start;
        }
        if (req->num_headers >= max_fields) {
            error = FW_E_TOO_MANY_HEADERS;
        } else {
            error = fw_check_field_line(b + start, (size_t)end - start, (uint32_t)start,
                                        &headers[req->num_headers]);
            req->num_headers++;
        }
        if (error != FW_E_NONE)
            return fw_reject_line(b, start, (size_t)end, req, error);
    }
}

long fw_parse_request(const char *buf, size_t len, const fw_limits *lim, fw_request *req,
                      fw_header *headers)
{
    const unsigned char *b = (const unsigned char *)buf;

    if (req->error != FW_E_NONE)
        return FW_ERROR;                            /* errors are sticky */
    if (len < req->line_start)
        return FW_INCOMPLETE;                       /* not the bytes of the last call: read nothing */
    if (req->seen_request_line == FW_SEEN_ALL)
        return (long)req->line_start;
    if (fw_still_incomplete(b, len, lim, req))
        return FW_INCOMPLETE;
    return fw_parse_lines(b, len, lim, req, headers);
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

/* ---- repeated names ------------------------------------------------------------------- */

/* Order of two field names: by length, then by lower-cased bytes.  Equal means
 * the same name (RFC 9110 5.1: field names are case-insensitive). */
static int fw_name_cmp(const unsigned char *b, const fw_header *x, const fw_header *y)
{
    const unsigned char *p = b + x->name_off, *q = b + y->name_off;
    uint32_t i;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    for (i = 0; i < x->name_len; i++) {
        unsigned char c = fw_lower(p[i]), d = fw_lower(q[i]);
        if (c != d)
            return c < d ? -1 : 1;
    }
    return 0;
}

#define FW_SORT_RUN 8u  /* runs sorted by insertion before merging */

/* Sort the field indices 0..n-1 by name, stably (equal names keep arrival
 * order).  `a` and `t` hold n words each; returns the one holding the result. */
static uint32_t *fw_sort_names(const unsigned char *b, const fw_header *headers, uint32_t n,
                               uint32_t *a, uint32_t *t)
{
    uint32_t i, j, width;
    for (i = 0; i < n; i++) {                       /* insertion sort of each run */
        uint32_t run_start = i - i % FW_SORT_RUN;
        uint32_t x = i;
        for (j = i; j > run_start && fw_name_cmp(b, &headers[a[j - 1]], &headers[x]) > 0; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
    for (width = FW_SORT_RUN; width < n; width *= 2) {  /* bottom-up merges, a <-> t */
        uint32_t *swap;
        for (i = 0; i < n; i += 2 * width) {
            uint32_t mid = n - i > width ? i + width : n;
            uint32_t end = n - i > 2 * width ? i + 2 * width : n;
            uint32_t l = i, r = mid, k = i;
            while (l < mid && r < end)              /* <= keeps the left (earlier) one first */
                t[k++] = fw_name_cmp(b, &headers[a[l]], &headers[a[r]]) <= 0 ? a[l++] : a[r++];
            while (l < mid)
                t[k++] = a[l++];
            while (r < end)
                t[k++] = a[r++];
        }
        swap = a;
        a = t;
        t = swap;
    }
    return a;
}

size_t fw_names_scratch_words(uint32_t n)
{
    return 2 * (size_t)n;
}

/* A hash of a field name that equal names (case-insensitively) share: eight
 * bytes at a time, each byte OR 0x20 (lower-cases letters; it also pairs a few
 * other bytes, which only costs a comparison). */
static uint64_t fw_name_hash(const unsigned char *p, size_t n)
{
    const uint64_t fold = UINT64_C(0x2020202020202020), mul = UINT64_C(0x9E3779B97F4A7C15);
    uint64_t h = n * mul, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ (w | fold)) * mul;
        h ^= h >> 29;
    }
    if (i < n) {
        w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ (w | fold)) * mul;
        h ^= h >> 29;
    }
    return h;
}

#define FW_SMALL_FIELDS 64u     /* heads with at most this many fields use a hash table... */
#define FW_SMALL_SLOTS 128u     /* ...of this many slots on the stack (load <= 1/2) */

/* fw_index_names for n <= FW_SMALL_FIELDS: one open-addressing lookup per
 * field.  Returns 0 if names with equal hashes but different bytes show up more
 * than n times (only a crafted head does that): the caller then sorts. */
static int fw_index_small(const unsigned char *b, const fw_header *headers, uint32_t n,
                          uint32_t *next)
{
    unsigned char slot_field[FW_SMALL_SLOTS];  /* 1 + first field of the slot's name, 0 = empty */
    unsigned char last[FW_SMALL_FIELDS];       /* per first field: the last field of its name */
    uint64_t hash[FW_SMALL_FIELDS];
    uint32_t i, collisions = 0;
    memset(slot_field, 0, sizeof slot_field);
    for (i = 0; i < n; i++) {
        const fw_header *h = &headers[i];
        uint64_t x = fw_name_hash(b + h->name_off, h->name_len);
        uint32_t slot = (uint32_t)(x >> 32) & (FW_SMALL_SLOTS - 1);
        hash[i] = x;
        for (;;) {
            uint32_t f = slot_field[slot];
            if (f == 0) {                           /* a new name */
                slot_field[slot] = (unsigned char)(i + 1);
                last[i] = (unsigned char)i;
                /* CVE-2015-0219: a name with '_' could pose as its dash-named twin: no key */
                next[i] = memchr(b + h->name_off, '_', h->name_len) != NULL ? FW_NAME_NO_KEY : 0;
                break;
            }
            f--;
            if (hash[f] == x) {
                if (fw_name_cmp(b, &headers[f], h) == 0) {  /* a repeated name */
                    next[last[f]] |= i + 1;
                    last[f] = (unsigned char)i;
                    next[i] = FW_NAME_NO_KEY;
                    break;
                }
                if (++collisions > n)
                    return 0;
            }
            slot = (slot + 1) & (FW_SMALL_SLOTS - 1);
        }
    }
    return 1;
}

/*
 * Fill next[0:n] for the fields of a complete head: the low bits hold
 * 1 + the index of the next field with the same name (0 for the last one),
 * FW_NAME_NO_KEY is set on every field that gets no environ key of its own
 * (a repeated name, or a name with '_').  `scratch` holds
 * fw_names_scratch_words(n) words; `next` is part of it.  A head of up to
 * FW_SMALL_FIELDS fields (the usual case) takes one hash-table lookup per
 * field; larger ones (or crafted hash collisions) one stable sort and a pass
 * over neighbours: O(L log n) for L bytes of names, whatever the names.
 */
uint32_t *fw_index_names(const unsigned char *b, const fw_header *headers, uint32_t n,
                         uint32_t *scratch)
{
    uint32_t *a = scratch, *t = scratch + n, *sorted, *next;
    uint32_t k = 0;
    if (n <= FW_SMALL_FIELDS && fw_index_small(b, headers, n, scratch))
        return scratch;
    sorted = fw_sort_names(b, headers, n, a, t);
    next = sorted == a ? t : a;
    while (k < n) {
        uint32_t first = sorted[k], end = k + 1;
        /* CVE-2015-0219: a name with '_' could pose as its dash-named twin: no key */
        uint32_t no_key = memchr(b + headers[first].name_off, '_', headers[first].name_len) != NULL
                          ? FW_NAME_NO_KEY : 0;
        while (end < n && fw_name_cmp(b, &headers[sorted[end - 1]], &headers[sorted[end]]) == 0)
            end++;
        for (; k < end; k++)
            next[sorted[k]] = (k + 1 < end ? sorted[k + 1] + 1 : 0) |
                              (sorted[k] == first ? no_key : FW_NAME_NO_KEY);
    }
    return next;
}

/* Without scratch (fw_pack_environ with a tight buffer and many fields): the
 * same facts for field i by comparing with every other field, O(n) each. */
static uint32_t fw_next_slowly(const unsigned char *b, const fw_header *headers, uint32_t n,
                               uint32_t i)
{
    uint32_t j, word = 0;
    for (j = 0; j < i; j++)
        if (fw_name_cmp(b, &headers[j], &headers[i]) == 0) {
            word = FW_NAME_NO_KEY;
            break;
        }
    if (memchr(b + headers[i].name_off, '_', headers[i].name_len) != NULL)
        word = FW_NAME_NO_KEY;
    for (j = i + 1; j < n; j++)
        if (fw_name_cmp(b, &headers[j], &headers[i]) == 0)
            return word | (j + 1);
    return word;
}

/* ---- environ items ------------------------------------------------------------ */

int fw_env_host_of(const unsigned char *b, const fw_request *req, const fw_header *headers,
                   fw_env_host *host)
{
    const unsigned char *t = b + req->target_off, *colon;
    uint32_t i;
    if (t[0] == '/' || (t[0] == '*' && req->target_len == 1))
        return 0;
    /* absolute-form: the scheme holds no ':', and the path starts where the authority ends */
    colon = (const unsigned char *)memchr(t, ':', req->target_len);
    host->off = (uint32_t)(colon - b) + 3;
    host->len = req->path_off - host->off;
    for (i = 0; i < req->num_headers; i++)
        if (fw_field_kind(b + headers[i].name_off, headers[i].name_len) == FW_F_HOST)
            break;                                  /* the only one: DUPLICATE_HOST otherwise */
    host->field = i;
    return 1;
}

size_t fw_environ_size(const fw_request *req, const fw_header *headers, const fw_env_host *host)
{
    /* the path, and per field "HTTP_" + name + 2 separators + value + a ',' or "; " if joined */
    size_t need = req->path_len;
    uint32_t i;
    for (i = 0; i < req->num_headers; i++)
        need += 5 + headers[i].name_len + 4 + headers[i].value_len;
    if (host != NULL)
        need += 9 + 3 + (size_t)host->len;
    return need;
}

size_t fw_write_path(const unsigned char *b, const fw_request *req, unsigned char *o)
{
    return fw_percent_decode(b + req->path_off, req->path_len, o);
}

/* fw_env_char over eight name bytes at once (SWAR; names are tchar, so every
 * byte is below 0x80): 'a'-'z' -> 'A'-'Z', '-' -> '_'. */
static uint64_t fw_env_word(uint64_t w)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80, lows = ones * 0x7F;
    uint64_t ge_a = w + ones * (0x80 - 'a');        /* high bit: byte >= 'a' */
    uint64_t gt_z = w + ones * (0x80 - 'z' - 1);    /* high bit: byte > 'z' */
    uint64_t lower = ge_a & ~gt_z & highs;
    uint64_t x = w ^ (ones * '-');                  /* zero byte where w has '-' */
    uint64_t dash = ~(((x & lows) + lows) | x) & highs;
    return w ^ (lower >> 2) ^ ((dash >> 7) * ('-' ^ '_'));
}

size_t fw_write_key(const unsigned char *b, const fw_header *h, unsigned char *o)
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
        for (k = 0; k + 8 <= h->name_len; k += 8) {
            uint64_t w;
            memcpy(&w, name + k, 8);
            w = fw_env_word(w);
            memcpy(o + 5 + k, &w, 8);
        }
        for (; k < h->name_len; k++)
            o[5 + k] = fw_env_char[name[k]];
        return 5 + (size_t)h->name_len;
    }
}

size_t fw_write_value(const unsigned char *b, const fw_header *headers, const uint32_t *next,
                      uint32_t i, unsigned char *o)
{
    size_t pos = headers[i].value_len;
    uint32_t k = next[i] & ~FW_NAME_NO_KEY;
    int cookie = k != 0 && fw_field_kind(b + headers[i].name_off, headers[i].name_len) == FW_F_COOKIE;
    memcpy(o, b + headers[i].value_off, pos);
    while (k != 0) {                                /* the later fields of this name, in order */
        const fw_header *h = &headers[k - 1];
        if (cookie)                                 /* RFC 9113 8.2.3: ',' would merge two cookies */
            o[pos++] = ';', o[pos++] = ' ';
        else
            o[pos++] = ',';
        memcpy(o + pos, b + h->value_off, h->value_len);
        pos += h->value_len;
        k = next[k - 1] & ~FW_NAME_NO_KEY;
    }
    return pos;
}

/* fw_pack_environ indexes up to this many fields in scratch on its stack, more in the room `out`
 * has after fw_environ_size() bytes (8 bytes per field; the Python layer gives 8 * head + 128).
 * Only with neither (over 256 fields and a tight `out`) does it fall back to comparing each field
 * with the others: correct, but O(n) per field. */
#define FW_ENV_STACK_FIELDS 256u

long fw_pack_environ(const char *buf, const fw_request *req, const fw_header *headers,
                     char *out, size_t cap, size_t *path_len)
{
    const unsigned char *b = (const unsigned char *)buf;
    unsigned char *o = (unsigned char *)out;
    uint32_t stack[2 * FW_ENV_STACK_FIELDS], one[1];
    uint32_t *scratch = NULL, *next = NULL, i, n = req->num_headers, host_field = UINT32_MAX;
    fw_env_host host;
    int has_host = fw_env_host_of(b, req, headers, &host);
    size_t size = fw_environ_size(req, headers, has_host ? &host : NULL), pos;
    int first = 1;

    if (size > cap)
        return FW_ERROR;
    if (n <= FW_ENV_STACK_FIELDS) {
        scratch = stack;
    } else {                                        /* room after the environ, word-aligned */
        uintptr_t at = ((uintptr_t)(o + size) + 3u) & ~(uintptr_t)3u;
        if (at - (uintptr_t)o <= cap && (cap - (at - (uintptr_t)o)) / 4 >= fw_names_scratch_words(n))
            scratch = (uint32_t *)(void *)(o + (at - (uintptr_t)o));
    }
    if (scratch != NULL)
        next = fw_index_names(b, headers, n, scratch);

    if (has_host)
        host_field = host.field;
    pos = fw_write_path(b, req, o);
    *path_len = pos;
    for (i = 0; i < n; i++) {
        const uint32_t *links = next;
        uint32_t at = i;
        if (links == NULL) {                        /* no scratch: O(n) per field */
            one[0] = fw_next_slowly(b, headers, n, i);
            links = one;
            at = 0;
        }
        if (links[at] & FW_NAME_NO_KEY)
            continue;
        if (!first)
            o[pos++] = '\0';
        first = 0;
        pos += fw_write_key(b, &headers[i], o + pos);
        o[pos++] = '\0';
        if (i == host_field) {                      /* the Host field (never repeated) */
            memcpy(o + pos, b + host.off, host.len);
            pos += host.len;
        } else if (links == one) {                  /* fw_write_value follows next[] links */
            size_t k;
            int cookie = fw_field_kind(b + headers[i].name_off, headers[i].name_len) == FW_F_COOKIE;
            memcpy(o + pos, b + headers[i].value_off, headers[i].value_len);
            pos += headers[i].value_len;
            while ((one[0] & ~FW_NAME_NO_KEY) != 0) {
                k = (one[0] & ~FW_NAME_NO_KEY) - 1;
                if (cookie)
                    o[pos++] = ';', o[pos++] = ' ';
                else
                    o[pos++] = ',';
                memcpy(o + pos, b + headers[k].value_off, headers[k].value_len);
                pos += headers[k].value_len;
                one[0] = fw_next_slowly(b, headers, n, (uint32_t)k);
            }
        } else {
            pos += fw_write_value(b, headers, next, i, o + pos);
        }
    }
    if (has_host && host.field == n) {              /* no Host field: HTTP_HOST of its own */
        if (!first)
            o[pos++] = '\0';
        memcpy(o + pos, "HTTP_HOST", 9);
        pos += 9;
        o[pos++] = '\0';
        memcpy(o + pos, b + host.off, host.len);
        pos += host.len;
    }
    return (long)pos;
}
