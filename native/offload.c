/*
 * TUN offloads (IFF_VNET_HDR), the way wireguard-go's tun/offload_linux.go
 * does them, so the kernel's TCP handles 64 KB segments instead of one per MTU:
 *
 *  - read side (TSO, TUN_F_TSO6): the kernel hands us one large IPv6/TCP
 *    segment with a virtio_net_hdr; we cut it into gso_size segments, each a
 *    complete packet with its own sequence number and checksum, because every
 *    one must become its own UDP datagram (RFC 5533 payload per packet).
 *  - write side (GRO): consecutive in-order TCP segments of one flow from a
 *    batch are written as ONE large segment with a GSO header (NEEDS_CSUM,
 *    GSO_TCPV6); the rules are those of the kernel's tcp_gro_receive (same
 *    ACK, flags, window and options; only the last may be short or carry PSH).
 *
 * Must not know: Shim6, JS. Pure functions over byte buffers.
 */
#include "offload.h"
#include <string.h>
#include <arpa/inet.h>

#define IP6_HDR 40
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_URG 0x20
#define TCP_CWR 0x80

static uint64_t sum_bytes(const uint8_t *p, size_t n, uint64_t s) {
  while (n >= 4) {
    s += ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    s += ((uint32_t)p[0] << 8) | p[1];
    p += 2;
    n -= 2;
  }
  if (n) s += (uint32_t)p[0] << 8;
  return s;
}

static uint16_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/* Pseudo-header sum (RFC 8200 §8.1), not folded. */
static uint64_t pseudo_sum(const uint8_t *ip6, uint32_t ulp_len, uint8_t proto) {
  uint64_t s = sum_bytes(ip6 + 8, 32, 0);
  return s + ulp_len + proto;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static uint32_t get32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

void complete_checksum(uint8_t *pkt, size_t len, uint16_t start, uint16_t offset) {
  if ((size_t)start + offset + 2 > len) return;
  uint16_t c = ~fold(sum_bytes(pkt + start, len - start, 0));
  if (c == 0 && offset == 6) c = 0xffff; /* UDP: 0 means "no checksum" (RFC 768), forbidden in IPv6 */
  put16(pkt + start + offset, c);
}

int segment_tso(const uint8_t *pkt, size_t len, uint16_t mss, seg_emit emit, void *ctx) {
  if (len < IP6_HDR + 20 || (pkt[0] >> 4) != 6 || pkt[6] != 6 || mss == 0) return -1;
  const uint8_t *th = pkt + IP6_HDR;
  size_t thlen = (size_t)(th[12] >> 4) * 4;
  size_t hdr = IP6_HDR + thlen;
  if (thlen < 20 || hdr > len) return -1;
  size_t data = len - hdr;
  uint32_t seq0 = get32(th + 4);
  uint8_t flags = th[13];
  int n = 0;
  for (size_t off = 0; off < data || (data == 0 && n == 0); off += mss) {
    size_t seg = data - off < mss ? data - off : mss;
    int last = off + seg >= data;
    uint8_t *out = emit(ctx, hdr + seg);
    if (!out) return -1;
    memcpy(out, pkt, hdr);
    memcpy(out + hdr, pkt + hdr + off, seg);
    put16(out + 4, (uint16_t)(thlen + seg));
    uint8_t *oth = out + IP6_HDR;
    put32(oth + 4, seq0 + (uint32_t)off);
    uint8_t f = flags;
    if (!last) f &= ~(TCP_FIN | TCP_PSH);
    if (off > 0) f &= ~TCP_CWR;
    oth[13] = f;
    oth[16] = oth[17] = 0;
    put16(oth + 16, ~fold(sum_bytes(oth, thlen + seg, pseudo_sum(out, (uint32_t)(thlen + seg), 6))));
    n++;
    if (data == 0) break;
  }
  return n;
}

/* A TCP segment directly after the IPv6 header that GRO may merge (ACK with data, no SYN/FIN/RST/URG). */
static int tcp_mergeable(const uint8_t *p, size_t len, size_t *thlen_out) {
  if (len < IP6_HDR + 20 || (p[0] >> 4) != 6 || p[6] != 6) return 0;
  size_t plen = ((size_t)p[4] << 8) | p[5];
  if (IP6_HDR + plen != len) return 0;
  const uint8_t *th = p + IP6_HDR;
  size_t thlen = (size_t)(th[12] >> 4) * 4;
  if (thlen < 20 || IP6_HDR + thlen >= len) return 0; /* no data: nothing to merge */
  if (th[13] & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG)) return 0;
  *thlen_out = thlen;
  return 1;
}

