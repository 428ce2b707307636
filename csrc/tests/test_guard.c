/*
 * test_guard.c - the C core under AddressSanitizer + UBSan, every input right
 * before an unreadable page.
 *
 * Theory of operation
 * -------------------
 * Runs the property checks of checks.h (whole vs every prefix vs byte by
 * byte vs every split, offsets in range, environ and serializer oracles,
 * in-place vs separate chunked decoding, tight output buffers) over
 *   - the built-in cases below, each request/chunked/uwsgi case under several
 *     limit sets (default, tiny, small, default with both leniencies), and
 *   - every seed file under each --seeds DIR (files in DIR/request, DIR/chunked,
 *     DIR/uwsgi and
 *     DIR/serialize, in the seed format of checks.h), e.g. the conformance
 *     corpus extracted by extract_seeds.py.
 * Request bytes go through check_request and check_head (fw_parse_head,
 * whose shared memo then holds the names of every earlier request input: the
 * built-in run must see some of them found again).
 * A case passes when none of its checks failed.  Prints "N passed, M failed"
 * and exits non-zero on any failure.
 *
 *   test_guard [--seeds DIR]... [--no-builtin]
 *   test_guard --write-seeds DIR     write the built-in cases as seed files
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checks.h"

typedef struct raw_case {
    const char *name;
    const char *bytes;
    size_t len;
} raw_case;

#define CASE(name, literal) {name, literal, sizeof(literal) - 1}

/* ---- request heads ------------------------------------------------------- */

