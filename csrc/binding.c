/*
 * binding.c - fw_parse_packed and fw_parse_head, the calls behind the Python
 * parser (see fw_binding.h for the packed layout and the result's bits).
 *
 * The packed form is written in place, front to back, in one pass per part:
 * the values (each field's value joined with those of its later namesakes),
 * method, target, version, query, PATH_INFO, then the keys.  Repeated names
 * are found by fw_index_names (parser.c) in scratch space taken from `out`
 * right after the packed bytes, so no head, however many fields it has,
 * costs more than O(L log n), and nothing is allocated or copied twice.
 * fw_parse_head first looks the head's field names up in the thread's memo
 * (fw_names_memo): on a hit the index is the memo's and no key is written.
 */
#include "fastwsgi.h"
#include "fw_binding.h"
#include "fw_internal.h"

static size_t fw_put_field(unsigned char *o, size_t pos, const void *src, size_t len,
                           unsigned char sep)
{
    memcpy(o + pos, src, len);
    pos += len;
    o[pos] = sep;
    return pos + 1;
}

/* ---- the memo of field-name sequences ------------------------------------------- */

/* Bytes the head's names take in a memo slot (name + ':' each), or 0 when the
 * head is not memoised (no fields, too many, too long). */
static size_t fw_memo_size(const fw_header *headers, uint32_t n)
{
    size_t size = 0;
    uint32_t i;
    if (n == 0 || n > FW_MEMO_FIELDS)
        return 0;
    for (i = 0; i < n; i++)
        size += (size_t)headers[i].name_len + 1;
    return size <= FW_MEMO_NAME_BYTES ? size : 0;
}

/* The slot holding exactly these names in this order, or -1.  ':' ends each
 * name in a slot (it is no tchar), so different splits never match. */
static int fw_memo_find(const fw_names_memo *memo, const unsigned char *b, const fw_header *headers,
                        uint32_t n, size_t size)
{
    uint32_t slot, i;
    for (slot = 0; slot < FW_MEMO_SLOTS; slot++) {
        const unsigned char *names = memo->names[slot];
        size_t at = 0;
        if (memo->nfields[slot] != n || memo->names_len[slot] != size)
            continue;
        for (i = 0; i < n; i++) {
            const fw_header *h = &headers[i];
            if (memcmp(names + at, b + h->name_off, h->name_len) != 0 || names[at + h->name_len] != ':')
                break;
            at += (size_t)h->name_len + 1;
        }
        if (i == n)
            return (int)slot;
    }
    return -1;
}

static uint32_t fw_memo_store(fw_names_memo *memo, const unsigned char *b, const fw_header *headers,
                              uint32_t n, size_t size, const uint32_t *next)
{
    uint32_t slot = memo->clock % FW_MEMO_SLOTS, i;
    unsigned char *names = memo->names[slot];
    size_t at = 0;
    memo->clock = (slot + 1) % FW_MEMO_SLOTS;
    for (i = 0; i < n; i++) {
        memcpy(names + at, b + headers[i].name_off, headers[i].name_len);
        at += headers[i].name_len;
        names[at++] = ':';
    }
    memcpy(memo->next[slot], next, n * sizeof *next);
    memo->nfields[slot] = n;
    memo->names_len[slot] = (uint32_t)size;
    memo->stamp[slot] = ++memo->stores;
    return slot;
}

/* ---- packing ----------------------------------------------------------------------- */

typedef struct fw_packed {
    size_t len;          /* bytes written */
    size_t values_len;   /* of which the fields' values (each followed by its separator) */
    uint32_t nkeys;
    int path_has_sep;    /* PATH_INFO holds a NUL or the separator: a split would be ambiguous */
    int keys_written;
    int memo_slot;       /* -1: none */
} fw_packed;

/* Write the packed form of a complete head into o[0:cap], parts separated by
 * `sep`; 0 on success, FW_PACKED_TOO_SMALL when cap is short (the bytes
 * written are always fewer than the `need` computed here).  With a memo, a head whose names are
 * in it gets no keys; one that could be is stored after packing. */
