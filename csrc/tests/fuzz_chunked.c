/*
 * fuzz_chunked.c - libFuzzer target for fw_decode_chunked.
 *
 * The input is a seed (checks.h) holding a chunked body.  check_chunked runs
 * the caller loop into a separate buffer, in place, with 1- and 3-byte output
 * buffers and split at the fuzzer-chosen point (one byte at a time when
 * short); all must give the same end state, body and byte count.
 */
#include <stdint.h>

#include "checks.h"

#define BYTEWISE_MAX 256

FUZZ_TARGET_INIT("fuzz_chunked")

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream_seed seed;
    if (seed_decode_stream(data, size, &seed))
        check_chunked(seed.data, seed.len, &seed.lim, seed.len <= BYTEWISE_MAX ? CHECK_BYTEWISE : 0,
                      seed.split);
    return 0;
}
