/*
 * check_request.c - check_request (checks.h): fw_parse_request,
 * fw_pack_environ and fw_parse_packed over one input, whole, per prefix, byte
 * by byte and split, against each other and against independent oracles.
 */
#include <stdlib.h>

#include "../fw_binding.h"
#include "checks_util.h"
#include "guard.h"

static guard_buf g_input, g_headers, g_output;

typedef struct req_result {
    long ret;
    fw_request req;
    fw_header *headers;  /* copy of req.num_headers entries when ret >= 0 */
} req_result;

static void req_result_free(req_result *r)
{
    free(r->headers);
    r->headers = NULL;
}

/*
 * Feed data through one fresh state: data[0:cuts[i]] for each cut, then
 * data[0:len], stopping at the first answer that is not FW_INCOMPLETE.  Each
 * call sees its bytes at a new address, read-only and ending at the guard
 * page, as a caller passing a new bytes object would.
 */
static void parse_pieces(const unsigned char *data, size_t len, const size_t *cuts,
                         size_t ncuts, const fw_limits *lim, req_result *out)
{
    fw_header *headers = (fw_header *)(void *)guard_blank(
        &g_headers, (size_t)lim->max_header_count * sizeof(fw_header), 0xA5);
    fw_request_init(&out->req);
    out->headers = NULL;
    out->ret = FW_INCOMPLETE;
    size_t n = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        n = i < ncuts ? cuts[i] : len;
        const char *buf = (const char *)guard_fill(&g_input, data, n, 1);
        out->ret = fw_parse_request(buf, n, lim, &out->req, headers);
        if (out->ret != FW_INCOMPLETE)
            break;
    }
    if (out->ret == FW_ERROR) {  /* errors are sticky */
        int error = out->req.error;
        const char *buf = (const char *)guard_fill(&g_input, data, n, 1);
        long again = fw_parse_request(buf, n, lim, &out->req, headers);
        if (again != FW_ERROR || out->req.error != error)
            fail("fw_parse_request: error %s not sticky: the next call gave %s",
                 fw_error_name(error), outcome_text(again, out->req.error));
    }
    if (out->ret >= 0) {  /* a complete head stays complete: more bytes change nothing */
        fw_request before = out->req;
        const char *buf = (const char *)guard_fill(&g_input, data, len, 1);
        long again = fw_parse_request(buf, len, lim, &out->req, headers);
        if (again != out->ret || memcmp(&before, &out->req, sizeof before) != 0)
            fail("fw_parse_request: called again after completing (%ld) gave %s or changed the state",
                 out->ret, outcome_text(again, out->req.error));
    }
    if (out->ret >= 0 && out->req.num_headers <= lim->max_header_count) {
        out->headers = malloc(out->req.num_headers * sizeof(fw_header) + 1);
        if (out->headers == NULL)
            abort();
        memcpy(out->headers, headers, out->req.num_headers * sizeof(fw_header));
    }
}

static void parse_whole(const unsigned char *data, size_t len, const fw_limits *lim, req_result *out)
{
    parse_pieces(data, len, NULL, 0, lim, out);
}

/* Same answer?  On success every public result field and header must match. */
static int same_request(const req_result *a, const req_result *b)
{
    if (a->ret != b->ret)
        return 0;
    if (a->ret == FW_ERROR)
        return a->req.error == b->req.error && a->req.status == b->req.status;
    if (a->ret == FW_INCOMPLETE)
        return 1;
    if (!same_results(&a->req, &b->req))
        return 0;
    if (a->headers == NULL || b->headers == NULL)
        return a->headers == b->headers;
    return memcmp(a->headers, b->headers, a->req.num_headers * sizeof(fw_header)) == 0;
}

/* Percent-decode (docs/parser-spec.md "Percent-decoding of the path"). */
static void percent_decode(const unsigned char *s, size_t len, bytes *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            bytes_putc(out, (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
            i += 2;
        } else {
            bytes_putc(out, s[i]);
        }
    }
}

/*
 * What fw_pack_environ must write, built independently from the header
 * array (docs/parser-spec.md "Environ variables"): PATH_INFO, then the
 * environ items "\0"-separated, keys in order of first occurrence.  Appends
 * to `out`.  Layouts: ENV_PAIRS is fw_pack_environ's KEY "\0" VALUE items
 * separated by "\0"; ENV_PACKED (rearranged by packed_oracle into
 * fw_parse_packed's layout, fw_binding.h): a "\0" before each key, all keys
 * first, then a "\0" before each value.
 */
