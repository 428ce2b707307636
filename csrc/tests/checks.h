/*
 * checks.h - properties every fastwsgi C entry point must have, checked on
 * one input at a time.  Shared by the guard-page test program (test_guard.c)
 * and the libFuzzer targets (fuzz_*.c), so both assert exactly the same
 * things.
 *
 * Theory of operation
 * -------------------
 * Each check_* function runs the function under test several ways over the
 * same bytes and asserts that the answers agree and stay inside the
 * documented bounds (csrc/fastwsgi.h, docs/parser-spec.md):
 *
 *   request    whole; every prefix fresh (incomplete, or the same error);
 *              one byte at a time and split in two at every point through
 *              one resumable state (the same result as whole); offsets in
 *              range; fw_pack_environ against an independent oracle, then
 *              with every smaller capacity (refused below the result);
 *              fw_parse_packed (fw_binding.h) whole, split and with small
 *              outputs, against the same oracle and fw_parse_request's answer.
 *   head       fw_parse_head (fw_binding.h, the Python C backend's call)
 *              driven as fastwsgi/parser/_cffi.py drives it (FW_PACKED_TOO_SMALL:
 *              grow to 8 * len + 128 and call again; FW_HEAD_KEEP_FIELDS: copy
 *              the fields to the parser's own array), whole, every prefix
 *              fresh, byte by byte and split in two at every point, another
 *              parser taking a turn on the shared buffers between two calls,
 *              the heads pipelined after the first; every answer against
 *              fw_parse_packed's on the same bytes (outcome, error, state,
 *              header array, head length / flags / minor, the bytes with
 *              FW_HEAD_SEP, keys left out exactly when the memo says FOUND and
 *              then the keys Python holds for that slot right, SLOW and NEW
 *              exactly when documented).  Memos: one shared by every input
 *              of the run (hits from earlier inputs) and one emptied per
 *              input (a miss, then a hit on the repeat).  Outputs: 8 * len +
 *              128, the documented 8 * head + 128 (never refused), and
 *              smaller ones around the smallest accepted, around the answer's
 *              length and sampled: refused, or the answer inside them.
 *   chunked    a caller loop (pass unconsumed bytes again plus more) run
 *              whole, per prefix, byte by byte, at every split point, in
 *              place and into a separate buffer, and with 1- and 3-byte
 *              output buffers: same end state, same body, same bytes consumed.
 *   serialize  against an oracle; every capacity below the result is
 *              refused with BUFFER_TOO_SMALL and nothing is written past it.
 *   uwsgi      fw_parse_uwsgi whole and at every prefix (the parser is
 *              stateless: a prefix is what a caller feeding pieces sees),
 *              a success against an independent walk of the packet and the
 *              spec's limits, an exact and a one-short vars array,
 *              fw_parse_uwsgi_packed against the vars and at datasize - 1.
 *
 * Every input, output and header array sits right before a PROT_NONE page
 * (guard.h); inputs are read-only.  Failures print one line each and are
 * counted; with checks_abort_on_failure (the fuzzers) the first one aborts.
 * One module per function family: check_request.c, check_head.c,
 * check_chunked.c, check_serialize.c, check_uwsgi.c; checks_seed.c holds the
 * limits and the seed format, checks_util.c the shared helpers.
 *
 * Seed format (the test program's corpus directories and the fuzzers share
 * it, so any seed is also a fuzzer input; request seeds feed check_request
 * and check_head alike):
 *   request / chunked / uwsgi:  [cfg][split u16le][custom limits 5 x u32le if cfg
 *                       says so][data...]
 *     cfg bit0 allow_bare_lf, bit1 allow_missing_host, bits 2-3 limits
 *     preset: 0 default, 1 tiny, 2 small, 3 custom.  split % (len + 1) is
 *     an extra split point always checked.
 *   serialize: [flags][cap u16le][nfields][status_len u16le][status]
 *              [date_len u16le][date][server_len u16le][server][fields...]
 *     lengths are clamped to what is left.
 */
#ifndef FW_TESTS_CHECKS_H
#define FW_TESTS_CHECKS_H

#include <stddef.h>

#include "../fastwsgi.h"

/* ---- libFuzzer targets ----
 * The entry points' declarations and an LLVMFuzzerInitialize that makes the first
 * failed check abort (so libFuzzer saves the input) under the target's name. */
#define FUZZ_TARGET_INIT(name)                                              \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                      \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);           \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                       \
    {                                                                       \
        (void)argc;                                                         \
        (void)argv;                                                         \
        checks_abort_on_failure = 1;                                        \
        checks_set_case(name);                                              \
        return 0;                                                           \
    }

/* ---- failure accounting ---- */
extern int checks_abort_on_failure;
void checks_set_case(const char *name);
unsigned long checks_failures(void);

/* ---- limits ---- */
fw_limits checks_limits(int preset, unsigned flags);  /* CHECKS_LIMITS_* */
enum { CHECKS_LIMITS_DEFAULT, CHECKS_LIMITS_TINY, CHECKS_LIMITS_SMALL, CHECKS_LIMITS_CUSTOM };
#define CHECKS_MAX_HEADER_COUNT 1000u  /* custom limits are clamped to this */

/* ---- seeds ---- */
typedef struct stream_seed {
    fw_limits lim;
    size_t split;
    const unsigned char *data;
    size_t len;
} stream_seed;

/* 0 when the input is too short to hold the header. */
int seed_decode_stream(const unsigned char *in, size_t n, stream_seed *out);
/* Bytes written to out (at most cap), 0 if cap is too small. */
size_t seed_encode_stream(const fw_limits *lim, size_t split, const void *data,
                          size_t len, unsigned char *out, size_t cap);

typedef struct serialize_seed {
    unsigned flags;               /* FW_RESP_* */
    size_t cap_hint;              /* an extra output capacity to try */
    size_t nfields;
    const char *status; size_t status_len;
    const char *date; size_t date_len;
    const char *server; size_t server_len;
    const char *fields; size_t fields_len;
} serialize_seed;

int seed_decode_serialize(const unsigned char *in, size_t n, serialize_seed *out);
size_t seed_encode_serialize(const serialize_seed *s, unsigned char *out, size_t cap);

/* ---- the checks ---- */
enum {
    CHECK_PREFIXES = 0x1,  /* every prefix, fresh state (strided for long inputs) */
    CHECK_BYTEWISE = 0x2,  /* one byte at a time through one state */
    CHECK_SPLITS = 0x4,    /* two pieces, at every split point */
    CHECK_ALL = 0x7
};

void check_request(const unsigned char *data, size_t len, const fw_limits *lim,
                   unsigned opts, size_t split);
void check_chunked(const unsigned char *data, size_t len, const fw_limits *lim,
                   unsigned opts, size_t split);
void check_serialize(const serialize_seed *s);
void check_uwsgi(const unsigned char *data, size_t len, const fw_limits *lim,
                 unsigned opts, size_t split);
void check_head(const unsigned char *data, size_t len, const fw_limits *lim,
                unsigned opts, size_t split);
/* Heads whose names an earlier input of the run had left in the shared memo. */
unsigned long check_head_history_hits(void);
unsigned long check_head_repeats(void);  /* answers FW_HEAD_REPEAT so far */
unsigned long check_head_changes(void);  /* answers FW_HEAD_CHANGED so far */

#endif
