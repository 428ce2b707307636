/*
 * check_head.c - check_head (checks.h): fw_parse_head (fw_binding.h), the call
 * behind the Python C backend, driven exactly as fastwsgi/parser/_cffi.py
 * drives it, every answer held to fw_parse_packed's for the same bytes
 * (check_request holds fw_parse_packed to an independent oracle).
 *
 * Theory of operation
 * -------------------
 * A head_scratch is one thread's fw_scratch plus what _cffi.py's
 * _ThreadScratch keeps beside it: the keys each memo slot stood for when C
 * reported them stored.  A head_parser is one RequestParser: its fw_parser,
 * the `fresh` flag, and parse_call(), which is RequestParser.parse() in C:
 * call; on FW_PACKED_TOO_SMALL grow the output to 8 * len + 128 and call
 * again (a second refusal is a failure: Python would recurse forever); on
 * FW_HEAD_KEEP_FIELDS copy the fields into an array of the parser's own.
 * Every answer of every call (the parser under test's and the others') goes
 * through check_answer against fw_parse_packed on the same bytes with a fresh
 * state: same outcome and error, same results in the state and the header
 * array, FW_HEAD_KEEP_FIELDS exactly when an incomplete head has fields and
 * no own array; on success head length, flags and minor in the result bits,
 * FW_HEAD_SLOW exactly for a PATH_INFO holding a NUL or the separator or a
 * head past FW_HEAD_CONSUMED_MASK, NEW exactly for names the memo cannot
 * hold, and the bytes: fw_parse_packed's with FW_HEAD_SEP for NUL, ended by
 * a NUL within the capacity, the keys present unless the memo says FOUND,
 * and then the keys Python holds for that slot equal to the head's own.
 * Each parser has a prev buffer (fw_parser.prev) and the checker notes the
 * keys and values of every FOUND or STORED answer whose values fit it: an
 * FW_HEAD_REPEAT answer must come after one with exactly these keys and
 * values and write only the request fields; a head parsed again right after
 * its values were kept must repeat, and the same head with one value byte
 * changed (check_one_value_changed) must not.  An FW_HEAD_CHANGED answer
 * must come after one with these keys, differ from the values kept in 1 to
 * FW_HEAD_CHANGED_MAX of them and write exactly those values, the request
 * fields and their indexes, and not be the same change as the last such
 * answer since values were kept or repeated.  Right after values were kept,
 * a head with one value changed must be FW_HEAD_CHANGED when that bound
 * allows one change, and FOUND otherwise; the same head again FOUND (kept),
 * then a repeat.
 *
 * Two scratches: `shared` lives for the whole run (test program or fuzzer),
 * so heads find names earlier inputs left in the memo, and `fresh` is
 * emptied for every input, so the first head misses (a hit there is a
 * failure), its repeat must hit, and the heads pipelined after it in the
 * input (parsed as the same connection's next requests) give a memo history
 * that one saved input reproduces.  Between two calls of a parser in pieces
 * another parser has its turn: the shared header array is overwritten and a
 * small head parsed through the same scratch (output, headers and memo).
 * Outputs end at a guard page: the capacity _cffi.py grows to (8 * len +
 * 128), the documented minimum (8 * head + 128, never refused), and smaller
 * ones around the smallest accepted capacity, around the answer's length and
 * sampled below (refused, or the same answer inside the capacity).
 */
#include <stdlib.h>

#include "../fw_binding.h"
#include "checks_util.h"
#include "guard.h"

#define KEYS_STATE(r) ((unsigned)((unsigned long long)(r) >> FW_HEAD_KEYS_SHIFT) & 0x1Fu)
#define RESULT_LIMIT (1LL << 30)  /* every result is below (fw_binding.h) */
#define PIPELINED_MAX 256         /* heads after the first one, per input */
#define SMALL_OUTPUT_SAMPLES 64   /* capacities tried away from the edges */

/* A parser's guard buffers: its input (copied anew for each call), its own header array and its
 * copy of the values it last packed (fw_parser.prev). */
typedef struct parser_buffers {
    guard_buf input, own, prev;
    bytes kept_keys, kept_values;  /* the keys and values (SEP-joined) of the head whose values C
                                      kept last, when `kept` */
    bytes last_change;             /* the indexes and values of the last FW_HEAD_CHANGED answer
                                      since values were kept or repeated, when `changed` */
} parser_buffers;

static size_t g_prev_cap;  /* the prev capacity parser_init gives (the Python layer's varies) */

static parser_buffers g_tested, g_other;

static size_t header_slots(const fw_limits *lim)
{
    return lim->max_header_count > 0 ? lim->max_header_count : 1;  /* _cffi.py: max(1, count) */
}

