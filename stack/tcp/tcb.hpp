// The transmission control block (RFC 9293 3.3.1): one per socket, listeners included.
// Owned by the engine's socket table (stack/tcp/core.hpp); read and written by
// input.cpp (segment arrival), output.cpp (what to send), timers.cpp and engine.cpp.
#pragma once

#include <cstdint>

#include "stack/device.hpp"
#include "stack/engine.hpp"
#include "stack/tcp/byte_ring.hpp"
#include "stack/tcp/congestion.hpp"
#include "stack/tcp/reassembly.hpp"
#include "stack/tcp/rtt.hpp"
#include "stack/tcp/sack.hpp"
#include "stack/tcp/timer_wheel.hpp"
#include "stack/wire/seq.hpp"

namespace fastnet {

// RFC 9293 3.3.2 state names.
enum class TcpState : uint8_t {
    Closed, Listen, SynSent, SynReceived, Established, FinWait1, FinWait2,
    CloseWait, Closing, LastAck, TimeWait,
};
const char* tcp_state_name(TcpState s);
// The TCP_INFO tcpi_state value Linux uses (include/net/tcp_states.h).
uint8_t tcp_state_linux(TcpState s);

inline bool synchronized(TcpState s) {
    return s >= TcpState::Established || s == TcpState::SynReceived;
}

// TCP_INFO tcpi_options bits (include/uapi/linux/tcp.h).
inline constexpr uint8_t kTcpiOptTimestamps = 1, kTcpiOptSack = 2, kTcpiOptWscale = 4;

struct Tcb;

// A doubly linked intrusive list node; used for a listener's accept queue and the
// engine's "needs output" / "events changed" lists.
struct TcbLink {
    Tcb* prev = nullptr;
    Tcb* next = nullptr;
    bool linked = false;
};

struct Tcb {
    // Identity.
    SockId id = kNoSock;
    uint32_t gen = 0;               // bumped on every reuse of the slot
    TcpState state = TcpState::Closed;
    Endpoint local, remote;
    bool bound = false;             // holds local.port in the engine's port table
    bool in_flow_table = false;
    bool user_closed = false;       // close() was called: the socket is an orphan
    bool accepted = false;          // handed out by accept() (or active open)
    SockId listener = kNoSock;      // passive opens: the listener until accept()
    uint32_t listener_gen = 0;

    // Send sequence variables (RFC 9293 3.3.1).
    Seq iss, snd_una, snd_nxt, snd_wl1, snd_wl2;
    Seq snd_max;                    // highest sequence sent + 1 (BSD snd_max)
    Seq snd_buf_seq;                // sequence number of the first byte in `snd`
    uint32_t snd_wnd = 0;           // peer's window, already scaled
    uint32_t max_snd_wnd = 0;       // RFC 5961 5.2 MAX.SND.WND; SWS (RFC 9293 3.8.6.2.1)
    // Receive sequence variables.
    Seq irs, rcv_nxt;
    Seq rcv_adv;                    // right edge of the window we last advertised
    Seq last_ack_sent;              // RFC 7323 Last.ACK.sent
    uint32_t rcv_wnd = 0;           // the window we last advertised, unscaled

    // Negotiated options.
    uint8_t snd_wscale = 0;         // shift applied to the peer's window field
    uint8_t rcv_wscale = 0;         // shift we apply to our window field
    bool ws_ok = false, ts_ok = false, sack_ok = false;
    uint32_t ts_recent = 0;         // RFC 7323 TS.Recent
    TimeNs ts_recent_age = 0;
    uint32_t ts_offset = 0;         // per-connection TSval offset (as Linux)
    uint16_t snd_mss = 536;         // effective send MSS (payload bytes, options excluded)
    uint16_t rcv_mss = 536;         // MSS the peer announced (RFC 9293 3.7.1: 536 default)
    uint16_t adv_mss = 1460;        // MSS we announce
    uint16_t user_mss = 0;          // TCP_MAXSEG, 0 = none

    // FIN bookkeeping.
    bool fin_queued = false;        // shutdown(SHUT_WR) / close(): FIN follows the data
    bool fin_sent = false;          // FIN occupies sequence `fin_seq`
    bool fin_acked = false;
    Seq fin_seq;
    bool fin_rcvd = false;          // the peer's FIN was processed (rcv_nxt passed it)
    bool ooo_fin = false;           // a FIN beyond rcv_nxt waits for the hole to fill
    Seq ooo_fin_seq;
    bool rd_shutdown = false;       // SHUT_RD: discard what arrives

