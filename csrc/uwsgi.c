/*
 * uwsgi.c - fw_parse_uwsgi, the uwsgi packet parser (docs/uwsgi-spec.md).
 *
 * Theory of operation
 * -------------------
 * A uwsgi packet is a 4-byte header (modifier1, datasize u16 LE, modifier2)
 * and a block of datasize bytes of (keysize u16 LE, key, valsize u16 LE,
 * value) pairs: the CGI variables a front end (nginx uwsgi_pass) extracted
 * from the client's request.  The parser keeps no state: every call starts
 * from the first byte, but until the packet is complete it only looks at the
 * header (O(1)), so a packet fed in n pieces is parsed once, by the call
 * that completes it.
 *
 * The spec's checks run in its order, so the first failing rule decides
 * whatever the split:
 *   1-2  the header: modifiers (each as soon as its byte is in), then the
 *        packet size against max_head_size;
 *   3    fw_uwsgi_block_ok: the block's structure as a whole (one pass);
 *   4    fw_uwsgi_take_pairs: pair by pair (value bytes, value length,
 *        counts, a repeated CONTENT_LENGTH), storing offsets in vars[] and
 *        noting where the variables the Head is made of are (the last of a
 *        repeated key: nginx sends a uwsgi_param that overrides one of
 *        uwsgi_params as a second var, and uWSGI takes the last);
 *   5    fw_uwsgi_check_required: REQUEST_METHOD, CONTENT_LENGTH,
 *        SERVER_PROTOCOL.
 * Both passes read only inside the block (every size is checked against
 * the bytes left before it is used), so the time is linear in datasize.
 * Nothing is allocated and nothing global is written.
 */
#include "fastwsgi.h"
#include "fw_internal.h"

#define FW_UWSGI_HEADER 4u

static size_t fw_u16le(const unsigned char *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8;
}

static long fw_uwsgi_fail(fw_uwsgi *pkt, int error)
{
    pkt->error = error;
    pkt->status = fw_error_status(error);
    return FW_ERROR;
}

/* Rule 3: every pair lies inside the block, every key is 1*(0x21-0x7E). */
static int fw_uwsgi_block_ok(const unsigned char *b, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        size_t key_len, value_len;
        if (size - pos < 2)
            return 0;                      /* the block ends inside a key size */
        key_len = fw_u16le(b + pos);
        pos += 2;
        if (key_len == 0 || size - pos < key_len + 2)
            return 0;                      /* empty key, or key / value size past the end */
        if (fw_span(b + pos, key_len, FW_C_TARGET) != key_len)
            return 0;                      /* FW_C_TARGET is exactly 0x21-0x7E */
        pos += key_len;
        value_len = fw_u16le(b + pos);
        pos += 2;
        if (size - pos < value_len)
            return 0;
        pos += value_len;
    }
    return 1;
}

#define FW_KEY_IS(key, key_len, lit) \
    ((key_len) == sizeof(lit) - 1 && memcmp((key), (lit), sizeof(lit) - 1) == 0)

/* Note a CGI variable the Head is made of (index i in vars[]); a later one
 * of the same key replaces it, except a second CONTENT_LENGTH: the body's
 * framing must be unambiguous.  Returns FW_E_UWSGI_DUPLICATE_VAR for that,
 * else FW_E_NONE. */
static int fw_uwsgi_note_var(fw_uwsgi *pkt, const unsigned char *key, size_t key_len, uint32_t i)
{
    if (FW_KEY_IS(key, key_len, "REQUEST_METHOD"))
        pkt->method_var = i;
    else if (FW_KEY_IS(key, key_len, "PATH_INFO"))
        pkt->path_var = i;
    else if (FW_KEY_IS(key, key_len, "QUERY_STRING"))
        pkt->query_var = i;
    else if (FW_KEY_IS(key, key_len, "REQUEST_URI"))
        pkt->uri_var = i;
    else if (FW_KEY_IS(key, key_len, "SERVER_PROTOCOL"))
        pkt->protocol_var = i;
    else if (FW_KEY_IS(key, key_len, "CONTENT_LENGTH")) {
        if (pkt->length_var != FW_UWSGI_NO_VAR)
            return FW_E_UWSGI_DUPLICATE_VAR;
        pkt->length_var = i;
    }
    return FW_E_NONE;
}

/* Rule 4, pair by pair in block order; the block passed rule 3.  Returns an
 * FW_E_* code (FW_E_NONE when every pair is accepted). */
