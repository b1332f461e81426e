// Interface discovery, route lookup and the neighbour cache against the real kernel, on
// the namespace test bed: run_netlink_test.sh → with-testbed.sh → this program inside
// the server namespace, with the bed's TB_* variables as the expected answers.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <linux/neighbour.h>
#include <string>

#include "stack/net/interface.hpp"
#include "stack/net/neighbour.hpp"
#include "stack/net/route.hpp"

using namespace fastnet;

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) FAIL("environment variable " << name << " is not set (run under with-testbed.sh)");
    return v;
}

uint32_t ip_of(const std::string& s) {
    in_addr a{};
    REQUIRE(inet_pton(AF_INET, s.c_str(), &a) == 1);
    return ntohl(a.s_addr);
}

std::string ip_str(uint32_t ip) {
    in_addr a{htonl(ip)};
    char buf[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, &a, buf, sizeof buf);
}

std::string mac_str(const uint8_t* m) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
                  m[4], m[5]);
    return buf;
}

TimeNs now_ns() {
    return static_cast<TimeNs>(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch()).count());
}

void sh(const std::string& cmd) {
    INFO(cmd);
    REQUIRE(std::system(cmd.c_str()) == 0);
}

// Polls the cache until resolve() succeeds or `ms` pass; true on success.
bool resolve_within(NeighbourCache& nc, uint32_t ip, uint8_t mac[6], int ms) {
    TimeNs end = now_ns() + static_cast<TimeNs>(ms) * 1'000'000;
    while (now_ns() < end) {
        if (nc.resolve(ip, mac)) return true;
        REQUIRE(nc.poll_updates(now_ns()) >= 0);
        struct timespec ts{0, 5'000'000};
        nanosleep(&ts, nullptr);
    }
    return nc.resolve(ip, mac);
}

InterfaceInfo bed_interface() {
    InterfaceInfo ifc;
    REQUIRE(find_interface(env("TB_IF_SRV").c_str(), &ifc) == 0);
    return ifc;
}

}  // namespace

TEST_CASE("finds the bed's veth by name with its MAC, MTU, address and state", "[interface]") {
    InterfaceInfo ifc = bed_interface();
    CHECK(std::string(ifc.name) == env("TB_IF_SRV"));
    CHECK(ifc.ifindex > 0);
    REQUIRE(ifc.has_mac);
    CHECK(mac_str(ifc.mac) == env("TB_MAC_SRV"));
    CHECK(ifc.mtu == static_cast<uint32_t>(std::stoul(env("TB_MTU"))));
    CHECK(ifc.up);
    CHECK(ifc.running);
    CHECK_FALSE(ifc.loopback);
    CHECK(std::string(ifc.kind) == "veth");
    CHECK(ifc.rx_queues >= 1);
    REQUIRE(ifc.ipv4.size() == 1);
    CHECK(ip_str(ifc.ipv4[0].ip) == env("TB_IP_SRV"));
    CHECK(ifc.ipv4[0].prefix_len == std::stoi(env("TB_PLEN")));
}

TEST_CASE("finds the same interface by index, and loopback as loopback", "[interface]") {
    InterfaceInfo by_name = bed_interface();
    InterfaceInfo by_index;
    REQUIRE(find_interface(by_name.ifindex, &by_index) == 0);
    CHECK(std::string(by_index.name) == by_name.name);
    CHECK(std::memcmp(by_index.mac, by_name.mac, 6) == 0);

    InterfaceInfo lo;
    REQUIRE(find_interface("lo", &lo) == 0);
    CHECK(lo.loopback);
    CHECK(std::string(lo.kind).empty());
    CHECK_FALSE(lo.has_mac);
    REQUIRE(lo.ipv4.size() == 1);
    CHECK(ip_str(lo.ipv4[0].ip) == "127.0.0.1");
    CHECK(lo.ipv4[0].prefix_len == 8);
}

TEST_CASE("an unknown interface is ENODEV and a bad name EINVAL", "[interface]") {
    InterfaceInfo ifc;
    CHECK(find_interface("fn-no-such-if", &ifc) == -ENODEV);
    CHECK(find_interface(99999, &ifc) == -ENODEV);
    CHECK(find_interface("", &ifc) == -EINVAL);
    CHECK(find_interface("a-name-longer-than-ifnamsiz", &ifc) == -EINVAL);
}

