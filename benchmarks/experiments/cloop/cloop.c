/*
 * cloop.c - prototype of "the event loop in C" sketched in
 * benchmarks/results/server-path-2026-11-22.md: epoll, accept4, recv, the project's parser,
 * the project's serializer, send and close in C; Python entered once per request.
 *
 * Theory of operation
 * -------------------
 * One thread, one level-triggered epoll set.  A wakeup on the (non-blocking) listener accepts
 * until EAGAIN with accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) (TCP_NODELAY is set once on the
 * listener; Linux copies it to accepted sockets) and reads each new socket at once: on loopback
 * the request has usually arrived with the handshake, so a connection answered and closed in that
 * first read never touches epoll_ctl.  One that stays (keep-alive, or no complete head yet) is
 * added to the set once.
 *
 * A readable connection gets one recv() per wakeup into its input buffer.  fw_parse_head (the
 * call the real server's C backend makes, csrc/binding.c) finds complete heads one after another,
 * so pipelined requests fall out; its packed output lands in the loop's fw_scratch.  For each head
 * without a body C calls the Python callback cloop_on_request once; Python builds the environ,
 * runs the application and calls cloop_respond once, which serializes the head with
 * fw_serialize_head (adding Content-Length when the application sent none) and queues head and
 * body in the connection's output buffer.  When the input is used up, one send() moves the output;
 * what the socket does not take waits for EPOLLOUT (and reading stops meanwhile).  A connection
 * whose last response must close (the client asked, HTTP/1.0, an error, a short body) is closed
 * as soon as its output has left, without lingering.
 *
 * Deliberately absent (README.md): request bodies (answered 501), chunked responses, lingering
 * close, timeouts, connection limits, threads, and signals beyond the default actions.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fastwsgi.h"
#include "fw_binding.h"
#include "cloop.h"

#define CLOOP_EVENTS 64
#define CLOOP_FIRST_IN 8192
#define CLOOP_MIN_READ 4096          /* grow the input buffer below this much room */
#define CLOOP_FIRST_OUT 4096
#define CLOOP_FIRST_PACKED 16384     /* fw_scratch.out; grown to 8 * head + 128 on demand */
#define CLOOP_SERVER "fastwsgi"

struct cloop_conn {
    cloop_loop *loop;
    int fd;
    unsigned events;     /* what the epoll set watches for this fd; 0: not in the set */
    int fresh;           /* the next fw_parse_head call starts a new head */
    int first;           /* no request handed to Python yet */
    int close_after;     /* close once the output has left */
    int responded;       /* cloop_respond queued this request's response */
    int head_method;     /* the current request is HEAD */
    fw_parser parser;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_sent, out_cap;
    char peer[INET6_ADDRSTRLEN + 8];  /* "ADDRESS PORT" */
};

struct cloop_loop {
    cloop_handler handler;  /* cloop_on_request (cffi, Python) or capi.c's handler (C API) */
    int epfd, listen_fd;
    fw_limits limits;
    fw_scratch scratch;
    time_t date_second;
    char date[40];
    size_t date_len;
    cloop_conn *conns[CLOOP_MAX_FDS];
};

/* ---- buffers, dates ------------------------------------------------------------------------- */

/* Room for `extra` more bytes after `len` in *buf; 0, or -1 when out of memory. */
static int cloop_reserve(char **buf, size_t *cap, size_t len, size_t extra, size_t first)
{
    size_t want = *cap ? *cap : first;
    char *grown;
    while (want - len < extra)
        want *= 2;
    if (want == *cap)
        return 0;
    grown = realloc(*buf, want);
    if (grown == NULL)
        return -1;
    *buf = grown;
    *cap = want;
    return 0;
}