static size_t enough_for(size_t len)
{
    return 8 * len + 128;  /* "8 * head length + 128 always suffices" */
}

/* ---- the thread's buffers ---- */

typedef struct head_scratch {
    const char *name;
    fw_scratch *c;               /* in `mem`, ending at a guard page */
    guard_buf mem, out, headers;
    bytes keys[FW_MEMO_SLOTS];   /* _ThreadScratch.keys: SEP-joined */
    unsigned long stores;        /* answers that stored names in the memo */
} head_scratch;

static head_scratch g_shared = {.name = "shared memo"}, g_fresh = {.name = "fresh memo"};
static unsigned long history_hits;

static void scratch_set_out(head_scratch *hs, size_t cap)
{
    hs->c->out = (char *)guard_blank(&hs->out, cap, 0xEE);
    hs->c->cap = cap;
}

/* Ready for an input under `lim`; `empty` forgets the memo (and the keys). */
static void scratch_prepare(head_scratch *hs, const fw_limits *lim, int empty)
{
    if (hs->c == NULL || empty) {
        hs->c = (fw_scratch *)(void *)guard_blank(&hs->mem, sizeof(fw_scratch), 0);
        for (unsigned i = 0; i < FW_MEMO_SLOTS; i++)
            hs->keys[i].len = 0;
        hs->stores = 0;
    }
    hs->c->headers = (fw_header *)(void *)guard_blank(&hs->headers, header_slots(lim) * sizeof(fw_header),
                                                       0xA5);
    scratch_set_out(hs, enough_for(0));
}

/* ---- what fw_parse_packed says about the same bytes ---- */

typedef struct head_ref {
    long long ret;
    fw_request req;
    fw_header *headers;        /* req.num_headers entries when ret >= 0 */
    size_t headers_cap;
    int slow;                  /* must come back as FW_HEAD_SLOW */
    int memoised;              /* the names fit a memo slot */
    bytes packed;              /* through PATH_INFO, SEP-separated */
    bytes keys;                /* after PATH_INFO's SEP, SEP-separated (empty: no keys) */
} head_ref;

/* The input check_head runs on: its answer is asked for again and again. */
static struct {
    const unsigned char *data;
    size_t len;
    int known;
    head_ref ref;
} g_whole;

/* An absolute-form target and no Host field: HTTP_HOST is a key the names do not give
 * (RFC 9112 §3.2.2, fw_binding.h), so such a head is never memoised. */
static int host_from_target_alone(const unsigned char *data, const fw_request *req, const fw_header *headers)
{
    const unsigned char *t = data + req->target_off;
    if (t[0] == '/' || (req->target_len == 1 && t[0] == '*'))
        return 0;
    for (uint32_t i = 0; i < req->num_headers; i++)
        if (equal_nocase(data + headers[i].name_off, headers[i].name_len, "host"))
            return 0;
    return 1;
}

static void ref_parse_fresh(const unsigned char *data, size_t n, const fw_limits *lim, head_ref *ref)
{
    static unsigned char *out;
    static size_t out_cap;
    size_t slots = header_slots(lim), cap = enough_for(n);
    if (slots > ref->headers_cap &&
        (ref->headers = realloc(ref->headers, (ref->headers_cap = slots) * sizeof(fw_header))) == NULL)
        abort();
    if (cap > out_cap && (out = realloc(out, out_cap = cap)) == NULL)
        abort();
    fw_header *headers = ref->headers;
    ref->ret = fw_parse_packed((const char *)data, n, lim, &ref->req, headers, (char *)out, cap, 1);
    ref->packed.len = ref->keys.len = 0;
    if (ref->ret < 0)
        return;
    unsigned long long info = (unsigned long long)ref->ret >> 32;
    size_t len = (size_t)(ref->ret & 0xFFFFFFFF), nuls = 0, names = 0;
    size_t fields = (size_t)(info >> FW_PACKED_KEYS_SHIFT) + 5;  /* the (nkeys + 5)th NUL ends PATH_INFO */
    for (uint32_t i = 0; i < ref->req.num_headers; i++)
        names += headers[i].name_len + 1;
    ref->memoised = ref->req.num_headers > 0 && ref->req.num_headers <= FW_MEMO_FIELDS &&
                    names <= FW_MEMO_NAME_BYTES && !host_from_target_alone(data, &ref->req, headers);
    ref->slow = (info & FW_PACKED_USE_ENVIRON) || ref->req.line_start > FW_HEAD_CONSUMED_MASK ||
                memchr(out, FW_HEAD_SEP, len) != NULL;  /* only PATH_INFO can hold it */
    if (ref->slow)
        return;
    for (size_t at = 0; at < len;) {  /* NUL -> SEP, but the NUL after PATH_INFO splits packed | keys */
        const unsigned char *end = memchr(out + at, '\0', len - at);
        size_t part = end != NULL ? (size_t)(end - out) - at : len - at;
        bytes *to = nuls < fields ? &ref->packed : &ref->keys;
        bytes_put(to, out + at, part);
        at += part + 1;
        if (end != NULL && ++nuls != fields)
            bytes_putc(to, (unsigned char)FW_HEAD_SEP);
    }
}

