/*
 * check_chunked.c - check_chunked (checks.h): fw_decode_chunked driven by the
 * caller loop of csrc/fastwsgi.h, whole, per prefix, byte by byte, split, in
 * place and into tiny output buffers; all must agree.
 */
#include <stdio.h>
#include <stdlib.h>

#include "checks_util.h"
#include "guard.h"

static guard_buf g_input, g_output;

enum { STREAM_INCOMPLETE, STREAM_DONE, STREAM_ERROR };

typedef struct chunk_result {
    int state;
    int error;
    size_t consumed;  /* src bytes consumed in total (through the end when done) */
    bytes body;
} chunk_result;

static const char *chunk_text(const chunk_result *r)
{
    static char text[4][96];
    static int which;
    char *out = text[which++ & 3];
    if (r->state == STREAM_ERROR)
        snprintf(out, sizeof text[0], "ERROR %s", fw_error_name(r->error) ? fw_error_name(r->error) : "(null)");
    else
        snprintf(out, sizeof text[0], "%s after %zu bytes, body %zu bytes",
                 r->state == STREAM_DONE ? "DONE" : "INCOMPLETE", r->consumed, r->body.len);
    return out;
}

/*
 * The caller loop of csrc/fastwsgi.h: keep the unconsumed bytes, append the
 * next piece, decode, drop what was consumed, repeat.  `in_place` decodes
 * into the source buffer itself; otherwise into a separate buffer of at most
 * `dst_cap` bytes (0: as large as the source).
 */
static void decode_pieces(const unsigned char *data, size_t len, const size_t *cuts, size_t ncuts,
                          int in_place, size_t dst_cap, const fw_limits *lim, chunk_result *out)
{
    fw_chunked st;
    bytes pending = {0};
    size_t fed = 0;
    fw_chunked_init(&st);
    memset(out, 0, sizeof *out);
    out->state = STREAM_INCOMPLETE;
    for (size_t i = 0; i <= ncuts && out->state == STREAM_INCOMPLETE; i++) {
        size_t upto = i < ncuts ? cuts[i] : len;
        if (upto < fed)
            continue;
        bytes_put(&pending, data + fed, upto - fed);
        fed = upto;
        for (;;) {
            unsigned char *src = guard_fill(&g_input, pending.p, pending.len, !in_place);
            unsigned char *dst = src;
            size_t cap = pending.len;
            if (!in_place) {
                if (dst_cap > 0 && dst_cap < cap)
                    cap = dst_cap;
                dst = guard_blank(&g_output, cap, 0xEE);
            }
            size_t dst_len = cap;
            long ret = fw_decode_chunked(&st, (const char *)src, pending.len, (char *)dst, &dst_len, lim);
            if (ret == FW_ERROR) {
                check_error_fields("fw_decode_chunked", st.error, st.status, FW_E_BARE_LF, FW_E_BAD_CHUNK_DATA_END);
                int error = st.error;
                src = guard_fill(&g_input, pending.p, pending.len, !in_place);
                dst_len = in_place ? pending.len : cap;
                if (!in_place)
                    dst = guard_blank(&g_output, cap, 0xEE);
                else
                    dst = src;
                long again = fw_decode_chunked(&st, (const char *)src, pending.len, (char *)dst, &dst_len, lim);
                if (again != FW_ERROR || st.error != error)
                    fail("fw_decode_chunked: error %s not sticky", fw_error_name(error));
                out->state = STREAM_ERROR;
                out->error = error;
                break;
            }
            if (ret < 0 || (size_t)ret > pending.len || dst_len > cap || dst_len > (size_t)ret) {
                fail("fw_decode_chunked: returned %ld for %zu bytes, wrote %zu of cap %zu",
                     ret, pending.len, dst_len, cap);
                out->state = STREAM_ERROR;
                out->error = -1;
                break;
            }
            if (in_place && (size_t)ret < pending.len &&
                memcmp(src + ret, pending.p + ret, pending.len - (size_t)ret) != 0)
                fail("fw_decode_chunked: in place decoding changed unconsumed bytes");
            bytes_put(&out->body, dst, dst_len);
            out->consumed += (size_t)ret;
            if (ret > 0 && (size_t)ret < pending.len)
                memmove(pending.p, pending.p + ret, pending.len - (size_t)ret);
            pending.len -= (size_t)ret;
            if (st.done) {
                /* the bytes after the end belong to the next request: never consumed */
                src = guard_fill(&g_input, pending.p, pending.len, 1);
                dst = guard_blank(&g_output, pending.len, 0xEE);
                dst_len = pending.len;
                ret = fw_decode_chunked(&st, (const char *)src, pending.len, (char *)dst, &dst_len, lim);
                if (ret != 0 || dst_len != 0)
                    fail("fw_decode_chunked: called again after done, returned %ld and wrote %zu", ret, dst_len);
                out->state = STREAM_DONE;
                break;
            }
            if (ret == 0)
                break;  /* needs more input */
        }
    }
    bytes_free(&pending);
}

