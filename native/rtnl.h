#ifndef SHIM6_RTNL_H
#define SHIM6_RTNL_H
#include <node_api.h>

napi_value rtnl_open_js(napi_env env, napi_callback_info info);
napi_value rtnl_transact_js(napi_env env, napi_callback_info info);

#endif
