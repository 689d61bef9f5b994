// What exact per-source counting costs in the kernel: an XDP program on the victim's veth that
// keeps, per IPv4 source of a TCP SYN, five rate windows of 8 buckets (the shipped rules' SYN
// path: 100 ms, 1 s, 1 s, 10 s, 10 s) in a BPF hash map, and tests each against a threshold.
// Not part of autoblock: benches/xdp-count.sh builds it (clang -target bpf) to price issue 10's
// "count in the kernel" option against the user-space engine.
//   COUNT=0            parse only (the floor: the program's call and bpf_stats' own clock reads)
//   COUNT=1            LRU hash, bpf_ktime_get_ns per packet
//   COUNT=1 PLAIN=1    preallocated hash, the coarse clock
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define BUCKETS 8
// Five rate windows as in the shipped rules' TCP SYN path: 100 ms, 1 s, 1 s, 10 s, 10 s
// (the last two stand in for the distinct-count rules' clocks); u16 cells.
struct rec {
    __u32 head[3];          // newest bucket of each clock
    __u32 pad;
    __u16 cells[5][BUCKETS];
    __u64 fired;
};

struct {
#if PLAIN
    __uint(type, BPF_MAP_TYPE_HASH);
#else
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
#endif
    __uint(max_entries, 1 << 20);
    __type(key, __u32);
    __type(value, struct rec);
} src_map SEC(".maps");

static __always_inline void advance(struct rec *r, int k, __u32 b, int w0, int w1) {
    __u32 head = r->head[k];
    __s32 d = (__s32)(b - head);
    if (d <= 0 && d > -BUCKETS) return;
    __u32 steps = d > 0 && d < BUCKETS ? (__u32)d : BUCKETS;
    r->head[k] = b;
#pragma unroll
    for (__u32 i = 0; i < BUCKETS; i++) {
        // Bucket i is passed when it lies within head+1 .. head+steps (mod 8).
        if (((i - head - 1) & (BUCKETS - 1)) < steps) {
            r->cells[w0][i] = 0;
            if (w1 >= 0) r->cells[w1][i] = 0;
        }
    }
}

static __always_inline __u32 add(struct rec *r, int w, __u32 i) {
    r->cells[w][i & (BUCKETS - 1)] += 1;
    __u32 s = 0;
#pragma unroll
    for (int j = 0; j < BUCKETS; j++) s += r->cells[w][j];
    return s;
}

SEC("xdp")
int count(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP) return XDP_PASS;
    struct tcphdr *tcp = (void *)ip + ip->ihl * 4;
    if ((void *)(tcp + 1) > end || !tcp->syn) return XDP_PASS;
#if COUNT
    __u32 key = ip->saddr;
    struct rec *r = bpf_map_lookup_elem(&src_map, &key);
    if (!r) {
        struct rec z = {};
        bpf_map_update_elem(&src_map, &key, &z, BPF_NOEXIST);
        r = bpf_map_lookup_elem(&src_map, &key);
        if (!r) return XDP_PASS;
    }
#if PLAIN
    __u64 now = bpf_ktime_get_coarse_ns();
#else
    __u64 now = bpf_ktime_get_ns();
#endif
    __u32 b0 = now / 12500000, b1 = now / 125000000, b2 = now / 1250000000;
    advance(r, 0, b0, 0, -1);
    advance(r, 1, b1, 1, 2);
    advance(r, 2, b2, 3, 4);
    __u64 f = 0;
    f |= add(r, 0, b0) > 24;
    f |= (__u64)(add(r, 1, b1) > 28) << 1;
    f |= (__u64)(add(r, 2, b1) > 3000) << 2;
    f |= (__u64)(add(r, 3, b2) > 60) << 3;
    f |= (__u64)(add(r, 4, b2) > 60) << 4;
    r->fired |= f;
#endif
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