static int same_chunked(const chunk_result *a, const chunk_result *b)
{
    if (a->state != b->state)
        return 0;
    if (a->state == STREAM_ERROR)
        return a->error == b->error;
    if (a->state == STREAM_DONE && a->consumed != b->consumed)
        return 0;
    return same_bytes(a->body.p, a->body.len, b->body.p, b->body.len);
}

/* Is `part` what `whole` would look like after fewer bytes? */
static int chunked_prefix_ok(const chunk_result *part, size_t k, const chunk_result *whole)
{
    if (whole->state == STREAM_DONE && k >= whole->consumed)
        return same_chunked(part, whole);
    if (part->state == STREAM_ERROR)
        return whole->state == STREAM_ERROR && part->error == whole->error;
    if (part->state != STREAM_INCOMPLETE)
        return 0;
    if (whole->state == STREAM_ERROR)
        return 1;
    return part->body.len <= whole->body.len &&
           same_bytes(part->body.p, part->body.len, whole->body.p, part->body.len);
}

void check_chunked(const unsigned char *data, size_t len, const fw_limits *lim,
                   unsigned opts, size_t split)
{
    chunk_result whole, other;
    size_t ncuts = 0;
    size_t *cuts = make_cuts(len, &ncuts);

    decode_pieces(data, len, NULL, 0, 0, 0, lim, &whole);

    /* in place, and into tiny output buffers (1 and 3 bytes; for long inputs,
     * where that would cost O(n^2), 1021 and 4093): same result */
    int is_long = len > FULL_CUTS_MAX;
    struct { int in_place; size_t cap; const char *what; } ways[] = {
        {1, 0, "in place"},
        {0, is_long ? 1021 : 1, is_long ? "1021-byte output buffer" : "1-byte output buffer"},
        {0, is_long ? 4093 : 3, is_long ? "4093-byte output buffer" : "3-byte output buffer"}};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        decode_pieces(data, len, NULL, 0, ways[w].in_place, ways[w].cap, lim, &other);
        if (!same_chunked(&other, &whole))
            fail("fw_decode_chunked: %s gave %s, separate buffer gave %s", ways[w].what,
                 chunk_text(&other), chunk_text(&whole));
        bytes_free(&other.body);
    }
    if (opts & CHECK_PREFIXES) {
        for (size_t i = 0; i < ncuts; i++) {
            decode_pieces(data, cuts[i], NULL, 0, 0, 0, lim, &other);
            if (!chunked_prefix_ok(&other, cuts[i], &whole))
                fail("fw_decode_chunked: prefix of %zu/%zu bytes gave %s, whole gave %s",
                     cuts[i], len, chunk_text(&other), chunk_text(&whole));
            bytes_free(&other.body);
        }
    }
    if (opts & CHECK_BYTEWISE) {
        for (int in_place = 0; in_place < 2; in_place++) {
            decode_pieces(data, len, cuts, ncuts, in_place, 0, lim, &other);
            if (!same_chunked(&other, &whole))
                fail("fw_decode_chunked: byte by byte%s gave %s, whole gave %s",
                     in_place ? " in place" : "", chunk_text(&other), chunk_text(&whole));
            bytes_free(&other.body);
        }
    }
    for (size_t i = 0; i < ((opts & CHECK_SPLITS) ? ncuts : 0) + 1; i++) {
        size_t cut = (opts & CHECK_SPLITS) && i < ncuts ? cuts[i] : split;
        int in_place = (int)(i & 1);
        decode_pieces(data, len, &cut, 1, in_place, 0, lim, &other);
        if (!same_chunked(&other, &whole))
            fail("fw_decode_chunked: split at %zu/%zu%s gave %s, whole gave %s", cut, len,
                 in_place ? " in place" : "", chunk_text(&other), chunk_text(&whole));
        bytes_free(&other.body);
    }
    bytes_free(&whole.body);
    free(cuts);
}
