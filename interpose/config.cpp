// FASTNET_* parsing. Every variable has one accepted form; anything else is reported
// (by ensure_init) as one line naming the variable and the accepted values.
#include "interpose/config.hpp"

#include <cstdlib>
#include <cstring>
#include <net/if.h>

namespace fastnet::ipose {

namespace {

Config g_config;

bool parse_uint(const char* s, uint64_t max, uint64_t* out, bool suffixes) {
    if (!s || !*s) return false;
    uint64_t v = 0;
    const char* p = s;
    for (; *p >= '0' && *p <= '9'; ++p) {
        v = v * 10 + static_cast<uint64_t>(*p - '0');
        if (v > (1ull << 40)) return false;
    }
    if (p == s) return false;
    if (suffixes && *p) {
        if (*p == 'k' || *p == 'K') v <<= 10;
        else if (*p == 'm' || *p == 'M') v <<= 20;
        else return false;
        ++p;
    }
    if (*p || v > max) return false;
    *out = v;
    return true;
}

template <class E>
bool parse_enum(const char* s, std::initializer_list<std::pair<const char*, E>> table, E* out) {
    for (auto& [name, value] : table)
        if (strcmp(s, name) == 0) { *out = value; return true; }
    return false;
}

}  // namespace

std::optional<ConfigError> parse_config(Config& cfg, const EnvLookup& env) {
    auto bad = [](const char* var, const char* v, const char* accepted) {
        return std::optional<ConfigError>(ConfigError{var, v, accepted});
    };
    // Strictness and logging first: they decide how any later error is handled.
    if (const char* v = env("FASTNET_STRICT")) {
        if (!parse_enum<bool>(v, {{"0", false}, {"1", true}}, &cfg.strict))
            return bad("FASTNET_STRICT", v, "0, 1");
    }
    if (const char* v = env("FASTNET_LOG")) {
        if (!parse_enum<LogLevel>(v, {{"error", LogLevel::Error}, {"warn", LogLevel::Warn},
                                      {"info", LogLevel::Info}, {"debug", LogLevel::Debug}},
                                  &cfg.log))
            return bad("FASTNET_LOG", v, "error, warn, info, debug");
    }
    if (const char* v = env("FASTNET_DISABLE")) {
        if (!parse_enum<bool>(v, {{"0", false}, {"1", true}}, &cfg.disable))
            return bad("FASTNET_DISABLE", v, "0, 1");
    }
    if (const char* v = env("FASTNET_IFACE")) {
        size_t n = strlen(v);
        if (n == 0 || n >= IFNAMSIZ || strchr(v, '/') || strchr(v, ' '))
            return bad("FASTNET_IFACE", v, "an interface name of 1 to 15 characters");
        memcpy(cfg.iface, v, n + 1);
    }
    if (const char* v = env("FASTNET_ZEROCOPY")) {
        if (!parse_enum<ZeroCopy>(v, {{"auto", ZeroCopy::Auto}, {"on", ZeroCopy::On},
                                      {"off", ZeroCopy::Off}},
                                  &cfg.zerocopy))
            return bad("FASTNET_ZEROCOPY", v, "auto, on, off");
    }
    if (const char* v = env("FASTNET_TX_CHECKSUM")) {
        if (!parse_enum<bool>(v, {{"auto", false}, {"software", true}}, &cfg.tx_csum_software))
            return bad("FASTNET_TX_CHECKSUM", v, "auto, software");
    }
    uint64_t n = 0;
    constexpr const char* kBufAccepted = "bytes from 4096 to 64m, with an optional k or m suffix";
    if (const char* v = env("FASTNET_SNDBUF")) {
        if (!parse_uint(v, 64ull << 20, &n, true) || n < 4096) return bad("FASTNET_SNDBUF", v, kBufAccepted);
        cfg.sndbuf = static_cast<uint32_t>(n);
    }
    if (const char* v = env("FASTNET_RCVBUF")) {
        if (!parse_uint(v, 64ull << 20, &n, true) || n < 4096) return bad("FASTNET_RCVBUF", v, kBufAccepted);
        cfg.rcvbuf = static_cast<uint32_t>(n);
    }
    // The maxima: at least the starting sizes. Unset, they are Linux's tcp_wmem /
    // tcp_rmem maxima (4 MiB / 6 MiB), or the starting size when that is larger.
    constexpr const char* kSndMaxAccepted =
        "bytes from 4096 to 1024m, with an optional k or m suffix, not below FASTNET_SNDBUF";
    constexpr const char* kRcvMaxAccepted =
        "bytes from 4096 to 1024m, with an optional k or m suffix, not below FASTNET_RCVBUF";
    if (const char* v = env("FASTNET_SNDBUF_MAX")) {
        if (!parse_uint(v, 1ull << 30, &n, true) || n < 4096 || n < cfg.sndbuf)
            return bad("FASTNET_SNDBUF_MAX", v, kSndMaxAccepted);
        cfg.sndbuf_max = static_cast<uint32_t>(n);
    } else if (cfg.sndbuf_max < cfg.sndbuf) {
        cfg.sndbuf_max = cfg.sndbuf;
    }
    if (const char* v = env("FASTNET_RCVBUF_MAX")) {
        if (!parse_uint(v, 1ull << 30, &n, true) || n < 4096 || n < cfg.rcvbuf)
            return bad("FASTNET_RCVBUF_MAX", v, kRcvMaxAccepted);
        cfg.rcvbuf_max = static_cast<uint32_t>(n);
    } else if (cfg.rcvbuf_max < cfg.rcvbuf) {
        cfg.rcvbuf_max = cfg.rcvbuf;
    }
    if (const char* v = env("FASTNET_PORT_BASE")) {
        if (!parse_uint(v, 65535, &n, false) || n < 1024)
            return bad("FASTNET_PORT_BASE", v, "a port from 1024 to 65535");
        cfg.port_base = static_cast<uint16_t>(n);
    }
    if (const char* v = env("FASTNET_PORT_COUNT")) {
        if (!parse_uint(v, 65535, &n, false) || n < 1)
            return bad("FASTNET_PORT_COUNT", v, "a count from 1 to 65535");
        cfg.port_count = static_cast<uint16_t>(n);
    }
    if (uint32_t(cfg.port_base) + cfg.port_count > 65536) {
        const char* v = env("FASTNET_PORT_COUNT");
        return bad("FASTNET_PORT_COUNT", v ? v : "16384",
                   "a count that keeps FASTNET_PORT_BASE + FASTNET_PORT_COUNT <= 65536");
    }
    if (const char* v = env("FASTNET_UMEM_FRAMES")) {
        if (!parse_uint(v, 1u << 20, &n, false) || n < 512 || (n & (n - 1)))
            return bad("FASTNET_UMEM_FRAMES", v, "a power of two from 512 to 1048576");
        cfg.umem_frames = static_cast<uint32_t>(n);
    }
    if (const char* v = env("FASTNET_PROFILE")) {
        if (!parse_enum<Profile>(v, {{"default", Profile::Default}, {"latency", Profile::Latency},
                                     {"throughput", Profile::Throughput}},
                                 &cfg.profile))
            return bad("FASTNET_PROFILE", v, "default, latency, throughput");
        if (cfg.profile == Profile::Latency) cfg.spin_us = kLatencySpinUs;
    }
    // After the profile: an explicit value wins over the profile's.
    if (const char* v = env("FASTNET_SPIN_US")) {
        if (!parse_uint(v, 1000000, &n, false))
            return bad("FASTNET_SPIN_US", v, "microseconds from 0 to 1000000");
        cfg.spin_us = static_cast<uint32_t>(n);
    }
    if (const char* v = env("FASTNET_QUEUES")) {
        if (strcmp(v, "all") == 0) cfg.queues = 0;
        else if (!parse_uint(v, 16, &n, false) || n < 1)
            return bad("FASTNET_QUEUES", v, "all, or a count of RX queues from 1 to 16");
        else cfg.queues = static_cast<uint32_t>(n);
    }
    return std::nullopt;
}

std::optional<ConfigError> load_config(Config& cfg) {
    return parse_config(cfg, [](const char* name) -> const char* { return getenv(name); });
}

const Config& config() { return g_config; }
Config& config_mut() { return g_config; }

}  // namespace fastnet::ipose
