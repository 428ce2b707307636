/*
 * capi.c - the prototype's --capi variant: serve.py's per-request work (environ, PEP 3333
 * start_response, the application, the response head) written against the CPython C API, as bjoern
 * does, instead of in Python behind a cffi callback.
 *
 * Theory of operation
 * -------------------
 * cloop_capi_run takes the GIL once and keeps it for the whole loop (one thread: nothing else needs
 * it), installs capi_on_request as the loop's handler and runs cloop_run, so a request costs no
 * cffi crossing and no GIL hand-over.  Its configuration comes from __main__ (serve.py --capi):
 * CLOOP_APP, CLOOP_BASE (the listener's base environ) and CLOOP_APPLY_FORWARDED (a callable taking
 * the environ, called only when a forwarding header is present: apply_forwarded's own first test).
 * The handler splits the packed head (fw_binding.h) in C, keeps the environ keys of each memo slot
 * as interned str objects, builds the environ from the connection's base dict, calls the
 * application with a C start_response (the same checks as serve.py's Reply) and a C write(), takes
 * the body from the returned list (or any iterable, joined; close() called), packs status and
 * headers (latin-1 str only) and calls cloop_respond directly.  A Python exception prints its
 * traceback and answers 500 (closing).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "fastwsgi.h"
#include "fw_binding.h"
#include "cloop.h"

#define CAPI_MAX_FIELDS (2 * 256 + 6)  /* values + 5 request fields + keys (at most 100 headers) */

static PyObject *app, *base, *apply_forwarded;
static PyObject *bases[CLOOP_MAX_FDS];              /* per connection: base + REMOTE_ADDR/PORT */
static PyObject *slot_keys[FW_MEMO_SLOTS][FW_MEMO_FIELDS];
static Py_ssize_t slot_nkeys[FW_MEMO_SLOTS];
static PyObject *k_method, *k_path, *k_query, *k_raw_uri, *k_request_uri, *k_protocol;
static PyObject *k_remote_addr, *k_remote_port, *k_forwarding[4];
static PyObject *reply_status, *reply_headers, *reply_written;  /* the current request's */
static PyObject *start_response_fn, *write_fn;
static char *head_buf;
static size_t head_cap;

static void capi_reset_reply(void)
{
    Py_CLEAR(reply_status);
    Py_CLEAR(reply_headers);
    Py_CLEAR(reply_written);
}

static PyObject *capi_write(PyObject *self, PyObject *data)
{
    PyObject *bytes;
    int status;
    (void)self;
    if (reply_status == NULL) {
        PyErr_SetString(PyExc_AssertionError, "write() called before start_response()");
        return NULL;
    }
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data))
        return PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
    if (reply_written == NULL && (reply_written = PyList_New(0)) == NULL)
        return NULL;
    if ((bytes = PyBytes_FromObject(data)) == NULL)
        return NULL;
    status = PyList_Append(reply_written, bytes);
    Py_DECREF(bytes);
    if (status != 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *capi_start_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *status, *headers, *exc_info;
    (void)self;
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "start_response() takes 2 or 3 arguments");
        return NULL;
    }
    status = args[0];
    headers = args[1];
    exc_info = nargs == 3 ? args[2] : Py_None;
    if (exc_info != Py_None) {
        if (reply_written != NULL) {                /* body bytes already left: re-raise */
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
                PyErr_SetString(PyExc_TypeError, "exc_info must be a 3-tuple");
                return NULL;
            }
            PyErr_Restore(Py_NewRef(PyTuple_GET_ITEM(exc_info, 0)),
                          Py_NewRef(PyTuple_GET_ITEM(exc_info, 1)),
                          Py_NewRef(PyTuple_GET_ITEM(exc_info, 2)));
            return NULL;
        }
    } else if (reply_status != NULL) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response() called a second time without exc_info");
        return NULL;
    }
    if (!PyUnicode_CheckExact(status))
        return PyErr_Format(PyExc_TypeError, "status must be a str, not %.100s",
                            Py_TYPE(status)->tp_name);
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers))
        return PyErr_Format(PyExc_TypeError, "headers must be a list, not %.100s",
                            Py_TYPE(headers)->tp_name);
    Py_XSETREF(reply_status, Py_NewRef(status));
    Py_XSETREF(reply_headers, Py_NewRef(headers));
    return Py_NewRef(write_fn);
}

static PyMethodDef write_def = {"write", (PyCFunction)capi_write, METH_O, NULL};
static PyMethodDef start_response_def = {"start_response", (PyCFunction)(void (*)(void))capi_start_response,
                                         METH_FASTCALL, NULL};

/* Append (a NUL and) a latin-1 str to head_buf; -1 with an exception otherwise. */
static int capi_put(size_t *len, PyObject *text, int nul_first)
{
    Py_ssize_t n;
    if (!PyUnicode_Check(text) || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "response status and headers must be latin-1 str, not %R",
                     text);
        return -1;
    }
    n = PyUnicode_GET_LENGTH(text);
    if (*len + (size_t)n + 1 > head_cap) {
        size_t cap = head_cap ? head_cap : 1024;
        char *grown;
        while (*len + (size_t)n + 1 > cap)
            cap *= 2;
        if ((grown = realloc(head_buf, cap)) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        head_buf = grown;
        head_cap = cap;
    }
    if (nul_first)
        head_buf[(*len)++] = '\0';
    memcpy(head_buf + *len, PyUnicode_1BYTE_DATA(text), (size_t)n);
    *len += (size_t)n;
    return 0;
}

