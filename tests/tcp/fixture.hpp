// The segment-level test DSL for the TCP engine (smoltcp style): an Engine on a
// capturing fake Device; tests inject segments from a scripted peer at time T and
// expect the engine's segments (or nothing). Used by every tests/tcp/test_*.cpp.
#pragma once

#include <catch2/catch.hpp>

#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "stack/engine.hpp"
#include "stack/wire/frame.hpp"

namespace fastnet::test {

inline constexpr uint32_t kLocalIp = 0x0AD50001;    // 10.213.0.1 (the engine)
inline constexpr uint32_t kRemoteIp = 0x0AD50002;   // 10.213.0.2 (the scripted peer)
inline constexpr uint8_t kLocalMac[6] = {0x02, 0, 0, 0, 0, 1};
inline constexpr uint8_t kRemoteMac[6] = {0x02, 0, 0, 0, 0, 2};
inline constexpr TimeNs kMs = 1'000'000;
inline constexpr TimeNs kSec = 1'000'000'000;

// Frames in: a queue the test fills. Frames out: captured copies.
class CaptureDevice final : public Device {
public:
    std::deque<std::vector<uint8_t>> rx;
    std::vector<std::vector<uint8_t>> tx;
    size_t rx_held = 0, tx_held = 0;
    bool tx_exhausted = false;       // tx_alloc() returns nothing while set

    size_t rx_burst(Frame* out, size_t n) override {
        size_t k = 0;
        while (k < n && !rx.empty()) {
            held_.push_back(std::move(rx.front()));
            rx.pop_front();
            out[k].data = held_.back().data();
            out[k].len = static_cast<uint32_t>(held_.back().size());
            out[k].handle = held_.size() - 1;
            ++k;
        }
        rx_held += k;
        return k;
    }
    bool rx_ready() const override { return !rx.empty(); }
    void rx_release(const Frame*, size_t n) override {
        rx_held -= n;
        if (rx_held == 0) held_.clear();
    }
    size_t tx_alloc(Frame* out, size_t n) override {
        if (tx_exhausted) return 0;
        for (size_t i = 0; i < n; ++i) {
            bufs_.emplace_back(new uint8_t[kCap]);
            out[i].data = bufs_.back().get();
            out[i].len = 0;
            out[i].handle = reinterpret_cast<uint64_t>(out[i].data);
        }
        tx_held += n;
        return n;
    }
    void tx_submit(const Frame* f, size_t n) override {
        for (size_t i = 0; i < n; ++i) tx.emplace_back(f[i].data, f[i].data + f[i].len);
        release(f, n);
    }
    void tx_abandon(const Frame* f, size_t n) override { release(f, n); }
    void tx_flush() override { ++flushes; }
    uint32_t tx_capacity() const override { return kCap; }
    size_t flushes = 0;

private:
    static constexpr uint32_t kCap = 2048;
    void release(const Frame* f, size_t n) {
        for (size_t i = 0; i < n; ++i)
            for (auto it = bufs_.begin(); it != bufs_.end(); ++it)
                if (it->get() == f[i].data) {
                    bufs_.erase(it);
                    break;
                }
        tx_held -= n;
    }
    std::vector<std::vector<uint8_t>> held_;
    std::vector<std::unique_ptr<uint8_t[]>> bufs_;
};

class StaticNeighbours final : public Neighbours {
public:
    bool resolved = true;
    uint32_t asked = 0;
    bool resolve(uint32_t ip, uint8_t mac[6]) override {
        last_ip = ip;
        ++asked;
        if (!resolved) return false;
        std::memcpy(mac, kRemoteMac, 6);
        return true;
    }
    uint32_t last_ip = 0;
};

class RecordingSink final : public EventSink {
public:
    std::vector<std::pair<SockId, uint32_t>> events;
    void on_events(SockId s, uint32_t ev) override { events.emplace_back(s, ev); }
};

// A segment as the test sees it.
struct Seg {
    uint8_t flags = 0;
    uint32_t seq = 0, ack = 0;
    uint16_t window = 0;
    std::vector<uint8_t> payload;
    TcpOptions opts;
    uint16_t src_port = 0, dst_port = 0;
    uint32_t src_ip = 0, dst_ip = 0;
    size_t len() const { return payload.size(); }
};

struct SegOpts {
    std::optional<uint16_t> mss;
    std::optional<uint8_t> wscale;
    bool sack_permitted = false;
    std::optional<Timestamps> ts;
    std::vector<SackBlock> sack;
    SegOpts& with_mss(uint16_t v) { mss = v; return *this; }
    SegOpts& with_wscale(uint8_t v) { wscale = v; return *this; }
    SegOpts& with_sack_permitted(bool v) { sack_permitted = v; return *this; }
    SegOpts& with_ts(Timestamps v) { ts = v; return *this; }
};

inline EngineConfig test_config() {
    EngineConfig c;
    std::memcpy(c.mac, kLocalMac, 6);
    c.ip = kLocalIp;
    c.netmask = 0xffff0000;
    c.msl = 1 * kSec;                  // TIME_WAIT = 2 s in tests
    c.sndbuf = 64 * 1024;
    c.rcvbuf = 64 * 1024;
    c.sndbuf_max = c.sndbuf;           // no autotuning unless a test asks for it
    c.rcvbuf_max = c.rcvbuf;
    c.max_sockets = 64;
    c.isn_secret[0] = 1;
    c.isn_secret[1] = 2;
    return c;
}

class Fixture {
public:
    explicit Fixture(EngineConfig c = test_config()) : cfg(c) {
        eng = std::make_unique<Engine>(cfg, dev, nb);
        eng->set_event_sink(&sink);
    }

