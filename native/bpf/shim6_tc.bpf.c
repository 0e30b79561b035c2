// SPDX-License-Identifier: GPL-2.0
/*
 * shim6 kernel encapsulation (docs/dataplane.md "Kernel encapsulation"): two tc
 * programs for a context whose locator pair is not its ULID pair (after a
 * re-homing), on the same wire format as the user-space path (docs/wire.md):
 * UDP (the daemon's port) + the 8-octet payload header (Next Header, 0,
 * P=1 | the receiver's 47-bit context tag) + the upper-layer packet.
 *
 *  - shim6_egress (clsact egress of the host's links): an IPv6 packet from
 *    our ULID to a peer ULID found in `shim6_egr` gets its addresses replaced
 *    by the locator pair and UDP + the payload header inserted after the IPv6
 *    header. The daemon's own UDP and neighbour discovery are left alone.
 *  - shim6_ingress (clsact ingress): a UDP datagram to the daemon's port with
 *    a payload header whose tag is in `shim6_ing` and whose source is one of
 *    that context's verified peer locators loses UDP and the payload header
 *    and gets the ULID pair back. Anything else (unknown tag, unverified
 *    source, a control message) is passed on untouched to the daemon's
 *    socket, which makes the checks and answers (R1bis).
 *  - While a context is watched (`shim6_watch`), ingress remembers each of its
 *    TCP flows' last segment from the peer in `shim6_flows` (its acknowledgment
 *    number, its header as a pure ACK): after a re-homing the daemon tells those
 *    sockets the path MTU shrank (a Packet Too Big quoting our first
 *    unacknowledged octet: TCP retransmits what is in flight at once) and hands
 *    them that ACK again (TCP sends what waits unsent at once).
 *    Only flows of a real local socket: a segment is remembered only when the
 *    kernel has a connected TCP socket (ESTABLISHED or CLOSE_WAIT) for its
 *    four-tuple (bpf_sk_lookup_tcp) and its ACK is within what that socket sent
 *    and has not had acknowledged (bpf_tcp_sock: snd_una..snd_nxt, and the one
 *    segment being sent: ACK_SLACK), so segments
 *    forged with the peer's ULID as source cannot fill the table, nor replace a
 *    flow's last segment for whoever knows its ports; at most FLOWS_PER_CONTEXT
 *    flows per context (the count in `shim6_watch`), so no one context fills
 *    the table (8192, shared) and evicts the others' flows; a flow is
 *    forgotten when our own stack sends its FIN or RST (egress), so a closed
 *    socket is not prompted.
 *  - Several datagrams in one skb (UDP GSO, GRO) go to the daemon's socket.
 *  - Only a datagram to a unicast address of ours (`shim6_local`, kept by the
 *    daemon: its engine's locators, what the engine takes a payload to) is decapsulated; anything else (a multicast
 *    destination, an address not ours) goes to the daemon's socket, where the
 *    engine drops what is not to a local address (not-local), as for the TUN path.
 *
 * Checksums: the outer UDP checksum (mandatory over IPv6) is computed from
 * the headers alone: after the inner checksum is complete (now, or by the
 * device for CHECKSUM_PARTIAL) the upper-layer packet sums to the complement
 * of its pseudo-header (the ULIDs), so only TCP, UDP and ICMPv6 without
 * extension headers are encapsulated here. Any other packet (a fragment — the
 * kernel fragments a datagram larger than the route's MTU before tc egress —,
 * ESP, AH, an extension header, any other protocol, one whose upper layer is under 8 octets) has no such sum: it is
 * redirected, unchanged, to the daemon's TUN like a GSO skb (below), where the
 * daemon encapsulates it as the TUN path does (RFC 5533 §1.6: fragmentation
 * is above the shim); dropped and counted only while there is no TUN.
 * A CHECKSUM_PARTIAL packet keeps its inner checksum to be completed by the
 * device (csum_start still points at it); across a virtual link (veth) it is
 * never completed, which the outer UDP checksum covers: a receiver's kernel
 * takes such a datagram as verified, and the daemon of a peer on the TUN path
 * writes what it decapsulates as CHECKSUM_PARTIAL, not verified again
 * (build_partial_header in native/offload.c, used by native/tun.c).
 * GSO: a GSO skb (a TCP segment larger than the path MTU, cut by the device
 * or by the kernel before the device) cannot be encapsulated here: every
 * segment needs its own UDP and payload header, and the kernel's UDP tunnel
 * segmentation needs an inner IP header our wire format does not have. So a
 * re-homed context's GSO skb is redirected, unchanged, to the daemon's TUN
 * (`tun_ifindex`): the daemon cuts it into segments, completes their
 * checksums and sends them as datagrams no larger than the path MTU (the
 * TUN path's own work). Everything smaller is encapsulated here.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_LOCATORS 8
#define ENCAP_LEN 16 /* UDP (8) + payload header (8) */

