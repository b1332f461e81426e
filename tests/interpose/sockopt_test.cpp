// Socket options on accelerated sockets, preloaded in the test bed's server namespace
// (accel_testbed.sh) against the kernel peers of peer.py in the client namespace.
// Rejected calls: every case runs on a fastnet socket and on a kernel socket of the same
// family in the same state, made in this program with raw syscalls (which the library
// does not see), and must fail with the same errno while the fastnet socket stays
// fastnet's (its fd is the library's placeholder, the handover counter does not move,
// and the socket still carries traffic with no kernel socket for the flow in `ss`).
// TCP_INFO: today's struct tcp_info, truncated like Linux, with sane values on a live
// connection, checked against the kernel peer's view of the same flow (`ss -ti`).
// Environment: FASTNET_TEST_PEER, FASTNET_TEST_LOCAL, FASTNET_TEST_BASE,
// FASTNET_TEST_CLI_NS, FASTNET_TEST_STAT.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <climits>
#include <linux/net_tstamp.h>
#include <linux/tcp.h>   // today's struct tcp_info (glibc's <netinet/tcp.h> has 104 bytes)
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/uio.h>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "fastnet_fd.hpp"

namespace {

const char* env(const char* n) {
    const char* v = getenv(n);
    if (!v) FAIL("missing " << n << " (run through accel_testbed.sh)");
    return v;
}

constexpr int kTcpEstablished = 1;   // include/net/tcp_states.h

uint16_t base() { return static_cast<uint16_t>(atoi(env("FASTNET_TEST_BASE"))); }
uint16_t echo_port() { return base() + 1; }
uint16_t silent_port() { return base() + 3; }

// An address of `family` (AF_INET6: the IPv4-mapped form) in a sockaddr_storage.
socklen_t make_addr(int family, const char* ip4, uint16_t port, sockaddr_storage* ss) {
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        inet_pton(AF_INET, ip4, &a->sin_addr);
        return sizeof *a;
    }
    auto* a = reinterpret_cast<sockaddr_in6*>(ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    std::string m = std::string("::ffff:") + ip4;
    inet_pton(AF_INET6, m.c_str(), &a->sin6_addr);
    return sizeof *a;
}

sockaddr* sa(sockaddr_storage& s) { return reinterpret_cast<sockaddr*>(&s); }

std::string run(const std::string& cmd) {
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    return out;
}

// One counter of this process as fastnet-stat reports it (published every 10 ms).
long stat_counter(const char* name) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --json %d | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"%s\"])'",
             env("FASTNET_TEST_STAT"), getpid(), name);
    return std::stol(run(cmd));
}

// Kernel TCP sockets of this (server) namespace for a port, listeners left out.
std::string kernel_flows(uint16_t port) {
    return run("ss -Htan '( sport = :" + std::to_string(port) + " or dport = :" + std::to_string(port) +
               " )' | grep -v LISTEN");
}

// Kernel sockets of this namespace for the flow of connected socket fd (by its local
// port, which only that flow uses).
std::string kernel_flows_of(int fd) {
    sockaddr_storage local{};
    socklen_t l = sizeof local;
    REQUIRE(getsockname(fd, sa(local), &l) == 0);
    uint16_t port = ntohs(local.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&local)->sin_port
                                                     : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    REQUIRE(port != 0);
    return run("ss -Htan 'sport = :" + std::to_string(port) + "'");
}