TEST_CASE("without a default route the default interface is the only one up besides lo",
          "[interface][no-default-route]") {
    InterfaceInfo ifc;
    REQUIRE(default_interface(&ifc) == 0);
    CHECK(std::string(ifc.name) == env("TB_IF_SRV"));
    RouteInfo def;
    CHECK(default_route(&def) == -ENOENT);
}

TEST_CASE("an engine configuration comes from the kernel's view of the interface",
          "[interface][no-default-route]") {
    InterfaceInfo ifc = bed_interface();
    EngineConfig cfg;
    REQUIRE(engine_config_from_kernel(ifc, &cfg) == 0);
    CHECK(mac_str(cfg.mac) == env("TB_MAC_SRV"));
    CHECK(ip_str(cfg.ip) == env("TB_IP_SRV"));
    CHECK(cfg.netmask == 0xffffff00u);
    CHECK(cfg.mtu == std::stoul(env("TB_MTU")));
    CHECK(cfg.gateway == 0);
    CHECK(cfg.accept_csum_partial);   // a veth: its peer's partial checksums are accepted

    InterfaceInfo lo;
    REQUIRE(find_interface("lo", &lo) == 0);
    CHECK(engine_config_from_kernel(lo, &cfg) == -EINVAL);
}

TEST_CASE("the peer's address is on-link through the veth", "[route]") {
    InterfaceInfo ifc = bed_interface();
    RouteInfo r;
    REQUIRE(lookup_route(ip_of(env("TB_IP_CLI")), &r) == 0);
    CHECK(r.on_link());
    CHECK(r.gateway == 0);
    CHECK(r.oif == ifc.ifindex);
    CHECK(ip_str(r.next_hop) == env("TB_IP_CLI"));
    CHECK(ip_str(r.prefsrc) == env("TB_IP_SRV"));
    CHECK(r.type == RTN_UNICAST);
}

TEST_CASE("our own address routes locally", "[route]") {
    RouteInfo r;
    REQUIRE(lookup_route(ip_of(env("TB_IP_SRV")), &r) == 0);
    CHECK(r.type == RTN_LOCAL);
}

TEST_CASE("an address off the subnet has no route when there is no default route",
          "[route][no-default-route]") {
    RouteInfo r;
    CHECK(lookup_route(ip_of("192.0.2.1"), &r) == -ENETUNREACH);
}

TEST_CASE("with a default route, off-subnet addresses go via the gateway",
          "[route][default-route]") {
    // run_netlink_test.sh adds `default via TB_IP_CLI` before running this tag.
    InterfaceInfo ifc = bed_interface();
    RouteInfo r;
    REQUIRE(lookup_route(ip_of("192.0.2.1"), &r) == 0);
    CHECK_FALSE(r.on_link());
    CHECK(ip_str(r.gateway) == env("TB_IP_CLI"));
    CHECK(ip_str(r.next_hop) == env("TB_IP_CLI"));
    CHECK(r.oif == ifc.ifindex);

    RouteInfo def;
    REQUIRE(default_route(&def) == 0);
    CHECK(ip_str(def.gateway) == env("TB_IP_CLI"));
    CHECK(default_route(&def, ifc.ifindex) == 0);
    CHECK(default_route(&def, ifc.ifindex + 1000) == -ENOENT);

    InterfaceInfo d;
    REQUIRE(default_interface(&d) == 0);
    CHECK(d.ifindex == ifc.ifindex);
    EngineConfig cfg;
    REQUIRE(engine_config_from_kernel(ifc, &cfg) == 0);
    CHECK(ip_str(cfg.gateway) == env("TB_IP_CLI"));
}