struct ulid_pair { __u8 local[16]; __u8 peer[16]; };

struct egress_value {
	__u8 local[16];   /* our locator (outer source) */
	__u8 peer[16];    /* the peer's locator (outer destination) */
	__u64 peer_tag;   /* the peer's context tag (47 bits) */
	__u16 sport;      /* network order */
	__u16 dport;      /* network order */
	__u32 pad;
};

struct ingress_value {
	__u8 local_ulid[16];
	__u8 peer_ulid[16];
	__u32 count;      /* locators in use */
	__u32 pad;
	__u8 locators[MAX_LOCATORS][16]; /* the context's verified peer locators */
};

/* A TCP flow of a watched context and the peer's last acknowledgment (the failover prompt: docs/dataplane.md). */
struct flow_key { __u8 local[16]; __u8 peer[16]; __u8 ports[4]; /* our port, the peer's, as on the wire */ };
struct flow_value {
	__u8 ack[4];   /* the peer's last acknowledgment number, as on the wire */
	__u8 hlen;     /* octets of `tcp` in use (20, or 32 with the timestamp option) */
	__u8 pad[3];
	/*
	 * The peer's last segment's TCP header as a pure ACK: sequence number after its data,
	 * flags ACK only, options the timestamp alone (else none), checksum 0. The daemon hands
	 * a copy to our own stack after a re-homing, so a sender with nothing in flight (its new
	 * data refused while the path was down, waiting for its backed-off probe timer) sends at once.
	 */
	__u8 tcp[32];
};

/* A watched context (shim6_watch's value): how many of its flows are remembered (an upper bound: see remember_flow). */
struct watch_value { __u32 flows; };

/*
 * Octets past snd_nxt an ACK may acknowledge here: across a veth the peer's ACK reaches this program
 * while our stack is still sending the segment it acknowledges, before TCP adds it to snd_nxt
 * (measured: ACKs 100 octets past snd_nxt, every one); one segment, a GSO skb at most (64 KB, and
 * 512 KB with BIG TCP). A forged ACK then passes one time in about 8,000 (2^32 / 2^19), not always.
 */
#define ACK_SLACK (1u << 19)

/* Flows one context may have remembered (bpf-encap.ts ENCAP_FLOWS_PER_CONTEXT; docs/dataplane.md). */
#define FLOWS_PER_CONTEXT 256

struct config { __u16 port; /* network order */ __u16 pad; __u32 tun_ifindex; /* the daemon's TUN (0: none) */ };

#define ETH_OFF sizeof(struct ethhdr)
#define IP6_OFF ETH_OFF
#define L4_OFF (ETH_OFF + sizeof(struct ipv6hdr))

enum {
	ST_ENCAP, ST_DECAP, ST_PASS_TAG, ST_PASS_LOCATOR, ST_UNSUPPORTED, ST_ERROR, ST_PASS_GSO, ST_TO_TUN,
	ST_FLOW_NEW,       /* a flow remembered */
	ST_FLOW_NOSOCK,    /* a segment of an unknown flow without a connected local socket: not remembered */
	ST_FLOW_FULL,      /* a new flow of a context holding FLOWS_PER_CONTEXT: not remembered */
	ST_FLOW_CLOSED,    /* a flow forgotten: our stack sent its FIN or RST */
	ST_TO_TUN_OTHER,   /* not TCP, UDP or ICMPv6 (a fragment, ESP, ...): to the daemon's TUN */
	ST_PASS_DST,       /* a payload not to a unicast address of ours: to the daemon's socket */
	ST_FLOW_FORGED,    /* a segment whose ACK is outside what its socket sent and has not had acknowledged: not remembered */
	ST_MAX
};

