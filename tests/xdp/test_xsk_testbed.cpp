// The AF_XDP device on the namespace test bed: three XSKs share one UMEM on queue 0 of
// the server veth; SYNs from the client namespace land on exactly the slot each steering
// rule names; TX from an XSK reaches the client; kernel TCP and ping keep working; a
// SIGKILLed owner leaves no program behind. Run under tests/testbed/with-testbed.sh.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <map>
#include <vector>

#include "stack/xdp/steering.hpp"
#include "stack/xdp/umem.hpp"
#include "stack/xdp/xsk_device.hpp"
#include "tests/xdp/testbed_util.hpp"

using namespace fastnet;
using namespace fastnet::test;

namespace {

Bed g_bed;

constexpr uint32_t kEngines = 3;

// Steering + UMEM + one XSK per slot, all in the server namespace.
struct Node {
    Steering steer;
    Umem umem;
    XskDevice xsk[kEngines];

    int up(uint32_t engines = kEngines)
    {
        int ifindex = static_cast<int>(if_nametoindex(g_bed.if_srv.c_str()));
        if (ifindex <= 0) return -ENODEV;
        if (int e = steer.attach(ifindex)) { UNSCOPED_INFO(steer.error()); return e; }
        UmemConfig uc;
        uc.frame_count = 4096;
        if (int e = umem.create(uc)) { UNSCOPED_INFO(umem.error()); return e; }
        for (uint32_t i = 0; i < engines; i++) {
            XskConfig xc;
            xc.ifname = g_bed.if_srv.c_str();
            xc.queue = 0;
            if (int e = xsk[i].open(umem, xc)) { UNSCOPED_INFO(xsk[i].error()); return e; }
            if (int e = steer.set_xsk(i, xsk[i].fd())) { UNSCOPED_INFO(steer.error()); return e; }
        }
        return 0;
    }
    ~Node()
    {
        steer.close();
        for (auto& x : xsk) x.close();
        umem.destroy();
    }

