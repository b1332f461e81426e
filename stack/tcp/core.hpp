// The engine's internals (Engine::Impl): socket table, flow and listener lookup, timer
// wheel, work lists. Engine (stack/engine.cpp) forwards its API here; segment arrival is
// in input.cpp, transmission in output.cpp, timers and state changes in timers.cpp,
// listeners and SYN cookies in listener.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "stack/engine.hpp"
#include "stack/pool.hpp"
#include "stack/tcp/flow_table.hpp"
#include "stack/tcp/isn.hpp"
#include "stack/tcp/tcb.hpp"
#include "stack/tcp/timer_wheel.hpp"
#include "stack/wire/frame.hpp"

namespace fastnet {

// Linux defaults the engine copies (Documentation/networking/ip-sysctl.rst).
inline constexpr uint32_t kSynRetries = 6;                   // tcp_syn_retries
inline constexpr uint32_t kSynackRetries = 5;                // tcp_synack_retries
inline constexpr uint32_t kRetries2 = 15;                    // tcp_retries2
inline constexpr TimeNs kFinTimeout = 60'000'000'000ull;     // tcp_fin_timeout (orphans)
inline constexpr TimeNs kTimeWaitReuseNs = 1'000'000'000ull;  // tcp_tw_reuse: peer's last TS this old
inline constexpr uint32_t kChallengeAckLimit = 1000;         // tcp_challenge_ack_limit, per s
inline constexpr TimeNs kPersistMin = 200'000'000;           // TCP_RTO_MIN
inline constexpr TimeNs kPersistMax = 120'000'000'000ull;    // TCP_RTO_MAX
inline constexpr uint32_t kDefaultMss = 536;                 // RFC 9293 3.7.1
// Linux SOCK_MIN_SNDBUF / SOCK_MIN_RCVBUF on x86-64 (2 * / 1 * (2048 + sk_buff)).
inline constexpr uint32_t kSockMinSndbuf = 4608;
inline constexpr uint32_t kSockMinRcvbuf = 2304;
inline constexpr TimeNs kPawsIdle = 24ull * 24 * 3600 * 1'000'000'000ull;  // RFC 7323 5.5

struct TcpCore {
    TcpCore(const EngineConfig& cfg, Device& dev, Neighbours& nb);
    ~TcpCore();
    TcpCore(const TcpCore&) = delete;
    TcpCore& operator=(const TcpCore&) = delete;

    EngineConfig cfg;
    Device& dev;
    Neighbours& nb;
    EventSink* sink = nullptr;
    EngineStats stats;
    TimeNs now = 0;

    TimerWheel wheel;
    FlowTable flows;
    BlockCache blocks;                         // idle ring storage (before pool: outlives it)
    ObjectPool<Tcb> pool;                      // SockId = pool handle
    size_t buffers = 0;                        // socket rings allocated
    std::vector<uint16_t> port_refs;           // local port → sockets bound to it
    std::vector<SockId> listen_by_port;        // local port → listener
    uint32_t next_port = 0;
    uint16_t ip_id = 0;
    bool tx_deferred = false;                  // socket calls queued frames, not kicked
    uint64_t secret[2] = {};                   // RFC 6528 / SYN cookie key

    // RFC 5961 7: challenge ACKs per second, engine-wide.
    TimeNs challenge_window_start = 0;
    uint32_t challenge_count = 0;

    // Work lists (intrusive).
    Tcb* out_first = nullptr;
    Tcb* ev_first = nullptr;
    Tcb* retry_first = nullptr;
    Tcb* dead_first = nullptr;

    // Flows moved to another engine: frames that still arrive here are handed over.
    struct MovedFlow { FourTuple key; TcpCore* to; TimeNs until; };
    std::vector<MovedFlow> moved;
    // Frames handed over by other engines (their lock held, not ours): run at poll().
    std::mutex inbox_mu;
    std::vector<std::vector<uint8_t>> inbox;
    std::atomic<bool> inbox_full{false};

    // --- sockets (engine.cpp)
    Tcb* get(SockId s) const;
    void init_tcb(Tcb& t, SockId id);
    uint8_t wscale_for(uint32_t rcvbuf) const;
    void setup_mss(Tcb& t);
    bool alloc_buffers(Tcb& t);
    void release_buffers(Tcb& t);
    // Buffer limits (Tcb::sndbuf / rcvbuf); the rings grow with them.
    void set_sndbuf(Tcb& t, uint32_t bytes);
    void set_rcvbuf(Tcb& t, uint32_t bytes);
    uint32_t rcv_space(const Tcb& t) const;     // room for the receive window
    uint32_t snd_room(const Tcb& t) const;      // what send() may still queue
    uint32_t rcvbuf_ceiling(const Tcb& t) const;   // the most rcvbuf may become
    void rcv_space_adjust(Tcb& t, size_t copied);  // receive autotuning, on each read
    void rcv_rtt_measure(Tcb& t, const TcpView& seg, uint32_t len);
    void sndbuf_expand(Tcb& t);                 // send autotuning, on each ACK
    int bind_port(Tcb& t, uint16_t port);
    int pick_port(Tcb& t, Endpoint remote);
    bool reuse_time_wait(const FourTuple& k);
    bool flow_insert(Tcb& t);
    void flow_remove(Tcb& t);
    uint32_t events(const Tcb& t) const;
    void mark_output(Tcb& t);
    void mark_events(Tcb& t);
    void reap(Tcb& t);                         // free at the end of the round
    void reap_now(Tcb& t);
    void unlink_work(Tcb& t);                  // off the output, event and retry lists
    bool forward_moved(const FourTuple& k, const uint8_t* data, size_t len);
    void run_inbox();
    void run_output();
    void run_events();
    void run_reap();
    void finish_api();                         // after a socket call: output, events, flush

