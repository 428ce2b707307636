/*
 * check_uwsgi.c - check_uwsgi (checks.h): fw_parse_uwsgi and
 * fw_parse_uwsgi_packed (uwsgi_binding.h) over one input, whole and at every
 * prefix, against the invariants of docs/uwsgi-spec.md and an independent
 * walk of the packet.
 *
 * The parser is stateless, so feeding a packet in pieces is calling it with
 * longer and longer prefixes: every prefix must be incomplete or give the
 * whole input's error (and never go back to incomplete after an error), and
 * every prefix holding the whole packet must give exactly the whole's
 * result.  A success is checked against the packet itself: the vars tile the
 * block in order, every rule-4 limit holds, the Head's variables are where
 * fw_uwsgi says, CONTENT_LENGTH and SERVER_PROTOCOL are read right.  The
 * packed form is compared with one built from the vars, with the documented
 * capacity (datasize) and one byte less; the vars array is sized exactly
 * (and one short) with its end at a guard page.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../uwsgi_binding.h"
#include "checks_util.h"
#include "guard.h"

static guard_buf g_input, g_vars, g_output;

typedef struct uwsgi_result {
    long ret;
    fw_uwsgi pkt;
    fw_header *vars;  /* copy of pkt.num_vars entries (malloc'd) */
} uwsgi_result;

static size_t u16le(const unsigned char *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8;
}

static size_t full_max_vars(const fw_limits *lim)
{
    return (size_t)lim->max_header_count + FW_UWSGI_MAX_CGI_VARS;
}

/* One call over data[0:n], read-only and ending at the guard page, with a
 * vars array of exactly max_vars entries ending at another. */
static void parse_prefix(const unsigned char *data, size_t n, const fw_limits *lim, size_t max_vars,
                         uwsgi_result *out)
{
    fw_header *vars = (fw_header *)(void *)guard_blank(&g_vars, max_vars * sizeof(fw_header), 0xA5);
    const char *buf = (const char *)guard_fill(&g_input, data, n, 1);
    memset(&out->pkt, 0x5A, sizeof out->pkt);  /* every call must set every field */
    out->ret = fw_parse_uwsgi(buf, n, lim, &out->pkt, vars, max_vars);
    out->vars = malloc(out->pkt.num_vars <= max_vars ? out->pkt.num_vars * sizeof(fw_header) + 1 : 1);
    if (out->vars == NULL)
        abort();
    if (out->pkt.num_vars <= max_vars)
        memcpy(out->vars, vars, out->pkt.num_vars * sizeof(fw_header));
}

static int same_uwsgi(const uwsgi_result *a, const uwsgi_result *b)
{
    if (a->ret != b->ret || a->pkt.error != b->pkt.error || a->pkt.status != b->pkt.status)
        return 0;
    if (a->ret < 0)
        return 1;
    return memcmp(&a->pkt, &b->pkt, sizeof a->pkt) == 0 &&
           memcmp(a->vars, b->vars, a->pkt.num_vars * sizeof(fw_header)) == 0;
}

static const char *outcome(const uwsgi_result *r)
{
    static char text[4][64];
    static int which;
    char *out = text[which++ & 3];
    if (r->ret == FW_ERROR)
        snprintf(out, sizeof text[0], "ERROR %s", fw_error_name(r->pkt.error));
    else if (r->ret == FW_INCOMPLETE)
        snprintf(out, sizeof text[0], "INCOMPLETE");
    else
        snprintf(out, sizeof text[0], "%ld", r->ret);
    return out;
}

static int key_is(const unsigned char *data, const fw_header *v, const char *key)
{
    return same_bytes(data + v->name_off, v->name_len, key, strlen(key));
}

static int is_http_key(const unsigned char *data, const fw_header *v)
{
    return v->name_len >= 5 && memcmp(data + v->name_off, "HTTP_", 5) == 0;
}