static const head_ref *ref_parse(const unsigned char *data, size_t n, const fw_limits *lim)
{
    static head_ref other;
    if (data != g_whole.data || n != g_whole.len) {
        ref_parse_fresh(data, n, lim, &other);
        return &other;
    }
    if (!g_whole.known)
        ref_parse_fresh(data, n, lim, &g_whole.ref);
    g_whole.known = 1;
    return &g_whole.ref;
}

/* ---- one RequestParser ---- */

typedef struct head_parser {
    fw_parser p;
    head_scratch *hs;
    parser_buffers *bufs;
    int fresh;             /* the next call starts the request */
    int expect_hit;        /* its names were just seen: a complete head must be FOUND */
    int expect_repeat;     /* its names and values were just kept: must be FW_HEAD_REPEAT */
    int expect_change;     /* its names were just kept and a value changed: CHANGED if the bound
                              allows it, else FOUND */
    int kept;              /* C kept the values of its last FOUND or STORED head (bufs->kept_*) */
    int changed;           /* an FW_HEAD_CHANGED answer since then (bufs->last_change) */
    unsigned long refusals;
} head_parser;

static unsigned long repeats, changes;

static void parser_init(head_parser *hp, head_scratch *hs, const fw_limits *lim, parser_buffers *bufs)
{
    memset(hp, 0, sizeof *hp);
    memset(&hp->p.req, 0x5A, sizeof hp->p.req);  /* fresh = 1 must initialise it */
    hp->p.lim = lim;
    hp->p.scratch = hs->c;
    hp->hs = hs;
    hp->bufs = bufs;
    hp->fresh = 1;
    hp->p.prev = (char *)guard_blank(&bufs->prev, g_prev_cap, 0xC3);
    hp->p.prev_cap = (uint32_t)g_prev_cap;
}

/* The length of the values part of a packed head: everything before METHOD, which starts after
 * the fifth SEP from the end (no request field holds SEP when the head is not FW_HEAD_SLOW). */
static size_t values_len_of(const bytes *packed)
{
    size_t seps = 0, at = packed->len;
    while (at > 0)
        if (packed->p[--at] == FW_HEAD_SEP && ++seps == 5)
            return at + 1;
    return 0;
}

/* FW_HEAD_REPEAT: the head's names and values are those C kept, only the request fields written. */
static void check_repeat(const head_parser *hp, const head_ref *want, size_t len, const char *how)
{
    const fw_scratch *s = hp->hs->c;
    size_t values = values_len_of(&want->packed);
    repeats++;
    if (!hp->kept)
        fail("fw_parse_head (%s, %s): FW_HEAD_REPEAT with no values kept", how, hp->hs->name);
    else if (!same_bytes(hp->bufs->kept_keys.p, hp->bufs->kept_keys.len, want->keys.p, want->keys.len) ||
             !same_bytes(hp->bufs->kept_values.p, hp->bufs->kept_values.len, want->packed.p, values))
        fail("fw_parse_head (%s, %s): FW_HEAD_REPEAT for keys %s values %s; kept: keys %s values %s", how,
             hp->hs->name, show(want->keys.p, want->keys.len), show(want->packed.p, values),
             show(hp->bufs->kept_keys.p, hp->bufs->kept_keys.len), show(hp->bufs->kept_values.p, hp->bufs->kept_values.len));
    if (!same_bytes(s->out, len, want->packed.p + values, want->packed.len - values))
        fail("fw_parse_head (%s, %s): FW_HEAD_REPEAT wrote %s, expected %s", how, hp->hs->name,
             show(s->out, len), show(want->packed.p + values, want->packed.len - values));
}

/* The values (SEP-terminated, `count` of them in both) at which `now` differs from `kept`, as
 * FW_HEAD_CHANGE_INDEX_BASE + index, in order, into `index`; returns how many, or -1 when the two
 * do not hold `count` values each. */