/* The response: body chunks joined, status + headers packed, cloop_respond.  0 or -1 (exception). */
static int capi_respond(cloop_conn *conn, PyObject *result)
{
    PyObject *chunks = NULL, *body = NULL, *headers;
    size_t len = 0;
    Py_ssize_t i, count;
    int status = -1;

    if (PyList_CheckExact(result)) {
        chunks = Py_NewRef(result);
    } else {
        chunks = PySequence_List(result);           /* any iterable: joined whole */
        if (PyObject_HasAttrString(result, "close")) {
            PyObject *closed = PyObject_CallMethod(result, "close", NULL);
            if (closed == NULL)
                Py_CLEAR(chunks);
            Py_XDECREF(closed);
        }
        if (chunks == NULL)
            return -1;
    }
    if (reply_written != NULL) {                    /* write() bytes come first */
        PyObject *all = PySequence_Concat(reply_written, chunks);
        Py_SETREF(chunks, all);
        if (chunks == NULL)
            return -1;
    }
    if (PyList_GET_SIZE(chunks) == 1 && PyBytes_CheckExact(PyList_GET_ITEM(chunks, 0))) {
        body = Py_NewRef(PyList_GET_ITEM(chunks, 0));
    } else {
        PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
        body = empty ? PyObject_CallMethod(empty, "join", "O", chunks) : NULL;
        Py_XDECREF(empty);
        if (body == NULL)
            goto done;
    }
    if (reply_status == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the application returned without calling start_response()");
        goto done;
    }
    if (capi_put(&len, reply_status, 0) != 0)      /* status \0 name \0 value ... */
        goto done;
    headers = reply_headers;
    count = PySequence_Fast_GET_SIZE(headers);
    for (i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(headers, i);
        if (!(PyTuple_CheckExact(pair) || PyList_CheckExact(pair)) ||
            PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_Format(PyExc_ValueError, "a header must be a (name, value) pair, not %R", pair);
            goto done;
        }
        if (capi_put(&len, PySequence_Fast_GET_ITEM(pair, 0), 1) != 0 ||
            capi_put(&len, PySequence_Fast_GET_ITEM(pair, 1), 1) != 0)
            goto done;
    }
    if (cloop_respond(conn, head_buf, len, (size_t)count, PyBytes_AS_STRING(body),
                      (size_t)PyBytes_GET_SIZE(body), 0) != 0) {
        PyErr_Format(PyExc_ValueError, "invalid response head: %R %R", reply_status, reply_headers);
        goto done;
    }
    status = 0;
done:
    Py_XDECREF(body);
    Py_XDECREF(chunks);
    return status;
}

/* environ[key] = the latin-1 text, or -1 */
static int capi_set(PyObject *environ, PyObject *key, const char *text, size_t len)
{
    PyObject *value = PyUnicode_DecodeLatin1(text, (Py_ssize_t)len, NULL);
    int status = value ? PyDict_SetItem(environ, key, value) : -1;
    Py_XDECREF(value);
    return status;
}