enum env_layout { ENV_PAIRS, ENV_PACKED };

static void environ_oracle(const unsigned char *buf, const fw_request *req,
                           const fw_header *headers, enum env_layout layout, bytes *out,
                           size_t *path_len, size_t *nkeys_out)
{
    enum { MAX_KEYS = CHECKS_MAX_HEADER_COUNT };
    static bytes keys[MAX_KEYS], values[MAX_KEYS];
    size_t nkeys = 0, path_start = out->len;

    percent_decode(buf + req->path_off, req->path_len, out);
    *path_len = out->len - path_start;
    for (uint32_t i = 0; i < req->num_headers && nkeys < MAX_KEYS; i++) {
        const unsigned char *name = buf + headers[i].name_off;
        size_t name_len = headers[i].name_len;
        if (memchr(name, '_', name_len) != NULL)
            continue;  /* CVE-2015-0219: could spoof a dash-named header */
        bytes key = {0};
        if (equal_nocase(name, name_len, "content-type")) {
            bytes_put(&key, "CONTENT_TYPE", 12);
        } else if (equal_nocase(name, name_len, "content-length")) {
            bytes_put(&key, "CONTENT_LENGTH", 14);
        } else {
            bytes_put(&key, "HTTP_", 5);
            for (size_t k = 0; k < name_len; k++)
                bytes_putc(&key, name[k] == '-' ? '_' : (unsigned char)upper(name[k]));
        }
        size_t j = 0;
        while (j < nkeys && !(keys[j].len == key.len && memcmp(keys[j].p, key.p, key.len) == 0))
            j++;
        if (j == nkeys) {
            keys[nkeys] = key;
            values[nkeys].len = 0;
            nkeys++;
        } else {
            if (key.len == 11 && memcmp(key.p, "HTTP_COOKIE", 11) == 0)
                bytes_put(&values[j], "; ", 2);  /* RFC 9113 §8.2.3: ',' would merge two cookies */
            else
                bytes_putc(&values[j], ',');
            bytes_free(&key);
        }
        bytes_put(&values[j], buf + headers[i].value_off, headers[i].value_len);
    }
    /* an absolute-form target's authority is HTTP_HOST, not the Host field (RFC 9112 §3.2.2) */
    const unsigned char *t = buf + req->target_off;
    if (t[0] != '/' && !(req->target_len == 1 && t[0] == '*') && nkeys < MAX_KEYS) {
        size_t a = 0, e;
        while (a + 3 <= req->target_len && memcmp(t + a, "://", 3) != 0)
            a++;
        a += 3;
        for (e = a; e < req->target_len && t[e] != '/' && t[e] != '?'; e++)
            ;
        size_t j = 0;
        while (j < nkeys && !(keys[j].len == 9 && memcmp(keys[j].p, "HTTP_HOST", 9) == 0))
            j++;
        if (j == nkeys) {  /* no Host field: one more key, after those of the fields */
            bytes key = {0};
            bytes_put(&key, "HTTP_HOST", 9);
            keys[nkeys++] = key;
        }
        values[j].len = 0;
        bytes_put(&values[j], t + a, e - a);
    }
    for (size_t j = 0; j < nkeys; j++) {
        if (layout == ENV_PAIRS) {
            if (j > 0)
                bytes_putc(out, '\0');
            bytes_put(out, keys[j].p, keys[j].len);
            bytes_putc(out, '\0');
            bytes_put(out, values[j].p, values[j].len);
        } else {
            bytes_putc(out, '\0');
            bytes_put(out, keys[j].p, keys[j].len);
        }
    }
    for (size_t j = 0; j < nkeys; j++) {
        if (layout == ENV_PACKED) {
            bytes_putc(out, '\0');
            bytes_put(out, values[j].p, values[j].len);
        }
        bytes_free(&keys[j]);
        bytes_free(&values[j]);
    }
    *nkeys_out = nkeys;
}

