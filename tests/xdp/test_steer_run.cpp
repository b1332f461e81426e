// The steering program run through BPF_PROG_TEST_RUN, no network: every rule picks the
// slot docs/DESIGN.md "Steering" says, and every malformed or foreign frame is passed
// with its counter.
// test → bpf_prog_test_run_opts(steer) → verdict + per-CPU counters via Steering.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "stack/xdp/steering.hpp"
#include "stack/xdp/umem.hpp"
#include "stack/xdp/xsk_device.hpp"
#include "tests/xdp/test_frames.hpp"

#ifndef AF_XDP
#define AF_XDP 44
#endif

using namespace fastnet;
using fastnet::test::FrameSpec;
using fastnet::test::build_frame;

namespace {

// A loaded program with an AF_XDP socket in slots 0..kSlots-1. test_run never delivers
// a redirected frame, so unbound sockets are enough to make the XSKMAP entries exist.
struct Fixture {
    static constexpr uint32_t kSlots = 8;
    Steering s;
    int socks[kSlots];

    Fixture()
    {
        REQUIRE(s.load() == 0);
        for (uint32_t i = 0; i < kSlots; i++) {
            socks[i] = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
            REQUIRE(socks[i] >= 0);
            INFO(s.error());
            REQUIRE(s.set_xsk(i, socks[i]) == 0);
        }
    }
    ~Fixture()
    {
        s.close();
        for (int fd : socks) close(fd);
    }

    struct Outcome {
        int verdict;
        SteerCounters delta;
    };

    Outcome run(const std::vector<uint8_t>& frame)
    {
        SteerCounters before, after;
        REQUIRE(s.read_counters(before) == 0);
        uint8_t out[256];
        LIBBPF_OPTS(bpf_test_run_opts, opts);
        opts.data_in = frame.data();
        opts.data_size_in = static_cast<uint32_t>(frame.size());
        opts.data_out = out;
        opts.data_size_out = sizeof out;
        opts.repeat = 1;
        int rc = bpf_prog_test_run_opts(s.prog_fd(), &opts);
        REQUIRE(rc == 0);
        REQUIRE(s.read_counters(after) == 0);
        Outcome o{static_cast<int>(opts.retval), {}};
        for (unsigned i = 0; i < FASTNET_CNT__COUNT; i++)
            o.delta.verdict[i] = after.verdict[i] - before.verdict[i];
        for (unsigned i = 0; i < FASTNET_MAX_SLOTS; i++)
            o.delta.slot[i] = after.slot[i] - before.slot[i];
        return o;
    }

    // Exactly one verdict counter moved, by one; returns which.
    static int single_counter(const SteerCounters& d)
    {
        int which = -1;
        for (unsigned i = 0; i < FASTNET_CNT__COUNT; i++) {
            if (d.verdict[i] == 0) continue;
            if (d.verdict[i] != 1 || which != -1) return -2;
            which = static_cast<int>(i);
        }
        return which;
    }
    static int single_slot(const SteerCounters& d)
    {
        int which = -1;
        for (unsigned i = 0; i < FASTNET_MAX_SLOTS; i++) {
            if (d.slot[i] == 0) continue;
            if (d.slot[i] != 1 || which != -1) return -2;
            which = static_cast<int>(i);
        }
        return which;
    }
};

std::vector<uint8_t> truncated(std::vector<uint8_t> f, size_t len)
{
    f.resize(len);
    return f;
}

struct PassCase {
    const char* what;
    std::vector<uint8_t> frame;
    int counter;
};

}  // namespace

