/* TUN offloads: TSO segmentation on read, GRO-style coalescing on write (offload.c). */
#ifndef SHIM6_OFFLOAD_H
#define SHIM6_OFFLOAD_H
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h>

/* Returns where to write the next segment of `len` octets, or NULL to abort. */
typedef uint8_t *(*seg_emit)(void *ctx, size_t len);

/* Complete a CHECKSUM_PARTIAL packet (virtio NEEDS_CSUM). */
void complete_checksum(uint8_t *pkt, size_t len, uint16_t start, uint16_t offset);

/* Cut an IPv6/TCP TSO segment into `mss`-sized packets with their own seq and checksum. Returns the count or -1. */
int segment_tso(const uint8_t *pkt, size_t len, uint16_t mss, seg_emit emit, void *ctx);

/* How many of pkts[0..count) can be written as one GRO segment (1 = no merge). */
size_t plan_coalesce(const uint8_t *const *pkts, const size_t *lens, size_t count, size_t max_segs);

/* Headers (IPv6 + TCP, into `out`) and virtio header for pkts[0..n); returns the header length. */
size_t build_gso_header(const uint8_t *const *pkts, const size_t *lens, size_t n, uint8_t *out, struct virtio_net_hdr *vh);

/*
 * A packet written whole as CHECKSUM_PARTIAL: its IPv6 header and its upper layer's (TCP, UDP or
 * ICMPv6, directly after IPv6) up to the checksum field, into `out`, the field made the folded
 * pseudo-header sum; the virtio header NEEDS_CSUM. Returns the length copied, 0 for any other packet.
 */
size_t build_partial_header(const uint8_t *pkt, size_t len, uint8_t *out, struct virtio_net_hdr *vh);

#endif
