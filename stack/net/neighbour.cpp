// NeighbourCache: an open-addressing table of the kernel's neighbours on one interface.
// open() → load_table() (RTM_GETNEIGH dump); poll_updates() → drain → apply() per
// RTM_NEWNEIGH/RTM_DELNEIGH, then send_request() (RTM_NEWNEIGH + NTF_USE) per queued miss.
#include "stack/net/neighbour.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <linux/neighbour.h>

namespace fastnet {
namespace {

constexpr uint16_t kUsable =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;

uint32_t round_pow2(uint32_t n) {
    uint32_t p = 16;
    while (p < n && p < (1u << 30)) p <<= 1;
    return p;
}

// Fibonacci hashing: addresses of one subnet differ in the low bits only.
inline uint32_t hash_ip(uint32_t ip) { return ip * 0x9E3779B1u; }

}  // namespace

NeighbourCache::NeighbourCache() : NeighbourCache(Config{}) {}
NeighbourCache::NeighbourCache(const Config& cfg) : cfg_(cfg) {}
NeighbourCache::~NeighbourCache() { close(); }

void NeighbourCache::close() {
    nl_.close();
    std::free(slots_);
    std::free(pending_);
    slots_ = nullptr;
    pending_ = nullptr;
    used_ = npending_ = 0;
    mask_ = 0;
}

int NeighbourCache::open(int ifindex) {
    close();
    ifindex_ = ifindex;
    uint32_t cap = round_pow2(cfg_.capacity);
    slots_ = static_cast<Entry*>(std::calloc(cap, sizeof(Entry)));
    pending_ = static_cast<uint32_t*>(std::calloc(cfg_.max_pending ? cfg_.max_pending : 1,
                                                  sizeof(uint32_t)));
    if (!slots_ || !pending_) {
        close();
        return -ENOMEM;
    }
    mask_ = cap - 1;
    // Subscribe before the dump so no change between the two is missed.
    int rc = nl_.open(RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE, /*nonblocking=*/true);
    if (rc < 0) {
        close();
        return rc;
    }
    rc = load_table();
    if (rc < 0) {
        close();
        return rc;
    }
    interface_routes(ifindex_, &routes_);   // none: the engine's subnet and gateway
    return 0;
}

NeighbourCache::Entry* NeighbourCache::find(uint32_t ip) const {
    if (!slots_ || ip == 0) return nullptr;
    for (uint32_t i = hash_ip(ip) & mask_;; i = (i + 1) & mask_) {
        Entry* e = &slots_[i];
        if (e->ip == ip) return e;
        if (e->ip == 0) return nullptr;
    }
}

NeighbourCache::Entry* NeighbourCache::insert(uint32_t ip) {
    if (Entry* e = find(ip)) return e;
    // Keep the load factor at or under 3/4 so probe sequences stay short and end.
    if (!slots_ || ip == 0 || (used_ + 1) * 4 > (size_t(mask_) + 1) * 3) {
        ++stats_.table_full;
        return nullptr;
    }
    uint32_t i = hash_ip(ip) & mask_;
    while (slots_[i].ip != 0) i = (i + 1) & mask_;
    slots_[i] = Entry{};
    slots_[i].ip = ip;
    ++used_;
    return &slots_[i];
}

// Backward-shift deletion (no tombstones): later entries of the same probe run move up.
void NeighbourCache::erase(Entry* e) {
    uint32_t hole = static_cast<uint32_t>(e - slots_);
    slots_[hole].ip = 0;
    --used_;
    for (uint32_t j = (hole + 1) & mask_; slots_[j].ip != 0; j = (j + 1) & mask_) {
        uint32_t home = hash_ip(slots_[j].ip) & mask_;
        // Move j into the hole unless its home lies cyclically in (hole, j].
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays) continue;
        slots_[hole] = slots_[j];
        slots_[j].ip = 0;
        hole = j;
    }
}

void NeighbourCache::queue_request(Entry* e) {
    if (e->queued || npending_ >= cfg_.max_pending) return;
    e->queued = true;
    pending_[npending_++] = e->ip;
}

bool NeighbourCache::resolve(uint32_t ip, uint8_t mac_out[6]) {
    Entry* e = find(ip);
    if (e && e->has_mac && (e->nud & kUsable)) {
        ++stats_.hits;
        std::memcpy(mac_out, e->mac, 6);
        // The kernel re-confirms a STALE entry only when it sees traffic use it, and our
        // traffic bypasses it: ask it to (STALE → DELAY → PROBE → REACHABLE).
        if (e->nud == NUD_STALE) queue_request(e);
        return true;
    }
    ++stats_.misses;
    if (!e) e = insert(ip);
    if (e) {
        queue_request(e);
        missed_ = true;   // a sender waits for this one: the next poll sends the request
    }
    return false;
}

int NeighbourCache::state_of(uint32_t ip) const {
    const Entry* e = find(ip);
    return e ? e->nud : -1;
}

