/*
 * cloop.h - the prototype C event loop's three calls (see cloop.c for how it works).
 *
 *   cloop_new(fd)      a loop serving the listening socket fd (non-blocking, bound, listening).
 *   cloop_run(loop)    serves until an unrecoverable epoll error; returns -errno.
 *   cloop_respond(...) called by Python from inside cloop_on_request, once per request: the
 *                      response status and headers packed as  status \0 name \0 value \0 ...
 *                      (nfields pairs, no trailing \0) and the whole body.  Returns 0, or -1
 *                      when the head is invalid (nothing was queued: answer again, e.g. a 500).
 *
 * Python implements cloop_on_request(conn, fd, first, peer, head, packed): `head` is
 * fw_parse_head's result for the request, `packed` the packed head (fw_binding.h), `first` is 1
 * for a connection's first request, `peer` is "ADDRESS PORT".  It returns 0 (non-zero, or no
 * cloop_respond call, makes C answer 500 and close).
 */
#ifndef CLOOP_H
#define CLOOP_H

#include <stddef.h>

#define CLOOP_MAX_FDS 65536  /* connections are indexed by descriptor */

typedef struct cloop_loop cloop_loop;
typedef struct cloop_conn cloop_conn;

cloop_loop *cloop_new(int listen_fd);
int cloop_run(cloop_loop *loop);
int cloop_respond(cloop_conn *conn, const char *status_fields, size_t len, size_t nfields,
                  const char *body, size_t body_len, int must_close);

/* defined by cffi (extern "Python+C" in build_cloop.py), implemented in serve.py */
int cloop_on_request(cloop_conn *conn, int fd, int first, const char *peer, long long head,
                     const char *packed);

/* the per-request handler (default cloop_on_request; capi.c installs its own) */
typedef int (*cloop_handler)(cloop_conn *conn, int fd, int first, const char *peer, long long head,
                             const char *packed);
void cloop_set_handler(cloop_loop *loop, cloop_handler handler);

/* capi.c: the --capi variant (environ and start_response in C through the CPython API) */
int cloop_capi_run(cloop_loop *loop);

#endif /* CLOOP_H */
