/* CLOCK_BOOTTIME for JS (clock.c). */
#ifndef SHIM6_CLOCK_H
#define SHIM6_CLOCK_H
#include <node_api.h>

/* bootClockOpen() -> [read, slot]: read() writes ms since boot, suspended time included, into slot. */
napi_value boot_clock_open_js(napi_env env, napi_callback_info info);

/* bootTimerOpen(cb) -> handle; bootTimerSet(handle, atMs, ref) -> 0 | -errno: a timerfd on CLOCK_BOOTTIME (clock.c). */
napi_value boot_timer_open_js(napi_env env, napi_callback_info info);
napi_value boot_timer_set_js(napi_env env, napi_callback_info info);

#endif
