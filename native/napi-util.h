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

#endif
