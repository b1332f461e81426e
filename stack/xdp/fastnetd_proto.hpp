// fastnetd's protocol: what a client (libfastnet.so) and the daemon (tools/fastnetd.cpp)
// say over the daemon's Unix socket (SOCK_SEQPACKET, one message per request and reply,
// fds with SCM_RIGHTS). docs/DESIGN.md "fastnetd".
//   HELLO -> reply + fds: the program's maps (Steering::kMapCount), its bpf_link, then
//            per RX queue the UMEM's memfd and fastnetd's UMEM socket.
//   XSK q -> reply + 1 fd: a fresh, unbound AF_XDP socket for queue q (the client sizes,
//            maps and binds it: only creating one needs CAP_NET_RAW).
//   STATUS -> DaemonStatus: fastnetd's view, for fastnet-stat --daemon.
//   HANDOVER (DaemonHandover + 1 fd) -> reply: at the client's exit, a connection that
//            still has data or a FIN to deliver continues in a kernel socket fastnetd
//            builds with TCP_REPAIR (CAP_NET_ADMIN) and closes at once; the fd is a
//            sealed memfd with the bytes from snd_una. The client then steers the flow
//            to the kernel and detaches it (docs/DESIGN.md "Kernel handover").
// A refused client gets status -EACCES and a message it prints.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "stack/engine.hpp"

