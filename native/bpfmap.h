#ifndef SHIM6_BPFMAP_H
#define SHIM6_BPFMAP_H
#include <node_api.h>

napi_value bpf_obj_get_js(napi_env env, napi_callback_info info);
napi_value bpf_map_update_js(napi_env env, napi_callback_info info);
napi_value bpf_map_delete_js(napi_env env, napi_callback_info info);
napi_value bpf_map_lookup_js(napi_env env, napi_callback_info info);
napi_value bpf_percpu_sum_js(napi_env env, napi_callback_info info);
napi_value bpf_map_next_key_js(napi_env env, napi_callback_info info);
napi_value fd_close_js(napi_env env, napi_callback_info info);

#endif