TEST_CASE("frames that are not fastnet TCP go to the kernel with the counter naming why",
          "[xdp][steer]")
{
    Fixture fx;
    REQUIRE(fx.s.add_listen_slot(80, 0) == 0);  // owned, so only malformation can pass it

    FrameSpec tcp;
    auto with = [&](auto mutate) {
        FrameSpec s = tcp;
        mutate(s);
        return build_frame(s);
    };
    const auto good = build_frame(tcp);
    const size_t eth = 14, ip = 20;

    std::vector<PassCase> cases = {
        {"ARP", with([](FrameSpec& s) { s.ethertype = 0x0806; }), FASTNET_CNT_PASS_ARP},
        {"IPv6", with([](FrameSpec& s) { s.ethertype = 0x86dd; }), FASTNET_CNT_PASS_IPV6},
        {"LLDP", with([](FrameSpec& s) { s.ethertype = 0x88cc; }), FASTNET_CNT_PASS_OTHER_ETHERTYPE},
        {"UDP", with([](FrameSpec& s) { s.protocol = 17; }), FASTNET_CNT_PASS_NOT_TCP},
        {"ICMP", with([](FrameSpec& s) { s.protocol = 1; }), FASTNET_CNT_PASS_NOT_TCP},
        {"first fragment (MF)", with([](FrameSpec& s) { s.frag_off = 0x2000; }), FASTNET_CNT_PASS_FRAGMENT},
        {"later fragment", with([](FrameSpec& s) { s.frag_off = 0x00b9; }), FASTNET_CNT_PASS_FRAGMENT},
        {"UDP fragment", with([](FrameSpec& s) { s.frag_off = 0x2000; s.protocol = 17; }), FASTNET_CNT_PASS_FRAGMENT},
        {"IP version 6 in an IPv4 ethertype", with([](FrameSpec& s) { s.ip_version = 6; }), FASTNET_CNT_PASS_BAD_HEADER},
        {"IHL 4", with([](FrameSpec& s) { s.ihl = 4; }), FASTNET_CNT_PASS_BAD_HEADER},
        {"TCP data offset 4", with([](FrameSpec& s) { s.doff = 4; }), FASTNET_CNT_PASS_BAD_HEADER},
        // Frames under 14 bytes cannot be fed: BPF_PROG_TEST_RUN refuses them (EINVAL).
        {"VLAN tag cut short", truncated(with([](FrameSpec& s) { s.vlan_tpids = {0x8100}; }), eth + 2), FASTNET_CNT_PASS_TRUNC_ETH},
        {"second VLAN tag cut short", truncated(with([](FrameSpec& s) { s.vlan_tpids = {0x88a8, 0x8100}; }), eth + 6), FASTNET_CNT_PASS_TRUNC_ETH},
        {"Ethernet header only", truncated(good, eth), FASTNET_CNT_PASS_TRUNC_IP},
        {"19 bytes of IPv4", truncated(good, eth + ip - 1), FASTNET_CNT_PASS_TRUNC_IP},
        {"IPv4 options cut short", truncated(with([](FrameSpec& s) { s.ihl = 15; }), eth + 40), FASTNET_CNT_PASS_TRUNC_IP},
        {"IPv4 header only", truncated(good, eth + ip), FASTNET_CNT_PASS_TRUNC_TCP},
        {"19 bytes of TCP", truncated(good, eth + ip + 19), FASTNET_CNT_PASS_TRUNC_TCP},
        {"TCP cut short after IPv4 options", truncated(with([](FrameSpec& s) { s.ihl = 6; }), eth + 24 + 10), FASTNET_CNT_PASS_TRUNC_TCP},
        {"three VLAN tags", with([](FrameSpec& s) { s.vlan_tpids = {0x88a8, 0x8100, 0x8100}; }), FASTNET_CNT_PASS_OTHER_ETHERTYPE},
        {"unowned port", with([](FrameSpec& s) { s.dport = 22; }), FASTNET_CNT_PASS_NO_OWNER},
    };
    auto c = GENERATE_COPY(range(size_t(0), cases.size()));
    const PassCase& pc = cases[c];
    CAPTURE(pc.what, pc.frame.size());
    auto o = fx.run(pc.frame);
    CHECK(o.verdict == XDP_PASS);
    CAPTURE(Steering::counter_name(unsigned(pc.counter)));
    CHECK(Fixture::single_counter(o.delta) == pc.counter);
    CHECK(Fixture::single_slot(o.delta) == -1);
}