/* Can `q` follow `first` … `prev` in one GRO segment? */
static int can_follow(const uint8_t *first, size_t thlen, uint32_t next_seq, const uint8_t *q, size_t qlen) {
  size_t qthlen;
  if (!tcp_mergeable(q, qlen, &qthlen) || qthlen != thlen) return 0;
  if (memcmp(first + 8, q + 8, 32) != 0) return 0;            /* addresses */
  const uint8_t *a = first + IP6_HDR, *b = q + IP6_HDR;
  if (memcmp(a, b, 4) != 0) return 0;                          /* ports */
  if (get32(b + 4) != next_seq) return 0;                      /* in order, no gap */
  if (memcmp(a + 8, b + 8, 4) != 0) return 0;                  /* ACK */
  if (a[12] != b[12] || (a[13] & ~TCP_PSH) != (b[13] & ~TCP_PSH) || a[14] != b[14] || a[15] != b[15]) return 0;
  if (b[13] & TCP_CWR) return 0;
  if (thlen > 20 && memcmp(a + 20, b + 20, thlen - 20) != 0) return 0; /* options (timestamps) */
  return 1;
}

size_t plan_coalesce(const uint8_t *const *pkts, const size_t *lens, size_t count, size_t max_segs) {
  size_t thlen;
  if (count < 2 || !tcp_mergeable(pkts[0], lens[0], &thlen)) return 1;
  const uint8_t *first = pkts[0];
  if (first[IP6_HDR + 13] & TCP_PSH) return 1;
  size_t mss = lens[0] - IP6_HDR - thlen;
  size_t total = mss;
  uint32_t next = get32(first + IP6_HDR + 4) + (uint32_t)mss;
  size_t n = 1;
  while (n < count && n < max_segs) {
    const uint8_t *q = pkts[n];
    if (!can_follow(first, thlen, next, q, lens[n])) break;
    size_t seg = lens[n] - IP6_HDR - thlen;
    if (seg > mss || thlen + total + seg > 65535) break;
    total += seg;
    next += (uint32_t)seg;
    n++;
    if (seg < mss || (q[IP6_HDR + 13] & TCP_PSH)) break; /* a short or pushed segment ends the run */
  }
  return n;
}

size_t build_gso_header(const uint8_t *const *pkts, const size_t *lens, size_t n, uint8_t *out, struct virtio_net_hdr *vh) {
  const uint8_t *first = pkts[0];
  size_t thlen = (size_t)(first[IP6_HDR + 12] >> 4) * 4;
  size_t hdr = IP6_HDR + thlen;
  size_t data = 0;
  for (size_t i = 0; i < n; i++) data += lens[i] - hdr;
  memcpy(out, first, hdr);
  put16(out + 4, (uint16_t)(thlen + data));
  uint8_t *th = out + IP6_HDR;
  th[13] |= pkts[n - 1][IP6_HDR + 13] & TCP_PSH;
  /* CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum; the kernel adds the rest. */
  put16(th + 16, fold(pseudo_sum(out, (uint32_t)(thlen + data), 6)));
  memset(vh, 0, sizeof *vh);
  vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh->gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
  vh->hdr_len = (uint16_t)hdr;
  vh->gso_size = (uint16_t)(lens[0] - hdr);
  vh->csum_start = IP6_HDR;
  vh->csum_offset = 16;
  return hdr;
}

size_t build_partial_header(const uint8_t *pkt, size_t len, uint8_t *out, struct virtio_net_hdr *vh) {
  if (len < IP6_HDR + 8 || (pkt[0] >> 4) != 6) return 0;
  size_t plen = ((size_t)pkt[4] << 8) | pkt[5];
  if (IP6_HDR + plen != len) return 0;
  uint8_t proto = pkt[6];
  uint16_t off = proto == 6 ? 16 : proto == 17 ? 6 : proto == 58 ? 2 : 0;
  if (off == 0 || (proto == 6 && plen < 20)) return 0;
  size_t hdr = IP6_HDR + off + 2;
  memcpy(out, pkt, hdr);
  /* CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, as the sender's stack leaves it. */
  put16(out + IP6_HDR + off, fold(pseudo_sum(out, (uint32_t)plen, proto)));
  memset(vh, 0, sizeof *vh);
  vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh->hdr_len = (uint16_t)hdr;
  vh->csum_start = IP6_HDR;
  vh->csum_offset = off;
  return hdr;
}
