/*
 * The product's clock (shim/clock.ts): CLOCK_BOOTTIME in milliseconds. It is monotonic like
 * CLOCK_MONOTONIC (never stepped by NTP or `date`), and unlike it counts the time the machine was
 * suspended, so TTLs, hold times and context lifetimes run out across a suspend.
 *
 * Cheap on purpose (the resolver's hit path reads it per query): the reading goes into a double
 * the caller reads through a Float64Array, not into a new JS number — a napi_create_double per
 * call cost ~40% more than performance.now(). One slot per JS thread (thread-local: the
 * resolver's workers each have their own), handed out by bootClockOpen.
 * Must not know: what the time is used for.
 */
#include <node_api.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "napi-util.h"
#include "reader.h"

/* This thread's slot: a JS thread (an environment) lives and dies with its OS thread. */
static __thread double boot_now;

/* read(): the time into this thread's slot (no call-data look-up: ~1.5 ns of a ~44 ns reading). */
static napi_value boot_clock_read(napi_env env, napi_callback_info info) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  boot_now = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
  return NULL;
}

/* bootClockOpen() -> [read, slot]: `read()` puts the time (ms) into the 8-octet ArrayBuffer `slot` (this thread's). */
napi_value boot_clock_open_js(napi_env env, napi_callback_info info) {
  napi_value read, buf, out;
  if (napi_create_function(env, "read", NAPI_AUTO_LENGTH, boot_clock_read, NULL, &read) != napi_ok
      || napi_create_external_arraybuffer(env, &boot_now, sizeof boot_now, NULL, NULL, &buf) != napi_ok) {
    napi_throw_error(env, "ECLOCK", "bootClockOpen: cannot make the clock's slot");
    return NULL;
  }
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, read);
  napi_set_element(env, out, 1, buf);
  return out;
}

/*
 * A timer on the same clock: a timerfd on CLOCK_BOOTTIME, polled in the event loop like the
 * readers (reader.h). Node's timers run on CLOCK_MONOTONIC and do not fire during a suspend: one
 * armed for an hour fired an hour of waking time later, however long the machine had slept. The
 * kernel fires a CLOCK_BOOTTIME timer whose time passed during a suspend at the resume.
 */
static void boot_timer_expired(uv_poll_t *h, int status, int events) {
  reader *r = h->data;
  if (r->closed) return;
  uint64_t ticks;
  /* EAGAIN: re-armed (or disarmed) since the poll saw it readable: nothing is due. */
  if (read(r->fd, &ticks, sizeof ticks) != (ssize_t)sizeof ticks) return;
  reader_call(r, r->cb, 0, NULL);
}

/* bootTimerOpen(cb) -> handle: cb() runs when the time set by bootTimerSet is reached. Closed by bootTimerClose. */
napi_value boot_timer_open_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, "ECLOCK", napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return reader_throw_errno(env, "timerfd_create", errno);
  reader *r = calloc(1, sizeof *r);
  if (r == NULL) {
    close(fd);
    return reader_throw_errno(env, "calloc", ENOMEM);
  }
  napi_value h = reader_start(env, r, fd, "shim6:timer", argv[0], NULL, 0, boot_timer_expired);
  if (h == NULL) {
    close(fd); /* reader_start freed r; the fd is still ours */
    return NULL;
  }
  reader_ref(r, false);
  return h;
}

/*
 * bootTimerSet(handle, at, ref) -> 0 or -errno: fire at `at` (ms on bootClock; a time already past
 * fires at once), or never for `at` <= 0 or not a number. `ref`: while armed, the timer keeps the
 * event loop alive (as a Node timer does).
 */
napi_value boot_timer_set_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, "ECLOCK", napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  reader *r = reader_of(env, argv[0]);
  if (r == NULL) return NULL;
  double at = 0;
  bool ref = false;
  if (napi_get_value_double(env, argv[1], &at) != napi_ok || !(at > 0)) at = 0;
  if (at > 1e15) at = 1e15; /* ~31,000 years: as never, and within time_t (Infinity included) */
  if (argc >= 3) napi_get_value_bool(env, argv[2], &ref);
  if (r->closed) return int_value(env, -EBADF);
  struct itimerspec its = {0};
  if (at > 0) {
    double s = floor(at / 1e3);
    its.it_value.tv_sec = (time_t)s;
    its.it_value.tv_nsec = (long)((at - s * 1e3) * 1e6);
    if (its.it_value.tv_nsec >= 1000000000L) its.it_value.tv_nsec = 999999999L;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1; /* zero would disarm */
  }
  if (timerfd_settime(r->fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) return int_value(env, -errno);
  reader_ref(r, ref && at > 0);
  return int_value(env, 0);
}
