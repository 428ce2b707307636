/*
 * binding.c - fw_parse_packed, the single call behind the Python parser (see
 * fw_binding.h for the packed layout and the result's bits).
 *
 * fw_write_environ (parser.c) writes PATH_INFO, the keys, then the values;
 * the packed layout wants the values first and the keys last (so Python can
 * split off the keys as one string and look their tuple up in a cache), so
 * the environ is written into the upper half of `out` and copied into place.
 */
#include "fastwsgi.h"
#include "fw_binding.h"
#include "fw_internal.h"

static size_t fw_put_field(unsigned char *o, size_t pos, const void *src, size_t len)
{
    memcpy(o + pos, src, len);
    pos += len;
    o[pos] = '\0';
    return pos + 1;
}

long long fw_parse_packed(const char *buf, size_t len, const fw_limits *lim, fw_request *req,
                          fw_header *headers, char *out, size_t cap, int fresh)
{
    unsigned char *o = (unsigned char *)out, *env, *keys, *values;
    size_t pos = 0, path_len, env_len, need;
    uint32_t nkeys, i;
    unsigned long long info;
    long head;

    if (fresh)
        fw_request_init(req);
    head = fw_parse_request(buf, len, lim, req, headers);

    if (head < 0)
        return head;
    if (cap > 0xFFFFFFFFu)
        cap = 0xFFFFFFFFu;                          /* the length must fit in 32 bits */
    /* method, target, version, query (each + NUL), then the environ (+ 1 NUL) */
    need = (size_t)req->method_len + req->target_len + 8 + req->query_len + 4 +
           fw_environ_size(req, headers) + 1;
    if (need > cap / 2)
        return FW_PACKED_TOO_SMALL;
    /* env = PATH_INFO ( \0 KEY )* ( \0 VALUE )*, in the upper half */
    env = o + need;
    env_len = fw_write_environ((const unsigned char *)buf, req, headers, env,
                               FW_ENV_SEP_FIRST | FW_ENV_KEYS_FIRST, &path_len, &nkeys);
    keys = env + path_len;                          /* at the NUL before the first key */
    values = keys;                                  /* at the NUL before the first value */
    for (i = 0; i < nkeys; i++)                     /* keys and values hold no NUL */
        values = (unsigned char *)memchr(values + 1, '\0', (size_t)(env + env_len - values - 1));

    if (nkeys > 0)                                  /* VALUE ( \0 VALUE )* \0 */
        pos = fw_put_field(o, pos, values + 1, (size_t)(env + env_len - values - 1));
    pos = fw_put_field(o, pos, buf + req->method_off, req->method_len);
    pos = fw_put_field(o, pos, buf + req->target_off, req->target_len);
    pos = fw_put_field(o, pos, buf + req->version_off, 8);
    pos = fw_put_field(o, pos, buf + req->query_off, req->query_len);
    pos = fw_put_field(o, pos, env, path_len);
    if (nkeys > 0) {                                /* KEY ( \0 KEY )* */
        memcpy(o + pos, keys + 1, (size_t)(values - keys - 1));
        pos += (size_t)(values - keys - 1);
    }

    info = (req->flags & FW_PACKED_FLAGS_MASK) |
           ((unsigned long long)req->version_minor << FW_PACKED_MINOR_SHIFT);
    if (req->content_length >= 0)
        info |= FW_PACKED_HAS_LENGTH;
    if ((path_len > 0 && memchr(env, '\0', path_len) != NULL) || nkeys > FW_PACKED_MAX_KEYS)
        info |= FW_PACKED_USE_ENVIRON;
    else
        info |= (unsigned long long)nkeys << FW_PACKED_KEYS_SHIFT;
    return (long long)((info << 32) | pos);
}
