/* systemd readiness notification (notify.c). */
#ifndef SHIM6_NOTIFY_H
#define SHIM6_NOTIFY_H
#include <node_api.h>

napi_value notify_send(napi_env env, napi_callback_info info);

#endif
