/* CLOCK_BOOTTIME for JS (clock.c). */
#ifndef SHIM6_CLOCK_H
#define SHIM6_CLOCK_H
#include <node_api.h>

/* bootClockOpen() -> [read, slot]: read() writes ms since boot, suspended time included, into slot. */
napi_value boot_clock_open_js(napi_env env, napi_callback_info info);

#endif