static long differing_values(const bytes *kept, const unsigned char *now, size_t now_len, size_t count,
                             bytes *index, bytes *values)
{
    size_t k = 0, v = 0, i;
    long differ = 0;
    index->len = values->len = 0;
    for (i = 0; i < count; i++) {
        const unsigned char *k_end = memchr(kept->p + k, FW_HEAD_SEP, kept->len - k);
        const unsigned char *v_end = memchr(now + v, FW_HEAD_SEP, now_len - v);
        if (k_end == NULL || v_end == NULL)
            return -1;
        size_t k_len = (size_t)(k_end - (kept->p + k)), v_len = (size_t)(v_end - (now + v));
        if (!same_bytes(kept->p + k, k_len, now + v, v_len)) {
            bytes_putc(index, (unsigned char)(FW_HEAD_CHANGE_INDEX_BASE + i));
            bytes_put(values, now + v, v_len + 1);
            differ++;
        }
        k += k_len + 1;
        v += v_len + 1;
    }
    return k == kept->len && v == now_len ? differ : -1;
}

/* How many keys (values) a head with these SEP-joined keys has. */
static size_t keys_count(const bytes *keys)
{
    size_t n = keys->len > 0;
    for (size_t i = 0; i < keys->len; i++)
        n += keys->p[i] == FW_HEAD_SEP;
    return n;
}

/* FW_HEAD_CHANGED: names kept, 1 to FW_HEAD_CHANGED_MAX values differ, exactly those written,
 * not the same change as the last answer's; noted as the last change. */
static void check_change(head_parser *hp, const head_ref *want, size_t len, const char *how)
{
    static bytes index, values, expected;
    const fw_scratch *s = hp->hs->c;
    size_t n = keys_count(&want->keys), at = values_len_of(&want->packed);
    long differ;
    changes++;
    if (!hp->kept || !same_bytes(hp->bufs->kept_keys.p, hp->bufs->kept_keys.len, want->keys.p, want->keys.len)) {
        fail("fw_parse_head (%s, %s): FW_HEAD_CHANGED for keys %s; kept: %s", how, hp->hs->name,
             show(want->keys.p, want->keys.len),
             hp->kept ? show(hp->bufs->kept_keys.p, hp->bufs->kept_keys.len) : "nothing");
        return;
    }
    differ = differing_values(&hp->bufs->kept_values, want->packed.p, at, n, &index, &values);
    if (differ < 1 || (size_t)differ > FW_HEAD_CHANGED_MAX(n)) {
        fail("fw_parse_head (%s, %s): FW_HEAD_CHANGED with %ld of %zu values changed (values %s, kept %s)",
             how, hp->hs->name, differ, n, show(want->packed.p, at),
             show(hp->bufs->kept_values.p, hp->bufs->kept_values.len));
        return;
    }
    if (hp->changed && hp->bufs->last_change.len == index.len + values.len &&
        memcmp(hp->bufs->last_change.p, index.p, index.len) == 0 &&
        memcmp(hp->bufs->last_change.p + index.len, values.p, values.len) == 0)
        fail("fw_parse_head (%s, %s): FW_HEAD_CHANGED for the same change as the last answer's "
             "(it must be kept: FOUND)", how, hp->hs->name);
    expected.len = 0;  /* ( VALUE SEP )* METHOD ... PATH_INFO SEP INDEXES */
    bytes_put(&expected, values.p, values.len);
    bytes_put(&expected, want->packed.p + at, want->packed.len - at);
    bytes_putc(&expected, (unsigned char)FW_HEAD_SEP);
    bytes_put(&expected, index.p, index.len);
    if (!same_bytes(s->out, len, expected.p, expected.len))
        fail("fw_parse_head (%s, %s): FW_HEAD_CHANGED wrote %s, expected %s", how, hp->hs->name,
             show(s->out, len), show(expected.p, expected.len));
    hp->changed = 1;
    hp->bufs->last_change.len = 0;
    bytes_put(&hp->bufs->last_change, index.p, index.len);
    bytes_put(&hp->bufs->last_change, values.p, values.len);
}

/* Whether a head with want's keys, right after hp kept values for them, must be FW_HEAD_CHANGED. */
static int change_expected(const head_parser *hp, const head_ref *want)
{
    static bytes index, values;
    size_t n = keys_count(&want->keys);
    long differ;
    if (!hp->kept || !same_bytes(hp->bufs->kept_keys.p, hp->bufs->kept_keys.len, want->keys.p, want->keys.len))
        return 0;
    differ = differing_values(&hp->bufs->kept_values, want->packed.p, values_len_of(&want->packed), n,
                              &index, &values);
    return differ >= 1 && (size_t)differ <= FW_HEAD_CHANGED_MAX(n);
}

/* After a FOUND or STORED answer: what C keeps in prev (its values, when they fit). */
static void note_kept(head_parser *hp, const head_ref *want)
{
    size_t values = values_len_of(&want->packed);
    hp->kept = values <= hp->p.prev_cap;
    hp->changed = 0;
    hp->bufs->kept_keys.len = hp->bufs->kept_values.len = 0;
    bytes_put(&hp->bufs->kept_keys, want->keys.p, want->keys.len);
    bytes_put(&hp->bufs->kept_values, want->packed.p, values);
}

