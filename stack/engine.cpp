// The engine: the socket API of stack/engine.hpp over TcpCore (stack/tcp/core.hpp).
// Engine::poll() → RX burst → rx_frame() (tcp/input.cpp) → timers (tcp/timers.cpp) →
// run_output() (tcp/output.cpp) → readiness to the EventSink → Device::tx_flush().
// Socket calls run the same output/event/flush tail before returning.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <random>
#include <sys/epoll.h>

#include "stack/tcp/core.hpp"
#include "stack/tcp/tcp_info.hpp"

namespace fastnet {

const char* tcp_state_name(TcpState s) {
    static constexpr const char* names[] = {"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED",
        "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK",
        "TIME-WAIT"};
    return names[static_cast<int>(s)];
}

uint8_t tcp_state_linux(TcpState s) {
    switch (s) {
    case TcpState::Established: return 1;
    case TcpState::SynSent: return 2;
    case TcpState::SynReceived: return 3;
    case TcpState::FinWait1: return 4;
    case TcpState::FinWait2: return 5;
    case TcpState::TimeWait: return 6;
    case TcpState::Closed: return 7;
    case TcpState::CloseWait: return 8;
    case TcpState::LastAck: return 9;
    case TcpState::Listen: return 10;
    case TcpState::Closing: return 11;
    }
    return 7;
}

// ---------------------------------------------------------------- TcpCore plumbing

TcpCore::TcpCore(const EngineConfig& c, Device& d, Neighbours& n)
    : cfg(c), dev(d), nb(n), wheel(1'000'000, 4096, 0), flows(std::max<uint32_t>(c.max_sockets, 16)),
      pool(std::max<uint32_t>(c.max_sockets, 16)), port_refs(65536, 0),
      listen_by_port(65536, kNoSock) {
    secret[0] = cfg.isn_secret[0];
    secret[1] = cfg.isn_secret[1];
    if (!secret[0] && !secret[1]) {
        std::random_device rd;
        secret[0] = (uint64_t(rd()) << 32) | rd();
        secret[1] = (uint64_t(rd()) << 32) | rd();
    }
    // Peers choose the tuples: a hash key they cannot know keeps the chains short.
    flows.reseed(secret[0] ^ (secret[1] << 1) ^ 0x666c6f7773ull);
    if (cfg.nslots == 0) cfg.nslots = 1;
    next_port = static_cast<uint32_t>(secret[0] % std::max<uint32_t>(cfg.port_count / cfg.nslots, 1));
}

TcpCore::~TcpCore() {
    for (uint32_t i = 0; i < pool.capacity(); ++i)
        if (Tcb* t = pool.at_index(i)) wheel.cancel(t->timer);
}

Tcb* TcpCore::get(SockId s) const {
    return const_cast<ObjectPool<Tcb>&>(pool).get(s);
}

void TcpCore::init_tcb(Tcb& t, SockId id) {
    t.id = id;
    t.timer.owner = &t;
    t.sndbuf = cfg.sndbuf;
    t.rcvbuf = cfg.rcvbuf;
    t.rtt = RttEstimator(cfg.rto_min, cfg.rto_initial);
    t.cc = Congestion(cfg.cc);
    t.accepted = true;
}

uint8_t TcpCore::wscale_for(uint32_t rcvbuf) const {
    uint8_t s = 0;
    while (s < kTcpMaxWscale && (rcvbuf >> s) > 65535) ++s;
    return s;
}

void TcpCore::setup_mss(Tcb& t) {
    const uint32_t mtu_mss = cfg.mtu - 40u;
    t.adv_mss = static_cast<uint16_t>(t.user_mss ? std::min<uint32_t>(t.user_mss, mtu_mss) : mtu_mss);
    uint32_t m = std::min<uint32_t>(t.rcv_mss, mtu_mss);
    if (t.user_mss) m = std::min<uint32_t>(m, t.user_mss);
    if (t.ts_ok) m -= 12;   // the timestamp option rides on every segment (RFC 7323 3.2)
    t.snd_mss = static_cast<uint16_t>(std::max<uint32_t>(m, 64));
}

bool TcpCore::alloc_buffers(Tcb& t) {
    if (t.snd.capacity()) return true;
    t.snd.set_cache(&blocks);
    t.rcv.set_cache(&blocks);
    t.snd.reset(t.sndbuf);
    t.rcv.reset(t.rcvbuf);
    buffers += 2;
    return true;
}

void TcpCore::release_buffers(Tcb& t) {
    if (!t.snd.capacity()) return;
    t.snd.reset(0);
    t.rcv.reset(0);
    t.ooo.clear();
    buffers -= 2;
}

namespace {

// The ring capacity for a new limit: at least the limit, and at least double the
// current capacity (so a limit creeping up with every ACK moves storage only a few
// times), but never beyond what the limit may still become.
size_t ring_size(size_t cap, uint32_t limit, uint32_t ceiling) {
    return std::max<size_t>(limit, std::min<size_t>(2 * cap, std::max(limit, ceiling)));
}

}  // namespace

void TcpCore::set_sndbuf(Tcb& t, uint32_t bytes) {
    // snd.capacity() == 0 means no rings yet: alloc_buffers() sizes them from the limit.
    if (t.snd.capacity() && bytes > t.snd.capacity() &&
        !t.snd.grow(ring_size(t.snd.capacity(), bytes, t.sndbuf_lock ? bytes : cfg.sndbuf_max)))
        bytes = static_cast<uint32_t>(std::max<size_t>(t.snd.capacity(), t.sndbuf));
    t.sndbuf = bytes;
}

void TcpCore::set_rcvbuf(Tcb& t, uint32_t bytes) {
    // The ring keeps its size when the limit falls: the window already offered is
    // never taken back (RFC 7323 2.4), and its bytes must still fit.
    if (t.rcv.capacity() && bytes > t.rcv.capacity() &&
        !t.rcv.grow(ring_size(t.rcv.capacity(), bytes, rcvbuf_ceiling(t))))
        bytes = static_cast<uint32_t>(std::max<size_t>(t.rcv.capacity(), t.rcvbuf));
    t.rcvbuf = bytes;
}

uint32_t TcpCore::rcv_space(const Tcb& t) const {
    size_t used = t.rcv.size();
    return t.rcvbuf > used ? static_cast<uint32_t>(t.rcvbuf - used) : 0;
}

uint32_t TcpCore::snd_room(const Tcb& t) const {
    size_t used = t.snd.size();
    return t.sndbuf > used ? static_cast<uint32_t>(t.sndbuf - used) : 0;
}

uint32_t TcpCore::rcvbuf_ceiling(const Tcb& t) const {
    return t.rcvbuf_lock ? t.rcvbuf : std::max(t.rcvbuf, cfg.rcvbuf_max);
}

// Linux tcp_rcv_space_adjust: once per receiver RTT, compare what the application read
// in that round with the best round so far; when it read more, offer a window of twice
// that (plus room for 16 segments, and more in proportion to the growth) so the sender
// is never held back by the window while the application keeps up.
void TcpCore::rcv_space_adjust(Tcb& t, size_t copied) {
    t.rcvq_copied += static_cast<uint32_t>(std::min<size_t>(copied, 0x7fffffff));
    if (!t.rcvq_time) {
        t.rcvq_time = now;
        t.rcvq_space = std::min<uint32_t>(t.rcvbuf, 10u * t.adv_mss);   // TCP_INIT_CWND * advmss
        return;
    }
    const TimeNs rtt = t.rcv_rtt ? t.rcv_rtt : t.rtt.srtt();
    if (rtt == 0 || now - t.rcvq_time < rtt) return;
    const uint32_t got = t.rcvq_copied;
    t.rcvq_copied = 0;
    t.rcvq_time = now;
    if (got <= t.rcvq_space) return;
    if (!t.rcvbuf_lock && t.rcvbuf < cfg.rcvbuf_max) {
        uint64_t win = 2ull * got + 16ull * t.adv_mss;
        win += 2 * win * (got - t.rcvq_space) / std::max<uint32_t>(t.rcvq_space, 1);
        const uint32_t want = static_cast<uint32_t>(std::min<uint64_t>(win, cfg.rcvbuf_max));
        if (want > t.rcvbuf) {
            set_rcvbuf(t, want);
            stats.rcvbuf_grown++;
        }
    }
    t.rcvq_space = got;
}

// Linux tcp_rcv_rtt_measure / tcp_rcv_rtt_measure_ts. With timestamps the echo on a
// full-sized data segment gives a sample (1 ms resolution); below that (a LAN), or
// without timestamps, the time from offering a window until rcv_nxt passes its right
// edge. Samples are smoothed by 1/8 (timestamps) or, being a window's worth at least,
// only lower the estimate.
void TcpCore::rcv_rtt_measure(Tcb& t, const TcpView& seg, uint32_t len) {
    TimeNs sample = 0;
    bool window_sample = false;
    const int32_t ms = t.ts_ok && seg.opts.ts && seg.opts.ts->tsecr && len >= t.rcv_mss_est
                           ? static_cast<int32_t>(tsval(t) - seg.opts.ts->tsecr) : 0;
    if (ms > 0) {
        sample = TimeNs(ms) * 1'000'000;
    } else {
        if (t.rcv_rtt_time && t.rcv_nxt >= t.rcv_rtt_seq) {
            sample = std::max<TimeNs>(now - t.rcv_rtt_time, 1'000);
            window_sample = true;
        }
        if (!t.rcv_rtt_time || sample) {
            t.rcv_rtt_seq = t.rcv_nxt + std::max<uint32_t>(t.rcv_wnd, 1);
            t.rcv_rtt_time = now;
        }
        if (!sample) return;
    }
    if (!t.rcv_rtt) t.rcv_rtt = sample;
    else if (!window_sample) t.rcv_rtt = t.rcv_rtt - t.rcv_rtt / 8 + sample / 8;
    else if (sample < t.rcv_rtt) t.rcv_rtt = sample;
}

// Linux tcp_sndbuf_expand: the send queue holds two congestion windows, enough to keep
// the window full while the application refills it each round trip.
void TcpCore::sndbuf_expand(Tcb& t) {
    if (t.sndbuf_lock || t.sndbuf >= cfg.sndbuf_max) return;
    const uint64_t want = std::min<uint64_t>(2ull * t.cc.cwnd(), cfg.sndbuf_max);
    if (want <= t.sndbuf) return;
    set_sndbuf(t, static_cast<uint32_t>(want));
    stats.sndbuf_grown++;
    mark_events(t);
}

bool TcpCore::flow_insert(Tcb& t) {
    if (t.in_flow_table) return true;
    FourTuple k{t.local.ip, t.remote.ip, t.local.port, t.remote.port};
    if (!flows.insert(k, t.id)) return false;
    t.in_flow_table = true;
    return true;
}

void TcpCore::flow_remove(Tcb& t) {
    if (!t.in_flow_table) return;
    flows.erase(FourTuple{t.local.ip, t.remote.ip, t.local.port, t.remote.port});
    t.in_flow_table = false;
}

int TcpCore::bind_port(Tcb& t, uint16_t port) {
    // The kernel judged the bind first (the socket's shadow); here only what the engine
    // itself cannot share: a port with a listener, unless both are in an SO_REUSEPORT group.
    if (port_refs[port] && !t.reuseaddr && !t.reuseport) return -EADDRINUSE;
    if (Tcb* l = listen_head(port); l && !(t.reuseport && l->reuseport)) return -EADDRINUSE;
    port_refs[port]++;
    t.bound = true;
    t.local.port = port;
    return 0;
}

bool TcpCore::reuse_time_wait(const FourTuple& k) {
    // Linux's tcp_tw_reuse for an active open: the 4-tuple's earlier incarnation, closed
    // by the application and waiting in TIME-WAIT, gives way when timestamps were in use
    // and its peer's last one is more than a second old. The new SYN's TSval is then
    // newer than any segment of the old connection (one clock and offset per address
    // pair, isn.hpp), so the peer's PAWS check tells old duplicates apart. Without this an
    // engine's share of the active-open range (port_count / nslots ports) would cap a
    // client that closes first at that many connections per 2 MSL to one server.
    uint32_t h = flows.find(k);
    Tcb* o = h == FlowTable::kEmpty ? nullptr : pool.get(h);
    if (!o || o->state != TcpState::TimeWait || !o->user_closed || !o->ts_ok ||
        now - o->ts_recent_age < kTimeWaitReuseNs)
        return false;
    tcb_closed(*o);   // its flow entry goes now, its port reference at the reap
    return true;
}

int TcpCore::pick_port(Tcb& t, Endpoint remote) {
    // Fastsocket-style active-open ports: (port - base) % nslots == slot routes the
    // replies to this engine.
    const uint32_t n = std::max<uint32_t>(cfg.port_count / cfg.nslots, 1);
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t k = (next_port + i) % n;
        uint32_t p = cfg.port_base + k * cfg.nslots + cfg.slot;
        if (p > 65535 || p >= uint32_t(cfg.port_base) + cfg.port_count) continue;
        if (listen_by_port[p] != kNoSock) continue;
        const FourTuple tuple{cfg.ip, remote.ip, static_cast<uint16_t>(p), remote.port};
        if (port_refs[p] ? !(port_refs[p] == 1 && remote.port && reuse_time_wait(tuple))
                         : remote.port && flows.find(tuple) != FlowTable::kEmpty)
            continue;
        next_port = k + 1;
        port_refs[p]++;
        t.bound = true;
        t.local.port = static_cast<uint16_t>(p);
        return 0;
    }
    return -EADDRNOTAVAIL;
}

void TcpCore::mark_output(Tcb& t) {
    if (t.out_link.linked) return;
    t.out_link.linked = true;
    t.out_link.next = out_first;
    out_first = &t;
}

void TcpCore::mark_events(Tcb& t) {
    if (t.ev_link.linked) return;
    t.ev_link.linked = true;
    t.ev_link.next = ev_first;
    ev_first = &t;
}

void TcpCore::reap(Tcb& t) {
    if (t.dead) return;
    t.dead = true;
    t.state = TcpState::Closed;
    wheel.cancel(t.timer);
    flow_remove(t);
    t.dead_next = dead_first;
    dead_first = &t;
}

void TcpCore::reap_now(Tcb& t) {
    wheel.cancel(t.timer);
    flow_remove(t);
    release_buffers(t);
    if (t.bound && t.local.port && port_refs[t.local.port]) port_refs[t.local.port]--;
    if (t.moved_in && sink) sink->on_moved_flow_released(t.local, t.remote);
    pool.free(t.id);
}

void TcpCore::unlink_work(Tcb& t) {
    auto strip = [&t](Tcb*& head, TcbLink Tcb::*link) {
        if (!(t.*link).linked) return;
        for (Tcb** pp = &head; *pp; pp = &((*pp)->*link).next) {
            if (*pp == &t) {
                *pp = (t.*link).next;
                break;
            }
        }
        (t.*link) = TcbLink{};
    };
    strip(out_first, &Tcb::out_link);
    strip(ev_first, &Tcb::ev_link);
    if (t.retry_linked) {
        for (Tcb** pp = &retry_first; *pp; pp = &(*pp)->retry_next) {
            if (*pp == &t) {
                *pp = t.retry_next;
                break;
            }
        }
        t.retry_linked = false;
        t.retry_next = nullptr;
    }
}

// A frame of a flow moved away since it was steered here: the new owner runs it at its
// next poll (its lock is not ours to take; the inbox has its own).
bool TcpCore::forward_moved(const FourTuple& k, const uint8_t* data, size_t len) {
    for (const MovedFlow& m : moved) {
        if (!(m.key == k) || m.until < now) continue;
        if (!m.to) {                  // handed to the kernel: its socket answers now
            stats.drops[static_cast<int>(Drop::Other)]++;
            return true;
        }
        {
            std::lock_guard g(m.to->inbox_mu);
            m.to->inbox.emplace_back(data, data + len);
        }
        m.to->inbox_full.store(true, std::memory_order_release);
        stats.frames_forwarded++;
        return true;
    }
    return false;
}

void TcpCore::run_inbox() {
    if (!inbox_full.load(std::memory_order_acquire)) return;
    std::vector<std::vector<uint8_t>> frames;
    {
        std::lock_guard g(inbox_mu);
        frames.swap(inbox);
        inbox_full.store(false, std::memory_order_relaxed);
    }
    for (const auto& f : frames) rx_frame(f.data(), f.size());
}

void TcpCore::run_output() {
    while (out_first) {
        Tcb* t = out_first;
        out_first = t->out_link.next;
        t->out_link.linked = false;
        if (t->dead) continue;
        if (!output(*t) && !t->retry_linked) {
            // No neighbour or no TX buffer: the data stays queued; retry next poll.
            t->retry_linked = true;
            t->retry_next = retry_first;
            retry_first = t;
        }
    }
}

void TcpCore::run_events() {
    while (ev_first) {
        Tcb* t = ev_first;
        ev_first = t->ev_link.next;
        t->ev_link.linked = false;
        if (t->dead || !t->accepted) continue;
        uint32_t ev = events(*t);
        t->last_events = ev;
        if (sink) sink->on_events(t->id, ev);
    }
}

void TcpCore::run_reap() {
    while (dead_first) {
        Tcb* t = dead_first;
        dead_first = t->dead_next;
        unlink_work(*t);
        reap_now(*t);
    }
}

void TcpCore::finish_api() {
    run_output();
    run_events();
    run_reap();
    if (cfg.flush_per_call) dev.tx_flush();
    else tx_deferred = true;
}

uint32_t TcpCore::events(const Tcb& t) const {
    uint32_t ev = 0;
    if (t.so_error) ev |= EPOLLERR;
    if (t.state == TcpState::Listen) return ev | (t.accept_head ? uint32_t(EPOLLIN) : 0u);
    const bool rd_closed = t.fin_rcvd || t.reset || t.rd_shutdown;
    const bool wr_closed = t.fin_queued || t.reset;
    if (t.state == TcpState::Closed && !t.connected_once) return ev | EPOLLOUT | EPOLLHUP;
    if ((rd_closed && wr_closed) || t.state == TcpState::Closed) ev |= EPOLLHUP;
    if (rd_closed) ev |= EPOLLIN | EPOLLRDHUP;
    if (t.rcv.size()) ev |= EPOLLIN;
    // TCP_NOTSENT_LOWAT: Linux tcp_poll reports writable below half the limit
    // (tcp_stream_memory_free with wake = 1).
    const uint32_t lowat = notsent_lowat(t);
    if ((t.state == TcpState::Established || t.state == TcpState::CloseWait) && !wr_closed &&
        t.sndbuf > t.snd.size() && (lowat == ~0u || uint64_t(notsent(t)) * 2 < lowat))
        ev |= EPOLLOUT;
    return ev;
}

// ---------------------------------------------------------------- Engine API

Engine::Engine(const EngineConfig& cfg, Device& dev, Neighbours& nb)
    : impl_(new Impl(cfg, dev, nb)) {}

Engine::~Engine() { delete impl_; }

void Engine::set_time(TimeNs now) {
    if (now > impl_->now) impl_->now = now;
}

void Engine::poll(TimeNs now) {
    TcpCore& c = *impl_;
    if (now > c.now) c.now = now;
    // Output held back last round (neighbour unresolved, no TX buffer) is retried.
    for (Tcb* t = c.retry_first; t;) {
        Tcb* n = t->retry_next;
        t->retry_linked = false;
        if (!t->dead) c.mark_output(*t);
        t = n;
    }
    c.retry_first = nullptr;
    c.run_inbox();
    if (!c.moved.empty())
        std::erase_if(c.moved, [&c](const TcpCore::MovedFlow& m) { return m.until < c.now; });

    Frame frames[32];
    for (int round = 0; round < 64; ++round) {
        size_t n = c.dev.rx_burst(frames, 32);
        if (n == 0) break;
        for (size_t i = 0; i < n; ++i) c.rx_frame(frames[i].data, frames[i].len);
        c.dev.rx_release(frames, n);
        c.run_output();
        if (n < 32) break;
    }
    c.wheel.advance(c.now, [&c](Timer& tm) { c.on_timer(*static_cast<Tcb*>(tm.owner)); });
    c.run_output();
    c.run_events();
    c.run_reap();
    c.dev.tx_flush();
    c.tx_deferred = false;
}

bool Engine::tx_deferred() const { return impl_->tx_deferred; }

bool Engine::rx_waiting() const {
    return impl_->dev.rx_ready() || impl_->inbox_full.load(std::memory_order_acquire);
}

void Engine::take_rx(TimeNs now) {
    TcpCore& c = *impl_;
    if (now > c.now) c.now = now;
    c.run_inbox();
    Frame frames[32];
    // Only while the device says frames wait: an empty rx_burst() may cost a wakeup
    // syscall (zero-copy drivers).
    for (int round = 0; round < 64 && c.dev.rx_ready(); ++round) {
        size_t n = c.dev.rx_burst(frames, 32);
        if (n == 0) break;
        for (size_t i = 0; i < n; ++i) c.rx_frame(frames[i].data, frames[i].len);
        c.dev.rx_release(frames, n);
        c.run_output();
    }
    c.finish_api();
}

void Engine::flush() {
    impl_->dev.tx_flush();
    impl_->tx_deferred = false;
}

TimeNs Engine::next_deadline() const {
    TimeNs d = impl_->wheel.next_expiry();
    if (impl_->retry_first) d = std::min(d, impl_->now + 1'000'000);
    return d;
}

void Engine::set_event_sink(EventSink* sink) { impl_->sink = sink; }

int Engine::socket() {
    TcpCore& c = *impl_;
    uint32_t h = c.pool.alloc();
    if (h == ObjectPool<Tcb>::kInvalid) return -ENOBUFS;
    c.init_tcb(*c.pool.get(h), h);
    return static_cast<int>(h);
}

int Engine::bind(SockId s, Endpoint local) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    if (t->bound || t->state != TcpState::Closed) return -EINVAL;
    if (local.ip && local.ip != c.cfg.ip) return -EADDRNOTAVAIL;
    t->local.ip = c.cfg.ip;
    if (local.port == 0) return c.pick_port(*t, Endpoint{});
    return c.bind_port(*t, local.port);
}