static void cloop_tick_date(cloop_loop *loop)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    if (now.tv_sec == loop->date_second)
        return;
    loop->date_second = now.tv_sec;
    gmtime_r(&now.tv_sec, &tm);
    loop->date_len = strftime(loop->date, sizeof loop->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* ---- connections ---------------------------------------------------------------------------- */

static void cloop_close(cloop_loop *loop, cloop_conn *c)
{
    close(c->fd);  /* also leaves the epoll set */
    loop->conns[c->fd] = NULL;
    free(c->in);
    free(c->out);
    free(c);
}

static void cloop_watch(cloop_loop *loop, cloop_conn *c, unsigned events)
{
    struct epoll_event ev;
    if (c->events == events)
        return;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.fd = c->fd;
    epoll_ctl(loop->epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
    c->events = events;
}

/* A canned error response that closes the connection (parse errors, bodies, failures). */
static void cloop_fail(cloop_conn *c, int status)
{
    char text[160];
    int n = snprintf(text, sizeof text,
                     "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                     status == 500 ? "Internal Server Error" : status == 501 ? "Not Implemented"
                                                            : "Bad Request");
    if (cloop_reserve(&c->out, &c->out_cap, c->out_len, (size_t)n, CLOOP_FIRST_OUT) == 0) {
        memcpy(c->out + c->out_len, text, (size_t)n);
        c->out_len += (size_t)n;
    }
    c->close_after = 1;
}

/* Parse and answer every complete head in the input; keep the rest for the next read. */
static void cloop_process(cloop_loop *loop, cloop_conn *c)
{
    size_t pos = 0;
    while (pos < c->in_len && !c->close_after) {
        const fw_request *req = &c->parser.req;
        const char *head = c->in + pos;
        long long result = fw_parse_head(&c->parser, head, c->in_len - pos, c->fresh);
        c->fresh = 0;
        if (result == FW_INCOMPLETE)
            break;
        if (result == FW_HEAD_KEEP_FIELDS) {  /* the field offsets live in the shared scratch: */
            c->fresh = 1;                      /* scan this head from its first byte next time */
            break;
        }
        if (result == FW_PACKED_TOO_SMALL) {
            size_t need = 8 * (c->in_len - pos) + 128;
            char *grown = realloc(loop->scratch.out, need);
            if (grown == NULL) {
                cloop_fail(c, 500);
                break;
            }
            loop->scratch.out = grown;
            loop->scratch.cap = need;
            continue;                          /* fresh is 0: the call only packs again */
        }
        if (result < 0) {
            cloop_fail(c, req->status);
            break;
        }
        if ((result >> FW_HEAD_KEYS_SHIFT) == FW_HEAD_SLOW || req->content_length > 0 ||
            (req->flags & FW_REQ_CHUNKED)) {
            cloop_fail(c, 501);                /* PATH_INFO with %00/%01, or a body: not here */
            break;
        }
        c->head_method = req->method_len == 4 && memcmp(head + req->method_off, "HEAD", 4) == 0;
        c->responded = 0;
        if (loop->handler(c, c->fd, c->first, c->peer, result, loop->scratch.out) != 0 ||
            !c->responded) {
            cloop_fail(c, 500);
            break;
        }
        c->first = 0;
        c->fresh = 1;
        pos += (size_t)(result & FW_HEAD_CONSUMED_MASK);
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
}

/* Send what is queued; then close, or wait for the next request (or for room to send). */
static void cloop_settle(cloop_loop *loop, cloop_conn *c)
{
    for (;;) {
        if (c->out_sent < c->out_len) {
            ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                cloop_close(loop, c);
                return;
            }
            if (n > 0)
                c->out_sent += (size_t)n;
            if (c->out_sent < c->out_len) {
                cloop_watch(loop, c, EPOLLOUT);
                return;
            }
            c->out_len = c->out_sent = 0;
        }
        if (c->close_after) {
            cloop_close(loop, c);
            return;
        }
        if (c->events != EPOLLOUT || c->in_len == 0)
            break;
        cloop_process(loop, c);               /* pipelined input that waited behind a slow send */
        if (c->out_len == 0)
            break;
    }
    cloop_watch(loop, c, EPOLLIN);
}

static void cloop_on_readable(cloop_loop *loop, cloop_conn *c)
{
    ssize_t n;
    if (cloop_reserve(&c->in, &c->in_cap, c->in_len, CLOOP_MIN_READ, CLOOP_FIRST_IN) != 0) {
        cloop_close(loop, c);
        return;
    }
    n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        cloop_process(loop, c);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        cloop_close(loop, c);                 /* EOF or reset */
        return;
    }
    cloop_settle(loop, c);
}

static void cloop_accept(cloop_loop *loop)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        char address[INET6_ADDRSTRLEN];
        unsigned port = 0;
        cloop_conn *c;
        int fd = accept4(loop->listen_fd, (struct sockaddr *)&sa, &salen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;                           /* EAGAIN, or out of descriptors: next wakeup */
        }
        c = fd < CLOOP_MAX_FDS ? calloc(1, sizeof *c) : NULL;
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->loop = loop;
        c->fd = fd;
        c->fresh = 1;
        c->first = 1;
        c->parser.lim = &loop->limits;
        c->parser.scratch = &loop->scratch;
        address[0] = '\0';
        if (sa.ss_family == AF_INET) {
            const struct sockaddr_in *in4 = (const struct sockaddr_in *)&sa;
            inet_ntop(AF_INET, &in4->sin_addr, address, sizeof address);
            port = ntohs(in4->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&sa;
            inet_ntop(AF_INET6, &in6->sin6_addr, address, sizeof address);
            port = ntohs(in6->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s %u", address, port);
        loop->conns[fd] = c;
        cloop_on_readable(loop, c);           /* read at once; registers only if it stays */
    }
}

/* ---- the public calls ----------------------------------------------------------------------- */

cloop_loop *cloop_new(int listen_fd)
{
    struct epoll_event ev;
    int one = 1;
    cloop_loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        return NULL;
    loop->handler = cloop_on_request;
    loop->listen_fd = listen_fd;
    loop->limits.max_request_line = 8190;     /* fastwsgi.parser.Limits() */
    loop->limits.max_header_line = 8190;
    loop->limits.max_header_count = 100;
    loop->limits.max_head_size = 65536;
    loop->limits.max_chunk_line = 4096;
    loop->scratch.out = malloc(CLOOP_FIRST_PACKED);
    loop->scratch.cap = CLOOP_FIRST_PACKED;
    loop->scratch.headers = malloc(loop->limits.max_header_count * sizeof(fw_header));
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->scratch.out == NULL || loop->scratch.headers == NULL || loop->epfd < 0)
        goto fail;
    setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0)
        goto fail;
    cloop_tick_date(loop);
    return loop;
fail:
    if (loop->epfd > 0)
        close(loop->epfd);
    free(loop->scratch.out);
    free(loop->scratch.headers);
    free(loop);
    return NULL;
}

