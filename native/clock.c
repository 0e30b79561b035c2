/*
 * The product's clock (shim/clock.ts): CLOCK_BOOTTIME in milliseconds. It is monotonic like
 * CLOCK_MONOTONIC (never stepped by NTP or `date`), and unlike it counts the time the machine was
 * suspended, so TTLs, hold times and context lifetimes run out across a suspend.
 *
 * Cheap on purpose (the resolver's hit path reads it per query): the reading goes into a double
 * the caller reads through a Float64Array, not into a new JS number — a napi_create_double per
 * call cost ~40% more than performance.now(). One slot per JS thread (the resolver's workers
 * each have their own), made by bootClockOpen.
 * Must not know: what the time is used for.
 */
#include <node_api.h>
#include <stdlib.h>
#include <time.h>
#include "clock.h"

/* read(): the time into the slot this function was made with. */
static napi_value boot_clock_read(napi_env env, napi_callback_info info) {
  void *data;
  napi_get_cb_info(env, info, NULL, NULL, NULL, &data);
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  *(double *)data = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
  return NULL;
}

static void free_slot(napi_env env, void *data, void *hint) {
  free(data);
}

/* bootClockOpen() -> [read, slot]: `read()` puts the time (ms) into the 8-octet ArrayBuffer `slot`. */
napi_value boot_clock_open_js(napi_env env, napi_callback_info info) {
  double *slot = calloc(1, sizeof *slot);
  napi_value read, buf, out;
  if (slot == NULL) {
    napi_throw_error(env, "ENOMEM", "bootClockOpen: out of memory");
    return NULL;
  }
  if (napi_create_function(env, "read", NAPI_AUTO_LENGTH, boot_clock_read, slot, &read) != napi_ok
      || napi_create_external_arraybuffer(env, slot, sizeof *slot, free_slot, NULL, &buf) != napi_ok) {
    free(slot);
    napi_throw_error(env, "ECLOCK", "bootClockOpen: cannot make the clock's slot");
    return NULL;
  }
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, read);
  napi_set_element(env, out, 1, buf);
  return out;
}
