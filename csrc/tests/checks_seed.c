/* checks_seed.c - limit presets and the seed format of checks.h. */
#include <stdint.h>
#include <string.h>

#include "checks.h"

/* ======================================================================
 * limits and seeds
 * ====================================================================== */

fw_limits checks_limits(int preset, unsigned flags)
{
    fw_limits lim = {8190, 8190, 100, 65536, 4096, flags};
    if (preset == CHECKS_LIMITS_TINY) {
        fw_limits tiny = {32, 24, 3, 96, 12, flags};
        lim = tiny;
    } else if (preset == CHECKS_LIMITS_SMALL) {
        fw_limits small = {256, 128, 8, 1024, 64, flags};
        lim = small;
    }
    return lim;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static size_t get_u16(const unsigned char *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8;
}

static void put_u16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

int seed_decode_stream(const unsigned char *in, size_t n, stream_seed *out)
{
    if (n < 3)
        return 0;
    unsigned cfg = in[0];
    int preset = (cfg >> 2) & 3;
    size_t head = 3;
    out->lim = checks_limits(preset, cfg & (FW_ALLOW_BARE_LF | FW_ALLOW_MISSING_HOST));
    if (preset == CHECKS_LIMITS_CUSTOM) {
        if (n < head + 20)
            return 0;
        out->lim.max_request_line = get_u32(in + head);
        out->lim.max_header_line = get_u32(in + head + 4);
        out->lim.max_header_count = get_u32(in + head + 8);
        out->lim.max_head_size = get_u32(in + head + 12);
        out->lim.max_chunk_line = get_u32(in + head + 16);
        if (out->lim.max_header_count > CHECKS_MAX_HEADER_COUNT)
            out->lim.max_header_count = CHECKS_MAX_HEADER_COUNT;
        head += 20;
    }
    out->data = in + head;
    out->len = n - head;
    out->split = get_u16(in + 1) % (out->len + 1);
    return 1;
}

size_t seed_encode_stream(const fw_limits *lim, size_t split, const void *data,
                          size_t len, unsigned char *out, size_t cap)
{
    unsigned flags = lim->flags & (FW_ALLOW_BARE_LF | FW_ALLOW_MISSING_HOST);
    int preset = CHECKS_LIMITS_CUSTOM;
    for (int p = CHECKS_LIMITS_DEFAULT; p < CHECKS_LIMITS_CUSTOM; p++) {
        fw_limits known = checks_limits(p, flags);
        if (memcmp(&known, lim, sizeof known) == 0) {
            preset = p;
            break;
        }
    }
    size_t head = preset == CHECKS_LIMITS_CUSTOM ? 23 : 3;
    if (cap < head + len)
        return 0;
    out[0] = (unsigned char)(flags | (unsigned)preset << 2);
    put_u16(out + 1, split);
    if (preset == CHECKS_LIMITS_CUSTOM) {
        put_u32(out + 3, lim->max_request_line);
        put_u32(out + 7, lim->max_header_line);
        put_u32(out + 11, lim->max_header_count);
        put_u32(out + 15, lim->max_head_size);
        put_u32(out + 19, lim->max_chunk_line);
    }
    if (len > 0)
        memcpy(out + head, data, len);
    return head + len;
}

/* Take a u16 length then that many bytes (clamped to what is left). */
static const char *take_sized(const unsigned char **in, size_t *n, size_t *len)
{
    const char *start;
    if (*n < 2) {
        *len = 0;
        return (const char *)*in;
    }
    *len = get_u16(*in);
    *in += 2;
    *n -= 2;
    if (*len > *n)
        *len = *n;
    start = (const char *)*in;
    *in += *len;
    *n -= *len;
    return start;
}

int seed_decode_serialize(const unsigned char *in, size_t n, serialize_seed *out)
{
    if (n < 4)
        return 0;
    out->flags = in[0] & (FW_RESP_CHUNKED | FW_RESP_CLOSE | FW_RESP_KEEP_ALIVE);
    out->cap_hint = get_u16(in + 1);
    out->nfields = in[3];
    in += 4;
    n -= 4;
    out->status = take_sized(&in, &n, &out->status_len);
    out->date = take_sized(&in, &n, &out->date_len);
    out->server = take_sized(&in, &n, &out->server_len);
    out->fields = (const char *)in;
    out->fields_len = n;
    return 1;
}

size_t seed_encode_serialize(const serialize_seed *s, unsigned char *out, size_t cap)
{
    size_t need = 4 + 6 + s->status_len + s->date_len + s->server_len + s->fields_len;
    if (cap < need || s->status_len > 0xffff || s->date_len > 0xffff ||
        s->server_len > 0xffff || s->nfields > 0xff)
        return 0;
    unsigned char *p = out;
    *p++ = (unsigned char)s->flags;
    put_u16(p, s->cap_hint > 0xffff ? 0xffff : s->cap_hint);
    p += 2;
    *p++ = (unsigned char)s->nfields;
    const char *parts[3] = {s->status, s->date, s->server};
    size_t lens[3] = {s->status_len, s->date_len, s->server_len};
    for (int i = 0; i < 3; i++) {
        put_u16(p, lens[i]);
        p += 2;
        if (lens[i])
            memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    if (s->fields_len)
        memcpy(p, s->fields, s->fields_len);
    return need;
}
