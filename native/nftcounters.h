#ifndef SHIM6_NFTCOUNTERS_H
#define SHIM6_NFTCOUNTERS_H
#include <node_api.h>

napi_value nft_counters_open_js(napi_env env, napi_callback_info info);
napi_value nft_counters_read_js(napi_env env, napi_callback_info info);

#endif
