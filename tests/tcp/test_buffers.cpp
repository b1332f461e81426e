// Buffer sizes: SO_SNDBUF / SO_RCVBUF on open connections (Linux's doubling and caps),
// the window scale offered from the most the receive buffer may grow to, and receive
// (DRS) and send (cwnd) autotuning up to EngineConfig's maxima.
#include <sys/epoll.h>

#include "tests/tcp/fixture.hpp"

using namespace fastnet;
using namespace fastnet::test;

namespace {

int get_buf(Fixture& f, SockId s, int name) {
    int v = 0;
    socklen_t len = sizeof v;
    REQUIRE(f.eng->getsockopt(s, SOL_SOCKET, name, &v, &len) == 0);
    return v;
}

void set_buf(Fixture& f, SockId s, int name, int v) {
    REQUIRE(f.eng->setsockopt(s, SOL_SOCKET, name, &v, sizeof v) == 0);
}

// The last segment the engine sent (all pending ones consumed).
Seg last_sent(Fixture& f) {
    REQUIRE(f.pending() > 0);
    Seg a;
    while (f.pending()) a = f.pop();
    return a;
}

}  // namespace

TEST_CASE("SO_RCVBUF and SO_SNDBUF report twice the value set, capped by rmem_max / wmem_max, as Linux", "[tcp][options][buffers]") {
    Fixture f;
    int s = f.eng->socket();
    set_buf(f, SockId(s), SO_RCVBUF, 100000);
    set_buf(f, SockId(s), SO_SNDBUF, 100000);
    CHECK(get_buf(f, SockId(s), SO_RCVBUF) == 200000);
    CHECK(get_buf(f, SockId(s), SO_SNDBUF) == 200000);
    set_buf(f, SockId(s), SO_RCVBUF, 1 << 30);    // above rmem_max
    set_buf(f, SockId(s), SO_SNDBUF, -1);         // taken as unsigned: huge
    CHECK(get_buf(f, SockId(s), SO_RCVBUF) == 2 * int(f.cfg.rmem_max));
    CHECK(get_buf(f, SockId(s), SO_SNDBUF) == 2 * int(f.cfg.wmem_max));
    set_buf(f, SockId(s), SO_RCVBUF, 1);           // SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF
    set_buf(f, SockId(s), SO_SNDBUF, 1);
    CHECK(get_buf(f, SockId(s), SO_RCVBUF) == 2304);
    CHECK(get_buf(f, SockId(s), SO_SNDBUF) == 4608);
    f.eng->close(SockId(s));
    f.leak_check();
}