FW_NOINLINE  /* keeps the prologue of the callers' incomplete path short */
static int fw_pack(const unsigned char *b, const fw_request *req, const fw_header *headers,
                   unsigned char *o, size_t cap, unsigned char sep, fw_names_memo *memo,
                   fw_packed *res)
{
    size_t pos = 0, path_start, path_len, need, scratch_at, memo_size = 0;
    uint32_t nkeys = 0, i, n = req->num_headers, host_field = UINT32_MAX;
    const uint32_t *next;
    int slot = -1;
    fw_env_host host;
    int has_host = fw_env_host_of(b, req, headers, &host);
    /* absolute-form without a Host field: HTTP_HOST is a key the names do not give, so the memo
     * (names -> keys) is not used for this head */
    int extra_host = has_host && host.field == n;

    /* values, method, target, version, query, PATH_INFO, keys: at most this */
    need = (size_t)req->method_len + req->target_len + 8 + req->query_len + 4 +
           fw_environ_size(req, headers, has_host ? &host : NULL) + 1;
    /* then the name index's scratch, word-aligned (the address may be odd) */
    scratch_at = need + ((4u - (((uintptr_t)o + need) & 3u)) & 3u);
    if (scratch_at > cap || (cap - scratch_at) / 4 < fw_names_scratch_words(n))
        return FW_PACKED_TOO_SMALL;
    if (memo != NULL && !extra_host && (memo_size = fw_memo_size(headers, n)) != 0)
        slot = fw_memo_find(memo, b, headers, n, memo_size);
    if (slot >= 0)
        next = memo->next[slot];
    else
        next = fw_index_names(b, headers, n, (uint32_t *)(void *)(o + scratch_at));

    if (has_host)
        host_field = host.field;
    for (i = 0; i < n; i++) {                       /* ( VALUE \0 )* */
        if (next[i] & FW_NAME_NO_KEY)
            continue;
        if (i == host_field) {                      /* the Host field (never repeated) */
            memcpy(o + pos, b + host.off, host.len);
            pos += host.len;
        } else {
            pos += fw_write_value(b, headers, next, i, o + pos);
        }
        o[pos++] = sep;
        nkeys++;
    }
    if (extra_host) {
        pos = fw_put_field(o, pos, b + host.off, host.len, sep);
        nkeys++;
    }
    res->values_len = pos;
    pos = fw_put_field(o, pos, b + req->method_off, req->method_len, sep);
    pos = fw_put_field(o, pos, b + req->target_off, req->target_len, sep);
    pos = fw_put_field(o, pos, b + req->version_off, 8, sep);
    pos = fw_put_field(o, pos, b + req->query_off, req->query_len, sep);
    path_start = pos;
    path_len = fw_write_path(b, req, o + pos);
    pos += path_len;
    res->path_has_sep = path_len > 0 && (memchr(o + path_start, '\0', path_len) != NULL ||
                                         memchr(o + path_start, sep, path_len) != NULL);
    res->keys_written = slot < 0;
    if (slot < 0) {                                 /* SEP KEY ( SEP KEY )* */
        o[pos++] = sep;
        for (i = 0; i < n; i++) {
            if (next[i] & FW_NAME_NO_KEY)
                continue;
            pos += fw_write_key(b, &headers[i], o + pos);
            o[pos++] = sep;
        }
        if (extra_host)
            pos = fw_put_field(o, pos, "HTTP_HOST", 9, sep);
        if (nkeys > 0)
            pos--;                                  /* no NUL after the last key */
        if (memo_size != 0)
            slot = (int)fw_memo_store(memo, b, headers, n, memo_size, next);
    }
    res->len = pos;
    res->nkeys = nkeys;
    res->memo_slot = slot;
    return 0;
}

static unsigned long long fw_framing_info(const fw_request *req)
{
    unsigned long long info = (req->flags & FW_PACKED_FLAGS_MASK) |
                              ((unsigned long long)req->version_minor << FW_PACKED_MINOR_SHIFT);
    if (req->content_length >= 0)
        info |= FW_PACKED_HAS_LENGTH;
    return info;
}

static FW_NOINLINE long long fw_parse_packed_call(const char *buf, size_t len, const fw_limits *lim,
                                                  fw_request *req, fw_header *headers, char *out,
                                                  size_t cap, int fresh)
{
    fw_packed res;
    unsigned long long info;
    long head;
    int status;

    if (fresh)
        fw_request_init(req);
    head = fw_parse_request(buf, len, lim, req, headers);
    if (head < 0)
        return head;
    if (cap > 0xFFFFFFFFu)
        cap = 0xFFFFFFFFu;                          /* the length must fit in 32 bits */
    status = fw_pack((const unsigned char *)buf, req, headers, (unsigned char *)out, cap, '\0',
                     NULL, &res);
    if (status != 0)
        return status;
    info = fw_framing_info(req);
    if (res.path_has_sep || res.nkeys > FW_PACKED_MAX_KEYS)
        info |= FW_PACKED_USE_ENVIRON;
    else
        info |= (unsigned long long)res.nkeys << FW_PACKED_KEYS_SHIFT;
    return (long long)((info << 32) | res.len);
}

