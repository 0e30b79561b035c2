/*
 * The kernel encapsulation's maps (shim/dataplane/bpf-encap.ts) through the
 * bpf(2) system call: a pinned map opened once (BPF_OBJ_GET), then updates,
 * deletes, lookups and key walks in microseconds, inside the daemon's event
 * loop. A `bpftool` process per change took 10 ms, and 100 ms and more on a
 * busy host, while REAP re-homed a context (docs/dataplane.md).
 *
 * Every function returns 0 or -errno (the kernel's answer): the caller
 * decides what a refusal means. Sizes are the caller's: the kernel checks
 * nothing but the pointers, so a key or value shorter than the map's is
 * refused here (EINVAL) by comparing with the map's own sizes (BPF_OBJ_GET_INFO_BY_FD).
 * A per-CPU map's value is what the kernel copies for it: the value once per
 * possible CPU, each 8-aligned (the kernel wrote that many octets into a buffer
 * of one value's size, past its end).
 *
 * Must not know: what the maps hold (the JS side encodes keys and values).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "bpfmap.h"
#include "napi-util.h"

#define PATH_MAX_LEN 4096

static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

static int possible_cpus(void);

/* Whether the kernel reads and writes a value of the map once per possible CPU. */
static int is_percpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
         type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

/*
 * The map's key and value sizes: the value as the kernel copies it for a lookup or an update,
 * which for a per-CPU map is one 8-aligned slot per possible CPU (`slot`: one CPU's value size,
 * what bpfPercpuSum checks; the map's value size elsewhere).
 */
static int map_sizes(int fd, uint32_t *key, uint32_t *value, uint32_t *slot) {
  struct bpf_map_info info;
  union bpf_attr attr;
  memset(&info, 0, sizeof info);
  memset(&attr, 0, sizeof attr);
  attr.info.bpf_fd = (uint32_t)fd;
  attr.info.info_len = sizeof info;
  attr.info.info = (uint64_t)(uintptr_t)&info;
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0) return -errno;
  *key = info.key_size;
  *slot = info.value_size;
  *value = info.value_size;
  if (is_percpu(info.type)) {
    int cpus = possible_cpus();
    if (cpus < 0) return cpus;
    *value = ((info.value_size + 7) & ~7u) * (uint32_t)cpus;
  }
  return 0;
}

/* Arguments: fd, then typed arrays; each array's bytes and length. */
static int args(napi_env env, napi_callback_info info, size_t want, int32_t *fd, void **bufs, size_t *lens) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return -EINVAL;
  if (napi_get_value_int32(env, argv[0], fd) != napi_ok) return -EINVAL;
  for (size_t i = 1; i < want; i++) {
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    if (t == napi_null || t == napi_undefined) { bufs[i - 1] = NULL; lens[i - 1] = 0; continue; }
    napi_typedarray_type tt;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, argv[i], &tt, &lens[i - 1], &bufs[i - 1], &ab, &off) != napi_ok || tt != napi_uint8_array) return -EINVAL;
  }
  return 0;
}

/* bpfObjGet(path) -> fd, or -errno */
napi_value bpf_obj_get_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[PATH_MAX_LEN];
  size_t plen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      utf8_arg(env, argv[0], path, sizeof path, &plen) != napi_ok || plen == 0 || plen >= sizeof path - 1)
    return int_value(env, -EINVAL);
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.pathname = (uint64_t)(uintptr_t)path;
  long fd = sys_bpf(BPF_OBJ_GET, &attr);
  return int_value(env, fd < 0 ? -errno : (int32_t)fd);
}

/* One element command on an open map; `second` is the value or, for BPF_MAP_GET_NEXT_KEY, the
 * next key (the same field of bpf_attr). 0 or -errno. */
static int elem_cmd(int cmd, int32_t fd, void *key, void *second, uint64_t flags) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.map_fd = (uint32_t)fd;
  attr.key = (uint64_t)(uintptr_t)key;
  attr.value = (uint64_t)(uintptr_t)second;
  attr.flags = flags;
  return sys_bpf(cmd, &attr) < 0 ? -errno : 0;
}

/* An element command's arguments: fd, then `want - 1` typed arrays, and the map's key and value sizes (map_sizes). */
static int elem_args(napi_env env, napi_callback_info info, size_t want, int32_t *fd, void **b, size_t *l, uint32_t *ks, uint32_t *vs, uint32_t *slot) {
  int rc = args(env, info, want, fd, b, l);
  return rc == 0 ? map_sizes(*fd, ks, vs, slot) : rc;
}

