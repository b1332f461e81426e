// SipHash-2-4 reference vectors, RFC 6528 ISNs and SYN cookies.
#include <catch2/catch.hpp>

#include <random>

#include "stack/tcp/isn.hpp"

using namespace fastnet;

namespace {
// Key bytes 00..0f read little-endian, as in the SipHash paper's appendix A.
const uint64_t kRefKey[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
const uint64_t kSecret[2] = {0x1234567890abcdefull, 0xfedcba0987654321ull};
const FourTuple kTuple{0x0ad50001, 0x0ad50002, 80, 51234};
constexpr TimeNs sec = 1'000'000'000;
}  // namespace

TEST_CASE("SipHash-2-4 matches the reference vectors", "[tcp][isn]") {
    // Message i = bytes 00..(i-1) (SipHash reference vectors.h, vectors_sip64).
    auto [len, expect] = GENERATE(table<size_t, uint64_t>({
        {0, 0x726fdb47dd0e0e31ull}, {1, 0x74f839c593dc67fdull}, {2, 0x0d6c8009d9a94f5aull},
        {3, 0x85676696d7fb7e2dull}, {4, 0xcf2794e0277187b7ull}, {5, 0x18765564cd99a68dull},
        {6, 0xcbc9466e58fee3ceull}, {7, 0xab0200f58b01d137ull}, {8, 0x93f5f5799a932462ull},
        {9, 0x9e0082df0ba9e4b0ull},
        {15, 0xa129ca6149be45e5ull},     // the paper's appendix A example
    }));
    CAPTURE(len);
    uint8_t msg[64];
    for (size_t i = 0; i < sizeof msg; ++i) msg[i] = static_cast<uint8_t>(i);
    CHECK(siphash24(kRefKey, msg, len) == expect);
}

TEST_CASE("RFC 6528 ISNs advance with a 4 microsecond clock and differ per tuple", "[tcp][isn]") {
    uint32_t a = isn_rfc6528(kSecret, kTuple, 0);
    CHECK(isn_rfc6528(kSecret, kTuple, 4000) == a + 1);
    CHECK(isn_rfc6528(kSecret, kTuple, 4 * sec) == a + 1'000'000);
    FourTuple other = kTuple;
    other.remote_port++;
    CHECK(isn_rfc6528(kSecret, other, 0) != a);
    const uint64_t other_secret[2] = {1, 2};
    CHECK(isn_rfc6528(other_secret, kTuple, 0) != a);
}

TEST_CASE("the TSval offset is one per pair of addresses, not per port", "[tcp][isn]") {
    // A reused local port must not make the new incarnation's timestamps look older
    // than the old one's to a peer in TIME-WAIT (Linux: secure_tcp_ts_off).
    uint32_t a = ts_offset(kSecret, kTuple.local_ip, kTuple.remote_ip);
    CHECK(ts_offset(kSecret, kTuple.local_ip, kTuple.remote_ip) == a);
    CHECK(ts_offset(kSecret, kTuple.local_ip, kTuple.remote_ip + 1) != a);
    const uint64_t other_secret[2] = {1, 2};
    CHECK(ts_offset(other_secret, kTuple.local_ip, kTuple.remote_ip) != a);
}

TEST_CASE("a SYN cookie round-trips the MSS class within two periods", "[tcp][syncookie]") {
    auto [mss, expect] = GENERATE(table<uint16_t, uint16_t>({
        {1460, 1460}, {9000, 1460}, {1448, 1440}, {1400, 1300}, {536, 536}, {100, 536}}));
    auto delay = GENERATE(as<TimeNs>{}, 0, 1 * sec, 63 * sec, 64 * sec, 82 * sec);   // 1087 s: late in the next period
    CAPTURE(mss, delay);
    const TimeNs t0 = 1000 * sec + 5 * sec;
    uint32_t peer_isn = 0xdeadbeef;
    uint32_t cookie = syncookie_make(kSecret, kTuple, peer_isn, mss, t0);
    auto got = syncookie_check(kSecret, kTuple, peer_isn, cookie, t0 + delay);
    REQUIRE(got.has_value());
    CHECK(*got == expect);
}

TEST_CASE("a SYN cookie expires after the previous period", "[tcp][syncookie]") {
    const TimeNs t0 = 1000 * sec;      // start of a period (1000/64 = 15.6 → inside 15)
    uint32_t cookie = syncookie_make(kSecret, kTuple, 7, 1460, t0);
    TimeNs period_start = t0 / kSyncookiePeriod * kSyncookiePeriod;
    CHECK(syncookie_check(kSecret, kTuple, 7, cookie, period_start + 2 * kSyncookiePeriod - 1));
    CHECK_FALSE(syncookie_check(kSecret, kTuple, 7, cookie, period_start + 2 * kSyncookiePeriod));
    CHECK_FALSE(syncookie_check(kSecret, kTuple, 7, cookie, t0 + 1000 * sec));
}

TEST_CASE("a tampered SYN cookie is rejected", "[tcp][syncookie]") {
    const TimeNs t0 = 5000 * sec;
    uint32_t cookie = syncookie_make(kSecret, kTuple, 99, 1460, t0);
    SECTION("any single flipped bit") {
        for (int bit = 0; bit < 32; ++bit) {
            CAPTURE(bit);
            CHECK_FALSE(syncookie_check(kSecret, kTuple, 99, cookie ^ (1u << bit), t0));
        }
    }
    SECTION("another tuple, peer ISN or secret") {
        FourTuple t = kTuple;
        t.remote_ip ^= 1;
        CHECK_FALSE(syncookie_check(kSecret, t, 99, cookie, t0));
        CHECK_FALSE(syncookie_check(kSecret, kTuple, 100, cookie, t0));
        const uint64_t s2[2] = {kSecret[0], kSecret[1] + 1};
        CHECK_FALSE(syncookie_check(s2, kTuple, 99, cookie, t0));
    }
    SECTION("random guesses almost never pass") {
        std::mt19937_64 rng(42);
        int accepted = 0;
        for (int i = 0; i < 100000; ++i)
            accepted += syncookie_check(kSecret, kTuple, 99, static_cast<uint32_t>(rng()), t0).has_value();
        // 2 periods * 4 indexes out of 2^32 per guess: expect ~0.0002 acceptances.
        CHECK(accepted <= 1);
    }
}