static void check_success(head_parser *hp, long long r, const head_ref *want, const char *how)
{
    head_scratch *hs = hp->hs;
    const fw_scratch *s = hs->c;
    unsigned state = KEYS_STATE(r);
    if (r >= RESULT_LIMIT)
        fail("fw_parse_head (%s, %s): result 0x%llx not below 2**30", how, hs->name, r);
    if (want->slow) {
        if (state != FW_HEAD_SLOW)
            fail("fw_parse_head (%s, %s): keys state %u, expected FW_HEAD_SLOW (PATH_INFO with a NUL or "
                 "SEP, or a head of %u bytes)", how, hs->name, state, want->req.line_start);
        else if (((unsigned long long)r & FW_HEAD_CONSUMED_MASK) != 0 ||
                 (((unsigned long long)r >> FW_HEAD_FLAGS_SHIFT) & 0xF) != (want->req.flags & FW_PACKED_FLAGS_MASK))
            fail("fw_parse_head (%s, %s): FW_HEAD_SLOW result 0x%llx: expected length bits 0 and flags 0x%x",
                 how, hs->name, (unsigned long long)r, want->req.flags);
        return;
    }
    unsigned long long bits = (unsigned long long)r;
    if ((bits & FW_HEAD_CONSUMED_MASK) != want->req.line_start ||
        ((bits >> FW_HEAD_FLAGS_SHIFT) & 0xF) != (want->req.flags & FW_PACKED_FLAGS_MASK) ||
        ((bits >> FW_HEAD_MINOR_SHIFT) & 0xF) != want->req.version_minor)
        fail("fw_parse_head (%s, %s): result 0x%llx, expected head %u flags 0x%x minor %u", how, hs->name,
             bits, want->req.line_start, want->req.flags, want->req.version_minor);
    const char *nul = memchr(s->out, '\0', s->cap);
    if (nul == NULL) {
        fail("fw_parse_head (%s, %s): no NUL within the output's %zu bytes", how, hs->name, s->cap);
        return;
    }
    size_t len = (size_t)(nul - s->out);
    const bytes *keys;
    int found = state < FW_HEAD_STORED;
    if (hp->expect_repeat && state != FW_HEAD_REPEAT)
        fail("fw_parse_head (%s, %s): keys state %u right after the same names and values: not "
             "FW_HEAD_REPEAT", how, hs->name, state);
    if (state == FW_HEAD_REPEAT) {
        check_repeat(hp, want, len, how);
        hp->changed = 0;
        return;
    }
    if (hp->expect_change && (state == FW_HEAD_CHANGED) != change_expected(hp, want))
        fail("fw_parse_head (%s, %s): keys state %u right after values were kept, one changed: "
             "expected %s", how, hs->name, state, change_expected(hp, want) ? "FW_HEAD_CHANGED" : "FOUND");
    if (state == FW_HEAD_CHANGED) {
        check_change(hp, want, len, how);
        return;
    }
    if (found) {
        if (hs->stores == 0)
            fail("fw_parse_head (%s, %s): FOUND in slot %u of an empty memo", how, hs->name, state);
        keys = &hs->keys[state];
    } else if (state < FW_HEAD_SLOW) {
        keys = &want->keys;
        if ((state == FW_HEAD_NEW) == want->memoised)
            fail("fw_parse_head (%s, %s): keys state %u for names that %s the memo", how, hs->name, state,
                 want->memoised ? "fit" : "do not fit");
    } else {
        fail("fw_parse_head (%s, %s): keys state %u, FW_HEAD_SLOW has no cause here", how, hs->name, state);
        return;
    }
    if (hp->expect_hit && want->memoised && !found)
        fail("fw_parse_head (%s, %s): keys state %u right after the same names: not FOUND", how, hs->name,
             state);
    /* ( VALUE SEP )* METHOD SEP TARGET SEP VERSION SEP QUERY SEP PATH_INFO ( SEP KEY )* NUL */
    size_t with_keys = want->packed.len + (want->keys.len > 0 ? 1 + want->keys.len : 0);
    if (len != (found ? want->packed.len : with_keys) ||
        memcmp(s->out, want->packed.p, want->packed.len) != 0 ||
        (!found && want->keys.len > 0 &&
         (s->out[want->packed.len] != FW_HEAD_SEP ||
          memcmp(s->out + want->packed.len + 1, want->keys.p, want->keys.len) != 0)))
        fail("fw_parse_head (%s, %s): keys state %u wrote %s, expected %s%s%s", how, hs->name, state,
             show(s->out, len), show(want->packed.p, want->packed.len), found ? "" : "\\x01",
             found ? "" : show(want->keys.p, want->keys.len));
    if (!same_bytes(keys->p, keys->len, want->keys.p, want->keys.len))
        fail("fw_parse_head (%s, %s): keys state %u: Python's keys %s, the head's %s", how, hs->name, state,
             show(keys->p, keys->len), show(want->keys.p, want->keys.len));
    if (state >= FW_HEAD_STORED && state < FW_HEAD_NEW) {  /* _cffi.py: scratch.keys[slot] = keys */
        bytes *slot = &hs->keys[state - FW_HEAD_STORED];
        slot->len = 0;
        bytes_put(slot, want->keys.p, want->keys.len);
        hs->stores++;
    }
    if (state < FW_HEAD_NEW)
        note_kept(hp, want);
}