TEST_CASE("a listening port spreads flows over its slot set by the 4-tuple hash",
          "[xdp][steer][listen]")
{
    Fixture fx;
    const uint32_t set[] = {3, 5, 6};
    for (uint32_t slot : set) REQUIRE(fx.s.add_listen_slot(8080, slot) == 0);
    uint32_t got[8];
    REQUIRE(fx.s.listen_slots(8080, got, 8) == 3);
    const uint32_t seed = fx.s.hash_seed();

    std::map<uint32_t, int> hits;
    for (uint16_t sport = 30000; sport < 30200; sport++) {
        FrameSpec f;
        f.dport = 8080;
        f.sport = sport;
        f.saddr = htonl(0x0ad50002 + (sport % 7));
        FlowTuple t{f.saddr, f.daddr, f.sport, f.dport};
        uint32_t want = Steering::listen_slot_for(t, seed, set, 3);
        auto o = fx.run(build_frame(f));
        CAPTURE(sport, want);
        REQUIRE(o.verdict == XDP_REDIRECT);
        REQUIRE(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_LISTEN);
        REQUIRE(Fixture::single_slot(o.delta) == int(want));
        hits[want]++;
    }
    // 200 flows over 3 slots: every slot gets a fair share (binomial, p=1/3: > 40 is
    // beyond 4 sigma the wrong way only for a broken hash).
    REQUIRE(hits.size() == 3);
    for (auto& [slot, n] : hits) {
        CAPTURE(slot, n);
        CHECK(n > 40);
    }
}

TEST_CASE("the same flow always lands on the same slot, and a new seed moves new flows",
          "[xdp][steer][listen]")
{
    Fixture fx;
    for (uint32_t slot = 0; slot < 4; slot++) REQUIRE(fx.s.add_listen_slot(443, slot) == 0);
    FrameSpec f;
    f.dport = 443;
    REQUIRE(fx.s.set_hash_seed(1) == 0);
    std::vector<int> seed1;
    for (uint16_t p = 1000; p < 1032; p++) {
        f.sport = p;
        auto a = fx.run(build_frame(f));
        auto b = fx.run(build_frame(f));
        REQUIRE(Fixture::single_slot(a.delta) == Fixture::single_slot(b.delta));
        seed1.push_back(Fixture::single_slot(a.delta));
    }
    REQUIRE(fx.s.set_hash_seed(2) == 0);
    // Flows seen under seed 1 keep their recorded slot; new flows follow the new seed.
    const uint32_t set[] = {0, 1, 2, 3};
    int moved = 0;
    for (uint16_t p = 1000; p < 1032; p++) {
        f.sport = p;
        REQUIRE(Fixture::single_slot(fx.run(build_frame(f)).delta) == seed1[p - 1000]);
        f.sport = static_cast<uint16_t>(p + 5000);
        FlowTuple t{f.saddr, f.daddr, f.sport, f.dport};
        int got = Fixture::single_slot(fx.run(build_frame(f)).delta);
        REQUIRE(got == int(Steering::listen_slot_for(t, 2, set, 4)));
        moved += got != int(Steering::listen_slot_for(t, 1, set, 4));
    }
    CHECK(moved > 8);
}

TEST_CASE("an active-open port names its owner: slot = (port - base) mod nslots",
          "[xdp][steer][active]")
{
    Fixture fx;
    const uint16_t base = 50000, count = 1000;
    const uint32_t nslots = GENERATE(1u, 2u, 3u, 8u);
    REQUIRE(fx.s.set_active_range(base, count, nslots) == 0);
    const uint16_t port = GENERATE(50000, 50001, 50002, 50007, 50008, 50555, 50999);
    CAPTURE(nslots, port);
    FrameSpec f;
    f.saddr = htonl(0x0ad50063);
    f.sport = 80;
    f.dport = port;
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_REDIRECT);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_ACTIVE);
    CHECK(Fixture::single_slot(o.delta) == int((port - base) % nslots));
}

TEST_CASE("ports just outside the active-open range are not fastnet's", "[xdp][steer][active]")
{
    Fixture fx;
    REQUIRE(fx.s.set_active_range(50000, 1000, 4) == 0);
    const uint16_t port = GENERATE(49999, 51000, 65535, 1);
    CAPTURE(port);
    FrameSpec f;
    f.dport = port;
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_PASS);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_PASS_NO_OWNER);
    REQUIRE(fx.s.set_active_range(0, 0, 0) == 0);
    f.dport = 50001;
    CHECK(Fixture::single_counter(fx.run(build_frame(f)).delta) == FASTNET_CNT_PASS_NO_OWNER);
}

