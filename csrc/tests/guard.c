/* guard.c - see guard.h. */
#define _DEFAULT_SOURCE
#include "guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page_size(void)
{
    static size_t size;
    if (size == 0)
        size = (size_t)sysconf(_SC_PAGESIZE);
    return size;
}

static void die(const char *what)
{
    perror(what);
    abort();
}

void guard_init(guard_buf *g, size_t capacity)
{
    size_t page = page_size();
    size_t data_bytes = (capacity + page - 1) / page * page;
    if (data_bytes == 0)
        data_bytes = page;
    void *map = mmap(NULL, data_bytes + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        die("guard: mmap");
    if (mprotect((unsigned char *)map + data_bytes, page, PROT_NONE) != 0)
        die("guard: mprotect guard page");
    g->map = map;
    g->data_bytes = data_bytes;
    g->len = 0;
    g->read_only = 0;
}

void guard_free(guard_buf *g)
{
    if (g->map != NULL && munmap(g->map, g->data_bytes + page_size()) != 0)
        die("guard: munmap");
    g->map = NULL;
    g->data_bytes = 0;
    g->len = 0;
}

unsigned char *guard_data(const guard_buf *g)
{
    return g->map + g->data_bytes - g->len;
}

static void make_room(guard_buf *g, size_t len)
{
    if (g->map == NULL || len > g->data_bytes) {
        guard_free(g);
        guard_init(g, len);
    } else if (g->read_only) {
        if (mprotect(g->map + g->data_bytes - g->protected_bytes, g->protected_bytes,
                     PROT_READ | PROT_WRITE) != 0)
            die("guard: mprotect data pages");
        g->read_only = 0;
    }
    g->len = len;
}

unsigned char *guard_fill(guard_buf *g, const void *src, size_t len, int read_only)
{
    if (read_only && g->read_only && g->len == len && (len == 0 || memcmp(guard_data(g), src, len) == 0))
        return guard_data(g);  /* already there, read-only: spare the two mprotect calls */
    make_room(g, len);
    if (len > 0)
        memcpy(guard_data(g), src, len);
    if (read_only) {  /* only the pages holding the contents: a long mapping costs no more */
        size_t page = page_size();
        g->protected_bytes = len == 0 ? page : (len + page - 1) / page * page;
        if (mprotect(g->map + g->data_bytes - g->protected_bytes, g->protected_bytes, PROT_READ) != 0)
            die("guard: mprotect read-only");
        g->read_only = 1;
    }
    return guard_data(g);
}

unsigned char *guard_blank(guard_buf *g, size_t len, unsigned char fill)
{
    make_room(g, len);
    memset(guard_data(g), fill, len);
    return guard_data(g);
}
