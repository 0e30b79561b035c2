/* nftables log group reader (nflog.c): new outgoing flows for the daemon's discovery. */
#ifndef SHIM6_NFLOG_H
#define SHIM6_NFLOG_H
#include <node_api.h>

/* Per logged packet: IPv6 source 16 | destination 16 | next header 1 | pad 1. */
#define NFLOG_RECORD 34

napi_value nflog_open(napi_env env, napi_callback_info info);
napi_value nflog_start(napi_env env, napi_callback_info info);

#endif