TEST_CASE("an exact flow wins over the active-open range and the listening port",
          "[xdp][steer][flow]")
{
    Fixture fx;
    REQUIRE(fx.s.set_active_range(50000, 1000, 2) == 0);
    REQUIRE(fx.s.add_listen_slot(80, 1) == 0);
    FrameSpec f;
    const uint16_t dport = GENERATE(50004, 80);
    CAPTURE(dport);
    f.dport = dport;
    FlowTuple t{f.saddr, f.daddr, f.sport, f.dport};
    REQUIRE(fx.s.add_flow(t, 7) == 0);
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_REDIRECT);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_FLOW);
    CHECK(Fixture::single_slot(o.delta) == 7);

    // Any other tuple of the same port still follows the port's rule.
    FrameSpec other = f;
    other.sport = uint16_t(f.sport + 1);
    auto o2 = fx.run(build_frame(other));
    CHECK(Fixture::single_counter(o2.delta) ==
          (dport == 80 ? FASTNET_CNT_REDIRECT_LISTEN : FASTNET_CNT_REDIRECT_ACTIVE));

    REQUIRE(fx.s.remove_flow(t) == 0);
    auto o3 = fx.run(build_frame(f));
    CHECK(Fixture::single_counter(o3.delta) != FASTNET_CNT_REDIRECT_FLOW);
    CHECK(fx.s.remove_flow(t) == -ENOENT);
}

TEST_CASE("VLAN-tagged and option-carrying frames are steered like plain ones",
          "[xdp][steer][vlan]")
{
    Fixture fx;
    REQUIRE(fx.s.set_active_range(50000, 100, 4) == 0);
    struct Case {
        const char* what;
        std::vector<uint16_t> tags;
        uint8_t ihl;
    };
    auto c = GENERATE(Case{"802.1Q", {0x8100}, 5}, Case{"802.1ad QinQ", {0x88a8, 0x8100}, 5},
                      Case{"IPv4 options", {}, 8}, Case{"maximal IPv4 options", {}, 15},
                      Case{"802.1Q with IPv4 options", {0x8100}, 7});
    CAPTURE(c.what);
    FrameSpec f;
    f.vlan_tpids = c.tags;
    f.ihl = c.ihl;
    f.dport = 50006;
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_REDIRECT);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_ACTIVE);
    CHECK(Fixture::single_slot(o.delta) == 2);
}

TEST_CASE("an owner slot without a socket falls back to the kernel", "[xdp][steer]")
{
    Fixture fx;
    REQUIRE(fx.s.add_listen_slot(9000, 20) == 0);  // slot 20 has no XSK
    FrameSpec f;
    f.dport = 9000;
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_PASS);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_PASS_NO_XSK);

    REQUIRE(fx.s.add_listen_slot(9001, 4) == 0);
    REQUIRE(fx.s.clear_xsk(4) == 0);
    f.dport = 9001;
    CHECK(Fixture::single_counter(fx.run(build_frame(f)).delta) == FASTNET_CNT_PASS_NO_XSK);
}

TEST_CASE("a segment of a connection the kernel holds on a listening port goes to the kernel",
          "[xdp][steer][kernel]")
{
    // A real kernel connection on 127.0.0.1 in this namespace: test_run's frames arrive
    // on its loopback device, where the program's socket lookup finds it.
    auto sa = [](uint16_t port) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        return a;
    };
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = sa(0);
    socklen_t len = sizeof a;
    REQUIRE(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(l, 4) == 0);
    REQUIRE(getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    const uint16_t port = ntohs(a.sin_port);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    int acc = accept(l, nullptr, nullptr);
    REQUIRE(acc >= 0);
    sockaddr_in ca{};
    len = sizeof ca;
    REQUIRE(getsockname(c, reinterpret_cast<sockaddr*>(&ca), &len) == 0);

    Fixture fx;
    REQUIRE(fx.s.add_listen_slot(port, 3) == 0);
    FrameSpec f;
    f.saddr = f.daddr = htonl(INADDR_LOOPBACK);
    f.sport = ntohs(ca.sin_port);
    f.dport = port;
    f.tcp_flags = 0x10;   // ACK
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_PASS);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_PASS_KERNEL_FLOW);
    // A SYN is a new flow whatever the kernel holds: steered, no lookup.
    f.tcp_flags = 0x02;
    CHECK(Fixture::single_counter(fx.run(build_frame(f)).delta) == FASTNET_CNT_REDIRECT_LISTEN);
    // An ACK of a flow the kernel does not hold (only its listener matches): steered.
    f.tcp_flags = 0x10;
    f.sport = static_cast<uint16_t>(f.sport == 65535 ? 1024 : f.sport + 1);
    o = fx.run(build_frame(f));
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_LISTEN_MISS);
    CHECK(Fixture::single_slot(o.delta) == 3);
    close(acc);
    close(c);
    close(l);
}

