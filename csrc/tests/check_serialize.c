/*
 * check_serialize.c - check_serialize (checks.h): fw_serialize_head against
 * an oracle, then with every smaller output capacity (sampled when long),
 * every input and output ending at a guard page.
 */
#include <stdio.h>
#include <stdlib.h>

#include "checks_util.h"
#include "guard.h"

static guard_buf g_output, g_status, g_fields, g_date, g_server;

static int is_hop_by_hop(const void *name, size_t len)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-authenticate",
                                      "proxy-authorization", "te", "trailer",
                                      "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (equal_nocase(name, len, hop[i]))
            return 1;
    return 0;
}

/* Walks name "\0" value "\0" ... once the separator count is known to be right. */
typedef struct field_iter {
    const unsigned char *p;
    size_t left;
} field_iter;

static int next_field(field_iter *it, const unsigned char **name, size_t *name_len,
                      const unsigned char **value, size_t *value_len)
{
    if (it->left == 0)
        return 0;
    const unsigned char *nul = memchr(it->p, '\0', it->left);
    *name = it->p;
    *name_len = (size_t)(nul - it->p);
    *value = nul + 1;
    const unsigned char *end = memchr(*value, '\0', it->left - *name_len - 1);
    *value_len = end ? (size_t)(end - *value) : it->left - *name_len - 1;
    size_t used = *name_len + 1 + *value_len + (end ? 1 : 0);
    it->p += used;
    it->left -= used;
    return 1;
}

/*
 * What fw_serialize_head must answer (docs/parser-spec.md "Response head"):
 * FW_E_NONE and the bytes, or the error.  A NUL inside a name or value shows
 * as a wrong separator count; which header error that gives depends on where
 * the check stops, so *any_header_error says any of them is right.
 */
static int serialize_oracle(const serialize_seed *s, bytes *out, int *any_header_error)
{
    const unsigned char *st = (const unsigned char *)s->status;
    const unsigned char *f = (const unsigned char *)s->fields;
    *any_header_error = 0;
    if (s->status_len < 4 || st[0] < '1' || st[0] > '5' || st[1] < '0' || st[1] > '9' ||
        st[2] < '0' || st[2] > '9' || st[3] != ' ')
        return FW_E_BAD_STATUS;
    for (size_t i = 4; i < s->status_len; i++)
        if (!is_field_byte(st[i]))
            return FW_E_BAD_STATUS;

    size_t nuls = 0;
    for (size_t i = 0; i < s->fields_len; i++)
        nuls += f[i] == '\0';
    if (s->nfields == 0 ? s->fields_len != 0 : nuls != 2 * s->nfields - 1) {
        *any_header_error = 1;
        return FW_E_BAD_RESPONSE_HEADER_NAME;
    }
    int has_date = 0, has_server = 0;
    field_iter it = {f, s->fields_len};
    const unsigned char *name, *value;
    size_t name_len, value_len;
    while (next_field(&it, &name, &name_len, &value, &value_len)) {
        if (name_len == 0)
            return FW_E_BAD_RESPONSE_HEADER_NAME;
        for (size_t k = 0; k < name_len; k++)
            if (!is_tchar(name[k]))
                return FW_E_BAD_RESPONSE_HEADER_NAME;
        if (is_hop_by_hop(name, name_len))
            return FW_E_HOP_BY_HOP_HEADER;
        for (size_t k = 0; k < value_len; k++)
            if (!is_field_byte(value[k]))
                return FW_E_BAD_RESPONSE_HEADER_VALUE;
        has_date |= equal_nocase(name, name_len, "date");
        has_server |= equal_nocase(name, name_len, "server");
    }

    bytes_put(out, "HTTP/1.1 ", 9);
    bytes_put(out, s->status, s->status_len);
    bytes_put(out, "\r\n", 2);
    if (s->server_len > 0 && !has_server) {
        bytes_put(out, "Server: ", 8);
        bytes_put(out, s->server, s->server_len);
        bytes_put(out, "\r\n", 2);
    }
    if (!has_date) {
        bytes_put(out, "Date: ", 6);
        bytes_put(out, s->date, s->date_len);
        bytes_put(out, "\r\n", 2);
    }
    field_iter again = {f, s->fields_len};
    while (next_field(&again, &name, &name_len, &value, &value_len)) {
        bytes_put(out, name, name_len);
        bytes_put(out, ": ", 2);
        bytes_put(out, value, value_len);
        bytes_put(out, "\r\n", 2);
    }
    if (s->flags & FW_RESP_CHUNKED)
        bytes_put(out, "Transfer-Encoding: chunked\r\n", 28);
    if (s->flags & FW_RESP_CLOSE)
        bytes_put(out, "Connection: close\r\n", 19);
    else if (s->flags & FW_RESP_KEEP_ALIVE)
        bytes_put(out, "Connection: keep-alive\r\n", 24);
    bytes_put(out, "\r\n", 2);
    return FW_E_NONE;
}