static int capi_on_request(cloop_conn *conn, int fd, int first, const char *peer, long long head,
                           const char *packed)
{
    static const char error_500[] = "500 Internal Server Error\0Content-Type\0text/plain\0"
                                    "Content-Length\0" "0";
    const char *field[CAPI_MAX_FIELDS];
    size_t field_len[CAPI_MAX_FIELDS];
    size_t nfields = 0, n = 0, i, made = 0;
    unsigned keys_state = (unsigned)(head >> FW_HEAD_KEYS_SHIFT);
    const char *p = packed;
    PyObject *environ = NULL, *result = NULL, *args[2];
    PyObject *new_keys[FW_MEMO_FIELDS], **keys;

    for (;;) {                                       /* SEP-separated, NUL-terminated */
        const char *sep = strchr(p, FW_HEAD_SEP);
        if (nfields == CAPI_MAX_FIELDS)
            goto fail_plain;
        field[nfields] = p;
        field_len[nfields++] = sep ? (size_t)(sep - p) : strlen(p);
        if (sep == NULL)
            break;
        p = sep + 1;
    }
    if (keys_state < FW_HEAD_STORED) {               /* the names of an earlier head */
        keys = slot_keys[keys_state];
        n = (size_t)slot_nkeys[keys_state];
    } else {
        n = (nfields - 5) / 2;                       /* n values, 5 fields, n keys */
        if (n > FW_MEMO_FIELDS)
            goto fail_plain;
        keys = keys_state < FW_HEAD_NEW ? slot_keys[keys_state - FW_HEAD_STORED] : new_keys;
        if (keys != new_keys)
            slot_nkeys[keys_state - FW_HEAD_STORED] = 0;  /* until all are made */
        for (i = 0; i < n; i++) {
            PyObject *key = PyUnicode_DecodeLatin1(field[n + 5 + i], (Py_ssize_t)field_len[n + 5 + i],
                                                   NULL);
            if (key == NULL)
                goto fail;
            PyUnicode_InternInPlace(&key);
            if (keys != new_keys)
                Py_XDECREF(keys[i]);
            keys[i] = key;
            made = i + 1;
        }
        if (keys != new_keys)
            slot_nkeys[keys_state - FW_HEAD_STORED] = (Py_ssize_t)n;
    }
    if (nfields < n + 5)
        goto fail_plain;

    if (first || bases[fd] == NULL) {
        const char *space = strchr(peer, ' ');
        PyObject *connection_base = PyDict_Copy(base);
        Py_XSETREF(bases[fd], connection_base);
        if (connection_base == NULL || space == NULL ||
            capi_set(connection_base, k_remote_addr, peer, (size_t)(space - peer)) != 0 ||
            capi_set(connection_base, k_remote_port, space + 1, strlen(space + 1)) != 0)
            goto fail;
    }
    if ((environ = PyDict_Copy(bases[fd])) == NULL)
        goto fail;
    for (i = 0; i < n; i++)
        if (capi_set(environ, keys[i], field[i], field_len[i]) != 0)
            goto fail;
    if (capi_set(environ, k_method, field[n], field_len[n]) != 0 ||
        capi_set(environ, k_raw_uri, field[n + 1], field_len[n + 1]) != 0 ||
        PyDict_SetItem(environ, k_request_uri, PyDict_GetItem(environ, k_raw_uri)) != 0 ||
        capi_set(environ, k_protocol, field[n + 2], field_len[n + 2]) != 0 ||
        capi_set(environ, k_query, field[n + 3], field_len[n + 3]) != 0 ||
        capi_set(environ, k_path, field[n + 4], field_len[n + 4]) != 0)
        goto fail;
    for (i = 0; i < 4; i++) {                        /* apply_forwarded's own first test */
        if (PyDict_Contains(environ, k_forwarding[i])) {
            PyObject *done = PyObject_CallOneArg(apply_forwarded, environ);
            if (done == NULL)
                goto fail;
            Py_DECREF(done);
            break;
        }
    }

    capi_reset_reply();
    args[0] = environ;
    args[1] = start_response_fn;
    if ((result = PyObject_Vectorcall(app, args, 2, NULL)) == NULL || capi_respond(conn, result) != 0)
        goto fail;
    Py_DECREF(result);
    Py_DECREF(environ);
    capi_reset_reply();
    if (keys_state >= FW_HEAD_NEW)
        for (i = 0; i < made; i++)
            Py_DECREF(new_keys[i]);
    return 0;
fail:
    PyErr_Print();
fail_plain:
    if (keys_state >= FW_HEAD_NEW)
        for (i = 0; i < made; i++)
            Py_DECREF(new_keys[i]);
    Py_XDECREF(result);
    Py_XDECREF(environ);
    capi_reset_reply();
    cloop_respond(conn, error_500, sizeof error_500 - 1, 2, "", 0, 1);
    return 0;
}

static PyObject *capi_config(PyObject *main, const char *name)
{
    PyObject *value = PyObject_GetAttrString(main, name);
    if (value == NULL)
        PyErr_Print();
    return value;
}

int cloop_capi_run(cloop_loop *loop)
{
    static const char *forwarding[4] = {"HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR",
                                        "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST"};
    PyGILState_STATE gil = PyGILState_Ensure();      /* held for the whole loop */
    PyObject *main = PyImport_AddModule("__main__"); /* borrowed */
    int i, status = -1;
    if (main == NULL || (app = capi_config(main, "CLOOP_APP")) == NULL ||
        (base = capi_config(main, "CLOOP_BASE")) == NULL ||
        (apply_forwarded = capi_config(main, "CLOOP_APPLY_FORWARDED")) == NULL)
        goto out;
    k_method = PyUnicode_InternFromString("REQUEST_METHOD");
    k_path = PyUnicode_InternFromString("PATH_INFO");
    k_query = PyUnicode_InternFromString("QUERY_STRING");
    k_raw_uri = PyUnicode_InternFromString("RAW_URI");
    k_request_uri = PyUnicode_InternFromString("REQUEST_URI");
    k_protocol = PyUnicode_InternFromString("SERVER_PROTOCOL");
    k_remote_addr = PyUnicode_InternFromString("REMOTE_ADDR");
    k_remote_port = PyUnicode_InternFromString("REMOTE_PORT");
    for (i = 0; i < 4; i++)
        k_forwarding[i] = PyUnicode_InternFromString(forwarding[i]);
    start_response_fn = PyCFunction_New(&start_response_def, NULL);
    write_fn = PyCFunction_New(&write_def, NULL);
    if (PyErr_Occurred()) {
        PyErr_Print();
        goto out;
    }
    cloop_set_handler(loop, capi_on_request);
    status = cloop_run(loop);
out:
    PyGILState_Release(gil);
    return status;
}