TEST_CASE("a flow keeps the slot recorded at its SYN whatever happens to the port's slot set",
          "[xdp][steer][listen][passive]")
{
    Fixture fx;
    for (uint32_t slot : {1u, 2u, 3u}) REQUIRE(fx.s.add_listen_slot(6379, slot) == 0);
    const uint32_t old_set[] = {1, 2, 3};
    FrameSpec f;
    f.dport = 6379;
    std::map<uint16_t, int> owner;
    for (uint16_t sport = 50000; sport < 50040; sport++) {
        f.sport = sport;
        f.tcp_flags = 0x02;
        auto o = fx.run(build_frame(f));
        REQUIRE(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_LISTEN);
        FlowTuple t{f.saddr, f.daddr, f.sport, f.dport};
        REQUIRE(Fixture::single_slot(o.delta) ==
                int(Steering::listen_slot_for(t, fx.s.hash_seed(), old_set, 3)));
        uint32_t rec = 99;
        REQUIRE(fx.s.passive_flow_slot(t, &rec) == 0);
        CHECK(int(rec) == Fixture::single_slot(o.delta));
        owner[sport] = Fixture::single_slot(o.delta);
    }
    // A fork, a worker leaving, another joining: the set is now {4, 5}.
    for (uint32_t slot : {1u, 2u, 3u}) REQUIRE(fx.s.remove_listen_slot(6379, slot) == 0);
    for (uint32_t slot : {4u, 5u}) REQUIRE(fx.s.add_listen_slot(6379, slot) == 0);
    for (auto& [sport, slot] : owner) {
        f.sport = sport;
        f.tcp_flags = 0x18;   // PSH|ACK: data of the live connection
        auto o = fx.run(build_frame(f));
        CAPTURE(sport, slot);
        CHECK(o.verdict == XDP_REDIRECT);
        CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_PASSIVE);
        CHECK(Fixture::single_slot(o.delta) == slot);
    }
    // New flows use the new set.
    for (uint16_t sport = 51000; sport < 51020; sport++) {
        f.sport = sport;
        f.tcp_flags = 0x02;
        int got = Fixture::single_slot(fx.run(build_frame(f)).delta);
        CAPTURE(sport);
        CHECK((got == 4 || got == 5));
    }
}

TEST_CASE("a retransmitted SYN keeps its slot while that slot serves the port",
          "[xdp][steer][listen][passive]")
{
    Fixture fx;
    REQUIRE(fx.s.add_listen_slot(8443, 2) == 0);
    FrameSpec f;
    f.dport = 8443;
    REQUIRE(Fixture::single_slot(fx.run(build_frame(f)).delta) == 2);
    REQUIRE(fx.s.add_listen_slot(8443, 6) == 0);
    REQUIRE(fx.s.add_listen_slot(8443, 7) == 0);
    // Whatever the hash says over {2, 6, 7}, the half-open connection is on slot 2.
    for (int i = 0; i < 3; i++) CHECK(Fixture::single_slot(fx.run(build_frame(f)).delta) == 2);
    // Slot 2 leaves: the next SYN of the flow is a new choice, and it is recorded.
    REQUIRE(fx.s.remove_listen_slot(8443, 2) == 0);
    int again = Fixture::single_slot(fx.run(build_frame(f)).delta);
    CHECK((again == 6 || again == 7));
    uint32_t rec = 99;
    REQUIRE(fx.s.passive_flow_slot(FlowTuple{f.saddr, f.daddr, f.sport, f.dport}, &rec) == 0);
    CHECK(int(rec) == again);
}

