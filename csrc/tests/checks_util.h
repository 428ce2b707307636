/*
 * checks_util.h - helpers shared by the check_*.c modules (not by the test
 * program or the fuzzers, which only use checks.h).
 *
 * Failure reporting (one line per failure, counted per case, abort() in the
 * fuzzers), a growable byte string for oracles, the cut points used to feed
 * an input in pieces, and the byte classes of RFC 9110 the oracles need.
 */
#ifndef FW_TESTS_CHECKS_UTIL_H
#define FW_TESTS_CHECKS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "checks.h"

void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Short printable form of some bytes, for failure messages (rotating static buffers). */
const char *show(const void *p, size_t len);
/* error/status of a rejection: code within lo..hi, status and name from the table */
void check_error_fields(const char *fn, int error, int status, int lo, int hi);
/* check_error_fields for a request-head parser: the codes of the head rules. */
void check_request_error(const char *fn, int error, int status);
/* "ERROR <name>", "INCOMPLETE" or the number, for failure messages (rotating static buffers). */
const char *outcome_text(long long ret, int error);
/* Every result field of two request states is equal (the resumable-state fields may differ). */
int same_results(const fw_request *x, const fw_request *y);

typedef struct bytes {
    unsigned char *p;
    size_t len, cap;
} bytes;

void bytes_put(bytes *b, const void *p, size_t n);
void bytes_putc(bytes *b, unsigned char c);
void bytes_free(bytes *b);

/* The lengths at which an input is cut (malloc'd; *ncuts entries, all < len). */
#define FULL_CUTS_MAX 4096  /* every length up to here; longer inputs are sampled */
size_t *make_cuts(size_t len, size_t *ncuts);
/* Output capacities to try below a result of n bytes (all when short). */
int cap_sampled(size_t cap, size_t n, size_t hint);

/* memcmp that accepts empty (possibly NULL) ranges */
static inline int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* tchar (RFC 9110 5.6.2) */
static inline int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* HTAB / SP / VCHAR / obs-text (RFC 9110 5.5 field-value bytes) */
static inline int is_field_byte(unsigned char c)
{
    return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

static inline int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static inline int upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 32 : c;
}

static inline int equal_nocase(const void *a, size_t alen, const char *b)
{
    const unsigned char *s = a;
    if (alen != strlen(b))
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower(s[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Is the range [off, off+len) inside [0, limit)?  (written to avoid overflow) */
static inline int in_range(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}

#endif