/* What fw_parse_head returns for an incomplete head. */
static long long fw_head_incomplete(const fw_parser *p)
{
    return p->req.num_headers > 0 && p->own_headers == NULL ? FW_HEAD_KEEP_FIELDS : FW_INCOMPLETE;
}

/* Whether the head packed in p->scratch->out (names in memo slot res->memo_slot) has the names
 * and values p kept last; if so, its values are dropped from the output (FW_HEAD_REPEAT). */
static int fw_repeats_kept(fw_parser *p, fw_packed *res)
{
    fw_scratch *s = p->scratch;
    if (p->prev_stamp != s->memo.stamp[res->memo_slot] || p->prev_len != res->values_len ||
        memcmp(p->prev, s->out, res->values_len) != 0)
        return 0;
    res->len -= res->values_len;
    memmove(s->out, s->out + res->values_len, res->len);
    p->last_change = 0;                             /* A, B, A, B: B is a change each time */
    return 1;
}

/* Whether the head packed in p->scratch->out (names in memo slot res->memo_slot, values not all
 * those kept) has the names p kept last and at most FW_HEAD_CHANGED_MAX values that differ from
 * theirs, other than the last such head's (p->last_change: the FNV-1a hash of their indexes and
 * values; the same change twice in a row, a cookie set once, goes the FOUND way and is kept, so
 * that the heads after it repeat); if so, the output becomes the values that differ, the request
 * fields and those values' indexes (FW_HEAD_CHANGED, fw_binding.h).  Compares value by value
 * (each ends at a SEP: none is inside); the output is rewritten only once the answer is known,
 * front to back.  It grows by at most nkeys + 1 bytes, and fw_pack's `need` counted the keys,
 * which a head found in the memo does not write (at least 6 bytes each): the capacity holds it
 * and its NUL. */
static int fw_changes_kept(fw_parser *p, fw_packed *res)
{
    fw_scratch *s = p->scratch;
    unsigned char *o = (unsigned char *)s->out;
    const unsigned char *kept = (const unsigned char *)p->prev;
    size_t kept_left = p->prev_len, at = 0, to, i, j, n = res->nkeys, changed = 0;
    uint64_t hash = UINT64_C(0xcbf29ce484222325);
    size_t max_changed = FW_HEAD_CHANGED_MAX(n);
    uint32_t off[FW_MEMO_FIELDS / 2], len[FW_MEMO_FIELDS / 2];
    unsigned char index[FW_MEMO_FIELDS / 2];

    if (p->prev_stamp != s->memo.stamp[res->memo_slot] || max_changed == 0)
        return 0;
    for (i = 0; i < n; i++) {
        const unsigned char *v_end = memchr(o + at, FW_HEAD_SEP, res->values_len - at);
        const unsigned char *k_end = memchr(kept, FW_HEAD_SEP, kept_left);
        size_t v_len, k_len;
        if (v_end == NULL || k_end == NULL)
            return 0;                               /* not the layout kept: cannot happen */
        v_len = (size_t)(v_end - (o + at));
        k_len = (size_t)(k_end - kept);
        if (v_len != k_len || memcmp(o + at, kept, v_len) != 0) {
            if (changed == max_changed)
                return 0;
            off[changed] = (uint32_t)at;
            len[changed] = (uint32_t)v_len + 1;     /* with its SEP */
            index[changed++] = (unsigned char)(FW_HEAD_CHANGE_INDEX_BASE + i);
            hash = (hash ^ (FW_HEAD_CHANGE_INDEX_BASE + i)) * UINT64_C(0x100000001b3);
            for (j = 0; j < v_len; j++)
                hash = (hash ^ o[at + j]) * UINT64_C(0x100000001b3);
        }
        at += v_len + 1;
        kept = k_end + 1;
        kept_left -= k_len + 1;
    }
    hash |= 1;                                      /* 0: no change since the values were kept */
    if (changed == 0 || hash == p->last_change)
        return 0;                                   /* fw_repeats_kept's case; the same change again */
    p->last_change = hash;
    for (i = 0, to = 0; i < changed; i++) {         /* to <= off[i]: moves go forward */
        memmove(o + to, o + off[i], len[i]);
        to += len[i];
    }
    memmove(o + to, o + res->values_len, res->len - res->values_len);  /* METHOD ... PATH_INFO */
    to += res->len - res->values_len;
    o[to++] = FW_HEAD_SEP;
    memcpy(o + to, index, changed);
    res->len = to + changed;
    return 1;
}

