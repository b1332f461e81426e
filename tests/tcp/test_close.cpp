// Closing from every state: FIN-WAIT-1/2, CLOSING, TIME-WAIT, CLOSE-WAIT, LAST-ACK,
// simultaneous close, RST in each state, SO_LINGER 0, TIME_WAIT reuse.
#include <sys/epoll.h>

#include "tests/tcp/fixture.hpp"

using namespace fastnet;
using namespace fastnet::test;

TEST_CASE("active close goes FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT and ends after 2 MSL", "[tcp][fin-wait-1][fin-wait-2][time-wait]") {
    Fixture f;
    SockId s = f.establish_active();
    CHECK(f.eng->shutdown(s, SHUT_WR) == 0);
    f.expect_segment(kTcpFin | kTcpAck, f.lseq, f.rseq, 0);
    CHECK(f.eng->send(s, "x", 1, 0) == -EPIPE);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len);
    CHECK(ti.tcpi_state == 4);   // FIN_WAIT1
    f.send_segment(kTcpAck, f.rseq, f.lseq + 1);
    f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len);
    CHECK(ti.tcpi_state == 5);   // FIN_WAIT2
    // Data still flows towards us in FIN-WAIT-2.
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq + 1, bytes(5));
    f.expect_segment(kTcpAck, f.lseq + 1, f.rseq + 5, 0);   // quick ACK: the first data
    f.send_segment(kTcpFin | kTcpAck, f.rseq + 5, f.lseq + 1);
    f.expect_segment(kTcpAck, f.lseq + 1, f.rseq + 6, 0);
    f.eng->getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len);
    CHECK(ti.tcpi_state == 6);   // TIME_WAIT
    char buf[10];
    CHECK(f.eng->recv(s, buf, 10, 0) == 5);
    CHECK(f.eng->recv(s, buf, 10, 0) == 0);
    CHECK((f.eng->events(s) & (EPOLLHUP | EPOLLRDHUP)) == (EPOLLHUP | EPOLLRDHUP));
    f.eng->close(s);
    // TIME-WAIT answers a retransmitted FIN and restarts its timer.
    f.advance_by(1 * kSec);
    f.send_segment(kTcpFin | kTcpAck, f.rseq + 5, f.lseq + 1);
    f.expect_segment(kTcpAck, f.lseq + 1, f.rseq + 6, 0);
    CHECK(f.eng->live_tcbs() == 1);
    f.run_until(f.now + 2 * kSec - 1 * kMs);
    CHECK(f.eng->live_tcbs() == 1);
    f.run_until(f.now + 2 * kMs);
    CHECK(f.eng->live_tcbs() == 0);
    f.leak_check();
}

