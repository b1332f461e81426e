// Send-side choices as Linux makes them: PSH per write, TCP_CORK, MSG_MORE, MSG_EOR,
// TCP_NOTSENT_LOWAT, TCP_USER_TIMEOUT, and the timestamp on a connection's RST.
#include <sys/epoll.h>

#include "tests/tcp/fixture.hpp"

using namespace fastnet;
using namespace fastnet::test;

namespace {

bool psh(const Seg& s) { return (s.flags & kTcpPsh) != 0; }

int set_int(Fixture& f, SockId s, int name, int v) {
    return f.eng->setsockopt(s, IPPROTO_TCP, name, &v, sizeof v);
}

int get_int(Fixture& f, SockId s, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    REQUIRE(f.eng->getsockopt(s, IPPROTO_TCP, name, &v, &len) == 0);
    return v;
}

}  // namespace

TEST_CASE("the segment that holds the end of a write carries PSH, even with more data behind it", "[tcp][established][psh]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    CHECK(f.eng->send(s, "x", 1, 0) == 1);                 // in flight: Nagle holds short ones
    CHECK(psh(f.expect_segment(kTcpAck, f.lseq, f.rseq, 1)));
    auto a = bytes(1200), b = bytes(1200, 9);
    CHECK(f.eng->send(s, a.data(), a.size(), 0) == 1200);
    CHECK_FALSE(psh(f.expect_segment(kTcpAck, f.lseq + 1, f.rseq, 1000)));
    f.expect_nothing();                                    // 200 bytes wait (Nagle)
    CHECK(f.eng->send(s, b.data(), b.size(), 0) == 1200);
    // [1001, 2001) holds the first write's end (1201): Linux tcp_mark_push.
    CHECK(psh(f.expect_segment(kTcpAck, f.lseq + 1001, f.rseq, 1000)));
    f.expect_nothing();
    f.send_segment(kTcpAck, f.rseq, f.lseq + 2001);
    CHECK(psh(f.expect_segment(kTcpAck, f.lseq + 2001, f.rseq, 400)));
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("MSG_EOR ends a record: the next write starts a new segment", "[tcp][established][eor]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    CHECK(f.eng->send(s, "x", 1, 0) == 1);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 1);
    auto a = bytes(300), b = bytes(300, 5);
    CHECK(f.eng->send(s, a.data(), a.size(), MSG_EOR) == 300);
    f.expect_nothing();                                    // Nagle: "x" is unacknowledged
    CHECK(f.eng->send(s, b.data(), b.size(), 0) == 300);
    // The record is complete and no longer the last: Linux sends it without the Nagle
    // test; without the boundary both would wait and leave as one 600-byte segment.
    Seg first = f.expect_segment(kTcpAck, f.lseq + 1, f.rseq, 300);
    CHECK(psh(first));
    CHECK(first.payload == a);
    f.expect_nothing();                                    // the last record: Nagle
    f.send_segment(kTcpAck, f.rseq, f.lseq + 301);
    CHECK(f.expect_segment(kTcpAck, f.lseq + 301, f.rseq, 300).payload == b);
    // Without MSG_EOR, the same two writes coalesce.
    f.send_segment(kTcpAck, f.rseq, f.lseq + 601);
    CHECK(f.eng->send(s, "y", 1, 0) == 1);
    f.expect_segment(kTcpAck, f.lseq + 601, f.rseq, 1);
    CHECK(f.eng->send(s, a.data(), a.size(), 0) == 300);
    CHECK(f.eng->send(s, b.data(), b.size(), 0) == 300);
    f.send_segment(kTcpAck, f.rseq, f.lseq + 602);
    f.expect_segment(kTcpAck, f.lseq + 602, f.rseq, 600);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("TCP_CORK holds a partial segment until uncorked, or about 200 ms with nothing in flight", "[tcp][established][cork]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    CHECK(get_int(f, s, TCP_CORK) == 0);
    REQUIRE(set_int(f, s, TCP_NODELAY, 1) == 0);           // cork wins over NODELAY (Linux)
    REQUIRE(set_int(f, s, TCP_CORK, 1) == 0);
    CHECK(get_int(f, s, TCP_CORK) == 1);
    CHECK(f.eng->send(s, bytes(100).data(), 100, 0) == 100);
    f.expect_nothing();
    auto more = bytes(1950);
    CHECK(f.eng->send(s, more.data(), more.size(), 0) == 1950);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 1000);       // full segments go
    f.expect_segment(kTcpAck, f.lseq + 1000, f.rseq, 1000);
    f.expect_nothing();                                    // 50 bytes wait
    f.send_segment(kTcpAck, f.rseq, f.lseq + 2000);
    f.expect_nothing();                                    // an ACK does not uncork
    REQUIRE(set_int(f, s, TCP_CORK, 0) == 0);
    CHECK(psh(f.expect_segment(kTcpAck, f.lseq + 2000, f.rseq, 50)));
    f.send_segment(kTcpAck, f.rseq, f.lseq + 2050);
    // Corked with nothing in flight: Linux's probe timer sends it after max(RTO, 200 ms).
    REQUIRE(set_int(f, s, TCP_CORK, 1) == 0);
    const TimeNs t0 = f.now;
    CHECK(f.eng->send(s, "abc", 3, 0) == 3);
    f.run_until(t0 + 190 * kMs);
    f.expect_nothing();
    f.run_until(t0 + 260 * kMs);
    f.expect_segment(kTcpAck, f.lseq + 2050, f.rseq, 3);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("MSG_MORE holds a partial segment for the next write", "[tcp][established][msg-more]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    REQUIRE(set_int(f, s, TCP_NODELAY, 1) == 0);
    CHECK(f.eng->send(s, bytes(100).data(), 100, MSG_MORE) == 100);
    f.expect_nothing();
    CHECK(f.eng->send(s, bytes(100).data(), 100, 0) == 100);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 200);
    f.send_segment(kTcpAck, f.rseq, f.lseq + 200);
    // Nothing follows: it goes after the probe timer, as on Linux.
    const TimeNs t0 = f.now;
    CHECK(f.eng->send(s, "z", 1, MSG_MORE) == 1);
    f.run_until(t0 + 190 * kMs);
    f.expect_nothing();
    f.run_until(t0 + 260 * kMs);
    f.expect_segment(kTcpAck, f.lseq + 200, f.rseq, 1);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("TCP_NOTSENT_LOWAT limits unsent data and reports EPOLLOUT below half of it", "[tcp][established][notsent-lowat]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    f.send_segment(kTcpAck, f.rseq, f.lseq, {}, {}, 1000);   // the peer offers 1000 bytes
    CHECK((f.eng->events(s) & EPOLLOUT) != 0);
    REQUIRE(set_int(f, s, TCP_NOTSENT_LOWAT, 3000) == 0);
    CHECK(get_int(f, s, TCP_NOTSENT_LOWAT) == 3000);
    auto data = bytes(8000);
    // Linux fills segments until the unsent bytes reach the limit.
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 3000);
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 1000);
    f.expect_nothing();
    // 2000 unsent: writable for send (< 3000), not for poll (2 * 2000 >= 3000).
    CHECK((f.eng->events(s) & EPOLLOUT) == 0);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 1000);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == -EAGAIN);
    f.sink.events.clear();
    f.send_segment(kTcpAck, f.rseq, f.lseq + 1000, {}, {}, 1000);
    f.expect_segment(kTcpAck, f.lseq + 1000, f.rseq, 1000);
    CHECK((f.eng->events(s) & EPOLLOUT) == 0);              // 2000 unsent
    f.send_segment(kTcpAck, f.rseq, f.lseq + 2000, {}, {}, 1000);
    f.expect_segment(kTcpAck, f.lseq + 2000, f.rseq, 1000);
    CHECK((f.eng->events(s) & EPOLLOUT) != 0);              // 1000 unsent: 2000 < 3000
    bool told = false;
    for (auto& [id, ev] : f.sink.events) told |= id == s && (ev & EPOLLOUT);
    CHECK(told);
    // 0 restores the default: no limit.
    REQUIRE(set_int(f, s, TCP_NOTSENT_LOWAT, 0) == 0);
    CHECK(f.eng->send(s, data.data(), data.size(), 0) == 8000);
    f.eng->abort(s);
    f.leak_check();
}

