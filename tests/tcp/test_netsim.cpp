// Netsim: two engines joined by a SimLink (stack/sim/sim_link.hpp) with seeded loss,
// reordering, duplication, delay and a bandwidth limit; 8 MiB each way at once,
// byte-exact against a seeded pseudo-random stream, on simulated time.
#include <sys/epoll.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <utility>
#include <cstring>
#include <iostream>

#include "stack/sim/sim_link.hpp"
#include "tests/tcp/fixture.hpp"

using namespace fastnet;
using namespace fastnet::test;

namespace {

// The byte stream both sides send and check: xorshift64* keyed by (seed, direction).
class Stream {
public:
    Stream(uint64_t seed, uint64_t dir) : s_(seed * 0x9e3779b97f4a7c15ull + dir * 7 + 1) {}
    void fill(uint8_t* p, size_t n) {
        for (size_t i = 0; i < n; ++i) p[i] = next();
    }
    // Index of the first byte that differs, or n.
    size_t check(const uint8_t* p, size_t n) {
        size_t bad = n;
        for (size_t i = 0; i < n; ++i)
            if (p[i] != next() && bad == n) bad = i;
        return bad;
    }

private:
    uint8_t next() {
        if (left_ == 0) {
            s_ ^= s_ >> 12;
            s_ ^= s_ << 25;
            s_ ^= s_ >> 27;
            cur_ = s_ * 0x2545f4914f6cdd1dull;
            left_ = 8;
        }
        uint8_t b = static_cast<uint8_t>(cur_);
        cur_ >>= 8;
        --left_;
        return b;
    }
    uint64_t s_, cur_ = 0;
    int left_ = 0;
};

class AnyNeighbour final : public Neighbours {
public:
    explicit AnyNeighbour(uint8_t last) : last_(last) {}
    bool resolve(uint32_t, uint8_t mac[6]) override {
        const uint8_t m[6] = {0x02, 0, 0, 0, 0, last_};
        std::memcpy(mac, m, 6);
        return true;
    }

private:
    uint8_t last_;
};

// One endpoint's application: sends `total` bytes of its stream, reads and checks the
// peer's, shuts down its write side when done.
struct App {
    Engine* eng;
    SockId sock = kNoSock;
    Stream tx, rx;
    size_t total, sent = 0, received = 0;
    bool shut = false, eof = false, corrupt = false;
    size_t first_bad = 0;
    std::vector<uint8_t> chunk = std::vector<uint8_t>(64 * 1024);
    size_t chunk_len = 0, chunk_off = 0;

    App(Engine& e, uint64_t seed, int dir, size_t n)
        : eng(&e), tx(seed, dir), rx(seed, 1 - dir), total(n) {}