/*
 * Contexts the per-context maps (shim6_egr, shim6_ing, shim6_watch) hold: the daemon's maxContexts
 * (bounded), given at build (clang -DSHIM6_MAX_CONTEXTS, bpf-encap.ts buildObject). Not
 * preallocated: an entry's memory is taken when a context gets it, so a large bound costs only
 * the buckets (16 octets each) until contexts come.
 */
#ifndef SHIM6_MAX_CONTEXTS
#define SHIM6_MAX_CONTEXTS 4096
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIM6_MAX_CONTEXTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ulid_pair);
	__type(value, struct egress_value);
} shim6_egr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIM6_MAX_CONTEXTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct ingress_value);
} shim6_ing SEC(".maps");

/* Contexts on the kernel path whose TCP flows are remembered (ULID pair → how many are). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIM6_MAX_CONTEXTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ulid_pair);
	__type(value, struct watch_value);
} shim6_watch SEC(".maps");

/* Our unicast addresses (the daemon's engine's locators): only a payload to one of them is decapsulated. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct in6_addr);
	__type(value, __u8);
} shim6_local SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} shim6_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} shim6_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} shim6_stats SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&shim6_stats, &what);
	if (n) *n += 1;
}

/*
 * What the kernel's socket for a segment from the peer says of it (`wk`: our ULID, the peer's;
 * `ports`: our port, the peer's, as on the wire; `ack`: its acknowledgment number): -1 no connected
 * socket — none, a listener (what a lookup of a four-tuple no connection has finds: a segment forged
 * with the peer's ULID as its source), or one that sent its FIN (forget_flow forgot its flow then:
 * the peer's ACK of that FIN must not bring it back) —; 0 a connected one (ESTABLISHED or
 * CLOSE_WAIT: we may still send) to whom `ack` acknowledges what it never sent, or an octet it knows
 * acknowledged already (outside [snd_una, snd_nxt + ACK_SLACK], as TCP's own check of an ACK,
 * RFC 5961 §5): a forgery by whoever knows or guessed the four-tuple, or a stale segment; 1 a
 * connected one whose data `ack` may acknowledge.
 */
static __always_inline int socket_acks(struct __sk_buff *skb, const struct ulid_pair *wk, const __u8 *ports, __u32 ack)
{
	struct bpf_sock_tuple t = {};
	__builtin_memcpy(t.ipv6.saddr, wk->peer, 16);
	__builtin_memcpy(t.ipv6.daddr, wk->local, 16);
	__builtin_memcpy(&t.ipv6.sport, ports + 2, 2);
	__builtin_memcpy(&t.ipv6.dport, ports, 2);
	struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	if (!sk) return -1;
	int r = -1;
	if (sk->state == BPF_TCP_ESTABLISHED || sk->state == BPF_TCP_CLOSE_WAIT) {
		struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
		r = tp && ack - tp->snd_una <= tp->snd_nxt - tp->snd_una + ACK_SLACK;
	}
	bpf_sk_release(sk);
	return r;
}

/*
 * Remember the peer's last TCP segment of a watched context (`wk`: our ULID, the peer's; `w` its
 * shim6_watch value): its acknowledgment number and its header as a pure ACK (struct flow_value).
 * `tcp_len`: the TCP segment's length (header and data). A SYN, FIN or RST is not remembered, nor
 * a segment without ACK. A segment is remembered (a new flow, or a flow already remembered updated)
 * only when a connected local socket has its four-tuple and its ACK is within what that socket
 * sent and has not had acknowledged (socket_acks): before, any segment with a remembered flow's
 * four-tuple replaced what the peer's had left, and the prompt after a re-homing quoted a forged
 * ACK TCP drops. A new flow also needs its context to hold fewer than FLOWS_PER_CONTEXT. The count is
 * an upper bound: a flow the LRU evicted for another context's is still counted (the daemon sets
 * it to what the map holds each time it reads the context's flows); CPUs racing may pass the cap
 * by one each (the daemon prompts FLOWS_PER_CONTEXT at most).
 */
