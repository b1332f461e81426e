// libFuzzer harness over the TCP input path: an Engine on an in-memory device is put in a
// state (listening, passive/active handshake done, SYN-SENT) and then fed segments, time
// and socket calls chosen by the fuzzer's bytes. Nothing may crash, trip ASan/UBSan or
// leak: after aborting every socket and running time past TIME_WAIT and every timeout,
// live_tcbs(), buffers_in_use(), timers_armed() and the device's lent frames are all 0.
// Built with clang++ -fsanitize=fuzzer,address,undefined by tests/fuzz/meson.build.
#include <fuzzer/FuzzedDataProvider.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "stack/engine.hpp"
#include "stack/wire/frame.hpp"

using namespace fastnet;

namespace {

constexpr uint32_t kLocalIp = 0x0AD50001;    // 10.213.0.1, the engine
constexpr uint32_t kRemoteIp = 0x0AD50002;   // 10.213.0.2, the scripted peer
constexpr uint8_t kLocalMac[6] = {0x02, 0, 0, 0, 0, 1};
constexpr uint8_t kRemoteMac[6] = {0x02, 0, 0, 0, 0, 2};
constexpr TimeNs kMs = 1'000'000;
constexpr TimeNs kSec = 1'000'000'000;
constexpr uint16_t kListenPort = 80;
constexpr uint16_t kPeerPort = 49152;

[[noreturn]] void violated(const char* what, unsigned long long v) {
    fprintf(stderr, "invariant violated: %s (%llu)\n", what, v);
    std::abort();
}

// Frames in from a queue, frames out parsed and remembered as the peer's view of the
// engine (its highest sequence sent and what it acknowledged). Every frame lent is
// counted so a leak of device buffers is caught as well as the engine's own.
class FuzzDevice final : public Device {
public:
    std::deque<std::vector<uint8_t>> rx;
    size_t rx_held = 0, tx_held = 0;
    uint64_t tx_frames = 0;
    bool tx_exhausted = false;

    // The peer's view of the connection (learned from the engine's segments).
    bool seen = false;
    uint16_t eng_port = 0;       // engine's port on the last segment it sent us
    uint32_t eng_iss = 0;        // seq of the engine's SYN
    uint32_t eng_snd_max = 0;    // highest seq + len the engine sent
    uint32_t eng_ack = 0;        // the engine's last cumulative ACK (its rcv_nxt)
    bool syn_seen = false;

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
    void rx_release(const Frame*, size_t n) override {
        if (n > rx_held) violated("rx_release of frames never lent", n);
        rx_held -= n;
        if (rx_held == 0) held_.clear();
    }
    size_t tx_alloc(Frame* out, size_t n) override {
        if (tx_exhausted) return 0;
        for (size_t i = 0; i < n; ++i) {
            out[i].data = new uint8_t[kCap];
            out[i].len = 0;
            out[i].handle = reinterpret_cast<uint64_t>(out[i].data);
        }
        tx_held += n;
        return n;
    }
    void tx_submit(const Frame* f, size_t n) override {
        for (size_t i = 0; i < n; ++i) {
            if (f[i].len > kCap) violated("tx frame longer than the buffer", f[i].len);
            learn(f[i].data, f[i].len);
        }
        release(f, n);
    }
    void tx_abandon(const Frame* f, size_t n) override { release(f, n); }
    void tx_flush() override {}
    uint32_t tx_capacity() const override { return kCap; }

private:
    static constexpr uint32_t kCap = 2048;

