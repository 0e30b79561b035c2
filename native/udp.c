/*
 * One UDP socket for every local locator, with what Node's dgram lacks:
 * IPV6_PKTINFO (the local address a datagram arrived on, and the source
 * address of each datagram sent, so one socket bound to [::]:5533 serves all
 * locators), recvmmsg (a batch per wake-up, one JS call) and sendmmsg (a
 * batch per JS call, no per-datagram allocation).
 *
 * With `recvErr` (IPV6_RECVERR) the socket also hears the ICMPv6 errors
 * about datagrams it sent: when the socket reports POLLERR (a queued error),
 * the reader drains the error queue (MSG_ERRQUEUE: the sock_extended_err, the
 * offender, the invoking datagram's destination and its quoted UDP payload)
 * into preallocated records and hands JS one batch of them, before the
 * datagrams. Wake-ups without an error cost no extra system call.
 *
 * Must not know: Shim6, the TUN. The JS side (udp-native.ts) owns the
 * buffers; this file only moves bytes between them and the kernel.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/udp.h>
#include "udp.h"
#include "reader.h"
#include <linux/filter.h>
#include <linux/errqueue.h>

/*
 * Sharding a DNS listener over several sockets (one per resolver thread) on one
 * SO_REUSEPORT address: a classic BPF program, run by the kernel for every
 * datagram (the UDP payload at offset 0), picks the socket by a hash of the
 * question name, so a name always reaches the same thread (its cache, its
 * in-flight coalescing, its capability entry) whichever port the client sends
 * from. FNV-1a over the name's first SHARD_NAME_MAX octets from offset 12,
 * each octet OR 0x20 (names are case-insensitive; every octet of one name maps
 * the same way), stopping at the first zero octet (the root label), then the
 * high half folded in and reduced mod the shard count. A datagram too short
 * to hold those octets ends the program early, which the kernel reads as
 * shard 0 (every such datagram goes there: still one place per name).
 */
#define SHARD_NAME_MAX 32 /* a jump offset is one octet: 6 + (SHARD_NAME_MAX - 1) * 8 <= 255 */
static int attach_shard_filter(int fd, uint32_t shards) {
  struct sock_filter f[8 + SHARD_NAME_MAX * 8];
  int n = 0;
  f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_IMM, 2166136261u); /* FNV offset basis */
  f[n++] = (struct sock_filter)BPF_STMT(BPF_ST, 0);
  for (int i = 0; i < SHARD_NAME_MAX; i++) {
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 12 + i);
    /* zero octet: skip the 6 statements left in this block and the 8 of each block after it */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, (uint8_t)(6 + (SHARD_NAME_MAX - 1 - i) * 8), 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_OR | BPF_K, 0x20);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_MISC | BPF_TAX, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_MEM, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 16777619u); /* FNV prime */
    f[n++] = (struct sock_filter)BPF_STMT(BPF_ST, 0);
  }
  f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_MEM, 0);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_MISC | BPF_TAX, 0);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, shards);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_A, 0);
  struct sock_fprog prog = { .len = (unsigned short)n, .filter = f };
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

#define UCHECK(env, call) NAPI_CALL(env, "EUDPNAPI", call)

#define MAX_BATCH 256
#define CMSG_SPACE_PKTINFO (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int)))
/* UDP GSO: at most this many segments per send (UDP_MAX_SEGMENTS is 64 on older kernels). */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

typedef struct {
  reader core;    /* first: the poll's data pointer is both (reader.h) */
  napi_ref err_cb; /* NULL unless the reader drains the error queue */
  uint8_t *buf;   /* slots × slot octets */
  size_t slot;
  uint32_t slots;
  uint8_t *meta;  /* per slot, UDP_META octets (udp.h) */
  uint8_t *errs;  /* UDP_ERR_SLOTS × UDP_ERR_SLOT octets (udp.h) */
} udp_reader;