    // Buffers (allocated when the connection needs them, released on close).
    ByteRing snd, rcv;
    Reassembly ooo;
    // Limits in data bytes: what the send queue may hold (Linux sk_sndbuf, reported as
    // SO_SNDBUF) and the most the receive window offers (half of Linux's sk_rcvbuf,
    // which SO_RCVBUF reports doubled). The rings grow with them, never shrink.
    uint32_t sndbuf = 0, rcvbuf = 0;
    // SO_SNDBUF / SO_RCVBUF were set: no autotuning that way (Linux SOCK_*BUF_LOCK).
    bool sndbuf_lock = false, rcvbuf_lock = false;
    // Receive buffer autotuning (Linux tcp_rcv_space_adjust, "DRS"): bytes the
    // application read in the current measurement round, which lasts one receiver RTT.
    uint32_t rcvq_space = 0;        // the most read in one round so far
    uint32_t rcvq_copied = 0;
    TimeNs rcvq_time = 0;
    // The receiver's RTT estimate (Linux rcv_rtt_est): from timestamp echoes on data,
    // or without timestamps the time a window of data takes to arrive.
    TimeNs rcv_rtt = 0;
    Seq rcv_rtt_seq;
    TimeNs rcv_rtt_time = 0;

    // Loss recovery and congestion control.
    RttEstimator rtt;
    Congestion cc;
    SackScoreboard sb;
    bool rtt_timing = false;        // Karn (RFC 6298 3): one timed segment, never a retransmission
    Seq rtt_seq;
    TimeNs rtt_sent = 0;
    uint32_t dupacks = 0;
    bool in_recovery = false;       // RFC 6675 / RFC 6582 fast recovery
    Seq recover;                    // RecoveryPoint / "recover"
    Seq high_rxt;                   // RFC 6675 HighRxt
    Seq rescue_rxt;                 // RFC 6675 RescueRxt
    bool rescue_valid = false;
    // Lost retransmissions (RFC 8985 6.2, RACK, with one send time per batch instead of
    // per segment): a retransmission still un-SACKed RTT + reo_wnd after it left is lost
    // again. rxt_marks remember when high_rxt passed each point, oldest first;
    // [rxt_again, rxt_lost_end) holds retransmissions found lost and not yet re-sent.
    struct RxtMark { Seq end; TimeNs at; };
    static constexpr uint32_t kRxtMarks = 8;
    RxtMark rxt_marks[kRxtMarks];
    uint32_t rxt_mark_first = 0, rxt_mark_count = 0;
    Seq rxt_again, rxt_lost_end;
    // Tail loss probe (RFC 8985 7): rto_at runs as the probe timeout (PTO) while
    // tlp_armed; tlp_out until an ACK passes tlp_end (TLP.end_seq), one probe per episode.
    bool tlp_armed = false;
    bool tlp_out = false;
    Seq tlp_end;
    // Eifel detection (RFC 3522) with timestamps: a fast retransmit answered with an
    // echo older than the retransmission was spurious (reordering); undo the reduction.
    Congestion cc_prior;
    bool undo_valid = false;
    bool undone = false;            // this recovery's reduction was undone
    uint32_t undo_tsval = 0;
    Seq undo_seq;
    uint32_t spurious_undos = 0;
    uint32_t retransmits = 0;       // consecutive RTO expiries (tcpi_retransmits)
    uint32_t total_retrans = 0;
    uint32_t syn_retries = 0;
    TimeNs last_send = 0;           // for idle restart (RFC 5681 4.1)
    TimeNs last_recv = 0;           // keepalive idle
    bool acked_since_rto = true;
    // Counters for TCP_INFO (RFC 4898 names, as Linux reports them); nothing else reads them.
    struct Info {
        uint64_t bytes_acked = 0;       // SND.UNA advances, SYN and FIN included (Linux)
        uint64_t bytes_received = 0;    // RCV.NXT advances by data
        uint64_t bytes_sent = 0;        // payload sent, retransmissions included
        uint64_t bytes_retrans = 0;
        uint32_t segs_out = 0, segs_in = 0;
        uint32_t data_segs_out = 0, data_segs_in = 0;
        uint32_t dsack_dups = 0;        // D-SACK blocks received (RFC 2883)
        uint32_t rcv_ooopack = 0;       // segments that arrived beyond RCV.NXT
        uint32_t delivered = 0;         // segments acknowledged (in snd_mss units)
        uint32_t total_rto = 0;         // RTO expiries, SYN and SYN-ACK included
        uint32_t total_rto_recoveries = 0;
        uint64_t total_rto_ns = 0;      // time spent in RTO recoveries that ended
        TimeNs rto_recovery_start = 0;
        TimeNs last_ack_recv = 0;
        // Delivery rate: bytes acknowledged over the last interval of at least one SRTT.
        TimeNs rate_start = 0;
        uint64_t rate_bytes_start = 0;
        uint64_t delivery_rate = 0;     // bytes per second
    } info;