int Engine::listen(SockId s, int backlog) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    if (t->state == TcpState::Listen) {
        t->backlog = std::max(backlog, 1);
        return 0;
    }
    if (t->state != TcpState::Closed || t->connected_once) return -EINVAL;
    if (!t->bound) {
        t->local.ip = c.cfg.ip;
        if (int r = c.pick_port(*t, Endpoint{}); r < 0) return r;
    }
    Tcb* head = c.listen_head(t->local.port);
    if (head && !(t->reuseport && head->reuseport)) return -EADDRINUSE;
    t->backlog = std::clamp(backlog, 1, 65535);
    t->state = TcpState::Listen;
    t->group_next = kNoSock;
    if (!head) {
        c.listen_by_port[t->local.port] = s;
        return 0;
    }
    // SO_REUSEPORT: the port's listeners on this engine form a group; each new flow
    // goes to one of them by its hash (TcpCore::find_listener).
    Tcb* last = head;
    while (Tcb* n = c.next_in_group(*last)) last = n;
    last->group_next = s;
    return 0;
}

int Engine::accept(SockId s, Endpoint* peer) {
    TcpCore& c = *impl_;
    Tcb* l = c.get(s);
    if (!l) return -EBADF;
    if (l->state != TcpState::Listen) return -EINVAL;
    Tcb* ch = c.accept_dequeue(*l);
    if (!ch) return -EAGAIN;
    if (peer) *peer = ch->remote;
    c.mark_events(*l);
    c.mark_events(*ch);
    c.finish_api();
    return static_cast<int>(ch->id);
}