static void check_pack_environ(const unsigned char *data, const req_result *r)
{
    size_t head_len = (size_t)r->ret;
    /* the head alone, read-only, ending at the guard page: nothing past it may be read */
    const char *buf = (const char *)guard_fill(&g_input, data, head_len, 1);
    bytes want = {0};
    size_t want_path_len = 0;
    size_t nkeys;
    environ_oracle(data, &r->req, r->headers, ENV_PAIRS, &want, &want_path_len, &nkeys);

    size_t cap = 2 * head_len + 64;  /* documented to always suffice */
    size_t path_len = (size_t)-1;
    char *out = (char *)guard_blank(&g_output, cap, 0xEE);
    long n = fw_pack_environ(buf, &r->req, r->headers, out, cap, &path_len);
    if (n < 0 || (size_t)n > cap) {
        fail("fw_pack_environ: returned %ld with cap %zu (2 * head + 64)", n, cap);
        goto done;
    }
    if (path_len != want_path_len || !same_bytes(out, (size_t)n, want.p, want.len)) {
        fail("fw_pack_environ: wrote %s (path_len %zu), expected %s (path_len %zu)",
             show(out, (size_t)n), path_len, show(want.p, want.len), want_path_len);
        goto done;
    }
    /* Smaller buffers (out + cap is the guard page): below the result the call
     * must refuse; at exactly the result it may refuse (the function may check
     * a worst-case bound up front) or write the same bytes. */
    for (size_t small_cap = 0; small_cap <= (size_t)n; small_cap++) {
        if (!cap_sampled(small_cap, (size_t)n, 0))
            continue;
        out = (char *)guard_blank(&g_output, small_cap, 0xEE);
        long small = fw_pack_environ(buf, &r->req, r->headers, out, small_cap, &path_len);
        if (small_cap < (size_t)n ? small != FW_ERROR
                                  : small != FW_ERROR && (small != n || !same_bytes(out, (size_t)n, want.p, want.len)))
            fail("fw_pack_environ: cap %zu (result %ld) gave %ld", small_cap, n, small);
    }
done:
    bytes_free(&want);
}

/* ---- fw_parse_packed (fw_binding.h): the one call behind the Python parser ---- */

typedef struct packed_result {
    long long ret;
    fw_request req;
    bytes out;  /* the packed bytes when ret >= 0 */
} packed_result;

/* What fw_parse_packed must write for a complete head (fw_binding.h): the
 * environ oracle's PATH ( \0 KEY )* ( \0 VALUE )* rearranged as
 * ( VALUE \0 )* METHOD \0 TARGET \0 VERSION \0 QUERY \0 PATH \0 KEY ( \0 KEY )*. */
static void packed_oracle(const unsigned char *data, const req_result *r, bytes *out, size_t *path_start,
                          size_t *path_len, size_t *nkeys)
{
    const fw_request *q = &r->req;
    bytes env = {0};
    size_t field_start[2 * CHECKS_MAX_HEADER_COUNT + 1], field_len[2 * CHECKS_MAX_HEADER_COUNT + 1];
    environ_oracle(data, q, r->headers, ENV_PACKED, &env, path_len, nkeys);
    /* the 2 * nkeys fields after the path, each after a NUL (keys and values hold none) */
    size_t at = *path_len, count = 0;
    while (at < env.len && count < 2 * *nkeys) {
        const unsigned char *nul = memchr(env.p + at + 1, '\0', env.len - at - 1);
        size_t end = nul != NULL ? (size_t)(nul - env.p) : env.len;
        field_start[count] = at + 1;
        field_len[count] = end - at - 1;
        count++;
        at = end;
    }
    for (size_t j = 0; j < *nkeys; j++) {
        bytes_put(out, env.p + field_start[*nkeys + j], field_len[*nkeys + j]);
        bytes_putc(out, '\0');
    }
    bytes_put(out, data + q->method_off, q->method_len);
    bytes_putc(out, '\0');
    bytes_put(out, data + q->target_off, q->target_len);
    bytes_putc(out, '\0');
    bytes_put(out, data + q->version_off, 8);
    bytes_putc(out, '\0');
    bytes_put(out, data + q->query_off, q->query_len);
    bytes_putc(out, '\0');
    *path_start = out->len;
    bytes_put(out, env.p, *path_len);
    bytes_putc(out, '\0');
    for (size_t j = 0; j < *nkeys; j++) {
        if (j > 0)
            bytes_putc(out, '\0');
        bytes_put(out, env.p + field_start[j], field_len[j]);
    }
    bytes_free(&env);
}

/* Like parse_pieces, through fw_parse_packed with an output of `cap` bytes
 * ending at the guard page ("fresh" on the first call only). */