TEST_CASE("the peer's MAC is unknown at first, then learnt through the kernel", "[neigh]") {
    InterfaceInfo ifc = bed_interface();
    NeighbourCache nc;
    REQUIRE(nc.open(ifc.ifindex) == 0);
    uint32_t peer = ip_of(env("TB_IP_CLI"));
    sh("ip neigh flush dev " + env("TB_IF_SRV"));
    REQUIRE(nc.poll_updates(now_ns()) >= 0);

    uint8_t mac[6] = {};
    CHECK_FALSE(nc.resolve(peer, mac));
    CHECK(nc.stats().misses == 1);
    CHECK(nc.stats().requests_sent == 0);   // the request waits for poll_updates()

    TimeNs start = now_ns();
    REQUIRE(resolve_within(nc, peer, mac, 2000));
    INFO("resolved after " << (now_ns() - start) / 1000 << " us");
    CHECK(mac_str(mac) == env("TB_MAC_CLI"));
    CHECK(nc.stats().requests_sent == 1);
    CHECK(nc.stats().request_errors == 0);
    CHECK(nc.state_of(peer) == NUD_REACHABLE);
    // From now on it is a lookup: no more requests, no misses.
    uint64_t misses = nc.stats().misses;
    for (int i = 0; i < 1000; ++i) REQUIRE(nc.resolve(peer, mac));
    REQUIRE(nc.poll_updates(now_ns()) >= 0);
    CHECK(nc.stats().misses == misses);
    CHECK(nc.stats().requests_sent == 1);
}

TEST_CASE("an address nobody answers for stays unresolved, with requests rate-limited",
          "[neigh]") {
    InterfaceInfo ifc = bed_interface();
    NeighbourCache nc;
    REQUIRE(nc.open(ifc.ifindex) == 0);
    // .77 of the bed's /24: in the subnet, but no host has it.
    uint32_t ghost = (ip_of(env("TB_NET")) & 0xffffff00u) | 77;
    uint8_t mac[6] = {};
    CHECK_FALSE(resolve_within(nc, ghost, mac, 2000));
    // The kernel announces no NONE → INCOMPLETE change, so the cache may still hold the
    // bare request; the kernel's own table proves the request arrived.
    int st = nc.state_of(ghost);
    CAPTURE(st);
    CHECK((st == NUD_NONE || st == NUD_INCOMPLETE || st == NUD_FAILED));
    FILE* p = popen(("ip neigh show " + ip_str(ghost) + " dev " + env("TB_IF_SRV")).c_str(), "r");
    REQUIRE(p);
    char line[256] = {};
    std::string shown = std::fgets(line, sizeof line, p) ? line : "";
    pclose(p);
    CAPTURE(shown);
    CHECK((shown.find("INCOMPLETE") != std::string::npos ||
           shown.find("FAILED") != std::string::npos));
    // 2 s at one request per second per address: never more than 3.
    CHECK(nc.stats().requests_sent >= 1);
    CHECK(nc.stats().requests_sent <= 3);
    CHECK(nc.stats().request_errors == 0);
    // After its probes (3 x 1 s by default) the kernel gives up and says so: FAILED is
    // seen, and still not usable.
    TimeNs end = now_ns() + 3'000'000'000ull;
    while (nc.state_of(ghost) != NUD_FAILED && now_ns() < end) {
        CHECK_FALSE(nc.resolve(ghost, mac));
        REQUIRE(nc.poll_updates(now_ns()) >= 0);
        struct timespec ts{0, 5'000'000};
        nanosleep(&ts, nullptr);
    }
    CHECK(nc.state_of(ghost) == NUD_FAILED);
    CHECK_FALSE(nc.resolve(ghost, mac));
    CHECK(nc.stats().requests_sent <= 6);
    // The peer still resolves meanwhile.
    CHECK(resolve_within(nc, ip_of(env("TB_IP_CLI")), mac, 2000));
    CHECK(mac_str(mac) == env("TB_MAC_CLI"));
}

TEST_CASE("entries present before open come from the initial dump", "[neigh]") {
    InterfaceInfo ifc = bed_interface();
    uint32_t net = ip_of(env("TB_NET")) & 0xffffff00u;
    sh("ip neigh replace " + ip_str(net | 200) + " lladdr 02:00:00:00:00:c8 nud permanent dev " +
       env("TB_IF_SRV"));
    sh("ip neigh replace " + ip_str(net | 201) + " lladdr 02:00:00:00:00:c9 nud stale dev " +
       env("TB_IF_SRV"));
    NeighbourCache nc;
    REQUIRE(nc.open(ifc.ifindex) == 0);
    uint8_t mac[6] = {};
    REQUIRE(nc.resolve(net | 200, mac));   // no poll needed
    CHECK(mac_str(mac) == "02:00:00:00:00:c8");
    REQUIRE(nc.resolve(net | 201, mac));   // STALE is usable
    CHECK(mac_str(mac) == "02:00:00:00:00:c9");
    sh("ip neigh del " + ip_str(net | 200) + " dev " + env("TB_IF_SRV"));
    sh("ip neigh del " + ip_str(net | 201) + " dev " + env("TB_IF_SRV"));
}

