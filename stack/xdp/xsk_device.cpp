// The AF_XDP device; see xsk_device.hpp. Copy mode (veth) needs a sendto() kick per
// TX batch and moves at most 32 frames a kick; zero-copy kicks only when the ring asks.
// docs/DESIGN.md "Frames and the wire" records what was verified on this kernel.
#include "stack/xdp/xsk_device.hpp"

#include <linux/if_xdp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fastnet {

static_assert(sizeof(xsk_ring_cons) <= 64 && sizeof(xsk_ring_prod) <= 64,
              "ring cursor storage in XskDevice too small");

namespace {

// net/xdp/xsk.c: a copy-mode kick transmits at most TX_BATCH_SIZE (32) frames and
// answers EAGAIN while more remain; bound the kicks a flush may spend.
constexpr int kMaxKicksPerFlush = 64;
constexpr int kBindBusyRetries = 100;
constexpr useconds_t kBindBusyWaitUs = 10000;

bool pow2(uint32_t v) { return v && !(v & (v - 1)); }

}  // namespace

int zerocopy_mode_from_env(ZeroCopyMode* out, char* msg, size_t msg_len)
{
    const char* v = getenv("FASTNET_ZEROCOPY");
    if (!v || !*v || !strcmp(v, "auto")) {
        *out = ZeroCopyMode::Auto;
    } else if (!strcmp(v, "on")) {
        *out = ZeroCopyMode::On;
    } else if (!strcmp(v, "off")) {
        *out = ZeroCopyMode::Off;
    } else {
        if (msg && msg_len)
            snprintf(msg, msg_len, "FASTNET_ZEROCOPY=%s: expected auto, on or off", v);
        return -EINVAL;
    }
    return 0;
}

const char* to_string(ZeroCopyMode m)
{
    switch (m) {
    case ZeroCopyMode::Auto: return "auto";
    case ZeroCopyMode::On: return "on";
    case ZeroCopyMode::Off: return "off";
    }
    return "?";
}

const char* to_string(XskMode m)
{
    switch (m) {
    case XskMode::Unbound: return "unbound";
    case XskMode::Copy: return "copy";
    case XskMode::ZeroCopy: return "zero-copy";
    }
    return "?";
}

XskDevice::~XskDevice() { close(); }

int XskDevice::fail(int err, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err_, sizeof err_, fmt, ap);
    va_end(ap);
    if (n >= 0 && static_cast<size_t>(n) < sizeof err_)
        snprintf(err_ + n, sizeof err_ - n, ": %s", strerror(-err));
    return err;
}

int XskDevice::bind_socket(uint32_t bind_flags)
{
    // A queue whose previous sockets were just closed stays busy until the kernel's
    // deferred pool release has run (net/xdp/xsk_buff_pool.c): retry EBUSY briefly.
    int err = -EBUSY;
    for (int attempt = 0; attempt < kBindBusyRetries && err == -EBUSY; attempt++) {
        if (attempt)
            usleep(kBindBusyWaitUs);
        err = bind_once(bind_flags);
    }
    return err;
}

int XskDevice::bind_once(uint32_t bind_flags)
{
    xsk_socket_config sc{};
    sc.rx_size = cfg_.rx_size;
    sc.tx_size = cfg_.tx_size;
    // Steering owns the program (bpf_link); libxdp must not load or attach its own.
    sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    sc.xdp_flags = 0;
    sc.bind_flags = static_cast<uint16_t>(bind_flags);
    // The fill/comp arguments must be the UMEM's shared ring structs for every socket:
    // libxdp ignores them for later sockets on the same queue, and any other struct
    // would stay uninitialised (docs/DESIGN.md "Shared UMEM, one fill and one
    // completion ring").
    return xsk_socket__create_shared(&xsk_, ifname_, cfg_.queue, umem_->umem_,
                                     reinterpret_cast<xsk_ring_cons*>(rx_),
                                     reinterpret_cast<xsk_ring_prod*>(tx_),
                                     umem_->fill_ring(), umem_->comp_ring(), &sc);
}

