/*
 * shim6_tun: the smallest native piece the data plane needs.
 *
 * Owns: opening /dev/net/tun (TUNSETIFF, IFF_TUN | IFF_NO_PI), a non-blocking
 * fd, a libuv poll on it that reads every available packet into a batch of
 * preallocated slots and calls JS once per batch, and batch writes.
 * Must not know: IPv6, Shim6, routes, MTU policy (the TypeScript side owns them).
 *
 * Why native: measured here, threadpool fs.read on the TUN fd gives ~17k pkt/s,
 * an epoll-driven read ~36k pkt/s; net.Socket rejects the TUN fd, and a
 * threadpool read blocked on the fd stops process.exit(). uv_poll integrates
 * with Node's own event loop, so there is no thread and nothing blocks exit.
 */
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include "offload.h"
#include "udp.h"
#include "notify.h"
#include "nflog.h"
#include "bpfmap.h"
#include "nftcounters.h"
#include "rtnl.h"
#include "reader.h"
#include "clock.h"

#define VNET_LEN ((int)sizeof(struct virtio_net_hdr))
#define MAX_GRO_SEGS 64
#define SCRATCH_LEN (65536 + 64)
#define IP6_HDR_MAX (40 + 60)

#define CHECK(env, call) NAPI_CALL(env, "ETUNNAPI", call)

typedef struct {
  reader core; /* first: the poll's data pointer is both (reader.h) */
  uint8_t *buf;
  size_t slot;
  uint32_t slots;
  int32_t *lens;
  int vnet;
  uint32_t count;
  uint8_t *scratch;
} tun_reader;

/*
 * open(name: string, offload: boolean) -> [fd, actualName, offload]
 * With offload: IFF_VNET_HDR and TUNSETOFFLOAD(CSUM | TSO6); the third
 * element says whether the kernel accepted it. Without: TUNSETOFFLOAD(0).
 */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool want_vnet = false;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 2) CHECK(env, napi_get_value_bool(env, argv[1], &want_vnet));
  char name[IFNAMSIZ] = {0};
  size_t len = 0;
  if (argc >= 1) CHECK(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len));
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return reader_throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (want_vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, len < IFNAMSIZ ? len : IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return reader_throw_errno(env, "TUNSETIFF", err);
  }
  bool vnet = false;
  if (want_vnet) {
    int sz = VNET_LEN;
    unsigned int off = TUN_F_CSUM | TUN_F_TSO6;
    vnet = ioctl(fd, TUNSETVNETHDRSZ, &sz) == 0 && ioctl(fd, TUNSETOFFLOAD, off) == 0;
    if (!vnet) {
      /* The header is on regardless (IFF_VNET_HDR); without offloads it is just all zeros. */
      vnet = true;
      ioctl(fd, TUNSETOFFLOAD, 0);
    }
  } else {
    /* No offloads: a persistent device keeps those of its previous user (ours included) otherwise. */
    ioctl(fd, TUNSETOFFLOAD, 0);
  }
  napi_value result, jfd, jname, jvnet;
  CHECK(env, napi_create_array_with_length(env, 3, &result));
  CHECK(env, napi_create_int32(env, fd, &jfd));
  CHECK(env, napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &jname));
  CHECK(env, napi_set_element(env, result, 0, jfd));
  CHECK(env, napi_set_element(env, result, 1, jname));
  CHECK(env, napi_get_boolean(env, vnet, &jvnet));
  CHECK(env, napi_set_element(env, result, 2, jvnet));
  return result;
}

/* Hand the current batch to JS (one call), then start a new one. */
static void deliver(tun_reader *r, int err) {
  uint32_t n = r->count;
  r->count = 0;
  if (n == 0 && err == 0) return;
  int32_t args[2] = { (int32_t)n, -err };
  reader_call(&r->core, r->core.cb, 2, args);
}

/* Next free slot for a packet of `len` octets; delivers a full batch first. */
static uint8_t *next_slot(void *ctx, size_t len) {
  tun_reader *r = ctx;
  if (len > r->slot) return NULL;
  if (r->count == r->slots) {
    deliver(r, 0);
    if (r->core.closed) return NULL;
  }
  r->lens[r->count] = (int32_t)len;
  return r->buf + (size_t)(r->count++) * r->slot;
}