/* The answer r of hp's call on data[0:n] (had_own: it had its own header array). */
static void check_answer(head_parser *hp, const unsigned char *data, size_t n, long long r,
                         int had_own, const char *how)
{
    const head_ref *want = ref_parse(data, n, hp->p.lim);
    const fw_request *q = &hp->p.req;
    if (r == FW_INCOMPLETE || r == FW_HEAD_KEEP_FIELDS || r == FW_ERROR) {
        int keep = want->ret == FW_INCOMPLETE && !had_own && q->num_headers > 0;
        if ((r == FW_ERROR ? FW_ERROR : FW_INCOMPLETE) != want->ret ||
            (r == FW_ERROR && (q->error != want->req.error || q->status != want->req.status)))
            fail("fw_parse_head (%s, %s): %zu bytes gave %s, fw_parse_packed gave %s", how, hp->hs->name, n,
                 outcome_text(r, q->error), outcome_text(want->ret, want->req.error));
        else if (r != FW_ERROR && (r == FW_HEAD_KEEP_FIELDS) != keep)
            fail("fw_parse_head (%s, %s): incomplete with %u fields (own array: %s) gave %lld", how,
                 hp->hs->name, q->num_headers, had_own ? "yes" : "no", r);
        if (r == FW_ERROR)
            check_request_error("fw_parse_head", q->error, q->status);
        return;
    }
    if (r < 0 || want->ret < 0) {
        fail("fw_parse_head (%s, %s): %zu bytes gave %lld, fw_parse_packed gave %s", how, hp->hs->name, n,
             r, outcome_text(want->ret, want->req.error));
        return;
    }
    /* the state and the header array: what the slow path (and the next request) reads */
    const fw_header *headers = hp->p.own_headers != NULL ? hp->p.own_headers : hp->hs->c->headers;
    if (!same_results(q, &want->req) || q->line_start != want->req.line_start ||
        memcmp(headers, want->headers, q->num_headers * sizeof *headers) != 0)
        fail("fw_parse_head (%s, %s): state or header array differ from fw_parse_packed's", how,
             hp->hs->name);
    check_success(hp, r, want, how);
}

/* RequestParser.parse(data[0:n]) as _cffi.py writes it. */
static long long parse_call(head_parser *hp, const unsigned char *data, size_t n, const char *how)
{
    fw_parser *p = &hp->p;
    const char *buf = (const char *)guard_fill(&hp->bufs->input, data, n, 1);
    int had_own = p->own_headers != NULL;
    long long r = fw_parse_head(p, buf, n, hp->fresh);
    hp->fresh = 0;
    if (r == FW_PACKED_TOO_SMALL) {  /* grow_out(8 * len(buf) + 128), then parse again */
        hp->refusals++;
        scratch_set_out(hp->hs, enough_for(n));
        r = fw_parse_head(p, buf, n, 0);
        if (r == FW_PACKED_TOO_SMALL) {
            fail("fw_parse_head (%s, %s): FW_PACKED_TOO_SMALL again with 8 * %zu + 128 bytes", how,
                 hp->hs->name, n);
            return r;
        }
    }
    check_answer(hp, data, n, r, had_own, how);
    if (r == FW_HEAD_KEEP_FIELDS) {  /* copy the fields so far to an array of our own */
        size_t size = header_slots(p->lim) * sizeof(fw_header);
        fw_header *own = (fw_header *)(void *)guard_blank(&hp->bufs->own, size, 0xA5);
        memcpy(own, hp->hs->c->headers, p->req.num_headers * sizeof(fw_header));
        p->own_headers = own;
    }
    return r;
}

/* Another parser of the thread has its turn between two calls: it overwrites
 * the shared header array and uses the output and the memo. */