    void release(const Frame* f, size_t n) {
        if (n > tx_held) violated("tx buffer returned twice", n);
        for (size_t i = 0; i < n; ++i) delete[] f[i].data;
        tx_held -= n;
    }
    void learn(const uint8_t* p, uint32_t len) {
        ++tx_frames;
        ParseResult r = parse_frame(p, len, true);
        // The engine must never emit a frame its own parser rejects.
        if (!r.ok()) violated("engine emitted an unparsable frame", len);
        const TcpView& t = r->tcp;
        if (r->ip.src != kLocalIp) violated("engine sent from a foreign address", r->ip.src);
        if (t.flags & kTcpRst) return;
        uint32_t end = t.seq.v + uint32_t(t.payload_len) + ((t.flags & kTcpSyn) ? 1 : 0) +
                       ((t.flags & kTcpFin) ? 1 : 0);
        if (t.flags & kTcpSyn) {
            eng_iss = t.seq.v;
            syn_seen = true;
            eng_snd_max = end;
        } else if (!seen || int32_t(end - eng_snd_max) > 0) {
            eng_snd_max = end;
        }
        if (t.flags & kTcpAck) eng_ack = t.ack.v;
        eng_port = t.src_port;
        seen = true;
    }
    std::vector<std::vector<uint8_t>> held_;
};

class FixedNeighbours final : public Neighbours {
public:
    bool up = true;
    bool resolve(uint32_t, uint8_t mac[6]) override {
        if (!up) return false;
        std::memcpy(mac, kRemoteMac, 6);
        return true;
    }
};

struct Harness {
    EngineConfig cfg;
    FuzzDevice dev;
    FixedNeighbours nb;
    std::unique_ptr<Engine> eng;
    TimeNs now = 1 * kSec;
    std::vector<SockId> socks;        // every socket the application still holds
    SockId listener = kNoSock;
    SockId conn = kNoSock;            // the connection the segments aim at
    uint16_t local_port = kListenPort;
    uint16_t peer_port = kPeerPort;
    uint32_t peer_snd_nxt = 0;        // the scripted peer's next sequence number
    uint32_t peer_tsval = 1;
    bool trace = getenv("FUZZ_TRACE") != nullptr;   // replaying a crash: print each step

    Harness() {
        std::memcpy(cfg.mac, kLocalMac, 6);
        cfg.ip = kLocalIp;
        cfg.netmask = 0xffff0000;
        cfg.msl = 1 * kSec;
        cfg.sndbuf = 16 * 1024;
        cfg.rcvbuf = 16 * 1024;
        cfg.max_sockets = 16;
        cfg.syn_backlog = 4;           // small, so fuzzed SYNs reach the cookie path
        cfg.isn_secret[0] = 1;
        cfg.isn_secret[1] = 2;
        eng = std::make_unique<Engine>(cfg, dev, nb);
    }

    void poll() { eng->poll(now); }
    void advance(TimeNs d) {
        now += d;
        eng->poll(now);
    }
    // Fires every timer due up to now + d at its own time.
    void run_for(TimeNs d) {
        TimeNs until = now + d;
        for (int i = 0; i < 20000; ++i) {
            TimeNs t = eng->next_deadline();
            if (t > until) break;
            now = std::max(now, t);
            eng->poll(now);
        }
        now = until;
        eng->poll(now);
    }

    void inject(uint8_t flags, uint32_t seq, uint32_t ack, uint16_t window,
                const TcpOptions& opts, const uint8_t* data, size_t len,
                uint16_t sport, uint16_t dport, int corrupt_at = -1, uint8_t corrupt_xor = 0,
                size_t truncate_to = 0) {
        if (trace)
            fprintf(stderr, "t=%llums in flags=%02x seq=%u(peer%+d) ack=%u(eng%+d) win=%u len=%zu %u->%u%s\n",
                    (unsigned long long)(now / kMs), flags, seq, int(seq - peer_snd_nxt), ack,
                    int(ack - dev.eng_snd_max), window, len, sport, dport,
                    corrupt_at >= 0 || truncate_to ? " damaged" : "");
        TcpFrameSpec sp;
        sp.src_mac = MacAddr::from(kRemoteMac);
        sp.dst_mac = MacAddr::from(kLocalMac);
        sp.src_ip = kRemoteIp;
        sp.dst_ip = kLocalIp;
        sp.tcp.src_port = sport;
        sp.tcp.dst_port = dport;
        sp.tcp.seq = Seq(seq);
        sp.tcp.ack = Seq(ack);
        sp.tcp.flags = flags;
        sp.tcp.window = window;
        sp.tcp.opts = opts;
        std::vector<uint8_t> buf(tcp_frame_len(sp, len) + 16);
        size_t n = emit_tcp_frame(buf.data(), buf.size(), sp, data, len, nullptr, 0);
        if (n == 0) return;
        buf.resize(n);
        if (corrupt_at >= 0 && corrupt_xor) buf[size_t(corrupt_at) % n] ^= corrupt_xor;
        if (truncate_to && truncate_to < n) buf.resize(truncate_to);
        dev.rx.push_back(std::move(buf));
        poll();
    }
    void peer_segment(uint8_t flags, const uint8_t* data = nullptr, size_t len = 0) {
        TcpOptions o;
        o.ts = Timestamps{peer_tsval++, 0};
        inject(flags, peer_snd_nxt, dev.eng_snd_max, 65535, o, data, len, peer_port, local_port);
    }

