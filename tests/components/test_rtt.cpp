// RFC 6298 estimator: hand-computed sequences, clamps, backoff and its reset.
#include <catch2/catch.hpp>

#include "stack/tcp/rtt.hpp"

using namespace fastnet;

namespace {
constexpr TimeNs ms = 1'000'000;
constexpr TimeNs sec = 1'000'000'000;
}

TEST_CASE("the initial RTO is 1 second before any sample", "[tcp][rtt]") {
    RttEstimator r;
    CHECK(r.rto() == 1 * sec);
    CHECK_FALSE(r.has_sample());
    CHECK(r.srtt() == 0);
}

TEST_CASE("samples follow RFC 6298 2.2 and 2.3 as computed by hand", "[tcp][rtt]") {
    struct Step { TimeNs sample, srtt, rttvar, rto; };
    // rto_min = 1 ms so the raw formula shows; G = 1 ms.
    // 1st: SRTT=100, RTTVAR=50, RTO=100+200=300.
    // 2nd R=200: RTTVAR=3/4*50+1/4*|100-200|=62.5, SRTT=7/8*100+1/8*200=112.5, RTO=112.5+250=362.5
    // 3rd R=100: RTTVAR=3/4*62.5+1/4*12.5=50, SRTT=7/8*112.5+12.5=110.9375, RTO=310.9375
    const Step steps[] = {
        {100 * ms, 100 * ms, 50 * ms, 300 * ms},
        {200 * ms, 112'500'000, 62'500'000, 362'500'000},
        {100 * ms, 110'937'500, 50'000'000, 310'937'500},
    };
    RttEstimator r(1 * ms);
    int i = 0;
    for (const Step& s : steps) {
        CAPTURE(i++);
        r.sample(s.sample);
        CHECK(r.srtt() == s.srtt);
        CHECK(r.rttvar() == s.rttvar);
        CHECK(r.rto() == s.rto);
    }
}

TEST_CASE("the RTO is clamped to the configured minimum and maximum", "[tcp][rtt]") {
    auto [sample, rto_min, expect] = GENERATE(table<TimeNs, TimeNs, TimeNs>({
        {1 * ms, 200 * ms, 200 * ms},          // LAN RTT: Linux-style 200 ms floor
        {1 * ms, 1 * sec, 1 * sec},            // RFC 6298 (2.4) floor
        {100 * sec, 200 * ms, 120 * sec},      // 100 s + 4*50 s → capped at 120 s
        {10 * ms, 1 * ms, 30 * ms},            // 10 + max(1, 20)
        {100'000, 1, 1 * ms + 100'000},        // 0.1 ms RTT: G dominates 4*RTTVAR
    }));
    CAPTURE(sample, rto_min);
    RttEstimator r(rto_min);
    r.sample(sample);
    CHECK(r.rto() == expect);
}

TEST_CASE("backoff doubles the RTO up to the maximum and a new sample resets it", "[tcp][rtt]") {
    RttEstimator r;
    r.sample(300 * ms);                         // RTO = 300 + 600 = 900 ms
    REQUIRE(r.rto() == 900 * ms);
    const TimeNs expect[] = {1800 * ms, 3600 * ms, 7200 * ms, 14400 * ms, 28800 * ms,
                             57600 * ms, 115200 * ms, 120 * sec, 120 * sec};
    for (TimeNs e : expect) {
        r.backoff();
        CHECK(r.rto() == e);
    }
    CHECK(r.backoffs() == 9);
    r.sample(300 * ms);     // SRTT stays 300, RTTVAR 3/4*150 = 112.5 → RTO 750
    CHECK(r.rto() == 750 * ms);
    CHECK(r.backoffs() == 0);
}

TEST_CASE("a handshake that needed a retransmission starts data at a 3 second RTO", "[tcp][rtt]") {
    RttEstimator r;
    r.backoff();
    r.reset_after_syn_retransmit();
    CHECK(r.rto() == 3 * sec);
    RttEstimator s;
    s.sample(50 * ms);
    s.reset_after_syn_retransmit();             // a valid sample wins
    CHECK(s.rto() == 200 * ms);             // 50 + 4*25 = 150, floored at rto_min
}
