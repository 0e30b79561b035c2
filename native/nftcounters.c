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
 * nftCountersRead(fd, family, table[, names]) -> [name, packets, bytes, name, packets, bytes, …] or -errno:
 *   every counter object of the table (as doubles: exact to 2^53); a missing table reads as
 *   no counters (the dump filters by name). With `names` (an array of counter names): only
 *   those, one GETOBJ each (no dump: the kernel finds each by name), -ENOENT when one is missing.
 * nftCountersBind(fd, family, table, add, key, mapA, counterA, mapB, counterB) -> 0 or -errno:
 *   a context's two counters and their map elements made in one transaction (or removed);
 *   the kernel applies it within the call, in microseconds, where an `nft` process took
 *   milliseconds, and hundreds of them on a busy host, with the daemon's loop waiting.
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
  if (t != napi_string || utf8_arg(env, arg, path, sizeof path, &plen) != napi_ok || plen == 0 || plen >= sizeof path - 1)
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

/*
 * One request: the dump of every counter object of the table (name NULL), or the one counter
 * `name` (a GETOBJ with its name, acknowledged: the answer ends with the ack). Its counters are
 * appended to `out` from element *n on. 0 or -errno (a missing counter `name`: -ENOENT).
 */
static int read_counters(napi_env env, int fd, int family, const char *table, size_t tlen, const char *name, size_t nlen, napi_value out, uint32_t *n, uint32_t *buf) {
  static uint32_t seq_counter;
  uint32_t seq = ++seq_counter;
  uint8_t req[NLMSG_SPACE(sizeof(struct nfgenmsg)) + 2 * (NLA_HDRLEN + NLA_ALIGN(TABLE_MAX)) + NLA_HDRLEN + 4];
  memset(req, 0, sizeof req);
  struct nlmsghdr *nh = (struct nlmsghdr *)req;
  struct nfgenmsg *g = NLMSG_DATA(nh);
  size_t off = NLMSG_SPACE(sizeof *g);
  put_attr(req, &off, NFTA_OBJ_TABLE, table, (uint16_t)(tlen + 1));
  if (name != NULL) put_attr(req, &off, NFTA_OBJ_NAME, name, (uint16_t)(nlen + 1));
  uint32_t type = htobe32(NFT_OBJECT_COUNTER);
  put_attr(req, &off, NFTA_OBJ_TYPE, &type, 4);
  nh->nlmsg_len = (uint32_t)off;
  nh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ;
  nh->nlmsg_flags = name != NULL ? NLM_F_REQUEST | NLM_F_ACK : NLM_F_REQUEST | NLM_F_DUMP;
  nh->nlmsg_seq = seq;
  g->nfgen_family = (uint8_t)family;
  g->version = NFNETLINK_V0;
  g->res_id = 0;
  struct sockaddr_nl k = { .nl_family = AF_NETLINK };
  if (sendto(fd, req, nh->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k) < 0) return -errno;

  int rc = -EOVERFLOW;
  for (int r = 0; r < MAX_RECVS && rc == -EOVERFLOW; r++) {
    ssize_t len = recv(fd, buf, RX_BUF, 0);
    if (len < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    int left = (int)len; /* signed: NLMSG_NEXT subtracts the aligned length, which must not wrap past the end */
    for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
      if (m->nlmsg_seq != seq) continue; /* an answer to an earlier reading that failed */
      if (m->nlmsg_type == NLMSG_DONE) { rc = 0; break; }
      if (m->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(m);
        if (m->nlmsg_len < NLMSG_LENGTH(sizeof *e)) { rc = -EPROTO; break; }
        if (e->error == 0) {
          if (name != NULL) { rc = 0; break; } /* the ack: the answer came before it */
          continue;
        }
        rc = e->error < 0 ? e->error : -EPROTO;
        break;
      }
      if (m->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWOBJ)) continue;
      const char *oname = NULL;
      uint64_t packets = 0, bytes = 0;
      if (parse_obj(m, &oname, &packets, &bytes) != 0) continue;
      napi_value js_name, js_packets, js_bytes;
      napi_create_string_utf8(env, oname, NAPI_AUTO_LENGTH, &js_name);
      napi_create_double(env, (double)packets, &js_packets);
      napi_create_double(env, (double)bytes, &js_bytes);
      napi_set_element(env, out, (*n)++, js_name);
      napi_set_element(env, out, (*n)++, js_packets);
      napi_set_element(env, out, (*n)++, js_bytes);
    }
  }
  return rc;
}