int Engine::connect(SockId s, Endpoint remote) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    switch (t->state) {
    case TcpState::SynSent:
    case TcpState::SynReceived: return -EALREADY;
    case TcpState::Closed: break;
    case TcpState::Listen: return -EINVAL;
    default: return -EISCONN;
    }
    if (t->connected_once) return t->so_error ? -t->so_error : -EISCONN;
    if (remote.ip == 0 || remote.port == 0) return -EINVAL;
    t->local.ip = c.cfg.ip;
    t->remote = remote;
    if (!t->bound) {
        if (int r = c.pick_port(*t, remote); r < 0) return r;
    }
    if (!c.flow_insert(*t)) return -EADDRINUSE;
    c.alloc_buffers(*t);
    FourTuple k{t->local.ip, t->remote.ip, t->local.port, t->remote.port};
    t->iss = Seq(isn_rfc6528(c.secret, k, c.now));
    t->snd_una = t->snd_nxt = t->snd_max = t->iss;
    t->snd_buf_seq = t->iss + 1;
    t->recover = t->iss;
    t->rcv_wscale = c.wscale_for(c.rcvbuf_ceiling(*t));
    t->ts_offset = ts_offset(c.secret, k.local_ip, k.remote_ip);
    c.setup_mss(*t);
    t->connected_once = true;
    c.set_state(*t, TcpState::SynSent);
    c.stats.conn_opened++;
    c.mark_output(*t);
    c.finish_api();
    return -EINPROGRESS;
}

