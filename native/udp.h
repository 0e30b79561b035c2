/* Native UDP (udp.c): one socket for all locators, IPV6_PKTINFO, recvmmsg/sendmmsg. */
#ifndef SHIM6_UDP_H
#define SHIM6_UDP_H
#include <node_api.h>

/* Receive meta per datagram: src 16 | dst 16 | src port u16 BE | GRO segment size u16 BE (0 = one datagram) | length u32 LE (0 = truncated). */
#define UDP_META 40
/* Send meta per datagram: src 16 | dst 16 | port u16 BE | 2 pad | arena offset u32 LE | length u32 LE. */
#define UDP_SEND_META 44

napi_value udp_open(napi_env env, napi_callback_info info);
napi_value udp_start(napi_env env, napi_callback_info info);
napi_value udp_close(napi_env env, napi_callback_info info);
napi_value udp_send(napi_env env, napi_callback_info info);
napi_value udp_ref(napi_env env, napi_callback_info info);

#endif