int XskDevice::open(Umem& umem, const XskConfig& cfg)
{
    if (fd_ >= 0)
        return fail(-EBUSY, "XSK already open");
    if (!umem.created() || umem.remote())
        return fail(-EINVAL, "UMEM not created here (a fastnetd UMEM takes open_socket)");
    if (!cfg.ifname || strlen(cfg.ifname) >= IF_NAMESIZE)
        return fail(-EINVAL, "bad interface name");
    if (!pow2(cfg.rx_size) || !pow2(cfg.tx_size))
        return fail(-EINVAL, "XSK ring sizes %u/%u: need powers of two", cfg.rx_size, cfg.tx_size);
    umem_ = &umem;
    cfg_ = cfg;
    snprintf(ifname_, sizeof ifname_, "%s", cfg.ifname);
    cfg_.ifname = ifname_;

    // libxdp's per-process UMEM bookkeeping is not thread-safe: serialise opens.
    umem.lock();
    int err = 0;
    XskMode bound = umem.mode();
    if (bound == XskMode::Unbound) {
        uint32_t wake = XDP_USE_NEED_WAKEUP;
        if (cfg.zerocopy == ZeroCopyMode::Off) {
            err = bind_socket(XDP_COPY | wake);
        } else {
            err = bind_socket(XDP_ZEROCOPY | wake);
            if (err && cfg.zerocopy == ZeroCopyMode::On) {
                umem.unlock();
                xsk_ = nullptr;
                umem_ = nullptr;
                return fail(err, "FASTNET_ZEROCOPY=on, but %s queue %u cannot bind an XSK in "
                            "zero-copy mode%s", ifname_, cfg.queue,
                            err == -EOPNOTSUPP || err == -EINVAL
                                ? " (the driver has no AF_XDP zero-copy)" : "");
            }
            if (err) {
                xsk_ = nullptr;
                err = bind_socket(XDP_COPY | wake);
            }
        }
        if (!err) {
            xdp_options opts{};
            socklen_t len = sizeof opts;
            int fd = xsk_socket__fd(xsk_);
            bool zc = getsockopt(fd, SOL_XDP, XDP_OPTIONS, &opts, &len) == 0 &&
                      (opts.flags & XDP_OPTIONS_ZEROCOPY);
            umem.set_mode(zc ? XskMode::ZeroCopy : XskMode::Copy);
        }
    } else {
        if (cfg.zerocopy == ZeroCopyMode::On && bound != XskMode::ZeroCopy)
            err = -EOPNOTSUPP;
        else if (cfg.zerocopy == ZeroCopyMode::Off && bound == XskMode::ZeroCopy)
            err = -EOPNOTSUPP;
        if (err) {
            umem.unlock();
            umem_ = nullptr;
            return fail(err, "FASTNET_ZEROCOPY=%s, but the UMEM of %s queue %u is bound in %s mode",
                        to_string(cfg.zerocopy), ifname_, cfg.queue, to_string(bound));
        }
        err = bind_socket(0);  // libxdp binds with XDP_SHARED_UMEM
    }
    umem.unlock();
    if (err) {
        xsk_ = nullptr;
        umem_ = nullptr;
        return fail(err, "binding an XSK to %s queue %u%s", ifname_, cfg.queue,
                    err == -EBUSY ? " (an AF_XDP socket with another UMEM holds the queue)" : "");
    }
    umem.sockets_++;
    fd_ = xsk_socket__fd(xsk_);
    stats_ = XskStats{};
    tx_outstanding_ = 0;
    service();  // give the kernel frames to receive into
    return 0;
}

