/* The XDP steering program: hands each fastnet TCP frame to the XSK of the engine that
 * owns its flow and passes everything else (ARP, ICMP, IPv6, other ports) to the kernel.
 * NIC/veth RX → steer() → bpf_redirect_map(&xsks, slot) → XskDevice::rx_burst().
 * Rules in order (docs/DESIGN.md "Steering"): exact flow, active-open range, listening
 * port (the slot a flow was given at its SYN, recorded here; new flows by hash). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "steer_shared.h"

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, FASTNET_MAX_SLOTS * FASTNET_MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} xsks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, FASTNET_MAX_FLOWS);
    __type(key, struct fastnet_flow_key);
    __type(value, __u32);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, FASTNET_MAX_PASSIVE_FLOWS);
    __type(key, struct fastnet_flow_key);
    __type(value, struct fastnet_passive_rec);
} passive_flows SEC(".maps");

/* Flows a process handed over to the kernel (it exited with data still to deliver):
 * the kernel's repaired socket gets their segments. LRU: nothing removes them. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, FASTNET_MAX_KERNEL_FLOWS);
    __type(key, struct fastnet_flow_key);
    __type(value, __u32);
} kernel_flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, FASTNET_MAX_LISTEN_PORTS);
    __type(key, __u16);
    __type(value, struct fastnet_listen_slots);
} listen_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct fastnet_config);
} config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FASTNET_CNT__COUNT);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

/* Frames redirected per slot: which engine got the traffic. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FASTNET_MAX_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} slot_counters SEC(".maps");

/* Frames redirected per arrival queue. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FASTNET_MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u64);
} queue_counters SEC(".maps");

/* 802.1Q and 802.1ad; a QinQ frame carries at most two tags. */
#define VLAN_MAX_DEPTH 2
struct vlan_hdr {
    __be16 tci;
    __be16 encapsulated_proto;
};

static __always_inline int count(__u32 idx, int verdict)
{
    __u64 *c = bpf_map_lookup_elem(&counters, &idx);
    if (c)
        *c += 1;
    return verdict;
}

static __always_inline int redirect(struct xdp_md *ctx, __u32 slot, __u32 rule_counter)
{
    __u32 queue = ctx->rx_queue_index;
    if (queue >= FASTNET_MAX_QUEUES)
        return count(FASTNET_CNT_PASS_QUEUE, XDP_PASS);
    /* Every engine has an XSK on every queue it serves, each at its own index: the
     * kernel only accepts a redirect to a socket bound to the arrival queue.
     * The lower bits of flags are the action when the index is empty: an engine that
     * has gone away sends its traffic to the kernel instead of dropping it. */
    __u32 idx = queue * FASTNET_MAX_SLOTS + (slot & (FASTNET_MAX_SLOTS - 1));
    int verdict = bpf_redirect_map(&xsks, idx, XDP_PASS);
    if (verdict != XDP_REDIRECT)
        return count(FASTNET_CNT_PASS_NO_XSK, verdict);
    __u64 *c = bpf_map_lookup_elem(&slot_counters, &slot);
    if (c)
        *c += 1;
    c = bpf_map_lookup_elem(&queue_counters, &queue);
    if (c)
        *c += 1;
    return count(rule_counter, verdict);
}

/* hash(4-tuple) % n, an index into a listening port's set; n in 1..FASTNET_MAX_SLOTS. */
static __always_inline __u32 hash_index(__u32 n, struct fastnet_flow_key *key, __u32 seed)
{
    __u32 h = fastnet_flow_hash(key->remote_ip, key->local_ip, key->remote_port,
                                key->local_port, seed);
    /* h % n < n <= FASTNET_MAX_SLOTS already, but the verifier does not follow a
     * division and clang folds away a plain re-check: hide idx from the optimiser,
     * then mask (FASTNET_MAX_SLOTS is a power of two). */
    __u32 idx = h % n;
    asm volatile("" : "+r"(idx));
    return idx & (FASTNET_MAX_SLOTS - 1);
}

static __always_inline __u32 hash_slot(struct fastnet_listen_slots *ls, __u32 n,
                                       struct fastnet_flow_key *key, __u32 seed)
{
    return ls->slots[hash_index(n, key, seed)];
}

/* Whether slot's engine has a socket on the arrival queue (a process that died leaves
 * its slot in the sets until it is reaped, but the kernel removes its sockets at once). */
static __always_inline int has_xsk(struct xdp_md *ctx, __u32 slot)
{
    __u32 queue = ctx->rx_queue_index;
    if (queue >= FASTNET_MAX_QUEUES)
        return 0;
    __u32 idx = queue * FASTNET_MAX_SLOTS + (slot & (FASTNET_MAX_SLOTS - 1));
    return bpf_map_lookup_elem(&xsks, &idx) != 0;
}