/* nftCountersRead(fd, family, table[, names]) -> [name, packets, bytes, …] or -errno */
napi_value nft_counters_read_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t fd, family;
  char table[TABLE_MAX];
  size_t tlen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &family) != napi_ok ||
      utf8_arg(env, argv[2], table, sizeof table, &tlen) != napi_ok || tlen == 0 || tlen >= sizeof table - 1 ||
      family < 0 || family > 255 || fd < 0)
    return int_value(env, -EINVAL);
  uint32_t count = 0;
  bool some = false;
  if (argc >= 4) {
    napi_valuetype t;
    if (napi_typeof(env, argv[3], &t) != napi_ok) return int_value(env, -EINVAL);
    if (t != napi_undefined) {
      bool is_array = false;
      if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[3], &count) != napi_ok) return int_value(env, -EINVAL);
      some = true;
    }
  }

  napi_value out;
  napi_create_array(env, &out);
  uint32_t n = 0;
  uint32_t *buf = malloc(RX_BUF); /* 4-aligned, as netlink messages are */
  if (buf == NULL) return int_value(env, -ENOMEM);
  int rc = 0;
  if (!some) rc = read_counters(env, fd, family, table, tlen, NULL, 0, out, &n, buf);
  for (uint32_t i = 0; some && i < count && rc == 0; i++) {
    napi_value v;
    char name[TABLE_MAX];
    size_t nlen = 0;
    if (napi_get_element(env, argv[3], i, &v) != napi_ok || utf8_arg(env, v, name, sizeof name, &nlen) != napi_ok || nlen == 0 || nlen >= sizeof name - 1) {
      rc = -EINVAL;
      break;
    }
    rc = read_counters(env, fd, family, table, tlen, name, nlen, out, &n, buf);
  }
  free(buf);
  return rc == 0 ? out : int_value(env, rc);
}

/* ---- a context's counters and map elements (nftCountersBind) ---- */

#define BIND_BUF 4096
#define NAME_MAX_LEN 64
#define KEY_LEN 32

/* Start a netlink message at `off` of `buf`: header and nfgenmsg; returns the offset of its attributes. */
static size_t msg_start(uint8_t *buf, size_t off, uint16_t type, uint16_t flags, uint32_t seq, uint8_t family, uint16_t res_id) {
  struct nlmsghdr *nh = (struct nlmsghdr *)(buf + off);
  memset(nh, 0, NLMSG_SPACE(sizeof(struct nfgenmsg)));
  nh->nlmsg_type = type;
  nh->nlmsg_flags = flags;
  nh->nlmsg_seq = seq;
  struct nfgenmsg *g = NLMSG_DATA(nh);
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htobe16(res_id);
  return off + NLMSG_SPACE(sizeof *g);
}

/* Close the message started at `start`, whose attributes end at `end`; returns the next message's offset. */
static size_t msg_end(uint8_t *buf, size_t start, size_t end) {
  ((struct nlmsghdr *)(buf + start))->nlmsg_len = (uint32_t)(end - start);
  return NLMSG_ALIGN(end);
}

static size_t nest_start(uint8_t *buf, size_t *off, uint16_t type) {
  size_t at = *off;
  struct nlattr *a = (struct nlattr *)(buf + at);
  a->nla_type = type | NLA_F_NESTED;
  *off += NLA_HDRLEN;
  return at;
}

static void nest_end(uint8_t *buf, size_t at, size_t off) {
  ((struct nlattr *)(buf + at))->nla_len = (uint16_t)(off - at);
}

/*
 * One transaction: BATCH_BEGIN written at the start of `buf`, the messages already written after
 * it (up to `body_end`), BATCH_END; sent. The kernel handles it before sendto returns.
 */