TEST_CASE("kernel table changes reach the cache through notifications", "[neigh]") {
    InterfaceInfo ifc = bed_interface();
    NeighbourCache nc;
    REQUIRE(nc.open(ifc.ifindex) == 0);
    uint32_t net = ip_of(env("TB_NET")) & 0xffffff00u;
    const std::string dev = " dev " + env("TB_IF_SRV");
    uint8_t mac[6] = {};

    sh("ip neigh replace " + ip_str(net | 210) + " lladdr 02:00:00:00:00:d2 nud permanent" + dev);
    REQUIRE(nc.poll_updates(now_ns()) >= 1);
    REQUIRE(nc.resolve(net | 210, mac));
    CHECK(mac_str(mac) == "02:00:00:00:00:d2");

    sh("ip neigh replace " + ip_str(net | 210) + " lladdr 02:00:00:00:00:d3 nud permanent" + dev);
    REQUIRE(nc.poll_updates(now_ns()) >= 1);
    REQUIRE(nc.resolve(net | 210, mac));
    CHECK(mac_str(mac) == "02:00:00:00:00:d3");

    sh("ip neigh del " + ip_str(net | 210) + dev);
    REQUIRE(nc.poll_updates(now_ns()) >= 1);
    CHECK_FALSE(nc.resolve(net | 210, mac));
    CHECK(nc.state_of(net | 210) == NUD_NONE);   // only the pending request is left

    // FAILED is not usable even though the entry exists.
    sh("ip neigh replace " + ip_str(net | 211) + " lladdr 02:00:00:00:00:d4 nud failed" + dev +
       " 2>/dev/null || true");
    nc.poll_updates(now_ns());
    CHECK_FALSE(nc.resolve(net | 211, mac));
}

TEST_CASE("many entries added and half removed are all looked up right", "[neigh]") {
    InterfaceInfo ifc = bed_interface();
    uint32_t net = ip_of(env("TB_NET")) & 0xffff0000u;   // 10.213.0.0/16: other /24s too
    const std::string dev = " dev " + env("TB_IF_SRV");
    auto addr = [&](int i) { return net | (0x0100u * (1 + i / 200)) | (1 + i % 200); };
    auto mac_of = [](int i) {
        char b[18];
        std::snprintf(b, sizeof b, "02:00:00:01:%02x:%02x", i >> 8, i & 0xff);
        return std::string(b);
    };
    constexpr int kN = 600;
    std::string batch;
    for (int i = 0; i < kN; ++i)
        batch += "neigh replace " + ip_str(addr(i)) + " lladdr " + mac_of(i) + " nud permanent" +
                 dev + "\n";
    NeighbourCache::Config cfg;
    cfg.capacity = 1024;
    NeighbourCache nc(cfg);
    REQUIRE(nc.open(ifc.ifindex) == 0);
    FILE* p = popen("ip -batch -", "w");
    REQUIRE(p);
    std::fputs(batch.c_str(), p);
    REQUIRE(pclose(p) == 0);
    TimeNs end = now_ns() + 2'000'000'000ull;
    while (nc.size() < size_t(kN) && now_ns() < end) REQUIRE(nc.poll_updates(now_ns()) >= 0);
    CHECK(nc.size() >= size_t(kN));
    CHECK(nc.stats().resyncs == 0);

    std::string del;
    for (int i = 0; i < kN; i += 2) del += "neigh del " + ip_str(addr(i)) + dev + "\n";
    p = popen("ip -batch -", "w");
    REQUIRE(p);
    std::fputs(del.c_str(), p);
    REQUIRE(pclose(p) == 0);
    end = now_ns() + 2'000'000'000ull;
    while (nc.state_of(addr(kN - 2)) != -1 && now_ns() < end) nc.poll_updates(now_ns());

    int wrong = 0;
    uint8_t mac[6];
    for (int i = 0; i < kN; ++i) {
        bool ok = nc.resolve(addr(i), mac);
        if (i % 2 == 0 ? ok : (!ok || mac_str(mac) != mac_of(i))) ++wrong;
    }
    CHECK(wrong == 0);
    sh("ip neigh flush nud permanent" + dev);
}