    void pump() {
        if (sock == kNoSock) return;
        for (int i = 0; i < 64 && sent < total; ++i) {
            if (chunk_off == chunk_len) {
                chunk_len = std::min(chunk.size(), total - sent);
                tx.fill(chunk.data(), chunk_len);
                chunk_off = 0;
            }
            ssize_t n = eng->send(sock, chunk.data() + chunk_off, chunk_len - chunk_off, 0);
            if (n <= 0) break;
            chunk_off += size_t(n);
            sent += size_t(n);
        }
        if (sent == total && !shut) {
            eng->shutdown(sock, SHUT_WR);
            shut = true;
        }
        uint8_t buf[16384];
        for (int i = 0; i < 256; ++i) {
            ssize_t n = eng->recv(sock, buf, sizeof buf, 0);
            if (n > 0) {
                size_t bad = rx.check(buf, size_t(n));
                if (bad != size_t(n) && !corrupt) {
                    corrupt = true;
                    first_bad = received + bad;
                }
                received += size_t(n);
            } else {
                if (n == 0) eof = true;
                break;
            }
        }
    }
    bool done() const { return shut && eof; }
};

// b listens on port 80 and a connects to it: the listener's and the client's ids.
std::pair<int, int> listen_and_connect(Engine& a, Engine& b) {
    int l = b.socket();
    REQUIRE(b.bind(SockId(l), Endpoint{0, 80}) == 0);
    REQUIRE(b.listen(SockId(l), 8) == 0);
    int c = a.socket();
    REQUIRE(a.connect(SockId(c), Endpoint{kRemoteIp, 80}) == -EINPROGRESS);
    return {l, c};
}

// Both ends sent all, received all, byte-exact, and saw the other's FIN.
void check_exchange(const App& client, const App& server, size_t bytes) {
    CHECK(client.done());
    CHECK(server.done());
    CHECK(client.received == bytes);
    CHECK(server.received == bytes);
    CAPTURE(client.first_bad, server.first_bad);
    CHECK(!client.corrupt);
    CHECK(!server.corrupt);
}

// Lets TIME_WAIT and everything in flight run out, then checks nothing is left.
void drain_and_check(SimLink& link, TimeNs& now, std::initializer_list<Engine*> polled,
                     std::initializer_list<Engine*> checked) {
    for (int i = 0; i < 1'000'000; ++i) {
        TimeNs next = link.next_event();
        for (Engine* e : polled) next = std::min(next, e->next_deadline());
        if (next == ~0ull) break;
        now = std::max(now, next);
        link.advance(now);
        for (Engine* e : polled) e->poll(now);
    }
    for (Engine* e : checked) {
        CHECK(e->live_tcbs() == 0);
        CHECK(e->buffers_in_use() == 0);
        CHECK(e->timers_armed() == 0);
    }
}

EngineConfig sim_config(uint32_t ip, uint8_t mac_last, uint64_t seed) {
    EngineConfig c;
    const uint8_t m[6] = {0x02, 0, 0, 0, 0, mac_last};
    std::memcpy(c.mac, m, 6);
    c.ip = ip;
    c.netmask = 0xffff0000;
    c.msl = 1 * kSec;
    c.isn_secret[0] = seed;
    c.isn_secret[1] = ip;
    c.max_sockets = 64;
    // Fixed buffers: the seeded runs replay the same trajectories as before autotuning
    // existed (under 20 % loss the time varies several-fold with any change of timing;
    // test_buffers.cpp covers autotuning).
    c.sndbuf_max = c.sndbuf;
    c.rcvbuf_max = c.rcvbuf;
    return c;
}

}  // namespace

TEST_CASE("netsim: 8 MiB each way arrive byte-exact under loss, reordering and duplication", "[tcp][netsim]") {
    auto loss = GENERATE(0.0, 0.01, 0.05, 0.20);
    auto cc = GENERATE(CongestionControl::Cubic);
    // FASTNET_NETSIM_SEED=n shifts every seed, to try other runs of the same scenario.
    const char* shift = std::getenv("FASTNET_NETSIM_SEED");
    const uint64_t seed = 0x5eed0000ull + uint64_t(loss * 1000) +
                          (shift ? std::strtoull(shift, nullptr, 0) << 16 : 0);
    CAPTURE(loss, seed);
    const size_t kBytes = 8u << 20;

    SimLinkParams p;
    p.loss = loss;
    p.reorder = 0.02;
    p.reorder_extra = 2 * kMs;
    p.duplicate = 0.01;
    p.delay = 5 * kMs;
    p.rate_bps = 200'000'000;
    p.queue_bytes = 512 * 1024;
    SimLink link(p, p, seed);
    AnyNeighbour na(2), nb(1);
    EngineConfig ca = sim_config(kLocalIp, 1, seed), cb = sim_config(kRemoteIp, 2, seed);
    ca.cc = cb.cc = cc;
    {
        Engine a(ca, link.a(), na), b(cb, link.b(), nb);
        auto [l, c] = listen_and_connect(a, b);
        App client(a, seed, 0, kBytes), server(b, seed, 1, kBytes);

        TimeNs now = 0, connected_at = 0;
        const TimeNs limit = 3600 * kSec;
        uint64_t steps = 0;
        while (now < limit && !(client.done() && server.done())) {
            link.advance(now);
            a.poll(now);
            b.poll(now);
            if (client.sock == kNoSock && (a.events(SockId(c)) & EPOLLOUT)) {
                client.sock = SockId(c);
                connected_at = now;
            }
            if (server.sock == kNoSock) {
                int s = b.accept(SockId(l), nullptr);
                if (s >= 0) server.sock = SockId(s);
            }
            client.pump();
            server.pump();
            if (a.events(SockId(c)) & EPOLLERR) break;
            TimeNs next = std::min({link.next_event(), a.next_deadline(), b.next_deadline()});
            now = next > now ? next : now + 1000;
            ++steps;
        }
        INFO("loss " << loss << ", seed " << seed);
        check_exchange(client, server, kBytes);
        const double secs = double(now - connected_at) / 1e9;
        std::cout << "netsim loss " << loss * 100 << " %: 2 x 8 MiB in " << secs
                  << " s simulated (" << (2.0 * kBytes * 8 / secs / 1e6) << " Mbit/s total), "
                  << a.stats().retransmits + b.stats().retransmits << " retransmits, "
                  << steps << " steps, seed " << seed << "\n";

        if (!shift) {
            // Bounds for the fixed seeds (deterministic): about twice what loss recovery
            // (RFC 6675 with lost-retransmission detection and RFC 8985 TLP) needs.
            const double bound = loss == 0.0 ? 1.0 : loss < 0.02 ? 9.0 : loss < 0.1 ? 28.0 : 500.0;
            CHECK(secs <= bound);
        }

        a.close(SockId(c));
        if (server.sock != kNoSock) b.close(server.sock);
        b.close(SockId(l));
        drain_and_check(link, now, {&a, &b}, {&a, &b});
    }
    CHECK(link.in_flight() == 0);
    CHECK(link.buffers_in_use() == 0);
}

