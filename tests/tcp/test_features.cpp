// Features across states: keepalive, IW10, socket options, TCP_INFO, readiness events,
// active-open port choice, sending across the 2^32 wrap.
#include <sys/epoll.h>

#include "stack/tcp/isn.hpp"
#include "tests/tcp/fixture.hpp"

using namespace fastnet;
using namespace fastnet::test;

TEST_CASE("keepalive probes an idle connection and times out with ETIMEDOUT after TCP_KEEPCNT", "[tcp][established][keepalive]") {
    Fixture f;
    SockId s = f.establish_active();
    int one = 1, idle = 10, intvl = 2, cnt = 3;
    REQUIRE(f.eng->setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0);
    REQUIRE(f.eng->setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0);
    REQUIRE(f.eng->setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) == 0);
    REQUIRE(f.eng->setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) == 0);
    int got = 0;
    socklen_t len = sizeof got;
    CHECK(f.eng->getsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &got, &len) == 0);
    CHECK(got == 10);
    const TimeNs t0 = f.now;
    f.run_until(t0 + 10 * kSec - 1 * kMs);
    f.expect_nothing();
    f.run_until(t0 + 10 * kSec);
    f.expect_segment(kTcpAck, f.lseq - 1, f.rseq, 0);
    // Answered: the connection stays, the next probe comes after another idle period.
    f.send_segment(kTcpAck, f.rseq, f.lseq);
    f.run_until(f.now + 10 * kSec - 1 * kMs);
    f.expect_nothing();
    f.run_until(f.now + 1 * kMs);
    f.expect_segment(kTcpAck, f.lseq - 1, f.rseq, 0);
    // Unanswered: probes every 2 s, then ETIMEDOUT.
    f.run_until(f.now + 2 * kSec);
    f.expect_segment(kTcpAck, f.lseq - 1, f.rseq, 0);
    f.run_until(f.now + 2 * kSec);
    f.expect_segment(kTcpAck, f.lseq - 1, f.rseq, 0);
    f.run_until(f.now + 2 * kSec);
    f.expect_nothing();
    CHECK((f.eng->events(s) & EPOLLERR) != 0);
    char c;
    CHECK(f.eng->recv(s, &c, 1, 0) == -ETIMEDOUT);
    f.eng->close(s);
    f.leak_check();
}

