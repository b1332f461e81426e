// Initial sequence numbers (RFC 6528) and SYN cookies (RFC 4987, Linux-style encoding),
// both keyed by SipHash-2-4. TCB active open / listener SYN → isn_rfc6528(); listener
// under SYN flood → syncookie_make(); bare ACK with no half-open entry → syncookie_check().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "stack/device.hpp"
#include "stack/tcp/four_tuple.hpp"

namespace fastnet {

// SipHash-2-4 (Aumasson & Bernstein, 2012) with key k[0] = first 8 key bytes read
// little-endian, k[1] = the next 8.
uint64_t siphash24(const uint64_t key[2], const void* data, size_t len);
// The same over the 12 bytes of a 4-tuple plus an extra 32-bit word (no allocation).
uint64_t siphash_tuple(const uint64_t key[2], const FourTuple& t, uint32_t extra);

// RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a
// timer ticking every 4 µs taken from now (ns).
uint32_t isn_rfc6528(const uint64_t secret[2], const FourTuple& t, TimeNs now);

// The TSval offset of a connection (RFC 7323 5.4), per pair of addresses as Linux has it
// (secure_tcp_ts_off): every connection between two hosts shares one timestamp clock, so
// a peer still holding an earlier incarnation of a 4-tuple in TIME-WAIT sees the new
// SYN's TSval as newer (PAWS) and accepts it. Per 4-tuple offsets made about half of all
// reused ports' SYNs look old: answered with an ACK, a RST and a retry a second later.
uint32_t ts_offset(const uint64_t secret[2], uint32_t local_ip, uint32_t remote_ip);

// SYN cookies. MSS table index in the low 2 bits, a 22-bit MAC, a counter of 64 s
// periods in the top 8, all offset by a keyed hash of the 4-tuple and the peer's ISN. t is from OUR side (local = listener).
inline constexpr uint16_t kSyncookieMss[4] = {536, 1300, 1440, 1460};
inline constexpr TimeNs kSyncookiePeriod = 64'000'000'000;   // Linux: 64 s per count
// Index of the largest table entry <= mss (0 if mss < 536).
uint8_t syncookie_mss_index(uint16_t mss);
// Our ISN for a SYN with sequence number peer_isn.
uint32_t syncookie_make(const uint64_t secret[2], const FourTuple& t, uint32_t peer_isn,
                        uint16_t mss, TimeNs now);
// For the completing ACK: cookie = ack - 1, peer_isn = seq - 1. Returns the MSS
// (table value) if the cookie is authentic and from the current or previous period.
std::optional<uint16_t> syncookie_check(const uint64_t secret[2], const FourTuple& t,
                                        uint32_t peer_isn, uint32_t cookie, TimeNs now);

}  // namespace fastnet