/* One packet read with a virtio header: split TSO segments, complete partial checksums. */
static void take_vnet_packet(tun_reader *r, uint8_t *pkt, size_t n) {
  if (n < (size_t)VNET_LEN) return;
  struct virtio_net_hdr vh;
  memcpy(&vh, pkt, sizeof vh);
  uint8_t *ip = pkt + VNET_LEN;
  size_t len = n - VNET_LEN;
  if ((vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV6) {
    segment_tso(ip, len, vh.gso_size, next_slot, r);
    return;
  }
  if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE) return; /* not offered: cannot happen */
  if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) complete_checksum(ip, len, vh.csum_start, vh.csum_offset);
  uint8_t *out = next_slot(r, len);
  if (out) memcpy(out, ip, len);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  tun_reader *r = handle->data;
  if (r->core.closed) return;
  if (reader_buffers_moved(&r->core)) { reader_close(&r->core); return; }
  int err = status < 0 ? -status : 0;
  /* Bounded work per wake-up so the loop stays fair; epoll is level-triggered and comes back. */
  for (int reads = 0; !r->core.closed && !err && r->count < r->slots && reads < 256; reads++) {
    uint8_t *dst = r->vnet ? r->scratch : r->buf + (size_t)r->count * r->slot;
    size_t cap = r->vnet ? SCRATCH_LEN : r->slot;
    ssize_t got = read(r->core.fd, dst, cap);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    /* The TUN driver returns a packet's whole length even when it copied only `cap` of it: such a packet is cut, dropped. */
    if ((size_t)got > cap) continue;
    if (r->vnet) take_vnet_packet(r, dst, (size_t)got);
    else r->lens[r->count++] = (int32_t)got;
  }
  if (!r->core.closed) deliver(r, err);
}

static void free_scratch(reader *core) {
  free(((tun_reader *)core)->scratch);
}

/*
 * startReader(fd, buf: ArrayBuffer, slotSize, slots, lens: Int32Array, cb(count, err), vnet) -> handle
 * Packet i of a batch is buf[i*slotSize, i*slotSize+lens[i]). The views are only
 * valid during the callback: the next batch overwrites them.
 */
static napi_value tun_start(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) { napi_throw_type_error(env, "ETUNARGS", "startReader needs 7 arguments"); return NULL; }
  int32_t fd;
  uint32_t slot, slots;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  void *buf;
  size_t buflen;
  CHECK(env, napi_get_arraybuffer_info(env, argv[1], &buf, &buflen));
  CHECK(env, napi_get_value_uint32(env, argv[2], &slot));
  CHECK(env, napi_get_value_uint32(env, argv[3], &slots));
  napi_typedarray_type tt;
  size_t tlen, toff;
  void *tdata;
  napi_value tab;
  CHECK(env, napi_get_typedarray_info(env, argv[4], &tt, &tlen, &tdata, &tab, &toff));
  /* No slots (or empty ones): nothing would be read, and the level-triggered poll would call again at once, for ever. */
  if (tt != napi_int32_array || slots == 0 || slot == 0 || tlen < slots || (size_t)slot * slots > buflen) {
    napi_throw_range_error(env, "ETUNARGS", "buffer or lengths array too small");
    return NULL;
  }
  bool vnet;
  CHECK(env, napi_get_value_bool(env, argv[6], &vnet));
  /* Allocated once the arguments are checked: a throw above leaks nothing. */
  tun_reader *r = calloc(1, sizeof *r);
  if (!r) return reader_throw_errno(env, "calloc", ENOMEM);
  r->buf = buf;
  r->slot = slot;
  r->slots = slots;
  r->lens = tdata;
  r->vnet = vnet;
  if (vnet && !(r->scratch = malloc(SCRATCH_LEN))) { free(r); return reader_throw_errno(env, "malloc", ENOMEM); }
  r->core.on_free = free_scratch;
  napi_value keep[2] = { argv[1], argv[4] };
  return reader_start(env, &r->core, fd, "shim6:tun", argv[5], keep, 2, on_readable); /* frees r on failure */
}