    // ACK generation.
    bool ack_now = false;
    bool delack_armed = false;
    uint32_t rcv_unacked_bytes = 0; // in-order bytes received since our last ACK
    uint16_t rcv_mss_est = 536;     // largest segment seen (Linux rcv_mss)
    // Linux quick-ACK mode (tcp_incr_quickack): the first data segments of a connection,
    // and the first after an idle RTO, are ACKed at once, unless the connection is
    // interactive (pingpong: we answered within the delayed-ACK time).
    uint8_t quickacks = 0;
    bool data_rcvd = false;         // Linux icsk_ack.ato != 0
    bool pingpong = false;
    TimeNs last_data_rcv = 0;       // Linux icsk_ack.lrcvtime

    // Timers: one wheel Timer per TCB armed at the earliest of these deadlines.
    Timer timer;
    TimeNs rto_at = 0;              // retransmission or persist (0: off)
    bool persist = false;           // rto_at is the persist timer (zero window)
    uint32_t persist_backoff = 0;
    TimeNs delack_at = 0;
    TimeNs keepalive_at = 0;
    uint32_t keepalive_probes = 0;
    TimeNs timewait_at = 0;         // TIME_WAIT end or FIN_WAIT_2 orphan timeout

    // Socket options.
    bool nodelay = false;
    bool keepalive = false;
    bool reuseaddr = false;
    bool reuseport = false;
    TimeNs keepidle = 7200'000'000'000ull;   // Linux tcp_keepalive_time
    TimeNs keepintvl = 75'000'000'000ull;    // Linux tcp_keepalive_intvl
    uint32_t keepcnt = 9;                    // Linux tcp_keepalive_probes
    bool linger_on = false;
    int linger_secs = 0;
    int so_error = 0;
    bool reset = false;             // connection ended by RST or abort
    // Send-side options, with Linux's semantics (net/ipv4/tcp.c, tcp_output.c).
    bool cork = false;              // TCP_CORK: a partial last segment waits (TCP_NAGLE_CORK)
    bool more = false;              // the last write said MSG_MORE: corked until the next
                                    // write, or an ACK of new data
    uint32_t notsent_lowat = 0;     // TCP_NOTSENT_LOWAT as set; 0: EngineConfig's default
    TimeNs user_timeout = 0;        // TCP_USER_TIMEOUT (0: tcp_retries2 / keepcnt decide)
    TimeNs una_since = 0;           // when the oldest unacknowledged byte left (at most)
    TimeNs probe_since = 0;         // first zero-window probe of this episode
    // Ends of writes in [snd_una, data end), oldest first: the segment holding one gets
    // PSH (Linux marks the last skb of each sendmsg), and an MSG_EOR end is never
    // coalesced across (Linux tcp_skb_can_collapse_to). When full, the newest mark moves.
    struct WriteMark { Seq end; bool eor; };
    static constexpr uint32_t kWriteMarks = 16;
    WriteMark wmarks[kWriteMarks];
    uint32_t wmark_first = 0, wmark_count = 0;

    // Listener state.
    int backlog = 0;
    SockId group_next = kNoSock;    // the next listener of its SO_REUSEPORT group here
    uint32_t syn_queue_len = 0;     // half-open children in SynReceived
    uint32_t accept_queue_len = 0;
    TcbLink accept_link;            // child: position in the listener's accept queue
    Tcb* accept_head = nullptr;     // listener: oldest established child
    Tcb* accept_tail = nullptr;

    // Engine work lists.
    TcbLink out_link;               // needs output() this round
    TcbLink ev_link;                // readiness may have changed
    uint32_t last_events = 0;
    bool retry_linked = false;      // output held back; retried at the next poll
    Tcb* retry_next = nullptr;
    bool dead = false;              // released at the end of the round
    Tcb* dead_next = nullptr;
    bool connected_once = false;    // connect() was called (or a passive child)
    bool in_syn_queue = false;      // passive child counted in the listener's SYN queue
    bool moved_in = false;          // came from another engine (Engine::move_to): its
                                    // steering entry goes when it is released

    bool synchronized() const { return fastnet::synchronized(state); }
    // End of the bytes the application has queued (sequence space).
    Seq snd_data_end() const { return snd_buf_seq + static_cast<uint32_t>(snd.size()); }
    uint32_t flight() const { return static_cast<uint32_t>(snd_nxt - snd_una); }
};

}  // namespace fastnet