/* Keep the values of the head packed in p->scratch->out (names in memo slot res->memo_slot) for
 * the next head to repeat, when they fit p->prev (NULL until Python sets it). */
static void fw_keep_values(fw_parser *p, const fw_packed *res)
{
    fw_scratch *s = p->scratch;
    if (p->prev != NULL && res->values_len <= p->prev_cap) {
        memcpy(p->prev, s->out, res->values_len);
        p->prev_len = (uint32_t)res->values_len;
        p->last_change = 0;
        p->prev_stamp = s->memo.stamp[res->memo_slot];
    } else {
        p->prev_stamp = 0;
    }
}

static FW_NOINLINE long long fw_parse_head_call(fw_parser *p, const char *buf, size_t len,
                                                int fresh)
{
    fw_request *req = &p->req;
    fw_scratch *s = p->scratch;
    fw_header *headers = p->own_headers != NULL ? p->own_headers : s->headers;
    unsigned long keys;
    fw_packed res;
    long head;
    int status;

    if (fresh)
        fw_request_init(req);
    head = fw_parse_request(buf, len, p->lim, req, headers);
    if (head < 0)
        return head == FW_INCOMPLETE ? fw_head_incomplete(p) : head;
    status = fw_pack((const unsigned char *)buf, req, headers, (unsigned char *)s->out, s->cap,
                     FW_HEAD_SEP, &s->memo, &res);
    if (status != 0)
        return status;
    if (res.path_has_sep || (unsigned long)head > FW_HEAD_CONSUMED_MASK) {
        if (res.keys_written && res.memo_slot >= 0)
            s->memo.nfields[res.memo_slot] = 0;     /* Python will not learn this slot's keys */
        keys = FW_HEAD_SLOW;
        head = 0;       /* may not fit its bits: the caller reads the length from the struct */
    } else if (!res.keys_written) {
        if (fw_repeats_kept(p, &res)) {
            keys = FW_HEAD_REPEAT;
        } else if (fw_changes_kept(p, &res)) {
            keys = FW_HEAD_CHANGED;
        } else {
            keys = (unsigned long)res.memo_slot;    /* FW_HEAD_FOUND + slot */
            fw_keep_values(p, &res);
        }
    } else {
        keys = res.memo_slot >= 0 ? FW_HEAD_STORED + (unsigned long)res.memo_slot : FW_HEAD_NEW;
        if (res.nkeys == 0)
            res.len--;                              /* no separator after PATH_INFO */
        if (res.memo_slot >= 0)
            fw_keep_values(p, &res);                /* new names: nothing kept can match them */
    }
    s->out[res.len] = '\0';                         /* fewer than `need` bytes were written */
    return (long long)((unsigned long)head |
                       ((unsigned long)(req->flags & FW_PACKED_FLAGS_MASK) << FW_HEAD_FLAGS_SHIFT) |
                       ((unsigned long)req->version_minor << FW_HEAD_MINOR_SHIFT) |
                       (keys << FW_HEAD_KEYS_SHIFT));
}

/*
 * The entries.  A head fed in small pieces makes many calls that add a few
 * bytes and find no LF: fw_still_incomplete answers those before any set-up
 * (the rest is a tail call), so such a call costs a few dozen instructions.
 */
long long fw_parse_packed(const char *buf, size_t len, const fw_limits *lim, fw_request *req,
                          fw_header *headers, char *out, size_t cap, int fresh)
{
    if (!fresh && fw_still_incomplete((const unsigned char *)buf, len, lim, req))
        return FW_INCOMPLETE;
    return fw_parse_packed_call(buf, len, lim, req, headers, out, cap, fresh);
}

long long fw_parse_head(fw_parser *p, const char *buf, size_t len, int fresh)
{
    if (!fresh && fw_still_incomplete((const unsigned char *)buf, len, p->lim, &p->req))
        return fw_head_incomplete(p);
    return fw_parse_head_call(p, buf, len, fresh);
}
