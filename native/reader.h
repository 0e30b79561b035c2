/*
 * The core every fd reader of the addon shares (tun.c, udp.c, nflog.c): a
 * libuv poll on a non-blocking fd in Node's own event loop, the JS callback
 * and the buffers the reader writes into (referenced while it runs), the
 * async context its calls run in, and one close sequence. A reader's own
 * struct begins with a `reader`, so the poll's data pointer is both.
 */
#ifndef SHIM6_READER_H
#define SHIM6_READER_H
#include <node_api.h>
#include <uv.h>
#include <stdbool.h>
#include <stdint.h>

#define READER_KEEP_MAX 4

/* In an N-API function: when `call` fails, throw an Error with `code` naming the call, and return NULL. */
#define NAPI_CALL(env, code, call)                                \
  do {                                                            \
    if ((call) != napi_ok) {                                      \
      napi_throw_error((env), (code), #call " failed");           \
      return NULL;                                                \
    }                                                             \
  } while (0)

typedef struct reader {
  uv_poll_t poll;
  int fd;
  int closed;
  napi_env env;
  napi_async_context actx;
  napi_ref cb;
  napi_ref keep[READER_KEEP_MAX];
  int nkeep;
  /* Called once libuv has closed the poll, before the struct is freed (may be NULL). */
  void (*on_free)(struct reader *r);
} reader;

/* Throw an Error with code "E<errno>", message "what: strerror(err)" and an `errno` property; returns NULL. */
napi_value reader_throw_errno(napi_env env, const char *what, int err);

/*
 * Start polling `fd` for reading with `on_readable`: references `cb` and the
 * `nkeep` values of `keep` (the buffers), names the async context `name`, and
 * returns the handle JS passes back (an external), or NULL after throwing.
 * On failure the caller still owns `r`.
 */
napi_value reader_start(napi_env env, reader *r, int fd, const char *name, napi_value cb,
                        const napi_value *keep, int nkeep, uv_poll_cb on_readable);

/* The reader behind a handle from reader_start, or NULL after throwing. */
reader *reader_of(napi_env env, napi_value handle);

/* Call `cb` (the reader's own, or another it references) with `argc` int32 arguments in the reader's async context; an exception goes to Node's fatal handler. */
void reader_call(reader *r, napi_ref cb, int argc, const int32_t *args);

/* Stop polling and close the fd at once (the kernel sees it closed when this returns), drop the references; the struct is freed once libuv has closed the poll. Idempotent. */
void reader_close(reader *r);

/* Whether the poll keeps the event loop alive (as dgram's ref/unref). */
void reader_ref(reader *r, bool on);

/* The JS functions close(handle) and ref(handle, on) of every reader. */
napi_value reader_close_js(napi_env env, napi_callback_info info);
napi_value reader_ref_js(napi_env env, napi_callback_info info);

#endif