ssize_t Engine::send(SockId s, const void* buf, size_t len, int flags, bool continues) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    if (t->so_error) {
        int e = t->so_error;
        t->so_error = 0;
        return -e;
    }
    switch (t->state) {
    case TcpState::SynSent:
    case TcpState::SynReceived: return -EAGAIN;
    case TcpState::Established:
    case TcpState::CloseWait: break;
    case TcpState::Listen: return -ENOTCONN;
    case TcpState::Closed: return t->connected_once ? -EPIPE : -ENOTCONN;
    default: return -EPIPE;
    }
    if (t->fin_queued) return -EPIPE;
    if (len == 0) return 0;
    // TCP_NOTSENT_LOWAT (Linux sk_stream_memory_free): no new data while the unsent bytes
    // reach the limit; a write may fill the segment it starts past it.
    const size_t want = len;
    const uint32_t lowat = c.notsent_lowat(*t);
    if (lowat != ~0u) {
        uint32_t notsent = c.notsent(*t);
        if (notsent >= lowat) return -EAGAIN;
        size_t room = lowat - notsent;
        room += (t->snd_mss - room % t->snd_mss) % t->snd_mss;
        len = std::min(len, room);
    }
    size_t n = t->snd.write(buf, std::min<size_t>(len, c.snd_room(*t)));
    if (n == 0) return -EAGAIN;
    t->more = (flags & MSG_MORE) != 0;
    // A write that ends here, or that stops short (Linux pushes before it waits).
    if (!continues || n < want) c.add_write_mark(*t, (flags & MSG_EOR) && n == want && !continues);
    c.mark_output(*t);
    c.finish_api();
    return static_cast<ssize_t>(n);
}

