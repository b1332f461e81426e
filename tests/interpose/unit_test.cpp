// Unit tests of the interposer's pure pieces: FASTNET_* parsing and the sockaddr ↔
// Endpoint translation of dual-stack sockets. No preload, no network.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cstring>
#include <map>
#include <string>

#include "interpose/config.hpp"
#include "interpose/fdtable.hpp"

using namespace fastnet;
using namespace fastnet::ipose;

namespace {

std::optional<ConfigError> parse(Config& cfg, std::map<std::string, std::string> env) {
    return parse_config(cfg, [&](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    });
}

}  // namespace

TEST_CASE("an empty environment gives the documented defaults", "[config]") {
    Config cfg;
    REQUIRE_FALSE(parse(cfg, {}));
    CHECK(cfg.iface[0] == 0);
    CHECK(cfg.zerocopy == ZeroCopy::Auto);
    CHECK(cfg.log == LogLevel::Warn);
    CHECK_FALSE(cfg.strict);
    CHECK_FALSE(cfg.disable);
    CHECK_FALSE(cfg.tx_csum_software);
    CHECK(cfg.sndbuf == 256 * 1024);
    CHECK(cfg.port_base == 40000);
    CHECK(cfg.port_count == 16384);
}

TEST_CASE("valid values are accepted and converted", "[config]") {
    Config cfg;
    REQUIRE_FALSE(parse(cfg, {{"FASTNET_IFACE", "veth0"}, {"FASTNET_ZEROCOPY", "off"},
                              {"FASTNET_LOG", "debug"}, {"FASTNET_STRICT", "1"},
                              {"FASTNET_SNDBUF", "1m"}, {"FASTNET_RCVBUF", "64k"},
                              {"FASTNET_PORT_BASE", "50000"}, {"FASTNET_PORT_COUNT", "1000"},
                              {"FASTNET_UMEM_FRAMES", "8192"}, {"FASTNET_DISABLE", "0"},
                              {"FASTNET_TX_CHECKSUM", "software"}}));
    CHECK(std::string(cfg.iface) == "veth0");
    CHECK(cfg.tx_csum_software);
    CHECK(cfg.zerocopy == ZeroCopy::Off);
    CHECK(cfg.log == LogLevel::Debug);
    CHECK(cfg.strict);
    CHECK(cfg.sndbuf == 1u << 20);
    CHECK(cfg.rcvbuf == 64u << 10);
    CHECK(cfg.port_base == 50000);
    CHECK(cfg.port_count == 1000);
    CHECK(cfg.umem_frames == 8192);
    CHECK(cfg.queues == 0);
    REQUIRE_FALSE(parse(cfg, {{"FASTNET_QUEUES", "4"}}));
    CHECK(cfg.queues == 4);
    REQUIRE_FALSE(parse(cfg, {{"FASTNET_QUEUES", "all"}}));
    CHECK(cfg.queues == 0);
}

TEST_CASE("the latency profile spins; an explicit FASTNET_SPIN_US wins", "[config]") {
    Config cfg;
    CHECK(cfg.spin_us == 0);
    REQUIRE_FALSE(parse(cfg, {{"FASTNET_PROFILE", "latency"}}));
    CHECK(cfg.profile == Profile::Latency);
    CHECK(cfg.spin_us == kLatencySpinUs);
    Config c2;
    REQUIRE_FALSE(parse(c2, {{"FASTNET_PROFILE", "latency"}, {"FASTNET_SPIN_US", "0"}}));
    CHECK(c2.spin_us == 0);
    Config c3;
    REQUIRE_FALSE(parse(c3, {{"FASTNET_PROFILE", "throughput"}}));
    CHECK(c3.spin_us == 0);
}

TEST_CASE("an invalid value names the variable, the value and what is accepted", "[config]") {
    auto [var, value] = GENERATE(table<const char*, const char*>({
        {"FASTNET_STRICT", "yes"}, {"FASTNET_LOG", "verbose"}, {"FASTNET_DISABLE", "2"},
        {"FASTNET_IFACE", ""}, {"FASTNET_IFACE", "a-name-much-too-long"},
        {"FASTNET_ZEROCOPY", "maybe"}, {"FASTNET_TX_CHECKSUM", "on"},
        {"FASTNET_SNDBUF", "12q"}, {"FASTNET_SNDBUF", "100"},
        {"FASTNET_RCVBUF", "1g"}, {"FASTNET_PORT_BASE", "80"}, {"FASTNET_PORT_BASE", "70000"},
        {"FASTNET_PORT_COUNT", "0"}, {"FASTNET_UMEM_FRAMES", "1000"},
        {"FASTNET_UMEM_FRAMES", "-4"}, {"FASTNET_QUEUES", "0"}, {"FASTNET_QUEUES", "17"},
        {"FASTNET_QUEUES", "some"}, {"FASTNET_PROFILE", "fast"}, {"FASTNET_SPIN_US", "-1"},
        {"FASTNET_SPIN_US", "2000000"}, {"FASTNET_SNDBUF_MAX", "2048"}, {"FASTNET_RCVBUF_MAX", "2000m"},
        {"FASTNET_RCVBUF_MAX", "x"}}));
    CAPTURE(var, value);
    Config cfg;
    auto err = parse(cfg, {{var, value}});
    REQUIRE(err);
    CHECK(std::string(err->var) == var);
    CHECK(err->value == value);
    CHECK(std::strlen(err->accepted) > 0);
}

