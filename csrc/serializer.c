/*
 * serializer.c - the response-head serializer.
 *
 * Theory of operation
 * -------------------
 * Two passes over the application's packed headers ("name\0value\0..."):
 * the first validates every byte the application chose (status line and
 * fields, RFC 9112 4 and RFC 9110 5.5), notes whether it sent Server or Date
 * and computes the exact output size; the second writes the head.  Nothing is
 * written unless everything is valid and fits, so a response-splitting
 * attempt (CR/LF in a value) can never reach the wire.
 */
#include "fastwsgi.h"
#include "fw_internal.h"

/* Hop-by-hop fields belong to the server, not to a WSGI application (PEP 3333). */
static int fw_is_hop_by_hop(const unsigned char *p, size_t n)
{
    switch (n) {
    case 2: return FW_IEQ(p, n, "te");
    case 7: return FW_IEQ(p, n, "trailer") || FW_IEQ(p, n, "upgrade");
    case 10: return FW_IEQ(p, n, "connection") || FW_IEQ(p, n, "keep-alive");
    case 17: return FW_IEQ(p, n, "transfer-encoding");
    case 18: return FW_IEQ(p, n, "proxy-authenticate");
    case 19: return FW_IEQ(p, n, "proxy-authorization");
    default: return 0;
    }
}

/* status = 3DIGIT SP reason-phrase, first digit 1-5 (RFC 9112 4) */
static int fw_status_ok(const unsigned char *s, size_t n)
{
    if (n < 4 || s[0] < '1' || s[0] > '5' || !FW_IS_DIGIT(s[1]) || !FW_IS_DIGIT(s[2]) ||
        s[3] != ' ')
        return 0;
    /* reason-phrase = *( HTAB / SP / VCHAR / obs-text ) */
    return fw_span(s + 4, n - 4, FW_C_FVALUE) == n - 4;
}

#define FW_PUT(lit) do { memcpy(o, lit, sizeof(lit) - 1); o += sizeof(lit) - 1; } while (0)
#define FW_PUT_N(p, n) do { memcpy(o, p, n); o += (n); } while (0)

long fw_serialize_head(char *out, size_t cap, const char *status, size_t status_len,
                       const char *fields, size_t fields_len, size_t nfields,
                       const char *date, size_t date_len, const char *server, size_t server_len,
                       unsigned flags, int *error)
{
    const unsigned char *f = (const unsigned char *)fields;
    const unsigned char *f_end = f + fields_len;
    const unsigned char *p;
    size_t i, need;
    int has_server = 0, has_date = 0;
    char *o = out;

    if (!fw_status_ok((const unsigned char *)status, status_len)) {
        *error = FW_E_BAD_STATUS;
        return FW_ERROR;
    }
    need = 9 + status_len + 2;                          /* "HTTP/1.1 " status CRLF */

    /* pass 1: validate, find Server/Date, size the output */
    if ((nfields == 0) != (fields_len == 0)) {
        *error = FW_E_BAD_RESPONSE_HEADER_VALUE;       /* stray bytes: a NUL in the data */
        return FW_ERROR;
    }
    p = f;
    for (i = 0; i < nfields; i++) {
        const unsigned char *name = p, *value, *sep;
        size_t name_len, value_len;
        sep = (const unsigned char *)memchr(name, '\0', (size_t)(f_end - name));
        if (sep == NULL) {
            *error = FW_E_BAD_RESPONSE_HEADER_VALUE;   /* wrong separator count */
            return FW_ERROR;
        }
        name_len = (size_t)(sep - name);
        value = sep + 1;
        sep = (const unsigned char *)memchr(value, '\0', (size_t)(f_end - value));
        if ((sep == NULL) != (i + 1 == nfields)) {
            *error = FW_E_BAD_RESPONSE_HEADER_VALUE;   /* wrong separator count */
            return FW_ERROR;
        }
        value_len = (size_t)((sep != NULL ? sep : f_end) - value);
        /* field-name = token (RFC 9110 5.1) */
        if (name_len == 0 || fw_span(name, name_len, FW_C_TCHAR) != name_len) {
            *error = FW_E_BAD_RESPONSE_HEADER_NAME;
            return FW_ERROR;
        }
        if (fw_is_hop_by_hop(name, name_len)) {
            *error = FW_E_HOP_BY_HOP_HEADER;
            return FW_ERROR;
        }
        /* field-value = *( field-vchar / SP / HTAB ) (RFC 9110 5.5) */
        if (fw_span(value, value_len, FW_C_FVALUE) != value_len) {
            *error = FW_E_BAD_RESPONSE_HEADER_VALUE;
            return FW_ERROR;
        }
        if (FW_IEQ(name, name_len, "server"))
            has_server = 1;
        else if (FW_IEQ(name, name_len, "date"))
            has_date = 1;
        need += name_len + 2 + value_len + 2;
        if (sep != NULL)
            p = sep + 1;
    }
    if (server_len > 0 && !has_server)
        need += 8 + server_len + 2;
    if (!has_date)
        need += 6 + date_len + 2;
    if (flags & FW_RESP_CHUNKED)
        need += sizeof("Transfer-Encoding: chunked\r\n") - 1;
    if (flags & FW_RESP_CLOSE)
        need += sizeof("Connection: close\r\n") - 1;
    else if (flags & FW_RESP_KEEP_ALIVE)
        need += sizeof("Connection: keep-alive\r\n") - 1;
    need += 2;
    if (need > cap) {
        *error = FW_E_BUFFER_TOO_SMALL;
        return FW_ERROR;
    }

    /* pass 2: write */
    FW_PUT("HTTP/1.1 ");
    FW_PUT_N(status, status_len);
    FW_PUT("\r\n");
    if (server_len > 0 && !has_server) {
        FW_PUT("Server: ");
        FW_PUT_N(server, server_len);
        FW_PUT("\r\n");
    }
    if (!has_date) {
        FW_PUT("Date: ");
        FW_PUT_N(date, date_len);
        FW_PUT("\r\n");
    }
    p = f;
    for (i = 0; i < nfields; i++) {
        const unsigned char *sep = (const unsigned char *)memchr(p, '\0', (size_t)(f_end - p));
        const unsigned char *value = sep + 1;
        const unsigned char *value_end;
        FW_PUT_N(p, (size_t)(sep - p));
        FW_PUT(": ");
        value_end = i + 1 == nfields ? f_end
                                     : (const unsigned char *)memchr(value, '\0',
                                                                     (size_t)(f_end - value));
        FW_PUT_N(value, (size_t)(value_end - value));
        FW_PUT("\r\n");
        if (value_end != f_end)
            p = value_end + 1;
    }
    if (flags & FW_RESP_CHUNKED)
        FW_PUT("Transfer-Encoding: chunked\r\n");
    if (flags & FW_RESP_CLOSE)
        FW_PUT("Connection: close\r\n");
    else if (flags & FW_RESP_KEEP_ALIVE)
        FW_PUT("Connection: keep-alive\r\n");
    FW_PUT("\r\n");
    *error = FW_E_NONE;
    return (long)(o - out);
}