ssize_t Engine::recv(SockId s, void* buf, size_t len, int flags) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    if (t->state == TcpState::Listen) return -ENOTCONN;
    if (t->rcv.size() > 0 && len > 0) {
        size_t n;
        if (flags & MSG_PEEK) {
            n = t->rcv.copy_out(0, buf, len);
        } else {
            uint32_t before = t->rcv_adv > t->rcv_nxt ? uint32_t(t->rcv_adv - t->rcv_nxt) : 0;
            n = t->rcv.read(buf, len);
            c.rcv_space_adjust(*t, n);
            // Window update when the window we could offer has grown a lot (Linux
            // tcp_cleanup_rbuf: new window >= 2 * advertised) and by at least an MSS
            // (receiver SWS avoidance, RFC 9293 3.8.6.2.2).
            uint32_t now_free = c.rcv_space(*t);
            if (t->synchronized() && !t->fin_rcvd && now_free >= before + t->adv_mss &&
                (now_free >= 2 * before || before < t->adv_mss)) {
                t->ack_now = true;
                c.mark_output(*t);
            }
            c.mark_events(*t);
            c.finish_api();
        }
        return static_cast<ssize_t>(n);
    }
    // Linux tcp_recvmsg: after the peer's FIN a read says 0 (SOCK_DONE) and leaves a later
    // error (a RST in CLOSE-WAIT: EPIPE) to the next write.
    if (t->fin_rcvd) return 0;
    if (t->so_error) {
        int e = t->so_error;
        t->so_error = 0;
        c.mark_events(*t);
        c.finish_api();
        return -e;
    }
    if (t->reset || t->rd_shutdown) return 0;
    if (t->state == TcpState::Closed) return t->connected_once ? 0 : -ENOTCONN;
    if (len == 0) return 0;
    return -EAGAIN;
}

int Engine::shutdown(SockId s, int how) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) return -EINVAL;
    if (t->state == TcpState::Listen || t->state == TcpState::Closed) {
        if (t->state == TcpState::Listen && how != SHUT_WR) {
            c.close_listener(*t);
            t->state = TcpState::Closed;
            c.mark_events(*t);
            c.finish_api();
            return 0;
        }
        return -ENOTCONN;
    }
    if (how != SHUT_WR) t->rd_shutdown = true;
    if (how != SHUT_RD) {
        if (t->state == TcpState::SynSent) {
            c.tcb_closed(*t);
        } else if (!t->fin_queued) {
            if (t->state == TcpState::Established || t->state == TcpState::SynReceived) {
                t->fin_queued = true;
                c.set_state(*t, TcpState::FinWait1);
            } else if (t->state == TcpState::CloseWait) {
                t->fin_queued = true;
                c.set_state(*t, TcpState::LastAck);
            }
        }
        c.mark_output(*t);
    }
    c.mark_events(*t);
    c.finish_api();
    return 0;
}

int Engine::close(SockId s) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    t->user_closed = true;
    switch (t->state) {
    case TcpState::Listen:
        c.close_listener(*t);
        c.reap(*t);
        break;
    case TcpState::Closed:
    case TcpState::SynSent:
        c.tcb_closed(*t);
        break;
    default:
        if ((t->linger_on && t->linger_secs == 0) || t->rcv.size() > 0) {
            // SO_LINGER 0, or unread data (RFC 2525 2.17, as Linux): abort with a RST.
            c.abort_tcb(*t);
            break;
        }
        if (!t->fin_queued) {
            if (t->state == TcpState::Established || t->state == TcpState::SynReceived) {
                t->fin_queued = true;
                c.set_state(*t, TcpState::FinWait1);
            } else if (t->state == TcpState::CloseWait) {
                t->fin_queued = true;
                c.set_state(*t, TcpState::LastAck);
            }
        }
        if (t->state == TcpState::FinWait2 && !t->timewait_at) {
            t->timewait_at = c.now + kFinTimeout;
            c.rearm(*t);
        }
        if (t->state == TcpState::TimeWait) c.release_buffers(*t);
        c.mark_output(*t);
        break;
    }
    c.finish_api();
    return 0;
}

int Engine::abort(SockId s) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    t->user_closed = true;
    if (t->state == TcpState::Listen) {
        c.close_listener(*t);
        c.reap(*t);
    } else {
        c.abort_tcb(*t);
    }
    c.finish_api();
    return 0;
}

uint32_t Engine::events(SockId s) const {
    const Tcb* t = impl_->get(s);
    return t ? impl_->events(*t) : uint32_t(EPOLLERR | EPOLLHUP);
}

namespace {

template <class T>
int put_opt(void* val, socklen_t* len, T v) {
    if (!val || !len) return -EFAULT;
    socklen_t n = std::min<socklen_t>(*len, sizeof(T));
    std::memcpy(val, &v, n);
    *len = n;
    return 0;
}

int get_int(const void* val, socklen_t len, int* out) {
    if (!val || len < static_cast<socklen_t>(sizeof(int))) return -EINVAL;
    std::memcpy(out, val, sizeof(int));
    return 0;
}

}  // namespace