    // Drains every XSK until `want` TCP frames arrived or timeout; returns frames per slot.
    std::map<uint32_t, std::vector<TcpTuple>> collect(size_t want, int timeout_ms)
    {
        std::map<uint32_t, std::vector<TcpTuple>> got;
        size_t total = 0;
        for (int waited = 0; waited < timeout_ms && total < want; waited += 5) {
            for (uint32_t i = 0; i < kEngines; i++) {
                if (!xsk[i].is_open()) continue;
                Frame f[32];
                size_t n = xsk[i].rx_burst(f, 32);
                for (size_t k = 0; k < n; k++) {
                    TcpTuple t = parse_tcp(f[k].data, f[k].len);
                    if (t.ok) { got[i].push_back(t); total++; }
                }
                xsk[i].rx_release(f, n);
            }
            usleep(5000);
        }
        return got;
    }
};

// Every frame of the UMEM is somewhere we can count: the shared free list, the fill
// ring, or a device's private cache (RX and TX rings drained by the caller).
uint32_t accounted_frames(Node& n)
{
    uint32_t sum = n.umem.free_frames() + n.umem.fill_level();
    for (auto& x : n.xsk)
        if (x.is_open()) sum += x.cached_frames();
    return sum;
}

bool has_xdp_prog()
{
    std::string out = sh("ip -n " + g_bed.ns_srv + " link show dev " + g_bed.if_srv);
    return out.find("prog/xdp") != std::string::npos;
}

// A kernel TCP server in the server namespace that echoes one message per connection.
struct KernelEcho {
    int lfd = -1;
    pid_t pid = -1;
    explicit KernelEcho(uint16_t port)
    {
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        REQUIRE(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(listen(lfd, 16) == 0);
        pid = fork();
        if (pid == 0) {
            for (;;) {
                int c = accept(lfd, nullptr, nullptr);
                if (c < 0) _exit(0);
                char buf[64];
                ssize_t r = read(c, buf, sizeof buf);
                if (r > 0) (void)!write(c, buf, size_t(r));
                close(c);
            }
        }
    }
    ~KernelEcho()
    {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        close(lfd);
    }
};

}  // namespace

TEST_CASE("three XSKs share one UMEM on one queue and report the mode they bound in",
          "[xdp][testbed]")
{
    Node n;
    REQUIRE(n.up() == 0);
    CHECK(n.steer.attached_native());
    // veth has no AF_XDP zero-copy: auto falls back to copy (docs/DESIGN.md "Copy mode,
    // zero-copy and the TX kick").
    CHECK(n.xsk[0].mode() == XskMode::Copy);
    for (uint32_t i = 1; i < kEngines; i++) {
        CHECK(n.xsk[i].mode() == XskMode::Copy);
        CHECK(n.xsk[i].fd() != n.xsk[0].fd());
    }
    CHECK(n.umem.fill_level() > 0);
    CHECK(has_xdp_prog());
}

TEST_CASE("FASTNET_ZEROCOPY=on fails clearly on a driver without zero-copy", "[xdp][testbed]")
{
    Umem umem;
    REQUIRE(umem.create() == 0);
    XskDevice x;
    XskConfig xc;
    xc.ifname = g_bed.if_srv.c_str();
    xc.zerocopy = ZeroCopyMode::On;
    int rc = x.open(umem, xc);
    CAPTURE(x.error());
    CHECK(rc < 0);
    CHECK(std::string(x.error()).find("FASTNET_ZEROCOPY=on") != std::string::npos);
    // The UMEM stays usable: copy mode binds after the refused zero-copy attempt.
    xc.zerocopy = ZeroCopyMode::Off;
    REQUIRE(x.open(umem, xc) == 0);
    CHECK(x.mode() == XskMode::Copy);
}

TEST_CASE("SYNs from the client reach exactly the XSK of the slot the rules name",
          "[xdp][testbed]")
{
    Node n;
    REQUIRE(n.up() == 0);
    const uint16_t kListen = 7777, kAoBase = 40000;
    for (uint32_t i = 0; i < kEngines; i++) REQUIRE(n.steer.add_listen_slot(kListen, i) == 0);
    REQUIRE(n.steer.set_active_range(kAoBase, 1000, kEngines) == 0);
    const uint32_t set[] = {0, 1, 2};
    const uint32_t seed = n.steer.hash_seed();

    // 24 listening-port flows, 6 active-open ports, 2 exact flows overriding the hash.
    std::vector<uint16_t> sports, dports;
    std::vector<uint32_t> want;
    for (uint16_t i = 0; i < 24; i++) {
        uint16_t sp = uint16_t(33000 + i * 7);
        sports.push_back(sp);
        dports.push_back(kListen);
        want.push_back(Steering::listen_slot_for({g_bed.cli_ip(), g_bed.srv_ip(), sp, kListen},
                                                 seed, set, 3));
    }
    for (uint16_t p : {40000, 40001, 40002, 40004, 40008, 40999}) {
        sports.push_back(uint16_t(34000 + p % 1000));
        dports.push_back(p);
        want.push_back((p - kAoBase) % kEngines);
    }
    for (uint16_t sp : {35001, 35002}) {
        FlowTuple t{g_bed.cli_ip(), g_bed.srv_ip(), sp, kListen};
        uint32_t hashed = Steering::listen_slot_for(t, seed, set, 3);
        uint32_t moved = (hashed + 1) % kEngines;
        REQUIRE(n.steer.add_flow(t, moved) == 0);
        sports.push_back(sp);
        dports.push_back(kListen);
        want.push_back(moved);
    }

    pid_t c = spawn_in(g_bed.ns_cli, [&] {
        return send_syns(g_bed.ip_cli, g_bed.ip_srv, sports.data(), dports.data(),
                         int(sports.size()), 500);
    });
    auto got = n.collect(sports.size(), 3000);
    REQUIRE(reap(c, 5000) == 0);

    std::map<std::pair<uint16_t, uint16_t>, uint32_t> expected;
    for (size_t i = 0; i < sports.size(); i++) expected[{sports[i], dports[i]}] = want[i];
    size_t seen = 0;
    std::map<std::pair<uint16_t, uint16_t>, int> per_flow;
    for (auto& [slot, frames] : got) {
        for (auto& t : frames) {
            CAPTURE(slot, t.sport, t.dport);
            auto it = expected.find({t.sport, t.dport});
            REQUIRE(it != expected.end());
            CHECK(it->second == slot);
            CHECK((t.flags & 0x02) != 0);  // SYN
            per_flow[{t.sport, t.dport}]++;
            seen++;
        }
    }
    CHECK(per_flow.size() == expected.size());
    SteerCounters sc;
    REQUIRE(n.steer.read_counters(sc) == 0);
    CHECK(sc.verdict[FASTNET_CNT_REDIRECT_LISTEN] >= 24);
    CHECK(sc.verdict[FASTNET_CNT_REDIRECT_ACTIVE] >= 6);
    CHECK(sc.verdict[FASTNET_CNT_REDIRECT_FLOW] >= 2);
    CHECK(sc.verdict[FASTNET_CNT_REDIRECT_LISTEN] + sc.verdict[FASTNET_CNT_REDIRECT_ACTIVE] +
              sc.verdict[FASTNET_CNT_REDIRECT_FLOW] == seen);
    CHECK(accounted_frames(n) == n.umem.frame_count());
}

TEST_CASE("a forked child binds its own XSK to the inherited UMEM and gets its slot's flows",
          "[xdp][testbed][fork]")
{
    Node n;
    REQUIRE(n.up(1) == 0);
    const uint16_t kPort = 7900;
    REQUIRE(n.steer.add_listen_slot(kPort, 0) == 0);
    REQUIRE(n.steer.add_listen_slot(kPort, 1) == 0);
    const uint32_t set[] = {0, 1};
    const uint32_t seed = n.steer.hash_seed();
    std::vector<uint16_t> sports, dports;
    int want_child = 0, want_parent = 0;
    for (uint16_t sp = 36000; sp < 36020; sp++) {
        sports.push_back(sp);
        dports.push_back(kPort);
        uint32_t slot = Steering::listen_slot_for({g_bed.cli_ip(), g_bed.srv_ip(), sp, kPort},
                                                  seed, set, 2);
        (slot == 1 ? want_child : want_parent)++;
    }
    REQUIRE(want_child > 0);
    REQUIRE(want_parent > 0);

    int ready[2], result[2];
    REQUIRE(pipe(ready) == 0);
    REQUIRE(pipe(result) == 0);
    pid_t child = fork();
    if (child == 0) {
        // The child: new XSK with XDP_SHARED_UMEM on the inherited UMEM, slot 1.
        XskDevice mine;
        XskConfig xc;
        xc.ifname = g_bed.if_srv.c_str();
        if (mine.open(n.umem, xc) || n.steer.set_xsk(1, mine.fd())) _exit(2);
        (void)!write(ready[1], "r", 1);
        int got = 0;
        for (int i = 0; i < 400 && got < want_child; i++) {
            Frame f[16];
            size_t k = mine.rx_burst(f, 16);
            for (size_t j = 0; j < k; j++) {
                TcpTuple t = parse_tcp(f[j].data, f[j].len);
                if (t.ok && t.dport == kPort) got++;
            }
            mine.rx_release(f, k);
            usleep(5000);
        }
        mine.close();
        (void)!write(result[1], &got, sizeof got);
        _exit(0);
    }
    char r = 0;
    REQUIRE(read(ready[0], &r, 1) == 1);
    pid_t c = spawn_in(g_bed.ns_cli, [&] {
        return send_syns(g_bed.ip_cli, g_bed.ip_srv, sports.data(), dports.data(),
                         int(sports.size()), 500);
    });
    auto got = n.collect(size_t(want_parent), 3000);
    REQUIRE(reap(c, 5000) == 0);
    int child_got = -1;
    REQUIRE(read(result[0], &child_got, sizeof child_got) == sizeof child_got);
    REQUIRE(reap(child, 5000) == 0);
    CHECK(child_got == want_child);
    CHECK(got[0].size() == size_t(want_parent));
    // The child returned its frames to the shared pool before it left.
    CHECK(accounted_frames(n) == n.umem.frame_count());
    for (int fd : {ready[0], ready[1], result[0], result[1]}) close(fd);
}

TEST_CASE("after every XSK closed, a new one joins the same UMEM and receives",
          "[xdp][testbed]")
{
    Node n;
    REQUIRE(n.up(2) == 0);
    for (uint32_t i = 0; i < 2; i++) {
        REQUIRE(n.steer.clear_xsk(i) == 0);
        n.xsk[i].close();
    }
    XskConfig xc;
    xc.ifname = g_bed.if_srv.c_str();
    REQUIRE(n.xsk[2].open(n.umem, xc) == 0);
    REQUIRE(n.steer.set_xsk(2, n.xsk[2].fd()) == 0);
    REQUIRE(n.steer.set_active_range(41000, 100, 3) == 0);
    const uint16_t sport = 37000, dport = 41002;  // slot (41002 - 41000) % 3 = 2
    pid_t c = spawn_in(g_bed.ns_cli, [&] {
        return send_syns(g_bed.ip_cli, g_bed.ip_srv, &sport, &dport, 1, 300);
    });
    auto got = n.collect(1, 3000);
    REQUIRE(reap(c, 5000) == 0);
    REQUIRE(got[2].size() == 1);
    CHECK(got[2][0].dport == dport);
    CHECK(accounted_frames(n) == n.umem.frame_count());
}

TEST_CASE("a second program cannot take over an interface that has one", "[xdp][testbed]")
{
    Node n;
    REQUIRE(n.up(1) == 0);
    Steering other;
    int rc = other.attach(static_cast<int>(if_nametoindex(g_bed.if_srv.c_str())));
    CAPTURE(other.error());
    CHECK(rc == -EBUSY);
    CHECK(std::string(other.error()).find("another XDP program") != std::string::npos);
}

TEST_CASE("a frame sent through an XSK reaches a socket in the client namespace",
          "[xdp][testbed]")
{
    Node n;
    REQUIRE(n.up(2) == 0);
    const uint16_t kPort = 9999;
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    pid_t c = spawn_in(g_bed.ns_cli, [&] {
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(kPort);
        if (bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a)) return 2;
        (void)!write(pipefd[1], "r", 1);
        timeval tv{3, 0};
        setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[64];
        ssize_t r = recv(u, buf, sizeof buf, 0);
        return r == 11 && memcmp(buf, "hello world", 11) == 0 ? 0 : 3;
    });
    char r;
    REQUIRE(read(pipefd[0], &r, 1) == 1);

