// IPv4 headers (RFC 791): the checked Ipv4View and emit_ipv4(). parse_frame() calls
// Ipv4View::parse on the Ethernet payload; emit_tcp_frame() calls emit_ipv4().
// Options are skipped (never interpreted); fragments parse but are flagged.
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/wire/result.hpp"

namespace fastnet {

inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr size_t kIpv4MinHeaderLen = 20;
inline constexpr uint8_t kIpDefaultTtl = 64;   // Linux net.ipv4.ip_default_ttl

struct Ipv4View {
    uint8_t header_len = 0;      // IHL * 4, options included
    uint8_t tos = 0;
    uint16_t total_len = 0;
    uint16_t id = 0;
    bool df = false, mf = false;
    uint16_t frag_offset = 0;    // in bytes (field * 8)
    uint8_t ttl = 0;
    uint8_t proto = 0;
    uint16_t checksum = 0;
    uint32_t src = 0, dst = 0;   // host order
    const uint8_t* header = nullptr;
    const uint8_t* payload = nullptr;
    size_t payload_len = 0;      // total_len - header_len: Ethernet padding trimmed

    bool is_fragment() const { return mf || frag_offset != 0; }
    size_t options_len() const { return header_len - kIpv4MinHeaderLen; }

    // Errors: Truncated (header or total_len past len), BadIpHeader (version, IHL,
    // total_len < header), BadIpChecksum (only when verify_checksum). A fragment parses
    // fine; the caller checks is_fragment().
    static Result<Ipv4View> parse(const uint8_t* data, size_t len, bool verify_checksum);
};

struct Ipv4Spec {
    uint32_t src = 0, dst = 0;   // host order
    uint16_t id = 0;
    uint8_t ttl = kIpDefaultTtl;
    uint8_t proto = kIpProtoTcp;
    uint8_t tos = 0;
    bool df = true;              // fastnet does path-MTU discovery, never fragments
    uint16_t payload_len = 0;
};

// Writes a 20-byte header (no options) with its checksum; returns 20, or 0 when cap is
// too small or the total length would exceed 65535.
size_t emit_ipv4(uint8_t* buf, size_t cap, const Ipv4Spec& spec);

} // namespace fastnet
