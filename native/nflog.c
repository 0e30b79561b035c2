/*
 * The reading half of an nftables log group (NFLOG, nfnetlink_log): the
 * kernel copies the first octets of every packet a `log group N` rule
 * matches to a netlink socket, without holding the packet. The daemon's
 * discovery (shim/dataplane/new-flows.ts) uses it to learn of new outgoing
 * IPv6 connections. Node has no netlink sockets, hence this.
 *
 * Per packet only the IPv6 source and destination addresses and the next
 * header go to JavaScript: NFLOG_RECORD octets each, into a buffer the JS
 * side owns, one callback per wake-up with the count.
 *
 * Must not know: the nftables rules (the JS side writes them), Shim6.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include "nflog.h"
#include "reader.h"

#define NCHECK(env, call) NAPI_CALL(env, "ENFLOGNAPI", call)

/* The IPv6 header is all we read: copy this much of each packet. */
#define COPY_RANGE 48
#define RX_BUF 65536

typedef struct {
  reader core;      /* first: the poll's data pointer is both (reader.h) */
  uint8_t *out;     /* max × NFLOG_RECORD octets */
  uint32_t max;
  uint32_t lost;    /* ENOBUFS: the socket overflowed (counted, reported with the next batch) */
} nflog_reader;

static int nflog_config(int fd, uint16_t group, uint16_t attr, const void *val, uint16_t vlen, uint32_t seq) {
  uint8_t req[NLMSG_SPACE(sizeof(struct nfgenmsg)) + NLA_HDRLEN + NLA_ALIGN(16)];
  memset(req, 0, sizeof req);
  struct nlmsghdr *nh = (struct nlmsghdr *)req;
  struct nfgenmsg *g = NLMSG_DATA(nh);
  struct nlattr *a = (struct nlattr *)(req + NLMSG_SPACE(sizeof *g));
  nh->nlmsg_len = NLMSG_SPACE(sizeof *g) + NLA_HDRLEN + NLA_ALIGN(vlen);
  nh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nh->nlmsg_seq = seq;
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(group);
  a->nla_len = NLA_HDRLEN + vlen;
  a->nla_type = attr;
  memcpy((uint8_t *)a + NLA_HDRLEN, val, vlen);
  struct sockaddr_nl k = { .nl_family = AF_NETLINK };
  if (sendto(fd, req, nh->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k) < 0) return -errno;
  uint32_t ack[1024 / 4]; /* 4-aligned, as netlink messages are */
  for (int tries = 0; tries < 16; tries++) {
    ssize_t n = recv(fd, ack, sizeof ack, 0);
    if (n < 0) { if (errno == EINTR) continue; return -errno; }
    int left = (int)n; /* signed: NLMSG_NEXT subtracts the aligned length, which must not wrap past the end */
    for (struct nlmsghdr *r = (struct nlmsghdr *)ack; NLMSG_OK(r, left); r = NLMSG_NEXT(r, left)) {
      if (r->nlmsg_type == NLMSG_ERROR && r->nlmsg_seq == seq) {
        if (r->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -EPROTO;
        struct nlmsgerr *e = NLMSG_DATA(r);
        return e->error;
      }
    }
  }
  return -ETIMEDOUT;
}

/*
 * nflogOpen(group, rcvbuf) -> fd: a netlink socket bound to log group
 * `group`, copying COPY_RANGE octets of each packet, each packet sent at once
 * (queue threshold 1). Throws E<errno> (EBUSY: another program reads the group).
 */
napi_value nflog_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t group, rcvbuf;
  NCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  NCHECK(env, napi_get_value_uint32(env, argv[0], &group));
  NCHECK(env, napi_get_value_uint32(env, argv[1], &rcvbuf));
  if (group > 65535) { napi_throw_range_error(env, "ENFLOGARGS", "group must be 0..65535"); return NULL; }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return reader_throw_errno(env, "socket(NETLINK_NETFILTER)", errno);
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct timeval tv = { .tv_sec = 2 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { int err = errno; close(fd); return reader_throw_errno(env, "bind(netlink)", err); }
  struct nfulnl_msg_config_cmd cmd = { .command = NFULNL_CFG_CMD_BIND };
  struct nfulnl_msg_config_mode mode = { .copy_range = htonl(COPY_RANGE), .copy_mode = NFULNL_COPY_PACKET };
  uint32_t qthresh = htonl(1), timeout = htonl(0);
  int rc = nflog_config(fd, (uint16_t)group, NFULA_CFG_CMD, &cmd, sizeof cmd, 1);
  if (rc == 0) rc = nflog_config(fd, (uint16_t)group, NFULA_CFG_MODE, &mode, sizeof mode, 2);
  if (rc == 0) rc = nflog_config(fd, (uint16_t)group, NFULA_CFG_QTHRESH, &qthresh, sizeof qthresh, 3);
  if (rc == 0) rc = nflog_config(fd, (uint16_t)group, NFULA_CFG_TIMEOUT, &timeout, sizeof timeout, 4);
  if (rc != 0) { close(fd); return reader_throw_errno(env, "NFLOG bind", -rc); }
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  napi_value out;
  NCHECK(env, napi_create_int32(env, fd, &out));
  return out;
}

static void nflog_deliver(nflog_reader *r, uint32_t n) {
  int32_t args[2] = { (int32_t)n, (int32_t)r->lost };
  r->lost = 0;
  reader_call(&r->core, r->core.cb, 2, args);
}

/* Parse one NFULNL_MSG_PACKET: its payload's IPv6 addresses into `rec`. 1 when it held an IPv6 header. */
static int nflog_parse(struct nlmsghdr *nh, uint8_t *rec) {
  if (nh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) return 0;
  if (nh->nlmsg_len < NLMSG_SPACE(sizeof(struct nfgenmsg))) return 0;
  uint8_t *p = (uint8_t *)nh + NLMSG_SPACE(sizeof(struct nfgenmsg));
  uint8_t *end = (uint8_t *)nh + nh->nlmsg_len;
  while (p + NLA_HDRLEN <= end) {
    struct nlattr *a = (struct nlattr *)p;
    if (a->nla_len < NLA_HDRLEN || p + a->nla_len > end) return 0;
    if ((a->nla_type & NLA_TYPE_MASK) == NFULA_PAYLOAD) {
      uint8_t *ip = p + NLA_HDRLEN;
      size_t len = a->nla_len - NLA_HDRLEN;
      if (len < 40 || (ip[0] >> 4) != 6) return 0;
      memcpy(rec, ip + 8, 32);  /* source, destination */
      rec[32] = ip[6];          /* next header */
      rec[33] = 0;
      return 1;
    }
    p += NLA_ALIGN(a->nla_len);
  }
  return 0;
}

static void nflog_on_readable(uv_poll_t *h, int status, int events) {
  nflog_reader *r = h->data;
  if (r->core.closed) return;
  if (reader_buffers_moved(&r->core)) { reader_close(&r->core); return; }
  /* An overflowed socket (ENOBUFS, below) reports POLLERR, on which libuv stops the poll and says
     UV_EBADF: poll again and read on (the error is returned once, counted as lost). */
  if (status < 0 && uv_poll_start(&r->core.poll, UV_READABLE, nflog_on_readable) != 0) return;
  static uint8_t buf[RX_BUF];
  uint32_t n = 0;
  /* Bounded work per wake-up: at most r->max records (the poll is level-triggered; the rest comes next turn). */
  for (int reads = 0; reads < 64 && n < r->max; reads++) {
    ssize_t got = recv(r->core.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) { r->lost++; continue; }
      break;
    }
    if (got == 0) break;
    int left = (int)got; /* signed: NLMSG_NEXT subtracts the aligned length, which must not wrap past the end */
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, left) && n < r->max; nh = NLMSG_NEXT(nh, left)) {
      if (nflog_parse(nh, r->out + (size_t)n * NFLOG_RECORD)) n++;
    }
  }
  if (n > 0 || r->lost > 0) nflog_deliver(r, n);
}


/* nflogStartReader(fd, out: ArrayBuffer, max, cb(count, lost)) -> handle */
napi_value nflog_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t max;
  void *out;
  size_t outlen;
  NCHECK(env, napi_get_value_int32(env, argv[0], &fd));
  NCHECK(env, napi_get_arraybuffer_info(env, argv[1], &out, &outlen));
  NCHECK(env, napi_get_value_uint32(env, argv[2], &max));
  if (max == 0 || (size_t)max * NFLOG_RECORD > outlen) { napi_throw_range_error(env, "ENFLOGARGS", "buffer too small"); return NULL; }
  nflog_reader *r = calloc(1, sizeof *r);
  if (!r) return reader_throw_errno(env, "calloc", ENOMEM);
  *r = (nflog_reader){ .out = out, .max = max };
  napi_value h = reader_start(env, &r->core, fd, "shim6:nflog", argv[3], &argv[1], 1, nflog_on_readable);
  if (h == NULL) return NULL; /* reader_start freed r */
  reader_ref(&r->core, false);
  return h;
}