static __always_inline void remember_flow(struct __sk_buff *skb, const struct ulid_pair *wk, struct watch_value *w, __u32 tcp_len)
{
	struct flow_value fv = {};
	if (bpf_skb_load_bytes(skb, L4_OFF, fv.tcp, 32) < 0 && bpf_skb_load_bytes(skb, L4_OFF, fv.tcp, 20) < 0) return;
	__u32 doff = (fv.tcp[12] >> 4) * 4;
	if ((fv.tcp[13] & 0x07) != 0 || doff < 20 || doff > tcp_len) return;
	/* Only a segment that acknowledges: its ACK number is what is remembered. */
	if ((fv.tcp[13] & 0x10) == 0) return;
	struct flow_key fk;
	__builtin_memcpy(fk.local, wk->local, 16);
	__builtin_memcpy(fk.peer, wk->peer, 16);
	__builtin_memcpy(fk.ports, fv.tcp + 2, 2);
	__builtin_memcpy(fk.ports + 2, fv.tcp, 2);
	int known = bpf_map_lookup_elem(&shim6_flows, &fk) != 0;
	if (!known && w->flows >= FLOWS_PER_CONTEXT) {
		count(ST_FLOW_FULL);
		return;
	}
	/* Known or not, the socket checks it: one forged segment must not replace what the real ones left. */
	__u32 ack = ((__u32)fv.tcp[8] << 24) | ((__u32)fv.tcp[9] << 16) | ((__u32)fv.tcp[10] << 8) | fv.tcp[11];
	int acks = socket_acks(skb, wk, fk.ports, ack);
	if (acks < 0) {
		count(ST_FLOW_NOSOCK);
		return;
	}
	if (acks == 0) {
		count(ST_FLOW_FORGED);
		return;
	}
	/* The timestamp option first (NOP NOP TS, as Linux sends it): keep it alone; else no options. */
	fv.hlen = (doff >= 32 && fv.tcp[20] == 1 && fv.tcp[21] == 1 && fv.tcp[22] == 8 && fv.tcp[23] == 10) ? 32 : 20;
	__u32 seq = ((__u32)fv.tcp[4] << 24) | ((__u32)fv.tcp[5] << 16) | ((__u32)fv.tcp[6] << 8) | fv.tcp[7];
	seq += tcp_len - doff;
	fv.tcp[4] = seq >> 24; fv.tcp[5] = seq >> 16; fv.tcp[6] = seq >> 8; fv.tcp[7] = seq;
	fv.tcp[12] = (fv.hlen / 4) << 4;
	fv.tcp[13] = 0x10;
	fv.tcp[16] = 0; fv.tcp[17] = 0;
	__builtin_memcpy(fv.ack, fv.tcp + 8, 4);
	if (known) {
		bpf_map_update_elem(&shim6_flows, &fk, &fv, BPF_EXIST);
	} else if (bpf_map_update_elem(&shim6_flows, &fk, &fv, BPF_NOEXIST) == 0) {
		__sync_fetch_and_add(&w->flows, 1);
		count(ST_FLOW_NEW);
	}
}

/*
 * Our own stack sent a FIN or RST (egress, `l4` its TCP header's first 14 octets): the flow's
 * socket is closing or gone, and a prompt after a re-homing would only make it answer with a RST
 * (no reply comes back: REAP's Send Timer would explore). Forgotten, and no longer counted.
 */
static __always_inline void forget_flow(const struct ulid_pair *key, const __u8 *tcp)
{
	struct watch_value *w = bpf_map_lookup_elem(&shim6_watch, key);
	if (!w) return;
	struct flow_key fk;
	__builtin_memcpy(fk.local, key->local, 16);
	__builtin_memcpy(fk.peer, key->peer, 16);
	__builtin_memcpy(fk.ports, tcp, 4);
	if (bpf_map_delete_elem(&shim6_flows, &fk) == 0) {
		if (w->flows > 0) __sync_fetch_and_add(&w->flows, -1);
		count(ST_FLOW_CLOSED);
	}
}