TEST_CASE("TCP_USER_TIMEOUT ends a connection whose data stays unacknowledged that long", "[tcp][established][user-timeout]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    CHECK(set_int(f, s, TCP_USER_TIMEOUT, -1) == -EINVAL);
    REQUIRE(set_int(f, s, TCP_USER_TIMEOUT, 1500) == 0);
    CHECK(get_int(f, s, TCP_USER_TIMEOUT) == 1500);
    const TimeNs t0 = f.now;
    CHECK(f.eng->send(s, "hello", 5, 0) == 5);             // the peer has vanished
    f.run_until(t0 + 1490 * kMs);
    CHECK((f.eng->events(s) & EPOLLERR) == 0);
    f.run_until(t0 + 1510 * kMs);                           // tcp_retries2 would take minutes
    CHECK((f.eng->events(s) & EPOLLERR) != 0);
    char buf[8];
    CHECK(f.eng->recv(s, buf, sizeof buf, 0) == -ETIMEDOUT);
    f.eng->close(s);
    f.leak_check();
}

TEST_CASE("TCP_USER_TIMEOUT ends a keepalive connection whose peer stays silent that long", "[tcp][established][user-timeout][keepalive]") {
    Fixture f;
    SockId s = f.establish_active();
    int one = 1, idle = 1, intvl = 1;
    REQUIRE(f.eng->setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0);
    REQUIRE(set_int(f, s, TCP_KEEPIDLE, idle) == 0);
    REQUIRE(set_int(f, s, TCP_KEEPINTVL, intvl) == 0);
    REQUIRE(set_int(f, s, TCP_USER_TIMEOUT, 2500) == 0);
    const TimeNs t0 = f.now;
    // Probes at 1 s and 2 s go unanswered; at 3 s the peer has been silent > 2.5 s
    // (without the option: TCP_KEEPCNT = 9 probes, 10 s).
    f.run_until(t0 + 2900 * kMs);
    CHECK((f.eng->events(s) & EPOLLERR) == 0);
    f.run_until(t0 + 3100 * kMs);
    CHECK((f.eng->events(s) & EPOLLERR) != 0);
    char buf[8];
    CHECK(f.eng->recv(s, buf, sizeof buf, 0) == -ETIMEDOUT);
    f.eng->close(s);
    f.leak_check();
}

TEST_CASE("a RST on a connection with timestamps carries one", "[tcp][established][rst][ts]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_ts(Timestamps{500, 0}));
    f.eng->abort(s);
    Seg rst = f.expect_segment(kTcpRst | kTcpAck, f.lseq, f.rseq, 0);
    REQUIRE(rst.opts.ts.has_value());
    CHECK(rst.opts.ts->tsecr == 500);
    f.leak_check();
}
