/* The shared core of the addon's fd readers (reader.h). */
#include "reader.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RCHECK(env, call) NAPI_CALL(env, "EREADERNAPI", call)

napi_value reader_throw_errno(napi_env env, const char *what, int err) {
  char code[32], msg[160];
  snprintf(code, sizeof code, "E%d", err);
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value ecode, emsg, error, errnov;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &ecode);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &emsg);
  napi_create_error(env, ecode, emsg, &error);
  napi_create_int32(env, err, &errnov);
  napi_set_named_property(env, error, "errno", errnov);
  napi_throw(env, error);
  return NULL;
}

/* One of the struct's two owners is done with it (reader.h `owners`): the last frees it. */
static void drop_owner(reader *r) {
  if (--r->owners == 0) free(r);
}

/* The handle JS held is collected (or its environment ends): a later call with it can no longer come. */
static void on_finalize(napi_env env, void *data, void *hint) {
  drop_owner(data);
}

static void on_closed(uv_handle_t *h) {
  reader *r = h->data;
  /* The hook ends here, not in reader_close: an environment that ends while the
     poll is closing waits for this callback (removing a hook that has run tells
     Node it is done). Touches no JS: the references went in reader_close. */
  if (r->cleanup) napi_remove_async_cleanup_hook(r->cleanup);
  r->cleanup = NULL;
  if (r->on_free) r->on_free(r);
  r->on_free = NULL;
  drop_owner(r);
}

/* The environment ends (a worker thread's, or the process's) with the reader open: close it as JS would. */
static void on_env_cleanup(napi_async_cleanup_hook_handle h, void *arg) {
  reader_close(arg);
}

/* What reader_start made before it failed, undone; the struct is freed (the poll was never initialized). */
static void release(reader *r) {
  if (r->on_close) r->on_close(r);
  if (r->cb) napi_delete_reference(r->env, r->cb);
  for (int i = 0; i < r->nkeep; i++) napi_delete_reference(r->env, r->keep[i]);
  if (r->actx) napi_async_destroy(r->env, r->actx);
  if (r->cleanup) napi_remove_async_cleanup_hook(r->cleanup);
  if (r->on_free) r->on_free(r);
  free(r);
}

/* A kept value's memory and length: an ArrayBuffer's octets, or a typed array's elements. */
static napi_status buffer_of(napi_env env, napi_value v, void **data, size_t *len) {
  bool is = false;
  napi_status st = napi_is_arraybuffer(env, v, &is);
  if (st != napi_ok) return st;
  if (is) return napi_get_arraybuffer_info(env, v, data, len);
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  return napi_get_typedarray_info(env, v, &tt, len, data, &ab, &off);
}

bool reader_buffers_moved(reader *r) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) return false;
  bool moved = false;
  for (int i = 0; i < r->nkeep && !moved; i++) {
    napi_value v;
    void *data = NULL;
    size_t len = 0;
    if (napi_get_reference_value(r->env, r->keep[i], &v) != napi_ok || v == NULL || buffer_of(r->env, v, &data, &len) != napi_ok) continue;
    moved = data != r->keep_data[i] || len < r->keep_len[i];
  }
  napi_close_handle_scope(r->env, scope);
  return moved;
}

#define START_CHECK(env, r, call)                                 \
  do {                                                            \
    if ((call) != napi_ok) {                                      \
      napi_throw_error((env), "EREADERNAPI", #call " failed");    \
      release(r);                                                 \
      return NULL;                                                \
    }                                                             \
  } while (0)

napi_value reader_start(napi_env env, reader *r, int fd, const char *name, napi_value cb,
                        const napi_value *keep, int nkeep, uv_poll_cb on_readable) {
  r->fd = fd;
  r->env = env;
  if (nkeep > READER_KEEP_MAX) {
    napi_throw_range_error(env, "EREADERARGS", "too many buffers");
    release(r);
    return NULL;
  }
  START_CHECK(env, r, napi_create_reference(env, cb, 1, &r->cb));
  for (int i = 0; i < nkeep; i++) {
    START_CHECK(env, r, napi_create_reference(env, keep[i], 1, &r->keep[i]));
    r->nkeep = i + 1;
    START_CHECK(env, r, buffer_of(env, keep[i], &r->keep_data[i], &r->keep_len[i]));
  }
  napi_value jname, ext;
  uv_loop_t *loop;
  START_CHECK(env, r, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &jname));
  START_CHECK(env, r, napi_async_init(env, NULL, jname, &r->actx));
  START_CHECK(env, r, napi_get_uv_event_loop(env, &loop));
  START_CHECK(env, r, napi_add_async_cleanup_hook(env, on_env_cleanup, r, &r->cleanup));
  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc != 0) {
    release(r);
    return reader_throw_errno(env, "uv_poll_init", -rc);
  }
  r->poll.data = r;
  r->owners = 1; /* the poll: from here on only its close callback (or the handle's finalizer) may free the struct */
  rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  if (rc != 0) {
    /* The fd stays the caller's. */
    r->fd = -1;
    reader_close(r);
    return reader_throw_errno(env, "uv_poll_start", -rc);
  }
  if (napi_create_external(env, r, on_finalize, NULL, &ext) != napi_ok) {
    r->fd = -1;
    reader_close(r);
    napi_throw_error(env, "EREADERNAPI", "napi_create_external failed");
    return NULL;
  }
  r->owners = 2; /* and the handle JS holds */
  return ext;
}

reader *reader_of(napi_env env, napi_value handle) {
  reader *r;
  RCHECK(env, napi_get_value_external(env, handle, (void **)&r));
  return r;
}

void reader_call(reader *r, napi_ref cbref, int argc, const int32_t *args) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[4], ret;
  napi_get_reference_value(env, cbref, &cb);
  napi_get_global(env, &recv);
  if (argc > 4) argc = 4;
  for (int i = 0; i < argc; i++) napi_create_int32(env, args[i], &argv[i]);
  if (napi_make_callback(env, r->actx, recv, cb, (size_t)argc, argv, &ret) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

void reader_close(reader *r) {
  if (r->closed) return;
  r->closed = 1;
  uv_poll_stop(&r->poll);
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  if (r->on_close) r->on_close(r);
  napi_delete_reference(r->env, r->cb);
  for (int i = 0; i < r->nkeep; i++) napi_delete_reference(r->env, r->keep[i]);
  r->nkeep = 0;
  napi_async_destroy(r->env, r->actx);
  uv_close((uv_handle_t *)&r->poll, on_closed);
}

void reader_ref(reader *r, bool on) {
  if (r->closed) return;
  if (on) uv_ref((uv_handle_t *)&r->poll);
  else uv_unref((uv_handle_t *)&r->poll);
}

/* close(handle) */
napi_value reader_close_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  RCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  reader *r = reader_of(env, argv[0]);
  if (r) reader_close(r);
  return NULL;
}

/* ref(handle, on) */
napi_value reader_ref_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool on;
  RCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  RCHECK(env, napi_get_value_bool(env, argv[1], &on));
  reader *r = reader_of(env, argv[0]);
  if (r) reader_ref(r, on);
  return NULL;
}
