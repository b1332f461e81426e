// The raw NETLINK_ROUTE socket: open/subscribe, request → replies, non-blocking drain.
// Used by interface.cpp, route.cpp, neighbour.cpp.
#include "stack/net/netlink.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace fastnet {

const rtattr* RtAttrs::next() {
    if (left_ < sizeof(rtattr)) return nullptr;
    auto* a = reinterpret_cast<const rtattr*>(p_);
    if (a->rta_len < sizeof(rtattr) || a->rta_len > left_) {
        left_ = 0;
        return nullptr;
    }
    size_t step = RTA_ALIGN(a->rta_len);
    if (step > left_) step = left_;
    p_ += step;
    left_ -= step;
    return a;
}

bool RtAttrs::get(const rtattr* a, void* out, size_t n) {
    if (RTA_PAYLOAD(a) != n) return false;
    std::memcpy(out, RTA_DATA(a), n);
    return true;
}

bool nl_put_attr(nlmsghdr* h, size_t cap, uint16_t type, const void* data, size_t len) {
    size_t off = NLMSG_ALIGN(h->nlmsg_len);
    size_t alen = RTA_LENGTH(len);
    if (off + RTA_ALIGN(alen) > cap) return false;
    auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<uint8_t*>(h) + off);
    a->rta_type = type;
    a->rta_len = static_cast<unsigned short>(alen);
    if (len) std::memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = static_cast<uint32_t>(off + RTA_ALIGN(alen));
    return true;
}

NetlinkSocket::~NetlinkSocket() { close(); }

void NetlinkSocket::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    std::free(buf_);
    buf_ = nullptr;
}

int NetlinkSocket::open(uint32_t groups, bool nonblocking) {
    close();
    buf_ = static_cast<uint8_t*>(std::malloc(kBufSize));
    if (!buf_) return -ENOMEM;
    int type = SOCK_RAW | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    fd_ = ::socket(AF_NETLINK, type, NETLINK_ROUTE);
    if (fd_ < 0) {
        int e = errno;
        close();
        return -e;
    }
    // Notifications come in bursts (a neighbour flap on a busy host); a larger queue
    // makes an overflow (ENOBUFS → full re-dump) rarer.
    int rcvbuf = 1 << 20;
    (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    // Errors then carry no copy of our request: the replies stay small.
    int one = 1;
    (void)::setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    if (!nonblocking) {
        // The kernel answers rtnetlink requests at once; a reply that never comes must
        // not hang start-up.
        timeval tv{5, 0};
        (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = groups;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        int e = errno;
        close();
        return -e;
    }
    return 0;
}

long NetlinkSocket::send(nlmsghdr* req) {
    if (fd_ < 0) return -EBADF;
    req->nlmsg_flags |= NLM_F_REQUEST;
    if (++seq_ == 0) ++seq_;
    req->nlmsg_seq = seq_;
    req->nlmsg_pid = 0;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    for (;;) {
        ssize_t n = ::sendto(fd_, req, req->nlmsg_len, 0,
                             reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
        if (n >= 0) return seq_;
        if (errno != EINTR) return -errno;
    }
}

int NetlinkSocket::transact(nlmsghdr* req, Callback on_reply, void* ctx, Callback other,
                            void* other_ctx) {
    const bool dump = (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
    long seq = send(req);
    if (seq < 0) return static_cast<int>(seq);
    bool stop = false;
    for (;;) {
        ssize_t n = ::recv(fd_, buf_, kBufSize, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            // ENOBUFS here concerns notifications on a subscribed socket, not our reply.
            if (errno == ENOBUFS) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return -ETIMEDOUT;
            return -errno;
        }
        size_t left = static_cast<size_t>(n);
        for (auto* h = reinterpret_cast<const nlmsghdr*>(buf_); NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != static_cast<uint32_t>(seq)) {
                if (other) other(h, other_ctx);
                continue;
            }
            if (h->nlmsg_type == NLMSG_DONE) return 0;
            if (h->nlmsg_type == NLMSG_ERROR) {
                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return -EPROTO;
                auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                // error 0 is the ack of a request sent with NLM_F_ACK.
                return err->error;
            }
            if (h->nlmsg_type == NLMSG_NOOP) continue;
            if (!stop && !on_reply(h, ctx)) stop = true;
            // A plain request (not a dump) without NLM_F_ACK gets exactly one reply.
            if (!dump && !(req->nlmsg_flags & NLM_F_ACK)) return 0;
        }
    }
}

int NetlinkSocket::drain(Callback fn, void* ctx) {
    if (fd_ < 0) return -EBADF;
    int seen = 0;
    for (;;) {
        ssize_t n = ::recv(fd_, buf_, kBufSize, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return seen;
            return -errno;
        }
        size_t left = static_cast<size_t>(n);
        for (auto* h = reinterpret_cast<const nlmsghdr*>(buf_); NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            ++seen;
            fn(h, ctx);
        }
    }
}

}  // namespace fastnet
