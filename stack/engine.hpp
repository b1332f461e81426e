// The engine: one per application thread. Owns a device, the flow and listener tables,
// the timer wheel, the buffer pools and every socket it created or accepted.
// This header is the contract the interposer (interpose/) and the tools build on:
// non-blocking BSD-like operations returning a value >= 0 or -errno, readiness as
// EPOLL* bits, time passed in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>
#include <sys/socket.h>

#include "stack/device.hpp"

namespace fastnet {

using SockId = uint32_t;               // an engine-local socket handle
inline constexpr SockId kNoSock = ~0u;

// Host-order IPv4 address and port.
struct Endpoint {
    uint32_t ip = 0;
    uint16_t port = 0;
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

enum class CongestionControl : uint8_t { Cubic, NewReno };

struct EngineConfig {
    uint8_t mac[6] = {};
    uint32_t ip = 0;                   // host order
    uint32_t netmask = 0xffffff00;
    uint32_t gateway = 0;              // 0: no default route
    uint16_t mtu = 1500;

    // Active-open ports: owner slot = (port - port_base) % nslots (Fastsocket RFD).
    uint16_t port_base = 40000;
    uint16_t port_count = 16384;
    uint16_t slot = 0;
    uint16_t nslots = 1;

    // Starting buffer limits (data bytes), and the most autotuning grows them to: the
    // send queue with the congestion window, the receive window with what the
    // application reads per round trip (Linux tcp_wmem / tcp_rmem: 4 MiB and 6 MiB
    // maxima). The window scale offered in the SYN follows rcvbuf_max.
    uint32_t sndbuf = 256 * 1024;
    uint32_t rcvbuf = 256 * 1024;
    uint32_t sndbuf_max = 4 << 20;
    uint32_t rcvbuf_max = 6 << 20;
    // SO_SNDBUF / SO_RCVBUF take at most these (Linux net.core.wmem_max / rmem_max) and
    // set twice the value, as Linux does.
    uint32_t wmem_max = 212992;
    uint32_t rmem_max = 212992;
    uint32_t max_sockets = 65536;
    uint32_t syn_backlog = 1024;       // half-open per listener before SYN cookies
    TimeNs rto_min = 200'000'000;      // Linux's TCP_RTO_MIN
    TimeNs rto_initial = 1'000'000'000;// RFC 6298 (2.1)
    TimeNs msl = 30'000'000'000;       // TIME_WAIT lasts 2*msl
    TimeNs delack = 40'000'000;
    // net.ipv4.tcp_notsent_lowat: the TCP_NOTSENT_LOWAT of a socket that set none
    // (Linux's default: no limit).
    uint32_t notsent_lowat = ~0u;
    CongestionControl cc = CongestionControl::Cubic;
    uint64_t isn_secret[2] = {};       // RFC 6528 key; 0,0 means "pick a random one"
    // Whether a socket call kicks the device itself (one kick per call). false: its
    // frames wait in the TX ring for the next poll() or flush(), so the output of a
    // whole event loop turn leaves in one kick (the interposer's choice).
    bool flush_per_call = true;
    // Accept a TCP segment whose checksum field holds the pseudo-header sum, what a
    // kernel peer with TX checksum offload hands over on a veth (CHECKSUM_PARTIAL; every
    // container's veth has it on). Counted in EngineStats::rx_csum_partial; any other
    // bad checksum is still a drop. engine_config_from_kernel() sets it for veth only.
    bool accept_csum_partial = false;
};

// Resolves an IPv4 next hop to a MAC. The AF_XDP runtime backs it with the kernel's
// neighbour table; tests use a static map. Returning false means "not yet": the engine
// queues nothing and retries the output later.
class Neighbours {
public:
    virtual ~Neighbours() = default;
    virtual bool resolve(uint32_t next_hop_ip, uint8_t mac_out[6]) = 0;
    // The next hop for a destination by the interface's routes more specific than its
    // default route (a /32 via a gateway, a container route); 0: none applies, and the
    // engine takes its subnet and EngineConfig::gateway.
    virtual uint32_t next_hop(uint32_t /*dst_ip*/) const { return 0; }
};

// Told whenever a socket's readiness may have changed (for edge-triggered epoll).
class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void on_events(SockId sock, uint32_t events) = 0;
    // A socket that came from another engine (Engine::move_to) is released: whatever
    // steered its flow here can go.
    virtual void on_moved_flow_released(Endpoint /*local*/, Endpoint /*remote*/) {}
};

// Counters are monotonic; fastnet-stat reads them. Drop reasons are named in
// drop_reason_name().
enum class Drop : uint8_t {
    Malformed, BadChecksum, NotForUs, NoSocket, OutOfWindow, Paws, NoBuffer,
    BacklogFull, Fragment, Other, Count_
};
const char* drop_reason_name(Drop d);

struct EngineStats {
    uint64_t frames_rx = 0, frames_tx = 0, bytes_rx = 0, bytes_tx = 0;
    uint64_t conn_opened = 0, conn_accepted = 0, conn_closed = 0, conn_reset = 0;
    uint64_t retransmits = 0, syn_cookies_sent = 0, challenge_acks = 0;
    // Output held back for a later poll: next hop not resolved / no device TX buffer.
    uint64_t tx_unresolved = 0, tx_no_buffer = 0;
    // Connections moved between engines (Engine::move_to), and frames of a moved flow
    // that still reached the old engine and were handed to the new one.
    uint64_t moved_out = 0, moved_in = 0, frames_forwarded = 0;
    // Connections handed to the kernel (Engine::detach after handover_state).
    uint64_t handed_over = 0;
    // Segments accepted with the pseudo-header sum as their checksum (accept_csum_partial).
    uint64_t rx_csum_partial = 0;
    // Segments sent with their TCP checksum left to the device (Device::tx_csum_offload).
    uint64_t tx_csum_offload = 0;
    // Buffer autotuning steps: a receive window or send queue limit raised.
    uint64_t rcvbuf_grown = 0, sndbuf_grown = 0;
    uint64_t drops[static_cast<int>(Drop::Count_)] = {};
};

class Engine {
public:
    Engine(const EngineConfig& cfg, Device& dev, Neighbours& nb);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Driving. poll() runs one round: RX burst → TCP input → due timers → TX → kick.
    void poll(TimeNs now);
    // Sets the clock socket calls between polls use (RTT stamps, timers); never backwards.
    void set_time(TimeNs now);
    TimeNs next_deadline() const;      // ~0ull when nothing is scheduled
    // Output of socket calls not yet kicked out (flush_per_call = false), and the kick.
    bool tx_deferred() const;
    void flush();
    // Frames already received but not yet run through TCP (in the device's RX ring, or
    // handed over from another engine), known without a syscall. A call that reports
    // state (accept, FIONREAD, SO_ERROR, the send window...) runs take_rx() first so it
    // answers as of now, not as of the last poll.
    bool rx_waiting() const;
    // Runs the waiting frames through TCP and queues the output, as a socket call does:
    // no timers, no syscall; the kick is left to flush() or the next poll when
    // flush_per_call is false.
    void take_rx(TimeNs now);
    void set_event_sink(EventSink* sink);