TEST_CASE("passive close: FIN gives CLOSE-WAIT with EPOLLRDHUP, close gives LAST-ACK, the ACK ends it", "[tcp][close-wait][last-ack]") {
    Fixture f;
    SockId l = f.listen_socket();
    SockId s = f.establish_passive(l);
    f.send_segment(kTcpFin | kTcpAck, f.rseq, f.lseq);
    f.expect_segment(kTcpAck, f.lseq, f.rseq + 1, 0);
    CHECK((f.eng->events(s) & (EPOLLIN | EPOLLRDHUP)) == (EPOLLIN | EPOLLRDHUP));
    CHECK((f.eng->events(s) & EPOLLHUP) == 0);
    CHECK((f.eng->events(s) & EPOLLOUT) != 0);
    char c;
    CHECK(f.eng->recv(s, &c, 1, 0) == 0);
    // Still allowed to send in CLOSE-WAIT.
    CHECK(f.eng->send(s, "bye", 3, 0) == 3);
    f.expect_segment(kTcpAck | kTcpPsh, f.lseq, f.rseq + 1, 3);
    f.eng->close(s);
    f.expect_segment(kTcpFin | kTcpAck, f.lseq + 3, f.rseq + 1, 0);
    f.send_segment(kTcpAck, f.rseq + 1, f.lseq + 4);
    CHECK(f.eng->live_tcbs() == 1);   // the listener only: no TIME-WAIT on this side
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("simultaneous close goes through CLOSING to TIME-WAIT", "[tcp][closing][simultaneous]") {
    Fixture f;
    SockId s = f.establish_active();
    f.eng->close(s);
    f.expect_segment(kTcpFin | kTcpAck, f.lseq, f.rseq, 0);
    // Their FIN crosses ours: it does not ACK our FIN.
    f.send_segment(kTcpFin | kTcpAck, f.rseq, f.lseq);
    f.expect_segment(kTcpAck, f.lseq + 1, f.rseq + 1, 0);
    f.send_segment(kTcpAck, f.rseq + 1, f.lseq + 1);
    CHECK(f.eng->live_tcbs() == 1);   // TIME-WAIT
    f.run_until(f.now + 2 * kSec + 1 * kMs);
    CHECK(f.eng->live_tcbs() == 0);
    f.leak_check();
}

TEST_CASE("FIN and ACK of our FIN together go from FIN-WAIT-1 straight to TIME-WAIT", "[tcp][fin-wait-1]") {
    Fixture f;
    SockId s = f.establish_active();
    f.eng->close(s);
    f.expect_segment(kTcpFin | kTcpAck, f.lseq, f.rseq, 0);
    f.send_segment(kTcpFin | kTcpAck, f.rseq, f.lseq + 1);
    f.expect_segment(kTcpAck, f.lseq + 1, f.rseq + 1, 0);
    CHECK(f.eng->live_tcbs() == 1);
    f.leak_check();
}

TEST_CASE("the FIN is retransmitted in FIN-WAIT-1 and in LAST-ACK", "[tcp][fin-wait-1][last-ack]") {
    Fixture f;
    SockId s = f.establish_active();
    f.eng->close(s);
    f.expect_segment(kTcpFin | kTcpAck, f.lseq, f.rseq, 0);
    f.run_until(f.now + 200 * kMs);
    f.expect_segment(kTcpFin | kTcpAck, f.lseq, f.rseq, 0);
    f.send_segment(kTcpAck, f.rseq, f.lseq + 1);
    f.run_until(f.now + 5 * kSec);
    f.expect_nothing();

    Fixture g;
    SockId l = g.listen_socket();
    SockId p = g.establish_passive(l);
    g.send_segment(kTcpFin | kTcpAck, g.rseq, g.lseq);
    g.expect_segment(kTcpAck, g.lseq, g.rseq + 1, 0);
    g.eng->close(p);
    g.expect_segment(kTcpFin | kTcpAck, g.lseq, g.rseq + 1, 0);
    g.run_until(g.now + 200 * kMs);
    g.expect_segment(kTcpFin | kTcpAck, g.lseq, g.rseq + 1, 0);
    g.send_segment(kTcpAck, g.rseq + 1, g.lseq + 1);
    g.eng->close(l);
    g.leak_check();
    f.leak_check();
}

TEST_CASE("an orphaned FIN-WAIT-2 ends after tcp_fin_timeout", "[tcp][fin-wait-2]") {
    Fixture f;
    SockId s = f.establish_active();
    f.eng->close(s);
    f.expect_segment(kTcpFin | kTcpAck, f.lseq, f.rseq, 0);
    f.send_segment(kTcpAck, f.rseq, f.lseq + 1);
    f.run_until(f.now + 59 * kSec);
    CHECK(f.eng->live_tcbs() == 1);
    f.run_until(f.now + 2 * kSec);
    CHECK(f.eng->live_tcbs() == 0);
    f.leak_check();
}

namespace {
enum class Target { Established, FinWait1, FinWait2, CloseWait, Closing, LastAck, TimeWait };
}

TEST_CASE("an exact RST is processed in every synchronized state", "[tcp][rst]") {
    auto target = GENERATE(Target::Established, Target::FinWait1, Target::FinWait2,
                           Target::CloseWait, Target::Closing, Target::LastAck, Target::TimeWait);
    CAPTURE(int(target));
    Fixture f;
    SockId s = f.establish_active();
    uint32_t our = f.lseq, their = f.rseq;
    switch (target) {
    case Target::Established: break;
    case Target::FinWait1:
        f.eng->shutdown(s, SHUT_WR);
        break;
    case Target::FinWait2:
        f.eng->shutdown(s, SHUT_WR);
        f.send_segment(kTcpAck, their, our + 1);
        break;
    case Target::CloseWait:
        f.send_segment(kTcpFin | kTcpAck, their, our);
        their += 1;
        break;
    case Target::Closing:
        f.eng->shutdown(s, SHUT_WR);
        f.send_segment(kTcpFin | kTcpAck, their, our);
        their += 1;
        break;
    case Target::LastAck:
        f.send_segment(kTcpFin | kTcpAck, their, our);
        their += 1;
        f.eng->shutdown(s, SHUT_WR);
        break;
    case Target::TimeWait:
        f.eng->shutdown(s, SHUT_WR);
        f.send_segment(kTcpFin | kTcpAck, their, our + 1);
        their += 1;
        break;
    }
    f.drain();
    f.send_segment(kTcpRst, their, 0);
    f.expect_nothing();
    uint32_t ev = f.eng->events(s);
    CHECK((ev & EPOLLHUP) != 0);
    if (target == Target::Established || target == Target::FinWait1 ||
        target == Target::FinWait2 || target == Target::CloseWait) {
        CHECK((ev & EPOLLERR) != 0);
        int err = 0;
        socklen_t len = sizeof err;
        f.eng->getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
        // Linux tcp_reset: in CLOSE-WAIT the peer had closed already, so EPIPE.
        CHECK(err == (target == Target::CloseWait ? EPIPE : ECONNRESET));
    }
    // Nothing answers for the connection any more: a segment draws a RST.
    f.send_segment(kTcpAck, their, our);
    f.expect_segment(kTcpRst, our);
    f.eng->close(s);
    f.leak_check();
}

TEST_CASE("SO_LINGER with a zero timeout makes close send a RST", "[tcp][established][linger]") {
    Fixture f;
    SockId s = f.establish_active();
    struct linger lg{1, 0};
    CHECK(f.eng->setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    f.eng->close(s);
    f.expect_segment(kTcpRst | kTcpAck, f.lseq, f.rseq, 0);
    CHECK(f.eng->live_tcbs() == 0);
    f.leak_check();
}

TEST_CASE("close with unread data sends a RST instead of a FIN", "[tcp][established]") {
    Fixture f;
    SockId s = f.establish_active();
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(10));
    f.drain();
    f.eng->close(s);
    f.expect_segment(kTcpRst | kTcpAck, f.lseq, f.rseq + 10, 0);
    f.leak_check();
}

TEST_CASE("TIME-WAIT is reused by a new SYN with a higher sequence number or newer timestamp", "[tcp][time-wait][reuse]") {
    auto with_ts = GENERATE(false, true);
    CAPTURE(with_ts);
    Fixture f;
    SockId l = f.listen_socket();
    SegOpts o;
    if (with_ts) o.ts = Timestamps{100, 0};
    SockId s = f.establish_passive(l, o);
    // We close first: this side ends in TIME-WAIT.
    f.eng->close(s);
    Seg fin = f.expect_segment(kTcpFin | kTcpAck, f.lseq, f.rseq, 0);
    SegOpts a;
    if (with_ts) a.ts = Timestamps{200, fin.opts.ts ? fin.opts.ts->tsval : 0};
    f.send_segment(kTcpFin | kTcpAck, f.rseq, f.lseq + 1, {}, a);
    f.expect_segment(kTcpAck, f.lseq + 1, f.rseq + 1, 0);
    CHECK(f.eng->live_tcbs() == 2);
    // An old-looking SYN (lower sequence, old timestamp) only gets an ACK.
    SegOpts old;
    if (with_ts) old.ts = Timestamps{150, 0};
    f.send_segment(kTcpSyn, f.rseq - 100, 0, {}, old);
    Seg r = f.pop();
    CHECK((r.flags & kTcpSyn) == 0);
    // A new incarnation: higher sequence / newer timestamp.
    SegOpts nw;
    if (with_ts) nw.ts = Timestamps{300, 0};
    uint32_t new_iss = with_ts ? f.rseq - 1000 : f.rseq + 100000;
    f.send_segment(kTcpSyn, new_iss, 0, {}, nw);
    f.expect_segment(kTcpSyn | kTcpAck, {}, new_iss + 1, 0);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("close in SYN-SENT releases the socket without a segment", "[tcp][syn-sent][close]") {
    Fixture f;
    int s = f.eng->socket();
    REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    f.expect_segment(kTcpSyn, {}, {}, 0);
    CHECK(f.eng->close(SockId(s)) == 0);
    f.expect_nothing();
    CHECK(f.eng->live_tcbs() == 0);
    f.leak_check();
}

TEST_CASE("close of an unaccepted child via the listener resets it; SYN-RECEIVED children vanish", "[tcp][syn-received][close]") {
    Fixture f;
    SockId l = f.listen_socket();
    f.send_segment(kTcpSyn, 1000, 0);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.eng->close(l);
    f.expect_segment(kTcpRst | kTcpAck, sa.seq + 1, 1001, 0);
    CHECK(f.eng->live_tcbs() == 0);
    // The port is closed now.
    f.send_segment(kTcpAck, 1001, sa.seq + 1);
    f.expect_segment(kTcpRst, sa.seq + 1);
    f.leak_check();
}

TEST_CASE("MSG_PEEK leaves the data; SHUT_RD makes recv return 0", "[tcp][established]") {
    Fixture f;
    SockId s = f.establish_active();
    f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(10));
    char buf[32];
    CHECK(f.eng->recv(s, buf, sizeof buf, MSG_PEEK) == 10);
    CHECK(f.eng->unread(s) == 10);
    CHECK(f.eng->recv(s, buf, sizeof buf, 0) == 10);
    CHECK(f.eng->shutdown(s, SHUT_RD) == 0);
    CHECK(f.eng->recv(s, buf, sizeof buf, 0) == 0);
    CHECK((f.eng->events(s) & EPOLLRDHUP) != 0);
    CHECK(f.eng->shutdown(s, 7) == -EINVAL);
    f.eng->abort(s);
    f.leak_check();
}

namespace {

// LISTEN → SYN → SYN-ACK → ACK, left in the accept queue (not accepted).
void establish_queued(Fixture& f) {
    f.send_segment(kTcpSyn, 1000, 0);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.rseq = 1001;
    f.lseq = sa.seq + 1;
    f.send_segment(kTcpAck, f.rseq, f.lseq);
    f.expect_nothing();
}

}  // namespace

TEST_CASE("a connection reset before accept is still accepted; recv says ECONNRESET, then 0, send EPIPE", "[tcp][established][rst][accept]") {
    Fixture f;
    SockId l = f.listen_socket();
    establish_queued(f);
    bool with_data = GENERATE(false, true);
    CAPTURE(with_data);
    if (with_data) {
        f.send_segment(kTcpAck | kTcpPsh, f.rseq, f.lseq, bytes(10));
        f.rseq += 10;
        f.drain();   // its ACK, now or delayed
    }
    f.send_segment(kTcpRst, f.rseq, 0);
    f.expect_nothing();
    // The listener still offers it (Linux inet_csk_accept hands out the closed child).
    CHECK((f.eng->events(l) & EPOLLIN) != 0);
    Endpoint peer;
    int s = f.eng->accept(l, &peer);
    REQUIRE(s >= 0);
    CHECK(peer.ip == kRemoteIp);
    CHECK(peer.port == f.remote_port);
    CHECK(f.eng->accept(l, nullptr) == -EAGAIN);
    CHECK((f.eng->events(l) & EPOLLIN) == 0);
    uint32_t ev = f.eng->events(SockId(s));
    CHECK((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) == (EPOLLIN | EPOLLERR | EPOLLHUP));
    char buf[32];
    if (with_data) CHECK(f.eng->recv(SockId(s), buf, sizeof buf, 0) == 10);   // data before the error
    CHECK(f.eng->recv(SockId(s), buf, sizeof buf, 0) == -ECONNRESET);
    CHECK(f.eng->recv(SockId(s), buf, sizeof buf, 0) == 0);
    CHECK(f.eng->send(SockId(s), "x", 1, 0) == -EPIPE);
    f.expect_nothing();
    f.eng->close(SockId(s));
    f.expect_nothing();
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("a child reset while queued is released with its listener, without a segment", "[tcp][established][rst][accept]") {
    Fixture f;
    SockId l = f.listen_socket();
    establish_queued(f);
    f.send_segment(kTcpRst, f.rseq, 0);
    f.expect_nothing();
    CHECK(f.eng->live_tcbs() == 2);
    f.eng->close(l);
    f.expect_nothing();
    CHECK(f.eng->live_tcbs() == 0);
    f.leak_check();
}

TEST_CASE("a queued child's reset keeps the listener's backlog slot until accepted", "[tcp][established][rst][accept]") {
    Fixture f;
    SockId l = f.listen_socket(1);
    establish_queued(f);
    f.send_segment(kTcpRst, f.rseq, 0);
    // Backlog 1 is taken by the reset child: a new SYN is dropped, as on Linux.
    f.remote_port = 49153;
    f.send_segment(kTcpSyn, 5000, 0);
    f.expect_nothing();
    int s = f.eng->accept(l, nullptr);
    REQUIRE(s >= 0);
    f.send_segment(kTcpSyn, 5000, 0);
    f.expect_segment(kTcpSyn | kTcpAck, {}, 5001, 0);
    f.eng->close(SockId(s));
    f.eng->close(l);
    f.drain();
    f.leak_check();
}