static int fw_uwsgi_take_pairs(const unsigned char *buf, size_t size, const fw_limits *lim,
                               fw_uwsgi *pkt, fw_header *vars, size_t max_vars)
{
    uint32_t ncgi = 0, nhttp = 0;
    size_t pos = FW_UWSGI_HEADER, end = FW_UWSGI_HEADER + size;

    while (pos < end) {
        size_t key_off = pos + 2, key_len = fw_u16le(buf + pos);
        size_t value_off = key_off + key_len + 2, value_len = fw_u16le(buf + key_off + key_len);
        const unsigned char *key = buf + key_off, *value = buf + value_off;
        size_t i;
        int is_http;
        pos = value_off + value_len;

        for (i = 0; i < value_len; i++)
            if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
                return FW_E_BAD_HEADER_VALUE;
        if (FW_KEY_IS(key, key_len, "REQUEST_URI")) {
            if (value_len > lim->max_request_line)
                return FW_E_URI_TOO_LONG;
        } else if (value_len > lim->max_header_line) {
            return FW_E_HEADER_LINE_TOO_LONG;
        }
        is_http = key_len >= 5 && memcmp(key, "HTTP_", 5) == 0;
        if (is_http) {
            if (++nhttp > lim->max_header_count)
                return FW_E_TOO_MANY_HEADERS;
        } else if (ncgi >= FW_UWSGI_MAX_CGI_VARS) {
            return FW_E_TOO_MANY_HEADERS;
        }
        if (pkt->num_vars >= max_vars)
            return FW_E_BUFFER_TOO_SMALL;
        if (!is_http) {
            int error = fw_uwsgi_note_var(pkt, key, key_len, pkt->num_vars);
            if (error != FW_E_NONE)
                return error;
            ncgi++;
        }
        vars[pkt->num_vars].name_off = (uint32_t)key_off;
        vars[pkt->num_vars].name_len = (uint32_t)key_len;
        vars[pkt->num_vars].value_off = (uint32_t)value_off;
        vars[pkt->num_vars].value_len = (uint32_t)value_len;
        pkt->num_vars++;
    }
    return FW_E_NONE;
}

/* Rule 5: REQUEST_METHOD, CONTENT_LENGTH, SERVER_PROTOCOL. */
static int fw_uwsgi_check_required(const unsigned char *buf, fw_uwsgi *pkt, const fw_header *vars)
{
    const unsigned char *p;
    size_t n, i;

    if (pkt->method_var == FW_UWSGI_NO_VAR)
        return FW_E_BAD_METHOD;
    p = buf + vars[pkt->method_var].value_off;
    n = vars[pkt->method_var].value_len;
    if (n == 0 || fw_span(p, n, FW_C_TCHAR) != n)
        return FW_E_BAD_METHOD;

    if (pkt->length_var != FW_UWSGI_NO_VAR && vars[pkt->length_var].value_len > 0) {
        uint64_t value = 0;
        p = buf + vars[pkt->length_var].value_off;
        n = vars[pkt->length_var].value_len;
        for (i = 0; i < n; i++) {
            uint64_t digit;
            if (!FW_IS_DIGIT(p[i]))
                return FW_E_BAD_CONTENT_LENGTH;
            digit = (uint64_t)(p[i] - '0');
            if (value > (UINT64_C(0x7FFFFFFFFFFFFFFF) - digit) / 10)
                return FW_E_BAD_CONTENT_LENGTH;  /* beyond 2^63 - 1 */
            value = value * 10 + digit;
        }
        pkt->content_length = (int64_t)value;
    }

    if (pkt->protocol_var != FW_UWSGI_NO_VAR) {
        p = buf + vars[pkt->protocol_var].value_off;
        n = vars[pkt->protocol_var].value_len;
        if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || !FW_IS_DIGIT(p[5]) || p[6] != '.' ||
            !FW_IS_DIGIT(p[7]))
            return FW_E_BAD_VERSION;
        pkt->version_major = (uint32_t)(p[5] - '0');
        pkt->version_minor = (uint32_t)(p[7] - '0');
    }
    return FW_E_NONE;
}

long fw_parse_uwsgi(const char *buf, size_t len, const fw_limits *lim, fw_uwsgi *pkt,
                    fw_header *vars, size_t max_vars)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t size;
    int error;

    pkt->datasize = 0;
    pkt->num_vars = 0;
    pkt->method_var = pkt->path_var = pkt->query_var = FW_UWSGI_NO_VAR;
    pkt->uri_var = pkt->protocol_var = pkt->length_var = FW_UWSGI_NO_VAR;
    pkt->version_major = 1;
    pkt->version_minor = 0;
    pkt->content_length = -1;
    pkt->error = FW_E_NONE;
    pkt->status = 0;

    /* 1. modifiers, each as soon as its byte is in */
    if (len == 0)
        return FW_INCOMPLETE;
    if (b[0] != 0)
        return fw_uwsgi_fail(pkt, FW_E_UWSGI_BAD_MODIFIER);
    if (len < FW_UWSGI_HEADER)
        return FW_INCOMPLETE;
    if (b[3] != 0)
        return fw_uwsgi_fail(pkt, FW_E_UWSGI_BAD_MODIFIER);
    /* 2. size */
    size = fw_u16le(b + 1);
    pkt->datasize = (uint32_t)size;
    if (FW_UWSGI_HEADER + size > lim->max_head_size)
        return fw_uwsgi_fail(pkt, FW_E_HEAD_TOO_LARGE);
    if (len < FW_UWSGI_HEADER + size)
        return FW_INCOMPLETE;
    /* 3. block structure */
    if (!fw_uwsgi_block_ok(b + FW_UWSGI_HEADER, size))
        return fw_uwsgi_fail(pkt, FW_E_UWSGI_BAD_VARS);
    /* 4. per pair */
    error = fw_uwsgi_take_pairs(b, size, lim, pkt, vars, max_vars);
    /* 5. required and framing variables */
    if (error == FW_E_NONE)
        error = fw_uwsgi_check_required(b, pkt, vars);
    if (error != FW_E_NONE)
        return fw_uwsgi_fail(pkt, error);
    return (long)(FW_UWSGI_HEADER + size);
}
