/*
 * chunked.c - the chunked transfer-coding decoder (RFC 9112 7.1).
 *
 * Theory of operation
 * -------------------
 * A small state machine over the body bytes:
 *
 *   SIZE      chunk-size [chunk-ext] CRLF   -> DATA, or TRAILER after "0"
 *   DATA      `remaining` bytes, copied out as they arrive (partial chunks too)
 *   DATA_END  exactly CRLF                  -> SIZE
 *   TRAILER   field lines, then CRLF        -> DONE
 *
 * Lines (size and trailer lines) are only consumed once complete; a partial
 * line is left for the caller to pass again with more bytes, and
 * `line_scanned` remembers how much of it is known to hold no LF, so each byte
 * is searched once.  Output never runs ahead of input (every decoded byte came
 * from a consumed byte at or after it), which is what makes dst == src safe.
 */
#include "fastwsgi.h"
#include "fw_internal.h"

enum fw_chunked_state { FW_CH_SIZE = 0, FW_CH_DATA, FW_CH_DATA_END, FW_CH_TRAILER, FW_CH_DONE };

#define FW_NO_HEAD_LIMIT (UINT64_C(1) << 62)

void fw_chunked_init(fw_chunked *st)
{
    memset(st, 0, sizeof *st);
}

/* chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 * chunk-ext-val = token / quoted-string                      (RFC 9112 7.1.1) */
static int fw_chunk_ext_ok(const unsigned char *p, size_t n)
{
    size_t k = 0, name_len, value_len, before_ows;
    while (k < n) {
        while (k < n && FW_IS_OWS(p[k]))
            k++;
        if (k == n || p[k] != ';')
            return 0;
        k++;
        while (k < n && FW_IS_OWS(p[k]))
            k++;
        name_len = fw_span(p + k, n - k, FW_C_TCHAR);
        if (name_len == 0)
            return 0;
        k += name_len;
        before_ows = k;
        while (k < n && FW_IS_OWS(p[k]))
            k++;
        if (k == n || p[k] != '=') {
            k = before_ows;
            continue;
        }
        k++;
        while (k < n && FW_IS_OWS(p[k]))
            k++;
        value_len = fw_token_or_quoted(p + k, n - k);
        if (value_len == 0)
            return 0;
        k += value_len;
    }
    return 1;
}

/* chunk-size = 1*HEXDIG, at most 2^63-1, then the end or [OWS] ";" ext */
static int fw_parse_chunk_size(const unsigned char *p, size_t n, uint64_t *size)
{
    uint64_t value = 0;
    size_t i = 0, j;
    while (i < n && FW_HAS(p[i], FW_C_HEX)) {
        unsigned digit = FW_IS_DIGIT(p[i]) ? (unsigned)(p[i] - '0')
                                           : (unsigned)(fw_lower(p[i]) - 'a' + 10);
        if (value > (UINT64_C(0x7FFFFFFFFFFFFFFF) - digit) / 16)
            return FW_E_BAD_CHUNK_SIZE;
        value = value * 16 + digit;
        i++;
    }
    if (i == 0)
        return FW_E_BAD_CHUNK_SIZE;
    j = i;
    while (j < n && FW_IS_OWS(p[j]))
        j++;
    if (i < n && (j == n || p[j] != ';'))
        return FW_E_BAD_CHUNK_SIZE;
    if (!fw_chunk_ext_ok(p + i, n - i))
        return FW_E_BAD_CHUNK_EXTENSION;
    *size = value;
    return FW_E_NONE;
}

static long fw_chunked_fail(fw_chunked *st, int error, size_t *dst_len)
{
    st->error = error;
    st->status = fw_error_status(error);
    *dst_len = 0;
    return FW_ERROR;
}

long fw_decode_chunked(fw_chunked *st, const char *src, size_t len, char *dst, size_t *dst_len,
                       const fw_limits *lim)
{
    const unsigned char *b = (const unsigned char *)src;
    size_t pos = 0, out = 0, cap = *dst_len;
    int allow_bare_lf = (lim->flags & FW_ALLOW_BARE_LF) != 0;

    if (st->error != FW_E_NONE)
        return fw_chunked_fail(st, st->error, dst_len);

    for (;;) {
        switch (st->state) {
        case FW_CH_SIZE:
        case FW_CH_TRAILER: {
            int in_trailer = st->state == FW_CH_TRAILER;
            size_t scan = pos + st->line_scanned, lf, end;
            int error = FW_E_NONE;
            int found;
            if (in_trailer)
                found = fw_find_line(b, len, pos, &scan, lim->max_header_line, st->trailer_bytes,
                                     lim->max_head_size, FW_E_HEADER_LINE_TOO_LONG, &lf, &error);
            else
                found = fw_find_line(b, len, pos, &scan, lim->max_chunk_line, 0, FW_NO_HEAD_LIMIT,
                                     FW_E_CHUNK_LINE_TOO_LONG, &lf, &error);
            if (found == 0) {
                st->line_scanned = (uint32_t)(scan - pos);
                goto out;
            }
            if (found < 0)
                return fw_chunked_fail(st, error, dst_len);
            error = fw_line_content(b, pos, lf, allow_bare_lf, &end);
            if (error != FW_E_NONE)
                return fw_chunked_fail(st, error, dst_len);
            if (!in_trailer) {
                uint64_t size = 0;
                error = fw_parse_chunk_size(b + pos, end - pos, &size);
                if (error != FW_E_NONE)
                    return fw_chunked_fail(st, error, dst_len);
                st->remaining = size;
                st->state = size == 0 ? FW_CH_TRAILER : FW_CH_DATA;
                st->trailer_bytes = 0;
                st->trailer_count = 0;
            } else if (end == pos) {                /* the blank line ends the trailers */
                st->state = FW_CH_DONE;
                st->done = 1;
            } else {                                /* trailer field (RFC 9112 7.1.2) */
                if (st->trailer_count >= lim->max_header_count)
                    return fw_chunked_fail(st, FW_E_TOO_MANY_HEADERS, dst_len);
                error = fw_check_field_line(b + pos, end - pos, 0, NULL);
                if (error != FW_E_NONE)
                    return fw_chunked_fail(st, error, dst_len);
                st->trailer_count++;
                st->trailer_bytes += (uint32_t)(lf + 1 - pos);
            }
            st->line_scanned = 0;
            pos = lf + 1;
            break;
        }
        case FW_CH_DATA: {
            size_t n = len - pos;
            if (n > st->remaining)
                n = (size_t)st->remaining;
            if (n > cap - out)
                n = cap - out;
            if (n == 0)
                goto out;
            memmove(dst + out, b + pos, n);
            out += n;
            pos += n;
            st->remaining -= n;
            if (st->remaining == 0)
                st->state = FW_CH_DATA_END;
            break;
        }
        case FW_CH_DATA_END:                        /* chunk = chunk-size [ext] CRLF data CRLF */
            if (pos == len)
                goto out;
            if (b[pos] == '\r') {
                if (pos + 1 == len)
                    goto out;                       /* the CR alone is not consumed */
                if (b[pos + 1] != '\n')
                    return fw_chunked_fail(st, FW_E_BAD_CHUNK_DATA_END, dst_len);
                pos += 2;
            } else if (b[pos] == '\n' && allow_bare_lf) {
                pos += 1;
            } else {
                return fw_chunked_fail(st, FW_E_BAD_CHUNK_DATA_END, dst_len);
            }
            st->state = FW_CH_SIZE;
            break;
        default:                                    /* FW_CH_DONE: the rest is not ours */
            goto out;
        }
    }
out:
    *dst_len = out;
    return (long)pos;
}
