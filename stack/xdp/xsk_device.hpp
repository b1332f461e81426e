// The AF_XDP device: one XSK per engine, bound to (ifname, queue) and sharing the
// queue's UMEM with the other engines' XSKs (XDP_SHARED_UMEM).
// Engine::poll() → rx_burst()/rx_release(); TCP output → tx_alloc()/tx_submit()/tx_flush().
#pragma once

#include <net/if.h>

#include <cstddef>
#include <cstdint>

#include "stack/device.hpp"
#include "stack/xdp/umem.hpp"

namespace fastnet {

enum class ZeroCopyMode {
    Auto,  // try XDP_ZEROCOPY, fall back to XDP_COPY
    On,    // zero-copy or a clear error
    Off,   // always XDP_COPY
};

// Parses FASTNET_ZEROCOPY (auto|on|off; unset = auto). -EINVAL with a message in msg
// for anything else.
int zerocopy_mode_from_env(ZeroCopyMode* out, char* msg, size_t msg_len);
const char* to_string(ZeroCopyMode m);
const char* to_string(XskMode m);

enum class TxChecksumMode {
    Auto,      // leave TCP checksums to the device where it can take them (XskDevice::start)
    Software,  // always compute them
};
// Whether the interface has TX checksumming on (ethtool -k: tx-checksumming).
bool device_tx_csum(const char* ifname);

struct XskConfig {
    const char* ifname = nullptr;
    uint32_t queue = 0;
    uint32_t rx_size = 1024;  // this socket's RX and TX rings: powers of two
    uint32_t tx_size = 1024;
    // Only the first socket on a UMEM chooses; later ones inherit its mode.
    ZeroCopyMode zerocopy = ZeroCopyMode::Auto;
    TxChecksumMode tx_csum = TxChecksumMode::Auto;
    // Tag on the frames this socket holds (Umem::reclaim); 0 = untracked.
    uint8_t owner = 0;
    // Nothing is sent through this socket (an engine's XSK on a queue other than its TX
    // queue): it keeps no frames of its own, so that idle engines do not hold frames
    // the queue's fill ring needs.
    bool rx_only = false;
};

struct XskStats {
    uint64_t rx_frames = 0;
    uint64_t tx_frames = 0;
    uint64_t tx_kicks = 0;
    uint64_t tx_kick_again = 0;  // EAGAIN/EBUSY/ENOBUFS: retried on a later flush
    uint64_t tx_kick_errors = 0; // anything else (ENETDOWN, ENXIO ...)
    uint64_t tx_ring_full = 0;   // submitted frames the TX ring could not take
    uint64_t rx_wakeups = 0;
};

class XskDevice final : public Device {
public:
    XskDevice() = default;
    ~XskDevice() override;
    XskDevice(const XskDevice&) = delete;
    XskDevice& operator=(const XskDevice&) = delete;

    // Creates the socket and binds it. The first socket on the UMEM binds with the
    // requested mode; later ones with XDP_SHARED_UMEM. The XDP program is not touched
    // (Steering loads and attaches it). 0 or -errno (see error()).
    int open(Umem& umem, const XskConfig& cfg);
    // The same with a socket made by fastnetd (AF_XDP sockets need CAP_NET_RAW; sizing,
    // mapping and binding them do not): the device takes fd, binds it to cfg.queue with
    // XDP_SHARED_UMEM on umem (attached: Umem::attach). On failure fd is the caller's.
    int open_socket(Umem& umem, int fd, const XskConfig& cfg);
    // Returns every frame it holds to the pool, then closes the socket. Clear its slot
    // first (Steering::clear_xsk): the process's last socket on a UMEM stays bound,
    // unused, until Umem::destroy(), so that new sockets can still join the UMEM.
    void close();
    bool is_open() const { return fd_ >= 0; }

    int fd() const { return fd_; }
    XskMode mode() const { return umem_ ? umem_->mode() : XskMode::Unbound; }
    bool zerocopy() const { return mode() == XskMode::ZeroCopy; }
    const XskStats& stats() const { return stats_; }
    // Frames this device holds in its private cache.
    uint32_t cached_frames() const { return cache_count_; }
    const char* error() const { return err_; }

    size_t rx_burst(Frame* out, size_t n) override;
    bool rx_ready() const override;
    void rx_release(const Frame* frames, size_t n) override;
    size_t tx_alloc(Frame* out, size_t n) override;
    void tx_submit(const Frame* frames, size_t n) override;
    void tx_abandon(const Frame* frames, size_t n) override;
    void tx_flush() override;
    uint32_t tx_capacity() const override { return umem_ ? umem_->frame_size() - tx_offset_ : 0; }
    bool tx_csum_offload() const override { return csum_offload_; }
    int wait_fd() const override { return fd_; }

    // Frames the TX ring holds that the kernel has not consumed yet.
    uint32_t tx_pending() const;

private:
    static constexpr uint32_t kCacheCap = 1024;
    static constexpr uint32_t kCacheLo = 128;
    static constexpr uint32_t kCacheHi = 768;
    static constexpr uint32_t kRemoteCacheLo = 64;
    static constexpr uint32_t kRemoteCacheHi = 256;
    static constexpr uint32_t kRxOnlyCacheHi = 64;

    int fail(int err, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
    int map_rings(int fd, bool sized);
    int bind_to(int fd, uint32_t flags, int shared_fd);
    void start();
    void service();
    void put_cache(const uint64_t* addrs, size_t n);
    // Whether service() has something to do: the shared rings, or (fastnetd's UMEM) a
    // short free list while this cache holds more than its share.
    bool want_service() const
    {
        if (!umem_->needs_service())
            return false;
        if (cfg_.rx_only)
            return cache_count_ > kRxOnlyCacheHi || !umem_->remote();
        return !umem_->remote() || cache_count_ > kRemoteCacheHi || cache_count_ < kRemoteCacheLo;
    }
    void unmap_rings();
    static void put_tx_metadata(uint8_t* room, const Frame& f);

    Umem* umem_ = nullptr;
    int fd_ = -1;                 // Umem::fd() for the UMEM's first socket, else its own
    unsigned ifindex_ = 0;
    void* rx_map_ = nullptr;      // the RX and TX rings' mappings
    void* tx_map_ = nullptr;
    size_t rx_len_ = 0, tx_len_ = 0;
    XskConfig cfg_{};
    char ifname_[IF_NAMESIZE] = {};
    // Ring cursors are private to this socket (only the fill/comp rings are shared).
    alignas(64) unsigned char rx_[64] = {};
    alignas(64) unsigned char tx_[64] = {};
    uint32_t tx_outstanding_ = 0;  // allocated, not yet submitted or abandoned
    // TX frames start this far into their chunks: the UMEM's metadata room (start()).
    uint32_t tx_offset_ = 0;
    bool csum_offload_ = false;
    uint32_t cache_count_ = 0;
    uint64_t cache_[kCacheCap];
    XskStats stats_{};
    char err_[256] = {};
};

}  // namespace fastnet