static __always_inline __u32 fold_add(__u32 a, __u32 b)
{
	__u64 s = (__u64)a + b;
	return (__u32)((s & 0xffffffff) + (s >> 32));
}

static __always_inline __u16 fold16(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* One's complement sum (32-bit accumulator) of 16 octets. */
static __always_inline __u32 sum16(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;
	__u32 s = 0;
	s = fold_add(s, w[0]); s = fold_add(s, w[1]); s = fold_add(s, w[2]); s = fold_add(s, w[3]);
	return s;
}


SEC("tc")
int shim6_egress(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IPV6)) return TC_ACT_OK;
	/* The IPv6 header alone first: a packet whose upper layer is under 8 octets is a context's too. */
	if (bpf_skb_pull_data(skb, L4_OFF) < 0) return TC_ACT_OK;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + ETH_OFF;
	if ((void *)(ip6 + 1) > end || eth->h_proto != bpf_htons(ETH_P_IPV6)) return TC_ACT_OK;

	struct ulid_pair key;
	__builtin_memcpy(key.local, &ip6->saddr, 16);
	__builtin_memcpy(key.peer, &ip6->daddr, 16);
	__u8 nh = ip6->nexthdr;
	if (nh == IPPROTO_TCP) {
		__u8 tcp[14];
		if (bpf_skb_load_bytes(skb, L4_OFF, tcp, sizeof(tcp)) == 0 && (tcp[13] & 0x05) != 0) forget_flow(&key, tcp);
	}
	struct egress_value *v = bpf_map_lookup_elem(&shim6_egr, &key);
	if (!v) return TC_ACT_OK;

	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&shim6_cfg, &zero);
	if (!cfg) return TC_ACT_OK;
	/*
	 * A context's packet whose upper layer is under 8 octets (No Next Header, a 4-octet ICMPv6, a
	 * truncated header from a raw socket): not one the checks below can read, nor NDP (never so
	 * short). Before, it left here unencapsulated, with the ULID pair as addresses on whatever link
	 * the route onto the encapsulation points at; now to the daemon's TUN like any other it cannot
	 * encapsulate (the daemon does: the TUN path's work).
	 */
	if (skb->len < L4_OFF + 8) {
		if (cfg->tun_ifindex == 0) {
			count(ST_UNSUPPORTED);
			return TC_ACT_SHOT;
		}
		count(ST_TO_TUN_OTHER);
		return bpf_redirect(cfg->tun_ifindex, 0);
	}
	/* Never leaves with the ULIDs when it cannot be read. */
	if (bpf_skb_pull_data(skb, L4_OFF + 8) < 0) {
		count(ST_ERROR);
		return TC_ACT_SHOT;
	}
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	ip6 = data + ETH_OFF;
	__u8 *l4 = data + L4_OFF;
	if ((void *)(l4 + 8) > end) {
		count(ST_ERROR);
		return TC_ACT_SHOT;
	}
	/* The daemon's own datagrams (probes to the ULID pair) and neighbour discovery are not the application's. */
	if (nh == IPPROTO_UDP && ((struct udphdr *)l4)->source == cfg->port) return TC_ACT_OK;
	if (nh == IPPROTO_ICMPV6 && l4[0] >= 133 && l4[0] <= 137) return TC_ACT_OK;
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP && nh != IPPROTO_ICMPV6) {
		/* A fragment, ESP, an extension header...: no sum to build the outer checksum from (see the top). */
		if (cfg->tun_ifindex == 0) {
			count(ST_UNSUPPORTED);
			return TC_ACT_SHOT;
		}
		count(ST_TO_TUN_OTHER);
		return bpf_redirect(cfg->tun_ifindex, 0);
	}

	if (skb->gso_size != 0) {
		/* Larger than the path: the daemon segments and encapsulates it (see the top). */
		if (cfg->tun_ifindex == 0) {
			count(ST_ERROR);
			return TC_ACT_SHOT;
		}
		count(ST_TO_TUN);
		return bpf_redirect(cfg->tun_ifindex, 0);
	}

	__u16 plen = bpf_ntohs(ip6->payload_len);
	/* The upper-layer packet sums to ~pseudo(ULIDs, plen, nh) once its checksum is complete. */
	__u32 inner = sum16(key.local);
	inner = fold_add(inner, sum16(key.peer));
	inner = fold_add(inner, bpf_htonl((__u32)plen));
	inner = fold_add(inner, bpf_htonl((__u32)nh));
	__u32 ulp = (__u16)~fold16(inner);

	struct ipv6hdr outer = *ip6;
	__builtin_memcpy(&outer.saddr, v->local, 16);
	__builtin_memcpy(&outer.daddr, v->peer, 16);
	outer.nexthdr = IPPROTO_UDP;
	outer.payload_len = bpf_htons(plen + ENCAP_LEN);

	struct { struct udphdr udp; __u8 shim[8]; } hdr;
	hdr.udp.source = v->sport;
	hdr.udp.dest = v->dport;
	hdr.udp.len = outer.payload_len;
	hdr.udp.check = 0;
	__u64 tag = v->peer_tag;
	hdr.shim[0] = nh;
	hdr.shim[1] = 0;
	hdr.shim[2] = 0x80 | ((tag >> 40) & 0x7f);
	hdr.shim[3] = tag >> 32; hdr.shim[4] = tag >> 24; hdr.shim[5] = tag >> 16; hdr.shim[6] = tag >> 8; hdr.shim[7] = tag;

	/* UDP checksum: outer pseudo-header + UDP and payload headers + the upper-layer packet. */
	__u32 s = sum16(v->local);
	s = fold_add(s, sum16(v->peer));
	s = fold_add(s, bpf_htonl((__u32)plen + ENCAP_LEN));
	s = fold_add(s, bpf_htonl(IPPROTO_UDP));
	const __u32 *hw = (const __u32 *)&hdr;
	s = fold_add(s, hw[0]); s = fold_add(s, hw[1]); s = fold_add(s, hw[2]); s = fold_add(s, hw[3]);
	s = fold_add(s, ulp);
	__u16 c = ~fold16(s);
	hdr.udp.check = c == 0 ? 0xffff : c;

	/* Room after the IPv6 header for UDP + the payload header. */
	if (bpf_skb_adjust_room(skb, ENCAP_LEN, BPF_ADJ_ROOM_NET, 0) < 0) {
		count(ST_ERROR);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_store_bytes(skb, IP6_OFF, &outer, sizeof(outer), 0) < 0 ||
	    bpf_skb_store_bytes(skb, L4_OFF, &hdr, sizeof(hdr), 0) < 0) {
		count(ST_ERROR);
		return TC_ACT_SHOT;
	}
	count(ST_ENCAP);
	return TC_ACT_OK;
}

