// ESTABLISHED: receiving (delayed ACK, out of order, SACK blocks, window), sending
// (Nagle, RTO, fast retransmit, SACK recovery, zero window), RFC 5961 and PAWS.
#include <sys/epoll.h>

#include "tests/tcp/fixture.hpp"

using namespace fastnet;
using namespace fastnet::test;

namespace {

// A request answered within the ACK delay: the connection is interactive (Linux
// pingpong mode), so from now on ACKs wait to ride on replies instead of going at once.
void request_reply(Fixture& f, SockId s) {
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(10));
    f.expect_segment(kTcpAck, f.lseq, f.rseq + 10, 0);   // quick ACK
    f.rseq += 10;
    uint8_t buf[10];
    REQUIRE(f.eng->recv(s, buf, sizeof buf, 0) == 10);
    REQUIRE(f.eng->send(s, "reply", 5, 0) == 5);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 5);
    f.lseq += 5;
    f.send_segment(kTcpAck, f.rseq, f.lseq);
    f.expect_nothing();
}

}  // namespace

TEST_CASE("the first data of a connection is acknowledged at once (Linux quick ACKs)", "[tcp][established][delack][quickack]") {
    Fixture f;
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l, SegOpts().with_mss(1000));
    // Linux tcp_incr_quickack: rcv_wnd / (2 * rcv_mss), at most 16 ACKs.
    for (int i = 0; i < 16; ++i) {
        f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(100));
        f.rseq += 100;
        f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
        f.advance_by(1 * kMs);
    }
    // Quick mode is over: the next one waits for the delayed-ACK timer.
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(100));
    f.rseq += 100;
    f.expect_nothing();
    f.run_until(f.now + 40 * kMs);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
    // Silence for longer than the RTO: quick ACKs again.
    f.advance_by(2 * kSec);
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(100));
    f.rseq += 100;
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("one in-order segment is acknowledged after the delayed-ACK timeout", "[tcp][established][delack]") {
    Fixture f;
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l);
    request_reply(f, s);
    const TimeNs t0 = f.now;
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(100));
    f.expect_nothing();
    CHECK((f.eng->events(s) & EPOLLIN) != 0);
    f.run_until(t0 + 39 * kMs);
    f.expect_nothing();
    f.run_until(t0 + 40 * kMs);
    f.expect_segment(kTcpAck, f.lseq, f.rseq + 100, 0);
    uint8_t buf[200];
    CHECK(f.eng->recv(s, buf, sizeof buf, 0) == 100);
    CHECK((std::vector<uint8_t>(buf, buf + 100) == bytes(100)));
    CHECK(f.eng->recv(s, buf, sizeof buf, 0) == -EAGAIN);
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("every second full-sized segment is acknowledged at once", "[tcp][established][delack]") {
    Fixture f;
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l, SegOpts().with_mss(1460));
    request_reply(f, s);
    f.send_segment(kTcpAck, f.rseq, f.lseq, bytes(1460));
    f.expect_nothing();
    f.send_segment(kTcpAck, f.rseq + 1460, f.lseq, bytes(1460));
    f.expect_segment(kTcpAck, f.lseq, f.rseq + 2920, 0);
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("an out-of-order segment draws an immediate duplicate ACK with a SACK block; filling the hole ACKs all", "[tcp][established][sack]") {
    Fixture f;
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l, SegOpts().with_mss(1460).with_sack_permitted(true));
    f.send_segment(kTcpAck, f.rseq + 100, f.lseq, bytes(100, 9));
    Seg d = f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
    REQUIRE(d.opts.sack_count == 1);
    CHECK(d.opts.sack[0].left.v == f.rseq + 100);
    CHECK(d.opts.sack[0].right.v == f.rseq + 200);
    CHECK(f.eng->unread(s) == 0);
    f.send_segment(kTcpAck, f.rseq, f.lseq, bytes(100, 1));
    Seg a = f.expect_segment(kTcpAck, f.lseq, f.rseq + 200, 0);
    CHECK(a.opts.sack_count == 0);
    std::vector<uint8_t> got(200);
    CHECK(f.eng->recv(s, got.data(), got.size(), 0) == 200);
    std::vector<uint8_t> want = bytes(100, 1);
    auto b = bytes(100, 9);
    want.insert(want.end(), b.begin(), b.end());
    CHECK((got == want));
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("sequence numbers wrap around 2^32 on receive", "[tcp][established][wrap]") {
    auto iss = GENERATE(0xfffffff0u, 0xffffffffu, 0x7ffffff0u);
    CAPTURE(iss);
    Fixture f;
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l, SegOpts().with_mss(1460), iss);
    uint32_t seq = f.rseq;
    for (int i = 0; i < 4; ++i) {
        f.send_segment(kTcpAck, seq, f.lseq, bytes(100, uint8_t(i)));
        seq += 100;
        }
    f.run_until(f.now + 50 * kMs);
    Seg a = f.pop();
    while (f.pending()) a = f.pop();
    CHECK(a.ack == seq);
    CHECK(f.eng->unread(s) == 400);
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("data is sent within the peer's window and retransmitted on RTO with backoff", "[tcp][established][rto]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    auto data = bytes(3000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 3000);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 1000);
    f.expect_segment(kTcpAck, f.lseq + 1000, f.rseq, 1000);
    Seg last = f.expect_segment(kTcpAck | kTcpPsh, f.lseq + 2000, f.rseq, 1000);
    CHECK((std::vector<uint8_t>(last.payload) == std::vector<uint8_t>(data.begin() + 2000, data.end())));
    f.expect_nothing();
    // RTO: the handshake measured ~0 ms, so the RTO is the 200 ms minimum.
    f.run_until(199 * kMs);
    f.expect_nothing();
    f.run_until(200 * kMs);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 1000);
    f.expect_nothing();   // cwnd collapsed to one segment
    f.run_until(599 * kMs);
    f.expect_nothing();
    f.run_until(600 * kMs);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 1000);
    CHECK(f.eng->stats().retransmits == 2);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    REQUIRE(f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    CHECK(ti.tcpi_retransmits == 2);
    CHECK(ti.tcpi_total_retrans == 2);
    CHECK(ti.tcpi_backoff == 2);
    // The ACK for all of it: the rest follows and the timer stops.
    f.send_segment(kTcpAck, f.rseq, f.lseq + 1000);
    f.expect_segment(kTcpAck, f.lseq + 1000, f.rseq, 1000);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq + 2000, f.rseq, 1000);
    f.send_segment(kTcpAck, f.rseq, f.lseq + 3000);
    f.run_until(f.now + 10 * kSec);
    f.expect_nothing();
    CHECK(f.eng->unsent(s) == 0);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("three duplicate ACKs trigger a fast retransmit without SACK (NewReno)", "[tcp][established][newreno]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    auto data = bytes(6000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 6000);
    for (int i = 0; i < 6; ++i) f.expect_segment(kTcpAck, f.lseq + 1000 * i, f.rseq, 1000);
    // The first segment is lost; the peer ACKs the later ones with duplicates.
    f.send_segment(kTcpAck, f.rseq, f.lseq);
    f.send_segment(kTcpAck, f.rseq, f.lseq);
    f.expect_nothing();
    f.send_segment(kTcpAck, f.rseq, f.lseq);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 1000);
    // A partial ACK (RFC 6582): the next hole goes out at once.
    f.send_segment(kTcpAck, f.rseq, f.lseq + 2000);
    f.expect_segment(kTcpAck, f.lseq + 2000, f.rseq, 1000);
    f.send_segment(kTcpAck, f.rseq, f.lseq + 6000);
    CHECK(f.eng->stats().retransmits == 2);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("SACK loss recovery retransmits only the holes (RFC 6675)", "[tcp][established][sack]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000).with_sack_permitted(true));
    auto data = bytes(8000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 8000);
    for (int i = 0; i < 8; ++i) f.expect_segment(kTcpAck, f.lseq + 1000 * i, f.rseq, 1000);
    const uint32_t b = f.lseq;
    // Segments 0 and 2 lost; 1,3,4,5 arrive.
    auto sack = [&](std::vector<SackBlock> blocks) {
        SegOpts o;
        o.sack = blocks;
        f.send_segment(kTcpAck, f.rseq, b, {}, o);
    };
    sack({{Seq(b + 1000), Seq(b + 2000)}});
    sack({{Seq(b + 3000), Seq(b + 4000)}, {Seq(b + 1000), Seq(b + 2000)}});
    sack({{Seq(b + 3000), Seq(b + 5000)}, {Seq(b + 1000), Seq(b + 2000)}});
    sack({{Seq(b + 3000), Seq(b + 6000)}, {Seq(b + 1000), Seq(b + 2000)}});
    // Loss detected: the first hole is retransmitted, then the second.
    Seg r1 = f.expect_segment(kTcpAck, b, f.rseq, 1000);
    (void)r1;
    std::vector<uint32_t> sent;
    while (f.pending()) sent.push_back(f.pop().seq);
    CHECK(std::find(sent.begin(), sent.end(), b + 2000) != sent.end());
    CHECK(std::find(sent.begin(), sent.end(), b + 1000) == sent.end());
    CHECK(std::find(sent.begin(), sent.end(), b + 3000) == sent.end());
    f.send_segment(kTcpAck, f.rseq, b + 8000);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("data covered by SACK is not retransmitted after a fast retransmit, by the probe timer or the RTO", "[tcp][established][sack][tlp]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000).with_sack_permitted(true));
    // The handshake (RTT 0) and one round trip of 100 ms give SRTT = 12.5 ms: the
    // loss probe armed with the burst below would fire 15 ms after the fast retransmit.
    CHECK(f.eng->send(s, "x", 1, 0) == 1);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 1);
    f.advance_to(100 * kMs);
    f.send_segment(kTcpAck, f.rseq, f.lseq + 1);
    const uint32_t b = f.lseq + 1;
    auto data = bytes(4000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 4000);
    for (int i = 0; i < 4; ++i) f.expect_segment(kTcpAck, b + 1000 * i, f.rseq, 1000);
    f.advance_to(110 * kMs);   // before the probe timeout (2 SRTT; SRTT = 12.5 ms here)
    auto sack = [&](uint32_t right) {
        SegOpts o;
        o.sack = {{Seq(b + 1000), Seq(right)}};
        f.send_segment(kTcpAck, f.rseq, b, {}, o);
    };
    sack(b + 2000);
    sack(b + 3000);
    sack(b + 4000);
    f.expect_segment(kTcpAck, b, f.rseq, 1000);   // the fast retransmit of the hole
    f.expect_nothing();
    // Neither the probe timeout nor the RTO (nor its backoffs) sends SACKed bytes.
    f.run_until(3 * kSec);
    int resent_head = 0;
    while (f.pending()) {
        Seg r = f.pop();
        CAPTURE(r.seq - b, r.len());
        CHECK((r.len() == 0 || r.seq + r.len() <= b + 1000 || r.seq >= b + 4000));
        if (r.seq == b && r.len() == 1000) ++resent_head;
    }
    CHECK(resent_head >= 1);   // the RTO did resend the hole
    f.send_segment(kTcpAck, f.rseq, b + 4000);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("after the peer reneges on SACKed data, it is resent from the cumulative ACK", "[tcp][established][sack]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000).with_sack_permitted(true));
    const uint32_t b = f.lseq;
    auto data = bytes(4000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 4000);
    for (int i = 0; i < 4; ++i) f.expect_segment(kTcpAck, b + 1000 * i, f.rseq, 1000);
    f.advance_to(10 * kMs);
    SegOpts o;
    o.sack = {{Seq(b + 2000), Seq(b + 4000)}};
    f.send_segment(kTcpAck, f.rseq, b + 1000, {}, o);
    f.drain();
    // The next ACK stops at b + 2000, the SACKed data's start, and SACKs nothing: the
    // peer dropped what it held out of order. Within max(SRTT/2, 10 ms) it is resent.
    f.send_segment(kTcpAck, f.rseq, b + 2000);
    f.run_until(f.now + 60 * kMs);
    Seg r = f.expect_segment(kTcpAck, b + 2000, f.rseq, 1000);
    (void)r;
    f.send_segment(kTcpAck, f.rseq, b + 4000);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("Nagle holds a short segment while data is unacknowledged; TCP_NODELAY sends it", "[tcp][established][nagle]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    CHECK(f.eng->send(s, "a", 1, 0) == 1);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 1);
    CHECK(f.eng->send(s, "b", 1, 0) == 1);
    f.expect_nothing();
    CHECK(f.eng->send(s, "c", 1, 0) == 1);
    f.expect_nothing();
    f.send_segment(kTcpAck, f.rseq, f.lseq + 1);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq + 1, f.rseq, 2);
    int one = 1;
    CHECK(f.eng->setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    CHECK(f.eng->send(s, "d", 1, 0) == 1);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq + 3, f.rseq, 1);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("a zero window is probed by the persist timer with backoff; a window update resumes", "[tcp][established][persist]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    auto data = bytes(2000);
    f.send_segment(kTcpAck, f.rseq, f.lseq, {}, {}, 0);   // window 0
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 2000);
    f.expect_nothing();
    // Probes: seq = snd_una - 1, no data (Linux style), at 200 ms, then 400 ms later...
    f.run_until(200 * kMs);
    f.expect_segment(kTcpAck, f.lseq - 1, f.rseq, 0);
    f.run_until(599 * kMs);
    f.expect_nothing();
    f.run_until(600 * kMs);
    f.expect_segment(kTcpAck, f.lseq - 1, f.rseq, 0);
    // The peer's answer still says 0: no data.
    f.send_segment(kTcpAck, f.rseq, f.lseq, {}, {}, 0);
    f.expect_nothing();
    f.send_segment(kTcpAck, f.rseq, f.lseq, {}, {}, 4000);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 1000);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq + 1000, f.rseq, 1000);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("the receive window closes when the buffer fills and reopens with a window update", "[tcp][established][window]") {
    EngineConfig c = test_config();
    c.rcvbuf = 8192;
    Fixture f(c);
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l, SegOpts().with_mss(1024));
    for (int i = 0; i < 8; ++i) f.send_segment(kTcpAck, f.rseq + 1024 * i, f.lseq, bytes(1024));
    Seg a;
    while (f.pending()) a = f.pop();
    CHECK(a.ack == f.rseq + 8192);
    CHECK(a.window == 0);
    // Beyond the window: dropped, answered with an ACK.
    f.send_segment(kTcpAck, f.rseq + 8192, f.lseq, bytes(100));
    f.expect_segment(kTcpAck, f.lseq, f.rseq + 8192, 0);
    // Reading a little (< MSS) does not open the window (receiver SWS avoidance).
    std::vector<uint8_t> buf(8192);
    CHECK(f.eng->recv(s, buf.data(), 100, 0) == 100);
    f.expect_nothing();
    CHECK(f.eng->recv(s, buf.data(), 8000, 0) == 8000);
    Seg u = f.expect_segment(kTcpAck, f.lseq, f.rseq + 8192, 0);
    CHECK(u.window > 0);
    f.eng->abort(s);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("window scaling applies the peer's shift to its window", "[tcp][established][wscale]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000).with_wscale(2));
    // 1000 << 2 = 4000 bytes of window.
    f.send_segment(kTcpAck, f.rseq, f.lseq, {}, {}, 1000);
    auto data = bytes(8000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 8000);
    for (int i = 0; i < 4; ++i) f.expect_segment(kTcpAck, f.lseq + 1000 * i, f.rseq, 1000);
    f.expect_nothing();
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    REQUIRE(f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    CHECK((ti.tcpi_options & 4) != 0);
    CHECK(ti.tcpi_snd_wscale == 2);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("a RST that is in window but not exact draws a challenge ACK; an exact one resets", "[tcp][established][rst][rfc5961]") {
    Fixture f;
    SockId s = f.establish_active();
    f.send_segment(kTcpRst, f.rseq + 10, 0);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
    CHECK(f.eng->stats().challenge_acks == 1);
    f.send_segment(kTcpRst, f.rseq + 1'000'000, 0);   // out of window: silently dropped
    f.expect_nothing();
    f.send_segment(kTcpRst, f.rseq, 0);
    f.expect_nothing();
    CHECK((f.eng->events(s) & (EPOLLERR | EPOLLHUP | EPOLLIN)) == (EPOLLERR | EPOLLHUP | EPOLLIN));
    char c;
    CHECK(f.eng->recv(s, &c, 1, 0) == -ECONNRESET);
    CHECK(f.eng->recv(s, &c, 1, 0) == 0);
    CHECK(f.eng->send(s, &c, 1, 0) == -EPIPE);
    f.eng->close(s);
    f.leak_check();
}

TEST_CASE("a SYN on an established connection draws a challenge ACK (RFC 5961 4)", "[tcp][established][rfc5961]") {
    Fixture f;
    SockId s = f.establish_active();
    f.send_segment(kTcpSyn, f.rseq + 5, 0);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
    CHECK((f.eng->events(s) & EPOLLERR) == 0);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("an ACK for data never sent is answered and dropped; an ancient ACK draws a challenge ACK", "[tcp][established][rfc5961]") {
    Fixture f;
    SockId s = f.establish_active();
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq + 5000, bytes(10));
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
    CHECK(f.eng->unread(s) == 0);
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq - 200000, bytes(10));
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
    CHECK(f.eng->unread(s) == 0);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("challenge ACKs are limited to 1000 a second per engine", "[tcp][established][rfc5961]") {
    Fixture f;
    SockId s = f.establish_active();
    for (int i = 0; i < 1100; ++i) f.send_segment(kTcpRst, f.rseq + 10, 0);
    CHECK(f.pending() == 1000);
    f.drain();
    f.advance_by(1 * kSec);
    f.send_segment(kTcpRst, f.rseq + 10, 0);
    CHECK(f.pending() == 1);
    f.drain();
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("PAWS drops a segment with an old timestamp and ACKs it", "[tcp][established][paws]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000).with_ts(Timestamps{1000, 0}));
    SegOpts o;
    o.ts = Timestamps{2000, 0};
    f.send_segment(kTcpAck, f.rseq, f.lseq, bytes(10), o);
    f.run_until(f.now + 50 * kMs);
    Seg a = f.expect_segment(kTcpAck, f.lseq, f.rseq + 10, 0);
    REQUIRE(a.opts.ts);
    CHECK(a.opts.ts->tsecr == 2000);
    o.ts = Timestamps{1500, 0};   // older than TS.Recent
    f.send_segment(kTcpAck, f.rseq + 10, f.lseq, bytes(10), o);
    f.expect_segment(kTcpAck, f.lseq, f.rseq + 10, 0);
    CHECK(f.eng->unread(s) == 10);
    CHECK(f.eng->stats().drops[int(Drop::Paws)] == 1);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("timestamps give RTT samples even for retransmitted segments", "[tcp][established][rttm]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000).with_ts(Timestamps{1, 0}));
    CHECK(f.eng->send(s, "x", 1, 0) == 1);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 1);
    const TimeNs t0 = f.now;
    f.run_until(t0 + 200 * kMs);
    Seg r = f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 1);
    REQUIRE(r.opts.ts);
    f.advance_to(t0 + 250 * kMs);
    SegOpts o;
    o.ts = Timestamps{2, r.opts.ts->tsval};
    f.send_segment(kTcpAck, f.rseq, f.lseq + 1, {}, o);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    REQUIRE(f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    // A 50 ms sample of the retransmission (Karn would have refused it): srtt moved
    // from ~0 by 50/8 ms and the backoff is undone.
    CHECK(ti.tcpi_rtt >= 6000);
    CHECK(ti.tcpi_rtt <= 7000);
    CHECK(ti.tcpi_backoff == 0);
    CHECK((ti.tcpi_options & 1) != 0);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("output waits while the next hop is unresolved and goes out once it is", "[tcp][established][neighbour]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    f.nb.resolved = false;
    CHECK(f.eng->send(s, "abc", 3, 0) == 3);
    f.expect_nothing();
    CHECK(f.eng->stats().tx_unresolved >= 1);
    f.advance_by(1 * kMs);
    f.expect_nothing();
    f.nb.resolved = true;
    f.advance_by(1 * kMs);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 3);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("unacknowledged data times out with ETIMEDOUT after tcp_retries2 retransmissions", "[tcp][established][rto]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    CHECK(f.eng->send(s, "x", 1, 0) == 1);
    f.drain();
    f.run_until(f.now + 3600 * kSec);
    CHECK(f.pending() == 15);   // Linux tcp_retries2
    CHECK((f.eng->events(s) & (EPOLLERR | EPOLLHUP)) == (EPOLLERR | EPOLLHUP));
    int err = 0;
    socklen_t len = sizeof err;
    f.eng->getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    CHECK(err == ETIMEDOUT);
    f.drain();
    f.eng->close(s);
    f.expect_nothing();
    f.leak_check();
}

TEST_CASE("the minimum RTO is configurable", "[tcp][established][rto]") {
    auto rto_min = GENERATE(TimeNs(50 * kMs), TimeNs(1 * kSec));
    CAPTURE(rto_min);
    EngineConfig c = test_config();
    c.rto_min = rto_min;
    Fixture f(c);
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    const TimeNs t0 = f.now;
    CHECK(f.eng->send(s, "x", 1, 0) == 1);
    f.drain();
    f.run_until(t0 + rto_min - 1 * kMs);
    f.expect_nothing();
    f.run_until(t0 + rto_min);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 1);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("a small usable window is not used at once (sender SWS avoidance) but after the override timeout", "[tcp][established][sws]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    // The peer's window was 65535; now it offers 100 bytes: less than half its largest.
    f.send_segment(kTcpAck, f.rseq, f.lseq, {}, {}, 100);
    auto data = bytes(3000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 3000);
    f.expect_nothing();
    f.run_until(f.now + 200 * kMs);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 100);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("a fast retransmit shown spurious by the timestamp echo is undone (RFC 3522)", "[tcp][established][eifel]") {
    auto spurious = GENERATE(true, false);
    CAPTURE(spurious);
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000).with_sack_permitted(true).with_ts(Timestamps{10, 0}));
    const uint32_t m = 988;   // 1000 - 12 bytes of timestamp option
    auto data = bytes(6 * m);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == long(6 * m));
    std::vector<Seg> orig;
    while (f.pending()) orig.push_back(f.pop());
    REQUIRE(orig.size() == 6);
    const uint32_t b = f.lseq;
    f.advance_by(5 * kMs);
    SegOpts o;
    o.ts = Timestamps{11, orig[1].opts.ts->tsval};
    for (uint32_t i = 2; i <= 4; ++i) {
        o.sack = {{Seq(b + m), Seq(b + m * i)}};
        f.send_segment(kTcpAck, f.rseq, b, {}, o);
    }
    Seg r = f.expect_segment(kTcpAck, b, f.rseq, m);
    REQUIRE(r.opts.ts);
    f.drain();
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    REQUIRE(f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    CHECK(ti.tcpi_snd_cwnd == 7);   // CUBIC: 10 * 0.7
    // Everything acknowledged; the echo names the original (reordered) segment or the
    // retransmission.
    o.sack.clear();
    o.ts = Timestamps{12, spurious ? orig[0].opts.ts->tsval : r.opts.ts->tsval};
    f.send_segment(kTcpAck, f.rseq, b + 6 * m, {}, o);
    REQUIRE(f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    if (spurious) CHECK(ti.tcpi_snd_cwnd >= 10);
    else CHECK(ti.tcpi_snd_cwnd <= 7);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("with flush_per_call off, socket calls leave the kick to the next poll or flush", "[tcp][established][batch]") {
    EngineConfig c = test_config();
    c.flush_per_call = false;
    Fixture f(c);
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    f.eng->poll(f.now);
    CHECK_FALSE(f.eng->tx_deferred());
    size_t k = f.dev.flushes;
    int one = 1;
    CHECK(f.eng->setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    CHECK(f.eng->send(s, "a", 1, 0) == 1);
    CHECK(f.eng->send(s, "b", 1, 0) == 1);
    CHECK(f.dev.flushes == k);                 // queued, not kicked
    CHECK(f.eng->tx_deferred());
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq, 1);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq + 1, f.rseq, 1);
    f.eng->flush();
    CHECK(f.dev.flushes == k + 1);
    CHECK_FALSE(f.eng->tx_deferred());
    CHECK(f.eng->send(s, "c", 1, 0) == 1);
    f.advance_by(1);                           // a poll kicks what the calls queued
    CHECK(f.dev.flushes == k + 2);
    CHECK_FALSE(f.eng->tx_deferred());
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("by default every socket call kicks its output out", "[tcp][established][batch]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    size_t k = f.dev.flushes;
    CHECK(f.eng->send(s, "a", 1, 0) == 1);
    CHECK(f.dev.flushes == k + 1);
    CHECK_FALSE(f.eng->tx_deferred());
    f.eng->abort(s);
    f.leak_check();
}
