// The AF_XDP device; see xsk_device.hpp. Copy mode (veth) needs a sendto() kick per
// TX batch and moves at most 32 frames a kick; zero-copy kicks only when the ring asks.
// docs/DESIGN.md "Frames and the wire" records what was verified on this kernel.
#include "stack/xdp/xsk_device.hpp"

#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "stack/xdp/xsk_uapi.hpp"

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

bool device_tx_csum(const char* ifname)
{
    // ethtool's legacy "get TX checksumming" (tx-checksumming in ethtool -k); a get
    // needs no privilege.
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    ethtool_value ev{};
    ev.cmd = ETHTOOL_GTXCSUM;
    ifreq ifr{};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    ifr.ifr_data = reinterpret_cast<char*>(&ev);
    bool on = ioctl(s, SIOCETHTOOL, &ifr) == 0 && ev.data;
    ::close(s);
    return on;
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

// Sizes and maps the socket's RX and TX rings (before bind: the kernel refuses to map
// the rings of a bound socket) into rx_/tx_. sized: they were sized by an earlier open
// whose bind failed (a ring is sized once per socket).
int XskDevice::map_rings(int fd, bool sized)
{
    int rx = static_cast<int>(cfg_.rx_size), tx = static_cast<int>(cfg_.tx_size);
    if (!sized && (setsockopt(fd, SOL_XDP, XDP_RX_RING, &rx, sizeof rx) < 0 ||
                   setsockopt(fd, SOL_XDP, XDP_TX_RING, &tx, sizeof tx) < 0))
        return fail(-errno, "sizing the rings of an XSK for %s queue %u", ifname_, cfg_.queue);
    xdp_mmap_offsets off{};
    socklen_t olen = sizeof off;
    if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &olen) < 0)
        return fail(-errno, "XDP_MMAP_OFFSETS");
    rx_len_ = off.rx.desc + cfg_.rx_size * sizeof(xdp_desc);
    tx_len_ = off.tx.desc + cfg_.tx_size * sizeof(xdp_desc);
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
    xsk_uapi::point_ring(*reinterpret_cast<xsk_ring_cons*>(rx_), static_cast<uint8_t*>(rm), off.rx,
                         cfg_.rx_size, false);
    xsk_uapi::point_ring(*reinterpret_cast<xsk_ring_prod*>(tx_), static_cast<uint8_t*>(tm), off.tx,
                         cfg_.tx_size, true);
    return 0;
}