TEST_CASE("SO_RCVBUF after the handshake changes the advertised window, never retracting its edge", "[tcp][established][buffers][window]") {
    Fixture f;   // 64 KiB receive buffer, no autotuning
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l, SegOpts().with_mss(1000).with_wscale(2));
    f.send_segment(kTcpAck, f.rseq, f.lseq, bytes(1000));
    f.send_segment(kTcpAck, f.rseq + 1000, f.lseq, bytes(1000));
    Seg a = last_sent(f);
    const uint32_t shift = 1;   // wscale_for(64 KiB)
    CHECK(a.opts.sack_count == 0);
    uint32_t w0 = uint32_t(a.window) << shift;
    CHECK(w0 <= 64 * 1024);
    set_buf(f, s, SO_RCVBUF, 100000);
    CHECK(get_buf(f, s, SO_RCVBUF) == 200000);
    std::vector<uint8_t> buf(4000);
    CHECK(f.eng->recv(s, buf.data(), buf.size(), 0) == 2000);
    f.send_segment(kTcpAck, f.rseq + 2000, f.lseq, bytes(1000));
    f.send_segment(kTcpAck, f.rseq + 3000, f.lseq, bytes(1000));
    a = last_sent(f);
    CHECK(a.ack == f.rseq + 4000);
    CHECK((uint32_t(a.window) << shift) >= 100000 - 2000 - 2);   // the new limit, less what is unread
    const uint32_t edge = a.ack + (uint32_t(a.window) << shift);
    // Shrinking: the edge already offered stays; only new room is no longer offered.
    set_buf(f, s, SO_RCVBUF, 5000);
    CHECK(get_buf(f, s, SO_RCVBUF) == 10000);
    f.send_segment(kTcpAck, f.rseq + 4000, f.lseq, bytes(1000));
    f.send_segment(kTcpAck, f.rseq + 5000, f.lseq, bytes(1000));
    a = last_sent(f);
    CHECK(a.ack + (uint32_t(a.window) << shift) == edge);
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("SO_SNDBUF after the handshake changes what send() may queue", "[tcp][established][buffers]") {
    Fixture f;   // 64 KiB send buffer, no autotuning
    SockId s = f.establish_active(SegOpts().with_mss(1000).with_wscale(7));
    auto data = bytes(400 * 1000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 64 * 1024);
    CHECK((f.eng->events(s) & EPOLLOUT) == 0);
    set_buf(f, s, SO_SNDBUF, 150000);
    CHECK(get_buf(f, s, SO_SNDBUF) == 300000);
    CHECK((f.eng->events(s) & EPOLLOUT) != 0);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 300000 - 64 * 1024);
    CHECK(f.eng->unsent(s) == 300000);
    // The whole 400 KB goes through: the peer acknowledges what arrives.
    size_t queued = 300000, acked = 0;
    for (int round = 0; round < 200 && acked < data.size(); ++round) {
        f.advance_by(10 * kMs);
        Seg last;
        while (f.pending()) last = f.pop();
        if (last.seq + last.len() > f.lseq + acked) acked = last.seq + last.len() - f.lseq;
        f.send_segment(kTcpAck, f.rseq, f.lseq + uint32_t(acked), {}, {}, 4096);
        if (queued < data.size()) {
            ssize_t n = f.eng->send(s, data.data() + queued, data.size() - queued, 0);
            if (n > 0) queued += size_t(n);
        }
    }
    CHECK(queued == data.size());
    CHECK(acked == data.size());
    // A smaller limit than what is queued: nothing more is taken until it drains.
    set_buf(f, s, SO_SNDBUF, 1000);
    CHECK(get_buf(f, s, SO_SNDBUF) == 4608);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("the window scale offered follows the most the receive buffer may grow to", "[tcp][syn-sent][buffers][wscale]") {
    auto syn_wscale = [](EngineConfig c, int so_rcvbuf) {
        Fixture f(c);
        int s = f.eng->socket();
        if (so_rcvbuf) set_buf(f, SockId(s), SO_RCVBUF, so_rcvbuf);
        REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
        Seg syn = f.expect_segment(kTcpSyn, {}, {}, 0);
        f.eng->abort(SockId(s));
        return syn.opts.wscale ? int(*syn.opts.wscale) : -1;
    };
    EngineConfig c = test_config();
    CHECK(syn_wscale(c, 0) == 1);              // 64 KiB, fixed
    c.rcvbuf_max = 6 << 20;
    CHECK(syn_wscale(c, 0) == 7);              // Linux's default tcp_rmem max gives 7
    c.rcvbuf_max = 32 << 20;
    CHECK(syn_wscale(c, 0) == 10);             // 32 MiB: as Linux, ilog2(space) - 15
    CHECK(syn_wscale(c, 100000) == 1);         // an explicit SO_RCVBUF fixes the buffer

    // Passive opens: the SYN-ACK offers the same.
    c.rcvbuf_max = 6 << 20;
    Fixture f(c);
    f.listen_socket();
    f.send_segment(kTcpSyn, 1000, 0, {}, SegOpts().with_mss(1000).with_wscale(7));
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    REQUIRE(sa.opts.wscale);
    CHECK(*sa.opts.wscale == 7);
}

namespace {

// A peer sending as fast as the window allows, one round per `rtt`, with timestamps;
// the application reads everything at once. Returns the largest window seen.
uint32_t bulk_rounds(Fixture& f, SockId s, int rounds, uint32_t stop_at = ~0u) {
    const uint32_t mss = 1448;
    uint32_t tsv = 100, echo = 0, edge = 0, max_wnd = 0;
    uint32_t shift = 0;
    std::vector<uint8_t> buf(1 << 20);
    auto data = bytes(mss);
    auto take_acks = [&] {
        while (f.pending()) {
            Seg a = f.pop();
            if (a.opts.ts) echo = a.opts.ts->tsval;
            uint32_t w = uint32_t(a.window) << shift;
            max_wnd = std::max(max_wnd, w);
            edge = a.ack + w;
        }
    };
    shift = 7;
    take_acks();
    if (!edge) edge = f.rseq + 64 * 1024;
    for (int r = 0; r < rounds && max_wnd < stop_at; ++r) {
        while (edge - f.rseq >= mss) {
            SegOpts o;
            o.ts = Timestamps{tsv, echo};
            f.send_segment(kTcpAck, f.rseq, f.lseq, data, o);
            f.rseq += mss;
        }
        ++tsv;
        take_acks();
        while (f.eng->recv(s, buf.data(), buf.size(), 0) > 0) {}
        take_acks();
        f.advance_by(10 * kMs);
        take_acks();
    }
    return max_wnd;
}

}  // namespace

