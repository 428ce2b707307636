/*
 * uwsgi_binding.c - fw_parse_uwsgi_packed, the single call behind the C
 * backend's UwsgiParser (see uwsgi_binding.h for the layout and the bits).
 */
#include "fastwsgi.h"
#include "uwsgi_binding.h"
#include "fw_internal.h"

long long fw_parse_uwsgi_packed(const char *buf, size_t len, const fw_limits *lim, fw_uwsgi *pkt,
                                fw_header *vars, size_t max_vars, char *out, size_t cap)
{
    long packet = fw_parse_uwsgi(buf, len, lim, pkt, vars, max_vars);
    size_t pos = 0;
    uint32_t i;
    unsigned long long info;

    if (packet < 0)
        return packet;
    if (cap < pkt->datasize)
        return FW_UWSGI_PACKED_TOO_SMALL;
    for (i = 0; i < pkt->num_vars; i++) {          /* VALUE \0, for each pair */
        memcpy(out + pos, buf + vars[i].value_off, vars[i].value_len);
        pos += vars[i].value_len;
        out[pos++] = '\0';
    }
    for (i = 0; i < pkt->num_vars; i++) {          /* KEY ( \0 KEY )* */
        if (i > 0)
            out[pos++] = '\0';
        memcpy(out + pos, buf + vars[i].name_off, vars[i].name_len);
        pos += vars[i].name_len;
    }
    info = (unsigned long long)(pkt->content_length >= 0 ? FW_UWSGI_PACKED_HAS_LENGTH : 0) |
           (unsigned long long)(pkt->num_vars & FW_UWSGI_PACKED_VARS_MASK) << FW_UWSGI_PACKED_VARS_SHIFT |
           (unsigned long long)pkt->datasize << FW_UWSGI_PACKED_DATASIZE_SHIFT;
    return (long long)(info << 32 | pos);
}