/*
 * udpOpen(port, bufferSize, gro[, bindAddress: Uint8Array(16)[, dualStack[, shards[, recvErr]]]]) -> [fd, boundPort, gro]
 * gro: ask for UDP_GRO, so a run of equal-sized datagrams of one flow arrives
 * as one buffer with its segment size (the third element says if granted).
 * bindAddress: bind there instead of [::]. An IPv4-mapped address
 * (::ffff:a.b.c.d) makes an IPv4 socket in all but name: the socket is
 * dual-stack, receives IPv4 datagrams sent to a.b.c.d, and sends IPv4 to
 * mapped destinations. Without it the socket is IPv6-only, unless dualStack
 * (a DNS listener on [::] that serves IPv4 clients too, as dgram's udp6 does).
 * shards > 0: join the SO_REUSEPORT group on that address and port, and
 * spread datagrams over the group by question name (attach_shard_filter).
 * recvErr: IPV6_RECVERR, so ICMPv6 errors about our datagrams are queued for
 * the reader (udpStartReader's error records). The kernel then also sets the
 * socket's pending error on each one, which the next send or receive returns
 * once: udp_send retries a datagram that met it, the reader reads again.
 */
napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  int32_t port, bufsize;
  bool want_gro = false, dual = false;
  struct in6_addr bind_addr = in6addr_any;
  UCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  UCHECK(env, napi_get_value_int32(env, argv[0], &port));
  UCHECK(env, napi_get_value_int32(env, argv[1], &bufsize));
  if (argc >= 3) UCHECK(env, napi_get_value_bool(env, argv[2], &want_gro));
  if (argc >= 4) {
    napi_valuetype t;
    UCHECK(env, napi_typeof(env, argv[3], &t));
    if (t != napi_undefined) {
      napi_typedarray_type tt;
      size_t len, off;
      void *data;
      napi_value ab;
      UCHECK(env, napi_get_typedarray_info(env, argv[3], &tt, &len, &data, &ab, &off));
      if (tt != napi_uint8_array || len != 16) {
        napi_throw_range_error(env, "EUDPARGS", "bind address must be 16 octets");
        return NULL;
      }
      memcpy(&bind_addr, data, 16);
    }
  }
  if (argc >= 5) UCHECK(env, napi_get_value_bool(env, argv[4], &dual));
  int32_t shards = 0;
  if (argc >= 6) UCHECK(env, napi_get_value_int32(env, argv[5], &shards));
  bool recv_err = false;
  if (argc >= 7) UCHECK(env, napi_get_value_bool(env, argv[6], &recv_err));
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return reader_throw_errno(env, "socket", errno);
  int one = 1, v6only = !dual && !IN6_IS_ADDR_V4MAPPED(&bind_addr);
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  if (recv_err && setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return reader_throw_errno(env, "IPV6_RECVERR", err);
  }
  if (bufsize > 0) {
    /* FORCE works for root past net.core.*mem_max; otherwise take what is allowed. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof bufsize) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof bufsize) < 0)
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
  }
  if (shards > 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return reader_throw_errno(env, "SO_REUSEPORT", err);
  }
  struct sockaddr_in6 sa;
  memset(&sa, 0, sizeof sa);
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons((uint16_t)port);
  sa.sin6_addr = bind_addr;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = errno;
    close(fd);
    return reader_throw_errno(env, "bind", err);
  }
  /* After bind: a program attached to an unbound socket gives it a group of its own, and the bind then conflicts. */
  if (shards > 0 && attach_shard_filter(fd, (uint32_t)shards) < 0) {
    int err = errno;
    close(fd);
    return reader_throw_errno(env, "SO_ATTACH_REUSEPORT_CBPF", err);
  }
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  bool gro = want_gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  napi_value res, jfd, jport, jgro;
  UCHECK(env, napi_create_array_with_length(env, 3, &res));
  UCHECK(env, napi_get_boolean(env, gro, &jgro));
  UCHECK(env, napi_set_element(env, res, 2, jgro));
  UCHECK(env, napi_create_int32(env, fd, &jfd));
  UCHECK(env, napi_create_int32(env, ntohs(sa.sin6_port), &jport));
  UCHECK(env, napi_set_element(env, res, 0, jfd));
  UCHECK(env, napi_set_element(env, res, 1, jport));
  return res;
}

static void udp_deliver(udp_reader *r, napi_ref cbref, uint32_t n) {
  int32_t arg = (int32_t)n;
  reader_call(&r->core, cbref, 1, &arg);
}

/*
 * Read the error queue into the error records (layout in udp.h): at most
 * UDP_ERR_SLOTS per call. Only ICMPv6 errors are kept (local errors such as
 * EMSGSIZE before sending quote nothing). Returns the records filled.
 */