namespace {

uint32_t us(TimeNs ns) { return static_cast<uint32_t>(std::min<TimeNs>(ns / 1000, 0xffffffffu)); }
uint32_t ms_since(TimeNs now, TimeNs then) {
    return then ? static_cast<uint32_t>((now - std::min(now, then)) / 1'000'000) : 0;
}

// Today's struct tcp_info (tcp_info.hpp) with what the engine knows; fields it has no
// notion of (pacing, busy/limited times, ECN, rehash) are 0, as on a Linux socket that
// never used them. Segment counts are in snd_mss units, as Linux's packet counts are
// for MSS-sized segments.
LinuxTcpInfo tcp_info_of(const TcpCore& c, const Tcb& t) {
    LinuxTcpInfo ti;
    std::memset(&ti, 0, sizeof ti);
    const uint32_t mss = std::max<uint32_t>(t.snd_mss, 1);
    const uint32_t flight = static_cast<uint32_t>(t.snd_max - t.snd_una);
    const uint32_t sacked = t.sack_ok ? t.sb.sacked_bytes() : 0;
    ti.tcpi_state = tcp_state_linux(t.state);
    ti.tcpi_ca_state = t.retransmits && t.synchronized() ? 4 : (t.in_recovery ? 3 : 0);   // Loss / Recovery
    ti.tcpi_retransmits = static_cast<uint8_t>(std::min<uint32_t>(t.retransmits, 255));
    ti.tcpi_probes = static_cast<uint8_t>(std::min<uint32_t>(t.keepalive_probes, 255));
    ti.tcpi_backoff = static_cast<uint8_t>(std::min<uint32_t>(t.rtt.backoffs(), 255));
    ti.tcpi_options = static_cast<uint8_t>((t.ts_ok ? kTcpiOptTimestamps : 0) | (t.sack_ok ? kTcpiOptSack : 0) |
                                           (t.ws_ok ? kTcpiOptWscale : 0));
    ti.tcpi_snd_wscale = t.ws_ok ? t.snd_wscale & 0xf : 0;
    ti.tcpi_rcv_wscale = t.ws_ok ? t.rcv_wscale & 0xf : 0;
    ti.tcpi_rto = us(t.rtt.rto());
    ti.tcpi_ato = us(c.cfg.delack);
    ti.tcpi_snd_mss = t.snd_mss;
    ti.tcpi_rcv_mss = t.rcv_mss_est;
    ti.tcpi_unacked = (flight + mss - 1) / mss;
    ti.tcpi_sacked = sacked / mss;
    // Retransmissions still outstanding, and what is presumed lost: after an RTO every
    // un-SACKed segment (Linux tcp_enter_loss); in SACK recovery what the RFC 6675 pipe
    // leaves out.
    if (t.retransmits || t.in_recovery) {
        const uint32_t rxt = t.high_rxt > t.snd_una ? static_cast<uint32_t>(t.high_rxt - t.snd_una) : 0;
        ti.tcpi_retrans = (rxt + mss - 1) / mss;
        uint32_t lost_bytes = flight > sacked ? flight - sacked : 0;
        if (!t.retransmits && t.sack_ok) {
            const uint32_t pipe = t.sb.pipe(t.snd_una, t.snd_max, t.high_rxt, mss, t.rxt_again, t.rxt_lost_end);
            const uint32_t in_net = pipe > rxt ? pipe - rxt : 0;
            lost_bytes = lost_bytes > in_net ? lost_bytes - in_net : 0;
        }
        ti.tcpi_lost = lost_bytes / mss;
    }
    ti.tcpi_last_data_sent = ms_since(c.now, t.last_send);
    ti.tcpi_last_data_recv = ms_since(c.now, t.last_recv);
    ti.tcpi_last_ack_recv = ms_since(c.now, t.info.last_ack_recv);
    ti.tcpi_pmtu = c.cfg.mtu;
    ti.tcpi_rcv_ssthresh = t.rcv_wnd;
    ti.tcpi_rtt = us(t.rtt.srtt());
    ti.tcpi_rttvar = us(t.rtt.rttvar());
    ti.tcpi_snd_ssthresh = t.cc.ssthresh() == 0xffffffffu ? 0x7fffffffu : t.cc.ssthresh() / mss;   // Linux TCP_INFINITE_SSTHRESH
    ti.tcpi_snd_cwnd = t.cc.cwnd() / mss;
    ti.tcpi_advmss = t.adv_mss;
    ti.tcpi_reordering = 3;   // Linux tcp_reordering default; the engine's DupThresh
    ti.tcpi_rcv_space = t.rcvq_space ? t.rcvq_space : t.rcvbuf;   // Linux rcvq_space.space
    ti.tcpi_rcv_rtt = us(t.rcv_rtt);
    ti.tcpi_total_retrans = t.total_retrans;
    ti.tcpi_max_pacing_rate = ~0ull;   // Linux: no SO_MAX_PACING_RATE set
    ti.tcpi_bytes_acked = t.info.bytes_acked;
    ti.tcpi_bytes_received = t.info.bytes_received;
    ti.tcpi_segs_out = t.info.segs_out;
    ti.tcpi_segs_in = t.info.segs_in;
    const Seq data_end = t.snd_data_end();
    ti.tcpi_notsent_bytes = data_end > t.snd_max ? static_cast<uint32_t>(data_end - t.snd_max) : 0;
    // Linux: ~0U before a sample. A handshake timed by timestamps (1 ms ticks) on a LAN
    // reads 0: below the clock's resolution, reported as its smallest value.
    ti.tcpi_min_rtt = t.rtt.has_sample() ? std::max<uint32_t>(us(t.rtt.min_rtt()), 1) : ~0u;
    ti.tcpi_data_segs_in = t.info.data_segs_in;
    ti.tcpi_data_segs_out = t.info.data_segs_out;
    ti.tcpi_delivery_rate = t.info.delivery_rate;
    ti.tcpi_delivered = t.info.delivered;
    ti.tcpi_bytes_sent = t.info.bytes_sent;
    ti.tcpi_bytes_retrans = t.info.bytes_retrans;
    ti.tcpi_dsack_dups = t.info.dsack_dups;
    ti.tcpi_reord_seen = t.spurious_undos;
    ti.tcpi_rcv_ooopack = t.info.rcv_ooopack;
    ti.tcpi_snd_wnd = t.snd_wnd;
    ti.tcpi_rcv_wnd = t.rcv_wnd;
    ti.tcpi_total_rto = static_cast<uint16_t>(std::min<uint32_t>(t.info.total_rto, 0xffff));
    ti.tcpi_total_rto_recoveries = static_cast<uint16_t>(std::min<uint32_t>(t.info.total_rto_recoveries, 0xffff));
    TimeNs rto_ns = t.info.total_rto_ns;
    if (t.info.rto_recovery_start) rto_ns += c.now - std::min(c.now, t.info.rto_recovery_start);
    ti.tcpi_total_rto_time = static_cast<uint32_t>(rto_ns / 1'000'000);
    return ti;
}

}  // namespace

