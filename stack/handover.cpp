// Hands a live connection to the kernel: a kernel socket continues it where the engine
// left off, with CRIU's TCP_REPAIR recipe (docs/DESIGN.md "Kernel handover"). Used at
// process exit for connections that still have data or a FIN to deliver: the kernel
// finishes them after the process is gone, as it would its own sockets.
// Runtime::at_exit() → Engine::handover_state() → repair_into_kernel() → Engine::detach(),
// or through fastnetd (no CAP_NET_ADMIN): the client's state → fastnetd's HANDOVER op →
// repair_into_kernel() there. Plain libc calls: the preloaded library calls this from
// its wrappers and exit paths, where its re-entry guard sends them to libc.
#include "stack/handover.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace fastnet {

namespace {

// Writes all of buf without blocking (the send buffer was sized for it).
bool send_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

}  // namespace

int repair_into_kernel(const Engine::HandoverState& h, const char** step) {
    return repair_into_kernel(h, h.data.data(), h.data.size(), step);
}

int repair_into_kernel(const Engine::HandoverState& h, const uint8_t* data, size_t len, const char** step) {
    const char* dummy;
    if (!step) step = &dummy;
    *step = "socket";
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    auto fail = [&](int err) {
        ::close(fd);   // still in repair mode: closes without a segment
        return -err;
    };
    auto opt = [&](int name, const void* v, socklen_t optlen) {
        return ::setsockopt(fd, IPPROTO_TCP, name, v, optlen) == 0;
    };
    int on = 1;
    *step = "TCP_REPAIR";
    if (!opt(TCP_REPAIR, &on, sizeof on)) return fail(errno);   // EPERM without CAP_NET_ADMIN
    // The sequence numbers of both queues, before the socket is connected.
    *step = "TCP_QUEUE_SEQ";
    int q = TCP_SEND_QUEUE;
    uint32_t seq = h.snd_una;
    if (!opt(TCP_REPAIR_QUEUE, &q, sizeof q) || !opt(TCP_QUEUE_SEQ, &seq, sizeof seq)) return fail(errno);
    q = TCP_RECV_QUEUE;
    seq = h.rcv_nxt - static_cast<uint32_t>(h.unread.size());
    if (!opt(TCP_REPAIR_QUEUE, &q, sizeof q) || !opt(TCP_QUEUE_SEQ, &seq, sizeof seq)) return fail(errno);
    // Repair mode forces the address's reuse: the listener's port or an active-open
    // port in the reserved range binds. (SO_REUSEADDR here would undo that.)
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(h.local.ip);
    local.sin_port = htons(h.local.port);
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_addr.s_addr = htonl(h.remote.ip);
    remote.sin_port = htons(h.remote.port);
    *step = "bind/connect";
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote))   // no handshake
        return fail(errno);
    // What was negotiated on the SYNs, before any data enters the queues.
    tcp_repair_opt ro[4];
    int n = 0;
    ro[n++] = {TCPOPT_MAXSEG, h.mss};
    if (h.ws_ok) ro[n++] = {TCPOPT_WINDOW, uint32_t(h.snd_wscale) | uint32_t(h.rcv_wscale) << 16};
    if (h.sack_ok) ro[n++] = {TCPOPT_SACK_PERMITTED, 0};
    if (h.ts_ok) ro[n++] = {TCPOPT_TIMESTAMP, 0};
    *step = "TCP_REPAIR_OPTIONS";
    if (!opt(TCP_REPAIR_OPTIONS, ro, static_cast<socklen_t>(n * sizeof ro[0]))) return fail(errno);
    *step = "TCP_TIMESTAMP";
    if (h.ts_ok) {
        uint32_t ts = h.tsval;   // the kernel's TSval continues the engine's clock
        if (!opt(TCP_TIMESTAMP, &ts, sizeof ts)) return fail(errno);
    }
    tcp_repair_window w{h.snd_wl1, h.snd_wnd, h.max_window, h.rcv_wnd, h.rcv_wup};
    if (!h.unread.empty()) {
        // The socket's rcv_nxt is at the start of the unread bytes until they are queued:
        // the kernel refuses a window update point (or a last window update) beyond it.
        const uint32_t base = h.rcv_nxt - static_cast<uint32_t>(h.unread.size());
        w.rcv_wup = base;
        if (static_cast<int32_t>(w.snd_wl1 - base) > 0) w.snd_wl1 = base;
    }
    *step = "TCP_REPAIR_WINDOW";
    if (!opt(TCP_REPAIR_WINDOW, &w, sizeof w)) return fail(errno);
    // Room for everything at once: the exiting process must not block here.
    int sb = static_cast<int>(std::min<size_t>(len * 4 + (1u << 20), 1u << 30));
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof sb))
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
    // Sent but unacknowledged: into the send queue as already sent (the kernel
    // retransmits it on its timer). Then out of repair mode; the rest is sent normally.
    size_t sent = std::min<size_t>(static_cast<uint32_t>(h.snd_nxt - h.snd_una), len);
    *step = "the send queue";
    q = TCP_SEND_QUEUE;
    if (!opt(TCP_REPAIR_QUEUE, &q, sizeof q)) return fail(errno);
    if (sent && !send_all(fd, data, sent)) return fail(errno ? errno : EIO);
    // Received and not yet read (a connection passed on): into the receive queue.
    if (!h.unread.empty()) {
        int rb = static_cast<int>(std::min<size_t>(h.unread.size() * 4 + (1u << 20), 1u << 30));
        if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof rb))
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
        *step = "the receive queue";
        q = TCP_RECV_QUEUE;
        if (!opt(TCP_REPAIR_QUEUE, &q, sizeof q) || !send_all(fd, h.unread.data(), h.unread.size()))
            return fail(errno ? errno : EIO);
    }
    *step = "leaving repair mode";
    int off = TCP_REPAIR_OFF;
    if (!opt(TCP_REPAIR, &off, sizeof off)) return fail(errno);
    *step = "the unsent data";
    if (len > sent && !send_all(fd, data + sent, len - sent)) {
        int err = errno ? errno : EIO;
        // Out of repair mode a close would send a FIN after a partial stream: abort.
        linger lg{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        ::close(fd);
        return -err;
    }
    return fd;
}

}  // namespace fastnet
