/*
 * fuzz_uwsgi.c - libFuzzer target for fw_parse_uwsgi and
 * fw_parse_uwsgi_packed.
 *
 * The input is a seed (checks.h: config byte, split point, optional custom
 * limits, then the packet bytes).  check_uwsgi parses it whole and at the
 * fuzzer-chosen prefix (and at every prefix when short), checks a success
 * against an independent walk of the packet and the spec's limits, the
 * packed form against the vars, and the exact / one-short vars array; any
 * disagreement aborts, so libFuzzer saves the input.
 */
#include <stdint.h>

#include "checks.h"

#define PREFIXES_MAX 512  /* every prefix costs a copy: O(n^2) */

FUZZ_TARGET_INIT("fuzz_uwsgi")

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream_seed seed;
    if (seed_decode_stream(data, size, &seed))
        check_uwsgi(seed.data, seed.len, &seed.lim, seed.len <= PREFIXES_MAX ? CHECK_PREFIXES : 0,
                    seed.split);
    return 0;
}