static void other_turn(head_scratch *hs, const fw_limits *lim)
{
    static const char head[] = "GET /n HTTP/1.1\r\nHost: n\r\nX-N: 1\r\n\r\n";
    /* names that map to no key: no values at all (a memoised head with nothing to keep) */
    static const char keyless[] = "GET /n HTTP/1.0\r\nX_N: 1\r\n\r\n";
    head_parser other;
    memset(hs->c->headers, 0x5A, header_slots(lim) * sizeof(fw_header));
    parser_init(&other, hs, lim, &g_other);
    parse_call(&other, (const unsigned char *)head, sizeof head - 1, "another parser's turn");
    parser_init(&other, hs, lim, &g_other);
    other.p.prev = NULL;  /* as a new Python parser's, until its first memoised head */
    other.p.prev_cap = 0;
    parse_call(&other, (const unsigned char *)keyless, sizeof keyless - 1, "another parser's turn");
}

/* The bytes after the head just parsed as the connection's next requests
 * (same parser; reset() only sets `fresh`, the own header array stays). */
static void parse_following(head_parser *hp, const unsigned char *data, size_t len, long long r)
{
    size_t at = 0;
    for (int i = 0; r >= 0 && i < PIPELINED_MAX; i++) {
        at += hp->p.req.line_start;
        if (at >= len)
            break;
        hp->fresh = 1;
        hp->expect_hit = 0;
        hp->expect_repeat = 0;
        r = parse_call(hp, data + at, len - at, "pipelined");
    }
}

/* data[0:cuts[i]] for each cut, then data[0:len], through one parser, others
 * taking turns in between; stops at the first answer that is not incomplete. */
static long long feed(head_parser *hp, const unsigned char *data, size_t len, const size_t *cuts,
                      size_t ncuts, const char *how)
{
    long long r = FW_INCOMPLETE;
    for (size_t i = 0; i <= ncuts; i++) {
        if (i > 0)
            other_turn(hp->hs, hp->p.lim);
        r = parse_call(hp, data, i < ncuts ? cuts[i] : len, how);
        if (r != FW_INCOMPLETE && r != FW_HEAD_KEEP_FIELDS)
            break;
    }
    return r;
}

/* A whole parse with an output of `cap` bytes; returns whether it was refused. */
static int refused_at(head_scratch *hs, const unsigned char *data, size_t len, const fw_limits *lim,
                      size_t cap, int empty_memo)
{
    head_parser hp;
    if (empty_memo)
        scratch_prepare(hs, lim, 1);
    parser_init(&hp, hs, lim, &g_tested);
    scratch_set_out(hs, cap);
    parse_call(&hp, data, len, "small output");
    return hp.refusals > 0;
}

/* Outputs below the documented size: around the smallest accepted one (found
 * by bisection), around the answer's length and sampled below; each is
 * refused or gives a checked answer inside it.  With the memo emptied first
 * (keys written) or with the shared one (usually FOUND: no keys). */
static void check_small_outputs(head_scratch *hs, const unsigned char *data, size_t len,
                                const fw_limits *lim, size_t head_len, size_t answer_len, int empty_memo)
{
    size_t enough = enough_for(head_len), lo = 0, hi = enough;
    if (refused_at(hs, data, len, lim, enough, empty_memo))
        fail("fw_parse_head (%s): refused 8 * head + 128 = %zu bytes", hs->name, enough);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (refused_at(hs, data, len, lim, mid, empty_memo))
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t stride = enough / SMALL_OUTPUT_SAMPLES + 1;
    for (size_t cap = 0; cap < enough; cap++) {
        int near = (cap + 16 > lo && cap < lo + 16) || (cap + 16 > answer_len && cap < answer_len + 16);
        if (near || cap < 16 || cap % stride == 0)
            refused_at(hs, data, len, lim, cap, empty_memo);
    }
}

/* The head with one byte of its last non-empty field value changed (the values' length stays):
 * through hp, whose last head it is, its answer must not repeat the values kept (check_repeat). */
static void check_one_value_changed(head_parser *hp, const unsigned char *data, size_t len)
{
    const fw_header *headers = hp->p.own_headers != NULL ? hp->p.own_headers : hp->hs->c->headers;
    uint32_t i = hp->p.req.num_headers;
    while (i > 0 && headers[i - 1].value_len == 0)
        i--;
    if (i == 0)
        return;
    unsigned char *changed = malloc(len);
    if (changed == NULL)
        abort();
    memcpy(changed, data, len);
    unsigned char *c = changed + headers[i - 1].value_off;
    *c = *c >= '0' && *c <= '8' ? (unsigned char)(*c + 1) : *c == 'a' ? 'b' : 'a';
    hp->fresh = 1;
    hp->expect_change = hp->kept;
    long long r = parse_call(hp, changed, len, "one value changed");
    hp->expect_change = 0;
    if (r >= 0 && KEYS_STATE(r) == FW_HEAD_CHANGED) {  /* the same change again: kept (FOUND) */
        hp->fresh = 1;
        r = parse_call(hp, changed, len, "the changed head again");
        if (r >= 0 && KEYS_STATE(r) >= FW_HEAD_STORED)
            fail("fw_parse_head (the changed head again, %s): keys state %u, expected FOUND",
                 hp->hs->name, KEYS_STATE(r));
    }
    hp->fresh = 1;  /* its values were kept in turn: it repeats them */
    hp->expect_repeat = hp->kept;
    parse_call(hp, changed, len, "the changed head once more");
    hp->expect_repeat = 0;
    free(changed);
}

