/*
 * Route changes over rtnetlink, in the daemon's event loop (shim/dataplane/rtnetlink.ts,
 * docs/dataplane.md "Route changes"): the kernel path moves a peer's ULID route when
 * REAP explores and when it re-homes, and a new `ip` process for each change (fork,
 * exec, a CPU to run on) took tens of ms on a busy host, while the TCP prompt waited
 * for the route. Here a change is one request and its acknowledgment, microseconds.
 *
 * rtnlOpen(netnsPath | null) -> fd or -errno: a NETLINK_ROUTE socket (in the namespace of
 *   that /run/netns file when given), with a receive timeout.
 * rtnlTransact(fd, request, out) -> octets of the answer copied into `out` (0: none, an
 *   acknowledgment only) or -errno: sends one netlink request (built by the JS side, with
 *   NLM_F_ACK and its own sequence number) and receives until the kernel's acknowledgment
 *   or error for that sequence number; the first other message of that number (the answer
 *   to a GET) is copied into `out` (truncated to its size).
 * The socket is closed with nftCountersClose / bpfClose (close(2)).
 *
 * Must not know: what the messages say (rtnetlink.ts builds and parses them).
 */
#include <node_api.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include "nftcounters.h"
#include "rtnl.h"
#include "napi-util.h"

#define RX_BUF 32768
/* An answer and its acknowledgment come in one or two receives; this bounds a confused socket. */
#define MAX_RECVS 64

/* rtnlOpen(netnsPath | null) -> fd or -errno */
napi_value rtnl_open_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return int_value(env, -EINVAL);
  return int_value(env, netlink_open_arg(env, argv[0], argc >= 1, NETLINK_ROUTE));
}

static int bytes_arg(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return -EINVAL;
  if (napi_get_typedarray_info(env, v, &tt, len, (void **)data, &ab, &off) != napi_ok || tt != napi_uint8_array) return -EINVAL;
  return 0;
}

/* rtnlTransact(fd, request, out) -> answer octets, 0, or -errno */
napi_value rtnl_transact_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  uint8_t *req, *out;
  size_t req_len, out_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      bytes_arg(env, argv[1], &req, &req_len) != 0 || bytes_arg(env, argv[2], &out, &out_len) != 0 ||
      req_len < sizeof(struct nlmsghdr) || req_len > 4096)
    return int_value(env, -EINVAL);
  struct nlmsghdr head;
  memcpy(&head, req, sizeof head);
  if (head.nlmsg_len != req_len) return int_value(env, -EINVAL);
  uint32_t seq = head.nlmsg_seq;
  struct sockaddr_nl k = { .nl_family = AF_NETLINK };
  if (sendto(fd, req, req_len, 0, (struct sockaddr *)&k, sizeof k) < 0) return int_value(env, -errno);

  uint32_t *buf = malloc(RX_BUF); /* 4-aligned, as netlink messages are */
  if (buf == NULL) return int_value(env, -ENOMEM);
  int32_t answered = 0;
  int32_t rc = 1; /* 1: still waiting */
  for (int r = 0; r < MAX_RECVS && rc == 1; r++) {
    ssize_t len = recv(fd, buf, RX_BUF, 0);
    if (len < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    int left = (int)len; /* signed: NLMSG_NEXT subtracts the aligned length, which must not wrap past the end */
    for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
      if (m->nlmsg_seq != seq) continue; /* an answer to an earlier request that timed out */
      if (m->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(m);
        if (m->nlmsg_len < NLMSG_LENGTH(sizeof *e)) { rc = -EPROTO; break; }
        rc = e->error == 0 ? answered : (e->error < 0 ? e->error : -EPROTO);
        break;
      }
      if (m->nlmsg_type == NLMSG_DONE) { rc = answered; break; }
      if (answered == 0) {
        size_t n = m->nlmsg_len < out_len ? m->nlmsg_len : out_len;
        memcpy(out, m, n);
        answered = (int32_t)n;
      }
    }
  }
  free(buf);
  return int_value(env, rc == 1 ? -ETIMEDOUT : rc);
}
