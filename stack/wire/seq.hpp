// Wrap-safe 32-bit TCP sequence numbers (RFC 9293 3.4, RFC 1982 serial arithmetic).
// Used by the TCB (stack/tcp/) for snd_una, snd_nxt, rcv_nxt ... and by TcpView.
// a < b means "b is ahead of a by less than 2^31", so comparisons stay right across wrap.
#pragma once

#include <cstdint>

namespace fastnet {

struct Seq {
    uint32_t v = 0;

    constexpr Seq() = default;
    constexpr explicit Seq(uint32_t x) : v(x) {}

    constexpr Seq& operator+=(uint32_t n) { v += n; return *this; }
    constexpr Seq& operator-=(uint32_t n) { v -= n; return *this; }
    constexpr Seq& operator++() { ++v; return *this; }

    friend constexpr bool operator==(Seq a, Seq b) { return a.v == b.v; }
    friend constexpr bool operator!=(Seq a, Seq b) { return a.v != b.v; }
    friend constexpr bool operator<(Seq a, Seq b) { return static_cast<int32_t>(a.v - b.v) < 0; }
    friend constexpr bool operator<=(Seq a, Seq b) { return static_cast<int32_t>(a.v - b.v) <= 0; }
    friend constexpr bool operator>(Seq a, Seq b) { return static_cast<int32_t>(a.v - b.v) > 0; }
    friend constexpr bool operator>=(Seq a, Seq b) { return static_cast<int32_t>(a.v - b.v) >= 0; }

    // Seq + n with n an int or uint32_t: a negative int wraps to a subtraction.
    friend constexpr Seq operator+(Seq a, uint32_t n) { return Seq(a.v + n); }
    friend constexpr Seq operator-(Seq a, uint32_t n) { return Seq(a.v - n); }
    // Distance a - b as a signed count (the same value as seq_diff).
    friend constexpr int32_t operator-(Seq a, Seq b) { return static_cast<int32_t>(a.v - b.v); }
};

constexpr int32_t seq_diff(Seq a, Seq b) { return static_cast<int32_t>(a.v - b.v); }
constexpr Seq seq_max(Seq a, Seq b) { return a < b ? b : a; }
constexpr Seq seq_min(Seq a, Seq b) { return a < b ? a : b; }

// lo <= s < lo + len, wrap-safe; an empty window contains nothing.
constexpr bool in_window(Seq s, Seq lo, uint32_t len) { return s.v - lo.v < len; }

} // namespace fastnet