    void drop_sock(SockId s) { socks.erase(std::remove(socks.begin(), socks.end(), s), socks.end()); }

    // ---------------------------------------------------------------- states
    void setup_listener() {
        int s = eng->socket();
        if (s < 0) violated("socket() failed on an empty engine", uint64_t(-s));
        listener = SockId(s);
        socks.push_back(listener);
        if (eng->bind(listener, {0, kListenPort}) < 0) violated("bind failed", 0);
        if (eng->listen(listener, 8) < 0) violated("listen failed", 0);
    }
    void passive_open(FuzzedDataProvider& in, bool complete) {
        setup_listener();
        peer_snd_nxt = in.ConsumeIntegral<uint32_t>();
        TcpOptions o;
        if (in.ConsumeBool()) o.mss = in.ConsumeIntegralInRange<uint16_t>(0, 9000);
        if (in.ConsumeBool()) o.wscale = in.ConsumeIntegralInRange<uint8_t>(0, 14);
        o.sack_permitted = in.ConsumeBool();
        if (in.ConsumeBool()) o.ts = Timestamps{peer_tsval++, 0};
        inject(kTcpSyn, peer_snd_nxt, 0, in.ConsumeIntegral<uint16_t>(), o, nullptr, 0,
               peer_port, local_port);
        ++peer_snd_nxt;
        if (!complete) return;
        TcpOptions a;
        if (o.ts) a.ts = Timestamps{peer_tsval++, 0};
        inject(kTcpAck, peer_snd_nxt, dev.eng_snd_max, 65535, a, nullptr, 0, peer_port,
               local_port);
        Endpoint pe;
        int c = eng->accept(listener, &pe);
        if (c >= 0) {
            conn = SockId(c);
            socks.push_back(conn);
        }
    }
    void active_open(FuzzedDataProvider& in, bool complete) {
        int s = eng->socket();
        if (s < 0) violated("socket() failed on an empty engine", uint64_t(-s));
        conn = SockId(s);
        socks.push_back(conn);
        peer_port = 8080;
        int r = eng->connect(conn, {kRemoteIp, peer_port});
        if (r < 0 && r != -EINPROGRESS) violated("connect failed", uint64_t(-r));
        poll();
        local_port = dev.eng_port;
        peer_snd_nxt = in.ConsumeIntegral<uint32_t>();
        if (!complete) return;
        TcpOptions o;
        if (in.ConsumeBool()) o.mss = in.ConsumeIntegralInRange<uint16_t>(0, 9000);
        if (in.ConsumeBool()) o.wscale = in.ConsumeIntegralInRange<uint8_t>(0, 14);
        o.sack_permitted = in.ConsumeBool();
        if (in.ConsumeBool()) o.ts = Timestamps{peer_tsval++, dev.eng_ack};
        inject(kTcpSyn | kTcpAck, peer_snd_nxt, dev.eng_snd_max, in.ConsumeIntegral<uint16_t>(),
               o, nullptr, 0, peer_port, local_port);
        ++peer_snd_nxt;
    }