    EngineConfig cfg;
    CaptureDevice dev;
    StaticNeighbours nb;
    RecordingSink sink;
    std::unique_ptr<Engine> eng;
    TimeNs now = 0;
    uint16_t local_port = 80;
    uint16_t remote_port = 49152;
    size_t next_tx = 0;
    bool autopoll = true;   // inject() polls the engine; false: the frame waits in the device

    // ------------------------------------------------------------ driving
    void advance_to(TimeNs t) {
        if (t > now) now = t;
        eng->poll(now);
    }
    void advance_by(TimeNs d) { advance_to(now + d); }
    // Polls at every deadline up to t (timers fire at their own time).
    void run_until(TimeNs t) {
        for (int i = 0; i < 100000; ++i) {
            TimeNs d = eng->next_deadline();
            if (d > t) break;
            advance_to(std::max(d, now));
        }
        advance_to(t);
    }

    // ------------------------------------------------------------ peer → engine
    void send_segment(uint8_t flags, uint32_t seq, uint32_t ack, const std::vector<uint8_t>& data = {},
                      const SegOpts& o = {}, uint16_t window = 65535) {
        inject(flags, seq, ack, data, o, window, remote_port, local_port);
    }
    void inject(uint8_t flags, uint32_t seq, uint32_t ack, const std::vector<uint8_t>& data,
                const SegOpts& o, uint16_t window, uint16_t sport, uint16_t dport,
                uint32_t src_ip = kRemoteIp) {
        TcpFrameSpec sp;
        sp.src_mac = MacAddr::from(kRemoteMac);
        sp.dst_mac = MacAddr::from(kLocalMac);
        sp.src_ip = src_ip;
        sp.dst_ip = kLocalIp;
        sp.tcp.src_port = sport;
        sp.tcp.dst_port = dport;
        sp.tcp.seq = Seq(seq);
        sp.tcp.ack = Seq(ack);
        sp.tcp.flags = flags;
        sp.tcp.window = window;
        sp.tcp.opts.mss = o.mss;
        sp.tcp.opts.wscale = o.wscale;
        sp.tcp.opts.sack_permitted = o.sack_permitted;
        sp.tcp.opts.ts = o.ts;
        sp.tcp.opts.sack_count = static_cast<uint8_t>(o.sack.size());
        for (size_t i = 0; i < o.sack.size() && i < kTcpMaxSackBlocks; ++i) sp.tcp.opts.sack[i] = o.sack[i];
        std::vector<uint8_t> buf(4096);
        size_t n = emit_tcp_frame(buf.data(), buf.size(), sp, data.data(), data.size(), nullptr, 0);
        REQUIRE(n > 0);
        buf.resize(n);
        dev.rx.push_back(std::move(buf));
        if (autopoll) eng->poll(now);
    }

