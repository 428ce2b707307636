/*
 * fuzz_serialize.c - libFuzzer target for fw_serialize_head.
 *
 * The input is a serialize seed (checks.h: flags, a capacity hint, field
 * count, status, date, server, packed fields).  check_serialize compares the
 * answer with an oracle and retries with every smaller output capacity
 * (sampled when long), each ending at a guard page.
 */
#include <stdint.h>

#include "checks.h"

FUZZ_TARGET_INIT("fuzz_serialize")

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    serialize_seed seed;
    if (seed_decode_serialize(data, size, &seed))
        check_serialize(&seed);
    return 0;
}