    // Sockets (SOCK_STREAM, IPv4). All non-blocking: -EAGAIN / -EINPROGRESS.
    int socket();                                          // SockId or -errno
    int bind(SockId s, Endpoint local);
    int listen(SockId s, int backlog);
    int accept(SockId s, Endpoint* peer);                 // new SockId or -errno
    int connect(SockId s, Endpoint remote);               // -EINPROGRESS, then events
    // flags: MSG_MORE (hold a partial segment, as TCP_CORK, until the next write or ACK),
    // MSG_EOR (the next write starts a new segment). continues: the caller's write goes on
    // with its next buffer (writev), so this is no write boundary (no PSH, no EOR here).
    ssize_t send(SockId s, const void* buf, size_t len, int flags, bool continues = false);
    ssize_t recv(SockId s, void* buf, size_t len, int flags);   // MSG_PEEK, MSG_WAITALL ignored
    int shutdown(SockId s, int how);                      // SHUT_RD / SHUT_WR / SHUT_RDWR
    int close(SockId s);                                  // orderly (or RST per SO_LINGER 0)
    int abort(SockId s);                                  // RST, release now
    uint32_t events(SockId s) const;                      // EPOLLIN|OUT|ERR|HUP|RDHUP
                                                          // (OUT: below TCP_NOTSENT_LOWAT too)
    int setsockopt(SockId s, int level, int name, const void* val, socklen_t len);
    int getsockopt(SockId s, int level, int name, void* val, socklen_t* len);
    int local_endpoint(SockId s, Endpoint* out) const;
    int remote_endpoint(SockId s, Endpoint* out) const;
    size_t unread(SockId s) const;                         // FIONREAD
    size_t unsent(SockId s) const;                         // SIOCOUTQ

    // Moves an accepted connection to `dst`, another engine on the same address (a
    // socket the application serves from another thread follows that thread;
    // docs/DESIGN.md "Cross-thread use"). The caller holds both engines and has already
    // steered the flow to dst's device; frames of the flow that still reach this engine
    // during kMovedForwardNs go to dst's inbox, in arrival order. Returns the socket's
    // id in dst or -errno: -EINVAL for what cannot move (listeners, active opens — their
    // port belongs to this engine's share —, half-open or closed sockets), -ENOBUFS,
    // -EEXIST.
    int move_to(SockId s, Engine& dst);
    static constexpr TimeNs kMovedForwardNs = 1'000'000'000;