static ssize_t writev_all(int fd, struct iovec *iov, int n) {
  ssize_t w;
  do { w = writev(fd, iov, n); } while (w < 0 && errno == EINTR);
  return w;
}

static const struct virtio_net_hdr ZERO_VNET;

/*
 * writeBatch(fd, packets: Uint8Array[], count, vnet) -> packets written, or -errno if none.
 * A packet the kernel refuses is skipped; the others still go.
 * Without vnet, one write(2) per packet. With vnet, runs of in-order TCP
 * segments of one flow go out as one GSO segment (offload.c), the rest one by
 * one as CHECKSUM_PARTIAL where they are TCP, UDP or ICMPv6 (build_partial_header),
 * else behind an all-zero virtio header.
 *
 * Neither way does the kernel verify the upper layer's checksum, which is honest for what
 * the daemon writes: a packet it decapsulated from a UDP datagram, whose checksum (mandatory
 * over IPv6) the kernel verified over every octet of it before the socket handed it over
 * (the ULIDs of its pseudo-header come from the context), or one the daemon built. And it is
 * needed: a peer's kernel encapsulation leaves a packet's own checksum to the device
 * (CHECKSUM_PARTIAL), which across a virtual link (veth) never completes it; verified
 * again here, such a packet was dropped (TcpInCsumErrors) and its stream stopped.
 */
static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t count;
  bool vnet = false;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  CHECK(env, napi_get_value_uint32(env, argv[2], &count));
  if (argc >= 4) CHECK(env, napi_get_value_bool(env, argv[3], &vnet));
  const uint8_t *ptrs[256];
  size_t lens[256];
  int32_t done = 0;
  int last_err = 0;
  for (uint32_t base = 0; base < count; base += 256) {
    uint32_t m = count - base < 256 ? count - base : 256;
    for (uint32_t i = 0; i < m; i++) {
      napi_value el;
      napi_typedarray_type tt;
      size_t len, off;
      void *data;
      napi_value ab;
      CHECK(env, napi_get_element(env, argv[1], base + i, &el));
      CHECK(env, napi_get_typedarray_info(env, el, &tt, &len, &data, &ab, &off));
      ptrs[i] = data;
      lens[i] = len;
    }
    for (uint32_t i = 0; i < m;) {
      size_t n = vnet ? plan_coalesce(ptrs + i, lens + i, m - i, MAX_GRO_SEGS) : 1;
      struct iovec iov[MAX_GRO_SEGS + 2];
      uint8_t hdr[IP6_HDR_MAX];
      struct virtio_net_hdr vh;
      int k = 0;
      if (n >= 2) {
        size_t h = build_gso_header(ptrs + i, lens + i, n, hdr, &vh);
        iov[k++] = (struct iovec){ &vh, sizeof vh };
        iov[k++] = (struct iovec){ hdr, h };
        for (size_t j = 0; j < n; j++) iov[k++] = (struct iovec){ (void *)(ptrs[i + j] + h), lens[i + j] - h };
      } else {
        size_t h = vnet ? build_partial_header(ptrs[i], lens[i], hdr, &vh) : 0;
        if (h > 0) {
          iov[k++] = (struct iovec){ &vh, sizeof vh };
          iov[k++] = (struct iovec){ hdr, h };
          iov[k++] = (struct iovec){ (void *)(ptrs[i] + h), lens[i] - h };
        } else {
          if (vnet) iov[k++] = (struct iovec){ (void *)&ZERO_VNET, sizeof ZERO_VNET };
          iov[k++] = (struct iovec){ (void *)ptrs[i], lens[i] };
        }
      }
      /* A packet the kernel refuses (malformed bytes from a peer) is skipped, not the rest of the batch. */
      if (writev_all(fd, iov, k) < 0) last_err = errno;
      else done += (int32_t)n;
      i += (uint32_t)n;
    }
  }
  napi_value out;
  CHECK(env, napi_create_int32(env, done == 0 && last_err ? -last_err : done, &out));
  return out;
}