int Engine::setsockopt(SockId s, int level, int name, const void* val, socklen_t len) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    int v = 0;
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_LINGER: {
            if (!val || len < static_cast<socklen_t>(sizeof(struct linger))) return -EINVAL;
            struct linger l;
            std::memcpy(&l, val, sizeof l);
            t->linger_on = l.l_onoff != 0;
            t->linger_secs = l.l_linger;
            return 0;
        }
        case SO_KEEPALIVE:
            if (int r = get_int(val, len, &v)) return r;
            t->keepalive = v != 0;
            if (t->synchronized()) c.arm_keepalive(*t);
            else if (!t->keepalive) t->keepalive_at = 0;
            if (!t->keepalive) c.rearm(*t);
            return 0;
        case SO_RCVBUF:
        case SO_SNDBUF: {
            // Linux sock_setsockopt: the value, taken as unsigned, is capped by
            // wmem_max / rmem_max, then doubled for the kernel's bookkeeping overhead,
            // and the buffer is locked against autotuning. getsockopt reports the
            // doubled value; the send queue holds that many bytes, the receive window
            // offers half of it (Linux's default tcp_adv_win_scale share).
            if (int r = get_int(val, len, &v)) return r;
            const bool snd = name == SO_SNDBUF;
            uint32_t u = std::min(static_cast<uint32_t>(v), snd ? c.cfg.wmem_max : c.cfg.rmem_max);
            u = std::min<uint32_t>(u, INT32_MAX / 2) * 2;
            if (snd) {
                t->sndbuf_lock = true;
                c.set_sndbuf(*t, std::max(u, kSockMinSndbuf));
                c.mark_events(*t);
            } else {
                t->rcvbuf_lock = true;
                c.set_rcvbuf(*t, std::max(u, kSockMinRcvbuf) / 2);
                // A window that grew a lot is offered at once (the rule recv() uses,
                // Linux tcp_cleanup_rbuf); a smaller one as the edge allows: the window
                // already offered is never retracted.
                const uint32_t before = t->rcv_adv > t->rcv_nxt ? uint32_t(t->rcv_adv - t->rcv_nxt) : 0;
                const uint32_t room = c.rcv_space(*t);
                if (t->synchronized() && !t->fin_rcvd && room >= before + t->adv_mss &&
                    (room >= 2 * before || before < t->adv_mss)) {
                    t->ack_now = true;
                    c.mark_output(*t);
                }
            }
            c.finish_api();
            return 0;
        }
        case SO_REUSEADDR:
            if (int r = get_int(val, len, &v)) return r;
            t->reuseaddr = v != 0;
            return 0;
        case SO_REUSEPORT:
            if (int r = get_int(val, len, &v)) return r;
            t->reuseport = v != 0;
            return 0;
        default: return -ENOPROTOOPT;
        }
    }
    if (level == IPPROTO_TCP) {
        switch (name) {
        case TCP_NODELAY: case TCP_KEEPIDLE: case TCP_KEEPINTVL: case TCP_KEEPCNT: case TCP_MAXSEG:
        case TCP_CORK: case TCP_NOTSENT_LOWAT: case TCP_USER_TIMEOUT: break;
        // Not ours: judged by the kernel (interpose/fastsock.cpp), whose length rule
        // differs for string options (TCP_CONGESTION, TCP_ULP).
        default: return -ENOPROTOOPT;
        }
        if (int r = get_int(val, len, &v)) return r;
        switch (name) {
        case TCP_NODELAY:
            t->nodelay = v != 0;
            if (t->nodelay) {
                c.mark_output(*t);   // Linux pushes pending data when Nagle is turned off
                c.finish_api();
            }
            return 0;
        case TCP_KEEPIDLE:
            if (v < 1 || v > 32767) return -EINVAL;
            t->keepidle = TimeNs(v) * 1'000'000'000ull;
            if (t->keepalive && t->synchronized()) c.arm_keepalive(*t);
            return 0;
        case TCP_KEEPINTVL:
            if (v < 1 || v > 32767) return -EINVAL;
            t->keepintvl = TimeNs(v) * 1'000'000'000ull;
            return 0;
        case TCP_KEEPCNT:
            if (v < 1 || v > 127) return -EINVAL;
            t->keepcnt = static_cast<uint32_t>(v);
            return 0;
        case TCP_MAXSEG:
            if (v != 0 && (v < 88 || v > 32767)) return -EINVAL;   // Linux TCP_MIN_MSS, MAX_TCP_WINDOW
            t->user_mss = static_cast<uint16_t>(v);
            return 0;
        case TCP_CORK:
            // Linux tcp_sock_set_cork: uncorking pushes what waits (Nagle still applies).
            t->cork = v != 0;
            if (!t->cork) {
                c.mark_output(*t);
                c.finish_api();
            }
            return 0;
        case TCP_NOTSENT_LOWAT:
            t->notsent_lowat = static_cast<uint32_t>(v);   // as Linux: any value, 0 = default
            c.mark_events(*t);
            c.finish_api();
            return 0;
        case TCP_USER_TIMEOUT:
            if (v < 0) return -EINVAL;
            t->user_timeout = TimeNs(v) * 1'000'000;
            if (t->rto_at && !t->persist) {
                t->rto_at = c.user_timeout_clamp(*t, t->rto_at);
                c.rearm(*t);
            }
            return 0;
        default: return -ENOPROTOOPT;
        }
    }
    return -ENOPROTOOPT;
}

