// Loader and control plane of the XDP steering program; see steering.hpp.
// The object is embedded by the skeleton generated in xdp_prog/meson.build, so nothing
// is read from the file system at run time and no bpffs is needed.
#include "stack/xdp/steering.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "xdp_prog/steer.skel.h"

namespace fastnet {

namespace {

const char* const kCounterNames[] = {
#define FASTNET_X_NAME(name, text) text,
    FASTNET_STEER_COUNTERS(FASTNET_X_NAME)
#undef FASTNET_X_NAME
};

// The order of Steering::export_fds() / adopt().
enum MapId { kXsks, kFlows, kPassive, kKernel, kListen, kConfig, kCounters, kSlotCounters,
              kQueueCounters, kMapIds };
static_assert(kMapIds == Steering::kMapCount);

}  // namespace

Steering::~Steering() { close(); }

int Steering::fail(int err, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err_, sizeof err_, fmt, ap);
    va_end(ap);
    if (n >= 0 && static_cast<size_t>(n) < sizeof err_)
        snprintf(err_ + n, sizeof err_ - n, ": %s", strerror(-err));
    return err;
}

int Steering::map_fd(int which) const
{
    if (!loaded())
        return -1;
    if (!skel_)
        return which >= 0 && which < kMapCount ? adopted_[which] : -1;
    switch (which) {
    case kXsks: return bpf_map__fd(skel_->maps.xsks);
    case kFlows: return bpf_map__fd(skel_->maps.flows);
    case kPassive: return bpf_map__fd(skel_->maps.passive_flows);
    case kKernel: return bpf_map__fd(skel_->maps.kernel_flows);
    case kListen: return bpf_map__fd(skel_->maps.listen_ports);
    case kConfig: return bpf_map__fd(skel_->maps.config);
    case kCounters: return bpf_map__fd(skel_->maps.counters);
    case kSlotCounters: return bpf_map__fd(skel_->maps.slot_counters);
    case kQueueCounters: return bpf_map__fd(skel_->maps.queue_counters);
    }
    return -1;
}

int Steering::prog_fd() const { return skel_ ? bpf_program__fd(skel_->progs.steer) : -1; }

int Steering::load()
{
    if (loaded())
        return 0;
    fastnet_steer* skel = fastnet_steer__open_and_load();
    if (!skel)
        return fail(errno ? -errno : -EINVAL, "loading the XDP steering program");
    skel_ = skel;
    fastnet_config cfg{};
    // A per-load seed keeps remote peers from choosing which engine their flows hit.
    if (getrandom(&cfg.hash_seed, sizeof cfg.hash_seed, GRND_NONBLOCK) != sizeof cfg.hash_seed)
        cfg.hash_seed = 0x9e3779b9u;
    int err = write_config(cfg);
    if (err) {
        close();
        return err;
    }
    return 0;
}

int Steering::attach(int ifindex, XdpAttachMode mode)
{
    if (attached())
        return fail(-EBUSY, "XDP steering program already attached to ifindex %d", ifindex_);
    if (int err = load())
        return err;
    // bpf_link, never netlink: a netlink-attached program survives a crash of its
    // owner and blocks the next attach (docs/DESIGN.md "Attaching the program").
    int fd = -1;
    bool native = mode != XdpAttachMode::Generic;
    LIBBPF_OPTS(bpf_link_create_opts, opts);
    opts.flags = native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
    fd = bpf_link_create(prog_fd(), ifindex, BPF_XDP, &opts);
    if (fd < 0 && mode == XdpAttachMode::Auto) {
        native = false;
        opts.flags = XDP_FLAGS_SKB_MODE;
        fd = bpf_link_create(prog_fd(), ifindex, BPF_XDP, &opts);
    }
    if (fd < 0) {
        int err = -errno;
        return fail(err, "attaching the XDP steering program (%s mode) to ifindex %d%s",
                    native ? "native" : "generic", ifindex,
                    err == -EBUSY ? " (another XDP program is attached)" : "");
    }
    link_fd_ = fd;
    ifindex_ = ifindex;
    native_ = native;
    return 0;
}

