/* Shared between the XDP steering program (steer.bpf.c) and its loader
 * (stack/xdp/steering.cpp): map layouts, limits, counter indices and the flow hash.
 * Restricted C that also compiles as C++: no designated-initialiser tricks, no VLAs. */
#ifndef FASTNET_XDP_STEER_SHARED_H
#define FASTNET_XDP_STEER_SHARED_H

#include <linux/types.h>

/* XSKMAP size: slot numbers are 0 .. FASTNET_MAX_SLOTS-1 (one per engine).
 * A power of two: the program masks slot indices with it. */
#define FASTNET_MAX_SLOTS 64
/* An exact flow entry naming no slot: the connection is on its way from one process
 * image to another (SCM_RIGHTS, exec); its frames are dropped until the receiver steers
 * it to its own slot, and the peer retransmits them. */
#define FASTNET_SLOT_PARKED 0xffffu
/* RX queues the program redirects from: the XSKMAP holds one socket per (queue, slot),
 * at index queue * FASTNET_MAX_SLOTS + slot (the kernel delivers a redirected frame only
 * to an XSK bound to the queue it arrived on). A frame from a higher queue is passed. */
#define FASTNET_MAX_QUEUES 16
/* Exact-flow entries (flows moved between engines); preallocated by the kernel. */
#define FASTNET_MAX_FLOWS 65536
/* Passive flows: the slot each new flow on a listening port was given at its SYN.
 * An LRU map written by the program itself: live flows refresh their entry with every
 * segment, so a full map evicts dead flows (closed, never completed) first. */
#define FASTNET_MAX_PASSIVE_FLOWS 131072
/* Flows handed over to the kernel (TCP_REPAIR) while the program stays attached. */
#define FASTNET_MAX_KERNEL_FLOWS 16384
/* Distinct listening ports. */
#define FASTNET_MAX_LISTEN_PORTS 1024

/* Key of the exact-flow map: the 4-tuple as the frame carries it, network byte order.
 * remote = the frame's source, local = its destination. 12 bytes, no padding. */
struct fastnet_flow_key {
    __u32 remote_ip;
    __u32 local_ip;
    __u16 remote_port;
    __u16 local_port;
};

/* Value of the listening-port map (key: local port, HOST byte order, __u16).
 * A new flow goes to slots[hash(4-tuple) % count]. Replaced as a whole on update,
 * so the program never sees a half-written set. */
/* A passive flow's record: the slot its SYN was given, and that SYN's sequence number
 * (a retransmission carries the same one; a new connection on a reused 4-tuple does not). */
struct fastnet_passive_rec {
    __u32 slot;
    __u32 syn_seq;
};

struct fastnet_listen_slots {
    __u32 count;
    __u32 slots[FASTNET_MAX_SLOTS];
};

/* The single entry of the config array map. Ports in HOST byte order. */
struct fastnet_config {
    /* Active opens: local ports [ao_base, ao_base + ao_count) belong to fastnet and
     * the owner slot is (port - ao_base) % ao_nslots (Fastsocket's RFD encoding).
     * ao_count == 0 or ao_nslots == 0 disables the rule. */
    __u16 ao_base;
    __u16 ao_count;
    __u32 ao_nslots;
    /* Network byte order; 0 = steer whatever destination address. */
    __u32 local_ip;
    __u32 hash_seed;
    /* Non-zero once a flow was handed over to the kernel: only then does the program
     * look flows up in kernel_flows. */
    __u32 handovers;
};

/* One per-CPU counter per verdict. The loader sums them over CPUs. */
#define FASTNET_STEER_COUNTERS(X)                                                  \
    X(REDIRECT_FLOW, "redirect: exact flow")                                       \
    X(REDIRECT_ACTIVE, "redirect: active-open port range")                         \
    X(REDIRECT_LISTEN, "redirect: listening port, new flow (SYN)")                 \
    X(REDIRECT_PASSIVE, "redirect: listening port, the flow's recorded slot")      \
    X(REDIRECT_LISTEN_MISS, "redirect: listening port, flow not recorded (hashed)")\
    X(REDIRECT_LISTEN_NEXT, "redirect: listening port, new flow, hashed slot had no socket")\
    X(PASS_NO_XSK, "pass: owner slot has no socket")                               \
    X(PASS_NO_OWNER, "pass: no rule owns the port")                                \
    X(PASS_NOT_LOCAL, "pass: destination is not the configured address")           \
    X(PASS_ARP, "pass: ARP")                                                       \
    X(PASS_IPV6, "pass: IPv6")                                                     \
    X(PASS_OTHER_ETHERTYPE, "pass: other ethertype")                               \
    X(PASS_NOT_TCP, "pass: IPv4 but not TCP")                                      \
    X(PASS_FRAGMENT, "pass: IPv4 fragment")                                        \
    X(PASS_BAD_HEADER, "pass: bad IPv4/TCP header length or version")             \
    X(PASS_TRUNC_ETH, "pass: truncated Ethernet/VLAN header")                     \
    X(PASS_TRUNC_IP, "pass: truncated IPv4 header")                                \
    X(PASS_TRUNC_TCP, "pass: truncated TCP header")                                \
    X(PASS_KERNEL_FLOW, "pass: the kernel has a connection for the flow")            \
    X(PASS_HANDED_OVER, "pass: flow handed over to the kernel")                   \
    X(PASS_QUEUE, "pass: arrived on a queue beyond FASTNET_MAX_QUEUES")             \
    X(DROP_PARKED, "drop: flow between two processes (retransmitted once it arrives)")

enum fastnet_steer_counter {
#define FASTNET_X_ENUM(name, text) FASTNET_CNT_##name,
    FASTNET_STEER_COUNTERS(FASTNET_X_ENUM)
#undef FASTNET_X_ENUM
    FASTNET_CNT__COUNT
};

/* Bob Jenkins' lookup3 final mix (public domain), as the kernel's jhash_3words uses.
 * Both sides compute it on the raw network-order header words, so user space can
 * predict the slot the program will choose. */
static inline __u32 fastnet_rol32(__u32 w, unsigned s) { return (w << s) | (w >> (32 - s)); }

static inline __u32 fastnet_flow_hash(__u32 remote_ip, __u32 local_ip, __u16 remote_port,
                                      __u16 local_port, __u32 seed)
{
    __u32 a = remote_ip + 0xdeadbeefu + seed;
    __u32 b = local_ip + 0xdeadbeefu + seed;
    __u32 c = (((__u32)remote_port << 16) | local_port) + 0xdeadbeefu + seed;
    c ^= b; c -= fastnet_rol32(b, 14);
    a ^= c; a -= fastnet_rol32(c, 11);
    b ^= a; b -= fastnet_rol32(a, 25);
    c ^= b; c -= fastnet_rol32(b, 16);
    a ^= c; a -= fastnet_rol32(c, 4);
    b ^= a; b -= fastnet_rol32(a, 14);
    c ^= b; c -= fastnet_rol32(b, 24);
    return c;
}

#endif