int cloop_run(cloop_loop *loop)
{
    struct epoll_event events[CLOOP_EVENTS];
    for (;;) {
        int i, n = epoll_wait(loop->epfd, events, CLOOP_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        cloop_tick_date(loop);
        for (i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            cloop_conn *c;
            if (fd == loop->listen_fd) {
                cloop_accept(loop);
                continue;
            }
            c = loop->conns[fd];
            if (c == NULL)
                continue;
            if (c->events == EPOLLOUT)
                cloop_settle(loop, c);
            else
                cloop_on_readable(loop, c);
        }
    }
}

void cloop_set_handler(cloop_loop *loop, cloop_handler handler)
{
    loop->handler = handler;
}

/* The application's Content-Length: -1 when absent, -2 when not 1*DIGIT (or repeated). */
static long long cloop_content_length(const char *f, size_t len, size_t nfields)
{
    const char *end = f + len;
    long long found = -1;
    size_t i;
    for (i = 0; i < nfields && f < end; i++) {
        const char *name = f, *value, *value_end;
        const char *sep = memchr(name, '\0', (size_t)(end - name));
        if (sep == NULL)
            return -1;                        /* malformed: fw_serialize_head says why */
        value = sep + 1;
        value_end = memchr(value, '\0', (size_t)(end - value));
        if (value_end == NULL)
            value_end = end;
        if (sep - name == 14 && strncasecmp(name, "content-length", 14) == 0) {
            long long n = 0;
            const char *d;
            if (found != -1 || value == value_end || value_end - value > 18)
                return -2;
            for (d = value; d < value_end; d++) {
                if (*d < '0' || *d > '9')
                    return -2;
                n = n * 10 + (*d - '0');
            }
            found = n;
        }
        f = value_end + 1;
    }
    return found;
}

int cloop_respond(cloop_conn *c, const char *status_fields, size_t len, size_t nfields,
                  const char *body, size_t body_len, int must_close)
{
    const fw_request *req = &c->parser.req;
    const cloop_loop *loop = c->loop;
    const char *status = status_fields, *fields;
    const char *sep = memchr(status_fields, '\0', len);
    size_t status_len, fields_len;
    long long declared;
    long written;
    int error, keep, bodiless, mismatch;
    unsigned flags;

    if (sep == NULL || c->responded)
        return -1;
    status_len = (size_t)(sep - status);
    fields = sep + 1;
    fields_len = len - status_len - 1;
    declared = cloop_content_length(fields, fields_len, nfields);
    if (declared == -2)
        return -1;
    /* RFC 9110 6.4.1: no body after HEAD, 1xx, 204, 304 */
    bodiless = c->head_method || status[0] == '1' ||
               (status_len >= 3 && (memcmp(status, "204", 3) == 0 || memcmp(status, "304", 3) == 0));
    /* a body longer than the application's Content-Length is cut, a shorter one closes; both
       close the connection, like the real server */
    mismatch = !bodiless && declared >= 0 && (size_t)declared != body_len;
    if (mismatch && (size_t)declared < body_len)
        body_len = (size_t)declared;
    keep = !must_close && !mismatch && (req->flags & FW_REQ_KEEP_ALIVE);
    flags = keep ? (req->version_minor >= 1 ? 0u : FW_RESP_KEEP_ALIVE) : FW_RESP_CLOSE;
    if (cloop_reserve(&c->out, &c->out_cap, c->out_len,
                      len + 3 * nfields + loop->date_len + sizeof CLOOP_SERVER + 192 + body_len,
                      CLOOP_FIRST_OUT) != 0)
        return -1;
    written = fw_serialize_head(c->out + c->out_len, c->out_cap - c->out_len, status, status_len,
                                fields, fields_len, nfields, loop->date, loop->date_len,
                                CLOOP_SERVER, sizeof CLOOP_SERVER - 1, flags, &error);
    if (written < 0)
        return -1;
    if (declared < 0 && !bodiless)           /* the whole body is known: say how long it is */
        written += sprintf(c->out + c->out_len + written - 2, "Content-Length: %zu\r\n\r\n",
                           body_len) - 2;
    c->out_len += (size_t)written;
    if (!bodiless) {
        memcpy(c->out + c->out_len, body, body_len);
        c->out_len += body_len;
    }
    c->close_after = !keep;
    c->responded = 1;
    return 0;
}