static uint32_t udp_read_errors(udp_reader *r, int *more) {
  uint32_t n = 0;
  *more = 0;
  for (uint32_t tries = 0; tries < 4 * UDP_ERR_SLOTS; tries++) {
    if (n == UDP_ERR_SLOTS) { *more = 1; break; }
    uint8_t *rec = r->errs + (size_t)n * UDP_ERR_SLOT;
    struct sockaddr_in6 dst;
    union { struct cmsghdr align; uint8_t buf[512]; } ctrl;
    struct iovec iov = { rec + UDP_ERR_HEAD, UDP_ERR_SLOT - UDP_ERR_HEAD };
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    memset(&dst, 0, sizeof dst);
    mh.msg_name = &dst;
    mh.msg_namelen = sizeof dst;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctrl.buf;
    mh.msg_controllen = sizeof ctrl.buf;
    ssize_t got = recvmsg(r->core.fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EINTR) continue;
      break; /* EAGAIN: the queue is empty */
    }
    const struct sock_extended_err *ee = NULL;
    uint8_t local[16] = { 0 };
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != IPPROTO_IPV6) continue;
      if (c->cmsg_type == IPV6_RECVERR && c->cmsg_len >= CMSG_LEN(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6))) ee = (const struct sock_extended_err *)CMSG_DATA(c);
      else if (c->cmsg_type == IPV6_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
        struct in6_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        memcpy(local, &pi.ipi6_addr, 16);
      }
    }
    if (ee == NULL || ee->ee_origin != SO_EE_ORIGIN_ICMP6) continue;
    memset(rec, 0, UDP_ERR_HEAD);
    rec[0] = ee->ee_origin;
    rec[1] = ee->ee_type;
    rec[2] = ee->ee_code;
    uint32_t v = ee->ee_errno;
    memcpy(rec + 4, &v, 4);
    v = ee->ee_info;
    memcpy(rec + 8, &v, 4);
    v = (uint32_t)got;
    memcpy(rec + 12, &v, 4);
    uint16_t port = ntohs(dst.sin6_port);
    rec[16] = port >> 8;
    rec[17] = port & 0xff;
    struct sockaddr_in6 off;
    memcpy(&off, SO_EE_OFFENDER(ee), sizeof off);
    if (off.sin6_family == AF_INET6) memcpy(rec + 20, &off.sin6_addr, 16);
    memcpy(rec + 36, &dst.sin6_addr, 16);
    memcpy(rec + 52, local, 16);
    n++;
  }
  return n;
}

static void udp_on_readable(uv_poll_t *h, int status, int events) {
  udp_reader *r = h->data;
  if (r->core.closed) return;
  if (reader_buffers_moved(&r->core)) { reader_close(&r->core); return; }
  if (status < 0) {
    /* libuv stops a poll handle on POLLERR (a queued ICMP error, or the socket's
       pending error) and says UV_EBADF: without an error reader that is the end,
       as before. With one, poll again and drain the queue below (only then:
       a wake-up for data alone costs no MSG_ERRQUEUE read). */
    if (r->err_cb == NULL) return;
    int rc = uv_poll_start(&r->core.poll, UV_READABLE, udp_on_readable);
    if (rc != 0) return;
  }
  if (r->err_cb != NULL && status < 0) {
    int more = 1;
    for (int rounds = 0; more && rounds < 4 && !r->core.closed; rounds++) {
      uint32_t ne = udp_read_errors(r, &more);
      if (ne > 0) udp_deliver(r, r->err_cb, ne);
    }
    if (r->core.closed) return;
  }
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in6 from[MAX_BATCH];
  /* Per thread: resolver worker threads (resolver/workers.ts) read and send at the same time. */
  static _Thread_local uint8_t ctrl[MAX_BATCH][CMSG_SPACE_PKTINFO];
  uint32_t n = r->slots < MAX_BATCH ? r->slots : MAX_BATCH;
  for (uint32_t i = 0; i < n; i++) {
    iov[i] = (struct iovec){ r->buf + (size_t)i * r->slot, r->slot };
    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_control = ctrl[i];
    msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
  }
  int got, retried = 0;
  for (;;) {
    got = recvmmsg(r->core.fd, msgs, n, MSG_DONTWAIT, NULL);
    if (got >= 0 || errno == EINTR) { if (got >= 0) break; continue; }
    /* The socket's pending error (an ICMP error, IPV6_RECVERR) is returned once: read again. */
    if (errno == EAGAIN || errno == EWOULDBLOCK || retried++) break;
  }
  if (got <= 0) return;
  for (int i = 0; i < got; i++) {
    uint8_t *m = r->meta + (size_t)i * UDP_META;
    memcpy(m, &from[i].sin6_addr, 16);
    memset(m + 16, 0, 16);
    m[34] = m[35] = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
      if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        struct in6_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        memcpy(m + 16, &pi.ipi6_addr, 16);
      } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int gso;
        memcpy(&gso, CMSG_DATA(c), sizeof gso);
        m[34] = (uint8_t)(gso >> 8);
        m[35] = (uint8_t)gso;
      }
    }
    uint16_t port = ntohs(from[i].sin6_port);
    m[32] = port >> 8;
    m[33] = port & 0xff;
    uint32_t len = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : msgs[i].msg_len;
    memcpy(m + 36, &len, 4);
  }
  udp_deliver(r, r->core.cb, (uint32_t)got);
}