void Steering::detach()
{
    if (link_fd_ >= 0)
        ::close(link_fd_);
    link_fd_ = -1;
    ifindex_ = 0;
    native_ = false;
}

void Steering::close()
{
    detach();
    if (skel_)
        fastnet_steer__destroy(skel_);
    skel_ = nullptr;
    for (int& fd : adopted_) {
        if (fd >= 0)
            ::close(fd);
        fd = -1;
    }
}

int Steering::export_fds(int* maps, int* link) const
{
    if (!loaded())
        return -ENOENT;
    for (int i = 0; i < kMapCount; i++)
        maps[i] = map_fd(i);
    *link = link_fd_;
    return 0;
}

int Steering::adopt(const int* maps, int link, int ifindex, bool native)
{
    if (loaded())
        return fail(-EBUSY, "steering program already loaded here");
    for (int i = 0; i < kMapCount; i++)
        adopted_[i] = maps[i];
    link_fd_ = link;
    ifindex_ = ifindex;
    native_ = native;
    return 0;
}

int Steering::read_config(fastnet_config& cfg) const
{
    uint32_t zero = 0;
    if (bpf_map_lookup_elem(map_fd(kConfig), &zero, &cfg))
        return -errno;
    return 0;
}

int Steering::write_config(const fastnet_config& cfg)
{
    uint32_t zero = 0;
    if (bpf_map_update_elem(map_fd(kConfig), &zero, &cfg, BPF_ANY))
        return fail(-errno, "writing the steering config map");
    return 0;
}

int Steering::set_active_range(uint16_t base, uint16_t count, uint32_t nslots)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    if (count && (nslots == 0 || nslots > FASTNET_MAX_SLOTS))
        return fail(-EINVAL, "active-open range: %u slots (1..%u)", nslots, FASTNET_MAX_SLOTS);
    if (uint32_t(base) + count > 65536)
        return fail(-EINVAL, "active-open range %u+%u runs past port 65535", base, count);
    fastnet_config cfg{};
    if (int err = read_config(cfg))
        return fail(err, "reading the steering config map");
    cfg.ao_base = base;
    cfg.ao_count = count;
    cfg.ao_nslots = count ? nslots : 0;
    return write_config(cfg);
}

int Steering::set_local_ip(uint32_t ip_be)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    fastnet_config cfg{};
    if (int err = read_config(cfg))
        return fail(err, "reading the steering config map");
    cfg.local_ip = ip_be;
    return write_config(cfg);
}

int Steering::set_hash_seed(uint32_t seed)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    fastnet_config cfg{};
    if (int err = read_config(cfg))
        return fail(err, "reading the steering config map");
    cfg.hash_seed = seed;
    return write_config(cfg);
}

uint32_t Steering::hash_seed() const
{
    fastnet_config cfg{};
    return loaded() && read_config(cfg) == 0 ? cfg.hash_seed : 0;
}

int Steering::add_listen_slot(uint16_t port, uint32_t slot)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    if (slot >= FASTNET_MAX_SLOTS)
        return fail(-EINVAL, "slot %u out of range (max %u)", slot, FASTNET_MAX_SLOTS - 1);
    fastnet_listen_slots v{};
    if (bpf_map_lookup_elem(map_fd(kListen), &port, &v) && errno != ENOENT)
        return fail(-errno, "reading listening port %u", port);
    for (uint32_t i = 0; i < v.count && i < FASTNET_MAX_SLOTS; i++)
        if (v.slots[i] == slot)
            return 0;
    if (v.count >= FASTNET_MAX_SLOTS)
        return fail(-ENOSPC, "listening port %u already has %u slots", port, v.count);
    v.slots[v.count++] = slot;
    // A hash-map update swaps in a new element, so the program reads old or new set.
    if (bpf_map_update_elem(map_fd(kListen), &port, &v, BPF_ANY))
        return fail(-errno, "adding slot %u to listening port %u", slot, port);
    return 0;
}

