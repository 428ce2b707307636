/*
 * fastwsgi_cdef.h - the declarations of fastwsgi.h and fw_binding.h in the
 * subset of C that cffi's cdef (pycparser) reads: no includes, no macros
 * beyond integer constants.  csrc/build_ffi.py compiles the extension
 * with the real headers #included, so any drift between this copy and them
 * (a field, a type, a signature) is a compile error, never a silent mismatch.
 */

#define FW_ABI_VERSION ...
#define FW_ERROR ...
#define FW_INCOMPLETE ...

#define FW_ALLOW_BARE_LF ...
#define FW_ALLOW_MISSING_HOST ...

#define FW_REQ_CHUNKED ...
#define FW_REQ_KEEP_ALIVE ...
#define FW_REQ_EXPECT_CONTINUE ...
#define FW_REQ_UPGRADE ...

#define FW_RESP_CHUNKED ...
#define FW_RESP_CLOSE ...
#define FW_RESP_KEEP_ALIVE ...

int fw_error_status(int error);
const char *fw_error_name(int error);

typedef struct fw_limits {
    uint32_t max_request_line;
    uint32_t max_header_line;
    uint32_t max_header_count;
    uint32_t max_head_size;
    uint32_t max_chunk_line;
    uint32_t flags;
} fw_limits;

typedef struct fw_header {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
} fw_header;

typedef struct fw_request {
    uint32_t line_start;
    uint32_t scan_pos;
    uint32_t seen_request_line;
    uint32_t num_headers;
    uint32_t method_off, method_len;
    uint32_t target_off, target_len;
    uint32_t path_off, path_len;
    uint32_t query_off, query_len;
    uint32_t version_off;
    uint8_t version_major, version_minor;
    uint8_t _pad[2];
    int64_t content_length;
    uint32_t flags;
    int32_t error;
    int32_t status;
} fw_request;

void fw_request_init(fw_request *req);
long fw_parse_request(const char *buf, size_t len, const fw_limits *lim,
                      fw_request *req, fw_header *headers);
long fw_pack_environ(const char *buf, const fw_request *req,
                     const fw_header *headers, char *out, size_t cap,
                     size_t *path_len);

typedef struct fw_chunked {
    uint32_t state;
    uint32_t line_scanned;
    uint64_t remaining;
    uint32_t trailer_bytes;
    uint32_t trailer_count;
    uint32_t done;
    int32_t error;
    int32_t status;
} fw_chunked;

void fw_chunked_init(fw_chunked *st);
long fw_decode_chunked(fw_chunked *st, const char *src, size_t len,
                       char *dst, size_t *dst_len, const fw_limits *lim);

long fw_serialize_head(char *out, size_t cap,
                       const char *status, size_t status_len,
                       const char *fields, size_t fields_len, size_t nfields,
                       const char *date, size_t date_len,
                       const char *server, size_t server_len,
                       unsigned flags, int *error);

/* fw_binding.h: the one call behind fastwsgi/parser/_cffi.py's parse() */
#define FW_PACKED_FLAGS_MASK ...
#define FW_PACKED_MINOR_SHIFT ...
#define FW_PACKED_HAS_LENGTH ...
#define FW_PACKED_USE_ENVIRON ...
#define FW_PACKED_KEYS_SHIFT ...
#define FW_PACKED_TOO_SMALL ...

long long fw_parse_packed(const char *buf, size_t len, const fw_limits *lim, fw_request *req,
                          fw_header *headers, char *out, size_t cap, int fresh);

#define FW_HEAD_CONSUMED_MASK ...
#define FW_HEAD_FLAGS_SHIFT ...
#define FW_HEAD_MINOR_SHIFT ...
#define FW_HEAD_KEYS_SHIFT ...
#define FW_HEAD_FOUND ...
#define FW_HEAD_STORED ...
#define FW_HEAD_NEW ...
#define FW_HEAD_SLOW ...
#define FW_HEAD_REPEAT ...
#define FW_HEAD_CHANGED ...
#define FW_HEAD_CHANGE_INDEX_BASE ...
#define FW_HEAD_KEEP_FIELDS ...
#define FW_MEMO_SLOTS ...

typedef struct fw_scratch {
    char *out;
    size_t cap;
    fw_header *headers;
    ...;
} fw_scratch;

typedef struct fw_parser {
    fw_request req;
    const fw_limits *lim;
    fw_header *own_headers;
    fw_scratch *scratch;
    char *prev;
    uint32_t prev_cap;
    uint32_t prev_len;
    uint64_t prev_stamp;
    uint64_t last_change;
} fw_parser;

long long fw_parse_head(fw_parser *p, const char *buf, size_t len, int fresh);

/* uwsgi packet parser (fastwsgi.h) and its one-call binding (uwsgi_binding.h) */
#define FW_UWSGI_MAX_CGI_VARS ...
#define FW_UWSGI_NO_VAR ...
#define FW_UWSGI_MAX_VARS ...

typedef struct fw_uwsgi {
    uint32_t datasize;
    uint32_t num_vars;
    uint32_t method_var;
    uint32_t path_var;
    uint32_t query_var;
    uint32_t uri_var;
    uint32_t protocol_var;
    uint32_t length_var;
    uint32_t version_major;
    uint32_t version_minor;
    int64_t content_length;
    int32_t error;
    int32_t status;
} fw_uwsgi;

long fw_parse_uwsgi(const char *buf, size_t len, const fw_limits *lim, fw_uwsgi *pkt,
                    fw_header *vars, size_t max_vars);

#define FW_UWSGI_PACKED_HAS_LENGTH ...
#define FW_UWSGI_PACKED_VARS_SHIFT ...
#define FW_UWSGI_PACKED_VARS_MASK ...
#define FW_UWSGI_PACKED_DATASIZE_SHIFT ...
#define FW_UWSGI_PACKED_TOO_SMALL ...

long long fw_parse_uwsgi_packed(const char *buf, size_t len, const fw_limits *lim, fw_uwsgi *pkt,
                                fw_header *vars, size_t max_vars, char *out, size_t cap);
