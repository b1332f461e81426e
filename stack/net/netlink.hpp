// A raw NETLINK_ROUTE socket and attribute walking: the one place that speaks rtnetlink.
// interface.cpp, route.cpp and neighbour.cpp build requests and read replies through it;
// nothing here is on a per-packet path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

namespace fastnet {

// Walks the rtattr list that follows a fixed header. Attribute lengths come from the
// kernel, but are still checked, so a short or malformed message ends the walk instead
// of reading past it.
class RtAttrs {
public:
    RtAttrs(const void* data, size_t len) : p_(static_cast<const uint8_t*>(data)), left_(len) {}
    // The next attribute, or nullptr at the end.
    const rtattr* next();

    static const void* data(const rtattr* a) { return RTA_DATA(a); }
    static size_t len(const rtattr* a) { return RTA_PAYLOAD(a); }
    // Copies a fixed-size payload; false when the attribute has another size.
    static bool get(const rtattr* a, void* out, size_t n);

private:
    const uint8_t* p_;
    size_t left_;
};

// Appends an attribute to a request being built in a caller's buffer; false when it
// does not fit. `cap` is the buffer's size; nlmsg_len is updated.
bool nl_put_attr(nlmsghdr* h, size_t cap, uint16_t type, const void* data, size_t len);

class NetlinkSocket {
public:
    // Called for each reply message (never NLMSG_DONE/NLMSG_ERROR/NLMSG_NOOP).
    // Return false to stop reading early (the remaining replies are then drained).
    using Callback = bool (*)(const nlmsghdr* h, void* ctx);

    NetlinkSocket() = default;
    ~NetlinkSocket();
    NetlinkSocket(const NetlinkSocket&) = delete;
    NetlinkSocket& operator=(const NetlinkSocket&) = delete;

    // groups: RTMGRP_* bits to subscribe to (0: none). 0 or -errno.
    int open(uint32_t groups = 0, bool nonblocking = false);
    void close();
    int fd() const { return fd_; }
    bool is_open() const { return fd_ >= 0; }

    // Sends one request (NLM_F_REQUEST is added, nlmsg_seq assigned) and returns its
    // sequence number (> 0) or -errno. Non-blocking sockets may answer -EAGAIN.
    long send(nlmsghdr* req);

    // Sends a request and reads its replies until NLMSG_DONE (dumps) or the ack/error
    // (set NLM_F_ACK for requests without a reply). Messages of other sequences
    // (multicast notifications) go to `other` when given. Blocking socket only.
    // 0, the kernel's -errno, or -ETIMEDOUT after 5 s without an answer.
    int transact(nlmsghdr* req, Callback on_reply, void* ctx,
                 Callback other = nullptr, void* other_ctx = nullptr);

    // Reads every datagram already queued (non-blocking) and calls fn for each message,
    // acks and errors included. Returns messages seen, or -errno: -ENOBUFS means the
    // kernel dropped notifications (the receive queue overflowed), so the caller's view
    // is stale and must be rebuilt from a dump.
    int drain(Callback fn, void* ctx);

private:
    int fd_ = -1;
    uint32_t seq_ = 0;
    // Dumps arrive in datagrams of up to ~32 KiB (the kernel's default); 64 KiB is
    // enough for any single datagram of the families used here.
    static constexpr size_t kBufSize = 64 * 1024;
    uint8_t* buf_ = nullptr;
};

// Host-order IPv4 helpers shared by the net/ files.
inline uint32_t prefix_to_netmask(unsigned prefix_len) {
    return prefix_len == 0 ? 0 : prefix_len >= 32 ? 0xffffffffu : ~0u << (32 - prefix_len);
}

}  // namespace fastnet