/* reader_close (also the environment's cleanup hook): the error callback goes with the other references. */
static void udp_on_close(reader *core) {
  udp_reader *r = (udp_reader *)core;
  if (r->err_cb != NULL) {
    napi_delete_reference(core->env, r->err_cb);
    r->err_cb = NULL;
  }
}

/*
 * udpStartReader(fd, buf: ArrayBuffer, slot, slots, meta: ArrayBuffer, cb(count)[, errs: ArrayBuffer, errCb(count)]) -> handle
 * errs (UDP_ERR_SLOTS × UDP_ERR_SLOT octets) and errCb: drain the error queue
 * (a socket opened with recvErr) and hand over ICMPv6 errors in batches.
 */
napi_value udp_start(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  UCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t slot, slots;
  void *buf, *meta, *errs = NULL;
  size_t buflen, metalen;
  UCHECK(env, napi_get_value_int32(env, argv[0], &fd));
  UCHECK(env, napi_get_arraybuffer_info(env, argv[1], &buf, &buflen));
  UCHECK(env, napi_get_value_uint32(env, argv[2], &slot));
  UCHECK(env, napi_get_value_uint32(env, argv[3], &slots));
  UCHECK(env, napi_get_arraybuffer_info(env, argv[4], &meta, &metalen));
  /* No slots: recvmmsg would read nothing, and the level-triggered poll would call again at once, for ever. */
  if (slots == 0 || (size_t)slot * slots > buflen || (size_t)UDP_META * slots > metalen) {
    napi_throw_range_error(env, "EUDPARGS", "buffers too small");
    return NULL;
  }
  napi_value keep[3] = { argv[1], argv[4], NULL };
  int nkeep = 2;
  if (argc >= 8) {
    size_t errslen;
    napi_valuetype t;
    UCHECK(env, napi_typeof(env, argv[7], &t));
    if (t == napi_function) {
      UCHECK(env, napi_get_arraybuffer_info(env, argv[6], &errs, &errslen));
      if (errslen < (size_t)UDP_ERR_SLOTS * UDP_ERR_SLOT) {
        napi_throw_range_error(env, "EUDPARGS", "error buffer too small");
        return NULL;
      }
      keep[nkeep++] = argv[6];
    }
  }
  /* Allocated once the arguments are checked: a throw above leaks nothing. */
  udp_reader *r = calloc(1, sizeof *r);
  if (!r) return reader_throw_errno(env, "calloc", ENOMEM);
  *r = (udp_reader){ .buf = buf, .slot = slot, .slots = slots, .meta = meta, .errs = errs };
  if (nkeep == 3 && napi_create_reference(env, argv[7], 1, &r->err_cb) != napi_ok) {
    free(r);
    napi_throw_error(env, "EUDPNAPI", "napi_create_reference failed");
    return NULL;
  }
  r->core.on_close = udp_on_close;
  return reader_start(env, &r->core, fd, "shim6:udp", argv[5], keep, nkeep, udp_on_readable); /* frees r on failure */
}

