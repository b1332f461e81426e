// Loader and control plane of the XDP steering program (xdp_prog/steer.bpf.c): loads the
// embedded object, attaches it through a bpf_link, edits its maps, reads its counters.
// Engine setup → Steering::attach() / set_xsk() / add_listen_slot(); stats → read_counters().
#pragma once

#include <cstddef>
#include <cstdint>

#include "xdp_prog/steer_shared.h"

struct fastnet_steer;

namespace fastnet {

// A flow as the program sees an arriving frame: remote = source, local = destination.
// Addresses in network byte order (as in sockaddr_in), ports in host byte order.
struct FlowTuple {
    uint32_t remote_ip = 0;
    uint32_t local_ip = 0;
    uint16_t remote_port = 0;
    uint16_t local_port = 0;
};

enum class XdpAttachMode {
    Native,   // driver mode, fail if the driver has none
    Generic,  // skb mode: works everywhere, slow
    Auto,     // native, else generic
};

struct SteerCounters {
    uint64_t verdict[FASTNET_CNT__COUNT] = {};    // by enum fastnet_steer_counter
    uint64_t slot[FASTNET_MAX_SLOTS] = {};         // frames redirected to each slot
    uint64_t queue[FASTNET_MAX_QUEUES] = {};       // frames redirected from each RX queue
};

// One per process (forked children inherit it: map and link fds are shared). Map edits
// from several processes at once must be serialised by the caller.
class Steering {
public:
    Steering() = default;
    ~Steering();
    Steering(const Steering&) = delete;
    Steering& operator=(const Steering&) = delete;

    // Opens and loads the program embedded at build time. 0 or -errno (see error()).
    int load();
    // load() if needed, then attach to ifindex through a bpf_link: the program goes away
    // when the last fd of the link closes, so a killed process leaves nothing behind.
    int attach(int ifindex, XdpAttachMode mode = XdpAttachMode::Native);
    void detach();
    void close();  // detach and unload

    bool loaded() const { return skel_ != nullptr || adopted_[0] >= 0; }

    // fastnetd hands its program to clients as fds: the maps (kMapCount, in a fixed
    // order) and the bpf_link, which keeps the program attached while any client still
    // holds it. adopt() takes the fds over; the adopting process edits the maps
    // (no privilege needed for that through an fd) but never loads or attaches.
    static constexpr int kMapCount = 9;
    int export_fds(int* maps, int* link) const;
    int adopt(const int* maps, int link, int ifindex, bool native);
    bool attached() const { return link_fd_ >= 0; }
    bool attached_native() const { return attached() && native_; }
    int ifindex() const { return ifindex_; }
    int prog_fd() const;

    // Rule 2: local ports [base, base+count) are active opens of slot (port-base) % nslots.
    // count == 0 disables the rule.
    int set_active_range(uint16_t base, uint16_t count, uint32_t nslots);
    // Only frames to this address are steered (network order); 0 = any address.
    int set_local_ip(uint32_t ip_be);
    int set_hash_seed(uint32_t seed);
    uint32_t hash_seed() const;

    // Rule 3: slot joins / leaves the set that serves a listening port (new flows only:
    // a flow keeps the slot recorded at its SYN). Adding a slot
    // twice is a no-op; removing the last slot removes the port.
    int add_listen_slot(uint16_t port, uint32_t slot);
    int remove_listen_slot(uint16_t port, uint32_t slot);
    // The port's slot set in order; returns its size (or -errno; 0 if not listening).
    int listen_slots(uint16_t port, uint32_t* out, size_t n) const;

    // Rule 1: an exact flow, for a flow moved to another engine.
    int add_flow(const FlowTuple& flow, uint32_t slot);
    int remove_flow(const FlowTuple& flow);

    // Rule 3's record: the slot a flow on a listening port was given at its SYN (the
    // program writes it; nothing else needs to). 0, or -ENOENT when not recorded.
    int passive_flow_slot(const FlowTuple& flow, uint32_t* slot) const;
    // The exact entry's slot (FASTNET_SLOT_PARKED: a flow between two processes).
    int flow_slot(const FlowTuple& flow, uint32_t* slot) const;

    // Rule 0: the flow's segments go to the kernel (its connection was handed over with
    // TCP_REPAIR); a SYN of the same 4-tuple clears it. Caller serialises like the others.
    int add_kernel_flow(const FlowTuple& flow);

    // A slot's holder is gone: the slot leaves every listening port and every exact
    // flow, and its XSKMAP entry is cleared. Returns the number of entries removed.
    // Passive-flow records naming the slot stay until evicted or overwritten by a SYN:
    // their segments find no socket (kernel fallback) or, once the slot is claimed again,
    // an engine that does not know the flow; either answers with a RST, as a dead
    // kernel socket's peer would get.
    int forget_slot(uint32_t slot);

    // The XSKMAP: which socket receives a slot's frames arriving on an RX queue (each
    // engine has one XSK per queue). clear_xsk() clears the slot on every queue.
    int set_xsk(uint32_t slot, int xsk_fd, uint32_t queue = 0);
    int clear_xsk(uint32_t slot);

    int read_counters(SteerCounters& out) const;
    static const char* counter_name(unsigned idx);

    // The slot rule 3 picks for a flow, given the port's slot set: what the program
    // computes, for tests and for an engine that wants to know where a flow lands.
    static uint32_t listen_slot_for(const FlowTuple& flow, uint32_t seed,
                                    const uint32_t* slots, uint32_t count);

    const char* error() const { return err_; }

private:
    int fail(int err, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
    int read_config(struct fastnet_config& cfg) const;
    int write_config(const struct fastnet_config& cfg);
    int map_fd(int which) const;

    struct fastnet_steer* skel_ = nullptr;
    int adopted_[kMapCount] = {-1, -1, -1, -1, -1, -1, -1, -1, -1};
    int link_fd_ = -1;
    int ifindex_ = 0;
    bool native_ = false;
    char err_[256] = {};
};

}  // namespace fastnet