    // ------------------------------------------------------------ engine → peer
    size_t pending() const { return dev.tx.size() - next_tx; }
    Seg pop() {
        REQUIRE(pending() > 0);
        const auto& f = dev.tx[next_tx++];
        ParseResult r = parse_frame(f.data(), f.size(), true);
        REQUIRE(r.ok());
        Seg s;
        s.flags = r->tcp.flags;
        s.seq = r->tcp.seq.v;
        s.ack = r->tcp.ack.v;
        s.window = r->tcp.window;
        s.payload.assign(r->tcp.payload, r->tcp.payload + r->tcp.payload_len);
        s.opts = r->tcp.opts;
        s.src_port = r->tcp.src_port;
        s.dst_port = r->tcp.dst_port;
        s.src_ip = r->ip.src;
        s.dst_ip = r->ip.dst;
        CHECK(r->eth.dst == MacAddr::from(kRemoteMac));
        return s;
    }
    // flags must match exactly; seq/ack checked when given; len checked when >= 0.
    Seg expect_segment(uint8_t flags, std::optional<uint32_t> seq = {},
                       std::optional<uint32_t> ack = {}, long len = -1) {
        INFO("at t=" << now / kMs << " ms");
        REQUIRE(pending() > 0);
        Seg s = pop();
        CAPTURE(int(s.flags), s.seq, s.ack, s.len());
        CHECK(int(s.flags & ~kTcpPsh) == int(flags & ~kTcpPsh));
        if (seq) CHECK(s.seq == *seq);
        if (ack && (flags & kTcpAck)) CHECK(s.ack == *ack);
        if (len >= 0) CHECK(long(s.len()) == len);
        return s;
    }
    void expect_nothing() {
        INFO("at t=" << now / kMs << " ms");
        if (pending()) {
            Seg s = pop();
            CAPTURE(int(s.flags), s.seq, s.ack, s.len());
            FAIL("unexpected segment");
        }
    }
    void drain() { next_tx = dev.tx.size(); }

    // ------------------------------------------------------------ states
    // Remote's next sequence number and ours, tracked by the helpers below.
    uint32_t rseq = 1000;     // peer ISS + 1 once synchronized
    uint32_t lseq = 0;        // our snd_nxt as the peer sees it

    SockId listen_socket(int backlog = 16) {
        int l = eng->socket();
        REQUIRE(l >= 0);
        REQUIRE(eng->bind(SockId(l), Endpoint{0, local_port}) == 0);
        REQUIRE(eng->listen(SockId(l), backlog) == 0);
        return SockId(l);
    }

    // LISTEN → SYN → SYN-ACK → ACK → accept(). Options on the peer's SYN are `o`.
    SockId establish_passive(SockId listener, const SegOpts& o = {}, uint32_t peer_iss = 1000) {
        rseq = peer_iss;
        send_segment(kTcpSyn, rseq, 0, {}, o);
        Seg sa = expect_segment(kTcpSyn | kTcpAck, {}, rseq + 1, 0);
        rseq += 1;
        lseq = sa.seq + 1;
        SegOpts a;
        if (o.ts) a.ts = Timestamps{o.ts->tsval + 1, sa.opts.ts ? sa.opts.ts->tsval : 0};
        send_segment(kTcpAck, rseq, lseq, {}, a);
        expect_nothing();
        Endpoint peer;
        int s = eng->accept(listener, &peer);
        REQUIRE(s >= 0);
        CHECK(peer.ip == kRemoteIp);
        CHECK(peer.port == remote_port);
        return SockId(s);
    }

    // socket() → connect() → SYN; SYN-ACK from the peer; ACK.
    SockId establish_active(const SegOpts& o = {}, uint32_t peer_iss = 5000) {
        int s = eng->socket();
        REQUIRE(s >= 0);
        REQUIRE(eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
        Seg syn = expect_segment(kTcpSyn, {}, {}, 0);
        remote_port = 80;
        local_port = syn.src_port;
        rseq = peer_iss;
        lseq = syn.seq + 1;
        SegOpts so = o;
        if (o.ts && syn.opts.ts) so.ts = Timestamps{o.ts->tsval, syn.opts.ts->tsval};
        send_segment(kTcpSyn | kTcpAck, rseq, lseq, {}, so);
        rseq += 1;
        expect_segment(kTcpAck, lseq, rseq, 0);
        return SockId(s);
    }

    // ------------------------------------------------------------ leak check
    // Lets every timer run out (TIME_WAIT, FIN retransmissions...) then checks nothing
    // is left: no TCBs, buffers, timers, device buffers.
    void leak_check() {
        run_until(now + 3600 * kSec);
        CHECK(eng->live_tcbs() == 0);
        CHECK(eng->buffers_in_use() == 0);
        CHECK(eng->timers_armed() == 0);
        CHECK(dev.rx_held == 0);
        CHECK(dev.tx_held == 0);
    }
};

inline std::vector<uint8_t> bytes(size_t n, uint8_t seed = 1) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
    return v;
}

}  // namespace fastnet::test