static const raw_case request_cases[] = {
    CASE("empty", ""),
    CASE("simple-get", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    CASE("pipelined", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("body-follows", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
    CASE("leading-empty-lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("http10-no-host", "GET / HTTP/1.0\r\n\r\n"),
    CASE("http10-keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    CASE("http12", "GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
    CASE("query", "GET /p/a%20th?x=1&y=%41#frag HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("percent-odd", "GET /%zz/%4/%/%2F/%00/%e9%C3%a9% HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("absolute-form", "GET http://example.com:8080/over/there?name=ferret HTTP/1.1\r\nHost: x\r\n\r\n"),
    CASE("absolute-no-path", "GET https://example.com HTTP/1.1\r\nHost: x\r\n\r\n"),
    CASE("absolute-query-only", "GET a+b-c.d://h?q HTTP/1.1\r\nHost: x\r\n\r\n"),
    CASE("asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("asterisk-not-options", "GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("connect-authority", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    CASE("many-fields",
         "POST /upload?x HTTP/1.1\r\nHost: example.com:80\r\nUser-Agent: t/1.0\r\n"
         "Accept: a/b\r\naccept: c/d\r\nACCEPT:e\r\nContent-Type: text/plain; charset=latin-1\r\n"
         "Content-Length: 000012\r\nX_Forwarded_For: spoof\r\nX-Empty:\r\nX-Ws: \t v a l \t \r\n"
         "X-Obs: caf\xe9\xff\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"),
    CASE("chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    CASE("te-list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n"),
    CASE("te-gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
    CASE("te-twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
    CASE("te-not-last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
    CASE("te-params", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo;q=\"1\" ; a=b, chunked\r\n\r\n"),
    CASE("te-bad-param", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo;q=(1), chunked\r\n\r\n"),
    CASE("te-http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    CASE("cl-and-te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
    CASE("cl-max", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n"),
    CASE("cl-overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n"),
    CASE("cl-huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
    CASE("cl-plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"),
    CASE("cl-minus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
    CASE("cl-list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n"),
    CASE("cl-space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 1\r\n\r\n"),
    CASE("cl-empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"),
    CASE("cl-dup", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n"),
    CASE("host-missing", "GET / HTTP/1.1\r\nX: y\r\n\r\n"),
    CASE("host-dup", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
    CASE("host-empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n"),
    CASE("host-ipv6", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
    CASE("host-bad", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    CASE("host-bad-port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"),
    CASE("host-bad-bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"),
    CASE("host-userinfo", "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"),
    CASE("expect-100", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"),
    CASE("expect-other", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"),
    CASE("expect-http10", "POST / HTTP/1.0\r\nExpect: whatever\r\n\r\n"),
    CASE("upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"),
    CASE("connection-close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, keep-alive\r\n\r\n"),
    CASE("bare-lf-request-line", "GET / HTTP/1.1\nHost: a\r\n\r\n"),
    CASE("bare-lf-everywhere", "GET / HTTP/1.1\nHost: a\n\n"),
    CASE("bare-lf-end", "GET / HTTP/1.1\r\nHost: a\r\n\n"),
    CASE("bare-cr", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"),
    CASE("bare-cr-request-line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("cr-cr-lf", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"),
    CASE("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n"),
    CASE("obs-fold-first", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
    CASE("space-before-colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
    CASE("tab-before-colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
    CASE("no-colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n"),
    CASE("empty-name", "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"),
    CASE("bad-name", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"),
    CASE("nul-value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"),
    CASE("del-value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"),
    CASE("ctl-value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n"),
    CASE("nul-name", "GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n"),
    CASE("double-space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("trailing-space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
    CASE("tab-separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("http09", "GET /\r\n\r\n"),
    CASE("bad-method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("lower-version", "GET / http/1.1\r\nHost: a\r\n\r\n"),
    CASE("version-long", "GET / HTTP/1.10\r\nHost: a\r\n\r\n"),
    CASE("version-2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
    CASE("version-0", "GET / HTTP/0.9\r\nHost: a\r\n\r\n"),
    CASE("target-del", "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("target-high", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("target-relative", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("target-scheme-only", "GET http: HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("target-scheme-bad", "GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    CASE("only-crlf", "\r\n\r\n\r\n"),
    CASE("only-lf", "\n\n\n"),
    CASE("lone-cr", "\r"),
    CASE("no-end", "GET / HTTP/1.1\r\nHost: a\r\n"),
    CASE("lf-only-after-cr", "GET / HTTP/1.1\r\nHost: a\r\n\r"),
    CASE("tiny-limit-edge",  /* request line 32 bytes, a 24-byte field line: the tiny limits exactly */
         "GET /23456789012345678 HTTP/1.1\r\nHost: 345678901234567890\r\n\r\n"),
    CASE("tiny-limit-over",
         "GET /234567890123456789 HTTP/1.1\r\nHost: 3456789012345678901\r\n\r\n"),
    CASE("three-fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
    CASE("four-fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
    /* pipelined heads whose names nearly repeat (fw_parse_head's memo of name sequences) */
    CASE("memo-last-name-shorter", "GET / HTTP/1.1\r\nHost: a\r\nX-Ab: 1\r\n\r\n"
                                   "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n"
                                   "GET / HTTP/1.1\r\nHost: a\r\nX-Ab: 1\r\n\r\n"),
    CASE("memo-last-name-differs", "GET / HTTP/1.1\r\nHost: a\r\nX-Ab: 1\r\n\r\n"
                                   "GET / HTTP/1.1\r\nHost: a\r\nX-Ac: 1\r\n\r\n"),
    CASE("memo-names-regrouped", "GET / HTTP/1.1\r\nHost: a\r\nAB: 1\r\nC: 2\r\n\r\n"
                                 "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nBC: 2\r\n\r\n"),
    CASE("memo-namesakes", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nA: 2\r\n\r\n"
                           "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"
                           "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\na: 2\r\n\r\n"),
    CASE("memo-case-and-underscore", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n"
                                     "GET / HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n\r\n"
                                     "GET / HTTP/1.1\r\nHost: a\r\nX_A: 1\r\n\r\n"),
    CASE("memo-slow-path", "GET /%01 HTTP/1.1\r\nHost: a\r\nX-S: 1\r\n\r\n"
                           "GET /s HTTP/1.1\r\nHost: a\r\nX-S: 2\r\n\r\n"
                           "GET /%00 HTTP/1.1\r\nHost: a\r\nX-S: 3\r\n\r\n"),
};

/* ---- chunked bodies ------------------------------------------------------ */

static const raw_case chunked_cases[] = {
    CASE("empty", ""),
    CASE("simple", "5\r\nhello\r\n0\r\n\r\n"),
    CASE("two-chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    CASE("next-request-after", "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
    CASE("hex-case", "A\r\n0123456789\r\na\r\n0123456789\r\n000\r\n\r\n"),
    CASE("leading-zeros", "0000000000000000000000005\r\nhello\r\n0\r\n\r\n"),
    CASE("extensions", "5;a=b;c=\"q\\\"x\" ; d\r\nhello\r\n0;last\r\n\r\n"),
    CASE("ext-bws", "5 \t; a = b\r\nhello\r\n0\r\n\r\n"),
    CASE("ext-bad-quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n"),
    CASE("ext-bad-token", "5;a=(b)\r\nhello\r\n0\r\n\r\n"),
    CASE("ext-no-name", "5;=b\r\nhello\r\n0\r\n\r\n"),
    CASE("ext-qpair-ctl", "5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n"),
    CASE("trailers", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n"),
    CASE("trailer-bad", "5\r\nhello\r\n0\r\nX Sum: 1\r\n\r\n"),
    CASE("trailer-fold", "0\r\nX: 1\r\n 2\r\n\r\n"),
    CASE("trailer-nul", "0\r\nX: 1\0\r\n\r\n"),
    CASE("trailer-many", "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
    CASE("size-space", "5 \r\nhello\r\n0\r\n\r\n"),
    CASE("size-0x", "0x5\r\nhello\r\n0\r\n\r\n"),
    CASE("size-junk", "5z\r\nhello\r\n0\r\n\r\n"),
    CASE("size-empty", "\r\nhello\r\n0\r\n\r\n"),
    CASE("size-negative", "-5\r\nhello\r\n0\r\n\r\n"),
    CASE("size-max", "7fffffffffffffff\r\nabc"),
    CASE("size-overflow", "8000000000000000\r\nabc"),
    CASE("size-overflow-long", "ffffffffffffffffffff\r\nabc"),
    CASE("data-end-wrong", "5\r\nhelloXY0\r\n\r\n"),
    CASE("data-end-cr-only", "5\r\nhello\rX"),
    CASE("data-end-bare-lf", "5\r\nhello\n0\r\n\r\n"),
    CASE("bare-lf-size", "5\nhello\r\n0\r\n\r\n"),
    CASE("bare-lf-everywhere", "5\nhello\n0\nX: 1\n\n"),
    CASE("bare-cr-size", "5\r;a\r\nhello\r\n0\r\n\r\n"),
    CASE("long-size-line", "5;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nhello\r\n0\r\n\r\n"),
    CASE("binary-data", "4\r\n\0\r\n\xff\r\n0\r\n\r\n"),
    CASE("incomplete-data", "10\r\nonly some"),
    CASE("no-final-crlf", "5\r\nhello\r\n0\r\n"),
};

/* ---- response heads -------------------------------------------------------- */

typedef struct serialize_case {
    const char *name;
    serialize_seed seed;
} serialize_case;

#define STR(s) s, sizeof(s) - 1
#define DATE STR("Sun, 06 Nov 1994 08:49:37 GMT")
#define SCASE(name, flags, nfields, status, date, server, fields) \
    {name, {flags, 0, nfields, STR(status), date, server, STR(fields)}}

static const serialize_case serialize_cases[] = {
    SCASE("ok", 0, 0, "200 OK", DATE, STR("fastwsgi"), ""),
    SCASE("no-server", 0, 0, "200 OK", DATE, STR(""), ""),
    SCASE("headers", FW_RESP_KEEP_ALIVE, 2, "404 Not Found", DATE, STR("fastwsgi"),
          "Content-Type\0text/plain\0Content-Length\0" "12"),
    SCASE("app-server-date", FW_RESP_CLOSE, 2, "200 OK", DATE, STR("fastwsgi"),
          "server\0mine\0DATE\0yesterday"),
    SCASE("chunked-close", FW_RESP_CHUNKED | FW_RESP_CLOSE, 1, "201 Created", DATE, STR("s"),
          "X\0y"),
    SCASE("close-and-keep-alive", FW_RESP_CLOSE | FW_RESP_KEEP_ALIVE, 0, "204 No Content", DATE, STR(""), ""),
    SCASE("empty-values", 0, 3, "200 OK", DATE, STR(""), "A\0\0B\0\0C\0"),
    SCASE("ws-kept", 0, 1, "200 OK", DATE, STR(""), "X\0 \tv \t"),
    SCASE("obs-text", 0, 1, "200 \xe9t\xe9", DATE, STR(""), "X\0caf\xe9"),
    SCASE("empty-reason", 0, 0, "200 ", DATE, STR(""), ""),
    SCASE("empty-date", 0, 0, "200 OK", STR(""), STR(""), ""),
    SCASE("status-no-reason", 0, 0, "200", DATE, STR(""), ""),
    SCASE("status-600", 0, 0, "600 X", DATE, STR(""), ""),
    SCASE("status-099", 0, 0, "099 X", DATE, STR(""), ""),
    SCASE("status-letters", 0, 0, "2x0 X", DATE, STR(""), ""),
    SCASE("status-crlf", 0, 0, "200 OK\r\nX: injected", DATE, STR(""), ""),
    SCASE("status-nul", 0, 0, "200 O\0K", DATE, STR(""), ""),
    SCASE("status-empty", 0, 0, "", DATE, STR(""), ""),
    SCASE("hop-connection", 0, 1, "200 OK", DATE, STR(""), "Connection\0close"),
    SCASE("hop-te", 0, 1, "200 OK", DATE, STR(""), "te\0trailers"),
    SCASE("hop-later", 0, 2, "200 OK", DATE, STR(""), "A\0b\0Transfer-Encoding\0chunked"),
    SCASE("bad-name-space", 0, 1, "200 OK", DATE, STR(""), "X Y\0z"),
    SCASE("bad-name-empty", 0, 1, "200 OK", DATE, STR(""), "\0z"),
    SCASE("bad-name-colon", 0, 1, "200 OK", DATE, STR(""), "X:\0z"),
    SCASE("value-crlf", 0, 1, "200 OK", DATE, STR(""), "Set-Cookie\0a\r\nX: injected"),
    SCASE("value-lf", 0, 1, "200 OK", DATE, STR(""), "X\0a\nb"),
    SCASE("value-del", 0, 1, "200 OK", DATE, STR(""), "X\0a\x7f"),
    SCASE("nul-in-value", 0, 1, "200 OK", DATE, STR(""), "X\0a\0b"),
    SCASE("too-few-separators", 0, 2, "200 OK", DATE, STR(""), "X\0a"),
    SCASE("nfields-zero-with-bytes", 0, 0, "200 OK", DATE, STR(""), "X\0a"),
    SCASE("nfields-without-bytes", 0, 1, "200 OK", DATE, STR(""), ""),
    SCASE("trailing-separator", 0, 1, "200 OK", DATE, STR(""), "X\0a\0"),
    SCASE("bad-name-then-nul", 0, 1, "200 OK", DATE, STR(""), "X Y\0a\0b"),
    SCASE("name-without-separator", 0, 1, "200 OK", DATE, STR(""), "X"),
    SCASE("second-name-without-separator", 0, 2, "200 OK", DATE, STR(""), "X\0a\0Y"),
};

/* ---- the error table ------------------------------------------------------- */

/* fw_error_name / fw_error_status agree with FW_ERROR_TABLE, and out-of-range
 * codes get a name and a 500 rather than a read past the table. */
static int check_error_table(void)
{
#define TABLE_ROW(name, num, status) {#name, num, status},
    static const struct { const char *name; int num, status; } rows[] = {FW_ERROR_TABLE(TABLE_ROW)};
#undef TABLE_ROW
    int bad = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *want = rows[i].name + strlen("FW_E_");
        const char *got = fw_error_name(rows[i].num);
        if (fw_error_status(rows[i].num) != rows[i].status || got == NULL || strcmp(got, want) != 0) {
            fprintf(stderr, "FAIL [error-table] %d: %s/%d, table says %s/%d\n", rows[i].num,
                    got ? got : "(null)", fw_error_status(rows[i].num), want, rows[i].status);
            bad++;
        }
    }
    int outside[] = {-1, FW_E__COUNT, 1 << 30};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++)
        if (fw_error_status(outside[i]) != 500 || fw_error_name(outside[i]) == NULL) {
            fprintf(stderr, "FAIL [error-table] code %d outside the table\n", outside[i]);
            bad++;
        }
    return bad == 0;
}

/* ---- generated long cases (limits at their edges) ------------------------- */

typedef struct owned_case {
    char name[64];
    unsigned char *bytes;
    size_t len;
    fw_limits lim;
} owned_case;

static void append(owned_case *c, const void *p, size_t n)
{
    c->bytes = realloc(c->bytes, c->len + n + 1);
    if (c->bytes == NULL)
        abort();
    memcpy(c->bytes + c->len, p, n);
    c->len += n;
}

static void append_str(owned_case *c, const char *s)
{
    append(c, s, strlen(s));
}

static void append_fill(owned_case *c, int byte, size_t n)
{
    c->bytes = realloc(c->bytes, c->len + n + 1);
    if (c->bytes == NULL)
        abort();
    memset(c->bytes + c->len, byte, n);
    c->len += n;
}

/* Heads at the edges of fw_parse_head's memo (FW_MEMO_FIELDS fields,
 * FW_MEMO_NAME_BYTES of names), each pipelined three times: as is, again (a
 * hit when memoised), then with its last name one byte shorter. */
#define MEMO_FIELDS 64
#define MEMO_NAME_BYTES 1024

static void append_memo_head(owned_case *c, size_t fields, size_t last_name_len)
{
    append_str(c, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 1; i + 1 < fields; i++) {
        char line[64];
        snprintf(line, sizeof line, "X-%zu: %zu\r\n", i, i);
        append_str(c, line);
    }
    append_fill(c, 'L', last_name_len);
    append_str(c, ": v\r\n\r\n");
}

static size_t make_memo_requests(owned_case *out)
{
    size_t n = 0;
    for (int over = 0; over < 2; over++) {
        owned_case *c = &out[n++];
        snprintf(c->name, sizeof c->name, "memo-fields-%s", over ? "over" : "at-limit");
        for (int k = 0; k < 3; k++)
            append_memo_head(c, MEMO_FIELDS + (size_t)over, k < 2 ? 2 : 1);

        c = &out[n++];  /* "Host:" and one long name + ':' */
        snprintf(c->name, sizeof c->name, "memo-name-bytes-%s", over ? "over" : "at-limit");
        for (int k = 0; k < 3; k++)
            append_memo_head(c, 2, MEMO_NAME_BYTES - 5 - 1 + (size_t)over - (k < 2 ? 0 : 1));
    }
    return n;
}

/* Default limits (8190/8190/100/65536): request line, field line, field count
 * and head size at the limit and one past it. */
static size_t make_long_requests(owned_case *out)
{
    size_t n = 0;
    for (int over = 0; over < 2; over++) {
        owned_case *c = &out[n++];
        snprintf(c->name, sizeof c->name, "long-request-line-%s", over ? "over" : "at-limit");
        append_str(c, "GET /");  /* "GET /" + x + " HTTP/1.1" = 8190 (+1) */
        append_fill(c, 'a', 8190 - 14 + (size_t)over);
        append_str(c, " HTTP/1.1\r\nHost: a\r\n\r\n");

        c = &out[n++];
        snprintf(c->name, sizeof c->name, "long-field-line-%s", over ? "over" : "at-limit");
        append_str(c, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
        append_fill(c, 'v', 8190 - 3 + (size_t)over);
        append_str(c, "\r\n\r\n");

        c = &out[n++];
        snprintf(c->name, sizeof c->name, "field-count-%s", over ? "over" : "at-limit");
        append_str(c, "GET / HTTP/1.1\r\nHost: a\r\n");
        for (int i = 1; i < 100 + over; i++) {
            char line[32];
            snprintf(line, sizeof line, "X-%d: %d\r\n", i, i);
            append_str(c, line);
        }
        append_str(c, "\r\n");

        c = &out[n++];
        snprintf(c->name, sizeof c->name, "head-size-%s", over ? "over" : "at-limit");
        append_str(c, "GET / HTTP/1.1\r\nHost: a\r\n");
        /* 8 lines of 8000 + 2 bytes, then one filler line to reach 65536 (+1) */
        for (int i = 0; i < 8; i++) {
            append_str(c, "X: ");
            append_fill(c, 'h', 8000 - 3);
            append_str(c, "\r\n");
        }
        size_t filler = 65536 + (size_t)over - c->len - 2 - 2;
        append_str(c, "Y: ");
        append_fill(c, 'f', filler - 3);
        append_str(c, "\r\n\r\n");
    }
    /* More fields than fw_pack_environ keeps name signatures for (128), with
     * repeated names in mixed case on both sides of that index. */
    owned_case *c = &out[n++];
    snprintf(c->name, sizeof c->name, "300-fields-repeated-names");
    c->lim = checks_limits(CHECKS_LIMITS_DEFAULT, 0);
    c->lim.max_header_count = 300;
    append_str(c, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < 300; i++) {
        char line[48];
        snprintf(line, sizeof line, "%s-%d: %d\r\n", i % 2 ? "x-Rep" : "X-rEP", i % 7, i);
        append_str(c, line);
    }
    append_str(c, "\r\n");

    /* a head longer than fw_parse_head's result can say (FW_HEAD_CONSUMED_MASK) */
    c = &out[n++];
    snprintf(c->name, sizeof c->name, "head-past-131071-bytes");
    c->lim = checks_limits(CHECKS_LIMITS_DEFAULT, 0);
    c->lim.max_head_size = 140000;
    append_str(c, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 17; i++) {
        append_str(c, "X: ");
        append_fill(c, 'h', 8000 - 3);
        append_str(c, "\r\n");
    }
    append_str(c, "\r\n");
    return n + make_memo_requests(out + n);
}

static size_t make_long_chunked(owned_case *out)
{
    size_t n = 0;
    owned_case *c = &out[n++];
    snprintf(c->name, sizeof c->name, "big-chunk");
    append_str(c, "186a0\r\n");  /* 100000 bytes */
    for (int i = 0; i < 100000; i++) {
        unsigned char b = (unsigned char)(i * 7 + 3);
        append(c, &b, 1);
    }
    append_str(c, "\r\n0\r\n\r\n");

    c = &out[n++];
    snprintf(c->name, sizeof c->name, "many-small-chunks");
    for (int i = 0; i < 1500; i++)
        append_str(c, "1\r\nx\r\n");
    append_str(c, "0\r\n\r\n");

    for (int over = 0; over < 2; over++) {  /* chunk line at 4096 (+1) */
        c = &out[n++];
        snprintf(c->name, sizeof c->name, "long-chunk-line-%s", over ? "over" : "at-limit");
        append_str(c, "3;e=");
        append_fill(c, 'e', 4096 - 4 + (size_t)over);
        append_str(c, "\r\nabc\r\n0\r\n\r\n");
    }
    return n;
}

/* ---- uwsgi packets ------------------------------------------------------- */

/* A packet built from `vars` ("KEY=VALUE" items separated by '|'; sizes are
 * computed, so CR, LF and NUL may appear in values), then `tail` raw bytes
 * inside the block (counted in datasize), then `after` bytes after it.  Raw
 * inputs (not packets at all) have vars == NULL and only `after`. */
typedef struct uwsgi_case {
    const char *name;
    unsigned char modifier1, modifier2;
    const char *vars; size_t vars_len;
    const char *tail; size_t tail_len;
    const char *after; size_t after_len;
} uwsgi_case;

#define UCASE(name, vars, tail, after) {name, 0, 0, STR(vars), STR(tail), STR(after)}
#define URAW(name, bytes) {name, 0, 0, NULL, 0, "", 0, STR(bytes)}
#define NGINX_VARS "QUERY_STRING=a=1&b=%20|REQUEST_METHOD=POST|" \
    "CONTENT_TYPE=application/x-www-form-urlencoded|CONTENT_LENGTH=7|" \
    "REQUEST_URI=/caf%C3%A9/x?a=1&b=%20|PATH_INFO=/caf\xc3\xa9/x|" \
    "DOCUMENT_ROOT=/usr/share/nginx/html|SERVER_PROTOCOL=HTTP/1.1|REQUEST_SCHEME=http|" \
    "REMOTE_ADDR=127.0.0.1|REMOTE_PORT=53412|SERVER_PORT=8080|SERVER_NAME=localhost|" \
    "HTTP_HOST=localhost|HTTP_USER_AGENT=curl/7.88.1|HTTP_ACCEPT=*/*|HTTP_COOKIE=a=1|" \
    "HTTP_COOKIE=b=2|HTTP_CONTENT_LENGTH=7|HTTP_CONTENT_TYPE=application/x-www-form-urlencoded"

static const uwsgi_case uwsgi_cases[] = {
    URAW("empty", ""),
    URAW("modifier1-only", "\x01"),
    URAW("header-only", "\x00\x15\x00\x00"),
    URAW("header-max-datasize", "\x00\xff\xff\x00"),
    URAW("modifier2", "\x00\x05\x00\x01"),
    URAW("http-request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    URAW("datasize-zero", "\x00\x00\x00\x00"),
    UCASE("minimal", "REQUEST_METHOD=GET", "", ""),
    UCASE("nginx-post", NGINX_VARS, "", "x=1&y=2"),
    UCASE("body-and-more", "REQUEST_METHOD=PUT|CONTENT_LENGTH=2", "", "abcdef\x00\x01"),
    UCASE("repeated-http", "REQUEST_METHOD=GET|HTTP_X=1|HTTP_X=|HTTP_=2|HTTP_=3", "", ""),
    UCASE("duplicate-cgi", "REQUEST_METHOD=GET|PATH_INFO=/a|PATH_INFO=/b", "", ""),
    UCASE("empty-key", "REQUEST_METHOD=GET|=x", "", ""),
    UCASE("key-space", "REQUEST_METHOD=GET|A B=1", "", ""),
    UCASE("key-high-byte", "REQUEST_METHOD=GET|\xe9=1", "", ""),
    UCASE("value-cr", "REQUEST_METHOD=GET|HTTP_X=a\rb", "", ""),
    UCASE("value-nul", "REQUEST_METHOD=GET|HTTP_X=a\0b", "", ""),
    UCASE("value-controls", "REQUEST_METHOD=GET|HTTP_X=\t\x01\x7f\xff", "", ""),
    UCASE("trailing-byte", "REQUEST_METHOD=GET", "\x00", ""),
    UCASE("key-size-past-end", "REQUEST_METHOD=GET", "\x05\x00AB", ""),
    UCASE("value-size-past-end", "REQUEST_METHOD=GET", "\x01\x00A\x05\x00ab", ""),
    UCASE("value-size-half", "REQUEST_METHOD=GET", "\x01\x00A\x00", ""),
    UCASE("no-method", "PATH_INFO=/|SERVER_PROTOCOL=HTTP/1.1", "", ""),
    UCASE("bad-method", "REQUEST_METHOD=G T", "", ""),
    UCASE("cl-empty", "REQUEST_METHOD=GET|CONTENT_LENGTH=", "", ""),
    UCASE("cl-plus", "REQUEST_METHOD=POST|CONTENT_LENGTH=+5", "", ""),
    UCASE("cl-max", "REQUEST_METHOD=POST|CONTENT_LENGTH=9223372036854775807", "", ""),
    UCASE("cl-overflow", "REQUEST_METHOD=POST|CONTENT_LENGTH=9223372036854775808", "", ""),
    UCASE("cl-huge", "REQUEST_METHOD=POST|CONTENT_LENGTH=99999999999999999999999999", "", ""),
    UCASE("cl-zeros", "REQUEST_METHOD=POST|CONTENT_LENGTH=0000000000000000000000000000012", "", ""),
    UCASE("protocol-2", "REQUEST_METHOD=GET|SERVER_PROTOCOL=HTTP/2.0", "", ""),
    UCASE("protocol-bad", "REQUEST_METHOD=GET|SERVER_PROTOCOL=HTTP/1.10", "", ""),
    UCASE("protocol-empty", "REQUEST_METHOD=GET|SERVER_PROTOCOL=", "", ""),
    UCASE("request-uri", "REQUEST_METHOD=GET|REQUEST_URI=/a?b|PATH_INFO=/a|QUERY_STRING=b", "", ""),
    {"modifier1-packet", 7, 0, STR("REQUEST_METHOD=GET"), STR(""), STR("")},
    {"modifier2-packet", 0, 7, STR("REQUEST_METHOD=GET"), STR(""), STR("")},
};
#define NUWSGI_CASES ((int)(sizeof uwsgi_cases / sizeof uwsgi_cases[0]))

static void append_u16(owned_case *c, size_t v)
{
    unsigned char b[2] = {(unsigned char)(v & 0xff), (unsigned char)(v >> 8)};
    append(c, b, 2);
}

static void append_var(owned_case *c, const void *key, size_t key_len, const void *value, size_t value_len)
{
    append_u16(c, key_len);
    append(c, key, key_len);
    append_u16(c, value_len);
    append(c, value, value_len);
}

/* Patch the packet header at the start of c for a block of c->len - 4 bytes. */
static void set_header(owned_case *c, unsigned char modifier1, unsigned char modifier2)
{
    c->bytes[0] = modifier1;
    c->bytes[1] = (unsigned char)((c->len - 4) & 0xff);
    c->bytes[2] = (unsigned char)((c->len - 4) >> 8);
    c->bytes[3] = modifier2;
}

static void uwsgi_case_bytes(int i, owned_case *c)
{
    const uwsgi_case *u = &uwsgi_cases[i];
    snprintf(c->name, sizeof c->name, "%s", u->name);
    if (u->vars != NULL) {
        const char *p = u->vars, *end = u->vars + u->vars_len;
        append_fill(c, 0, 4);
        while (p < end) {
            const char *item_end = memchr(p, '|', (size_t)(end - p));
            if (item_end == NULL)
                item_end = end;
            const char *eq = memchr(p, '=', (size_t)(item_end - p));
            if (eq == NULL)
                abort();  /* a typo in the table above */
            append_var(c, p, (size_t)(eq - p), eq + 1, (size_t)(item_end - eq - 1));
            p = item_end + 1;
        }
        append(c, u->tail, u->tail_len);
        set_header(c, u->modifier1, u->modifier2);
    }
    append(c, u->after, u->after_len);
}

/* A GET packet whose `key` (11 bytes) holds `len` bytes of `fill`; named
 * prefix-at-limit for 8190 (the default max_header_line / max_request_line),
 * prefix-over beyond it. */
static void long_var_packet(owned_case *c, const char *prefix, const char *key, int fill, size_t len)
{
    snprintf(c->name, sizeof c->name, "%s-%s", prefix, len > 8190 ? "over" : "at-limit");
    append_fill(c, 0, 4);
    append_var(c, "REQUEST_METHOD", 14, "GET", 3);
    append_u16(c, strlen(key));
    append_str(c, key);
    append_u16(c, len);
    append_fill(c, fill, len);
    set_header(c, 0, 0);
}

/* Default limits: values, REQUEST_URI, HTTP_ and CGI counts and the packet
 * size at the limit and one past it. */
static size_t make_long_uwsgi(owned_case *out)
{
    size_t n = 0;
    for (int over = 0; over < 2; over++) {
        owned_case *c = &out[n++];
        long_var_packet(c, "uwsgi-value", "HTTP_COOKIE", 'c', 8190 + (size_t)over);
        long_var_packet(&out[n++], "uwsgi-request-uri", "REQUEST_URI", 'u', 8190 + (size_t)over);

        c = &out[n++];  /* 100 HTTP_ vars (+1) and 64 CGI vars (+1), interleaved */
        snprintf(c->name, sizeof c->name, "uwsgi-var-counts-%s", over ? "over" : "at-limit");
        append_fill(c, 0, 4);
        append_var(c, "REQUEST_METHOD", 14, "GET", 3);
        for (int i = 1; i < 100 + over || i < 64 + over; i++) {
            char key[32], value[32];
            if (i < 64 + over) {
                snprintf(key, sizeof key, "CGI_%d", i);
                snprintf(value, sizeof value, "%d", i);
                append_var(c, key, strlen(key), value, strlen(value));
            }
            snprintf(key, sizeof key, "HTTP_X_%d", i % 7);
            append_var(c, key, strlen(key), "v", 1);
        }
        append_var(c, "HTTP_LAST", 9, "", 0);
        set_header(c, 0, 0);
        append_str(c, "body");

        c = &out[n++];  /* the packet at 65536 bytes (+1): max_head_size */
        snprintf(c->name, sizeof c->name, "uwsgi-packet-size-%s", over ? "over" : "at-limit");
        append_fill(c, 0, 4);
        append_var(c, "REQUEST_METHOD", 14, "GET", 3);
        for (int i = 0; i < 8; i++) {
            append_u16(c, 6);
            append_str(c, "HTTP_Y");
            append_u16(c, 8000);
            append_fill(c, 'y', 8000);
        }
        size_t filler = 65536 + (size_t)over - c->len - 10;
        append_u16(c, 6);
        append_str(c, "HTTP_Z");
        append_u16(c, filler);
        append_fill(c, 'z', filler);
        set_header(c, 0, 0);
    }
    return n;
}

/* ---- running ------------------------------------------------------------- */

static unsigned long passed, failed;

static void finish_case(unsigned long failures_before)
{
    if (checks_failures() == failures_before)
        passed++;
    else
        failed++;
}

typedef struct limit_set {
    const char *name;
    int preset;
    unsigned flags;
} limit_set;

static const limit_set limit_sets[] = {
    {"default", CHECKS_LIMITS_DEFAULT, 0},
    {"tiny", CHECKS_LIMITS_TINY, 0},
    {"small", CHECKS_LIMITS_SMALL, 0},
    {"lenient", CHECKS_LIMITS_DEFAULT, FW_ALLOW_BARE_LF | FW_ALLOW_MISSING_HOST},
};
#define NLIMIT_SETS (sizeof limit_sets / sizeof limit_sets[0])

enum { KIND_REQUEST, KIND_CHUNKED, KIND_UWSGI };
static const char *const kind_names[] = {"request", "chunked", "uwsgi"};

/* Request bytes go to both the public parser's checks and the binding's
 * fw_parse_head (whose memo is shared by all the run's inputs). */
static void check_request_and_head(const unsigned char *data, size_t len, const fw_limits *lim,
                                   unsigned opts, size_t split)
{
    check_request(data, len, lim, opts, split);
    check_head(data, len, lim, opts, split);
}

static void run_stream_case(int kind, const char *name, const unsigned char *data, size_t len,
                            const fw_limits *lim, const char *lim_name)
{
    char label[160];
    unsigned long before = checks_failures();
    snprintf(label, sizeof label, "%s/%.80s [%.20s]", kind_names[kind], name, lim_name);
    checks_set_case(label);
    if (kind == KIND_CHUNKED)
        check_chunked(data, len, lim, CHECK_ALL, len / 2);
    else if (kind == KIND_UWSGI)
        check_uwsgi(data, len, lim, CHECK_ALL, len / 2);
    else
        check_request_and_head(data, len, lim, CHECK_ALL, len / 2);
    finish_case(before);
}

static void run_builtin(void)
{
    owned_case longs[16];
    size_t nlong;

    for (size_t i = 0; i < sizeof request_cases / sizeof request_cases[0]; i++)
        for (size_t l = 0; l < NLIMIT_SETS; l++) {
            fw_limits lim = checks_limits(limit_sets[l].preset, limit_sets[l].flags);
            run_stream_case(KIND_REQUEST, request_cases[i].name,
                            (const unsigned char *)request_cases[i].bytes, request_cases[i].len, &lim,
                            limit_sets[l].name);
        }
    for (size_t i = 0; i < sizeof chunked_cases / sizeof chunked_cases[0]; i++)
        for (size_t l = 0; l < NLIMIT_SETS; l++) {
            fw_limits lim = checks_limits(limit_sets[l].preset, limit_sets[l].flags);
            run_stream_case(KIND_CHUNKED, chunked_cases[i].name,
                            (const unsigned char *)chunked_cases[i].bytes, chunked_cases[i].len, &lim,
                            limit_sets[l].name);
        }
    for (int i = 0; i < NUWSGI_CASES; i++)
        for (size_t l = 0; l < NLIMIT_SETS; l++) {
            fw_limits lim = checks_limits(limit_sets[l].preset, limit_sets[l].flags);
            owned_case c;
            memset(&c, 0, sizeof c);
            uwsgi_case_bytes(i, &c);
            run_stream_case(KIND_UWSGI, c.name, c.bytes, c.len, &lim, limit_sets[l].name);
            free(c.bytes);
        }
    for (int kind = KIND_REQUEST; kind <= KIND_UWSGI; kind++) {
        memset(longs, 0, sizeof longs);
        for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++)
            longs[i].lim = checks_limits(CHECKS_LIMITS_DEFAULT, 0);
        nlong = kind == KIND_CHUNKED ? make_long_chunked(longs)
              : kind == KIND_UWSGI   ? make_long_uwsgi(longs)
                                     : make_long_requests(longs);
        for (size_t i = 0; i < nlong; i++) {
            fw_limits default_lim = checks_limits(CHECKS_LIMITS_DEFAULT, 0);
            int is_default = memcmp(&longs[i].lim, &default_lim, sizeof default_lim) == 0;
            run_stream_case(kind, longs[i].name, longs[i].bytes, longs[i].len, &longs[i].lim,
                            is_default ? "default" : "custom");
            free(longs[i].bytes);
        }
    }
    for (size_t i = 0; i < sizeof serialize_cases / sizeof serialize_cases[0]; i++) {
        char label[160];
        unsigned long before = checks_failures();
        snprintf(label, sizeof label, "serialize/%.80s", serialize_cases[i].name);
        checks_set_case(label);
        check_serialize(&serialize_cases[i].seed);
        finish_case(before);
    }
    /* a long header value: capacities are sampled rather than all tried */
    {
        static char fields[6002];
        serialize_seed s = {0, 3000, 1, STR("200 OK"), DATE, STR("x"), fields, sizeof fields};
        unsigned long before = checks_failures();
        memcpy(fields, "X\0", 2);
        memset(fields + 2, 'v', sizeof fields - 2);
        checks_set_case("serialize/long-value");
        check_serialize(&s);
        finish_case(before);
    }
}

/* ---- seed files ------------------------------------------------------------ */

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            if (buf == NULL)
                abort();
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every file of dir/kind through its check; returns the number of files. */
static size_t run_seed_dir(const char *dir, const char *kind)
{
    char path[4096];
    char **names = NULL;
    size_t count = 0;
    snprintf(path, sizeof path, "%s/%s", dir, kind);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (count + 1) * sizeof *names);
        if (names == NULL || (names[count] = strdup(e->d_name)) == NULL)
            abort();
        count++;
    }
    closedir(d);
    qsort(names, count, sizeof *names, compare_names);
    for (size_t i = 0; i < count; i++) {
        char label[4200];
        size_t len = 0;
        unsigned char *bytes;
        snprintf(path, sizeof path, "%s/%s/%s", dir, kind, names[i]);
        snprintf(label, sizeof label, "%s", path);
        bytes = read_file(path, &len);
        unsigned long before = checks_failures();
        checks_set_case(label);
        if (bytes == NULL) {
            fprintf(stderr, "FAIL [%s] cannot read: %s\n", label, strerror(errno));
            failed++;
            free(names[i]);
            continue;
        }
        if (strcmp(kind, "serialize") == 0) {
            serialize_seed s;
            if (seed_decode_serialize(bytes, len, &s))
                check_serialize(&s);
        } else {
            stream_seed s;
            if (seed_decode_stream(bytes, len, &s)) {
                if (strcmp(kind, "chunked") == 0)
                    check_chunked(s.data, s.len, &s.lim, CHECK_ALL, s.split);
                else if (strcmp(kind, "uwsgi") == 0)
                    check_uwsgi(s.data, s.len, &s.lim, CHECK_ALL, s.split);
                else
                    check_request_and_head(s.data, s.len, &s.lim, CHECK_ALL, s.split);
            }
        }
        finish_case(before);
        free(bytes);
        free(names[i]);
    }
    free(names);
    return count;
}

static void write_seed(const char *dir, const char *kind, const char *name, const unsigned char *bytes,
                       size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, kind);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        perror(path);
        exit(2);
    }
    snprintf(path, sizeof path, "%s/%s/builtin-%s", dir, kind, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* The short built-in cases as seeds (limits: default; tiny for requests too). */
static void write_builtin_seeds(const char *dir)
{
    static unsigned char buf[1 << 16];
    char name[128];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        perror(dir);
        exit(2);
    }
    for (int chunked = 0; chunked < 2; chunked++) {
        const raw_case *cases = chunked ? chunked_cases : request_cases;
        size_t ncases = chunked ? sizeof chunked_cases / sizeof chunked_cases[0]
                                : sizeof request_cases / sizeof request_cases[0];
        for (size_t i = 0; i < ncases; i++)
            for (size_t l = 0; l < NLIMIT_SETS; l++) {
                fw_limits lim = checks_limits(limit_sets[l].preset, limit_sets[l].flags);
                size_t n = seed_encode_stream(&lim, cases[i].len / 2, cases[i].bytes, cases[i].len,
                                              buf, sizeof buf);
                snprintf(name, sizeof name, "%s-%s", cases[i].name, limit_sets[l].name);
                write_seed(dir, chunked ? "chunked" : "request", name, buf, n);
            }
    }
    for (int i = 0; i < NUWSGI_CASES; i++)
        for (size_t l = 0; l < NLIMIT_SETS; l++) {
            fw_limits lim = checks_limits(limit_sets[l].preset, limit_sets[l].flags);
            owned_case c;
            memset(&c, 0, sizeof c);
            uwsgi_case_bytes(i, &c);
            size_t n = seed_encode_stream(&lim, c.len / 2, c.bytes, c.len, buf, sizeof buf);
            snprintf(name, sizeof name, "%s-%s", c.name, limit_sets[l].name);
            write_seed(dir, "uwsgi", name, buf, n);
            free(c.bytes);
        }
    owned_case memo[4];
    memset(memo, 0, sizeof memo);
    size_t nmemo = make_memo_requests(memo);
    for (size_t i = 0; i < nmemo; i++) {
        fw_limits lim = checks_limits(CHECKS_LIMITS_DEFAULT, 0);
        size_t n = seed_encode_stream(&lim, memo[i].len / 2, memo[i].bytes, memo[i].len, buf, sizeof buf);
        write_seed(dir, "request", memo[i].name, buf, n);
        free(memo[i].bytes);
    }
    for (size_t i = 0; i < sizeof serialize_cases / sizeof serialize_cases[0]; i++) {
        size_t n = seed_encode_serialize(&serialize_cases[i].seed, buf, sizeof buf);
        write_seed(dir, "serialize", serialize_cases[i].name, buf, n);
    }
}

int main(int argc, char **argv)
{
    int builtin = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--write-seeds") == 0 && i + 1 < argc) {
            write_builtin_seeds(argv[i + 1]);
            return 0;
        }
        if (strcmp(argv[i], "--no-builtin") == 0) {
            builtin = 0;
        } else if (strcmp(argv[i], "--seeds") != 0 || i + 1 == argc) {
            fprintf(stderr, "usage: %s [--seeds DIR]... [--no-builtin] | --write-seeds DIR\n", argv[0]);
            return 2;
        } else {
            i++;
        }
    }
    if (builtin) {
        if (check_error_table())
            passed++;
        else
            failed++;
        run_builtin();
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") != 0)
            continue;
        const char *dir = argv[++i];
        size_t files = run_seed_dir(dir, "request") + run_seed_dir(dir, "chunked") +
                       run_seed_dir(dir, "uwsgi") +
                       run_seed_dir(dir, "serialize");
        if (files == 0) {
            fprintf(stderr, "FAIL [%s] no seed files (expected request/, chunked/, uwsgi/ or serialize/)\n", dir);
            failed++;
        }
    }
    if (builtin) {  /* the built-in heads repeat names: the shared memo must have served some */
        if (check_head_history_hits() > 0)
            passed++;
        else {
            fprintf(stderr, "FAIL [memo] no head found its names in the memo left by earlier inputs\n");
            failed++;
        }
        if (check_head_repeats() > 0)  /* and heads parsed again repeated their kept values */
            passed++;
        else {
            fprintf(stderr, "FAIL [repeat] no head came back as FW_HEAD_REPEAT\n");
            failed++;
        }
        if (check_head_changes() > 0)  /* and heads with a value changed wrote only that one */
            passed++;
        else {
            fprintf(stderr, "FAIL [change] no head came back as FW_HEAD_CHANGED\n");
            failed++;
        }
    }
    printf("%lu passed, %lu failed (fw_parse_head memo: %lu heads found names of earlier inputs, "
           "%lu repeated kept values, %lu changed a few)\n", passed, failed, check_head_history_hits(),
           check_head_repeats(), check_head_changes());
    return failed == 0 ? 0 : 1;
}
