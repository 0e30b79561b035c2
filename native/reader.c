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

/* The poll handle owns the struct once started: freed in on_closed, not by the external's finalizer. */
static void on_finalize(napi_env env, void *data, void *hint) {}

static void on_closed(uv_handle_t *h) {
  reader *r = h->data;
  if (r->on_free) r->on_free(r);
  free(r);
}

napi_value reader_start(napi_env env, reader *r, int fd, const char *name, napi_value cb,
                        const napi_value *keep, int nkeep, uv_poll_cb on_readable) {
  if (nkeep > READER_KEEP_MAX) {
    napi_throw_range_error(env, "EREADERARGS", "too many buffers");
    return NULL;
  }
  r->fd = fd;
  r->env = env;
  RCHECK(env, napi_create_reference(env, cb, 1, &r->cb));
  for (int i = 0; i < nkeep; i++) RCHECK(env, napi_create_reference(env, keep[i], 1, &r->keep[i]));
  r->nkeep = nkeep;
  napi_value jname;
  RCHECK(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &jname));
  RCHECK(env, napi_async_init(env, NULL, jname, &r->actx));
  uv_loop_t *loop;
  RCHECK(env, napi_get_uv_event_loop(env, &loop));
  int rc = uv_poll_init(loop, &r->poll, fd);
  r->poll.data = r;
  if (rc == 0) rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  if (rc != 0) return reader_throw_errno(env, "uv_poll", -rc);
  napi_value ext;
  RCHECK(env, napi_create_external(env, r, on_finalize, NULL, &ext));
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
  close(r->fd);
  r->fd = -1;
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
