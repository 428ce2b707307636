/* checks_util.c - see checks_util.h. */
#include "checks_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ======================================================================
 * failure accounting
 * ====================================================================== */

int checks_abort_on_failure;
static const char *current_case = "?";
static unsigned long failures;
static unsigned long failures_in_case;

#define MAX_REPORTS_PER_CASE 8

void checks_set_case(const char *name)
{
    current_case = name;
    failures_in_case = 0;
}

unsigned long checks_failures(void)
{
    return failures;
}

void fail(const char *fmt, ...)
{
    failures++;
    if (++failures_in_case <= MAX_REPORTS_PER_CASE) {
        va_list ap;
        fprintf(stderr, "FAIL [%s] ", current_case);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    } else if (failures_in_case == MAX_REPORTS_PER_CASE + 1) {
        fprintf(stderr, "FAIL [%s] (further failures of this case not shown)\n", current_case);
    }
    if (checks_abort_on_failure)
        abort();
}

const char *show(const void *p, size_t len)
{
    static char text[4][200];
    static int which;
    char *out = text[which++ & 3];
    const unsigned char *s = p;
    size_t o = 0;
    for (size_t i = 0; i < len && o < sizeof text[0] - 8; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
            out[o++] = (char)s[i];
        else
            o += (size_t)snprintf(out + o, 5, "\\x%02x", s[i]);
    }
    if (o >= sizeof text[0] - 8)
        o += (size_t)snprintf(out + o, 4, "...");
    out[o] = '\0';
    return out;
}

void check_error_fields(const char *fn, int error, int status, int lo, int hi)
{
    if (error < lo || error > hi) {
        fail("%s: error code %d outside %d..%d", fn, error, lo, hi);
        return;
    }
    if (status != fw_error_status(error))
        fail("%s: status %d but fw_error_status(%s) is %d", fn, status,
             fw_error_name(error), fw_error_status(error));
    const char *name = fw_error_name(error);
    if (name == NULL || name[0] == '\0')
        fail("fw_error_name(%d) is empty", error);
}

void check_request_error(const char *fn, int error, int status)
{
    if (error == FW_E_METHOD_NOT_IMPLEMENTED)   /* added after the uwsgi codes */
        check_error_fields(fn, error, status, error, error);
    else
        check_error_fields(fn, error, status, FW_E_BAD_REQUEST_LINE, FW_E_HEAD_TOO_LARGE);
}

const char *outcome_text(long long ret, int error)
{
    static char text[4][64];
    static int which;
    char *out = text[which++ & 3];
    if (ret == FW_ERROR)
        snprintf(out, sizeof text[0], "ERROR %s", fw_error_name(error) ? fw_error_name(error) : "(null)");
    else if (ret == FW_INCOMPLETE)
        snprintf(out, sizeof text[0], "INCOMPLETE");
    else
        snprintf(out, sizeof text[0], "%lld", ret);
    return out;
}

int same_results(const fw_request *x, const fw_request *y)
{
    return x->num_headers == y->num_headers && x->method_off == y->method_off &&
           x->method_len == y->method_len && x->target_off == y->target_off &&
           x->target_len == y->target_len && x->path_off == y->path_off &&
           x->path_len == y->path_len && x->query_off == y->query_off &&
           x->query_len == y->query_len && x->version_off == y->version_off &&
           x->version_major == y->version_major && x->version_minor == y->version_minor &&
           x->content_length == y->content_length && x->flags == y->flags &&
           x->error == y->error && x->status == y->status;
}

/* ======================================================================
 * byte strings and cut points
 * ====================================================================== */

void bytes_put(bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL)
            abort();
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

void bytes_putc(bytes *b, unsigned char c)
{
    bytes_put(b, &c, 1);
}

void bytes_free(bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/*
 * The lengths at which an input is cut: every length below `len` when it is
 * short, else every length near either end plus a stride through the middle
 * (keeps long limit cases near O(n) instead of O(n^2)).
 */
#define EDGE_CUTS 1024
#define CUT_STRIDE 61

size_t *make_cuts(size_t len, size_t *ncuts)
{
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    size_t n = 0;
    if (cuts == NULL)
        abort();
    for (size_t k = 0; k < len; k++)
        if (len <= FULL_CUTS_MAX || k < EDGE_CUTS || k + EDGE_CUTS >= len || k % CUT_STRIDE == 0)
            cuts[n++] = k;
    *ncuts = n;
    return cuts;
}

/* Output capacities to try below a result of n bytes: all of them for short
 * results, else both ends and a stride (and `hint`). */
int cap_sampled(size_t cap, size_t n, size_t hint)
{
    return n <= 128 || cap < 16 || cap + 16 > n || cap % 97 == 0 || cap == hint;
}