namespace {

struct ReleaseSink final : EventSink {
    int released = 0;
    Endpoint local, remote;
    void on_events(SockId, uint32_t) override {}
    void on_moved_flow_released(Endpoint l, Endpoint r) override {
        ++released;
        local = l;
        remote = r;
    }
};

}  // namespace

// Thread handoff (docs/DESIGN.md "Cross-thread use"): engines b and b2 share one device, as
// two engines share a queue through their XSKs. After the move the frames first keep
// reaching b (the stragglers the XDP program steered before its flow entry changed),
// which hands them to b2; then only b2 reads the device, as steering would have it.
TEST_CASE("netsim: a connection moved to another engine mid-transfer delivers every byte in order", "[tcp][netsim][move]") {
    const uint64_t seed = 0x30e0;
    const size_t kBytes = 4u << 20;
    SimLinkParams p;
    p.loss = 0.01;
    p.reorder = 0.02;
    p.delay = 2 * kMs;
    p.rate_bps = 200'000'000;
    SimLink link(p, p, seed);
    AnyNeighbour na(2), nb(1);
    EngineConfig ca = sim_config(kLocalIp, 1, seed), cb = sim_config(kRemoteIp, 2, seed);
    ReleaseSink sink;
    {
        Engine a(ca, link.a(), na), b(cb, link.b(), nb), b2(cb, link.b(), nb);
        b2.set_event_sink(&sink);
        auto [l, c] = listen_and_connect(a, b);
        App client(a, seed, 0, kBytes), server(b, seed, 1, kBytes);

        // What cannot move is refused, and nothing changes.
        CHECK(b.move_to(SockId(l), b2) == -EINVAL);
        CHECK(a.move_to(SockId(c), b2) == -EINVAL);

        TimeNs now = 0, moved_at = 0;
        bool moved = false, b_reads = true;
        while (now < 600 * kSec && !(client.done() && server.done())) {
            link.advance(now);
            a.poll(now);
            if (b_reads) b.poll(now);
            if (moved) b2.poll(now);   // before the move no frame of the flow is b2's
            if (moved && now - moved_at > 20 * kMs) b_reads = false;
            if (client.sock == kNoSock && (a.events(SockId(c)) & EPOLLOUT)) client.sock = SockId(c);
            if (server.sock == kNoSock) {
                int s = b.accept(SockId(l), nullptr);
                if (s >= 0) server.sock = SockId(s);
            }
            if (!moved && server.received >= kBytes / 4 && server.sent >= kBytes / 4) {
                b2.set_time(now);
                int m = b.move_to(server.sock, b2);
                REQUIRE(m >= 0);
                CHECK(b.move_to(server.sock, b2) == -EBADF);   // the old id is gone
                server.sock = SockId(m);
                server.eng = &b2;
                moved = true;
                moved_at = now;
            }
            client.pump();
            server.pump();
            if (a.events(SockId(c)) & EPOLLERR) break;
            TimeNs next = std::min({link.next_event(), a.next_deadline(), b.next_deadline(),
                                    b2.next_deadline()});
            now = next > now ? next : now + 1000;
        }
        REQUIRE(moved);
        check_exchange(client, server, kBytes);
        CHECK(b.stats().moved_out == 1);
        CHECK(b2.stats().moved_in == 1);
        CHECK(b.stats().frames_forwarded > 0);
        CHECK(a.stats().conn_reset == 0);
        CHECK(b.live_tcbs() == 1);   // the listener

        a.close(SockId(c));
        b2.close(server.sock);
        b.close(SockId(l));
        drain_and_check(link, now, {&a, &b2}, {&a, &b, &b2});
        CHECK(sink.released == 1);
        CHECK(sink.local == Endpoint{kRemoteIp, 80});
        CHECK(sink.remote.ip == kLocalIp);
    }
    CHECK(link.in_flight() == 0);
    CHECK(link.buffers_in_use() == 0);
}

