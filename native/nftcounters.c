/*
 * The kernel path's per-context counters (shim/dataplane/kernel-path.ts) read
 * straight from nf_tables over netlink: one GETOBJ dump of the named counters
 * of one table, inside the daemon's event loop. The daemon reads them 20
 * times a second while a context is on the kernel path; through a long-lived
 * `nft -j -i` each reading was a pipe write, a second process scheduled (late
 * on a busy host), a JSON document and its parse (docs/dataplane.md "Kernel path").
 *
 * nftCountersOpen(netnsPath | null) -> fd or -errno: a NETLINK_NETFILTER
 *   socket, made in the network namespace at `netnsPath` (a file of
 *   /run/netns) when given; the socket stays in the namespace it was made in.
 * nftCountersRead(fd, family, table) -> [name, packets, bytes, name, packets, bytes, …] or -errno:
 *   every counter object of the table (as doubles: exact to 2^53).
 *   A missing table reads as no counters (the dump filters by name).
 * nftCountersClose(fd) -> 0 or -errno.
 *
 * A reading never blocks the loop for long: the kernel answers a dump while
 * we receive (no other process runs), and the socket has a receive timeout.
 *
 * Must not know: the counters' names (the JS side gives and parses them), Shim6.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <endian.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include "nftcounters.h"
#include "napi-util.h"

#define TABLE_MAX 256
#define RX_BUF 65536
/* A dump answers in a few messages per 64 KiB; this bounds a reading of a table someone keeps growing. */
#define MAX_RECVS 4096

/* A netlink socket of `protocol`, bound, with a receive timeout. */
static int open_socket(int protocol) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return -errno;
  struct sockaddr_nl me = { .nl_family = AF_NETLINK };
  struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
  if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/*
 * A netlink socket of `protocol` in the namespace of the /run/netns file given as the
 * first argument (null/undefined: this one) -> fd or -errno (shared with rtnl.c).
 */
int32_t netlink_open_arg(napi_env env, napi_value arg, int present, int protocol) {
  napi_valuetype t = napi_undefined;
  if (present) napi_typeof(env, arg, &t);
  if (t == napi_null || t == napi_undefined) return open_socket(protocol);
  char path[4096];
  size_t plen = 0;
  if (t != napi_string || napi_get_value_string_utf8(env, arg, path, sizeof path, &plen) != napi_ok || plen == 0 || plen >= sizeof path - 1)
    return -EINVAL;
  /* Enter the namespace on this thread only for the socket() call, then come back. */
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return -errno;
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(self);
    return -e;
  }
  int fd;
  if (setns(target, CLONE_NEWNET) < 0) fd = -errno;
  else {
    fd = open_socket(protocol);
    if (setns(self, CLONE_NEWNET) < 0) abort(); /* the loop's thread must not stay in another namespace */
  }
  close(target);
  close(self);
  return fd;
}

/* nftCountersOpen(netnsPath | null) -> fd or -errno */
napi_value nft_counters_open_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return int_value(env, -EINVAL);
  return int_value(env, netlink_open_arg(env, argv[0], argc >= 1, NETLINK_NETFILTER));
}

static void put_attr(uint8_t *buf, size_t *off, uint16_t type, const void *val, uint16_t len) {
  struct nlattr *a = (struct nlattr *)(buf + *off);
  a->nla_len = NLA_HDRLEN + len;
  a->nla_type = type;
  memcpy(buf + *off + NLA_HDRLEN, val, len);
  *off += NLA_ALIGN(a->nla_len);
}

