/*
 * capi_environ.c - experiment, not shipped: request bytes to a complete CGI environ with the
 * CPython C API, to measure what issue 2's target (<= 0.5x httptools) would take.
 *
 * Theory of operation: one call, environ(data, base), runs the project's own fw_parse_head (csrc/,
 * unchanged: strict parse + packed output + memo of names) on a module-level parser, then builds
 * the environ in C: a copy of `base`, each header value as a latin-1 str under the memo slot's
 * interned key objects (made once per slot, as _cffi.py keeps its key tuples), then REQUEST_METHOD,
 * RAW_URI, REQUEST_URI, SERVER_PROTOCOL, QUERY_STRING, PATH_INFO. It returns the dict, or raises
 * ValueError for an error or an incomplete head (the benchmark feeds only valid whole heads). This
 * is the environ half of benchmarks/experiments/cloop/capi.c, without the event loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "fastwsgi.h"
#include "fw_binding.h"

#define MAX_FIELDS (2 * 256 + 6)

static fw_limits limits = {8190, 8190, 100, 65536, 4096, 0};
static fw_header headers[256];
static fw_scratch scratch;
static fw_parser parser;
static PyObject *slot_keys[FW_MEMO_SLOTS][FW_MEMO_FIELDS];
static Py_ssize_t slot_nkeys[FW_MEMO_SLOTS];
static PyObject *k_request[6];  /* REQUEST_METHOD RAW_URI SERVER_PROTOCOL QUERY_STRING PATH_INFO REQUEST_URI */

static int set_text(PyObject *environ, PyObject *key, const char *text, size_t len)
{
    PyObject *value = PyUnicode_DecodeLatin1(text, (Py_ssize_t)len, NULL);
    int status = value ? PyDict_SetItem(environ, key, value) : -1;
    Py_XDECREF(value);
    return status;
}

static PyObject *environ_of(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *field[MAX_FIELDS], *p;
    size_t field_len[MAX_FIELDS], nfields = 0, n, i;
    PyObject *new_keys[FW_MEMO_FIELDS], **keys, *environ, *target;
    long long result;
    unsigned keys_state;
    (void)self;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "environ(data: bytes, base: dict)");
        return NULL;
    }
    result = fw_parse_head(&parser, PyBytes_AS_STRING(args[0]), (size_t)PyBytes_GET_SIZE(args[0]), 1);
    if (result < 0)
        return PyErr_Format(PyExc_ValueError, "not a complete valid head (%lld)", result);
    keys_state = (unsigned)(result >> FW_HEAD_KEYS_SHIFT);
    if (keys_state >= FW_HEAD_SLOW)
        return PyErr_Format(PyExc_ValueError, "slow head");
    for (p = scratch.out;;) {                       /* SEP-separated, NUL-terminated */
        const char *sep = strchr(p, FW_HEAD_SEP);
        if (nfields == MAX_FIELDS)
            return PyErr_Format(PyExc_ValueError, "too many fields");
        field[nfields] = p;
        field_len[nfields++] = sep ? (size_t)(sep - p) : strlen(p);
        if (sep == NULL)
            break;
        p = sep + 1;
    }
    if (keys_state < FW_HEAD_STORED) {
        keys = slot_keys[keys_state];
        n = (size_t)slot_nkeys[keys_state];
    } else {
        n = (nfields - 5) / 2;
        keys = keys_state < FW_HEAD_NEW ? slot_keys[keys_state - FW_HEAD_STORED] : new_keys;
        for (i = 0; i < n; i++) {
            PyObject *key = PyUnicode_DecodeLatin1(field[n + 5 + i], (Py_ssize_t)field_len[n + 5 + i], NULL);
            if (key == NULL)
                return NULL;
            PyUnicode_InternInPlace(&key);
            if (keys != new_keys)
                Py_XDECREF(keys[i]);
            keys[i] = key;
        }
        if (keys != new_keys)
            slot_nkeys[keys_state - FW_HEAD_STORED] = (Py_ssize_t)n;
    }
    if ((environ = PyDict_Copy(args[1])) == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        if (set_text(environ, keys[i], field[i], field_len[i]) != 0)
            goto fail;
    for (i = 0; i < 5; i++)
        if (set_text(environ, k_request[i], field[n + i], field_len[n + i]) != 0)
            goto fail;
    target = PyDict_GetItem(environ, k_request[1]);
    if (PyDict_SetItem(environ, k_request[5], target) != 0)
        goto fail;
    if (keys == new_keys)
        for (i = 0; i < n; i++)
            Py_DECREF(new_keys[i]);
    return environ;
fail:
    Py_DECREF(environ);
    return NULL;
}

static PyMethodDef methods[] = {
    {"environ", (PyCFunction)(void (*)(void))environ_of, METH_FASTCALL, "environ(data, base) -> dict"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "capi_environ", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_capi_environ(void)
{
    static const char *names[6] = {"REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL", "QUERY_STRING",
                                   "PATH_INFO", "REQUEST_URI"};
    int i;
    static char out[65536 * 8 + 128];
    scratch.out = out;
    scratch.cap = sizeof out;
    scratch.headers = headers;
    parser.lim = &limits;
    parser.scratch = &scratch;
    for (i = 0; i < 6; i++)
        if ((k_request[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return NULL;
    return PyModule_Create(&module);
}