// Moves between processes (docs/DESIGN.md "Processes"): b writes the connection out and
// forgets it without a segment; b2, another process's engine on the same address,
// builds it from that state. From then on only b2 reads the device (steering switched
// the flow to its slot); what was in flight is recovered by retransmission.
TEST_CASE("netsim: a connection exported mid-transfer and imported by another engine delivers every byte", "[tcp][netsim][move]") {
    const uint64_t seed = 0x30e1;
    const size_t kBytes = 4u << 20;
    SimLinkParams p;
    p.loss = 0.01;
    p.reorder = 0.02;
    p.delay = 2 * kMs;
    p.rate_bps = 200'000'000;
    SimLink link(p, p, seed);
    AnyNeighbour na(2), nb(1);
    EngineConfig ca = sim_config(kLocalIp, 1, seed), cb = sim_config(kRemoteIp, 2, seed);
    std::vector<uint8_t> blob(8u << 20);
    {
        Engine a(ca, link.a(), na), b(cb, link.b(), nb), b2(cb, link.b(), nb);
        auto [l, c] = listen_and_connect(a, b);
        App client(a, seed, 0, kBytes), server(b, seed, 1, kBytes);
        Engine::ConnState st;
        CHECK(b.export_connection(SockId(l), &st, blob.data(), blob.size()) == -EINVAL);

        TimeNs now = 0;
        bool moved = false;
        int refused = 0;
        while (now < 600 * kSec && !(client.done() && server.done())) {
            link.advance(now);
            a.poll(now);
            (moved ? b2 : b).poll(now);
            if (client.sock == kNoSock && (a.events(SockId(c)) & EPOLLOUT)) client.sock = SockId(c);
            if (server.sock == kNoSock) {
                int s = b.accept(SockId(l), nullptr);
                if (s >= 0) server.sock = SockId(s);
            }
            if (!moved && server.received >= kBytes / 4 && server.sent >= kBytes / 4) {
                int n = b.export_connection(server.sock, &st, blob.data(), blob.size());
                if (n == -EAGAIN) {
                    ++refused;              // out-of-order data: the next round
                } else {
                    REQUIRE(n >= 0);
                    CHECK(static_cast<size_t>(n) == st.snd_len + st.rcv_len);
                    b.release_exported(server.sock);
                    b2.set_time(now);
                    int m = b2.import_connection(st, blob.data());
                    REQUIRE(m >= 0);
                    CHECK(b2.import_connection(st, blob.data()) == -EEXIST);
                    server.sock = SockId(m);
                    server.eng = &b2;
                    moved = true;
                }
            }
            client.pump();
            server.pump();
            if (a.events(SockId(c)) & EPOLLERR) break;
            TimeNs next = std::min({link.next_event(), a.next_deadline(), b.next_deadline(),
                                    b2.next_deadline()});
            now = next > now ? next : now + 1000;
        }
        CAPTURE(refused);
        REQUIRE(moved);
        check_exchange(client, server, kBytes);
        CHECK(b.stats().moved_out == 1);
        CHECK(b2.stats().moved_in == 1);
        CHECK(b.stats().conn_closed == 0);     // not a close
        CHECK(a.stats().conn_reset == 0);
        CHECK(b.live_tcbs() == 1);             // the listener

        a.close(SockId(c));
        b2.close(server.sock);
        b.close(SockId(l));
        drain_and_check(link, now, {&a, &b2}, {&a, &b, &b2});
    }
    CHECK(link.in_flight() == 0);
    CHECK(link.buffers_in_use() == 0);
}