SEC("tc")
int shim6_ingress(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IPV6)) return TC_ACT_OK;
	if (bpf_skb_pull_data(skb, L4_OFF + ENCAP_LEN) < 0) return TC_ACT_OK;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + ETH_OFF;
	__u8 *l4 = data + L4_OFF;
	if ((void *)(l4 + 12) <= end && eth->h_proto == bpf_htons(ETH_P_IPV6) && ip6->nexthdr == IPPROTO_TCP) {
		/* A watched context on the kernel path: remember the peer's last acknowledgment per flow. */
		struct ulid_pair wk;
		__builtin_memcpy(wk.local, &ip6->daddr, 16);
		__builtin_memcpy(wk.peer, &ip6->saddr, 16);
		struct watch_value *w = bpf_map_lookup_elem(&shim6_watch, &wk);
		if (w) remember_flow(skb, &wk, w, bpf_ntohs(ip6->payload_len));
		return TC_ACT_OK;
	}
	struct udphdr *udp = data + L4_OFF;
	__u8 *shim = data + L4_OFF + sizeof(struct udphdr);
	if ((void *)(shim + 8) > end || eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6->nexthdr != IPPROTO_UDP) return TC_ACT_OK;
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&shim6_cfg, &zero);
	if (!cfg || udp->dest != cfg->port) return TC_ACT_OK;
	/* A payload header: P bit, Hdr Ext Len 0. Control messages go to the daemon. */
	if ((shim[2] & 0x80) == 0 || shim[1] != 0) return TC_ACT_OK;
	__u16 plen = bpf_ntohs(ip6->payload_len);
	if (plen < ENCAP_LEN || bpf_ntohs(udp->len) != plen) return TC_ACT_OK;

	__u64 tag = ((__u64)(shim[2] & 0x7f) << 40) | ((__u64)shim[3] << 32) | ((__u64)shim[4] << 24) |
		    ((__u64)shim[5] << 16) | ((__u64)shim[6] << 8) | shim[7];
	struct ingress_value *v = bpf_map_lookup_elem(&shim6_ing, &tag);
	if (!v) {
		count(ST_PASS_TAG);
		return TC_ACT_OK;
	}
	/*
	 * Several datagrams in one skb (the peer's daemon sent them with UDP GSO across a veth, or
	 * GRO merged them for the daemon's socket): each has its own payload header, so the skb is
	 * not one encapsulated packet, whatever the datagrams after the first carry (two contexts on
	 * one locator pair put datagrams of both tags in one run). Seen by its length: more than one
	 * datagram of gso_size octets. They go to the daemon's socket, which splits them (measured:
	 * decapsulated whole, such a burst was lost, and TCP waited for its RTO after a re-homing;
	 * with the first datagram's tag checked against the second's only, a run whose second
	 * datagram had another tag was decapsulated whole as the first one's packet and both were lost).
	 */
	if (skb->gso_size != 0 && L4_OFF + sizeof(struct udphdr) + skb->gso_size < skb->len) {
		count(ST_PASS_GSO);
		return TC_ACT_OK;
	}
	/*
	 * The destination must be a unicast address of ours (else the daemon's engine decides, and drops
	 * it: not-local). A multicast one first: never in shim6_local, and never decapsulated.
	 */
	struct in6_addr dst;
	__builtin_memcpy(&dst, &ip6->daddr, 16);
	if (dst.s6_addr[0] == 0xff || !bpf_map_lookup_elem(&shim6_local, &dst)) {
		count(ST_PASS_DST);
		return TC_ACT_OK;
	}
	/* The source must be one of the context's verified locators (else the daemon decides). */
	int found = 0;
	__u64 s0, s1;
	__builtin_memcpy(&s0, &ip6->saddr, 8);
	__builtin_memcpy(&s1, (__u8 *)&ip6->saddr + 8, 8);