/* The index fw_uwsgi must give for a CGI variable (they are unique on success). */
/* The index of the last var named key (a repeated CGI key's last value wins). */
static uint32_t find_var(const unsigned char *data, const uwsgi_result *r, const char *key)
{
    for (uint32_t i = r->pkt.num_vars; i > 0; i--)
        if (key_is(data, &r->vars[i - 1], key))
            return i - 1;
    return FW_UWSGI_NO_VAR;
}

/* Errors and incomplete answers: only what the bytes so far can justify. */
static void validate_failure(const unsigned char *data, size_t n, const fw_limits *lim,
                             const uwsgi_result *r)
{
    size_t packet = n >= 4 ? 4 + u16le(data + 1) : 0;
    if (r->ret == FW_INCOMPLETE) {
        if (r->pkt.error != FW_E_NONE || (n >= 1 && data[0] != 0) ||
            (n >= 4 && (data[3] != 0 || packet <= n || packet > lim->max_head_size)))
            fail("fw_parse_uwsgi: INCOMPLETE for %zu bytes (packet %zu, error %d)", n, packet,
                 r->pkt.error);
        return;
    }
    if (r->ret != FW_ERROR) {
        fail("fw_parse_uwsgi: returned %ld", r->ret);
        return;
    }
    check_error_fields("fw_parse_uwsgi", r->pkt.error, r->pkt.status, 1, FW_E__COUNT - 1);
    switch (r->pkt.error) {
    case FW_E_UWSGI_BAD_MODIFIER:
        if (!(n >= 1 && data[0] != 0) && !(n >= 4 && data[3] != 0))
            fail("fw_parse_uwsgi: UWSGI_BAD_MODIFIER with modifiers 0");
        break;
    case FW_E_HEAD_TOO_LARGE:
        if (n < 4 || packet <= lim->max_head_size)
            fail("fw_parse_uwsgi: HEAD_TOO_LARGE for a %zu-byte packet, limit %u", packet,
                 lim->max_head_size);
        break;
    case FW_E_UWSGI_BAD_VARS: case FW_E_BAD_HEADER_VALUE: case FW_E_HEADER_LINE_TOO_LONG:
    case FW_E_URI_TOO_LONG: case FW_E_TOO_MANY_HEADERS: case FW_E_UWSGI_DUPLICATE_VAR:
    case FW_E_BAD_METHOD: case FW_E_BAD_CONTENT_LENGTH: case FW_E_BAD_VERSION:
        if (n < 4 || packet > n)
            fail("fw_parse_uwsgi: %s before the packet is complete (%zu of %zu bytes)",
                 fw_error_name(r->pkt.error), n, packet);
        break;
    default:
        fail("fw_parse_uwsgi: error %s is not a uwsgi error", fw_error_name(r->pkt.error));
    }
}