    // ---------------------------------------------------------------- fuzzed steps
    uint32_t pick_seq(FuzzedDataProvider& in) {
        switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: return peer_snd_nxt;
        case 1: return peer_snd_nxt + uint32_t(in.ConsumeIntegral<int16_t>());
        case 2: return peer_snd_nxt + uint32_t(in.ConsumeIntegral<int32_t>());
        default: return in.ConsumeIntegral<uint32_t>();
        }
    }
    uint32_t pick_ack(FuzzedDataProvider& in) {
        switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: return dev.eng_snd_max;
        case 1: return dev.eng_snd_max + uint32_t(in.ConsumeIntegral<int16_t>());
        case 2: return dev.eng_iss + uint32_t(in.ConsumeIntegral<int16_t>());
        default: return in.ConsumeIntegral<uint32_t>();
        }
    }
    TcpOptions pick_opts(FuzzedDataProvider& in) {
        TcpOptions o;
        uint8_t m = in.ConsumeIntegral<uint8_t>();
        if (m & 1) o.mss = in.ConsumeIntegral<uint16_t>();
        if (m & 2) o.wscale = in.ConsumeIntegralInRange<uint8_t>(0, 14);
        if (m & 4) o.sack_permitted = true;
        if (m & 8) {
            uint32_t tsval = (m & 16) ? peer_tsval++ : in.ConsumeIntegral<uint32_t>();
            o.ts = Timestamps{tsval, in.ConsumeBool() ? dev.eng_ack : in.ConsumeIntegral<uint32_t>()};
        }
        if (m & 32) {
            // SACK blocks take room next to timestamps; at most 3 then (RFC 2018 3).
            uint8_t max = o.ts ? 3 : kTcpMaxSackBlocks;
            if (o.mss || o.wscale || o.sack_permitted) max = 2;
            o.sack_count = in.ConsumeIntegralInRange<uint8_t>(0, max);
            for (uint8_t i = 0; i < o.sack_count; ++i) {
                uint32_t l = dev.eng_iss + uint32_t(in.ConsumeIntegral<int16_t>());
                if (in.ConsumeBool()) l = dev.eng_snd_max - in.ConsumeIntegralInRange<uint32_t>(0, 40000);
                uint32_t r = l + uint32_t(in.ConsumeIntegral<int16_t>());
                o.sack[i] = SackBlock{Seq(l), Seq(r)};
            }
        }
        return o;
    }

    void fuzzed_segment(FuzzedDataProvider& in) {
        uint8_t flags = in.ConsumeIntegral<uint8_t>();
        uint32_t seq = pick_seq(in);
        uint32_t ack = pick_ack(in);
        uint16_t window = in.ConsumeIntegral<uint16_t>();
        TcpOptions opts = pick_opts(in);
        size_t len = in.ConsumeIntegralInRange<size_t>(0, 1460);
        static uint8_t payload[1460];
        uint8_t fill = in.ConsumeIntegral<uint8_t>();
        for (size_t i = 0; i < len; ++i) payload[i] = uint8_t(fill + i);
        uint16_t sport = peer_port, dport = local_port;
        uint8_t where = in.ConsumeIntegral<uint8_t>();
        if (where < 16) sport = in.ConsumeIntegral<uint16_t>();        // another flow
        else if (where < 24) dport = in.ConsumeIntegral<uint16_t>();   // another port
        int corrupt_at = -1;
        uint8_t corrupt_xor = 0;
        size_t truncate_to = 0;
        uint8_t damage = in.ConsumeIntegral<uint8_t>();
        if (damage < 16) {
            corrupt_at = in.ConsumeIntegral<uint16_t>();
            corrupt_xor = in.ConsumeIntegral<uint8_t>();
        } else if (damage < 24) {
            truncate_to = in.ConsumeIntegralInRange<size_t>(1, 80);
        }
        inject(flags, seq, ack, window, opts, payload, len, sport, dport, corrupt_at,
               corrupt_xor, truncate_to);
        // A well-formed in-order segment moves the peer's sequence on, so later
        // segments stay relevant to the connection.
        if (seq == peer_snd_nxt && corrupt_at < 0 && !truncate_to && sport == peer_port &&
            dport == local_port && !(flags & kTcpRst))
            peer_snd_nxt += uint32_t(len) + ((flags & kTcpSyn) ? 1 : 0) + ((flags & kTcpFin) ? 1 : 0);
    }

    void raw_frame(FuzzedDataProvider& in) {
        size_t n = in.ConsumeIntegralInRange<size_t>(0, 200);
        std::vector<uint8_t> f = in.ConsumeBytes<uint8_t>(n);
        // Addressed to us often enough to pass the Ethernet and IP checks.
        if (f.size() >= 34 && in.ConsumeBool()) {
            std::memcpy(f.data(), kLocalMac, 6);
            f[12] = 0x08;
            f[13] = 0x00;
        }
        dev.rx.push_back(std::move(f));
        poll();
    }

    SockId pick_sock(FuzzedDataProvider& in) {
        if (socks.empty() || in.ConsumeIntegralInRange<int>(0, 7) == 0)
            return in.ConsumeIntegralInRange<SockId>(0, 20);   // maybe stale or unknown
        return socks[in.ConsumeIntegralInRange<size_t>(0, socks.size() - 1)];
    }

    void app_call(FuzzedDataProvider& in) {
        static uint8_t buf[32 * 1024];
        SockId s = pick_sock(in);
        bool held = std::find(socks.begin(), socks.end(), s) != socks.end();
        int call = in.ConsumeIntegralInRange<int>(0, 10);
        if (trace) fprintf(stderr, "  app call %d on sock %u (held %d)\n", call, s, held);
        switch (call) {
        case 0:
        case 1: {
            size_t n = in.ConsumeIntegralInRange<size_t>(1, sizeof buf);
            std::memset(buf, 'a', n);
            eng->send(s, buf, n, in.ConsumeBool() ? MSG_NOSIGNAL : 0);
            break;
        }
        case 2:
        case 3: eng->recv(s, buf, in.ConsumeIntegralInRange<size_t>(1, sizeof buf),
                          in.ConsumeBool() ? MSG_PEEK : 0); break;
        case 4:
            if (eng->close(s) == 0 && held) drop_sock(s);
            break;
        case 5: eng->shutdown(s, in.ConsumeIntegralInRange<int>(0, 3)); break;
        case 6:
            if (eng->abort(s) == 0 && held) drop_sock(s);
            break;
        case 7: {
            Endpoint pe;
            int c = eng->accept(s, &pe);
            if (c >= 0) socks.push_back(SockId(c));
            break;
        }
        case 8: {
            linger l{1, 0};
            eng->setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            break;
        }
        case 9: {
            int v = in.ConsumeIntegral<int>();
            int opt = in.ConsumeBool() ? TCP_NODELAY : TCP_MAXSEG;
            eng->setsockopt(s, IPPROTO_TCP, opt, &v, sizeof v);
            break;
        }
        default: {
            (void)eng->events(s);
            (void)eng->unread(s);
            (void)eng->unsent(s);
            int err = 0;
            socklen_t len = sizeof err;
            eng->getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
            break;
        }
        }
        poll();
    }

    void step(FuzzedDataProvider& in) {
        int op = in.ConsumeIntegralInRange<int>(0, 9);
        if (trace) fprintf(stderr, "t=%llums step %d live_tcbs=%zu\n", (unsigned long long)(now / kMs), op, eng->live_tcbs());
        switch (op) {
        case 0:
        case 1:
        case 2:
        case 3: fuzzed_segment(in); break;
        case 4: {   // the peer acknowledges everything and maybe sends data in order
            static const uint8_t data[512] = {};
            size_t n = in.ConsumeIntegralInRange<size_t>(0, sizeof data);
            uint8_t fl = kTcpAck | (in.ConsumeIntegralInRange<int>(0, 7) == 0 ? kTcpFin : 0);
            peer_segment(fl, data, n);
            peer_snd_nxt += uint32_t(n) + ((fl & kTcpFin) ? 1 : 0);
            break;
        }
        case 5: app_call(in); break;
        case 6: run_for(in.ConsumeIntegralInRange<TimeNs>(0, 3000) * kMs); break;
        case 7: advance(in.ConsumeIntegralInRange<TimeNs>(0, 50) * kMs); break;
        case 8: raw_frame(in); break;
        default:
            if (in.ConsumeBool()) dev.tx_exhausted = !dev.tx_exhausted;
            else nb.up = !nb.up;
            poll();
            break;
        }
    }

    // Everything the application holds is aborted; then time runs far past TIME_WAIT and
    // every data/persist/keepalive timeout. Nothing may be left.
    void finish() {
        dev.tx_exhausted = false;
        nb.up = true;
        for (int round = 0; round < 4 && !socks.empty(); ++round) {
            std::vector<SockId> left = socks;
            for (SockId s : left) {
                if (eng->abort(s) == 0 || eng->close(s) == 0) drop_sock(s);
            }
        }
        if (!socks.empty()) violated("abort/close refused a held socket", socks.size());
        run_for(4 * 3600 * kSec);
        if (size_t n = eng->live_tcbs()) violated("live_tcbs() after abort and timeouts", n);
        if (size_t n = eng->buffers_in_use()) violated("buffers_in_use() after abort", n);
        if (size_t n = eng->timers_armed()) violated("timers_armed() after abort", n);
        if (dev.rx_held) violated("device RX frames not released", dev.rx_held);
        if (dev.tx_held) violated("device TX buffers not returned", dev.tx_held);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    Harness h;
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: h.setup_listener(); break;
    case 1: h.passive_open(in, false); break;
    case 2: h.passive_open(in, true); break;
    case 3: h.active_open(in, false); break;
    default: h.active_open(in, true); break;
    }
    for (int steps = 0; steps < 256 && in.remaining_bytes() > 0; ++steps) h.step(in);
    h.finish();
    return 0;
}