TEST_CASE("the initial window is ten segments (RFC 6928)", "[tcp][established][cc]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    auto data = bytes(20000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 20000);
    CHECK(f.pending() == 10);
    f.drain();
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    REQUIRE(f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    CHECK(ti.tcpi_snd_cwnd == 10);
    CHECK(ti.tcpi_snd_mss == 1000);
    CHECK(ti.tcpi_state == 1);
    CHECK(ti.tcpi_unacked == 10);
    // Slow start: an ACK for everything doubles the window.
    f.send_segment(kTcpAck, f.rseq, f.lseq + 10000);
    CHECK(f.pending() == 10);   // the remaining 10000 bytes (cwnd 20)
    f.drain();
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("the MSS is clamped to the MTU and taken as 536 when the peer sends none", "[tcp][syn-sent][mss]") {
    auto peer_mss = GENERATE(std::optional<uint16_t>{}, std::optional<uint16_t>{9000},
                             std::optional<uint16_t>{600});
    CAPTURE(peer_mss.value_or(0));
    Fixture f;
    SegOpts o;
    o.mss = peer_mss;
    SockId s = f.establish_active(o);
    auto data = bytes(5000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 5000);
    Seg d = f.pop();
    uint32_t want = !peer_mss ? 536 : (*peer_mss > 1460 ? 1460 : *peer_mss);
    CHECK(d.len() == want);
    f.drain();
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("TCP_MAXSEG lowers the MSS we announce and use", "[tcp][options]") {
    Fixture f;
    int s = f.eng->socket();
    int mss = 1000;
    REQUIRE(f.eng->setsockopt(SockId(s), IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) == 0);
    REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    Seg syn = f.expect_segment(kTcpSyn, {}, {}, 0);
    CHECK(syn.opts.mss == 1000);
    f.eng->close(SockId(s));
    f.leak_check();
}

TEST_CASE("socket options read back what was set", "[tcp][options]") {
    Fixture f;
    int s = f.eng->socket();
    int v = 1;
    socklen_t len = sizeof v;
    CHECK(f.eng->setsockopt(SockId(s), SOL_SOCKET, SO_REUSEADDR, &v, sizeof v) == 0);
    CHECK(f.eng->setsockopt(SockId(s), SOL_SOCKET, SO_REUSEPORT, &v, sizeof v) == 0);
    v = 100000;
    CHECK(f.eng->setsockopt(SockId(s), SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == 0);
    CHECK(f.eng->setsockopt(SockId(s), SOL_SOCKET, SO_SNDBUF, &v, sizeof v) == 0);
    int got = 0;
    CHECK(f.eng->getsockopt(SockId(s), SOL_SOCKET, SO_RCVBUF, &got, &len) == 0);
    CHECK(got == 200000);   // doubled, as Linux reports it
    v = 1;
    CHECK(f.eng->setsockopt(SockId(s), IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) == 0);
    CHECK(f.eng->getsockopt(SockId(s), IPPROTO_TCP, TCP_NODELAY, &got, &len) == 0);
    CHECK(got == 1);
    v = 0;
    CHECK(f.eng->setsockopt(SockId(s), IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof v) == -EINVAL);
    CHECK(f.eng->setsockopt(SockId(s), IPPROTO_TCP, 9999, &v, sizeof v) == -ENOPROTOOPT);
    CHECK(f.eng->getsockopt(SockId(s), SOL_SOCKET, SO_TYPE, &got, &len) == 0);
    CHECK(got == SOCK_STREAM);
    // A fresh socket polls writable and hung up, as on Linux.
    CHECK(f.eng->events(SockId(s)) == (EPOLLOUT | EPOLLHUP));
    char c;
    CHECK(f.eng->recv(SockId(s), &c, 1, 0) == -ENOTCONN);
    CHECK(f.eng->send(SockId(s), &c, 1, 0) == -ENOTCONN);
    f.eng->close(SockId(s));
    CHECK(f.eng->close(SockId(s)) == -EBADF);
    f.leak_check();
}

TEST_CASE("the event sink hears about accept readiness, data and hang-up", "[tcp][events]") {
    Fixture f;
    SockId l = f.listen_socket();
    f.sink.events.clear();
    f.send_segment(kTcpSyn, 1000, 0);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.send_segment(kTcpAck, 1001, sa.seq + 1);
    bool saw_listener = false;
    for (auto& [id, ev] : f.sink.events) saw_listener |= id == l && (ev & EPOLLIN);
    CHECK(saw_listener);
    int s = f.eng->accept(l, nullptr);
    REQUIRE(s >= 0);
    f.sink.events.clear();
    f.send_segment(kTcpAck | kTcpPsh, 1001, sa.seq + 1, bytes(3));
    REQUIRE(!f.sink.events.empty());
    CHECK(f.sink.events.back().first == SockId(s));
    CHECK((f.sink.events.back().second & EPOLLIN) != 0);
    f.sink.events.clear();
    f.send_segment(kTcpFin | kTcpAck, 1004, sa.seq + 1);
    REQUIRE(!f.sink.events.empty());
    CHECK((f.sink.events.back().second & EPOLLRDHUP) != 0);
    f.eng->abort(SockId(s));
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("active opens pick a local port whose slot is this engine's", "[tcp][ports]") {
    auto slot = GENERATE(0, 1, 3);
    CAPTURE(slot);
    EngineConfig c = test_config();
    c.nslots = 4;
    c.slot = static_cast<uint16_t>(slot);
    Fixture f(c);
    std::vector<SockId> socks;
    std::vector<uint16_t> ports;
    for (int i = 0; i < 5; ++i) {
        int s = f.eng->socket();
        REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
        Seg syn = f.pop();
        CHECK((syn.src_port - c.port_base) % 4 == slot);
        ports.push_back(syn.src_port);
        socks.push_back(SockId(s));
    }
    std::sort(ports.begin(), ports.end());
    CHECK(std::unique(ports.begin(), ports.end()) == ports.end());
    // bind() to an explicit port is allowed; a second bind to it is refused.
    int a = f.eng->socket(), b = f.eng->socket();
    CHECK(f.eng->bind(SockId(a), Endpoint{0, 5555}) == 0);
    CHECK(f.eng->bind(SockId(b), Endpoint{0, 5555}) == -EADDRINUSE);
    f.eng->close(SockId(a));
    f.eng->close(SockId(b));
    for (SockId s : socks) f.eng->close(s);
    f.leak_check();
}

TEST_CASE("sending works across the 2^32 wrap of our sequence numbers", "[tcp][established][wrap]") {
    // Find an RFC 6528 key that puts our ISS just below 2^32 for the first active open.
    EngineConfig c = test_config();
    uint64_t key[2] = {0, 77};
    const FourTuple t{kLocalIp, kRemoteIp, static_cast<uint16_t>(c.port_base), 80};
    bool found = false;
    for (uint64_t k = 1; k < 4'000'000 && !found; ++k) {
        key[0] = k;
        uint32_t iss = isn_rfc6528(key, t, 0);
        found = iss >= 0xffffffffu - 3000 && iss <= 0xffffffffu - 500;
    }
    REQUIRE(found);
    c.isn_secret[0] = key[0];
    c.isn_secret[1] = key[1];
    c.nslots = 16384;   // one candidate port: port_base
    Fixture f(c);
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    CAPTURE(f.lseq);
    auto data = bytes(4000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 4000);
    std::vector<uint8_t> got;
    uint32_t seq = f.lseq;
    while (f.pending()) {
        Seg d = f.pop();
        CHECK(d.seq == seq);
        seq += d.len();
        got.insert(got.end(), d.payload.begin(), d.payload.end());
        }
    CHECK((got == data));
    CHECK(seq < f.lseq);   // wrapped
    f.send_segment(kTcpAck, f.rseq, seq);
    CHECK(f.eng->unsent(s) == 0);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("CUBIC is the default congestion control and NewReno can be chosen", "[tcp][cc]") {
    auto cc = GENERATE(CongestionControl::Cubic, CongestionControl::NewReno);
    EngineConfig c = test_config();
    c.cc = cc;
    Fixture f(c);
    CHECK(EngineConfig{}.cc == CongestionControl::Cubic);
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    auto data = bytes(30000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 30000);
    f.drain();
    // Loss by timeout: ssthresh falls to 7 (CUBIC, beta 0.7) or 5 (NewReno, flight/2).
    f.run_until(f.now + 200 * kMs);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    REQUIRE(f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    CHECK(ti.tcpi_snd_cwnd == 1);
    CHECK(ti.tcpi_snd_ssthresh == (cc == CongestionControl::Cubic ? 7u : 5u));
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("take_rx runs the frames waiting in the device, so accept, unread and the window see them without a kick", "[tcp][events][rx]") {
    EngineConfig cfg = test_config();
    cfg.flush_per_call = false;
    Fixture f(cfg);
    SockId l = f.listen_socket();
    f.autopoll = false;
    CHECK(!f.eng->rx_waiting());
    f.send_segment(kTcpSyn, 1000, 0);
    CHECK(f.eng->rx_waiting());
    f.eng->take_rx(f.now);
    CHECK(!f.eng->rx_waiting());
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.rseq = 1001;
    f.lseq = sa.seq + 1;

    // The handshake's last ACK waits in the device: accept as of the last poll says
    // EAGAIN, after take_rx it has the connection.
    f.send_segment(kTcpAck, f.rseq, f.lseq);
    CHECK(f.eng->accept(l, nullptr) == -EAGAIN);
    f.eng->take_rx(f.now);
    int s = f.eng->accept(l, nullptr);
    REQUIRE(s >= 0);

    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(10));
    CHECK(f.eng->unread(SockId(s)) == 0);
    f.eng->take_rx(f.now);
    CHECK(f.eng->unread(SockId(s)) == 10);
    f.rseq += 10;

    // The send buffer full, then the peer's ACK freeing it waits in the device.
    f.drain();
    size_t flushes = f.dev.flushes;
    std::vector<uint8_t> big(64 * 1024, 'x');
    CHECK(f.eng->send(SockId(s), big.data(), big.size(), 0) == ssize_t(big.size()));
    CHECK(f.eng->send(SockId(s), big.data(), 1, 0) == -EAGAIN);
    uint32_t acked = 0;
    while (f.pending()) {
        Seg d = f.pop();
        acked = std::max(acked, d.seq + uint32_t(d.len()) - f.lseq);
    }
    REQUIRE(acked > 0);
    f.send_segment(kTcpAck, f.rseq, f.lseq + acked);
    CHECK(f.eng->send(SockId(s), big.data(), 1, 0) == -EAGAIN);
    f.eng->take_rx(f.now);
    CHECK(f.eng->unsent(SockId(s)) == big.size() - acked);
    CHECK(f.eng->send(SockId(s), big.data(), 1, 0) == 1);
    // Neither take_rx nor the calls kicked the device: the kick is the next poll's.
    CHECK(f.dev.flushes == flushes);
    CHECK(f.eng->tx_deferred());

    f.autopoll = true;
    f.eng->abort(SockId(s));
    f.eng->close(l);
    f.drain();
    f.leak_check();
}