/* A SYN on a listening port. A retransmitted SYN (the recorded sequence number) keeps
 * the slot recorded for its flow while that slot still serves the port (its engine may
 * hold the half-open connection). A new connection on a reused 4-tuple (a client that
 * cycles through its ephemeral ports, a proxy) is a new choice, as the kernel's
 * SO_REUSEPORT makes one: following the old record would pile every reused 4-tuple onto
 * the slots that have served longest, and a worker that joins later would starve.
 * Otherwise the hash picks one, or, when that slot's engine has no socket (its process
 * died and is not reaped yet), the next slot of the set that has one: a new flow lands
 * on a live engine, not on the kernel listener. The choice is recorded only when an
 * engine got the frame: a SYN the kernel takes leaves no record, and its flow stays the
 * kernel's. */
static __always_inline int new_passive_flow(struct xdp_md *ctx,
                                            struct fastnet_listen_slots *ls, __u32 n,
                                            struct fastnet_flow_key *key, __u32 seed,
                                            __u32 syn_seq)
{
    if (n == 0 || n > FASTNET_MAX_SLOTS) {
        bpf_map_delete_elem(&passive_flows, key);
        return count(FASTNET_CNT_PASS_NO_OWNER, XDP_PASS);
    }
    __u32 slot = FASTNET_MAX_SLOTS;
    struct fastnet_passive_rec *rec = bpf_map_lookup_elem(&passive_flows, key);
    if (rec && rec->syn_seq == syn_seq) {
        __u32 want = rec->slot;
        for (__u32 i = 0; i < FASTNET_MAX_SLOTS; i++) {
            if (i >= n)
                break;
            if (ls->slots[i] == want) {
                if (has_xsk(ctx, want))
                    slot = want;
                break;
            }
        }
    }
    __u32 counter = FASTNET_CNT_REDIRECT_LISTEN;
    if (slot == FASTNET_MAX_SLOTS) {
        __u32 first = hash_index(n, key, seed);
        slot = ls->slots[first];
        if (!has_xsk(ctx, slot)) {
            for (__u32 i = 1; i < FASTNET_MAX_SLOTS; i++) {
                if (i >= n)
                    break;
                __u32 j = first + i;
                if (j >= n)
                    j -= n;
                j &= FASTNET_MAX_SLOTS - 1;
                if (has_xsk(ctx, ls->slots[j])) {
                    slot = ls->slots[j];
                    counter = FASTNET_CNT_REDIRECT_LISTEN_NEXT;
                    break;
                }
            }
        }
    }
    int verdict = redirect(ctx, slot, counter);
    if (verdict == XDP_REDIRECT) {
        struct fastnet_passive_rec r = {.slot = slot, .syn_seq = syn_seq};
        bpf_map_update_elem(&passive_flows, key, &r, BPF_ANY);
    }
    else
        bpf_map_delete_elem(&passive_flows, key);
    return verdict;
}

