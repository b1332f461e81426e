// Opening: LISTEN, SYN-SENT, SYN-RECEIVED, simultaneous open, SYN cookies, RST to
// segments for no socket. Engine driven through tests/tcp/fixture.hpp.
#include <sys/epoll.h>

#include "stack/wire/bytes.hpp"
#include "tests/tcp/fixture.hpp"

using namespace fastnet;
using namespace fastnet::test;

TEST_CASE("a listener answers a SYN with a SYN-ACK carrying MSS and the peer's options", "[tcp][listen]") {
    Fixture f;
    SockId l = f.listen_socket();
    SegOpts o;
    o.mss = 1400;
    o.wscale = 7;
    o.sack_permitted = true;
    o.ts = Timestamps{100, 0};
    f.send_segment(kTcpSyn, 1000, 0, {}, o);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    REQUIRE(sa.opts.mss);
    CHECK(*sa.opts.mss == 1460);
    CHECK(sa.opts.wscale);
    CHECK(sa.opts.sack_permitted);
    REQUIRE(sa.opts.ts);
    CHECK(sa.opts.ts->tsecr == 100);
    CHECK(sa.window == 65535);
    f.expect_nothing();
    CHECK(f.eng->accept(l, nullptr) == -EAGAIN);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("a SYN-ACK to a SYN without options carries no window scale, SACK or timestamps", "[tcp][listen]") {
    Fixture f;
    SockId l = f.listen_socket();
    f.send_segment(kTcpSyn, 1000, 0);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    CHECK(sa.opts.mss);
    CHECK(!sa.opts.wscale);
    CHECK(!sa.opts.sack_permitted);
    CHECK(!sa.opts.ts);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("a listener answers a bare ACK with a RST at SEG.ACK and ignores a RST", "[tcp][listen]") {
    Fixture f;
    SockId l = f.listen_socket();
    f.send_segment(kTcpAck, 1000, 777);
    f.expect_segment(kTcpRst, 777);
    f.send_segment(kTcpRst, 1000, 0);
    f.expect_nothing();
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("a segment for no socket draws a RST per RFC 9293 3.10.7.1", "[tcp][closed]") {
    Fixture f;
    // No ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    f.send_segment(kTcpSyn, 1000, 0);
    f.expect_segment(kTcpRst | kTcpAck, 0, 1001);
    f.send_segment(kTcpPsh, 2000, 0, bytes(10));
    f.expect_segment(kTcpRst | kTcpAck, 0, 2010);
    // ACK: <SEQ=SEG.ACK><CTL=RST>
    f.send_segment(kTcpAck, 1000, 4242);
    f.expect_segment(kTcpRst, 4242);
    // A RST is never answered.
    f.send_segment(kTcpRst | kTcpAck, 1000, 4242);
    f.expect_nothing();
    CHECK(f.eng->stats().drops[int(Drop::NoSocket)] == 4);
    f.leak_check();
}

TEST_CASE("the passive handshake completes and accept returns the connection", "[tcp][syn-received]") {
    Fixture f;
    SockId l = f.listen_socket();
    CHECK((f.eng->events(l) & EPOLLIN) == 0);
    f.send_segment(kTcpSyn, 1000, 0, {}, SegOpts().with_mss(1460));
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.send_segment(kTcpAck, 1001, sa.seq + 1);
    f.expect_nothing();
    CHECK((f.eng->events(l) & EPOLLIN) != 0);
    Endpoint peer;
    int s = f.eng->accept(l, &peer);
    REQUIRE(s >= 0);
    CHECK(peer.ip == kRemoteIp);
    CHECK((f.eng->events(SockId(s)) & EPOLLOUT) != 0);
    CHECK(f.eng->stats().conn_accepted == 1);
    f.eng->abort(SockId(s));
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("SYN-RECEIVED retransmits the SYN-ACK on timeout and on a duplicate SYN, then gives up", "[tcp][syn-received]") {
    Fixture f;
    SockId l = f.listen_socket();
    f.send_segment(kTcpSyn, 1000, 0);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.advance_to(999 * kMs);
    f.expect_nothing();
    f.advance_to(1000 * kMs);
    f.expect_segment(kTcpSyn | kTcpAck, sa.seq, 1001, 0);
    f.send_segment(kTcpSyn, 1000, 0);   // the peer never saw it
    f.expect_segment(kTcpSyn | kTcpAck, sa.seq, 1001, 0);
    // tcp_synack_retries = 5, then the half-open child disappears silently.
    f.run_until(200 * kSec);
    size_t n = 0;
    while (f.pending()) {
        Seg s = f.pop();
        CHECK(s.flags == (kTcpSyn | kTcpAck));
        ++n;
    }
    CHECK(n == 4);   // 5 retries in all; two were counted above
    CHECK(f.eng->live_tcbs() == 1);   // the listener only
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("a RST in SYN-RECEIVED of a passive open returns to LISTEN silently", "[tcp][syn-received][rst]") {
    Fixture f;
    SockId l = f.listen_socket();
    f.send_segment(kTcpSyn, 1000, 0);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.send_segment(kTcpRst, 1001, 0);
    f.expect_nothing();
    CHECK(f.eng->live_tcbs() == 1);
    // The listener still works.
    f.send_segment(kTcpSyn, 3000, 0);
    f.expect_segment(kTcpSyn | kTcpAck, {}, 3001, 0);
    (void)sa;
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("an unacceptable ACK in SYN-RECEIVED draws a RST", "[tcp][syn-received]") {
    Fixture f;
    SockId l = f.listen_socket();
    f.send_segment(kTcpSyn, 1000, 0);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.send_segment(kTcpAck, 1001, sa.seq + 100);
    f.expect_segment(kTcpRst, sa.seq + 100);
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("connect sends a SYN offering MSS, window scale, SACK and timestamps", "[tcp][syn-sent]") {
    Fixture f;
    int s = f.eng->socket();
    REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    Seg syn = f.expect_segment(kTcpSyn, {}, {}, 0);
    CHECK(syn.opts.mss == 1460);
    CHECK(syn.opts.wscale);
    CHECK(syn.opts.sack_permitted);
    CHECK(syn.opts.ts);
    CHECK(syn.dst_port == 80);
    CHECK(syn.src_port >= f.cfg.port_base);
    CHECK(f.eng->events(SockId(s)) == 0);
    CHECK(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EALREADY);
    f.eng->close(SockId(s));
    f.leak_check();
}

TEST_CASE("the active handshake completes on a SYN-ACK and the socket becomes writable", "[tcp][syn-sent]") {
    Fixture f;
    SockId s = f.establish_active(SegOpts().with_mss(1000));
    CHECK((f.eng->events(s) & EPOLLOUT) != 0);
    socklen_t len = sizeof(int);
    int mss = 0;
    CHECK(f.eng->getsockopt(s, IPPROTO_TCP, TCP_MAXSEG, &mss, &len) == 0);
    CHECK(mss == 1000);
    f.eng->abort(s);
    f.expect_segment(kTcpRst | kTcpAck, f.lseq, f.rseq);
    f.leak_check();
}

TEST_CASE("a SYN-ACK echoing a timestamp older than the SYN's RTO gives no RTT sample", "[tcp][syn-sent][rtt]") {
    // A SYN stamped before the engine's clock was set (or a corrupt echo) must not pin
    // the RTO at its maximum for the connection's life: the sample is refused.
    Fixture f;
    int s = f.eng->socket();
    REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    Seg syn = f.expect_segment(kTcpSyn, {}, {}, 0);
    REQUIRE(syn.opts.ts);
    f.run_until(f.now + 10 * kMs);
    f.remote_port = 80;
    f.local_port = syn.src_port;
    f.rseq = 5000;
    f.lseq = syn.seq + 1;
    // Echo a TSval 500 s older than the SYN's.
    f.send_segment(kTcpSyn | kTcpAck, f.rseq, f.lseq, {},
                   SegOpts().with_ts(Timestamps{77, syn.opts.ts->tsval - 500'000}));
    f.rseq += 1;
    f.expect_segment(kTcpAck, f.lseq, f.rseq, 0);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    REQUIRE(f.eng->getsockopt(SockId(s), IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    CHECK(ti.tcpi_rtt == 0);                 // no sample taken
    CHECK(ti.tcpi_rto <= 1'000'000);         // still the initial 1 s, not 120 s
    f.eng->abort(SockId(s));
    f.expect_segment(kTcpRst | kTcpAck, f.lseq, f.rseq);
    f.leak_check();
}

TEST_CASE("the SYN is retransmitted with exponential backoff and connect times out with ETIMEDOUT", "[tcp][syn-sent]") {
    Fixture f;
    int s = f.eng->socket();
    REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    Seg syn = f.expect_segment(kTcpSyn, {}, {}, 0);
    // RFC 6298 (2.1) 1 s initial RTO, doubled each time (5.5); Linux tcp_syn_retries 6.
    TimeNs at = 0, rto = 1 * kSec;
    for (int i = 0; i < 6; ++i) {
        at += rto;
        f.run_until(at - 1 * kMs);
        f.expect_nothing();
        f.run_until(at);
        f.expect_segment(kTcpSyn, syn.seq, {}, 0);
        rto *= 2;
    }
    f.run_until(at + rto);
    CHECK((f.eng->events(SockId(s)) & EPOLLERR) != 0);
    int err = 0;
    socklen_t len = sizeof err;
    CHECK(f.eng->getsockopt(SockId(s), SOL_SOCKET, SO_ERROR, &err, &len) == 0);
    CHECK(err == ETIMEDOUT);
    f.eng->close(SockId(s));
    f.leak_check();
}

TEST_CASE("a RST with an acceptable ACK in SYN-SENT refuses the connection", "[tcp][syn-sent][rst]") {
    Fixture f;
    int s = f.eng->socket();
    REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    Seg syn = f.expect_segment(kTcpSyn, {}, {}, 0);
    f.remote_port = 80;
    f.local_port = syn.src_port;
    // A RST whose ACK is wrong is ignored.
    f.send_segment(kTcpRst | kTcpAck, 0, syn.seq + 5);
    f.expect_nothing();
    CHECK(f.eng->events(SockId(s)) == 0);
    f.send_segment(kTcpRst | kTcpAck, 0, syn.seq + 1);
    CHECK((f.eng->events(SockId(s)) & (EPOLLERR | EPOLLHUP)) == (EPOLLERR | EPOLLHUP));
    char c;
    CHECK(f.eng->recv(SockId(s), &c, 1, 0) == -ECONNREFUSED);
    f.eng->close(SockId(s));
    f.leak_check();
}

TEST_CASE("a SYN-ACK with an unacceptable ACK in SYN-SENT draws a RST", "[tcp][syn-sent]") {
    Fixture f;
    int s = f.eng->socket();
    REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    Seg syn = f.expect_segment(kTcpSyn, {}, {}, 0);
    f.remote_port = 80;
    f.local_port = syn.src_port;
    f.send_segment(kTcpSyn | kTcpAck, 5000, syn.seq + 77);
    f.expect_segment(kTcpRst, syn.seq + 77);
    f.eng->close(SockId(s));
    f.leak_check();
}

TEST_CASE("simultaneous open: a SYN in SYN-SENT leads through SYN-RECEIVED to ESTABLISHED", "[tcp][syn-sent][simultaneous]") {
    Fixture f;
    int s = f.eng->socket();
    REQUIRE(f.eng->connect(SockId(s), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    Seg syn = f.expect_segment(kTcpSyn, {}, {}, 0);
    f.remote_port = 80;
    f.local_port = syn.src_port;
    f.send_segment(kTcpSyn, 7000, 0, {}, SegOpts().with_mss(1200));
    // RFC 9293 figure 8: SYN-ACK on our ISS.
    f.expect_segment(kTcpSyn | kTcpAck, syn.seq, 7001, 0);
    f.send_segment(kTcpSyn | kTcpAck, 7000, syn.seq + 1);
    // Its SYN is old now: answered with an ACK... and the ACK establishes.
    f.drain();
    f.send_segment(kTcpAck, 7001, syn.seq + 1);
    CHECK((f.eng->events(SockId(s)) & EPOLLOUT) != 0);
    CHECK(f.eng->send(SockId(s), "hi", 2, 0) == 2);
    f.expect_segment(kTcpAck | kTcpPsh, syn.seq + 1, 7001, 2);
    f.eng->abort(SockId(s));
    f.leak_check();
}

TEST_CASE("SYN cookies answer SYNs once the SYN backlog is full and complete on the ACK", "[tcp][listen][syncookies]") {
    EngineConfig c = test_config();
    c.syn_backlog = 1;
    Fixture f(c);
    SockId l = f.listen_socket();
    f.send_segment(kTcpSyn, 1000, 0);   // fills the SYN queue
    f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.remote_port = 50000;
    f.send_segment(kTcpSyn, 9000, 0, {}, SegOpts().with_mss(1460).with_wscale(7).with_sack_permitted(true));
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 9001, 0);
    CHECK(f.eng->stats().syn_cookies_sent == 1);
    CHECK(sa.opts.mss == 1460);
    CHECK(f.eng->live_tcbs() == 2);   // no state for the cookie
    // A forged ACK is refused.
    f.send_segment(kTcpAck, 9001, sa.seq + 2);
    f.expect_segment(kTcpRst, sa.seq + 2);
    f.send_segment(kTcpAck | kTcpPsh, 9001, sa.seq + 1, bytes(5));
    int s = f.eng->accept(l, nullptr);
    REQUIRE(s >= 0);
    char buf[16];
    CHECK(f.eng->recv(SockId(s), buf, sizeof buf, 0) == 5);
    f.eng->abort(SockId(s));
    f.eng->close(l);
    f.leak_check();
}

TEST_CASE("a full accept queue drops new SYNs", "[tcp][listen]") {
    Fixture f;
    SockId l = f.listen_socket(1);
    SockId a = f.establish_passive(l);   // accepted: the queue is empty again
    f.remote_port = 50001;
    f.send_segment(kTcpSyn, 1000, 0);
    Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
    f.send_segment(kTcpAck, 1001, sa.seq + 1);
    f.remote_port = 50002;
    f.send_segment(kTcpSyn, 1000, 0);
    f.expect_nothing();
    CHECK(f.eng->stats().drops[int(Drop::BacklogFull)] == 1);
    f.eng->close(l);   // the queued child is reset
    f.expect_segment(kTcpRst | kTcpAck);
    f.eng->abort(a);
    f.leak_check();
}

namespace {
SockId reuseport_listener(Fixture& f, bool reuseport) {
    int l = f.eng->socket();
    REQUIRE(l >= 0);
    int one = reuseport ? 1 : 0;
    REQUIRE(f.eng->setsockopt(SockId(l), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    int r = f.eng->bind(SockId(l), Endpoint{0, f.local_port});
    if (r == 0) r = f.eng->listen(SockId(l), 16);
    if (r < 0) {
        f.eng->close(SockId(l));
        return kNoSock;
    }
    return SockId(l);
}
}  // namespace

TEST_CASE("SO_REUSEPORT listeners on one port share its new flows; one closing leaves the others",
          "[tcp][listen][reuseport]") {
    Fixture f;
    SockId a = reuseport_listener(f, true);
    SockId b = reuseport_listener(f, true);
    REQUIRE(a != kNoSock);
    REQUIRE(b != kNoSock);
    // Without SO_REUSEPORT a third listener cannot join the port.
    CHECK(reuseport_listener(f, false) == kNoSock);
    int got_a = 0, got_b = 0;
    for (uint16_t i = 0; i < 32; ++i) {
        f.remote_port = static_cast<uint16_t>(50000 + i * 7);
        f.send_segment(kTcpSyn, 1000, 0);
        Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
        f.send_segment(kTcpAck, 1001, sa.seq + 1);
        f.expect_nothing();
        int s = f.eng->accept(a, nullptr);
        if (s >= 0) ++got_a;
        else if ((s = f.eng->accept(b, nullptr)) >= 0) ++got_b;
        REQUIRE(s >= 0);          // exactly one of the group has it
        f.eng->abort(SockId(s));
        f.drain();
    }
    CAPTURE(got_a, got_b);
    CHECK(got_a >= 4);
    CHECK(got_b >= 4);
    int v = 0;
    socklen_t vl = sizeof v;
    REQUIRE(f.eng->getsockopt(a, SOL_SOCKET, SO_REUSEPORT, &v, &vl) == 0);
    CHECK(v == 1);
    // The first listener closes: every new flow goes to the other.
    f.eng->close(a);
    for (uint16_t i = 0; i < 8; ++i) {
        f.remote_port = static_cast<uint16_t>(51000 + i * 7);
        f.send_segment(kTcpSyn, 1000, 0);
        Seg sa = f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
        f.send_segment(kTcpAck, 1001, sa.seq + 1);
        int s = f.eng->accept(b, nullptr);
        REQUIRE(s >= 0);
        f.eng->abort(SockId(s));
        f.drain();
    }
    f.eng->close(b);
    f.leak_check();
}

TEST_CASE("a SYN carrying the pseudo-header sum is answered only where partial checksums are accepted",
          "[tcp][listen][csum-partial]") {
    bool accept = GENERATE(false, true);
    CAPTURE(accept);
    EngineConfig c = test_config();
    c.accept_csum_partial = accept;
    Fixture f(c);
    SockId l = f.listen_socket();
    // A SYN as a kernel peer with TX checksum offload hands it over on a veth: the field
    // holds the folded, uncomplemented pseudo-header sum. `delta` moves it off that value.
    auto syn_with_pseudo_sum = [&](uint32_t seq, uint16_t sport, uint16_t delta) {
        TcpFrameSpec sp;
        sp.src_mac = MacAddr::from(kRemoteMac);
        sp.dst_mac = MacAddr::from(kLocalMac);
        sp.src_ip = kRemoteIp;
        sp.dst_ip = kLocalIp;
        sp.tcp.src_port = sport;
        sp.tcp.dst_port = f.local_port;
        sp.tcp.seq = Seq(seq);
        sp.tcp.flags = kTcpSyn;
        sp.tcp.window = 65535;
        std::vector<uint8_t> buf(256);
        size_t n = emit_tcp_frame(buf.data(), buf.size(), sp, nullptr, 0, nullptr, 0);
        REQUIRE(n == 14 + 20 + 20);
        buf.resize(n);
        uint16_t pseudo = static_cast<uint16_t>(~csum_fold(ipv4_pseudo_sum(kRemoteIp, kLocalIp, 6, 20)));
        store_be16(buf.data() + 14 + 20 + 16, static_cast<uint16_t>(pseudo + delta));
        f.dev.rx.push_back(std::move(buf));
        f.eng->poll(f.now);
    };
    syn_with_pseudo_sum(1000, f.remote_port, 0);
    if (accept) {
        f.expect_segment(kTcpSyn | kTcpAck, {}, 1001, 0);
        CHECK(f.eng->stats().rx_csum_partial == 1);
        CHECK(f.eng->stats().drops[int(Drop::BadChecksum)] == 0);
        f.send_segment(kTcpRst, 1001, 0);
    } else {
        CHECK(f.eng->stats().rx_csum_partial == 0);
        CHECK(f.eng->stats().drops[int(Drop::BadChecksum)] == 1);
    }
    f.expect_nothing();
    // Next to the pseudo-header sum is just a bad checksum, in both modes.
    uint64_t bad = f.eng->stats().drops[int(Drop::BadChecksum)];
    syn_with_pseudo_sum(5000, f.remote_port + 1, 1);
    f.expect_nothing();
    CHECK(f.eng->stats().drops[int(Drop::BadChecksum)] == bad + 1);
    CHECK(f.eng->stats().rx_csum_partial == (accept ? 1u : 0u));
    f.eng->close(l);
    f.leak_check();
}