TEST_CASE("a new connection on a reused 4-tuple is hashed over the current set",
          "[xdp][steer][listen][passive]")
{
    // A client cycling through its ephemeral ports reuses 4-tuples recorded for earlier
    // connections: only the same SYN (same sequence number) follows the record; a new
    // ISN is a new choice, so a slot that joins the port gets its share at once.
    Fixture fx;
    REQUIRE(fx.s.add_listen_slot(8081, 2) == 0);
    FrameSpec f;
    f.dport = 8081;
    f.seq = 1000;
    for (uint16_t sport = 30000; sport < 30060; sport++) {
        f.sport = sport;
        REQUIRE(Fixture::single_slot(fx.run(build_frame(f)).delta) == 2);
    }
    REQUIRE(fx.s.add_listen_slot(8081, 5) == 0);
    const uint32_t set[] = {2, 5};
    int to_new = 0;
    for (uint16_t sport = 30000; sport < 30060; sport++) {
        f.sport = sport;
        const FlowTuple t{f.saddr, f.daddr, f.sport, f.dport};
        f.seq = 1000;   // the old SYN again: its half-open connection is on slot 2
        CHECK(Fixture::single_slot(fx.run(build_frame(f)).delta) == 2);
        f.seq = 7777777;   // the client's next connection on the same 4-tuple
        const int got = Fixture::single_slot(fx.run(build_frame(f)).delta);
        CAPTURE(sport);
        CHECK(got == int(Steering::listen_slot_for(t, fx.s.hash_seed(), set, 2)));
        uint32_t rec = 99;
        REQUIRE(fx.s.passive_flow_slot(t, &rec) == 0);
        CHECK(int(rec) == got);
        to_new += got == 5;
    }
    CHECK(to_new > 10);   // 60 flows over 2 slots
}

TEST_CASE("a SYN the kernel takes leaves no record, and clears an old one",
          "[xdp][steer][listen][passive]")
{
    Fixture fx;
    REQUIRE(fx.s.add_listen_slot(9100, 3) == 0);
    FrameSpec f;
    f.dport = 9100;
    const FlowTuple t{f.saddr, f.daddr, f.sport, f.dport};
    uint32_t rec = 99;
    REQUIRE(Fixture::single_slot(fx.run(build_frame(f)).delta) == 3);
    REQUIRE(fx.s.passive_flow_slot(t, &rec) == 0);
    // The only engine's socket is gone: the SYN goes to the kernel listener.
    REQUIRE(fx.s.clear_xsk(3) == 0);
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_PASS);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_PASS_NO_XSK);
    CHECK(fx.s.passive_flow_slot(t, &rec) == -ENOENT);
    // An empty set: also the kernel's, also no record.
    REQUIRE(fx.s.remove_listen_slot(9100, 3) == 0);
    REQUIRE(fx.s.set_xsk(3, fx.socks[3]) == 0);
    REQUIRE(fx.s.add_listen_slot(9101, 3) == 0);
    f.dport = 9101;
    REQUIRE(Fixture::single_slot(fx.run(build_frame(f)).delta) == 3);
    REQUIRE(fx.s.remove_listen_slot(9101, 3) == 0);
    REQUIRE(fx.s.add_listen_slot(9101, 5) == 0);
    REQUIRE(fx.s.remove_listen_slot(9101, 5) == 0);   // the port is gone from the map
    CHECK(Fixture::single_counter(fx.run(build_frame(f)).delta) == FASTNET_CNT_PASS_NO_OWNER);
}