void XskDevice::close()
{
    if (fd_ < 0)
        return;
    auto* rx = reinterpret_cast<xsk_ring_cons*>(rx_);
    uint32_t idx = 0;
    uint32_t n;
    while ((n = xsk_ring_cons__peek(rx, 64, &idx)) > 0) {
        uint64_t addrs[64];
        for (uint32_t i = 0; i < n; i++)
            addrs[i] = umem_->chunk(xsk_ring_cons__rx_desc(rx, idx + i)->addr);
        xsk_ring_cons__release(rx, n);
        umem_->give(addrs, n);
    }
    service();
    umem_->give(cache_, cache_count_);
    cache_count_ = 0;
    if (!xsk_) {   // a socket from fastnetd (open_socket): its own mappings
        unmap_rings();
        ::close(fd_);
        fd_ = -1;
        umem_ = nullptr;
        return;
    }
    umem_->lock();
    if (--umem_->sockets_ == 0) {
        // Deleting the process's last socket would unmap the shared rings for good
        // (libxdp); park it instead, replacing one parked earlier.
        if (umem_->parked_)
            xsk_socket__delete(umem_->parked_);
        umem_->parked_ = xsk_;
    } else {
        xsk_socket__delete(xsk_);
    }
    umem_->unlock();
    xsk_ = nullptr;
    fd_ = -1;
    umem_ = nullptr;
}

int XskDevice::open_socket(Umem& umem, int fd, const XskConfig& cfg)
{
    if (fd_ >= 0)
        return fail(-EBUSY, "XSK already open");
    if (!umem.created() || umem.fd() < 0)
        return fail(-EINVAL, "UMEM not created");
    if (!pow2(cfg.rx_size) || !pow2(cfg.tx_size))
        return fail(-EINVAL, "XSK ring sizes %u/%u: need powers of two", cfg.rx_size, cfg.tx_size);
    cfg_ = cfg;
    snprintf(ifname_, sizeof ifname_, "%s", cfg.ifname ? cfg.ifname : "");
    cfg_.ifname = ifname_;
    unsigned ifindex = if_nametoindex(ifname_);
    if (!ifindex)
        return fail(-ENODEV, "interface %s", ifname_);
    // The rings must be sized and mapped before bind (the kernel refuses to map the rings
    // of a bound socket), then the socket joins the queue's UMEM.
    int rx = static_cast<int>(cfg.rx_size), tx = static_cast<int>(cfg.tx_size);
    if (setsockopt(fd, SOL_XDP, XDP_RX_RING, &rx, sizeof rx) < 0 ||
        setsockopt(fd, SOL_XDP, XDP_TX_RING, &tx, sizeof tx) < 0)
        return fail(-errno, "sizing the rings of an XSK for %s queue %u", ifname_, cfg.queue);
    xdp_mmap_offsets off{};
    socklen_t olen = sizeof off;
    if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &olen) < 0)
        return fail(-errno, "XDP_MMAP_OFFSETS");
    rx_len_ = off.rx.desc + cfg.rx_size * sizeof(xdp_desc);
    tx_len_ = off.tx.desc + cfg.tx_size * sizeof(xdp_desc);
    void* rm = mmap(nullptr, rx_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    XDP_PGOFF_RX_RING);
    if (rm == MAP_FAILED)
        return fail(-errno, "mapping an XSK's RX ring");
    void* tm = mmap(nullptr, tx_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    XDP_PGOFF_TX_RING);
    if (tm == MAP_FAILED) {
        int e = errno;
        munmap(rm, rx_len_);
        return fail(-e, "mapping an XSK's TX ring");
    }
    rx_map_ = rm;
    tx_map_ = tm;
    auto* r = reinterpret_cast<xsk_ring_cons*>(rx_);
    auto* rb = static_cast<uint8_t*>(rm);
    r->mask = cfg.rx_size - 1;
    r->size = cfg.rx_size;
    r->producer = reinterpret_cast<uint32_t*>(rb + off.rx.producer);
    r->consumer = reinterpret_cast<uint32_t*>(rb + off.rx.consumer);
    r->flags = reinterpret_cast<uint32_t*>(rb + off.rx.flags);
    r->ring = rb + off.rx.desc;
    r->cached_prod = *r->producer;
    r->cached_cons = *r->consumer;
    auto* t = reinterpret_cast<xsk_ring_prod*>(tx_);
    auto* tb = static_cast<uint8_t*>(tm);
    t->mask = cfg.tx_size - 1;
    t->size = cfg.tx_size;
    t->producer = reinterpret_cast<uint32_t*>(tb + off.tx.producer);
    t->consumer = reinterpret_cast<uint32_t*>(tb + off.tx.consumer);
    t->flags = reinterpret_cast<uint32_t*>(tb + off.tx.flags);
    t->ring = tb + off.tx.desc;
    t->cached_prod = *t->producer;
    t->cached_cons = *t->consumer + cfg.tx_size;
    sockaddr_xdp sa{};
    sa.sxdp_family = AF_XDP;
    sa.sxdp_ifindex = ifindex;
    sa.sxdp_queue_id = cfg.queue;
    sa.sxdp_flags = XDP_SHARED_UMEM;
    sa.sxdp_shared_umem_fd = static_cast<uint32_t>(umem.fd());
    int err = -EBUSY;
    for (int attempt = 0; attempt < kBindBusyRetries && err == -EBUSY; attempt++) {
        if (attempt)
            usleep(kBindBusyWaitUs);
        err = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 ? -errno : 0;
    }
    if (err) {
        unmap_rings();
        return fail(err, "binding an XSK to %s queue %u (shared UMEM)", ifname_, cfg.queue);
    }
    umem_ = &umem;
    fd_ = fd;
    stats_ = XskStats{};
    tx_outstanding_ = 0;
    service();
    return 0;
}