// Binds fd to the queue: with flags (XDP_COPY / XDP_ZEROCOPY, XDP_USE_NEED_WAKEUP) as
// the UMEM's own socket, or with XDP_SHARED_UMEM to it. A queue whose previous sockets
// were just closed stays busy until the kernel's deferred pool release has run
// (net/xdp/xsk_buff_pool.c): EBUSY is retried briefly.
int XskDevice::bind_to(int fd, uint32_t flags, int shared_fd)
{
    sockaddr_xdp sa{};
    sa.sxdp_family = AF_XDP;
    sa.sxdp_ifindex = ifindex_;
    sa.sxdp_queue_id = cfg_.queue;
    sa.sxdp_flags = static_cast<uint16_t>(shared_fd >= 0 ? XDP_SHARED_UMEM : flags);
    sa.sxdp_shared_umem_fd = shared_fd >= 0 ? static_cast<uint32_t>(shared_fd) : 0;
    int err = -EBUSY;
    for (int attempt = 0; attempt < kBindBusyRetries && err == -EBUSY; attempt++) {
        if (attempt)
            usleep(kBindBusyWaitUs);
        err = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 ? -errno : 0;
    }
    return err;
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
    cfg_ = cfg;
    snprintf(ifname_, sizeof ifname_, "%s", cfg.ifname);
    cfg_.ifname = ifname_;
    ifindex_ = if_nametoindex(ifname_);
    if (!ifindex_)
        return fail(-errno, "interface %s", ifname_);

    // Serialises this process's opens on the UMEM (the first binds the UMEM's socket).
    // The lock is also the fill and completion rings' (every process sharing the UMEM),
    // but only the first bind retries EBUSY (bind_to), and until it succeeds the UMEM
    // has no socket whose rings could wait for it: a later socket shares the bound
    // queue's pool, which the kernel never answers with EBUSY.
    umem.lock();
    bool first = !umem.fd_bound_;
    int fd = first ? umem.fd() : socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        umem.unlock();
        return fail(-e, "creating an AF_XDP socket");
    }
    const uint64_t sizes = uint64_t(cfg.rx_size) << 32 | cfg.tx_size;
    if (first && umem.fd_ring_sizes_ && umem.fd_ring_sizes_ != sizes) {
        umem.unlock();
        return fail(-EINVAL, "XSK ring sizes %u/%u differ from the first attempt's on this UMEM",
                    cfg.rx_size, cfg.tx_size);
    }
    if (int r = map_rings(fd, first && umem.fd_ring_sizes_); r < 0) {
        umem.unlock();
        if (!first)
            ::close(fd);
        return r;
    }
    if (first)
        umem.fd_ring_sizes_ = sizes;
    int err = 0;
    XskMode bound = umem.mode();
    if (first) {
        uint32_t wake = XDP_USE_NEED_WAKEUP;
        if (cfg.zerocopy == ZeroCopyMode::Off) {
            err = bind_to(fd, XDP_COPY | wake, -1);
        } else {
            err = bind_to(fd, XDP_ZEROCOPY | wake, -1);
            if (err && cfg.zerocopy == ZeroCopyMode::On) {
                umem.unlock();
                unmap_rings();
                return fail(err, "FASTNET_ZEROCOPY=on, but %s queue %u cannot bind an XSK in "
                            "zero-copy mode%s", ifname_, cfg.queue,
                            err == -EOPNOTSUPP || err == -EINVAL
                                ? " (the driver has no AF_XDP zero-copy)" : "");
            }
            if (err)
                err = bind_to(fd, XDP_COPY | wake, -1);
        }
        if (!err) {
            xdp_options opts{};
            socklen_t len = sizeof opts;
            bool zc = getsockopt(fd, SOL_XDP, XDP_OPTIONS, &opts, &len) == 0 &&
                      (opts.flags & XDP_OPTIONS_ZEROCOPY);
            umem.set_mode(zc ? XskMode::ZeroCopy : XskMode::Copy);
            umem.fd_bound_ = true;
        }
    } else {
        if (cfg.zerocopy == ZeroCopyMode::On && bound != XskMode::ZeroCopy)
            err = -EOPNOTSUPP;
        else if (cfg.zerocopy == ZeroCopyMode::Off && bound == XskMode::ZeroCopy)
            err = -EOPNOTSUPP;
        if (err) {
            umem.unlock();
            unmap_rings();
            ::close(fd);
            return fail(err, "FASTNET_ZEROCOPY=%s, but the UMEM of %s queue %u is bound in %s mode",
                        to_string(cfg.zerocopy), ifname_, cfg.queue, to_string(bound));
        }
        err = bind_to(fd, 0, umem.fd());
    }
    if (err) {
        umem.unlock();
        unmap_rings();
        if (!first)
            ::close(fd);
        return fail(err, "binding an XSK to %s queue %u%s", ifname_, cfg.queue,
                    err == -EBUSY ? " (an AF_XDP socket with another UMEM holds the queue)" : "");
    }
    umem.sockets_++;
    umem.unlock();
    umem_ = &umem;
    fd_ = fd;
    start();
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
    unmap_rings();
    if (!umem_->remote()) {
        umem_->lock();
        umem_->sockets_--;
        umem_->unlock();
    }
    // The UMEM's own socket stays open and bound (see Umem::sockets_).
    if (fd_ != umem_->fd())
        ::close(fd_);
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
    ifindex_ = if_nametoindex(ifname_);
    if (!ifindex_)
        return fail(-ENODEV, "interface %s", ifname_);
    if (int r = map_rings(fd, false); r < 0)
        return r;
    if (int err = bind_to(fd, 0, umem.fd()); err) {
        unmap_rings();
        return fail(err, "binding an XSK to %s queue %u (shared UMEM)", ifname_, cfg.queue);
    }
    umem_ = &umem;
    fd_ = fd;
    start();
    return 0;
}

// An open socket's first steps: counters, where TX frames sit in their chunks, and the
// first frames for the kernel to receive into.
void XskDevice::start()
{
    stats_ = XskStats{};
    tx_outstanding_ = 0;
    // TX checksum offload: in copy mode the kernel builds an skb from the frame and marks
    // it CHECKSUM_PARTIAL, which the device (or its software fallback when the device
    // has no TX checksumming) completes; a veth hands it on unfinished, and the kernel
    // peer does not verify it. Zero-copy drivers must advertise the offload (netdev
    // xsk-features), which is not asked yet: they keep software checksums.
    // On a UMEM with TX metadata the kernel takes every TX descriptor's metadata room
    // from before its address (net/xdp/xsk_buff_pool.c, xp_aligned_validate_desc): a
    // frame at the start of its chunk is refused, with or without XDP_TX_METADATA.
    uint32_t meta = umem_->tx_meta_len();
    tx_offset_ = meta;
    csum_offload_ = meta && mode() == XskMode::Copy &&
                    cfg_.tx_csum != TxChecksumMode::Software && device_tx_csum(ifname_);
    service();
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

// The checksum request in the metadata room before a TX frame's data. Frame memory, as
// the frame itself: written by whichever engine holds the frame (tests/interpose/tsan.supp).
__attribute__((noinline)) void XskDevice::put_tx_metadata(uint8_t* room, const Frame& f)
{
    auto* md = reinterpret_cast<xsk_uapi::TxMetadata*>(room);
    md->flags = xsk_uapi::kTxmdChecksum;
    md->csum_start = f.csum_start;
    md->csum_offset = f.csum_offset;
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
        uint64_t addr = cache_[--cache_count_] + tx_offset_;
        out[i].data = umem_->frame(addr);
        out[i].len = 0;
        out[i].handle = addr;
        out[i].csum_start = 0;
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
        if (frames[i].csum_start && csum_offload_) {
            put_tx_metadata(umem_->frame(d->addr) - tx_offset_, frames[i]);
            d->options = xsk_uapi::kDescTxMetadata;
        }
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