TEST_CASE("a SYN whose hashed slot has no socket goes to the next slot of the set that has one",
          "[xdp][steer][listen]")
{
    Fixture fx;
    const uint32_t set[] = {1, 2, 3};
    for (uint32_t slot : set) REQUIRE(fx.s.add_listen_slot(8088, slot) == 0);
    // Slot 2's process was killed: the kernel dropped its socket at once, and the slot
    // stays in the set until a live process reaps it.
    REQUIRE(fx.s.clear_xsk(2) == 0);
    int to_dead = 0;
    FrameSpec f;
    f.dport = 8088;
    for (uint16_t sport = 40000; sport < 40060; sport++) {
        f.sport = sport;
        const FlowTuple t{f.saddr, f.daddr, f.sport, f.dport};
        const uint32_t hashed = Steering::listen_slot_for(t, fx.s.hash_seed(), set, 3);
        auto o = fx.run(build_frame(f));
        CAPTURE(sport, hashed);
        REQUIRE(o.verdict == XDP_REDIRECT);
        if (hashed == 2) {
            ++to_dead;
            CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_LISTEN_NEXT);
            CHECK(Fixture::single_slot(o.delta) == 3);   // the one after it in the set
        } else {
            CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_LISTEN);
            CHECK(Fixture::single_slot(o.delta) == int(hashed));
        }
        uint32_t rec = 99;
        REQUIRE(fx.s.passive_flow_slot(t, &rec) == 0);
        CHECK(int(rec) == Fixture::single_slot(o.delta));
    }
    CHECK(to_dead > 5);   // 60 flows over 3 slots
    // No slot of the set has a socket: the kernel listener takes the SYN.
    REQUIRE(fx.s.clear_xsk(1) == 0);
    REQUIRE(fx.s.clear_xsk(3) == 0);
    f.sport = 41000;
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_PASS);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_PASS_NO_XSK);
}

TEST_CASE("a segment of an unrecorded flow on a listening port is hashed and counted",
          "[xdp][steer][listen][passive]")
{
    Fixture fx;
    const uint32_t set[] = {0, 4};
    for (uint32_t slot : set) REQUIRE(fx.s.add_listen_slot(7700, slot) == 0);
    FrameSpec f;
    f.dport = 7700;
    f.tcp_flags = 0x10;
    for (uint16_t sport = 2000; sport < 2010; sport++) {
        f.sport = sport;
        auto o = fx.run(build_frame(f));
        FlowTuple t{f.saddr, f.daddr, f.sport, f.dport};
        CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_REDIRECT_LISTEN_MISS);
        CHECK(Fixture::single_slot(o.delta) == int(Steering::listen_slot_for(t, fx.s.hash_seed(), set, 2)));
        uint32_t rec;
        CHECK(fx.s.passive_flow_slot(t, &rec) == -ENOENT);   // only a SYN records
    }
}

TEST_CASE("with a local address set, frames to other addresses are not steered",
          "[xdp][steer]")
{
    Fixture fx;
    REQUIRE(fx.s.add_listen_slot(80, 0) == 0);
    REQUIRE(fx.s.set_local_ip(htonl(0x0ad50001)) == 0);
    FrameSpec f;
    CHECK(Fixture::single_counter(fx.run(build_frame(f)).delta) == FASTNET_CNT_REDIRECT_LISTEN);
    f.daddr = htonl(0x0ad50009);
    auto o = fx.run(build_frame(f));
    CHECK(o.verdict == XDP_PASS);
    CHECK(Fixture::single_counter(o.delta) == FASTNET_CNT_PASS_NOT_LOCAL);
}

TEST_CASE("listening slot sets grow, shrink and disappear with their last slot",
          "[xdp][steer][listen]")
{
    Fixture fx;
    uint32_t got[FASTNET_MAX_SLOTS];
    REQUIRE(fx.s.add_listen_slot(7000, 1) == 0);
    REQUIRE(fx.s.add_listen_slot(7000, 2) == 0);
    REQUIRE(fx.s.add_listen_slot(7000, 1) == 0);  // twice: no-op
    REQUIRE(fx.s.listen_slots(7000, got, FASTNET_MAX_SLOTS) == 2);
    CHECK(got[0] == 1);
    CHECK(got[1] == 2);
    REQUIRE(fx.s.remove_listen_slot(7000, 1) == 0);
    REQUIRE(fx.s.listen_slots(7000, got, FASTNET_MAX_SLOTS) == 1);
    CHECK(got[0] == 2);
    CHECK(fx.s.remove_listen_slot(7000, 9) == -ENOENT);
    REQUIRE(fx.s.remove_listen_slot(7000, 2) == 0);
    CHECK(fx.s.listen_slots(7000, got, FASTNET_MAX_SLOTS) == 0);
    CHECK(fx.s.add_listen_slot(7000, FASTNET_MAX_SLOTS) == -EINVAL);
    CHECK(fx.s.set_active_range(65000, 1000, 2) == -EINVAL);
    CHECK(fx.s.set_active_range(1000, 10, 0) == -EINVAL);

    FrameSpec f;
    f.dport = 7000;
    CHECK(Fixture::single_counter(fx.run(build_frame(f)).delta) == FASTNET_CNT_PASS_NO_OWNER);
}