static void packed_pieces(const unsigned char *data, size_t len, const size_t *cuts, size_t ncuts,
                          const fw_limits *lim, size_t cap, packed_result *out)
{
    fw_header *headers = (fw_header *)(void *)guard_blank(
        &g_headers, (size_t)lim->max_header_count * sizeof(fw_header), 0xA5);
    memset(&out->req, 0x5A, sizeof out->req);  /* fresh=1 must initialise it */
    out->ret = FW_INCOMPLETE;
    out->out.len = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t n = i < ncuts ? cuts[i] : len;
        const char *buf = (const char *)guard_fill(&g_input, data, n, 1);
        char *dst = (char *)guard_blank(&g_output, cap, 0xEE);
        out->ret = fw_parse_packed(buf, n, lim, &out->req, headers, dst, cap, i == 0);
        if (out->ret != FW_INCOMPLETE) {
            if (out->ret >= 0 && (out->ret & 0xFFFFFFFF) <= (long long)cap)
                bytes_put(&out->out, dst, (size_t)(out->ret & 0xFFFFFFFF));
            break;
        }
    }
}

static void check_parse_packed(const unsigned char *data, size_t len, const fw_limits *lim,
                               const req_result *whole, const size_t *cuts, size_t ncuts,
                               unsigned opts, size_t split)
{
    size_t cap = 8 * len + 128;  /* 8 * head length + 128 always suffices (fw_binding.h) */
    packed_result got = {0}, other = {0};
    bytes want = {0};
    size_t path_start = 0, path_len = 0, nkeys = 0;

    packed_pieces(data, len, NULL, 0, lim, cap, &got);
    if (whole->ret < 0) {
        if (got.ret != whole->ret || (got.ret == FW_ERROR && got.req.error != whole->req.error))
            fail("fw_parse_packed: gave %lld (%s), fw_parse_request gave %s", got.ret,
                 fw_error_name(got.req.error), outcome_text(whole->ret, whole->req.error));
        goto done;
    }
    packed_oracle(data, whole, &want, &path_start, &path_len, &nkeys);
    if (got.ret < 0) {
        fail("fw_parse_packed: gave %lld with cap %zu, fw_parse_request gave %ld", got.ret, cap, whole->ret);
        goto done;
    }
    unsigned long long info = (unsigned long long)got.ret >> 32;
    unsigned long long want_info = (whole->req.flags & FW_PACKED_FLAGS_MASK) |
                                   (unsigned long long)whole->req.version_minor << FW_PACKED_MINOR_SHIFT |
                                   (whole->req.content_length >= 0 ? FW_PACKED_HAS_LENGTH : 0);
    if ((path_len > 0 && memchr(want.p + path_start, '\0', path_len)) || nkeys > FW_PACKED_MAX_KEYS)
        want_info |= FW_PACKED_USE_ENVIRON;
    else
        want_info |= (unsigned long long)nkeys << FW_PACKED_KEYS_SHIFT;
    if (!same_bytes(got.out.p, got.out.len, want.p, want.len) || info != want_info ||
        got.req.line_start != (uint32_t)whole->ret || got.req.content_length != whole->req.content_length) {
        fail("fw_parse_packed: wrote %s info 0x%llx head %u, expected %s info 0x%llx head %ld",
             show(got.out.p, got.out.len), info, got.req.line_start, show(want.p, want.len), want_info,
             whole->ret);
        goto done;
    }
    /* resumed: split at `split` (and byte by byte) through one state */
    packed_pieces(data, len, &split, 1, lim, cap, &other);
    if (other.ret != got.ret || !same_bytes(other.out.p, other.out.len, want.p, want.len))
        fail("fw_parse_packed: split at %zu gave %lld, whole gave %lld", split, other.ret, got.ret);
    if (opts & CHECK_BYTEWISE) {
        packed_pieces(data, len, cuts, ncuts, lim, cap, &other);
        if (other.ret != got.ret || !same_bytes(other.out.p, other.out.len, want.p, want.len))
            fail("fw_parse_packed: byte by byte gave %lld, whole gave %lld", other.ret, got.ret);
    }
    /* smaller outputs: refused below the packed length (nothing written past
     * cap); the head stays parsed, so a second call with room re-packs it */
    size_t n = want.len;
    for (size_t small = 0; small <= n; small++) {
        if (!cap_sampled(small, n, 0))
            continue;
        packed_pieces(data, len, NULL, 0, lim, small, &other);
        if (other.ret == FW_PACKED_TOO_SMALL) {
            fw_header *headers = (fw_header *)(void *)(guard_data(&g_headers));
            char *dst = (char *)guard_blank(&g_output, cap, 0xEE);
            const char *buf = (const char *)guard_fill(&g_input, data, len, 1);
            long long again = fw_parse_packed(buf, len, lim, &other.req, headers, dst, cap, 0);
            if (again != got.ret || !same_bytes(dst, (size_t)(again & 0xFFFFFFFF), want.p, want.len))
                fail("fw_parse_packed: re-pack after FW_PACKED_TOO_SMALL (cap %zu) gave %lld", small, again);
        } else if (small < n || other.ret != got.ret ||
                   !same_bytes(other.out.p, other.out.len, want.p, want.len)) {
            fail("fw_parse_packed: cap %zu (packed length %zu) gave %lld", small, n, other.ret);
        }
    }
done:
    bytes_free(&got.out);
    bytes_free(&other.out);
    bytes_free(&want);
}