void XskDevice::unmap_rings()
{
    if (rx_map_)
        munmap(rx_map_, rx_len_);
    if (tx_map_)
        munmap(tx_map_, tx_len_);
    rx_map_ = tx_map_ = nullptr;
}

void XskDevice::service()
{
    // On a fastnetd UMEM the fill ring is fed from the free list only: smaller caches.
    if (cfg_.rx_only)
        umem_->service(cache_, &cache_count_, kCacheCap, 0, kRxOnlyCacheHi, cfg_.owner);
    else if (umem_->remote())
        umem_->service(cache_, &cache_count_, kCacheCap, kRemoteCacheLo, kRemoteCacheHi, cfg_.owner);
    else
        umem_->service(cache_, &cache_count_, kCacheCap, kCacheLo, kCacheHi, cfg_.owner);
}

void XskDevice::put_cache(const uint64_t* addrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cache_count_ == kCacheCap) {
            // Spill down to the middle in one locked batch.
            uint32_t spill = kCacheCap - (kCacheLo + kCacheHi) / 2;
            umem_->give(cache_ + cache_count_ - spill, spill);
            cache_count_ -= spill;
        }
        cache_[cache_count_++] = umem_->chunk(addrs[i]);
    }
}

size_t XskDevice::rx_burst(Frame* out, size_t n)
{
    if (fd_ < 0)
        return 0;
    if (want_service())
        service();
    auto* rx = reinterpret_cast<xsk_ring_cons*>(rx_);
    uint32_t idx = 0;
    uint32_t got = xsk_ring_cons__peek(rx, static_cast<uint32_t>(n), &idx);
    if (got == 0) {
        // Zero-copy drivers stop receiving when the fill ring ran dry until woken;
        // copy mode never needs it, and a syscall per idle poll would be waste.
        if (umem_->mode() == XskMode::ZeroCopy && !umem_->remote() &&
            xsk_ring_prod__needs_wakeup(umem_->fill_ring())) {
            recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
            stats_.rx_wakeups++;
        }
        return 0;
    }
    for (uint32_t i = 0; i < got; i++) {
        const xdp_desc* d = xsk_ring_cons__rx_desc(rx, idx + i);
        out[i].data = umem_->frame(d->addr);
        out[i].len = d->len;
        out[i].handle = d->addr;
        umem_->tag(d->addr, cfg_.owner);
    }
    xsk_ring_cons__release(rx, got);
    stats_.rx_frames += got;
    return got;
}

bool XskDevice::rx_ready() const
{
    if (fd_ < 0)
        return false;
    // The kernel's producer index against how far rx_burst() has consumed: one load of
    // a shared cache line, no syscall.
    auto* rx = reinterpret_cast<const xsk_ring_cons*>(rx_);
    return __atomic_load_n(rx->producer, __ATOMIC_ACQUIRE) != rx->cached_cons;
}

