/*
 * The core every fd reader of the addon shares (tun.c, udp.c, nflog.c): a
 * libuv poll on a non-blocking fd in Node's own event loop, the JS callback
 * and the buffers the reader writes into (referenced while it runs), the
 * async context its calls run in, and one close sequence. A reader's own
 * struct begins with a `reader`, so the poll's data pointer is both.
 *
 * The poll is the addon's only libuv handle. A reader still open when its
 * environment ends (a worker thread that threw, or was terminate()d; the main
 * thread's exit) is closed by an async cleanup hook, and the environment waits
 * for libuv's close callback: a worker's loop must be empty when Node closes it
 * (else "uv_loop_close() while having open handles" aborts the process).
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
  /* Where each kept buffer's memory was, and its length, when the reader started (reader_buffers_moved). */
  void *keep_data[READER_KEEP_MAX];
  size_t keep_len[READER_KEEP_MAX];
  /* Called by reader_close, while the environment can still drop references (may be NULL). */
  void (*on_close)(struct reader *r);
  /* Called once libuv has closed the poll, before the struct is freed (may be NULL). */
  void (*on_free)(struct reader *r);
  /* The environment's cleanup hook: registered by reader_start, removed once the poll is closed. */
  napi_async_cleanup_hook_handle cleanup;
  /*
   * Who still holds the struct: the poll (until libuv's close callback) and the handle JS holds
   * (until it is collected, or its environment ends). The last frees it, so that a call with a
   * handle whose reader was closed long ago (close again, ref) finds it closed, not freed memory.
   */
  int owners;
} reader;

/* Throw an Error with code "E<errno>", message "what: strerror(err)" and an `errno` property; returns NULL. */
napi_value reader_throw_errno(napi_env env, const char *what, int err);

/*
 * Start polling `fd` for reading with `on_readable`: references `cb` and the
 * `nkeep` values of `keep` (the buffers), names the async context `name`,
 * registers the environment's cleanup hook, and returns the handle JS passes
 * back (an external), or NULL after throwing. `r` (calloc'd, its on_close and
 * on_free set) is the reader's from the call on: on failure it is freed
 * (on_close and on_free called); the fd is then still the caller's.
 */
napi_value reader_start(napi_env env, reader *r, int fd, const char *name, napi_value cb,
                        const napi_value *keep, int nkeep, uv_poll_cb on_readable);

/*
 * Whether a kept buffer is no longer where the reader writes: detached (its memory transferred to
 * another ArrayBuffer, structuredClone or postMessage with a transfer list) or shrunk (a resizable
 * ArrayBuffer). A reference keeps a buffer alive, not its memory in place. A reader checks before
 * it reads, and closes itself if so.
 */
bool reader_buffers_moved(reader *r);

/* The reader behind a handle from reader_start, or NULL after throwing. */
reader *reader_of(napi_env env, napi_value handle);

/* Call `cb` (the reader's own, or another it references) with `argc` int32 arguments in the reader's async context; an exception goes to Node's fatal handler. */
void reader_call(reader *r, napi_ref cb, int argc, const int32_t *args);

/* Stop polling and close the fd at once (the kernel sees it closed when this returns), drop the references; the struct is freed once libuv has closed the poll and JS no longer holds the handle. Idempotent, also long after. Also what the environment's cleanup hook does. */
void reader_close(reader *r);

/* Whether the poll keeps the event loop alive (as dgram's ref/unref). */
void reader_ref(reader *r, bool on);

/* The JS functions close(handle) and ref(handle, on) of every reader. */
napi_value reader_close_js(napi_env env, napi_callback_info info);
napi_value reader_ref_js(napi_env env, napi_callback_info info);

#endif
