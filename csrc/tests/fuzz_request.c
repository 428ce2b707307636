/*
 * fuzz_request.c - libFuzzer target for fw_parse_request, fw_pack_environ
 * and fw_parse_packed.
 *
 * The input is a seed (checks.h: config byte, split point, optional custom
 * limits, then the request bytes).  check_request parses it whole and split
 * in two at the fuzzer-chosen point (and one byte at a time when short),
 * asserts both agree, checks every offset, the packed environ and
 * fw_parse_packed's output against an oracle; any disagreement aborts, so
 * libFuzzer saves the input.
 */
#include <stdint.h>

#include "checks.h"

#define BYTEWISE_MAX 256  /* byte-by-byte feeding costs O(n^2) copies */

FUZZ_TARGET_INIT("fuzz_request")

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream_seed seed;
    if (seed_decode_stream(data, size, &seed))
        check_request(seed.data, seed.len, &seed.lim, seed.len <= BYTEWISE_MAX ? CHECK_BYTEWISE : 0,
                      seed.split);
    return 0;
}