// Kernel sockets, made behind the library's back.
int ksocket(int family) { return static_cast<int>(syscall(SYS_socket, family, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

enum State { Fresh = 1, Listening = 2, Connected = 4 };
const char* state_name(int s) { return s == Fresh ? "fresh" : s == Listening ? "listening" : "connected"; }

// A fastnet socket and a kernel socket of `family`, both in `state`.
struct Pair {
    int fast = -1, kern = -1;
    uint16_t port = 0;   // the fastnet listener's port
    ~Pair() {
        if (fast >= 0) close(fast);
        if (kern >= 0) close(kern);
    }
};

void make_pair(int family, int state, uint16_t lport, Pair* p) {
    p->fast = socket(family, SOCK_STREAM, 0);
    p->kern = ksocket(family);
    REQUIRE(p->fast >= 0);
    REQUIRE(p->kern >= 0);
    REQUIRE(served_by_fastnet(p->fast));
    int one = 1;
    sockaddr_storage a;
    if (state == Listening) {
        p->port = lport;
        setsockopt(p->fast, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        socklen_t l = make_addr(family, env("FASTNET_TEST_LOCAL"), lport, &a);
        REQUIRE(bind(p->fast, sa(a), l) == 0);
        REQUIRE(listen(p->fast, 16) == 0);
        syscall(SYS_setsockopt, p->kern, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        l = make_addr(family, env("FASTNET_TEST_LOCAL"), lport + 1, &a);
        REQUIRE(syscall(SYS_bind, p->kern, sa(a), l) == 0);
        REQUIRE(syscall(SYS_listen, p->kern, 16) == 0);
    } else if (state == Connected) {
        socklen_t l = make_addr(family, env("FASTNET_TEST_PEER"), echo_port(), &a);
        REQUIRE(connect(p->fast, sa(a), l) == 0);
        // The kernel's connection goes to the silent peer: `ss` for the echo port then
        // sees fastnet's flow only.
        l = make_addr(family, env("FASTNET_TEST_PEER"), silent_port(), &a);
        REQUIRE(syscall(SYS_connect, p->kern, sa(a), l) == 0);
    }
    REQUIRE(served_by_fastnet(p->fast));
}

// One rejected call: level, name, the bytes of the value and the length passed.
struct Case {
    const char* what;
    int family;
    int states;
    int level, name;
    std::vector<uint8_t> val;
    socklen_t len;          // may differ from val.size(): bad lengths
    bool null_val = false;
};

std::vector<uint8_t> int_bytes(int v) {
    std::vector<uint8_t> b(sizeof v);
    memcpy(b.data(), &v, sizeof v);
    return b;
}
std::vector<uint8_t> str_bytes(const char* s) { return std::vector<uint8_t>(s, s + strlen(s)); }
std::vector<uint8_t> timeval_bytes(long sec, long usec) {
    timeval tv{sec, usec};
    std::vector<uint8_t> b(sizeof tv);
    memcpy(b.data(), &tv, sizeof tv);
    return b;
}

constexpr int kAll = Fresh | Listening | Connected;

const std::vector<Case>& cases() {
    static const std::vector<Case> c = {
        // Wrong level for the family, or for TCP.
        {"IPV6_V6ONLY on an AF_INET socket", AF_INET, kAll, IPPROTO_IPV6, IPV6_V6ONLY, int_bytes(1), 4},
        {"IPV6_TCLASS on an AF_INET socket", AF_INET, kAll, IPPROTO_IPV6, IPV6_TCLASS, int_bytes(0x10), 4},
        {"UDP_CORK on a TCP socket", AF_INET, kAll, IPPROTO_UDP, 1 /* UDP_CORK */, int_bytes(1), 4},
        {"an unknown level", AF_INET6, kAll, 4242, 1, int_bytes(1), 4},
        // Bad length (optlen too short).
        {"TCP_NODELAY with 2 bytes", AF_INET, kAll, IPPROTO_TCP, TCP_NODELAY, int_bytes(1), 2},
        {"TCP_KEEPIDLE with 0 bytes", AF_INET, kAll, IPPROTO_TCP, TCP_KEEPIDLE, int_bytes(60), 0},
        {"TCP_CORK with 2 bytes", AF_INET, kAll, IPPROTO_TCP, TCP_CORK, int_bytes(1), 2},
        {"TCP_USER_TIMEOUT with 1 byte", AF_INET6, kAll, IPPROTO_TCP, TCP_USER_TIMEOUT, int_bytes(1000), 1},
        {"SO_LINGER with 4 bytes", AF_INET, kAll, SOL_SOCKET, SO_LINGER, int_bytes(1), 4},
        {"SO_RCVTIMEO with 8 bytes", AF_INET, kAll, SOL_SOCKET, SO_RCVTIMEO, timeval_bytes(1, 0), 8},
        {"SO_KEEPALIVE with 2 bytes", AF_INET, kAll, SOL_SOCKET, SO_KEEPALIVE, int_bytes(1), 2},
        {"IPV6_V6ONLY with 2 bytes", AF_INET6, Fresh, IPPROTO_IPV6, IPV6_V6ONLY, int_bytes(1), 2},
        {"a negative optlen", AF_INET, kAll, IPPROTO_TCP, TCP_NODELAY, int_bytes(1), static_cast<socklen_t>(-1)},
        // Bad value.
        {"TCP_KEEPCNT 0", AF_INET, kAll, IPPROTO_TCP, TCP_KEEPCNT, int_bytes(0), 4},
        {"TCP_KEEPIDLE 40000", AF_INET, kAll, IPPROTO_TCP, TCP_KEEPIDLE, int_bytes(40000), 4},
        {"TCP_KEEPINTVL -1", AF_INET6, kAll, IPPROTO_TCP, TCP_KEEPINTVL, int_bytes(-1), 4},
        {"TCP_MAXSEG 40000", AF_INET, kAll, IPPROTO_TCP, TCP_MAXSEG, int_bytes(40000), 4},
        {"TCP_MAXSEG 50", AF_INET, kAll, IPPROTO_TCP, TCP_MAXSEG, int_bytes(50), 4},
        {"IP_TTL 0", AF_INET, kAll, IPPROTO_IP, IP_TTL, int_bytes(0), 4},
        {"IP_MTU_DISCOVER 99", AF_INET, kAll, IPPROTO_IP, IP_MTU_DISCOVER, int_bytes(99), 4},
        {"TCP_CONGESTION of an unknown algorithm", AF_INET, kAll, IPPROTO_TCP, TCP_CONGESTION, str_bytes("nosuchcc"), 8},
        {"SO_RCVTIMEO with 2 000 000 us", AF_INET, kAll, SOL_SOCKET, SO_RCVTIMEO, timeval_bytes(0, 2000000), 16},
        {"IPV6_UNICAST_HOPS 300", AF_INET6, kAll, IPPROTO_IPV6, IPV6_UNICAST_HOPS, int_bytes(300), 4},
        // NULL optval.
        {"TCP_NODELAY with a NULL value", AF_INET, kAll, IPPROTO_TCP, TCP_NODELAY, {}, 4, true},
        {"TCP_CORK with a NULL value", AF_INET, kAll, IPPROTO_TCP, TCP_CORK, {}, 4, true},
        {"IP_TOS with a NULL value", AF_INET, kAll, IPPROTO_IP, IP_TOS, {}, 4, true},
        {"SO_SNDTIMEO with a NULL value", AF_INET, kAll, SOL_SOCKET, SO_SNDTIMEO, {}, 16, true},
        // Wrong state.
        {"IPV6_V6ONLY once bound", AF_INET6, Listening | Connected, IPPROTO_IPV6, IPV6_V6ONLY, int_bytes(1), 4},
        {"TCP_FASTOPEN on a connection", AF_INET, Connected, IPPROTO_TCP, TCP_FASTOPEN, int_bytes(5), 4},
        {"TCP_FASTOPEN_CONNECT on a connection", AF_INET, Connected, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, int_bytes(1), 4},
        {"TCP_REPAIR_QUEUE outside repair mode", AF_INET, kAll, IPPROTO_TCP, TCP_REPAIR_QUEUE, int_bytes(1), 4},
    };
    return c;
}

// Runs every case for (family, state) and returns how many ran.
int run_cases(int family, int state, uint16_t lport, Pair* p) {
    int n = 0;
    for (const Case& c : cases()) {
        if (c.family != family || !(c.states & state)) continue;
        CAPTURE(c.what, state_name(state));
        const void* v = c.null_val ? nullptr : c.val.data();
        errno = 0;
        long kr = syscall(SYS_setsockopt, p->kern, c.level, c.name, v, c.len);
        int kerr = errno;
        REQUIRE(kr == -1);   // the case is a rejection on the kernel, or it is a bad case
        errno = 0;
        int fr = setsockopt(p->fast, c.level, c.name, v, c.len);
        int ferr = errno;
        CHECK(fr == -1);
        CHECK(strerrorname_np(ferr) == std::string(strerrorname_np(kerr)));
        CHECK(served_by_fastnet(p->fast));
        ++n;
    }
    (void)lport;
    return n;
}

// The fastnet socket still does its job on the engine after the rejected calls.
void check_still_accelerated(int family, int state, Pair* p) {
    if (state == Fresh) {
        sockaddr_storage a;
        socklen_t l = make_addr(family, env("FASTNET_TEST_PEER"), echo_port(), &a);
        REQUIRE(connect(p->fast, sa(a), l) == 0);
        state = Connected;
    }
    if (state == Connected) {
        const char msg[] = "still fastnet's";
        REQUIRE(send(p->fast, msg, sizeof msg, 0) == static_cast<ssize_t>(sizeof msg));
        char back[sizeof msg] = {};
        REQUIRE(recv(p->fast, back, sizeof back, MSG_WAITALL) == static_cast<ssize_t>(sizeof back));
        CHECK(memcmp(back, msg, sizeof msg) == 0);
        CHECK(served_by_fastnet(p->fast));
        CHECK(kernel_flows_of(p->fast).empty());
        return;
    }
    // Listening: a kernel client from the client namespace is accepted by the engine.
    long accepted = stat_counter("conn_accepted");
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD ip netns exec %s /usr/bin/python3 -c 'import socket,time; "
             "s=socket.create_connection((\"%s\",%u)); time.sleep(2)' > /dev/null 2>&1 &",
             env("FASTNET_TEST_CLI_NS"), env("FASTNET_TEST_LOCAL"), p->port);
    REQUIRE(system(cmd) == 0);
    int c = accept(p->fast, nullptr, nullptr);
    REQUIRE(c >= 0);
    CHECK(served_by_fastnet(c));
    CHECK(kernel_flows(p->port).empty());   // a fresh port: only this test's flow uses it
    CHECK(stat_counter("conn_accepted") == accepted + 1);
    close(c);
}

}  // namespace

TEST_CASE("a setsockopt the kernel rejects fails with the kernel's errno and the socket stays on fastnet", "[sockopt]") {
    auto [family, state] = GENERATE(table<int, int>({
        {AF_INET, Fresh}, {AF_INET, Listening}, {AF_INET, Connected},
        {AF_INET6, Fresh}, {AF_INET6, Listening}, {AF_INET6, Connected}}));
    CAPTURE(family == AF_INET ? "AF_INET" : "AF_INET6", state_name(state));
    uint16_t lport = static_cast<uint16_t>(base() + 70 + (family == AF_INET6 ? 4 : 0));
    long handovers = stat_counter("handovers");
    Pair p;
    make_pair(family, state, lport, &p);
    int n = run_cases(family, state, lport, &p);
    CHECK(n >= 5);
    CHECK(stat_counter("handovers") == handovers);
    check_still_accelerated(family, state, &p);
}

TEST_CASE("an option the kernel accepts and the engine lacks hands a fresh socket over, and is ignored on a connection", "[sockopt]") {
    int ttl = 64;
    long handovers = stat_counter("handovers");
    Pair p;
    make_pair(AF_INET, Connected, 0, &p);
    CHECK(setsockopt(p.fast, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) == 0);
    for (int i = 0; i < 3; ++i) {   // TCP_CORK on and off, as nginx does per response
        int v = i & 1;
        CHECK(setsockopt(p.fast, IPPROTO_TCP, TCP_CORK, &v, sizeof v) == 0);
    }
    CHECK(served_by_fastnet(p.fast));
    CHECK(stat_counter("handovers") == handovers);

    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(served_by_fastnet(fresh));
    CHECK(setsockopt(fresh, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) == 0);
    CHECK_FALSE(served_by_fastnet(fresh));
    int back = 0;
    socklen_t len = sizeof back;
    CHECK(getsockopt(fresh, IPPROTO_IP, IP_TTL, &back, &len) == 0);
    CHECK(back == 64);
    CHECK(stat_counter("handovers") == handovers + 1);
    close(fresh);
}

TEST_CASE("SO_SNDBUF and SO_RCVBUF on a connection read back doubled as on the kernel, and take effect", "[sockopt][buffers]") {
    Pair p;
    make_pair(AF_INET, Connected, 0, &p);
    // Linux: min(value, wmem_max / rmem_max) * 2, at least SOCK_MIN_SNDBUF / RCVBUF.
    for (int name : {SO_SNDBUF, SO_RCVBUF}) {
        for (int v : {100000, 1 << 30, 1, 65536}) {
            CAPTURE(name == SO_SNDBUF ? "SO_SNDBUF" : "SO_RCVBUF", v);
            REQUIRE(setsockopt(p.fast, SOL_SOCKET, name, &v, sizeof v) == 0);
            REQUIRE(syscall(SYS_setsockopt, p.kern, SOL_SOCKET, name, &v, sizeof v) == 0);
            int fv = 0, kv = 0;
            socklen_t fl = sizeof fv, kl = sizeof kv;
            REQUIRE(getsockopt(p.fast, SOL_SOCKET, name, &fv, &fl) == 0);
            REQUIRE(syscall(SYS_getsockopt, p.kern, SOL_SOCKET, name, &kv, &kl) == 0);
            CHECK(fv == kv);
        }
    }
    // A 400 KB blocking write after SO_SNDBUF finishes; the echo comes back whole.
    int v = 100000;
    REQUIRE(setsockopt(p.fast, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) == 0);
    std::vector<char> out(400 * 1000), in(out.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(i * 7 + i / 251);
    timeval tv{20, 0};
    setsockopt(p.fast, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t got = 0;
    std::thread rd([&] {
        while (got < in.size()) {
            ssize_t n = read(p.fast, in.data() + got, in.size() - got);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
        }
    });
    ssize_t w = write(p.fast, out.data(), out.size());
    rd.join();
    CHECK(w == static_cast<ssize_t>(out.size()));
    CHECK(got == out.size());
    CHECK(in == out);
    CHECK(served_by_fastnet(p.fast));
    CHECK(kernel_flows_of(p.fast).empty());
}

TEST_CASE("getsockopt at a level the family does not answer fails as on the kernel", "[sockopt]") {
    int family = GENERATE(AF_INET, AF_INET6);
    CAPTURE(family);
    Pair p;
    make_pair(family, Connected, 0, &p);
    int v = 0;
    socklen_t len = sizeof v;
    int level = family == AF_INET ? IPPROTO_IPV6 : IPPROTO_UDP;
    errno = 0;
    CHECK(syscall(SYS_getsockopt, p.kern, level, 1, &v, &len) == -1);
    int kerr = errno;
    errno = 0;
    CHECK(getsockopt(p.fast, level, 1, &v, &len) == -1);
    CHECK(strerrorname_np(errno) == std::string(strerrorname_np(kerr)));
    CHECK(served_by_fastnet(p.fast));
    errno = 0;
    CHECK(getsockopt(p.fast, IPPROTO_TCP, TCP_NODELAY, nullptr, &len) == -1);
    CHECK(errno == EFAULT);
}

namespace {

// A field of the kernel peer's `ss -ti` line for the flow with this local port.
long peer_ss_field(uint16_t our_port, const char* field) {
    std::string out = run(std::string("env -u LD_PRELOAD ip netns exec ") + env("FASTNET_TEST_CLI_NS") +
                          " ss -Htin 'dport = :" + std::to_string(our_port) + "'");
    std::string key = std::string(" ") + field + ":";
    size_t at = out.find(key);
    if (at == std::string::npos) return -1;
    return std::stol(out.substr(at + key.size()));
}

}  // namespace

TEST_CASE("TCP_INFO fills today's struct tcp_info on a live accelerated connection", "[tcp_info]") {
    Pair p;
    make_pair(AF_INET, Connected, 0, &p);
    const size_t kBytes = 200000;
    std::vector<char> out(kBytes, 'x'), in(kBytes);
    std::thread reader([&] { CHECK(recv(p.fast, in.data(), in.size(), MSG_WAITALL) == static_cast<ssize_t>(kBytes)); });
    for (size_t sent = 0; sent < kBytes;) {
        ssize_t w = send(p.fast, out.data() + sent, kBytes - sent, 0);
        REQUIRE(w > 0);
        sent += static_cast<size_t>(w);
    }
    reader.join();

    // Lengths: Linux copies min(optlen, its size) and reports that.
    unsigned char kbuf[512], fbuf[512];
    socklen_t klen = sizeof kbuf, flen = sizeof fbuf;
    REQUIRE(syscall(SYS_getsockopt, p.kern, IPPROTO_TCP, TCP_INFO, kbuf, &klen) == 0);
    REQUIRE(getsockopt(p.fast, IPPROTO_TCP, TCP_INFO, fbuf, &flen) == 0);
    CHECK(flen == klen);                          // the running kernel's layout (280 on 6.18)
    CHECK(flen >= sizeof(struct tcp_info));       // at least the installed header's
    tcp_info hdr;
    socklen_t hlen = sizeof hdr;
    REQUIRE(getsockopt(p.fast, IPPROTO_TCP, TCP_INFO, &hdr, &hlen) == 0);
    CHECK(hlen == sizeof(struct tcp_info));
    unsigned char small[8];
    socklen_t slen = sizeof small;
    REQUIRE(getsockopt(p.fast, IPPROTO_TCP, TCP_INFO, small, &slen) == 0);
    CHECK(slen == sizeof small);
    CHECK(small[0] == kTcpEstablished);

    // Values: everything sent was echoed, so it was acknowledged (give the last ACK time).
    tcp_info ti{};
    for (int i = 0; i < 100; ++i) {
        hlen = sizeof ti;
        REQUIRE(getsockopt(p.fast, IPPROTO_TCP, TCP_INFO, &ti, &hlen) == 0);
        if (ti.tcpi_bytes_acked == kBytes + 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(ti.tcpi_state == kTcpEstablished);
    CHECK(ti.tcpi_snd_mss > 0);
    CHECK(ti.tcpi_rcv_mss > 0);
    CHECK(ti.tcpi_rtt > 0);
    CHECK(ti.tcpi_min_rtt > 0);
    CHECK(ti.tcpi_min_rtt <= ti.tcpi_rtt + ti.tcpi_rttvar * 4);
    CHECK(ti.tcpi_rto >= 200000);                 // Linux TCP_RTO_MIN
    CHECK(ti.tcpi_snd_cwnd > 0);
    CHECK(ti.tcpi_bytes_acked == kBytes + 1);     // the SYN counts, as on Linux
    CHECK(ti.tcpi_bytes_received == kBytes);
    CHECK(ti.tcpi_bytes_sent >= kBytes);
    CHECK(ti.tcpi_bytes_sent == kBytes + ti.tcpi_bytes_retrans);
    CHECK(ti.tcpi_data_segs_out >= kBytes / ti.tcpi_snd_mss);
    CHECK(ti.tcpi_data_segs_in >= kBytes / 65535);
    CHECK(ti.tcpi_segs_out >= ti.tcpi_data_segs_out);
    CHECK(ti.tcpi_segs_in >= ti.tcpi_data_segs_in);
    CHECK(ti.tcpi_unacked == 0);
    CHECK(ti.tcpi_notsent_bytes == 0);
    CHECK(ti.tcpi_snd_wnd > 0);
    CHECK(ti.tcpi_delivered >= kBytes / ti.tcpi_snd_mss);
    CHECK(ti.tcpi_last_data_recv < 5000);
    uint32_t rcv_wnd;                              // past the installed header on older ones
    memcpy(&rcv_wnd, fbuf + 228 + 4, sizeof rcv_wnd);
    CHECK(rcv_wnd > 0);

    // The kernel peer's view of the same flow.
    sockaddr_in local{};
    socklen_t al = sizeof local;
    REQUIRE(getsockname(p.fast, reinterpret_cast<sockaddr*>(&local), &al) == 0);
    uint16_t port = ntohs(local.sin_port);
    long peer_acked = -1;
    for (int i = 0; i < 50; ++i) {   // our last ACK may still be delayed
        peer_acked = peer_ss_field(port, "bytes_acked");
        if (peer_acked >= static_cast<long>(kBytes)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(peer_ss_field(port, "bytes_received") == static_cast<long>(kBytes));
    CHECK(peer_acked - static_cast<long>(ti.tcpi_bytes_received) >= 0);   // the peer's SYN-ACK may count
    CHECK(peer_acked - static_cast<long>(ti.tcpi_bytes_received) <= 1);
    long peer_mss = peer_ss_field(port, "rcvmss");
    CHECK(peer_mss > 0);
    CHECK(ti.tcpi_snd_mss >= static_cast<uint32_t>(peer_mss));
    CHECK(kernel_flows_of(p.fast).empty());
}

TEST_CASE("TCP_CORK, TCP_NOTSENT_LOWAT and TCP_USER_TIMEOUT are the engine's: no handover, read back", "[sockopt]") {
    long handovers = stat_counter("handovers");
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(served_by_fastnet(fresh));
    const int opts[][2] = {{TCP_CORK, 1}, {TCP_NOTSENT_LOWAT, 16384}, {TCP_USER_TIMEOUT, 5000}};
    for (auto [name, v] : opts) {
        CAPTURE(name);
        CHECK(setsockopt(fresh, IPPROTO_TCP, name, &v, sizeof v) == 0);
        int back = -1;
        socklen_t len = sizeof back;
        CHECK(getsockopt(fresh, IPPROTO_TCP, name, &back, &len) == 0);
        CHECK(back == v);
    }
    CHECK(served_by_fastnet(fresh));
    CHECK(stat_counter("handovers") == handovers);
    sockaddr_storage a;
    socklen_t l = make_addr(AF_INET, env("FASTNET_TEST_PEER"), echo_port(), &a);
    REQUIRE(connect(fresh, sa(a), l) == 0);
    int off = 0;
    REQUIRE(setsockopt(fresh, IPPROTO_TCP, TCP_CORK, &off, sizeof off) == 0);
    const char msg[] = "uncorked";
    REQUIRE(send(fresh, msg, sizeof msg, 0) == static_cast<ssize_t>(sizeof msg));
    char back[sizeof msg] = {};
    REQUIRE(recv(fresh, back, sizeof back, MSG_WAITALL) == static_cast<ssize_t>(sizeof back));
    CHECK(served_by_fastnet(fresh));
    CHECK(kernel_flows_of(fresh).empty());
    close(fresh);
}

TEST_CASE("SO_TIMESTAMPING on a connection is refused, not silently ignored; 0 is accepted", "[sockopt]") {
    Pair p;
    make_pair(AF_INET, Connected, 0, &p);
    int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
    errno = 0;
    CHECK(setsockopt(p.fast, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == -1);
    CHECK(errno == EOPNOTSUPP);
    int none = 0;
    CHECK(setsockopt(p.fast, SOL_SOCKET, SO_TIMESTAMPING, &none, sizeof none) == 0);
    CHECK(served_by_fastnet(p.fast));
}

namespace {

uint16_t finreset_port() { return base() + 5; }

// errno of a call, or 0 when it succeeded.
template <class F>
int err_of(F f) {
    errno = 0;
    return f() < 0 ? errno : 0;
}

}  // namespace

TEST_CASE("after a RST in CLOSE-WAIT: read 0, write EPIPE, getpeername ENOTCONN, as on the kernel", "[errno]") {
    int fast = socket(AF_INET, SOCK_STREAM, 0);
    int kern = ksocket(AF_INET);
    REQUIRE(served_by_fastnet(fast));
    sockaddr_storage a;
    socklen_t l = make_addr(AF_INET, env("FASTNET_TEST_PEER"), finreset_port(), &a);
    REQUIRE(connect(fast, sa(a), l) == 0);
    REQUIRE(syscall(SYS_connect, kern, sa(a), l) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));   // FIN, then the RST
    char buf[16];
    CHECK(recv(fast, buf, sizeof buf, 0) == 0);
    CHECK(syscall(SYS_recvfrom, kern, buf, sizeof buf, 0, nullptr, nullptr) == 0);
    int kw = err_of([&] { return syscall(SYS_sendto, kern, "x", 1, MSG_NOSIGNAL, nullptr, 0); });
    int fw = err_of([&] { return send(fast, "x", 1, MSG_NOSIGNAL); });
    CHECK(kw == EPIPE);
    CHECK(strerrorname_np(fw) == std::string(strerrorname_np(kw)));
    sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    int kp = err_of([&] { return syscall(SYS_getpeername, kern, sa(peer), &pl); });
    pl = sizeof peer;
    int fp = err_of([&] { return getpeername(fast, sa(peer), &pl); });
    CHECK(kp == ENOTCONN);
    CHECK(strerrorname_np(fp) == std::string(strerrorname_np(kp)));
    CHECK(served_by_fastnet(fast));
    close(fast);
    close(kern);
}

TEST_CASE("more than IOV_MAX buffers: sendmsg and recvmsg say EMSGSIZE, writev EINVAL, as on the kernel", "[errno]") {
    Pair p;
    make_pair(AF_INET, Connected, 0, &p);
    static char byte;
    std::vector<iovec> iov(IOV_MAX + 1, iovec{&byte, 1});
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = iov.size();
    int ks = err_of([&] { return syscall(SYS_sendmsg, p.kern, &m, MSG_DONTWAIT); });
    int fs = err_of([&] { return sendmsg(p.fast, &m, MSG_DONTWAIT); });
    CHECK(strerrorname_np(fs) == std::string(strerrorname_np(ks)));
    int kr = err_of([&] { return syscall(SYS_recvmsg, p.kern, &m, MSG_DONTWAIT); });
    int fr = err_of([&] { return recvmsg(p.fast, &m, MSG_DONTWAIT); });
    CHECK(strerrorname_np(fr) == std::string(strerrorname_np(kr)));
    int kv = err_of([&] { return syscall(SYS_writev, p.kern, iov.data(), iov.size()); });
    int fv = err_of([&] { return writev(p.fast, iov.data(), static_cast<int>(iov.size())); });
    CHECK(strerrorname_np(fv) == std::string(strerrorname_np(kv)));
    CHECK(ks == EMSGSIZE);
    CHECK(served_by_fastnet(p.fast));
}