namespace fastnet {

inline constexpr uint32_t kDaemonMagic = 0x666e6431;   // "fnd1"
inline constexpr uint32_t kDaemonVersion = 1;
inline constexpr const char* kDaemonDir = "/run/fastnet";
inline constexpr int kDaemonMaxFds = 64;

enum class DaemonOp : uint32_t { Hello = 1, Xsk = 2, Status = 3, Handover = 4 };
// The most bytes a HANDOVER carries: the library's largest send buffer
// (FASTNET_SNDBUF_MAX accepts up to 1 GiB).
inline constexpr uint32_t kDaemonHandoverMax = 1u << 30;

struct DaemonRequest {
    uint32_t magic = kDaemonMagic;
    uint32_t version = kDaemonVersion;
    DaemonOp op = DaemonOp::Hello;
    uint32_t queue = 0;
};

struct DaemonReply {
    uint32_t magic = kDaemonMagic;
    uint32_t version = kDaemonVersion;
    int32_t status = 0;             // 0 or -errno
    char message[160] = {};         // why, when status < 0
    uint32_t ifindex = 0;
    uint32_t native = 0;            // XDP attached in driver mode
    uint32_t queues = 0;
    uint32_t frame_count = 0, frame_size = 0, fill_size = 0, comp_size = 0;
    uint32_t port_base = 0, port_count = 0;   // the active-open range fastnetd set up
    uint32_t nfds = 0;
};

// Engine::HandoverState on the wire (host byte order: both ends are on this host), its
// data in the memfd that comes with it (sealed against shrinking, data_len bytes).
struct DaemonHandover {
    DaemonRequest rq{kDaemonMagic, kDaemonVersion, DaemonOp::Handover, 0};
    uint32_t local_ip = 0, remote_ip = 0;
    uint16_t local_port = 0, remote_port = 0;
    uint32_t snd_una = 0, snd_nxt = 0, rcv_nxt = 0;
    uint32_t snd_wl1 = 0, snd_wnd = 0, max_window = 0, rcv_wnd = 0, rcv_wup = 0;
    uint32_t tsval = 0;
    uint16_t mss = 0;
    uint8_t snd_wscale = 0, rcv_wscale = 0;
    uint8_t ws_ok = 0, sack_ok = 0, ts_ok = 0, fin = 0;
    uint32_t data_len = 0;
};

inline DaemonHandover to_daemon_handover(const Engine::HandoverState& h)
{
    DaemonHandover m;
    m.local_ip = h.local.ip;
    m.local_port = h.local.port;
    m.remote_ip = h.remote.ip;
    m.remote_port = h.remote.port;
    m.snd_una = h.snd_una;
    m.snd_nxt = h.snd_nxt;
    m.rcv_nxt = h.rcv_nxt;
    m.snd_wl1 = h.snd_wl1;
    m.snd_wnd = h.snd_wnd;
    m.max_window = h.max_window;
    m.rcv_wnd = h.rcv_wnd;
    m.rcv_wup = h.rcv_wup;
    m.tsval = h.tsval;
    m.mss = h.mss;
    m.snd_wscale = h.snd_wscale;
    m.rcv_wscale = h.rcv_wscale;
    m.ws_ok = h.ws_ok;
    m.sack_ok = h.sack_ok;
    m.ts_ok = h.ts_ok;
    m.fin = h.fin;
    m.data_len = static_cast<uint32_t>(h.data.size());
    return m;
}

// The state without its data (fastnetd maps that from the memfd).
inline Engine::HandoverState from_daemon_handover(const DaemonHandover& m)
{
    Engine::HandoverState h;
    h.local = Endpoint{m.local_ip, m.local_port};
    h.remote = Endpoint{m.remote_ip, m.remote_port};
    h.snd_una = m.snd_una;
    h.snd_nxt = m.snd_nxt;
    h.rcv_nxt = m.rcv_nxt;
    h.snd_wl1 = m.snd_wl1;
    h.snd_wnd = m.snd_wnd;
    h.max_window = m.max_window;
    h.rcv_wnd = m.rcv_wnd;
    h.rcv_wup = m.rcv_wup;
    h.tsval = m.tsval;
    h.mss = m.mss;
    h.snd_wscale = m.snd_wscale;
    h.rcv_wscale = m.rcv_wscale;
    h.ws_ok = m.ws_ok != 0;
    h.sack_ok = m.sack_ok != 0;
    h.ts_ok = m.ts_ok != 0;
    h.fin = m.fin != 0;
    return h;
}

struct DaemonStatus {
    uint32_t magic = kDaemonMagic;
    uint32_t version = kDaemonVersion;
    int32_t status = 0;
    char ifname[16] = {};
    int32_t pid = 0, keeper = 0;      // fastnetd, and its ring keeper
    uint32_t clients = 0;             // connections open to fastnetd now
    uint32_t queues = 0;
    uint32_t frames = 0;              // per queue
    uint32_t free_frames[16] = {};    // per queue: in the free list
    uint32_t fill_frames[16] = {};    // per queue: in the fill ring
    int32_t slot_pid[16] = {};        // the process holding each slot, 0 = free
    uint64_t handovers = 0;           // clients' connections handed to the kernel
    uint64_t handovers_refused = 0;   // HANDOVER requests refused (bad input, failed repair)
    uint64_t clients_exited = 0;      // client processes seen to exit (pidfd), slots reaped
    uint32_t pidfd = 0;               // 1: dead clients are seen through pidfds
};

// One message with up to kDaemonMaxFds fds. 0 or -errno.
inline int daemon_send(int sock, const void* msg, size_t len, const int* fds, uint32_t nfds)
{
    if (nfds > kDaemonMaxFds)
        return -EINVAL;
    iovec iov{const_cast<void*>(msg), len};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kDaemonMaxFds)] = {};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfds) {
        mh.msg_control = ctl;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(len) ? 0 : n < 0 ? -errno : -EPROTO;
}

// One message of exactly len bytes; received fds (close-on-exec) into fds, their count
// into *nfds. 0 or -errno (-EPROTO for a short or oversized message; fds then closed).
// With got_len, a shorter message is accepted and its length stored there.
inline int daemon_recv(int sock, void* msg, size_t len, int* fds, uint32_t* nfds,
                       size_t* got_len = nullptr)
{
    iovec iov{msg, len};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kDaemonMaxFds)] = {};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    ssize_t n;
    do n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    uint32_t got = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        uint32_t k = static_cast<uint32_t>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (uint32_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (got < kDaemonMaxFds && fds) fds[got++] = fd;
            else ::close(fd);
        }
    }
    if (nfds)
        *nfds = got;
    if (n == 0)
        return -ECONNRESET;
    if ((got_len ? static_cast<size_t>(n) > len : static_cast<size_t>(n) != len) ||
        (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        for (uint32_t i = 0; i < got; i++)
            ::close(fds[i]);
        if (nfds)
            *nfds = 0;
        return -EPROTO;
    }
    if (got_len)
        *got_len = static_cast<size_t>(n);
    return 0;
}

}  // namespace fastnet