#pragma clang loop unroll(full)
	for (int i = 0; i < MAX_LOCATORS; i++) {
		__u64 l0, l1;
		__builtin_memcpy(&l0, v->locators[i], 8);
		__builtin_memcpy(&l1, v->locators[i] + 8, 8);
		if (i < v->count && l0 == s0 && l1 == s1) found = 1;
	}
	if (!found) {
		count(ST_PASS_LOCATOR);
		return TC_ACT_OK;
	}

	struct ipv6hdr inner = *ip6;
	inner.nexthdr = shim[0];
	inner.payload_len = bpf_htons(plen - ENCAP_LEN);
	__builtin_memcpy(&inner.saddr, v->peer_ulid, 16);
	__builtin_memcpy(&inner.daddr, v->local_ulid, 16);

	if (bpf_skb_adjust_room(skb, -ENCAP_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO) < 0) {
		count(ST_ERROR);
		return TC_ACT_OK;
	}
	if (bpf_skb_store_bytes(skb, IP6_OFF, &inner, sizeof(inner), BPF_F_RECOMPUTE_CSUM) < 0) {
		count(ST_ERROR);
		return TC_ACT_SHOT;
	}
	if (inner.nexthdr == IPPROTO_TCP) {
		/* The peer's acknowledgments after the re-homing too: the daemon sees whether its prompt worked. */
		struct ulid_pair wk;
		__builtin_memcpy(wk.local, v->local_ulid, 16);
		__builtin_memcpy(wk.peer, v->peer_ulid, 16);
		struct watch_value *w = bpf_map_lookup_elem(&shim6_watch, &wk);
		if (w) remember_flow(skb, &wk, w, plen - ENCAP_LEN);
	}
	count(ST_DECAP);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
