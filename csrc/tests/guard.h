/*
 * guard.h - buffers that end exactly where an unreadable page begins.
 *
 * Theory of operation
 * -------------------
 * A guard buffer is an anonymous mapping of N data pages followed by one
 * PROT_NONE page.  guard_fill() copies bytes so that the last one sits right
 * before the guard page, so reading or writing even one byte past the end
 * faults at once (SIGSEGV, which ASan reports with a stack trace) instead of
 * silently touching a neighbouring heap object.  The technique is
 * picohttpparser's; ASan alone only catches over-reads that land in a red
 * zone, the guard page catches all of them.  A buffer can be made read-only
 * after filling (the pages holding the contents become PROT_READ: the cost
 * follows the contents, not the mapping's high-water mark), so a parser that
 * writes to its const input faults too.
 */
#ifndef FW_TESTS_GUARD_H
#define FW_TESTS_GUARD_H

#include <stddef.h>

typedef struct guard_buf {
    unsigned char *map;   /* start of the mapping */
    size_t data_bytes;    /* bytes before the guard page (whole pages) */
    size_t len;           /* bytes currently held, ending at the guard */
    int read_only;        /* the last `protected_bytes` data bytes are PROT_READ right now */
    size_t protected_bytes;  /* whole pages covering the contents when they were protected */
} guard_buf;

/* Map room for at least `capacity` bytes plus the guard page; aborts on failure.
 * A zero-initialised guard_buf is also valid: the first fill maps it. */
void guard_init(guard_buf *g, size_t capacity);
void guard_free(guard_buf *g);

/* The first byte of the current contents (== guard page when len is 0). */
unsigned char *guard_data(const guard_buf *g);

/* Copy src[0:len] so it ends at the guard page (growing the mapping if
 * needed); when `read_only`, the pages holding it are made PROT_READ afterwards.
 * Returns guard_data(g). */
unsigned char *guard_fill(guard_buf *g, const void *src, size_t len, int read_only);

/* Make `len` writable bytes ending at the guard page, contents set to `fill`. */
unsigned char *guard_blank(guard_buf *g, size_t len, unsigned char fill);

#endif