    // Ethernet / IPv4 / UDP (checksum 0: none, RFC 768) from slot 1's XSK.
    Frame f;
    REQUIRE(n.xsk[1].tx_alloc(&f, 1) == 1);
    REQUIRE(n.xsk[1].tx_capacity() >= 1500);
    uint8_t* p = f.data;
    REQUIRE(parse_mac(g_bed.mac_cli, p));
    REQUIRE(parse_mac(g_bed.mac_srv, p + 6));
    p[12] = 0x08; p[13] = 0x00;
    uint8_t* ip = p + 14;
    const size_t udp_len = 8 + 11;
    memset(ip, 0, 20);
    ip[0] = 0x45; ip[2] = uint8_t((20 + udp_len) >> 8); ip[3] = uint8_t(20 + udp_len);
    ip[8] = 64; ip[9] = 17;
    uint32_t s = g_bed.srv_ip(), d = g_bed.cli_ip();
    memcpy(ip + 12, &s, 4);
    memcpy(ip + 16, &d, 4);
    uint16_t ck = ip_checksum(ip, 20);
    ip[10] = uint8_t(ck >> 8); ip[11] = uint8_t(ck);
    uint8_t* udp = ip + 20;
    udp[0] = 0x30; udp[1] = 0x39;  // 12345
    udp[2] = uint8_t(kPort >> 8); udp[3] = uint8_t(kPort);
    udp[4] = 0; udp[5] = uint8_t(udp_len); udp[6] = 0; udp[7] = 0;
    memcpy(udp + 8, "hello world", 11);
    f.len = uint32_t(14 + 20 + udp_len);
    n.xsk[1].tx_submit(&f, 1);
    n.xsk[1].tx_flush();
    CHECK(reap(c, 5000) == 0);
    CHECK(n.xsk[1].stats().tx_frames == 1);
    CHECK(n.xsk[1].stats().tx_kicks >= 1);
    // The frame comes back to the pool through the shared completion ring.
    for (int i = 0; i < 100 && n.xsk[1].tx_pending(); i++) { n.xsk[1].tx_flush(); usleep(1000); }
    CHECK(n.xsk[1].tx_pending() == 0);
    CHECK(accounted_frames(n) == n.umem.frame_count());
    close(pipefd[0]);
    close(pipefd[1]);
}