int Steering::remove_listen_slot(uint16_t port, uint32_t slot)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    fastnet_listen_slots v{};
    if (bpf_map_lookup_elem(map_fd(kListen), &port, &v))
        return fail(-errno, "port %u is not a listening port", port);
    uint32_t out = 0;
    for (uint32_t i = 0; i < v.count && i < FASTNET_MAX_SLOTS; i++)
        if (v.slots[i] != slot)
            v.slots[out++] = v.slots[i];
    if (out == v.count)
        return fail(-ENOENT, "slot %u does not serve port %u", slot, port);
    v.count = out;
    int rc = out ? bpf_map_update_elem(map_fd(kListen), &port, &v, BPF_ANY)
                 : bpf_map_delete_elem(map_fd(kListen), &port);
    if (rc)
        return fail(-errno, "removing slot %u from listening port %u", slot, port);
    return 0;
}

int Steering::forget_slot(uint32_t slot)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    int removed = 0;
    // Collect first: deleting while walking with get_next_key restarts the walk.
    uint16_t ports[FASTNET_MAX_LISTEN_PORTS];
    size_t nports = 0;
    uint16_t port = 0;
    const uint16_t* prev = nullptr;
    while (nports < FASTNET_MAX_LISTEN_PORTS && !bpf_map_get_next_key(map_fd(kListen), prev, &port)) {
        ports[nports++] = port;
        prev = &ports[nports - 1];
    }
    for (size_t i = 0; i < nports; i++)
        if (remove_listen_slot(ports[i], slot) == 0)
            removed++;
    fastnet_flow_key key{}, next{};
    const fastnet_flow_key* pk = nullptr;
    while (!bpf_map_get_next_key(map_fd(kFlows), pk, &next)) {
        uint32_t owner = 0;
        key = next;
        pk = &key;
        if (!bpf_map_lookup_elem(map_fd(kFlows), &key, &owner) && owner == slot &&
            !bpf_map_delete_elem(map_fd(kFlows), &key)) {
            removed++;
            pk = nullptr;   // the walk restarts from the beginning after a delete
        }
    }
    clear_xsk(slot);
    err_[0] = 0;
    return removed;
}

int Steering::listen_slots(uint16_t port, uint32_t* out, size_t n) const
{
    if (!loaded())
        return -ENOENT;
    fastnet_listen_slots v{};
    if (bpf_map_lookup_elem(map_fd(kListen), &port, &v))
        return errno == ENOENT ? 0 : -errno;
    for (uint32_t i = 0; i < v.count && i < n && i < FASTNET_MAX_SLOTS; i++)
        out[i] = v.slots[i];
    return static_cast<int>(v.count);
}

static fastnet_flow_key flow_key(const FlowTuple& f)
{
    fastnet_flow_key k{};
    k.remote_ip = f.remote_ip;
    k.local_ip = f.local_ip;
    k.remote_port = htons(f.remote_port);
    k.local_port = htons(f.local_port);
    return k;
}

int Steering::add_flow(const FlowTuple& flow, uint32_t slot)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    if (slot >= FASTNET_MAX_SLOTS && slot != FASTNET_SLOT_PARKED)
        return fail(-EINVAL, "slot %u out of range (max %u)", slot, FASTNET_MAX_SLOTS - 1);
    fastnet_flow_key k = flow_key(flow);
    if (bpf_map_update_elem(map_fd(kFlows), &k, &slot, BPF_ANY))
        return fail(-errno, "adding a flow to slot %u", slot);
    return 0;
}

int Steering::remove_flow(const FlowTuple& flow)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    fastnet_flow_key k = flow_key(flow);
    if (bpf_map_delete_elem(map_fd(kFlows), &k))
        return fail(-errno, "removing a flow");
    return 0;
}

int Steering::passive_flow_slot(const FlowTuple& flow, uint32_t* slot) const
{
    if (!loaded())
        return -ENOENT;
    fastnet_flow_key k = flow_key(flow);
    fastnet_passive_rec rec{};
    if (bpf_map_lookup_elem(map_fd(kPassive), &k, &rec)) return -errno;
    *slot = rec.slot;
    return 0;
}

