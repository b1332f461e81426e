// FASTNET_* environment configuration: parsed and validated once at load time.
// ensure_init() → load_config(); the parser takes a lookup function so tests can drive
// it without touching the environment.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "interpose/libc.hpp"

namespace fastnet::ipose {

enum class ZeroCopy : uint8_t { Auto, On, Off };
// FASTNET_PROFILE: coherent groups of settings (README "Configuration").
enum class Profile : uint8_t { Default, Latency, Throughput };
inline constexpr uint32_t kLatencySpinUs = 50;

struct Config {
    // FASTNET_IFACE; empty: default route's interface. A plain array keeps Config
    // constant-initialised: it is read from the load-time constructor.
    char iface[16] = {};
    ZeroCopy zerocopy = ZeroCopy::Auto;
    // FASTNET_TX_CHECKSUM=software: never leave TCP checksums to the device.
    bool tx_csum_software = false;
    LogLevel log = LogLevel::Warn;
    bool strict = false;
    bool disable = false;
    uint32_t sndbuf = 256 * 1024;
    uint32_t rcvbuf = 256 * 1024;
    uint32_t sndbuf_max = 4 << 20;  // autotuning ceilings, see EngineConfig
    uint32_t rcvbuf_max = 6 << 20;
    uint16_t port_base = 40000;     // active-open range, see EngineConfig
    uint16_t port_count = 16384;
    uint32_t umem_frames = 4096;    // per RX queue served
    uint32_t queues = 0;            // FASTNET_QUEUES: RX queues served, 0 = all of them
    Profile profile = Profile::Default;
    // FASTNET_SPIN_US: a thread about to sleep in epoll_wait/poll/select or a blocking
    // call polls its engines this long first. The latency profile sets kLatencySpinUs.
    uint32_t spin_us = 0;
};

// The first invalid variable: its name, the value given, and what would be accepted.
struct ConfigError {
    const char* var;
    std::string value;
    const char* accepted;
};

using EnvLookup = std::function<const char*(const char*)>;

// Fills cfg from the lookup; on an invalid value stops at that variable (cfg.strict and
// cfg.log are read first so the caller knows how to react).
std::optional<ConfigError> parse_config(Config& cfg, const EnvLookup& env);
std::optional<ConfigError> load_config(Config& cfg);   // from getenv()

const Config& config();
Config& config_mut();

}  // namespace fastnet::ipose
