// An engine's XSKs across RX queues; see xsk_queues.hpp.
#include "stack/xdp/xsk_queues.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace fastnet {

XskQueues::~XskQueues() { close(); }

int XskQueues::open(Umem* umems, uint32_t n, const XskConfig& cfg, uint32_t tx_queue,
                    const std::function<int(uint32_t)>& socket_for)
{
    close();
    err_[0] = 0;
    if (n == 0 || n > kMaxXskQueues || tx_queue >= n) {
        snprintf(err_, sizeof err_, "%u queues (transmitting on %u): expected 1..%u", n,
                 tx_queue, kMaxXskQueues);
        return -EINVAL;
    }
    for (uint32_t q = 0; q < n; q++) {
        XskConfig c = cfg;
        c.queue = q;
        c.rx_only = n > 1 && q != tx_queue;
        int r;
        if (socket_for) {
            int fd = socket_for(q);
            r = fd < 0 ? fd : q_[q].open_socket(umems[q], fd, c);
            if (fd >= 0 && r < 0)
                ::close(fd);
            if (fd < 0)
                snprintf(err_, sizeof err_, "no AF_XDP socket for queue %u from fastnetd: %s", q,
                         strerror(-fd));
            else if (r < 0)
                snprintf(err_, sizeof err_, "%s", q_[q].error());
        } else {
            r = q_[q].open(umems[q], c);
            if (r < 0)
                snprintf(err_, sizeof err_, "%s", q_[q].error());
        }
        if (r < 0) {
            for (uint32_t k = 0; k < q; k++)
                q_[k].close();
            return r;
        }
    }
    n_ = n;
    tx_ = tx_queue;
    next_rx_ = 0;
    if (n == 1) {
        wait_fd_ = q_[0].fd();
        return 0;
    }
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    int r = epfd_ < 0 ? -errno : 0;
    for (uint32_t q = 0; q < n && r == 0; q++) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = q;
        if (epoll_ctl(epfd_, EPOLL_CTL_ADD, q_[q].fd(), &ev) < 0)
            r = -errno;
    }
    if (r < 0) {
        snprintf(err_, sizeof err_, "an epoll set for %u XSKs: %s", n, strerror(-r));
        close();
        return r;
    }
    wait_fd_ = epfd_;
    return 0;
}

void XskQueues::close()
{
    if (epfd_ >= 0)
        ::close(epfd_);
    epfd_ = wait_fd_ = -1;
    for (uint32_t q = 0; q < n_; q++)
        q_[q].close();
    n_ = 0;
}

uint32_t XskQueues::cached_frames() const
{
    uint32_t sum = 0;
    for (uint32_t q = 0; q < n_; q++)
        sum += q_[q].cached_frames();
    return sum;
}

size_t XskQueues::rx_burst(Frame* out, size_t n)
{
    if (n_ <= 1)
        return q_[0].rx_burst(out, n);
    size_t got = 0;
    for (uint32_t k = 0; k < n_ && got < n; k++) {
        uint32_t q = (next_rx_ + k) % n_;
        size_t m = q_[q].rx_burst(out + got, n - got);
        for (size_t i = got; i < got + m; i++)
            out[i].handle |= uint64_t(q) << kQueueShift;
        got += m;
    }
    next_rx_ = (next_rx_ + 1) % n_;
    return got;
}

bool XskQueues::rx_ready() const
{
    for (uint32_t q = 0; q < n_; q++)
        if (q_[q].rx_ready())
            return true;
    return false;
}

void XskQueues::rx_release(const Frame* frames, size_t n)
{
    if (n_ <= 1) {
        q_[0].rx_release(frames, n);
        return;
    }
    // Runs of frames from one queue go back to that queue's socket.
    Frame run[64];
    size_t i = 0;
    while (i < n) {
        uint32_t q = static_cast<uint32_t>(frames[i].handle >> kQueueShift);
        size_t m = 0;
        while (i < n && m < 64 && (frames[i].handle >> kQueueShift) == q) {
            run[m] = frames[i++];
            run[m++].handle &= kAddrMask;
        }
        if (q < n_)
            q_[q].rx_release(run, m);
    }
}

// Frames for transmission come from the TX queue's UMEM and go back to it unchanged.
size_t XskQueues::tx_alloc(Frame* out, size_t n) { return q_[tx_].tx_alloc(out, n); }
void XskQueues::tx_submit(const Frame* frames, size_t n) { q_[tx_].tx_submit(frames, n); }
void XskQueues::tx_abandon(const Frame* frames, size_t n) { q_[tx_].tx_abandon(frames, n); }
void XskQueues::tx_flush() { q_[tx_].tx_flush(); }

}  // namespace fastnet
