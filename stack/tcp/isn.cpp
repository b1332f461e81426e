// SipHash-2-4, RFC 6528 initial sequence numbers and SYN cookies (RFC 4987).
// Listener SYN handling and active open → isn_rfc6528 / syncookie_make; the listener's
// ACK path → syncookie_check.
#include "stack/tcp/isn.hpp"

#include <cstring>

namespace fastnet {

namespace {

inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline void sipround(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
}

inline uint64_t load_le64(const uint8_t* p) {
    uint64_t x = 0;
    for (int i = 7; i >= 0; --i) x = x << 8 | p[i];
    return x;
}

// Independent key for the cookie's second hash (domain separation).
inline void key2(const uint64_t k[2], uint64_t out[2]) {
    out[0] = k[0] ^ 0x5bd1e9955bd1e995ull;
    out[1] = k[1] ^ 0xc2b2ae3d27d4eb4full;
}

constexpr uint32_t kCookieBits = 24;
constexpr uint32_t kCookieMask = (1u << kCookieBits) - 1;
constexpr uint32_t kMacMask = kCookieMask >> 2;       // 22 bits

}  // namespace

uint64_t siphash24(const uint64_t key[2], const void* data, size_t len) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    uint64_t v0 = key[0] ^ 0x736f6d6570736575ull;
    uint64_t v1 = key[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = key[0] ^ 0x6c7967656e657261ull;
    uint64_t v3 = key[1] ^ 0x7465646279746573ull;
    size_t full = len & ~size_t(7);
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        sipround(v0, v1, v2, v3);
        sipround(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t b = uint64_t(len) << 56;
    for (size_t i = 0; i < (len & 7); ++i) b |= uint64_t(p[full + i]) << (8 * i);
    v3 ^= b;
    sipround(v0, v1, v2, v3);
    sipround(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < 4; ++i) sipround(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t siphash_tuple(const uint64_t key[2], const FourTuple& t, uint32_t extra) {
    uint8_t m[16];
    std::memcpy(m, &t.local_ip, 4);
    std::memcpy(m + 4, &t.remote_ip, 4);
    std::memcpy(m + 8, &t.local_port, 2);
    std::memcpy(m + 10, &t.remote_port, 2);
    std::memcpy(m + 12, &extra, 4);
    return siphash24(key, m, sizeof m);
}

uint32_t isn_rfc6528(const uint64_t secret[2], const FourTuple& t, TimeNs now) {
    // RFC 6528 3: M ticks every 4 microseconds.
    uint32_t m = static_cast<uint32_t>(now / 4000);
    return m + static_cast<uint32_t>(siphash_tuple(secret, t, 0));
}

uint32_t ts_offset(const uint64_t secret[2], uint32_t local_ip, uint32_t remote_ip) {
    return static_cast<uint32_t>(siphash_tuple(secret, FourTuple{local_ip, remote_ip, 0, 0}, 0x7473));
}

uint8_t syncookie_mss_index(uint16_t mss) {
    uint8_t i = 0;
    for (uint8_t k = 0; k < 4; ++k)
        if (kSyncookieMss[k] <= mss) i = k;
    return i;
}

namespace {

// MAC over everything the cookie vouches for: the tuple, the client's ISN, the period
// and the MSS index. Any change to the cookie or the ACK's sequence number breaks it.
uint32_t cookie_mac(const uint64_t secret[2], const FourTuple& t, uint32_t peer_isn,
                    uint32_t count, uint32_t idx) {
    uint64_t k2[2];
    key2(secret, k2);
    uint8_t m[24];
    std::memcpy(m, &t.local_ip, 4);
    std::memcpy(m + 4, &t.remote_ip, 4);
    std::memcpy(m + 8, &t.local_port, 2);
    std::memcpy(m + 10, &t.remote_port, 2);
    std::memcpy(m + 12, &peer_isn, 4);
    std::memcpy(m + 16, &count, 4);
    std::memcpy(m + 20, &idx, 4);
    return static_cast<uint32_t>(siphash24(k2, m, sizeof m)) & kMacMask;
}

}  // namespace

// cookie = H(tuple, peer_isn) + (count mod 256) << 24 | MAC22 << 2 | mss_index.
// As in Linux, the top 8 bits (after removing the keyed offset) recover the 64 s period;
// unlike Linux's additive form, the MAC also covers the MSS index, so flipping low bits
// cannot turn a cookie into another valid one.
uint32_t syncookie_make(const uint64_t secret[2], const FourTuple& t, uint32_t peer_isn,
                        uint16_t mss, TimeNs now) {
    uint32_t count = static_cast<uint32_t>(now / kSyncookiePeriod);
    uint32_t idx = syncookie_mss_index(mss);
    uint32_t v = (count << kCookieBits) | cookie_mac(secret, t, peer_isn, count, idx) << 2 | idx;
    return v + static_cast<uint32_t>(siphash_tuple(secret, t, peer_isn));
}

std::optional<uint16_t> syncookie_check(const uint64_t secret[2], const FourTuple& t,
                                        uint32_t peer_isn, uint32_t cookie, TimeNs now) {
    uint32_t count = static_cast<uint32_t>(now / kSyncookiePeriod);
    uint32_t v = cookie - static_cast<uint32_t>(siphash_tuple(secret, t, peer_isn));
    uint32_t age = (count - (v >> kCookieBits)) & 0xff;
    if (age > 1) return std::nullopt;                  // current or previous period only
    uint32_t idx = v & 3;
    if (((v & kCookieMask) >> 2) != cookie_mac(secret, t, peer_isn, count - age, idx))
        return std::nullopt;
    return kSyncookieMss[idx];
}

}  // namespace fastnet