int Steering::flow_slot(const FlowTuple& flow, uint32_t* slot) const
{
    if (!loaded())
        return -ENOENT;
    fastnet_flow_key k = flow_key(flow);
    return bpf_map_lookup_elem(map_fd(kFlows), &k, slot) ? -errno : 0;
}

int Steering::add_kernel_flow(const FlowTuple& flow)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    fastnet_config cfg{};
    if (int err = read_config(cfg))
        return fail(err, "reading the steering config map");
    if (!cfg.handovers) {
        cfg.handovers = 1;
        if (int err = write_config(cfg))
            return err;
    }
    fastnet_flow_key k = flow_key(flow);
    uint32_t one = 1;
    if (bpf_map_update_elem(map_fd(kKernel), &k, &one, BPF_ANY))
        return fail(-errno, "handing a flow over to the kernel");
    return 0;
}

int Steering::set_xsk(uint32_t slot, int xsk_fd, uint32_t queue)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    if (slot >= FASTNET_MAX_SLOTS)
        return fail(-EINVAL, "slot %u out of range (max %u)", slot, FASTNET_MAX_SLOTS - 1);
    if (queue >= FASTNET_MAX_QUEUES)
        return fail(-EINVAL, "queue %u out of range (max %u)", queue, FASTNET_MAX_QUEUES - 1);
    uint32_t idx = queue * FASTNET_MAX_SLOTS + slot;
    uint32_t fd = static_cast<uint32_t>(xsk_fd);
    if (bpf_map_update_elem(map_fd(kXsks), &idx, &fd, BPF_ANY))
        return fail(-errno, "putting XSK fd %d into slot %u of queue %u", xsk_fd, slot, queue);
    return 0;
}

int Steering::clear_xsk(uint32_t slot)
{
    if (!loaded())
        return fail(-ENOENT, "steering program not loaded");
    if (slot >= FASTNET_MAX_SLOTS)
        return fail(-EINVAL, "slot %u out of range (max %u)", slot, FASTNET_MAX_SLOTS - 1);
    for (uint32_t q = 0; q < FASTNET_MAX_QUEUES; q++) {
        uint32_t idx = q * FASTNET_MAX_SLOTS + slot;
        if (bpf_map_delete_elem(map_fd(kXsks), &idx) && errno != ENOENT)
            return fail(-errno, "clearing slot %u of queue %u", slot, q);
    }
    return 0;
}

int Steering::read_counters(SteerCounters& out) const
{
    out = SteerCounters{};
    if (!loaded())
        return -ENOENT;
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        return ncpu ? ncpu : -EINVAL;
    // Per-CPU values come back as one 8-byte slot per possible CPU. Not a hot path.
    std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
    for (uint32_t i = 0; i < FASTNET_CNT__COUNT; i++) {
        if (bpf_map_lookup_elem(map_fd(kCounters), &i, vals.data()))
            return -errno;
        for (int c = 0; c < ncpu; c++)
            out.verdict[i] += vals[c];
    }
    for (uint32_t i = 0; i < FASTNET_MAX_SLOTS; i++) {
        if (bpf_map_lookup_elem(map_fd(kSlotCounters), &i, vals.data()))
            return -errno;
        for (int c = 0; c < ncpu; c++)
            out.slot[i] += vals[c];
    }
    for (uint32_t i = 0; i < FASTNET_MAX_QUEUES; i++) {
        if (bpf_map_lookup_elem(map_fd(kQueueCounters), &i, vals.data()))
            return -errno;
        for (int c = 0; c < ncpu; c++)
            out.queue[i] += vals[c];
    }
    return 0;
}

const char* Steering::counter_name(unsigned idx)
{
    return idx < FASTNET_CNT__COUNT ? kCounterNames[idx] : "?";
}

uint32_t Steering::listen_slot_for(const FlowTuple& f, uint32_t seed, const uint32_t* slots,
                                   uint32_t count)
{
    if (count == 0)
        return UINT32_MAX;
    uint32_t h = fastnet_flow_hash(f.remote_ip, f.local_ip, htons(f.remote_port),
                                   htons(f.local_port), seed);
    return slots[h % count];
}

}  // namespace fastnet
