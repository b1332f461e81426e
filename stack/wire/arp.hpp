// ARP for Ethernet/IPv4 (RFC 826): the checked ArpView over an Ethernet payload and
// emit_arp(). The runtime passes ARP to the kernel; this exists for tests, tools and a
// possible user-space responder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "stack/wire/ethernet.hpp"

namespace fastnet {

inline constexpr uint16_t kArpRequest = 1;
inline constexpr uint16_t kArpReply = 2;
inline constexpr size_t kArpLen = 28;   // Ethernet/IPv4 ARP body

struct ArpView {
    uint16_t op = 0;
    MacAddr sha, tha;
    uint32_t spa = 0, tpa = 0;   // host order

    // nullopt unless htype 1, ptype 0x0800, hlen 6, plen 4 and 28 bytes are there.
    static std::optional<ArpView> parse(const uint8_t* data, size_t len);
};

// Writes the 28-byte body (no Ethernet header); returns 28, or 0 when cap is too small.
size_t emit_arp(uint8_t* buf, size_t cap, const ArpView& arp);

} // namespace fastnet