static void validate_success(const unsigned char *data, size_t n, const fw_limits *lim,
                             const uwsgi_result *r)
{
    const fw_uwsgi *p = &r->pkt;
    size_t pos = 4;
    uint32_t nhttp = 0, ncgi = 0;

    if (n < 4 || data[0] != 0 || data[3] != 0 || p->datasize != u16le(data + 1) ||
        (size_t)r->ret != 4 + (size_t)p->datasize || (size_t)r->ret > n ||
        (size_t)r->ret > lim->max_head_size || p->error != FW_E_NONE || p->status != 0) {
        fail("fw_parse_uwsgi: accepted %ld of %zu bytes (datasize %u, error %d)", r->ret, n,
             p->datasize, p->error);
        return;
    }
    if (p->num_vars > full_max_vars(lim)) {
        fail("fw_parse_uwsgi: %u vars, more than the limits allow", p->num_vars);
        return;
    }
    /* the vars tile the block, in order, exactly as its sizes say */
    for (uint32_t i = 0; i < p->num_vars; i++) {
        const fw_header *v = &r->vars[i];
        if (pos + 2 > (size_t)r->ret || v->name_off != pos + 2 || v->name_len != u16le(data + pos) ||
            v->name_off + v->name_len + 2 > (size_t)r->ret ||
            v->value_off != v->name_off + v->name_len + 2 ||
            v->value_len != u16le(data + v->name_off + v->name_len) ||
            v->value_off + v->value_len > (size_t)r->ret) {
            fail("fw_parse_uwsgi: var %u at %u+%u / %u+%u does not match the block at %zu", i,
                 v->name_off, v->name_len, v->value_off, v->value_len, pos);
            return;
        }
        pos = v->value_off + v->value_len;
        const unsigned char *key = data + v->name_off, *value = data + v->value_off;
        if (v->name_len == 0)
            fail("fw_parse_uwsgi: empty key accepted");
        for (uint32_t k = 0; k < v->name_len; k++)
            if (key[k] < 0x21 || key[k] > 0x7E)
                fail("fw_parse_uwsgi: key byte 0x%02x accepted", key[k]);
        for (uint32_t k = 0; k < v->value_len; k++)
            if (value[k] == '\r' || value[k] == '\n' || value[k] == '\0')
                fail("fw_parse_uwsgi: value byte 0x%02x accepted", value[k]);
        if (key_is(data, v, "REQUEST_URI") ? v->value_len > lim->max_request_line
                                           : v->value_len > lim->max_header_line)
            fail("fw_parse_uwsgi: %s value of %u bytes accepted", show(key, v->name_len), v->value_len);
        if (is_http_key(data, v)) {
            nhttp++;
        } else {
            ncgi++;
            if (key_is(data, v, "CONTENT_LENGTH"))
                for (uint32_t j = 0; j < i; j++)
                    if (key_is(data, &r->vars[j], "CONTENT_LENGTH"))
                        fail("fw_parse_uwsgi: CONTENT_LENGTH accepted twice");
        }
    }
    if (pos != (size_t)r->ret)
        fail("fw_parse_uwsgi: vars end at %zu, the packet at %ld", pos, r->ret);
    if (nhttp > lim->max_header_count || ncgi > FW_UWSGI_MAX_CGI_VARS)
        fail("fw_parse_uwsgi: %u HTTP_ and %u CGI vars accepted", nhttp, ncgi);

    /* the Head's variables */
    static const struct { const char *key; size_t field; } roles[] = {
        {"REQUEST_METHOD", offsetof(fw_uwsgi, method_var)},
        {"PATH_INFO", offsetof(fw_uwsgi, path_var)},
        {"QUERY_STRING", offsetof(fw_uwsgi, query_var)},
        {"REQUEST_URI", offsetof(fw_uwsgi, uri_var)},
        {"SERVER_PROTOCOL", offsetof(fw_uwsgi, protocol_var)},
        {"CONTENT_LENGTH", offsetof(fw_uwsgi, length_var)},
    };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        uint32_t got;
        memcpy(&got, (const unsigned char *)p + roles[i].field, sizeof got);
        if (got != find_var(data, r, roles[i].key))
            fail("fw_parse_uwsgi: %s at index %u, expected %u", roles[i].key, got,
                 find_var(data, r, roles[i].key));
    }
    if (p->method_var == FW_UWSGI_NO_VAR) {
        fail("fw_parse_uwsgi: accepted without REQUEST_METHOD");
        return;
    }
    const fw_header *m = &r->vars[p->method_var];
    if (m->value_len == 0)
        fail("fw_parse_uwsgi: empty REQUEST_METHOD accepted");
    for (uint32_t k = 0; k < m->value_len; k++)
        if (!is_tchar(data[m->value_off + k]))
            fail("fw_parse_uwsgi: method byte 0x%02x accepted", data[m->value_off + k]);

    /* CONTENT_LENGTH: 1*DIGIT <= 2^63-1, else absent or empty */
    int64_t want_length = -1;
    if (p->length_var != FW_UWSGI_NO_VAR && r->vars[p->length_var].value_len > 0) {
        const fw_header *c = &r->vars[p->length_var];
        long double approx = 0;  /* an overflow-proof second opinion */
        uint64_t value = 0;
        for (uint32_t k = 0; k < c->value_len; k++) {
            unsigned char d = data[c->value_off + k];
            if (d < '0' || d > '9') {
                fail("fw_parse_uwsgi: CONTENT_LENGTH %s accepted", show(data + c->value_off, c->value_len));
                break;
            }
            approx = approx * 10 + (d - '0');
            value = value * 10 + (uint64_t)(d - '0');
        }
        if (approx > 9.3e18L)
            fail("fw_parse_uwsgi: CONTENT_LENGTH %s beyond 2^63-1 accepted", show(data + c->value_off, c->value_len));
        want_length = (int64_t)(value & 0x7FFFFFFFFFFFFFFFu);
    }
    if (p->content_length != want_length)
        fail("fw_parse_uwsgi: content_length %lld, expected %lld", (long long)p->content_length,
             (long long)want_length);

    /* SERVER_PROTOCOL: HTTP/ DIGIT . DIGIT, 1.0 when absent */
    unsigned major = 1, minor = 0;
    if (p->protocol_var != FW_UWSGI_NO_VAR) {
        const fw_header *v = &r->vars[p->protocol_var];
        const unsigned char *s = data + v->value_off;
        if (v->value_len != 8 || memcmp(s, "HTTP/", 5) != 0 || s[5] < '0' || s[5] > '9' ||
            s[6] != '.' || s[7] < '0' || s[7] > '9')
            fail("fw_parse_uwsgi: SERVER_PROTOCOL %s accepted", show(s, v->value_len));
        else
            major = (unsigned)(s[5] - '0'), minor = (unsigned)(s[7] - '0');
    }
    if (p->version_major != major || p->version_minor != minor)
        fail("fw_parse_uwsgi: version %u.%u, expected %u.%u", p->version_major, p->version_minor,
             major, minor);
}