    // --- input.cpp
    void rx_frame(const uint8_t* data, size_t len);
    void input(Tcb& t, const TcpView& seg);
    void input_syn_sent(Tcb& t, const TcpView& seg);
    bool ack_processing(Tcb& t, const TcpView& seg);
    void process_data(Tcb& t, const TcpView& seg, const uint8_t* data, size_t len, Seq seq);
    void process_fin(Tcb& t);
    void update_window(Tcb& t, const TcpView& seg);
    void on_dupack(Tcb& t);
    void note_acked(Tcb& t, uint32_t bytes);   // TCP_INFO's delivery counters
    void detect_lost_retransmits(Tcb& t);
    void parse_syn_options(Tcb& t, const TcpOptions& o);
    bool challenge_ack_allowed();
    void send_challenge_ack(Tcb& t);

    // --- listener.cpp
    // The listener a new flow from remote goes to: the port's listener, or one member of
    // its SO_REUSEPORT group chosen by the remote address and port (stable for a flow,
    // so a retransmitted SYN and a cookie's ACK find the same one).
    Tcb* find_listener(uint16_t port, uint32_t remote_ip = 0, uint16_t remote_port = 0) const;
    Tcb* next_in_group(const Tcb& l) const;
    Tcb* listen_head(uint16_t port) const;   // the first listener of the port's group
    Tcb* new_child(Tcb& l, uint32_t local_ip, uint32_t remote_ip, const TcpView& seg);
    void listen_input(Tcb& l, const TcpView& seg, uint32_t src_ip, uint32_t dst_ip);
    void child_established(Tcb& c);
    void listener_unlink_child(Tcb& c);
    void accept_enqueue(Tcb& l, Tcb& c);
    Tcb* accept_dequeue(Tcb& l);
    void close_listener(Tcb& l);

    // --- output.cpp
    bool output(Tcb& t);                       // false: held back (no neighbour / buffer)
    int send_segment(Tcb& t, uint8_t flags, Seq seq, uint32_t len, bool rexmit);
    bool send_ack(Tcb& t);
    bool send_probe(Tcb& t);
    void send_rst_for(Tcb& t);
    bool send_raw(uint32_t src_ip, uint16_t src_port, uint32_t dst_ip, uint16_t dst_port,
                  Seq seq, Seq ack, uint8_t flags, uint16_t window, const TcpOptions* o);
    bool send_rst_raw(uint32_t src_ip, uint16_t src_port, uint32_t dst_ip, uint16_t dst_port,
                      Seq seq, Seq ack, uint8_t flags);
    bool emit(uint32_t dst_ip, TcpFrameSpec& spec, const uint8_t* p1, size_t l1,
              const uint8_t* p2, size_t l2);
    void fill_options(Tcb& t, TcpOptions& o, bool syn);
    uint16_t window_to_advertise(Tcb& t, bool syn);
    uint32_t tsval(const Tcb& t) const;
    bool nagle_ok(Tcb& t, uint32_t len, uint32_t avail, bool record_end) const;
    uint8_t data_flags(const Tcb& t, Seq seq, uint32_t& len, bool* record_end) const;
    void add_write_mark(Tcb& t, bool eor);
    void drop_write_marks(Tcb& t);
    uint32_t notsent_lowat(const Tcb& t) const;
    // Bytes queued and never sent (Linux write_seq - snd_nxt).
    static uint32_t notsent(const Tcb& t) {
        return t.snd_data_end() > t.snd_max ? static_cast<uint32_t>(t.snd_data_end() - t.snd_max) : 0;
    }
    TimeNs user_timeout_clamp(const Tcb& t, TimeNs at) const;
    uint32_t send_window(const Tcb& t) const;
    TimeNs persist_interval(const Tcb& t) const;
    void maybe_arm_persist(Tcb& t);
    void skip_sacked(Tcb& t);
    void retransmit_head(Tcb& t);
    bool sack_recovery_send(Tcb& t);
    void rxt_marks_reset(Tcb& t);
    void rxt_mark(Tcb& t);

    // --- timers.cpp
    void rearm(Tcb& t);
    void arm_keepalive(Tcb& t);
    void incr_quickack(Tcb& t);
    void on_timer(Tcb& t);
    void on_rto(Tcb& t);
    void arm_rto(Tcb& t);
    void on_pto(Tcb& t);
    void on_persist(Tcb& t);
    void on_keepalive(Tcb& t);
    void enter_time_wait(Tcb& t);
    void set_state(Tcb& t, TcpState s);
    void conn_error(Tcb& t, int err);          // reset / timeout: report, then CLOSED
    void abort_tcb(Tcb& t);                    // RST to the peer, then CLOSED
    void tcb_closed(Tcb& t);                   // CLOSED: freed if nobody holds the socket
};

// The Engine's implementation is the core (engine.cpp, tcp/transfer.cpp).
struct Engine::Impl : TcpCore {
    using TcpCore::TcpCore;
};

}  // namespace fastnet
