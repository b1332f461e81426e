// An engine's AF_XDP device on every RX queue it serves: one XskDevice per queue, each
// on that queue's UMEM (the kernel delivers a redirected frame only to an XSK bound to
// the queue it arrived on). Frames are received from all of them; the engine transmits
// on one, its TX queue. With one queue it is a plain XskDevice.
// Runtime (interpose/runtime.cpp) → open(); Engine::poll() → rx_burst()/tx_*().
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "stack/device.hpp"
#include "stack/xdp/xsk_device.hpp"
#include "xdp_prog/steer_shared.h"

namespace fastnet {

inline constexpr uint32_t kMaxXskQueues = FASTNET_MAX_QUEUES;

class XskQueues final : public Device {
public:
    XskQueues() = default;
    ~XskQueues() override;
    XskQueues(const XskQueues&) = delete;
    XskQueues& operator=(const XskQueues&) = delete;

    // Opens an XSK on queues 0..n-1, queue q on umems[q], all with cfg (cfg.queue is
    // ignored); transmits on tx_queue. With socket_for (a fastnetd client), queue q's
    // socket is socket_for(q) (an fd, or -errno), bound with XskDevice::open_socket.
    // On failure nothing stays open. 0 or -errno.
    int open(Umem* umems, uint32_t n, const XskConfig& cfg, uint32_t tx_queue,
             const std::function<int(uint32_t)>& socket_for = {});
    // Closes every queue's socket (see XskDevice::close: clear the slot first).
    void close();

    uint32_t queues() const { return n_; }
    uint32_t tx_queue() const { return tx_; }
    const XskDevice& queue(uint32_t q) const { return q_[q]; }
    XskMode mode() const { return q_[0].mode(); }
    uint32_t cached_frames() const;
    const char* error() const { return err_; }

    size_t rx_burst(Frame* out, size_t n) override;
    bool rx_ready() const override;
    void rx_release(const Frame* frames, size_t n) override;
    size_t tx_alloc(Frame* out, size_t n) override;
    void tx_submit(const Frame* frames, size_t n) override;
    void tx_abandon(const Frame* frames, size_t n) override;
    void tx_flush() override;
    uint32_t tx_capacity() const override { return q_[tx_].tx_capacity(); }
    bool tx_csum_offload() const override { return q_[tx_].tx_csum_offload(); }
    // The XSK itself with one queue; with several, an epoll set of all of them.
    int wait_fd() const override { return wait_fd_; }

private:
    // A received frame's handle carries its queue above the UMEM address.
    static constexpr int kQueueShift = 56;
    static constexpr uint64_t kAddrMask = (uint64_t(1) << kQueueShift) - 1;

    XskDevice q_[kMaxXskQueues];
    uint32_t n_ = 0;
    uint32_t tx_ = 0;
    uint32_t next_rx_ = 0;  // the queue rx_burst() starts with (round robin)
    int epfd_ = -1;
    int wait_fd_ = -1;
    char err_[256] = {};
};

}  // namespace fastnet
