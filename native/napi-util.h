/* Small N-API helpers shared by the addon's C files. */
#ifndef SHIM6_NAPI_UTIL_H
#define SHIM6_NAPI_UTIL_H
#include <node_api.h>
#include <stdint.h>

/* A JS number from a C int (a file descriptor, 0 or -errno). */
static inline napi_value int_value(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

/*
 * A JS string into `buf` (`size` octets, NUL-terminated) → napi_ok; `*len` its whole UTF-8 length,
 * which exceeds size - 1 when it did not fit. napi_get_value_string_utf8 says how much it copied,
 * which stops before a character that does not fit whole: one or more octets short of the end, so
 * a check of that length against the buffer took a longer string cut at a character.
 */
static inline napi_status utf8_arg(napi_env env, napi_value v, char *buf, size_t size, size_t *len) {
  napi_status st = napi_get_value_string_utf8(env, v, NULL, 0, len);
  if (st != napi_ok) return st;
  size_t copied;
  return napi_get_value_string_utf8(env, v, buf, size, &copied);
}

#endif