int Engine::getsockopt(SockId s, int level, int name, void* val, socklen_t* len) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_ERROR: {
            int e = t->so_error;
            t->so_error = 0;
            return put_opt(val, len, e);
        }
        case SO_TYPE: return put_opt(val, len, int(SOCK_STREAM));
        case SO_ACCEPTCONN: return put_opt(val, len, int(t->state == TcpState::Listen));
        case SO_KEEPALIVE: return put_opt(val, len, int(t->keepalive));
        case SO_REUSEADDR: return put_opt(val, len, int(t->reuseaddr));
        case SO_REUSEPORT: return put_opt(val, len, int(t->reuseport));
        case SO_RCVBUF: return put_opt(val, len, int(std::min<uint32_t>(t->rcvbuf, INT32_MAX / 2) * 2));
        case SO_SNDBUF: return put_opt(val, len, int(t->sndbuf));
        case SO_LINGER: {
            struct linger l{t->linger_on ? 1 : 0, t->linger_secs};
            return put_opt(val, len, l);
        }
        default: return -ENOPROTOOPT;
        }
    }
    if (level == IPPROTO_TCP) {
        switch (name) {
        case TCP_NODELAY: return put_opt(val, len, int(t->nodelay));
        case TCP_KEEPIDLE: return put_opt(val, len, int(t->keepidle / 1'000'000'000ull));
        case TCP_KEEPINTVL: return put_opt(val, len, int(t->keepintvl / 1'000'000'000ull));
        case TCP_KEEPCNT: return put_opt(val, len, int(t->keepcnt));
        case TCP_MAXSEG:
            return put_opt(val, len, int(t->synchronized() ? t->snd_mss
                                         : (t->user_mss ? t->user_mss : kDefaultMss)));
        case TCP_INFO: return put_opt(val, len, tcp_info_of(c, *t));
        case TCP_CORK: return put_opt(val, len, int(t->cork));
        case TCP_NOTSENT_LOWAT: return put_opt(val, len, int(t->notsent_lowat));
        case TCP_USER_TIMEOUT: return put_opt(val, len, int(t->user_timeout / 1'000'000));
        default: return -ENOPROTOOPT;
        }
    }
    return -ENOPROTOOPT;
}

int Engine::local_endpoint(SockId s, Endpoint* out) const {
    const Tcb* t = impl_->get(s);
    if (!t) return -EBADF;
    if (out) *out = t->local;
    return 0;
}

int Engine::remote_endpoint(SockId s, Endpoint* out) const {
    const Tcb* t = impl_->get(s);
    if (!t) return -EBADF;
    // Linux inet_getname: no peer once the connection is CLOSED (reset, timed out).
    if (t->remote.port == 0 || t->state == TcpState::Closed) return -ENOTCONN;
    if (out) *out = t->remote;
    return 0;
}

size_t Engine::unread(SockId s) const {
    const Tcb* t = impl_->get(s);
    return t ? t->rcv.size() : 0;
}

size_t Engine::unsent(SockId s) const {
    const Tcb* t = impl_->get(s);
    return t ? t->snd.size() : 0;
}

size_t Engine::connections(SockId* out, size_t cap) const {
    TcpCore& c = *impl_;
    size_t n = 0;
    for (uint32_t i = 0; i < c.pool.capacity() && n < cap; ++i) {
        Tcb* t = c.pool.at_index(i);
        if (!t || t->state == TcpState::Listen || t->state == TcpState::TimeWait ||
            !t->synchronized() || !t->accepted)
            continue;
        bool fin_unacked = t->fin_sent && !(t->snd_una > t->fin_seq);
        bool fin_due = t->fin_queued && !t->fin_sent;
        if (!t->snd.empty() || fin_unacked || fin_due) out[n++] = t->id;
    }
    return n;
}

int Engine::handover_state(SockId s, HandoverState* out, bool with_unread) const {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t || !t->synchronized() || t->state == TcpState::TimeWait) return -EINVAL;
    if ((!with_unread && !t->rcv.empty()) || !t->ooo.empty()) return -EINVAL;   // the kernel would reset it
    // A repaired kernel socket cannot be told that the peer's FIN came.
    if (with_unread && t->fin_rcvd) return -EINVAL;
    HandoverState& h = *out;
    h.local = t->local;
    h.remote = t->remote;
    h.snd_una = t->snd_una.v;
    Seq nxt = t->snd_nxt;
    if (t->fin_sent && nxt > t->fin_seq) nxt = t->fin_seq;
    h.snd_nxt = nxt.v;
    h.rcv_nxt = t->rcv_nxt.v;
    h.snd_wl1 = t->snd_wl1.v;
    h.snd_wnd = t->snd_wnd;
    h.max_window = std::max(t->max_snd_wnd, t->snd_wnd);
    h.rcv_wnd = t->rcv_wnd;
    h.rcv_wup = t->rcv_nxt.v;
    h.mss = t->rcv_mss;
    h.ws_ok = t->ws_ok;
    h.snd_wscale = t->snd_wscale;
    h.rcv_wscale = t->rcv_wscale;
    h.sack_ok = t->sack_ok;
    h.ts_ok = t->ts_ok;
    h.tsval = c.tsval(*t);
    h.fin = t->fin_queued || t->fin_sent;
    // The ring holds [snd_buf_seq, snd_data_end); acknowledged bytes may still be in it.
    uint32_t skip = static_cast<uint32_t>(t->snd_una - t->snd_buf_seq);
    if (skip > t->snd.size()) skip = static_cast<uint32_t>(t->snd.size());
    h.data.resize(t->snd.size() - skip);
    t->snd.copy_out(skip, h.data.data(), h.data.size());
    h.unread.resize(with_unread ? t->rcv.size() : 0);
    if (!h.unread.empty()) t->rcv.copy_out(0, h.unread.data(), h.unread.size());
    return 0;
}

void Engine::detach(SockId s) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return;
    c.moved.push_back({FourTuple{t->local.ip, t->remote.ip, t->local.port, t->remote.port}, nullptr,
                       c.now + kMovedForwardNs});
    c.stats.handed_over++;
    t->user_closed = true;
    c.tcb_closed(*t);
    c.finish_api();
}

int Engine::move_to(SockId s, Engine& other) {
    TcpCore& c = *impl_;
    TcpCore& d = *other.impl_;
    Tcb* t = c.get(s);
    if (!t) return -EBADF;
    // Only accepted passive opens move: an active open holds a port of this engine's
    // share (its replies are steered here by the port), a listener its port.
    if (&d == &c || d.cfg.ip != c.cfg.ip || !t->accepted || t->bound || t->dead ||
        t->listener != kNoSock || t->state == TcpState::Closed ||
        t->state == TcpState::Listen || t->state == TcpState::SynReceived ||
        t->state == TcpState::SynSent)
        return -EINVAL;
    const FourTuple k{t->local.ip, t->remote.ip, t->local.port, t->remote.port};
    if (d.flows.find(k) != FlowTable::kEmpty) return -EEXIST;
    if (d.pool.live() >= d.pool.capacity()) return -ENOBUFS;
    if (d.now < c.now) d.now = c.now;

    c.wheel.cancel(t->timer);
    c.unlink_work(*t);
    c.flow_remove(*t);
    uint32_t h = d.pool.alloc(std::move(*t));
    Tcb& n = *d.pool.get(h);
    n.id = h;
    n.timer.owner = &n;
    n.moved_in = true;
    if (!d.flow_insert(n)) {   // cannot happen: checked above, the table is as big as the pool
        d.pool.free(h);
        return -ENOBUFS;
    }
    n.snd.set_cache(&d.blocks);   // its blocks go back to the engine that has it
    n.rcv.set_cache(&d.blocks);
    if (n.snd.capacity()) {
        c.buffers -= 2;
        d.buffers += 2;
    }
    c.pool.free(s);
    c.moved.push_back({k, &d, c.now + kMovedForwardNs});
    c.stats.moved_out++;
    d.stats.moved_in++;
    d.rearm(n);
    d.mark_output(n);
    d.mark_events(n);
    d.finish_api();
    return static_cast<int>(h);
}

const EngineStats& Engine::stats() const { return impl_->stats; }
size_t Engine::live_tcbs() const { return impl_->pool.live(); }
size_t Engine::buffers_in_use() const { return impl_->buffers; }
size_t Engine::timers_armed() const { return impl_->wheel.size(); }

}  // namespace fastnet