/* write2(fd, head, body, vnet) -> bytes or -errno: one packet from two pieces (writev). */
static napi_value tun_write2(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  bool vnet = false;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  if (argc >= 4) CHECK(env, napi_get_value_bool(env, argv[3], &vnet));
  struct iovec iov[3];
  int k = 0;
  if (vnet) iov[k++] = (struct iovec){ (void *)&ZERO_VNET, sizeof ZERO_VNET };
  for (int i = 0; i < 2; i++) {
    napi_typedarray_type tt;
    size_t len, off;
    void *data;
    napi_value ab;
    CHECK(env, napi_get_typedarray_info(env, argv[i + 1], &tt, &len, &data, &ab, &off));
    iov[k++] = (struct iovec){ data, len };
  }
  ssize_t w = writev_all(fd, iov, k);
  napi_value out;
  CHECK(env, napi_create_int32(env, w < 0 ? -errno : (int32_t)w, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"open", NULL, tun_open, NULL, NULL, NULL, napi_default, NULL},
    {"startReader", NULL, tun_start, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, reader_close_js, NULL, NULL, NULL, napi_default, NULL},
    {"ref", NULL, reader_ref_js, NULL, NULL, NULL, napi_default, NULL},
    {"writeBatch", NULL, tun_write_batch, NULL, NULL, NULL, napi_default, NULL},
    {"write2", NULL, tun_write2, NULL, NULL, NULL, napi_default, NULL},
    {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
    {"udpStartReader", NULL, udp_start, NULL, NULL, NULL, napi_default, NULL},
    {"udpClose", NULL, udp_close, NULL, NULL, NULL, napi_default, NULL},
    {"udpSend", NULL, udp_send, NULL, NULL, NULL, napi_default, NULL},
    {"udpRef", NULL, reader_ref_js, NULL, NULL, NULL, napi_default, NULL},
    {"rawSend", NULL, raw_send, NULL, NULL, NULL, napi_default, NULL},
    {"notify", NULL, notify_send, NULL, NULL, NULL, napi_default, NULL},
    {"nflogOpen", NULL, nflog_open, NULL, NULL, NULL, napi_default, NULL},
    {"nflogStartReader", NULL, nflog_start, NULL, NULL, NULL, napi_default, NULL},
    {"nflogClose", NULL, reader_close_js, NULL, NULL, NULL, napi_default, NULL},
    {"bpfObjGet", NULL, bpf_obj_get_js, NULL, NULL, NULL, napi_default, NULL},
    {"bpfMapUpdate", NULL, bpf_map_update_js, NULL, NULL, NULL, napi_default, NULL},
    {"bpfMapDelete", NULL, bpf_map_delete_js, NULL, NULL, NULL, napi_default, NULL},
    {"bpfMapLookup", NULL, bpf_map_lookup_js, NULL, NULL, NULL, napi_default, NULL},
    {"bpfPercpuSum", NULL, bpf_percpu_sum_js, NULL, NULL, NULL, napi_default, NULL},
    {"bpfMapNextKey", NULL, bpf_map_next_key_js, NULL, NULL, NULL, napi_default, NULL},
    {"bpfClose", NULL, fd_close_js, NULL, NULL, NULL, napi_default, NULL},
    {"nftCountersOpen", NULL, nft_counters_open_js, NULL, NULL, NULL, napi_default, NULL},
    {"nftCountersRead", NULL, nft_counters_read_js, NULL, NULL, NULL, napi_default, NULL},
    {"nftCountersBind", NULL, nft_counters_bind_js, NULL, NULL, NULL, napi_default, NULL},
    {"nftCountersClose", NULL, fd_close_js, NULL, NULL, NULL, napi_default, NULL},
    {"rtnlOpen", NULL, rtnl_open_js, NULL, NULL, NULL, napi_default, NULL},
    {"rtnlTransact", NULL, rtnl_transact_js, NULL, NULL, NULL, napi_default, NULL},
    {"rtnlClose", NULL, fd_close_js, NULL, NULL, NULL, napi_default, NULL},
    {"bootClockOpen", NULL, boot_clock_open_js, NULL, NULL, NULL, napi_default, NULL},
    {"bootTimerOpen", NULL, boot_timer_open_js, NULL, NULL, NULL, napi_default, NULL},
    {"bootTimerSet", NULL, boot_timer_set_js, NULL, NULL, NULL, napi_default, NULL},
    {"bootTimerClose", NULL, reader_close_js, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