TEST_CASE("receive autotuning grows the window to about twice what the application reads per RTT", "[tcp][established][buffers][autotune]") {
    // The receiver's RTT comes from timestamp echoes, or without them from the time a
    // window takes to arrive.
    const bool ts = GENERATE(true, false);
    CAPTURE(ts);
    EngineConfig c = test_config();
    c.rcvbuf_max = 6 << 20;
    Fixture f(c);
    SockId l = f.listen_socket();
    SegOpts o = SegOpts().with_mss(1460).with_wscale(7).with_sack_permitted(true);
    if (ts) o.with_ts(Timestamps{50, 0});
    SockId s = f.establish_passive(l, o);
    f.advance_by(10 * kMs);
    const int before = get_buf(f, s, SO_RCVBUF);
    CHECK(before == 2 * 64 * 1024);
    uint32_t wnd = bulk_rounds(f, s, 40, 2u << 20);
    CHECK(wnd >= 2u << 20);
    CHECK(wnd <= 6u << 20);
    CHECK(get_buf(f, s, SO_RCVBUF) > before);
    CHECK(f.eng->stats().rcvbuf_grown > 0);
    // It stops at the maximum.
    wnd = bulk_rounds(f, s, 12);
    CHECK(wnd <= 6u << 20);
    CHECK(get_buf(f, s, SO_RCVBUF) <= 2 * (6 << 20));
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("an explicit SO_RCVBUF turns receive autotuning off", "[tcp][established][buffers][autotune]") {
    EngineConfig c = test_config();
    c.rcvbuf_max = 6 << 20;
    Fixture f(c);
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l, SegOpts().with_mss(1460).with_wscale(7).with_sack_permitted(true)
                                          .with_ts(Timestamps{50, 0}));
    set_buf(f, s, SO_RCVBUF, 50000);
    f.advance_by(10 * kMs);
    uint32_t wnd = bulk_rounds(f, s, 20);
    CHECK(wnd <= 64 * 1024);   // what the handshake offered, then at most 50000
    CHECK(get_buf(f, s, SO_RCVBUF) == 100000);
    CHECK(f.eng->stats().rcvbuf_grown == 0);
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("send autotuning lets the send queue hold two congestion windows, up to the maximum", "[tcp][established][buffers][autotune]") {
    auto run = [](bool lock) {
        EngineConfig c = test_config();
        c.sndbuf_max = 1 << 20;
        Fixture f(c);
        SockId s = f.establish_active(SegOpts().with_mss(1000).with_wscale(7));
        if (lock) set_buf(f, s, SO_SNDBUF, 32 * 1024);
        auto data = bytes(1 << 20);
        size_t most_queued = 0;
        for (int round = 0; round < 30; ++round) {
            while (f.eng->send(s, data.data(), data.size(), 0) > 0) {}
            most_queued = std::max(most_queued, f.eng->unsent(s));
            f.advance_by(10 * kMs);
            Seg last;
            bool any = false;
            while (f.pending()) { last = f.pop(); any = true; }
            if (any) f.send_segment(kTcpAck, f.rseq, last.seq + uint32_t(last.len()), {}, {}, 65535);
        }
        const int sndbuf = get_buf(f, s, SO_SNDBUF);
        const uint64_t grown = f.eng->stats().sndbuf_grown;
        f.eng->abort(s);
        f.leak_check();
        return std::tuple(most_queued, sndbuf, grown);
    };
    auto [queued, sndbuf, grown] = run(false);
    CHECK(sndbuf > 64 * 1024);
    CHECK(sndbuf <= 1 << 20);
    CHECK(queued > 64 * 1024);
    CHECK(grown > 0);
    auto [queued_l, sndbuf_l, grown_l] = run(true);
    CHECK(sndbuf_l == 64 * 1024);
    CHECK(queued_l <= 64 * 1024);
    CHECK(grown_l == 0);
}
