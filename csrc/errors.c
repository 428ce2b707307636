/*
 * errors.c - the error table's lookups and the shared character-class table.
 *
 * Theory of operation
 * -------------------
 * FW_ERROR_TABLE in fastwsgi.h is expanded here into two const arrays (name,
 * HTTP status) indexed by code, so the list of errors exists exactly once.
 * fw_char_class is the 256-entry class table of fw_internal.h, computed at
 * compile time from FW_CLASS_OF().
 */
#include "fastwsgi.h"
#include "fw_internal.h"

#define FW_NAME_ITEM(name, num, status) [num] = #name,
#define FW_STATUS_ITEM(name, num, status) [num] = status,
static const char *const fw_error_names[FW_E__COUNT] = { FW_ERROR_TABLE(FW_NAME_ITEM) };
static const int fw_error_statuses[FW_E__COUNT] = { FW_ERROR_TABLE(FW_STATUS_ITEM) };
#undef FW_NAME_ITEM
#undef FW_STATUS_ITEM

int fw_error_status(int error)
{
    if (error < 0 || error >= FW_E__COUNT)
        return 500;
    return fw_error_statuses[error];
}

const char *fw_error_name(int error)
{
    if (error < 0 || error >= FW_E__COUNT)
        return "UNKNOWN";
    return fw_error_names[error] + 5; /* skip "FW_E_" */
}

#define FW_ROW(h) \
    FW_CLASS_OF((h) + 0x0), FW_CLASS_OF((h) + 0x1), FW_CLASS_OF((h) + 0x2), FW_CLASS_OF((h) + 0x3), \
    FW_CLASS_OF((h) + 0x4), FW_CLASS_OF((h) + 0x5), FW_CLASS_OF((h) + 0x6), FW_CLASS_OF((h) + 0x7), \
    FW_CLASS_OF((h) + 0x8), FW_CLASS_OF((h) + 0x9), FW_CLASS_OF((h) + 0xA), FW_CLASS_OF((h) + 0xB), \
    FW_CLASS_OF((h) + 0xC), FW_CLASS_OF((h) + 0xD), FW_CLASS_OF((h) + 0xE), FW_CLASS_OF((h) + 0xF)

const uint16_t fw_char_class[256] = {
    FW_ROW(0x00), FW_ROW(0x10), FW_ROW(0x20), FW_ROW(0x30),
    FW_ROW(0x40), FW_ROW(0x50), FW_ROW(0x60), FW_ROW(0x70),
    FW_ROW(0x80), FW_ROW(0x90), FW_ROW(0xA0), FW_ROW(0xB0),
    FW_ROW(0xC0), FW_ROW(0xD0), FW_ROW(0xE0), FW_ROW(0xF0),
};