/* fw_parse_uwsgi_packed on the whole input: same answer, the documented layout and bits. */
static void check_packed(const unsigned char *data, size_t len, const fw_limits *lim,
                         const uwsgi_result *whole)
{
    size_t max_vars = full_max_vars(lim);
    size_t cap = whole->ret >= 0 ? whole->pkt.datasize : 64;  /* datasize always suffices */
    fw_header *vars = (fw_header *)(void *)guard_blank(&g_vars, max_vars * sizeof(fw_header), 0xA5);
    const char *buf = (const char *)guard_fill(&g_input, data, len, 1);
    char *out = (char *)guard_blank(&g_output, cap, 0xEE);
    fw_uwsgi pkt;
    long long got = fw_parse_uwsgi_packed(buf, len, lim, &pkt, vars, max_vars, out, cap);

    if (whole->ret < 0) {
        if (got != whole->ret || pkt.error != whole->pkt.error)
            fail("fw_parse_uwsgi_packed: gave %lld (%s), fw_parse_uwsgi %s", got,
                 fw_error_name(pkt.error), outcome(whole));
        return;
    }
    bytes want = {0};
    for (uint32_t i = 0; i < whole->pkt.num_vars; i++) {
        bytes_put(&want, data + whole->vars[i].value_off, whole->vars[i].value_len);
        bytes_putc(&want, '\0');
    }
    for (uint32_t i = 0; i < whole->pkt.num_vars; i++) {
        if (i > 0)
            bytes_putc(&want, '\0');
        bytes_put(&want, data + whole->vars[i].name_off, whole->vars[i].name_len);
    }
    unsigned long long want_info =
        (whole->pkt.content_length >= 0 ? FW_UWSGI_PACKED_HAS_LENGTH : 0) |
        (unsigned long long)whole->pkt.num_vars << FW_UWSGI_PACKED_VARS_SHIFT |
        (unsigned long long)whole->pkt.datasize << FW_UWSGI_PACKED_DATASIZE_SHIFT;
    if (got < 0 || (unsigned long long)got >> 32 != want_info ||
        !same_bytes(out, (size_t)(got & 0xFFFFFFFF), want.p, want.len) ||
        memcmp(&pkt, &whole->pkt, sizeof pkt) != 0)
        fail("fw_parse_uwsgi_packed: gave %lld (info %llx, %s), expected info %llx, %s", got,
             got >= 0 ? (unsigned long long)got >> 32 : 0ull,
             got >= 0 ? show(out, (size_t)(got & 0xFFFFFFFF)) : "-", want_info, show(want.p, want.len));
    if (cap > 0) {  /* one byte short of the documented capacity: refused, nothing written */
        out = (char *)guard_blank(&g_output, cap - 1, 0xEE);
        got = fw_parse_uwsgi_packed(buf, len, lim, &pkt, vars, max_vars, out, cap - 1);
        if (got != FW_UWSGI_PACKED_TOO_SMALL)
            fail("fw_parse_uwsgi_packed: cap %zu (datasize %u) gave %lld", cap - 1,
                 whole->pkt.datasize, got);
        for (size_t k = 0; k + 1 < cap; k++)
            if ((unsigned char)out[k] != 0xEE) {
                fail("fw_parse_uwsgi_packed: wrote into a buffer it refused");
                break;
            }
    }
    bytes_free(&want);
}

