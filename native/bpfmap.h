/* bpf(2) map access for the kernel path (bpfmap.c). */
#ifndef SHIM6_BPFMAP_H
#define SHIM6_BPFMAP_H
#include <node_api.h>

napi_value bpf_obj_get(napi_env env, napi_callback_info info);
napi_value bpf_map_op(napi_env env, napi_callback_info info);
napi_value bpf_close(napi_env env, napi_callback_info info);

#endif