TEST_CASE("kernel TCP on an unowned port and ping keep working while the program is attached",
          "[xdp][testbed]")
{
    Node n;
    REQUIRE(n.up() == 0);
    REQUIRE(n.steer.add_listen_slot(7777, 0) == 0);
    KernelEcho echo(7000);
    pid_t c = spawn_in(g_bed.ns_cli, [&] {
        for (int i = 0; i < 3; i++)
            if (int rc = kernel_tcp_roundtrip(g_bed.ip_srv, 7000, "kernel says hi")) return rc;
        return 0;
    });
    CHECK(reap(c, 10000) == 0);
    int ping = system(("ip netns exec " + g_bed.ns_cli + " ping -n -q -c 3 -i 0.2 -W 1 " +
                       g_bed.ip_srv + " >/dev/null").c_str());
    CHECK(ping == 0);
    SteerCounters sc;
    REQUIRE(n.steer.read_counters(sc) == 0);
    CHECK(sc.verdict[FASTNET_CNT_PASS_NO_OWNER] > 0);
    CHECK(sc.verdict[FASTNET_CNT_PASS_NOT_TCP] >= 3);  // ICMP echo requests
    CHECK(has_xdp_prog());
}

TEST_CASE("a SIGKILLed owner leaves no XDP program, and its port is the kernel's again",
          "[xdp][testbed][crash]")
{
    const uint16_t kPort = 7788;
    KernelEcho echo(kPort);  // a kernel server on the port fastnet is about to own
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t owner = fork();
    if (owner == 0) {
        close(ready[0]);
        Node n;
        if (n.up() != 0) _exit(2);
        for (uint32_t i = 0; i < kEngines; i++)
            if (n.steer.add_listen_slot(kPort, i)) _exit(3);
        (void)!write(ready[1], "r", 1);
        for (;;) pause();
    }
    close(ready[1]);
    char r = 0;
    REQUIRE(read(ready[0], &r, 1) == 1);
    close(ready[0]);
    CHECK(has_xdp_prog());
    // While owned, the SYNs go to the XSKs (which nobody reads): the kernel never answers.
    pid_t c = spawn_in(g_bed.ns_cli, [&] { return kernel_tcp_roundtrip(g_bed.ip_srv, kPort, "x"); });
    CHECK(reap(c, 5000) != 0);

    kill(owner, SIGKILL);
    int st = 0;
    REQUIRE(waitpid(owner, &st, 0) == owner);
    REQUIRE(WIFSIGNALED(st));
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = !has_xdp_prog();
        if (!gone) usleep(20000);
    }
    CHECK(gone);
    c = spawn_in(g_bed.ns_cli, [&] { return kernel_tcp_roundtrip(g_bed.ip_srv, kPort, "back"); });
    CHECK(reap(c, 10000) == 0);
}

int main(int argc, char** argv)
{
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: the AF_XDP test-bed tests need root\n");
        return 77;
    }
    g_bed = Bed::from_env();
    if (!g_bed.ok) {
        fprintf(stderr, "SKIP: no test bed (run under tests/testbed/with-testbed.sh)\n");
        return 77;
    }
    if (int e = enter_netns(g_bed.ns_srv)) {
        fprintf(stderr, "cannot enter %s: %s\n", g_bed.ns_srv.c_str(), strerror(-e));
        return 1;
    }
    return Catch::Session().run(argc, argv);
}