static int send_batch(int fd, uint8_t *buf, size_t body_end, uint32_t seq) {
  msg_end(buf, 0, msg_start(buf, 0, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES));
  size_t off = msg_end(buf, body_end, msg_start(buf, body_end, NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES));
  struct sockaddr_nl k = { .nl_family = AF_NETLINK };
  if (sendto(fd, buf, off, 0, (struct sockaddr *)&k, sizeof k) < 0) return -errno;
  return 0;
}

/*
 * The answers to messages seq_lo…seq_hi (each asked NLM_F_ACK), already queued when sendto
 * returned: 0 when all acknowledged, else the first error (-errno; `ignore` is not one).
 */
static int collect_acks(int fd, uint32_t seq_lo, uint32_t seq_hi, int ignore) {
  uint32_t buf[1024]; /* 4 KiB: an error echoes its request, which is small */
  uint32_t acked = 0, want = seq_hi - seq_lo + 1;
  int rc = 0;
  for (;;) {
    ssize_t len = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (len < 0) {
      if (errno == EINTR) continue;
      break; /* EAGAIN: everything the kernel answered is read */
    }
    int left = (int)len; /* signed: NLMSG_NEXT subtracts the aligned length, which must not wrap past the end */
    for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
      if (m->nlmsg_seq < seq_lo || m->nlmsg_seq > seq_hi || m->nlmsg_type != NLMSG_ERROR) continue;
      const struct nlmsgerr *e = NLMSG_DATA(m);
      if (m->nlmsg_len < NLMSG_LENGTH(sizeof *e)) { if (rc == 0) rc = -EPROTO; continue; }
      acked++;
      if (e->error != 0 && e->error != -ignore && rc == 0) rc = e->error < 0 ? e->error : -EPROTO;
    }
  }
  if (rc == 0 && acked < want) rc = -EPROTO;
  return rc;
}

/* A NEWOBJ / DELOBJ message of counter `name` in `table`. */
static size_t obj_msg(uint8_t *buf, size_t at, int add, uint32_t seq, uint8_t family, const char *table, size_t tlen, const char *name, size_t nlen) {
  size_t off = msg_start(buf, at, (NFNL_SUBSYS_NFTABLES << 8) | (add ? NFT_MSG_NEWOBJ : NFT_MSG_DELOBJ),
    NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE : 0), seq, family, 0);
  put_attr(buf, &off, NFTA_OBJ_TABLE, table, (uint16_t)(tlen + 1));
  put_attr(buf, &off, NFTA_OBJ_NAME, name, (uint16_t)(nlen + 1));
  uint32_t type = htobe32(NFT_OBJECT_COUNTER);
  put_attr(buf, &off, NFTA_OBJ_TYPE, &type, 4);
  if (add) { size_t d = nest_start(buf, &off, NFTA_OBJ_DATA); nest_end(buf, d, off); }
  return msg_end(buf, at, off);
}

/* A NEWSETELEM (key → counter `name`) / DELSETELEM (key) message of map `map` in `table`. */
static size_t elem_msg(uint8_t *buf, size_t at, int add, uint32_t seq, uint8_t family, const char *table, size_t tlen,
    const char *map, size_t mlen, const uint8_t *key, const char *name, size_t nlen) {
  size_t off = msg_start(buf, at, (NFNL_SUBSYS_NFTABLES << 8) | (add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM),
    NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE : 0), seq, family, 0);
  put_attr(buf, &off, NFTA_SET_ELEM_LIST_TABLE, table, (uint16_t)(tlen + 1));
  put_attr(buf, &off, NFTA_SET_ELEM_LIST_SET, map, (uint16_t)(mlen + 1));
  size_t list = nest_start(buf, &off, NFTA_SET_ELEM_LIST_ELEMENTS);
  size_t elem = nest_start(buf, &off, NFTA_LIST_ELEM);
  size_t k = nest_start(buf, &off, NFTA_SET_ELEM_KEY);
  put_attr(buf, &off, NFTA_DATA_VALUE, key, KEY_LEN);
  nest_end(buf, k, off);
  if (add) put_attr(buf, &off, NFTA_SET_ELEM_OBJREF, name, (uint16_t)(nlen + 1));
  nest_end(buf, elem, off);
  nest_end(buf, list, off);
  return msg_end(buf, at, off);
}