void NeighbourCache::apply(const nlmsghdr* h) {
    if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)) &&
            static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error != 0)
            ++stats_.request_errors;
        return;
    }
    if (h->nlmsg_type == RTM_NEWROUTE || h->nlmsg_type == RTM_DELROUTE) {
        routes_changed_ = true;   // reloaded after the drain (a dump, not per message)
        return;
    }
    if ((h->nlmsg_type != RTM_NEWNEIGH && h->nlmsg_type != RTM_DELNEIGH) ||
        h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg)))
        return;
    auto* nd = static_cast<const ndmsg*>(NLMSG_DATA(h));
    if (nd->ndm_family != AF_INET || nd->ndm_ifindex != ifindex_ || (nd->ndm_flags & NTF_PROXY))
        return;
    uint32_t dst = 0;
    uint8_t mac[6];
    bool has_dst = false, has_mac = false;
    RtAttrs attrs(reinterpret_cast<const uint8_t*>(nd) + NLMSG_ALIGN(sizeof(ndmsg)),
                  h->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
    while (const rtattr* a = attrs.next()) {
        if (a->rta_type == NDA_DST) has_dst = RtAttrs::get(a, &dst, 4);
        if (a->rta_type == NDA_LLADDR) has_mac = RtAttrs::get(a, mac, 6);
    }
    if (!has_dst) return;
    uint32_t ip = ntohl(dst);
    ++stats_.updates;
    ++updates_in_drain_;
    if (h->nlmsg_type == RTM_DELNEIGH) {
        if (Entry* e = find(ip)) {
            // A queued request still refers to it by address; it is dropped when sent.
            erase(e);
        }
        return;
    }
    Entry* e = insert(ip);
    if (!e) return;
    e->nud = nd->ndm_state;
    // INCOMPLETE/FAILED notifications carry no address: forget the old one.
    e->has_mac = has_mac;
    if (has_mac) std::memcpy(e->mac, mac, 6);
}

bool NeighbourCache::on_message(const nlmsghdr* h, void* self) {
    static_cast<NeighbourCache*>(self)->apply(h);
    return true;
}

int NeighbourCache::load_table() {
    NetlinkSocket dumper;
    int rc = dumper.open();
    if (rc < 0) return rc;
    alignas(nlmsghdr) uint8_t buf[NLMSG_SPACE(sizeof(ndmsg))] = {};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    h->nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
    h->nlmsg_type = RTM_GETNEIGH;
    h->nlmsg_flags = NLM_F_DUMP;
    static_cast<ndmsg*>(NLMSG_DATA(h))->ndm_family = AF_INET;
    // The dump covers every interface; apply() keeps ours.
    return dumper.transact(h, on_message, this);
}

int NeighbourCache::send_request(uint32_t ip) {
    alignas(nlmsghdr) uint8_t buf[NLMSG_SPACE(sizeof(ndmsg)) + RTA_SPACE(4)] = {};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    h->nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
    h->nlmsg_type = RTM_NEWNEIGH;
    // CREATE: a new entry starts as NUD_NONE and NTF_USE kicks off resolution (an ARP
    // request); on an existing entry NTF_USE acts as if the kernel had sent through it.
    h->nlmsg_flags = NLM_F_CREATE | NLM_F_ACK;
    auto* nd = static_cast<ndmsg*>(NLMSG_DATA(h));
    nd->ndm_family = AF_INET;
    nd->ndm_ifindex = ifindex_;
    nd->ndm_state = NUD_NONE;
    nd->ndm_flags = NTF_USE;
    uint32_t dst = htonl(ip);
    nl_put_attr(h, sizeof buf, NDA_DST, &dst, 4);
    long rc = nl_.send(h);
    return rc < 0 ? static_cast<int>(rc) : 0;
}

int NeighbourCache::poll_updates(TimeNs now) {
    if (!nl_.is_open()) return -EBADF;
    updates_in_drain_ = 0;
    int rc = nl_.drain(on_message, this);
    if (rc == -ENOBUFS) {
        // Notifications were lost: the table may be wrong in any entry. Start over.
        ++stats_.resyncs;
        std::memset(slots_, 0, (size_t(mask_) + 1) * sizeof(Entry));
        used_ = 0;
        uint32_t keep = npending_;
        npending_ = 0;
        rc = load_table();
        for (uint32_t i = 0; i < keep; ++i)
            if (Entry* e = insert(pending_[i])) queue_request(e);
        if (rc < 0) return rc;
        rc = nl_.drain(on_message, this);
    }
    if (rc < 0) return rc;
    if (routes_changed_) {
        routes_changed_ = false;
        std::vector<Ipv4Route> r;
        if (interface_routes(ifindex_, &r) == 0) routes_.swap(r);
    }

    uint32_t kept = 0;
    for (uint32_t i = 0; i < npending_; ++i) {
        Entry* e = find(pending_[i]);
        if (!e) continue;
        if (e->last_request != 0 && now - e->last_request < cfg_.request_interval) {
            pending_[kept++] = pending_[i];   // rate-limited: try again on a later poll
            continue;
        }
        int s = send_request(e->ip);
        if (s == -EAGAIN || s == -ENOBUFS) {
            pending_[kept++] = pending_[i];
            continue;
        }
        e->queued = false;
        e->last_request = now ? now : 1;
        if (s < 0) ++stats_.request_errors;
        else ++stats_.requests_sent;
    }
    npending_ = kept;
    missed_ = false;
    return updates_in_drain_;
}

}  // namespace fastnet