/* The packets and bytes of one NEWOBJ message's counter, and its name; 0, or -1 when it is not a counter with all three. */
static int parse_obj(const struct nlmsghdr *nh, const char **name, uint64_t *packets, uint64_t *bytes) {
  const uint8_t *p = (const uint8_t *)NLMSG_DATA(nh) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  const uint8_t *end = (const uint8_t *)nh + nh->nlmsg_len;
  int have_name = 0, have_packets = 0, have_bytes = 0;
  while (p + NLA_HDRLEN <= end) {
    const struct nlattr *a = (const struct nlattr *)p;
    if (a->nla_len < NLA_HDRLEN || p + a->nla_len > end) return -1;
    const uint8_t *v = p + NLA_HDRLEN;
    size_t vlen = a->nla_len - NLA_HDRLEN;
    uint16_t type = a->nla_type & NLA_TYPE_MASK;
    if (type == NFTA_OBJ_NAME && vlen > 0 && memchr(v, 0, vlen) != NULL) {
      *name = (const char *)v;
      have_name = 1;
    } else if (type == NFTA_OBJ_DATA) {
      const uint8_t *q = v, *qend = v + vlen;
      while (q + NLA_HDRLEN <= qend) {
        const struct nlattr *b = (const struct nlattr *)q;
        if (b->nla_len < NLA_HDRLEN || q + b->nla_len > qend) return -1;
        uint16_t bt = b->nla_type & NLA_TYPE_MASK;
        if ((bt == NFTA_COUNTER_PACKETS || bt == NFTA_COUNTER_BYTES) && b->nla_len - NLA_HDRLEN == 8) {
          uint64_t be;
          memcpy(&be, q + NLA_HDRLEN, 8);
          if (bt == NFTA_COUNTER_PACKETS) { *packets = be64toh(be); have_packets = 1; }
          else { *bytes = be64toh(be); have_bytes = 1; }
        }
        q += NLA_ALIGN(b->nla_len);
      }
    }
    p += NLA_ALIGN(a->nla_len);
  }
  return have_name && have_packets && have_bytes ? 0 : -1;
}

/* nftCountersRead(fd, family, table) -> [name, packets, bytes, …] or -errno */
napi_value nft_counters_read_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd, family;
  char table[TABLE_MAX];
  size_t tlen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &family) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], table, sizeof table, &tlen) != napi_ok || tlen == 0 || tlen >= sizeof table - 1 ||
      family < 0 || family > 255 || fd < 0)
    return int_value(env, -EINVAL);

  static uint32_t seq_counter;
  uint32_t seq = ++seq_counter;
  uint8_t req[NLMSG_SPACE(sizeof(struct nfgenmsg)) + NLA_HDRLEN + NLA_ALIGN(TABLE_MAX) + NLA_HDRLEN + 4];
  memset(req, 0, sizeof req);
  struct nlmsghdr *nh = (struct nlmsghdr *)req;
  struct nfgenmsg *g = NLMSG_DATA(nh);
  size_t off = NLMSG_SPACE(sizeof *g);
  put_attr(req, &off, NFTA_OBJ_TABLE, table, (uint16_t)(tlen + 1));
  uint32_t type = htobe32(NFT_OBJECT_COUNTER);
  put_attr(req, &off, NFTA_OBJ_TYPE, &type, 4);
  nh->nlmsg_len = (uint32_t)off;
  nh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ;
  nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nh->nlmsg_seq = seq;
  g->nfgen_family = (uint8_t)family;
  g->version = NFNETLINK_V0;
  g->res_id = 0;
  struct sockaddr_nl k = { .nl_family = AF_NETLINK };
  if (sendto(fd, req, nh->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k) < 0) return int_value(env, -errno);

  napi_value out;
  napi_create_array(env, &out);
  uint32_t n = 0;
  uint32_t *buf = malloc(RX_BUF); /* 4-aligned, as netlink messages are */
  if (buf == NULL) return int_value(env, -ENOMEM);
  int rc = -EOVERFLOW;
  for (int r = 0; r < MAX_RECVS && rc == -EOVERFLOW; r++) {
    ssize_t len = recv(fd, buf, RX_BUF, 0);
    if (len < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    size_t left = (size_t)len;
    for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
      if (m->nlmsg_seq != seq) continue; /* an answer to an earlier reading that failed */
      if (m->nlmsg_type == NLMSG_DONE) { rc = 0; break; }
      if (m->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(m);
        if (m->nlmsg_len < NLMSG_LENGTH(sizeof *e)) { rc = -EPROTO; break; }
        if (e->error == 0) continue;
        rc = e->error < 0 ? e->error : -EPROTO;
        break;
      }
      if (m->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWOBJ)) continue;
      const char *name = NULL;
      uint64_t packets = 0, bytes = 0;
      if (parse_obj(m, &name, &packets, &bytes) != 0) continue;
      napi_value js_name, js_packets, js_bytes;
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &js_name);
      napi_create_double(env, (double)packets, &js_packets);
      napi_create_double(env, (double)bytes, &js_bytes);
      napi_set_element(env, out, n++, js_name);
      napi_set_element(env, out, n++, js_packets);
      napi_set_element(env, out, n++, js_bytes);
    }
  }
  free(buf);
  return rc == 0 ? out : int_value(env, rc);
}