/* A complete head parsed whole: the memo's misses and hits, small outputs. */
static void check_whole(const unsigned char *data, size_t len, const fw_limits *lim)
{
    head_parser hp;
    /* an empty memo: a miss, the same names again: a hit; then the pipelined requests */
    scratch_prepare(&g_fresh, lim, 1);
    parser_init(&hp, &g_fresh, lim, &g_tested);
    scratch_set_out(&g_fresh, enough_for(len));
    long long r = parse_call(&hp, data, len, "whole");
    if (r < 0)
        return;
    size_t head_len = hp.p.req.line_start;
    const char *nul = memchr(g_fresh.c->out, '\0', g_fresh.c->cap);
    size_t answer_len = nul != NULL ? (size_t)(nul - g_fresh.c->out) : 0;
    parser_init(&hp, &g_fresh, lim, &g_tested);
    hp.expect_hit = 1;
    parse_call(&hp, data, len, "whole again");
    hp.fresh = 1;  /* the same head once more on this parser: its values were kept, if they fit */
    hp.expect_repeat = hp.kept;
    parse_call(&hp, data, len, "whole repeated");
    hp.expect_repeat = 0;
    check_one_value_changed(&hp, data, len);
    hp.fresh = 1;
    r = parse_call(&hp, data, len, "whole after one value changed");
    parse_following(&hp, data, len, r);

    /* the run's memo: a hit when an earlier input had these names, then surely; room for the
     * values of heads up to a quarter of this one (the Python layer grows prev after the fact) */
    g_prev_cap = len / 4;
    scratch_prepare(&g_shared, lim, 0);
    parser_init(&hp, &g_shared, lim, &g_tested);
    scratch_set_out(&g_shared, enough_for(len));
    r = parse_call(&hp, data, len, "whole");
    if (r >= 0 && KEYS_STATE(r) < FW_HEAD_STORED)
        history_hits++;
    parser_init(&hp, &g_shared, lim, &g_tested);
    hp.expect_hit = 1;
    parse_call(&hp, data, len, "whole again");

    check_small_outputs(&g_fresh, data, len, lim, head_len, answer_len, 1);
    check_small_outputs(&g_shared, data, len, lim, head_len, answer_len, 0);
}

void check_head(const unsigned char *data, size_t len, const fw_limits *lim, unsigned opts, size_t split)
{
    head_parser hp;
    size_t ncuts = 0;
    size_t *cuts = make_cuts(len, &ncuts);

    g_whole.data = data;
    g_whole.len = len;
    g_whole.known = 0;
    g_prev_cap = len;  /* every head's values fit */
    check_whole(data, len, lim);
    g_prev_cap = len;
    scratch_prepare(&g_shared, lim, 0);
    if (opts & CHECK_PREFIXES)
        for (size_t i = 0; i < ncuts; i++) {
            parser_init(&hp, &g_shared, lim, &g_tested);
            scratch_set_out(&g_shared, enough_for(cuts[i]));
            parse_call(&hp, data, cuts[i], "prefix");
        }
    if (opts & CHECK_BYTEWISE) {
        parser_init(&hp, &g_shared, lim, &g_tested);
        scratch_set_out(&g_shared, enough_for(len));
        long long r = feed(&hp, data, len, cuts, ncuts, "byte by byte");
        parse_following(&hp, data, len, r);
    }
    for (size_t i = 0; i < ((opts & CHECK_SPLITS) ? ncuts : 0) + 1; i++) {
        size_t cut = (opts & CHECK_SPLITS) && i < ncuts ? cuts[i] : split;
        parser_init(&hp, &g_shared, lim, &g_tested);
        scratch_set_out(&g_shared, enough_for(len));
        feed(&hp, data, len, &cut, 1, "split");
    }
    g_whole.data = NULL;
    free(cuts);
}

unsigned long check_head_history_hits(void)
{
    return history_hits;
}

unsigned long check_head_repeats(void)
{
    return repeats;
}

unsigned long check_head_changes(void)
{
    return changes;
}