TEST_CASE("buffer maxima default to Linux's and are never below the starting sizes", "[config]") {
    Config cfg;
    REQUIRE_FALSE(parse(cfg, {}));
    CHECK(cfg.sndbuf_max == 4u << 20);
    CHECK(cfg.rcvbuf_max == 6u << 20);
    Config big;
    REQUIRE_FALSE(parse(big, {{"FASTNET_RCVBUF", "15m"}}));
    CHECK(big.rcvbuf_max == 15u << 20);   // unset: follows a larger starting size
    Config set;
    REQUIRE_FALSE(parse(set, {{"FASTNET_SNDBUF_MAX", "16m"}, {"FASTNET_RCVBUF_MAX", "64m"}}));
    CHECK(set.sndbuf_max == 16u << 20);
    CHECK(set.rcvbuf_max == 64u << 20);
    Config low;
    auto err = parse(low, {{"FASTNET_RCVBUF", "2m"}, {"FASTNET_RCVBUF_MAX", "1m"}});
    REQUIRE(err);
    CHECK(std::string(err->var) == "FASTNET_RCVBUF_MAX");
    CHECK(std::string(err->accepted).find("not below FASTNET_RCVBUF") != std::string::npos);
}

TEST_CASE("a port range past 65535 is refused", "[config]") {
    Config cfg;
    auto err = parse(cfg, {{"FASTNET_PORT_BASE", "60000"}, {"FASTNET_PORT_COUNT", "10000"}});
    REQUIRE(err);
    CHECK(std::string(err->var) == "FASTNET_PORT_COUNT");
}

TEST_CASE("IPv4 and IPv4-mapped IPv6 addresses become the same endpoint", "[sockaddr]") {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(8080);
    inet_pton(AF_INET, "10.213.1.2", &in.sin_addr);
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(8080);
    inet_pton(AF_INET6, "::ffff:10.213.1.2", &in6.sin6_addr);

    Endpoint a, b;
    bool mapped = true;
    REQUIRE(sockaddr_to_endpoint(reinterpret_cast<sockaddr*>(&in), sizeof in, &a, &mapped));
    CHECK_FALSE(mapped);
    REQUIRE(sockaddr_to_endpoint(reinterpret_cast<sockaddr*>(&in6), sizeof in6, &b, &mapped));
    CHECK(mapped);
    CHECK(a == b);
    CHECK(a.ip == 0x0ad50102);
    CHECK(a.port == 8080);

    // And back: an AF_INET6 socket reports the mapped form.
    sockaddr_in6 out{};
    socklen_t len = sizeof out;
    endpoint_to_sockaddr(AF_INET6, a, reinterpret_cast<sockaddr*>(&out), &len);
    CHECK(len == sizeof(sockaddr_in6));
    CHECK(memcmp(&out.sin6_addr, &in6.sin6_addr, 16) == 0);
    CHECK(out.sin6_port == htons(8080));
}

TEST_CASE("a short sockaddr buffer gets what fits and the full length", "[sockaddr]") {
    char buf[4] = {};
    socklen_t len = sizeof buf;
    endpoint_to_sockaddr(AF_INET, Endpoint{0x7f000001, 80}, reinterpret_cast<sockaddr*>(buf), &len);
    CHECK(len == sizeof(sockaddr_in));
    CHECK(reinterpret_cast<sockaddr*>(buf)->sa_family == AF_INET);
}

TEST_CASE("native IPv6 and truncated addresses are not endpoints", "[sockaddr]") {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
    Endpoint e;
    bool mapped;
    CHECK_FALSE(sockaddr_to_endpoint(reinterpret_cast<sockaddr*>(&in6), sizeof in6, &e, &mapped));
    sockaddr_in in{};
    in.sin_family = AF_INET;
    CHECK_FALSE(sockaddr_to_endpoint(reinterpret_cast<sockaddr*>(&in), 4, &e, &mapped));
}

TEST_CASE("loopback is recognised in every family", "[sockaddr]") {
    auto [family, text, loop] = GENERATE(table<int, const char*, bool>({
        {AF_INET, "127.0.0.1", true}, {AF_INET, "127.1.2.3", true}, {AF_INET, "10.213.0.1", false},
        {AF_INET6, "::1", true}, {AF_INET6, "::ffff:127.0.0.1", true},
        {AF_INET6, "::ffff:10.213.0.1", false}, {AF_INET6, "2001:db8::1", false}}));
    CAPTURE(text);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        in->sin_family = AF_INET;
        inet_pton(AF_INET, text, &in->sin_addr);
        len = sizeof *in;
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, text, &in6->sin6_addr);
        len = sizeof *in6;
    }
    CHECK(is_loopback(reinterpret_cast<sockaddr*>(&ss), len) == loop);
}