/* A string argument of at most `max` - 1 octets, non-empty; its length, or -1. */
static ssize_t str_arg(napi_env env, napi_value v, char *out, size_t max) {
  size_t len = 0;
  if (utf8_arg(env, v, out, max, &len) != napi_ok || len == 0 || len >= max - 1) return -1;
  return (ssize_t)len;
}

/*
 * nftCountersBind(fd, family, table, add, key, mapA, counterA, mapB, counterB) -> 0 or -errno
 *
 * add: in one transaction, the counters `counterA` and `counterB` and the elements
 *   key → counterA in map `mapA` and key → counterB in map `mapB` (all or none of them).
 * !add: the two elements, then the two counters, each in a transaction of its own, so one
 *   missing (ENOENT) does not keep the others; the first other error is returned.
 * key: 32 octets (the map's concatenated key, e.g. ipv6_addr . ipv6_addr).
 */
napi_value nft_counters_bind_js(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  int32_t fd, family;
  bool add;
  char table[TABLE_MAX], map_a[NAME_MAX_LEN], map_b[NAME_MAX_LEN], name_a[NAME_MAX_LEN], name_b[NAME_MAX_LEN];
  void *key = NULL;
  size_t key_len = 0;
  napi_typedarray_type kt;
  napi_value kab;
  size_t koff;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 9 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &family) != napi_ok ||
      napi_get_value_bool(env, argv[3], &add) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &kt, &key_len, &key, &kab, &koff) != napi_ok || kt != napi_uint8_array || key_len != KEY_LEN ||
      family < 0 || family > 255 || fd < 0)
    return int_value(env, -EINVAL);
  ssize_t tlen = str_arg(env, argv[2], table, sizeof table);
  ssize_t mal = str_arg(env, argv[5], map_a, sizeof map_a), nal = str_arg(env, argv[6], name_a, sizeof name_a);
  ssize_t mbl = str_arg(env, argv[7], map_b, sizeof map_b), nbl = str_arg(env, argv[8], name_b, sizeof name_b);
  if (tlen < 0 || mal < 0 || nal < 0 || mbl < 0 || nbl < 0) return int_value(env, -EINVAL);

  static uint32_t seq_counter = 0x40000000; /* apart from the readings' sequence numbers */
  uint32_t buf32[BIND_BUF / 4];
  uint8_t *buf = (uint8_t *)buf32;
  uint8_t fam = (uint8_t)family;
  size_t body = NLMSG_ALIGN(NLMSG_SPACE(sizeof(struct nfgenmsg))); /* after BATCH_BEGIN (send_batch) */
  if (add) {
    uint32_t s0 = ++seq_counter;
    size_t off = body;
    off = obj_msg(buf, off, 1, s0, fam, table, tlen, name_a, nal);
    off = obj_msg(buf, off, 1, s0 + 1, fam, table, tlen, name_b, nbl);
    off = elem_msg(buf, off, 1, s0 + 2, fam, table, tlen, map_a, mal, key, name_a, nal);
    off = elem_msg(buf, off, 1, s0 + 3, fam, table, tlen, map_b, mbl, key, name_b, nbl);
    seq_counter = s0 + 4;
    int rc = send_batch(fd, buf, off, s0);
    return int_value(env, rc != 0 ? rc : collect_acks(fd, s0, s0 + 3, 0));
  }
  int first = 0;
  for (int step = 0; step < 4; step++) {
    uint32_t s = ++seq_counter;
    size_t off;
    if (step == 0) off = elem_msg(buf, body, 0, s, fam, table, tlen, map_a, mal, key, NULL, 0);
    else if (step == 1) off = elem_msg(buf, body, 0, s, fam, table, tlen, map_b, mbl, key, NULL, 0);
    else if (step == 2) off = obj_msg(buf, body, 0, s, fam, table, tlen, name_a, nal);
    else off = obj_msg(buf, body, 0, s, fam, table, tlen, name_b, nbl);
    int rc = send_batch(fd, buf, off, s);
    if (rc == 0) rc = collect_acks(fd, s, s, ENOENT);
    if (rc != 0 && first == 0) first = rc;
  }
  return int_value(env, first);
}