/* One prefix data[0:k] against the whole input's result; *error_seen tracks
 * whether a shorter prefix (checked before) was already rejected. */
static void check_prefix(const unsigned char *data, size_t len, const fw_limits *lim, size_t k,
                         const uwsgi_result *whole, int *error_seen)
{
    uwsgi_result other;
    int ok;
    parse_prefix(data, k, lim, full_max_vars(lim), &other);
    if (other.ret >= 0)
        validate_success(data, k, lim, &other);
    else
        validate_failure(data, k, lim, &other);
    if (whole->ret >= 0 && k >= (size_t)whole->ret)
        ok = same_uwsgi(&other, whole);
    else if (other.ret == FW_INCOMPLETE)
        ok = !*error_seen;  /* an error never turns back into "incomplete" */
    else
        ok = whole->ret == FW_ERROR && same_uwsgi(&other, whole);
    if (other.ret == FW_ERROR)
        *error_seen = 1;
    if (!ok)
        fail("fw_parse_uwsgi: prefix of %zu/%zu bytes gave %s, whole gave %s", k, len,
             outcome(&other), outcome(whole));
    free(other.vars);
}

void check_uwsgi(const unsigned char *data, size_t len, const fw_limits *lim, unsigned opts,
                 size_t split)
{
    uwsgi_result whole, other;
    size_t max_vars = full_max_vars(lim);
    size_t ncuts = 0, *cuts = make_cuts(len, &ncuts);

    parse_prefix(data, len, lim, max_vars, &whole);
    if (whole.ret >= 0)
        validate_success(data, len, lim, &whole);
    else
        validate_failure(data, len, lim, &whole);
    check_packed(data, len, lim, &whole);

    /* the vars array sized exactly, then one short */
    if (whole.ret >= 0 && whole.pkt.num_vars > 0) {
        parse_prefix(data, len, lim, whole.pkt.num_vars, &other);
        if (!same_uwsgi(&other, &whole))
            fail("fw_parse_uwsgi: max_vars %u gave %s, whole gave %s", whole.pkt.num_vars,
                 outcome(&other), outcome(&whole));
        free(other.vars);
        parse_prefix(data, len, lim, whole.pkt.num_vars - 1, &other);
        if (other.ret != FW_ERROR || other.pkt.error != FW_E_BUFFER_TOO_SMALL)
            fail("fw_parse_uwsgi: max_vars %u (one short) gave %s", whole.pkt.num_vars - 1,
                 outcome(&other));
        free(other.vars);
    }

    /* prefixes, as a caller feeding the input in pieces sees them: every cut
     * point in increasing order (all of CHECK_PREFIXES, _BYTEWISE and _SPLITS
     * come to this for a stateless parser), then the seed's split point */
    int error_seen = 0;
    if (opts & (CHECK_PREFIXES | CHECK_BYTEWISE | CHECK_SPLITS))
        for (size_t i = 0; i < ncuts; i++)
            check_prefix(data, len, lim, cuts[i], &whole, &error_seen);
    error_seen = 0;
    check_prefix(data, len, lim, split <= len ? split : len, &whole, &error_seen);
    free(whole.vars);
    free(cuts);
}
