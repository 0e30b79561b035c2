#ifndef SHIM6_NFTCOUNTERS_H
#define SHIM6_NFTCOUNTERS_H
#include <node_api.h>
#include <stdint.h>

napi_value nft_counters_open_js(napi_env env, napi_callback_info info);
napi_value nft_counters_read_js(napi_env env, napi_callback_info info);
napi_value nft_counters_bind_js(napi_env env, napi_callback_info info);
int32_t netlink_open_arg(napi_env env, napi_value arg, int present, int protocol);

#endif