TEST_CASE("FASTNET_ZEROCOPY accepts auto, on and off and rejects anything else clearly",
          "[xdp][config]")
{
    struct Case {
        const char* value;  // nullptr: unset
        int rc;
        ZeroCopyMode mode;
    };
    auto c = GENERATE(Case{nullptr, 0, ZeroCopyMode::Auto}, Case{"", 0, ZeroCopyMode::Auto},
                      Case{"auto", 0, ZeroCopyMode::Auto}, Case{"on", 0, ZeroCopyMode::On},
                      Case{"off", 0, ZeroCopyMode::Off}, Case{"yes", -EINVAL, ZeroCopyMode::Auto},
                      Case{"ON", -EINVAL, ZeroCopyMode::Auto}, Case{"1", -EINVAL, ZeroCopyMode::Auto});
    CAPTURE(c.value ? c.value : "(unset)");
    if (c.value) setenv("FASTNET_ZEROCOPY", c.value, 1);
    else unsetenv("FASTNET_ZEROCOPY");
    ZeroCopyMode m = ZeroCopyMode::Auto;
    char msg[128] = {};
    CHECK(zerocopy_mode_from_env(&m, msg, sizeof msg) == c.rc);
    if (c.rc == 0) CHECK(m == c.mode);
    else CHECK(std::string(msg).find("expected auto, on or off") != std::string::npos);
    unsetenv("FASTNET_ZEROCOPY");
}

TEST_CASE("a UMEM refuses bad geometry with a message and lends every frame exactly once",
          "[xdp][umem]")
{
    {
        Umem bad;
        UmemConfig c;
        c.frame_size = 3000;
        CHECK(bad.create(c) == -EINVAL);
        CHECK(std::string(bad.error()).find("frame size 3000") != std::string::npos);
        c.frame_size = 2048;
        c.fill_size = 1000;
        CHECK(bad.create(c) == -EINVAL);
    }
    Umem u;
    UmemConfig c;
    c.frame_count = 256;
    c.frame_size = 2048;
    REQUIRE(u.create(c) == 0);
    CHECK(u.free_frames() == 256);
    std::vector<uint64_t> got(300);
    REQUIRE(u.take(got.data(), 300) == 256);
    std::sort(got.begin(), got.begin() + 256);
    for (uint32_t i = 0; i < 256; i++) REQUIRE(got[i] == uint64_t(i) * 2048);
    CHECK(u.take(got.data(), 1) == 0);
    // Back they come, one of them with an offset into its chunk as RX descriptors carry:
    // the pool stores chunk addresses, so the next round lends the same 256 again.
    for (uint32_t i = 0; i < 256; i++) {
        uint64_t a = got[i] + (i == 5 ? 256 : 0);
        u.give(&a, 1);
    }
    CHECK(u.free_frames() == 256);
    REQUIRE(u.take(got.data(), 256) == 256);
    std::sort(got.begin(), got.begin() + 256);
    for (uint32_t i = 0; i < 256; i++) REQUIRE(got[i] == uint64_t(i) * 2048);
    u.give(got.data(), 256);
    CHECK(u.mode() == XskMode::Unbound);
    CHECK(u.destroy() == 0);
}

int main(int argc, char** argv)
{
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: BPF_PROG_TEST_RUN of the steering program needs root\n");
        return 77;
    }
    return Catch::Session().run(argc, argv);
}