static int is_header_error(int error)
{
    return error == FW_E_BAD_RESPONSE_HEADER_NAME || error == FW_E_BAD_RESPONSE_HEADER_VALUE ||
           error == FW_E_HOP_BY_HOP_HEADER;
}

static long serialize_into(const serialize_seed *s, size_t cap, char **out, int *error)
{
    /* every input read-only and ending at a guard page; out + cap is the guard */
    const char *status = (const char *)guard_fill(&g_status, s->status, s->status_len, 1);
    const char *fields = (const char *)guard_fill(&g_fields, s->fields, s->fields_len, 1);
    const char *date = (const char *)guard_fill(&g_date, s->date, s->date_len, 1);
    const char *server = (const char *)guard_fill(&g_server, s->server, s->server_len, 1);
    *out = (char *)guard_blank(&g_output, cap, 0xEE);
    *error = -1;
    return fw_serialize_head(*out, cap, status, s->status_len, fields, s->fields_len, s->nfields,
                             date, s->date_len, server, s->server_len, s->flags, error);
}

void check_serialize(const serialize_seed *s)
{
    bytes want = {0};
    int any_header_error;
    int want_error = serialize_oracle(s, &want, &any_header_error);
    size_t big = 64 + 2 * (s->status_len + s->fields_len + s->date_len + s->server_len) + 4 * s->nfields + 128;
    char *out;
    int error;
    long n = serialize_into(s, big, &out, &error);

    if (n == FW_ERROR) {
        check_error_fields("fw_serialize_head", error, fw_error_status(error), FW_E_BAD_STATUS,
                           FW_E_BUFFER_TOO_SMALL);
        if (want_error == FW_E_NONE)
            fail("fw_serialize_head: refused with %s, expected %s", fw_error_name(error), show(want.p, want.len));
        else if (error != want_error && !(any_header_error && is_header_error(error)))
            fail("fw_serialize_head: refused with %s, expected %s", fw_error_name(error), fw_error_name(want_error));
        /* a tighter buffer may only change the answer to BUFFER_TOO_SMALL */
        size_t caps[] = {0, 1, 16, s->cap_hint};
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
            long small = serialize_into(s, caps[i], &out, &error);
            if (small != FW_ERROR || (error != want_error && error != FW_E_BUFFER_TOO_SMALL &&
                                      !(any_header_error && is_header_error(error))))
                fail("fw_serialize_head: invalid input with cap %zu gave %ld (%s)", caps[i], small,
                     small == FW_ERROR ? fw_error_name(error) : "no error");
        }
        goto done;
    }
    if (n < 0 || (size_t)n > big) {
        fail("fw_serialize_head: returned %ld with cap %zu", n, big);
        goto done;
    }
    if (want_error != FW_E_NONE) {
        fail("fw_serialize_head: accepted (%s), expected %s", show(out, (size_t)n), fw_error_name(want_error));
        goto done;
    }
    if (!same_bytes(out, (size_t)n, want.p, want.len)) {
        fail("fw_serialize_head: wrote %s, expected %s", show(out, (size_t)n), show(want.p, want.len));
        goto done;
    }
    long exact = serialize_into(s, (size_t)n, &out, &error);
    if (exact != n || !same_bytes(out, (size_t)n, want.p, want.len))
        fail("fw_serialize_head: cap == result (%ld) gave %ld", n, exact);
    /* every smaller capacity (all of them for short heads) is refused */
    for (size_t cap = 0; cap < (size_t)n; cap++) {
        if (!cap_sampled(cap, (size_t)n, s->cap_hint))
            continue;
        long small = serialize_into(s, cap, &out, &error);
        if (small != FW_ERROR || error != FW_E_BUFFER_TOO_SMALL)
            fail("fw_serialize_head: cap %zu < %ld gave %ld (%s)", cap, n, small,
                 small == FW_ERROR ? fw_error_name(error) : "no error");
    }
done:
    bytes_free(&want);
}