/* Properties of one answer on its own (docs/parser-spec.md, csrc/fastwsgi.h). */
static void validate_request(const unsigned char *data, size_t len, const fw_limits *lim,
                             const req_result *r)
{
    const fw_request *q = &r->req;
    if (r->ret == FW_INCOMPLETE)
        return;
    if (r->ret == FW_ERROR) {
        check_request_error("fw_parse_request", q->error, q->status);
        return;
    }
    if (r->ret <= 0 || (size_t)r->ret > len) {
        fail("fw_parse_request: returned %ld for %zu bytes", r->ret, len);
        return;
    }
    size_t n = (size_t)r->ret;
    if (data[n - 1] != '\n')
        fail("fw_parse_request: head of %zu bytes does not end with LF", n);
    if (n > lim->max_head_size)
        fail("fw_parse_request: head of %zu bytes exceeds max_head_size %u", n, lim->max_head_size);
    if (q->error != FW_E_NONE)
        fail("fw_parse_request: success but error = %d", q->error);
    if (q->num_headers > lim->max_header_count || r->headers == NULL) {
        fail("fw_parse_request: num_headers %u > max_header_count %u", q->num_headers,
             lim->max_header_count);
        return;
    }
    if (q->flags & ~0xfu)
        fail("fw_parse_request: unknown flags 0x%x", q->flags);
    if (q->content_length < -1)
        fail("fw_parse_request: content_length %lld", (long long)q->content_length);
    if ((q->flags & FW_REQ_CHUNKED) && q->content_length != -1)
        fail("fw_parse_request: chunked with content_length %lld", (long long)q->content_length);

    /* request line pieces (RFC 9112 §3) */
    if (q->method_len == 0 || !in_range(q->method_off, q->method_len, n)) {
        fail("fw_parse_request: method [%u,+%u) outside head of %zu", q->method_off, q->method_len, n);
        return;
    }
    for (uint32_t i = 0; i < q->method_len; i++)
        if (!is_tchar(data[q->method_off + i]))
            fail("fw_parse_request: method %s is not a token", show(data + q->method_off, q->method_len));
    if (q->target_len == 0 || !in_range(q->target_off, q->target_len, n)) {
        fail("fw_parse_request: target [%u,+%u) outside head of %zu", q->target_off, q->target_len, n);
        return;
    }
    for (uint32_t i = 0; i < q->target_len; i++)
        if (data[q->target_off + i] < 0x21 || data[q->target_off + i] > 0x7e)
            fail("fw_parse_request: target byte 0x%02x accepted", data[q->target_off + i]);
    uint64_t target_end = (uint64_t)q->target_off + q->target_len;
    if (q->path_len > 0 && (q->path_off < q->target_off || !in_range(q->path_off, q->path_len, target_end)))
        fail("fw_parse_request: path [%u,+%u) outside target", q->path_off, q->path_len);
    if (q->query_len > 0 &&
        (q->query_off <= q->target_off || !in_range(q->query_off, q->query_len, target_end) ||
         data[q->query_off - 1] != '?'))
        fail("fw_parse_request: query [%u,+%u) outside target or not after '?'", q->query_off, q->query_len);
    if (!in_range(q->version_off, 8, n) || memcmp(data + q->version_off, "HTTP/1.", 7) != 0 ||
        q->version_major != 1 || data[q->version_off + 7] - '0' != q->version_minor)
        fail("fw_parse_request: version at %u (%u.%u) does not match the bytes", q->version_off,
             q->version_major, q->version_minor);

    /* field lines (RFC 9112 §5) */
    int has_content_length = 0;
    for (uint32_t i = 0; i < q->num_headers; i++) {
        const fw_header *h = &r->headers[i];
        if (h->name_len == 0 || !in_range(h->name_off, h->name_len, n) ||
            !in_range(h->value_off, h->value_len, n) || data[h->name_off + h->name_len] != ':') {
            fail("fw_parse_request: header %u name [%u,+%u) value [%u,+%u) out of range", i,
                 h->name_off, h->name_len, h->value_off, h->value_len);
            return;
        }
        for (uint32_t k = 0; k < h->name_len; k++)
            if (!is_tchar(data[h->name_off + k]))
                fail("fw_parse_request: header name %s is not a token", show(data + h->name_off, h->name_len));
        for (uint32_t k = 0; k < h->value_len; k++)
            if (!is_field_byte(data[h->value_off + k]))
                fail("fw_parse_request: header value byte 0x%02x accepted", data[h->value_off + k]);
        if (h->value_len > 0) {
            unsigned char first = data[h->value_off], last = data[h->value_off + h->value_len - 1];
            if (first == ' ' || first == '\t' || last == ' ' || last == '\t')
                fail("fw_parse_request: header value %s not trimmed", show(data + h->value_off, h->value_len));
        }
        if (equal_nocase(data + h->name_off, h->name_len, "content-length"))
            has_content_length = 1;
    }
    if ((q->content_length >= 0) != has_content_length)
        fail("fw_parse_request: content_length %lld but Content-Length field %s",
             (long long)q->content_length, has_content_length ? "present" : "absent");
    check_pack_environ(data, r);
}

