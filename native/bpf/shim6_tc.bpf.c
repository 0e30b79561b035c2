/*
 * shim6's kernel path (docs/dataplane.md "Kernel path"): two tc programs
 * (clsact egress and ingress of each interface carrying a locator) that count
 * the application's packets of each context while its locator pair is its
 * ULID pair, so the daemon learns from the kernel whether packets flow (REAP,
 * RFC 5534) without routing them through user space.
 *
 * Map `contexts`: key = (our ULID, peer ULID), value = packet counters. The
 * daemon adds a key when a context goes native and removes it when the
 * context leaves that state; it reads the counters on its REAP clock. Packets
 * of no context, the daemon's own UDP (map `config`: its port) and neighbour
 * discovery pass uncounted. Both programs always return TC_ACT_OK.
 *
 * Built by clang -target bpf (scripts/build-bpf.mjs), loaded by bpftool,
 * attached by tc; see shim/dataplane/kernel-path.ts.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct ctx_key {
	__u8 local[16];
	__u8 peer[16];
};

struct ctx_counters {
	__u64 out_packets;
	__u64 in_packets;
	__u64 out_bytes;
	__u64 in_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ctx_key);
	__type(value, struct ctx_counters);
} contexts SEC(".maps");

/* Index 0: the daemon's UDP port (its own messages and encapsulated payload are not the application's). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} config SEC(".maps");

/*
 * Not the application's packets of the context: the daemon's UDP (its control
 * messages and encapsulated payload) and neighbour discovery (ICMPv6 133-137,
 * which never enters the TUN either).
 */
static __always_inline int not_payload(struct __sk_buff *skb, struct ipv6hdr *ip6)
{
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		__u8 *type = (void *)(ip6 + 1);
		if ((void *)(type + 1) > (void *)(long)skb->data_end)
			return 1;
		return *type >= 133 && *type <= 137;
	}
	if (ip6->nexthdr != IPPROTO_UDP)
		return 0;
	struct udphdr *udp = (void *)(ip6 + 1);
	if ((void *)(udp + 1) > (void *)(long)skb->data_end)
		return 1; /* a UDP header we cannot see: do not count it */
	__u32 zero = 0;
	__u32 *port = bpf_map_lookup_elem(&config, &zero);
	__u16 p = bpf_htons(port && *port ? (__u16)*port : 5533);
	return udp->source == p || udp->dest == p;
}

static __always_inline struct ipv6hdr *ipv6_of(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return 0;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > end)
		return 0;
	return ip6;
}

SEC("tc")
int shim6_egress(struct __sk_buff *skb)
{
	struct ipv6hdr *ip6 = ipv6_of(skb);
	if (!ip6)
		return TC_ACT_OK;
	struct ctx_key k;
	__builtin_memcpy(k.local, &ip6->saddr, 16);
	__builtin_memcpy(k.peer, &ip6->daddr, 16);
	struct ctx_counters *c = bpf_map_lookup_elem(&contexts, &k);
	if (c && !not_payload(skb, ip6)) {
		__sync_fetch_and_add(&c->out_packets, 1);
		__sync_fetch_and_add(&c->out_bytes, skb->len);
	}
	return TC_ACT_OK;
}

SEC("tc")
int shim6_ingress(struct __sk_buff *skb)
{
	struct ipv6hdr *ip6 = ipv6_of(skb);
	if (!ip6)
		return TC_ACT_OK;
	struct ctx_key k;
	__builtin_memcpy(k.local, &ip6->daddr, 16);
	__builtin_memcpy(k.peer, &ip6->saddr, 16);
	struct ctx_counters *c = bpf_map_lookup_elem(&contexts, &k);
	if (c && !not_payload(skb, ip6)) {
		__sync_fetch_and_add(&c->in_packets, 1);
		__sync_fetch_and_add(&c->in_bytes, skb->len);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