SEC("xdp")
int steer(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return count(FASTNET_CNT_PASS_TRUNC_ETH, XDP_PASS);
    __be16 proto = eth->h_proto;
    void *l3 = eth + 1;

#pragma unroll
    for (int i = 0; i < VLAN_MAX_DEPTH; i++) {
        if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
            break;
        struct vlan_hdr *vh = l3;
        if ((void *)(vh + 1) > data_end)
            return count(FASTNET_CNT_PASS_TRUNC_ETH, XDP_PASS);
        proto = vh->encapsulated_proto;
        l3 = vh + 1;
    }

    if (proto != bpf_htons(ETH_P_IP)) {
        if (proto == bpf_htons(ETH_P_ARP))
            return count(FASTNET_CNT_PASS_ARP, XDP_PASS);
        if (proto == bpf_htons(ETH_P_IPV6))
            return count(FASTNET_CNT_PASS_IPV6, XDP_PASS);
        return count(FASTNET_CNT_PASS_OTHER_ETHERTYPE, XDP_PASS);
    }

    struct iphdr *ip = l3;
    if ((void *)(ip + 1) > data_end)
        return count(FASTNET_CNT_PASS_TRUNC_IP, XDP_PASS);
    if (ip->version != 4 || ip->ihl < 5)
        return count(FASTNET_CNT_PASS_BAD_HEADER, XDP_PASS);
    __u32 ip_len = ip->ihl * 4;
    if (l3 + ip_len > data_end)
        return count(FASTNET_CNT_PASS_TRUNC_IP, XDP_PASS);
    /* RFC 791: MF set or a non-zero offset; only the first fragment has the ports,
     * and the kernel reassembles better than an engine would. */
    if (ip->frag_off & bpf_htons(0x3fff))
        return count(FASTNET_CNT_PASS_FRAGMENT, XDP_PASS);
    if (ip->protocol != IPPROTO_TCP)
        return count(FASTNET_CNT_PASS_NOT_TCP, XDP_PASS);

    struct tcphdr *tcp = l3 + ip_len;
    if ((void *)(tcp + 1) > data_end)
        return count(FASTNET_CNT_PASS_TRUNC_TCP, XDP_PASS);
    if (tcp->doff < 5)
        return count(FASTNET_CNT_PASS_BAD_HEADER, XDP_PASS);

    __u32 zero = 0;
    struct fastnet_config *cfg = bpf_map_lookup_elem(&config, &zero);
    if (!cfg)
        return count(FASTNET_CNT_PASS_NO_OWNER, XDP_PASS);
    if (cfg->local_ip && cfg->local_ip != ip->daddr)
        return count(FASTNET_CNT_PASS_NOT_LOCAL, XDP_PASS);

    /* Rule 1: an exact flow (a flow moved to another engine). */
    struct fastnet_flow_key key = {
        .remote_ip = ip->saddr,
        .local_ip = ip->daddr,
        .remote_port = tcp->source,
        .local_port = tcp->dest,
    };
    /* Rule 0: a flow handed over to the kernel. A SYN is a new incarnation of the
     * 4-tuple and goes on to the other rules. */
    if (cfg->handovers) {
        __u32 *handed = bpf_map_lookup_elem(&kernel_flows, &key);
        if (handed) {
            if (!(tcp->syn && !tcp->ack))
                return count(FASTNET_CNT_PASS_HANDED_OVER, XDP_PASS);
            bpf_map_delete_elem(&kernel_flows, &key);
        }
    }

    __u32 *flow_slot = bpf_map_lookup_elem(&flows, &key);
    if (flow_slot) {
        if (*flow_slot == FASTNET_SLOT_PARKED)
            return count(FASTNET_CNT_DROP_PARKED, XDP_DROP);
        return redirect(ctx, *flow_slot, FASTNET_CNT_REDIRECT_FLOW);
    }

    /* Rule 2: the owner is encoded in the local port of an active open. */
    __u16 dport = bpf_ntohs(tcp->dest);
    __u32 nslots = cfg->ao_nslots;
    if (nslots && dport >= cfg->ao_base && (__u32)dport - cfg->ao_base < cfg->ao_count)
        return redirect(ctx, ((__u32)dport - cfg->ao_base) % nslots, FASTNET_CNT_REDIRECT_ACTIVE);

    /* Rule 3: a listening port. A new flow (a SYN) goes to a slot of the port's set by
     * flow hash, and the slot is recorded for the flow; its later segments follow the
     * record, so a change of the set (a fork, a worker joining or leaving, a dead slot
     * reaped) never moves a live connection. */
    struct fastnet_listen_slots *ls = bpf_map_lookup_elem(&listen_ports, &dport);
    if (tcp->syn && !tcp->ack) {
        if (ls)
            return new_passive_flow(ctx, ls, ls->count, &key, cfg->hash_seed,
                                    bpf_ntohl(tcp->seq));
        return count(FASTNET_CNT_PASS_NO_OWNER, XDP_PASS);
    }
    /* The record outlives the port's listeners: a connection accepted on a listener
     * that has since closed (socat without fork, a process finishing its transfers)
     * still reaches its engine. */
    struct fastnet_passive_rec *rec = bpf_map_lookup_elem(&passive_flows, &key);
    if (rec)
        return redirect(ctx, rec->slot, FASTNET_CNT_REDIRECT_PASSIVE);
    if (ls) {
        __u32 n = ls->count;
        /* Not recorded. A listening port is also listened on by the kernel (loopback
         * clients, and any SYN that found no engine: an empty set while workers start, a
         * dead slot), and its connections keep their packets (a TIME-WAIT does not count:
         * the 4-tuple may be fastnet's now). */
        struct bpf_sock_tuple t = {};
        t.ipv4.saddr = ip->saddr;
        t.ipv4.daddr = ip->daddr;
        t.ipv4.sport = tcp->source;
        t.ipv4.dport = tcp->dest;
        struct bpf_sock *sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
        if (sk) {
            __u32 state = sk->state;
            bpf_sk_release(sk);
            if (state != BPF_TCP_LISTEN && state != BPF_TCP_TIME_WAIT)
                return count(FASTNET_CNT_PASS_KERNEL_FLOW, XDP_PASS);
        }
        /* A record lost to eviction (the map is full of fresher flows): the hash still
         * finds the owner unless the set changed since the SYN. Counted either way. */
        if (n == 0 || n > FASTNET_MAX_SLOTS)
            return count(FASTNET_CNT_PASS_NO_OWNER, XDP_PASS);
        return redirect(ctx, hash_slot(ls, n, &key, cfg->hash_seed), FASTNET_CNT_REDIRECT_LISTEN_MISS);
    }

    /* Rule 4: not ours. */
    return count(FASTNET_CNT_PASS_NO_OWNER, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
