/*
 * fuzz_head.c - libFuzzer target for fw_parse_head (fw_binding.h), the call
 * behind the Python C backend, and its per-thread memo of field names.
 *
 * The input is a request seed (checks.h; it starts from the request seeds).
 * check_head drives fw_parse_head as fastwsgi/parser/_cffi.py does, whole,
 * split at the fuzzer-chosen point (and one byte at a time when short), with
 * small outputs, and holds every answer to fw_parse_packed's.  Its shared
 * fw_scratch lives across iterations, so the memo holds the names of earlier
 * inputs (where a memo bug would hide); a failure that depends on them says
 * "shared memo".  The heads pipelined after the first one in an input are
 * parsed through a memo emptied for that input, so a memo failure there
 * ("fresh memo") reproduces from the saved input alone.
 */
#include <stdint.h>

#include "checks.h"

#define BYTEWISE_MAX 256  /* byte-by-byte feeding costs O(n^2) copies */

FUZZ_TARGET_INIT("fuzz_head")

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream_seed seed;
    if (seed_decode_stream(data, size, &seed))
        check_head(seed.data, seed.len, &seed.lim, seed.len <= BYTEWISE_MAX ? CHECK_BYTEWISE : 0,
                   seed.split);
    return 0;
}