/* `cmd` on (fd, key, value), both sized as the map says: 0 or -errno. */
static napi_value key_value_cmd(napi_env env, napi_callback_info info, int cmd, uint64_t flags) {
  int32_t fd;
  void *b[2];
  size_t l[2];
  uint32_t ks = 0, vs = 0, slot = 0; /* set by map_sizes on success; initialised for the compiler */
  int rc = elem_args(env, info, 3, &fd, b, l, &ks, &vs, &slot);
  if (rc == 0 && (b[0] == NULL || b[1] == NULL || l[0] != ks || l[1] != vs)) rc = -EINVAL;
  return int_value(env, rc == 0 ? elem_cmd(cmd, fd, b[0], b[1], flags) : rc);
}

/* bpfMapUpdate(fd, key, value) -> 0 or -errno (BPF_ANY: add or replace) */
napi_value bpf_map_update_js(napi_env env, napi_callback_info info) {
  return key_value_cmd(env, info, BPF_MAP_UPDATE_ELEM, BPF_ANY);
}

/* bpfMapLookup(fd, key, out) -> 0 or -errno; the value in `out` */
napi_value bpf_map_lookup_js(napi_env env, napi_callback_info info) {
  return key_value_cmd(env, info, BPF_MAP_LOOKUP_ELEM, 0);
}

/* bpfMapDelete(fd, key) -> 0 or -errno (ENOENT: there was none) */
napi_value bpf_map_delete_js(napi_env env, napi_callback_info info) {
  int32_t fd;
  void *b[1];
  size_t l[1];
  uint32_t ks = 0, vs = 0, slot = 0; /* set by map_sizes on success; initialised for the compiler */
  int rc = elem_args(env, info, 2, &fd, b, l, &ks, &vs, &slot);
  if (rc == 0 && (b[0] == NULL || l[0] != ks)) rc = -EINVAL;
  return int_value(env, rc == 0 ? elem_cmd(BPF_MAP_DELETE_ELEM, fd, b[0], NULL, 0) : rc);
}

/* bpfMapNextKey(fd, key | null, out) -> 0 or -errno (ENOENT: no more); null: the first key */
napi_value bpf_map_next_key_js(napi_env env, napi_callback_info info) {
  int32_t fd;
  void *b[2];
  size_t l[2];
  uint32_t ks = 0, vs = 0, slot = 0; /* set by map_sizes on success; initialised for the compiler */
  int rc = elem_args(env, info, 3, &fd, b, l, &ks, &vs, &slot);
  if (rc == 0 && ((b[0] != NULL && l[0] != ks) || b[1] == NULL || l[1] != ks)) rc = -EINVAL;
  return int_value(env, rc == 0 ? elem_cmd(BPF_MAP_GET_NEXT_KEY, fd, b[0], b[1], 0) : rc);
}

/* bpfClose(fd), nftCountersClose(fd) -> 0 or -errno: a map's or the counters' netlink socket's descriptor */
napi_value fd_close_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return int_value(env, -EINVAL);
  return int_value(env, close(fd) < 0 ? -errno : 0);
}

/* The number of possible CPUs (the slots of a per-CPU map's value), from "0-1,4"-style ranges; -errno on failure. */
static int possible_cpus(void) {
  static int cached = 0;
  if (cached > 0) return cached;
  FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
  if (f == NULL) return -errno;
  char buf[256];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  int count = 0;
  for (char *p = buf; *p != '\0' && *p != '\n';) {
    char *end;
    long a = strtol(p, &end, 10), b = a;
    if (end == p) return -EINVAL;
    if (*end == '-') { p = end + 1; b = strtol(p, &end, 10); if (end == p || b < a) return -EINVAL; }
    count += (int)(b - a + 1);
    p = *end == ',' ? end + 1 : end;
  }
  if (count <= 0 || count > 8192) return -EINVAL;
  cached = count;
  return count;
}

/* bpfPercpuSum(fd, key) -> the sum over CPUs of a per-CPU map's 64-bit counter, or -errno (a counter
 * read in microseconds: a `bpftool map dump` process per `status` cost 5-10 ms of CPU). */
napi_value bpf_percpu_sum_js(napi_env env, napi_callback_info info) {
  int32_t fd;
  void *b[1];
  size_t l[1];
  uint32_t ks = 0, vs = 0, slot = 0; /* set by map_sizes on success; initialised for the compiler */
  int rc = elem_args(env, info, 2, &fd, b, l, &ks, &vs, &slot);
  if (rc == 0 && (b[0] == NULL || l[0] != ks || slot != 8)) rc = -EINVAL;
  int cpus = rc == 0 ? possible_cpus() : rc;
  double sum = 0;
  if (cpus > 0) {
    uint64_t *values = calloc((size_t)cpus, sizeof *values);
    if (values == NULL) rc = -ENOMEM;
    else {
      rc = elem_cmd(BPF_MAP_LOOKUP_ELEM, fd, b[0], values, 0);
      for (int i = 0; rc == 0 && i < cpus; i++) sum += (double)values[i];
      free(values);
    }
  } else rc = cpus;
  napi_value out;
  napi_create_double(env, rc == 0 ? sum : (double)rc, &out);
  return out;
}