/* udpClose(handle): stop polling and close the socket. */
napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  UCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_reader *r = (udp_reader *)reader_of(env, argv[0]);
  if (r) reader_close(&r->core);
  return NULL;
}

/* Send a refused GSO run as single datagrams of `seg` octets (the last may be shorter), keeping its IPV6_PKTINFO. */
static int32_t udp_send_split(int fd, const struct msghdr *run, uint16_t seg) {
  struct msghdr mh = *run;
  union { struct cmsghdr align; uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo))]; } ctrl;
  mh.msg_control = NULL;
  mh.msg_controllen = 0;
  struct cmsghdr *c = CMSG_FIRSTHDR(run);
  if (c != NULL && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
    memcpy(ctrl.buf, c, CMSG_SPACE(sizeof(struct in6_pktinfo)));
    mh.msg_control = ctrl.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
  }
  uint8_t *base = run->msg_iov[0].iov_base;
  size_t total = run->msg_iov[0].iov_len;
  int32_t sent = 0;
  for (size_t off = 0; off < total; off += seg) {
    struct iovec one = { base + off, total - off < seg ? total - off : seg };
    mh.msg_iov = &one;
    mh.msg_iovlen = 1;
    ssize_t w;
    do { w = sendmsg(fd, &mh, MSG_DONTWAIT); } while (w < 0 && errno == EINTR);
    if (w >= 0) sent++;
  }
  return sent;
}

/*
 * udpSend(fd, arena: ArrayBuffer, meta: ArrayBuffer, count[, gso = true]) -> datagrams sent
 * meta per datagram (UDP_SEND_META octets, udp.h): src 16, dst 16, port u16 BE
 * at 32, offset u32 LE at 36, length u32 LE at 40. Sends from `src` (IPV6_PKTINFO).
 */
napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t fd;
  uint32_t count;
  bool gso_ok = true;
  void *arena, *meta;
  size_t alen, mlen;
  UCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  UCHECK(env, napi_get_value_int32(env, argv[0], &fd));
  UCHECK(env, napi_get_arraybuffer_info(env, argv[1], &arena, &alen));
  UCHECK(env, napi_get_arraybuffer_info(env, argv[2], &meta, &mlen));
  UCHECK(env, napi_get_value_uint32(env, argv[3], &count));
  if (argc >= 5) UCHECK(env, napi_get_value_bool(env, argv[4], &gso_ok));
  if ((size_t)count * UDP_SEND_META > mlen) count = (uint32_t)(mlen / UDP_SEND_META);
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in6 to[MAX_BATCH];
  uint16_t seg[MAX_BATCH]; /* GSO segment size of message k, 0 = one datagram */
  static _Thread_local uint8_t ctrl[MAX_BATCH][CMSG_SPACE_PKTINFO]; /* per thread, as in udp_on_readable */
  int32_t sent = 0;
  for (uint32_t base = 0; base < count; base += MAX_BATCH) {
    uint32_t n = count - base < MAX_BATCH ? count - base : MAX_BATCH;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n;) {
      const uint8_t *m = (const uint8_t *)meta + (size_t)(base + i) * UDP_SEND_META;
      uint32_t off, len;
      memcpy(&off, m + 36, 4);
      memcpy(&len, m + 40, 4);
      /* A run of equal-sized datagrams, contiguous in the arena, same addresses and
         port (the segments of one TSO read): one UDP GSO send (UDP_SEGMENT). */
      uint32_t run = 1, total = len;
      while (gso_ok && i + run < n && run < GSO_MAX_SEGS) {
        const uint8_t *m2 = (const uint8_t *)meta + (size_t)(base + i + run) * UDP_SEND_META;
        uint32_t off2, len2;
        memcpy(&off2, m2 + 36, 4);
        memcpy(&len2, m2 + 40, 4);
        if (off2 != off + total || len2 > len || total + len2 > GSO_MAX_BYTES || memcmp(m, m2, 34) != 0) break;
        total += len2;
        run++;
        if (len2 < len) break; /* only the last segment may be short */
      }
      i += run;
      if ((size_t)off + total > alen) continue;
      memset(&to[k], 0, sizeof to[k]);
      to[k].sin6_family = AF_INET6;
      memcpy(&to[k].sin6_addr, m + 16, 16);
      to[k].sin6_port = htons((uint16_t)((m[32] << 8) | m[33]));
      iov[k] = (struct iovec){ (uint8_t *)arena + off, total };
      memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
      msgs[k].msg_hdr.msg_name = &to[k];
      msgs[k].msg_hdr.msg_namelen = sizeof to[k];
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      memset(ctrl[k], 0, sizeof ctrl[k]);
      /* Source :: = the socket's own address (a bound DNS socket): no IPV6_PKTINFO. */
      static const uint8_t any[16];
      int pktinfo = memcmp(m, any, 16) != 0;
      msgs[k].msg_hdr.msg_control = ctrl[k];
      msgs[k].msg_hdr.msg_controllen = (pktinfo ? CMSG_SPACE(sizeof(struct in6_pktinfo)) : 0) + (run > 1 ? CMSG_SPACE(sizeof(int)) : 0);
      if (msgs[k].msg_hdr.msg_controllen == 0) msgs[k].msg_hdr.msg_control = NULL;
      struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[k].msg_hdr);
      if (pktinfo) {
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
        struct in6_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        memcpy(&pi.ipi6_addr, m, 16);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
      }
      seg[k] = run > 1 ? (uint16_t)len : 0;
      if (run > 1) {
        if (pktinfo) c = CMSG_NXTHDR(&msgs[k].msg_hdr, c);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gso = (uint16_t)len;
        memcpy(CMSG_DATA(c), &gso, sizeof gso);
      }
      k++;
    }
    uint32_t done = 0;
    int retried = 0;
    while (done < k) {
      int w = sendmmsg(fd, msgs + done, k - done, MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EINTR) continue;
        /* With IPV6_RECVERR the socket's pending error (an ICMP error that
           arrived meanwhile) fails the next send once: try that datagram again. */
        if (!retried) { retried = 1; continue; }
        retried = 0;
        /* A GSO run the kernel refuses (EINVAL: its segments exceed the path MTU a
           Packet Too Big taught the kernel): send its datagrams one by one, which
           the kernel may fragment. */
        if (seg[done] != 0) sent += udp_send_split(fd, &msgs[done].msg_hdr, seg[done]);
        /* Otherwise EAGAIN (socket full) or a per-datagram error (no route while a
           link is down): skip that datagram, as a lost UDP datagram; REAP notices. */
        done++;
        continue;
      }
      retried = 0;
      done += (uint32_t)w;
      sent += w; /* messages (a GSO run counts once) */
    }
  }
  napi_value out;
  UCHECK(env, napi_create_int32(env, sent, &out));
  return out;
}

/*
 * rawSend(packets: Uint8Array[], count) -> packets sent: whole IPv6 packets
 * (header included) through one IPPROTO_RAW socket (IPv6 raw sockets of that
 * protocol take the header as given, RFC 3542 §3), routed by the kernel as if
 * the host had sent them. The driver uses it for an application's packets it
 * held for a context that then failed: they leave as plain IPv6 at once
 * instead of waiting for the application to retransmit them. Opened on first
 * use, close-on-exec, kept for the process.
 */
static int raw_fd = -1;
napi_value raw_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t count;
  UCHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  UCHECK(env, napi_get_value_uint32(env, argv[1], &count));
  if (raw_fd < 0) {
    raw_fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
    if (raw_fd < 0) return reader_throw_errno(env, "socket(IPPROTO_RAW)", errno);
  }
  int32_t sent = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value el;
    napi_typedarray_type tt;
    size_t len, off;
    void *data;
    napi_value ab;
    UCHECK(env, napi_get_element(env, argv[0], i, &el));
    UCHECK(env, napi_get_typedarray_info(env, el, &tt, &len, &data, &ab, &off));
    if (tt != napi_uint8_array || len < 40 || (((const uint8_t *)data)[0] >> 4) != 6) continue;
    struct sockaddr_in6 to;
    memset(&to, 0, sizeof to);
    to.sin6_family = AF_INET6;
    memcpy(&to.sin6_addr, (const uint8_t *)data + 24, 16);
    ssize_t w;
    do { w = sendto(raw_fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to); } while (w < 0 && errno == EINTR);
    if (w >= 0) sent++;
  }
  napi_value out;
  UCHECK(env, napi_create_int32(env, sent, &out));
  return out;
}
