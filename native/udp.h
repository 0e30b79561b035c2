/* Native UDP (udp.c): one socket for all locators, IPV6_PKTINFO, recvmmsg/sendmmsg. */
#ifndef SHIM6_UDP_H
#define SHIM6_UDP_H
#include <node_api.h>

/* Receive meta per datagram: src 16 | dst 16 | src port u16 BE | GRO segment size u16 BE (0 = one datagram) | length u32 LE (0 = truncated). */
#define UDP_META 40
/* Send meta per datagram: src 16 | dst 16 | port u16 BE | 2 pad | arena offset u32 LE | length u32 LE. */
#define UDP_SEND_META 44
/*
 * Error records (IPV6_RECVERR), UDP_ERR_SLOT octets each: origin u8 | ICMPv6 type u8 | code u8 | 0 |
 * errno u32 LE | info u32 LE (PTB: the MTU; Parameter Problem: the pointer) | quoted length u32 LE |
 * destination port u16 BE at 16 | offender 16 at 20 (the ICMP's sender; zero if unknown) |
 * destination 16 at 36 (the invoking datagram's) | local 16 at 52 (the address the ICMP came to) |
 * from UDP_ERR_HEAD: the invoking datagram's UDP payload as quoted (up to 1280 octets).
 */
#define UDP_ERR_HEAD 72
#define UDP_ERR_SLOT (UDP_ERR_HEAD + 1280)
#define UDP_ERR_SLOTS 16

napi_value udp_open(napi_env env, napi_callback_info info);
napi_value udp_start(napi_env env, napi_callback_info info);
napi_value udp_close(napi_env env, napi_callback_info info);
napi_value udp_send(napi_env env, napi_callback_info info);
napi_value raw_send(napi_env env, napi_callback_info info);

#endif
