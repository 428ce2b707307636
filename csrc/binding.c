/*
 * binding.c - fw_parse_packed, the single call behind the Python parser (see
 * fw_binding.h for the packed layout and the result's bits).
 */
#include "fastwsgi.h"
#include "fw_binding.h"
#include "fw_internal.h"

static size_t fw_put_field(unsigned char *o, size_t pos, const char *buf, uint32_t off,
                           uint32_t len)
{
    memcpy(o + pos, buf + off, len);
    pos += len;
    o[pos] = '\0';
    return pos + 1;
}

long long fw_parse_packed(const char *buf, size_t len, const fw_limits *lim, fw_request *req,
                          fw_header *headers, char *out, size_t cap, int fresh)
{
    unsigned char *o = (unsigned char *)out;
    size_t pos = 0, path_start, path_len;
    uint32_t nkeys;
    unsigned long long info;
    long head;

    if (fresh)
        fw_request_init(req);
    head = fw_parse_request(buf, len, lim, req, headers);

    if (head < 0)
        return head;
    if (cap > 0xFFFFFFFFu)
        cap = 0xFFFFFFFFu;                          /* the length must fit in 32 bits */
    /* prefix: method, target, version, query (each + NUL), then the environ */
    if ((size_t)req->method_len + req->target_len + 8 + req->query_len + 4 +
            fw_environ_size(req, headers) + 1 > cap)
        return FW_PACKED_TOO_SMALL;
    pos = fw_put_field(o, pos, buf, req->method_off, req->method_len);
    pos = fw_put_field(o, pos, buf, req->target_off, req->target_len);
    pos = fw_put_field(o, pos, buf, req->version_off, 8);
    pos = fw_put_field(o, pos, buf, req->query_off, req->query_len);
    path_start = pos;
    pos += fw_write_environ((const unsigned char *)buf, req, headers, o + pos,
                            FW_ENV_SEP_FIRST | FW_ENV_KEYS_FIRST, &path_len, &nkeys);

    info = (req->flags & FW_PACKED_FLAGS_MASK) |
           ((unsigned long long)req->version_minor << FW_PACKED_MINOR_SHIFT);
    if (req->content_length >= 0)
        info |= FW_PACKED_HAS_LENGTH;
    if ((path_len > 0 && memchr(o + path_start, '\0', path_len) != NULL) ||
        nkeys > FW_PACKED_MAX_KEYS)
        info |= FW_PACKED_USE_ENVIRON;
    else
        info |= (unsigned long long)nkeys << FW_PACKED_KEYS_SHIFT;
    return (long long)((info << 32) | pos);
}