void check_request(const unsigned char *data, size_t len, const fw_limits *lim,
                   unsigned opts, size_t split)
{
    req_result whole, other;
    size_t ncuts = 0;
    size_t *cuts = make_cuts(len, &ncuts);

    parse_whole(data, len, lim, &whole);
    validate_request(data, len, lim, &whole);
    check_parse_packed(data, len, lim, &whole, cuts, ncuts, opts, split);

    if (opts & CHECK_PREFIXES) {
        /* A prefix is incomplete or has the same error; once the head is
         * complete the answer is the whole's (the bytes after it are not read). */
        long first_error_at = -1;
        for (size_t i = 0; i < ncuts; i++) {
            size_t k = cuts[i];
            parse_whole(data, k, lim, &other);
            int ok;
            if (whole.ret >= 0 && k >= (size_t)whole.ret)
                ok = same_request(&other, &whole);
            else if (other.ret == FW_INCOMPLETE)
                ok = first_error_at < 0;  /* an error never turns back into "incomplete" */
            else
                ok = whole.ret == FW_ERROR && same_request(&other, &whole);
            if (other.ret == FW_ERROR && first_error_at < 0)
                first_error_at = (long)k;
            if (!ok)
                fail("fw_parse_request: prefix of %zu/%zu bytes gave %s, whole gave %s "
                     "(first error at prefix %ld)", k, len, outcome_text(other.ret, other.req.error),
                     outcome_text(whole.ret, whole.req.error), first_error_at);
            req_result_free(&other);
        }
    }
    if (opts & CHECK_BYTEWISE) {
        parse_pieces(data, len, cuts, ncuts, lim, &other);
        if (!same_request(&other, &whole))
            fail("fw_parse_request: byte by byte gave %s, whole gave %s",
                 outcome_text(other.ret, other.req.error), outcome_text(whole.ret, whole.req.error));
        req_result_free(&other);
    }
    for (size_t i = 0; i < ((opts & CHECK_SPLITS) ? ncuts : 0) + 1; i++) {
        size_t cut = (opts & CHECK_SPLITS) && i < ncuts ? cuts[i] : split;
        parse_pieces(data, len, &cut, 1, lim, &other);
        if (!same_request(&other, &whole))
            fail("fw_parse_request: split at %zu/%zu gave %s, whole gave %s", cut, len,
                 outcome_text(other.ret, other.req.error), outcome_text(whole.ret, whole.req.error));
        req_result_free(&other);
    }
    req_result_free(&whole);
    free(cuts);
}
