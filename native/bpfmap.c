/*
 * The few bpf(2) commands the daemon needs on the maps of its tc programs
 * (native/bpf/shim6_tc.bpf.c): open a pinned object, look up, update and
 * delete an element, close. Raw syscalls with <linux/bpf.h>: no libbpf in the
 * addon (loading is bpftool's job; shim/dataplane/kernel-path.ts).
 *
 * Every function returns 0 (or an fd) or -errno; none throws for the
 * kernel's refusal. Keys and values are Uint8Arrays of the map's sizes (the
 * kernel checks them against the map; the caller passes the right ones).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "bpfmap.h"

static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

static int arg_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static int arg_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &tt, len, data, &ab, &off) != napi_ok || tt != napi_uint8_array) return 0;
  return 1;
}

static napi_value int_out(napi_env env, long v) {
  napi_value out;
  napi_create_int32(env, (int32_t)v, &out);
  return out;
}

/* bpfObjGet(path) -> fd or -errno */
napi_value bpf_obj_get(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[4096];
  size_t plen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "bpfObjGet(path)");
    return NULL;
  }
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.pathname = (uint64_t)(uintptr_t)path;
  long fd = sys_bpf(BPF_OBJ_GET, &a);
  if (fd >= 0) {
    /* close-on-exec: the fd must not leak into the tools the daemon runs */
    int flags = fcntl((int)fd, F_GETFD);
    if (flags >= 0) fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
  }
  return int_out(env, fd < 0 ? -errno : fd);
}

/* bpfMapOp(op, fd, key, value?, flags?) -> 0 or -errno; op 0 lookup (into value), 1 update, 2 delete */
napi_value bpf_map_op(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t op, fd, flags = 0;
  void *key = NULL, *value = NULL;
  size_t klen = 0, vlen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      !arg_int(env, argv[0], &op) || !arg_int(env, argv[1], &fd) || !arg_bytes(env, argv[2], &key, &klen) ||
      (op != 2 && (argc < 4 || !arg_bytes(env, argv[3], &value, &vlen))) ||
      (argc >= 5 && !arg_int(env, argv[4], &flags)) || op < 0 || op > 2) {
    napi_throw_type_error(env, "EINVAL", "bpfMapOp(op, fd, key, value?, flags?)");
    return NULL;
  }
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = (uint32_t)fd;
  a.key = (uint64_t)(uintptr_t)key;
  if (op != 2) a.value = (uint64_t)(uintptr_t)value;
  if (op == 1) a.flags = (uint64_t)(uint32_t)flags;
  long r = sys_bpf(op == 0 ? BPF_MAP_LOOKUP_ELEM : op == 1 ? BPF_MAP_UPDATE_ELEM : BPF_MAP_DELETE_ELEM, &a);
  return int_out(env, r < 0 ? -errno : 0);
}

/* bpfClose(fd) */
napi_value bpf_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "bpfClose(fd)");
    return NULL;
  }
  if (fd >= 0) close(fd);
  return int_out(env, 0);
}