    // Handover of a live connection to the kernel (TCP_REPAIR; stack/handover.cpp):
    // connections() lists the connections that still have something to deliver (data
    // unsent or unacknowledged, or a FIN), closed ones included; handover_state() is
    // what a kernel socket needs to continue one (-EINVAL when it cannot: not
    // synchronized, unread data); detach() forgets it without a segment, and frames of
    // its flow that still arrive are dropped and counted for kMovedForwardNs.
    struct HandoverState {
        Endpoint local, remote;
        uint32_t snd_una = 0, snd_nxt = 0, rcv_nxt = 0;   // snd_nxt excludes a sent FIN
        uint32_t snd_wl1 = 0, snd_wnd = 0, max_window = 0, rcv_wnd = 0, rcv_wup = 0;
        uint16_t mss = 0;                  // the peer's MSS
        uint8_t snd_wscale = 0, rcv_wscale = 0;
        bool ws_ok = false, sack_ok = false, ts_ok = false;
        uint32_t tsval = 0;                // this connection's timestamp clock now
        bool fin = false;                  // a FIN follows the data (closed or SHUT_WR)
        std::vector<uint8_t> data;         // from snd_una: sent first, then unsent
        std::vector<uint8_t> unread;       // received, not yet read (ends at rcv_nxt)
    };
    size_t connections(SockId* out, size_t cap) const;
    // with_unread: a socket that lives on (passed to another process) carries its unread
    // bytes; otherwise unread data refuses (the process is gone: the kernel would reset).
    int handover_state(SockId s, HandoverState* out, bool with_unread = false) const;
    void detach(SockId s);

    // Moves of a connection between processes (a connection accepted before fork() and
    // used in the child; interpose/xproc.cpp). export_connection() writes what another
    // engine needs to continue it: ConnState, then the unacknowledged and unsent bytes
    // (from snd_una), then the unread ones, into buf. Returns the bytes written after the
    // state, or -EAGAIN (out-of-order data waits to be filled in: try later), -EINVAL
    // (not an open, synchronized connection), -ENOSPC. release_exported() then forgets
    // it without a segment (frames of its flow still arriving are dropped for
    // kMovedForwardNs). import_connection() builds it in this engine, its timers armed,
    // and returns its SockId or -errno; expect_flow() drops (instead of answering with a
    // RST) frames of a flow about to be imported that arrive before it is.
    struct ConnState;
    int export_connection(SockId s, ConnState* out, uint8_t* buf, size_t cap) const;
    void release_exported(SockId s);
    int import_connection(const ConnState& in, const uint8_t* data);
    void expect_flow(Endpoint local, Endpoint remote);

    const EngineStats& stats() const;
    // For leak checks: every one is 0 once all sockets are closed and TIME_WAIT is over.
    size_t live_tcbs() const;
    size_t buffers_in_use() const;
    size_t timers_armed() const;

private:
    struct Impl;
    Impl* impl_;
};


// A connection's state as it moves between processes: explicit fields, never the Tcb's
// bytes (the two sides are the same library build, but the Tcb holds pointers, rings and
// list links). Times are CLOCK_MONOTONIC ns, the same in every process.
struct Engine::ConnState {
    Endpoint local, remote;
    uint8_t state = 0;                 // TcpState
    uint32_t iss = 0, snd_una = 0, snd_nxt = 0, snd_max = 0, snd_wl1 = 0, snd_wl2 = 0;
    uint32_t snd_wnd = 0, max_snd_wnd = 0;
    uint32_t irs = 0, rcv_nxt = 0, rcv_adv = 0, last_ack_sent = 0, rcv_wnd = 0;
    uint8_t snd_wscale = 0, rcv_wscale = 0;
    bool ws_ok = false, ts_ok = false, sack_ok = false;
    uint32_t ts_recent = 0, ts_offset = 0;
    TimeNs ts_recent_age = 0;
    uint16_t snd_mss = 0, rcv_mss = 0, adv_mss = 0, user_mss = 0, rcv_mss_est = 0;
    bool fin_queued = false, fin_sent = false, fin_acked = false, fin_rcvd = false;
    bool rd_shutdown = false;
    uint32_t fin_seq = 0;
    uint32_t sndbuf = 0, rcvbuf = 0;
    bool sndbuf_lock = false, rcvbuf_lock = false;
    // Receive buffer autotuning and the receiver's RTT estimate.
    uint32_t rcvq_space = 0, rcvq_copied = 0, rcv_rtt_seq = 0;
    TimeNs rcvq_time = 0, rcv_rtt = 0, rcv_rtt_time = 0;
    // RTT and congestion state: value types without pointers (checked where copied).
    alignas(8) uint8_t rtt[128] = {};
    alignas(8) uint8_t cc[256] = {};
    uint32_t total_retrans = 0;
    TimeNs last_send = 0, last_recv = 0, una_since = 0;
    bool pingpong = false, data_rcvd = false;
    // Socket options.
    bool nodelay = false, keepalive = false, reuseaddr = false, reuseport = false;
    bool linger_on = false, cork = false;
    int linger_secs = 0, so_error = 0;
    TimeNs keepidle = 0, keepintvl = 0, user_timeout = 0;
    uint32_t keepcnt = 0, notsent_lowat = 0;
    // What follows the state in the transfer buffer.
    uint32_t snd_len = 0, rcv_len = 0;
};

}  // namespace fastnet