void XskDevice::rx_release(const Frame* frames, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cache_count_ == kCacheCap) {
            uint32_t spill = kCacheCap - (kCacheLo + kCacheHi) / 2;
            umem_->give(cache_ + cache_count_ - spill, spill);
            cache_count_ -= spill;
        }
        cache_[cache_count_++] = umem_->chunk(frames[i].handle);
    }
}

size_t XskDevice::tx_alloc(Frame* out, size_t n)
{
    if (fd_ < 0)
        return 0;
    auto* tx = reinterpret_cast<xsk_ring_prod*>(tx_);
    uint32_t room = xsk_prod_nb_free(tx, cfg_.tx_size);
    room = room > tx_outstanding_ ? room - tx_outstanding_ : 0;
    if (n > room)
        n = room;
    if (cache_count_ < n)
        service();
    if (cache_count_ < n)
        cache_count_ += umem_->take(cache_ + cache_count_,
                                    static_cast<uint32_t>(n) - cache_count_, cfg_.owner);
    if (n > cache_count_)
        n = cache_count_;
    for (size_t i = 0; i < n; i++) {
        uint64_t addr = cache_[--cache_count_];
        out[i].data = umem_->frame(addr);
        out[i].len = 0;
        out[i].handle = addr;
    }
    tx_outstanding_ += static_cast<uint32_t>(n);
    return n;
}

void XskDevice::tx_submit(const Frame* frames, size_t n)
{
    if (fd_ < 0 || n == 0)
        return;
    tx_outstanding_ -= n <= tx_outstanding_ ? static_cast<uint32_t>(n) : tx_outstanding_;
    auto* tx = reinterpret_cast<xsk_ring_prod*>(tx_);
    uint32_t idx = 0;
    // tx_alloc() only lends as many frames as the ring has room for, so this holds
    // unless the caller submits frames it did not allocate here.
    uint32_t got = xsk_ring_prod__reserve(tx, static_cast<uint32_t>(n), &idx);
    for (uint32_t i = 0; i < got; i++) {
        xdp_desc* d = xsk_ring_prod__tx_desc(tx, idx + i);
        d->addr = frames[i].handle;
        d->len = frames[i].len;
        d->options = 0;
        umem_->tag(d->addr, 0);   // the kernel's until the completion ring returns it
    }
    xsk_ring_prod__submit(tx, got);
    stats_.tx_frames += got;
    if (got < n) {
        stats_.tx_ring_full += n - got;
        for (size_t i = got; i < n; i++)
            put_cache(&frames[i].handle, 1);
    }
}

void XskDevice::tx_abandon(const Frame* frames, size_t n)
{
    tx_outstanding_ -= n <= tx_outstanding_ ? static_cast<uint32_t>(n) : tx_outstanding_;
    for (size_t i = 0; i < n; i++)
        put_cache(&frames[i].handle, 1);
}

uint32_t XskDevice::tx_pending() const
{
    if (fd_ < 0)
        return 0;
    auto* tx = reinterpret_cast<const xsk_ring_prod*>(tx_);
    return tx->cached_prod - __atomic_load_n(tx->consumer, __ATOMIC_ACQUIRE);
}

void XskDevice::tx_flush()
{
    if (fd_ < 0)
        return;
    if (want_service())
        service();
    if (tx_pending() == 0)
        return;
    auto* tx = reinterpret_cast<xsk_ring_prod*>(tx_);
    if (umem_->mode() == XskMode::ZeroCopy && !xsk_ring_prod__needs_wakeup(tx))
        return;
    for (int k = 0; k < kMaxKicksPerFlush; k++) {
        stats_.tx_kicks++;
        ssize_t r = sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0);
        int e = r < 0 ? errno : 0;
        // Completions must be drained every loop: a full completion ring stops TX.
        if (want_service())
            service();
        if (e == EAGAIN) {
            // More than one batch queued, or the completion ring was full: go again.
            stats_.tx_kick_again++;
        } else if (e == EBUSY || e == ENOBUFS) {
            stats_.tx_kick_again++;
            break;  // the next flush retries
        } else if (e) {
            stats_.tx_kick_errors++;
            break;
        }
        if (tx_pending() == 0)
            break;
    }
}

}  // namespace fastnet
