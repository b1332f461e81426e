// The engine's neighbour cache: a copy of the kernel's IPv4 neighbour (ARP) table for one
// interface, kept current from rtnetlink notifications. TCP output → resolve() (a hash
// lookup, no syscall); engine poll loop → poll_updates() (drains notifications, sends the
// kernel resolution requests that resolve() queued). ARP itself stays with the kernel.
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/engine.hpp"
#include "stack/net/netlink.hpp"
#include "stack/net/route.hpp"

namespace fastnet {

class NeighbourCache final : public Neighbours {
public:
    struct Config {
        uint32_t capacity = 4096;                // table slots (rounded up to a power of 2)
        uint32_t max_pending = 256;              // misses waiting for poll_updates()
        // At most one resolution request per address per interval; 1 s is the kernel's
        // default ARP retransmit time (net.ipv4.neigh.*.retrans_time_ms).
        TimeNs request_interval = 1'000'000'000;
    };
    struct Stats {
        uint64_t hits = 0, misses = 0;
        uint64_t updates = 0;            // RTM_NEWNEIGH/RTM_DELNEIGH applied
        uint64_t requests_sent = 0;      // RTM_NEWNEIGH + NTF_USE
        uint64_t request_errors = 0;     // refused by the kernel (nack)
        uint64_t table_full = 0;         // entries not stored: capacity reached
        uint64_t resyncs = 0;            // full re-dumps after lost notifications
    };

    NeighbourCache();
    explicit NeighbourCache(const Config& cfg);
    ~NeighbourCache() override;
    NeighbourCache(const NeighbourCache&) = delete;
    NeighbourCache& operator=(const NeighbourCache&) = delete;

    // Subscribes to neighbour notifications, then loads the kernel's table for
    // `ifindex`. 0 or -errno.
    int open(int ifindex);
    void close();

    // Host-order next hop → MAC. false means "not yet": the address is queued for a
    // kernel resolution request (sent by the next poll_updates()) and the caller retries.
    // Usable kernel states: REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP.
    bool resolve(uint32_t next_hop_ip, uint8_t mac_out[6]) override;
    // By the interface's specific routes (route.hpp interface_routes), loaded at open()
    // and again whenever the kernel announces a route change.
    uint32_t next_hop(uint32_t dst_ip) const override {
        return routes_.empty() ? 0 : route_next_hop(routes_, dst_ip);
    }

    // Applies queued notifications and sends queued requests (rate-limited per address).
    // Call from the poll loop; cheap when nothing is queued (one recv that says EAGAIN).
    // Returns notifications applied, or -errno.
    int poll_updates(TimeNs now);
    // Whether a lookup missed since the last poll_updates(): a sender waits for the
    // resolution request it queued (a STALE entry's refresh is no hurry: it has a MAC).
    bool missed() const { return missed_; }

    // Readable when notifications are queued: for the engine's epoll set.
    int fd() const { return nl_.fd(); }
    int ifindex() const { return ifindex_; }
    size_t size() const { return used_; }
    const Stats& stats() const { return stats_; }
    // The kernel state (NUD_*) last seen for ip; -1 when not in the cache. Diagnostics.
    int state_of(uint32_t ip) const;

private:
    struct Entry {
        uint32_t ip;             // host order; 0 marks an empty slot
        uint16_t nud;            // kernel NUD_* state; 0 (NUD_NONE) when only requested
        bool has_mac;
        bool queued;             // in pending_
        uint8_t mac[6];
        TimeNs last_request;     // 0: never requested
    };

    Entry* find(uint32_t ip) const;
    Entry* insert(uint32_t ip);
    void erase(Entry* e);
    void queue_request(Entry* e);
    void apply(const nlmsghdr* h);
    int load_table();
    int send_request(uint32_t ip);
    static bool on_message(const nlmsghdr* h, void* self);

    Config cfg_;
    NetlinkSocket nl_;
    int ifindex_ = 0;
    Entry* slots_ = nullptr;
    uint32_t mask_ = 0;
    size_t used_ = 0;
    uint32_t* pending_ = nullptr;
    uint32_t npending_ = 0;
    bool missed_ = false;
    int updates_in_drain_ = 0;
    bool routes_changed_ = false;
    std::vector<Ipv4Route> routes_;
    Stats stats_;
};

}  // namespace fastnet
