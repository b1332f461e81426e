// NewReno and CUBIC window arithmetic: initial window, slow start with ABC, Reno's
// 1 SMSS per RTT, CUBIC's W(t) curve (RFC 9438 eq. 1), beta, fast convergence,
// the Reno-friendly region, RTO and idle restart.
#include <catch2/catch.hpp>

#include <cmath>

#include "stack/tcp/congestion.hpp"

using namespace fastnet;

namespace {
constexpr TimeNs ms = 1'000'000;
constexpr uint32_t MSS = 1460;

// Slow start (one ACK per segment) up to `segs` segments.
void grow_to(Congestion& c, uint32_t segs) {
    while (c.cwnd() < segs * MSS) c.on_ack(MSS, c.cwnd(), 0, 0);
    REQUIRE(c.cwnd() == segs * MSS);
}

// One RTT of ACKs for a full window, spread evenly from `start`.
TimeNs ack_one_rtt(Congestion& c, TimeNs start, TimeNs rtt) {
    uint32_t w = c.cwnd();
    uint32_t n = w / MSS;
    for (uint32_t i = 0; i < n; ++i)
        c.on_ack(MSS, w, start + rtt * i / n, rtt);
    return start + rtt;
}
}  // namespace

TEST_CASE("the initial window follows RFC 6928", "[tcp][cc]") {
    auto [mss, iw] = GENERATE(table<uint32_t, uint32_t>({
        {536, 5360}, {1000, 10000}, {1460, 14600}, {4000, 14600}, {8960, 17920}}));
    CAPTURE(mss);
    for (auto algo : {CongestionControl::NewReno, CongestionControl::Cubic}) {
        Congestion c(algo);
        c.init(mss, 0);
        CHECK(c.cwnd() == iw);
        CHECK(c.in_slow_start());
    }
}

TEST_CASE("slow start adds every acked byte, stretch ACKs included (Linux)", "[tcp][cc]") {
    auto [acked, growth] = GENERATE(table<uint32_t, uint32_t>({
        {MSS, MSS}, {500, 500}, {2 * MSS, 2 * MSS}, {4 * MSS, 4 * MSS}, {10 * MSS, 10 * MSS}}));
    CAPTURE(acked);
    auto algo = GENERATE(CongestionControl::NewReno, CongestionControl::Cubic);
    Congestion c(algo);
    c.init(MSS, 0);
    uint32_t before = c.cwnd();
    c.on_ack(acked, before, 0, 0);
    CHECK(c.cwnd() == before + growth);
}

TEST_CASE("an application-limited sender does not grow its window", "[tcp][cc]") {
    Congestion c(CongestionControl::NewReno);
    c.init(MSS, 0);
    uint32_t before = c.cwnd();
    c.on_ack(MSS, 2 * MSS, 0, 0);               // only 2 of 10 segments were in flight
    CHECK(c.cwnd() == before);
}

TEST_CASE("NewReno congestion avoidance adds about one SMSS per RTT", "[tcp][cc]") {
    Congestion c(CongestionControl::NewReno);
    c.init(MSS, 0);
    grow_to(c, 40);
    c.on_enter_recovery(40 * MSS, 0);           // ssthresh = FlightSize/2
    CHECK(c.ssthresh() == 20 * MSS);
    CHECK(c.cwnd() == 20 * MSS);
    CHECK(c.in_recovery());
    c.on_ack(MSS, 20 * MSS, 0, 0);              // no growth inside recovery
    CHECK(c.cwnd() == 20 * MSS);
    c.on_exit_recovery(20 * MSS, 0);
    CHECK(c.cwnd() == 20 * MSS);
    CHECK_FALSE(c.in_slow_start());
    TimeNs t = 0;
    for (uint32_t rtt = 1; rtt <= 10; ++rtt) {
        t = ack_one_rtt(c, t, 100 * ms);
        CAPTURE(rtt);
        CHECK(c.cwnd() == (20 + rtt) * MSS);
    }
}

TEST_CASE("NewReno recovery exit deflates to min(ssthresh, FlightSize + SMSS)", "[tcp][cc]") {
    Congestion c(CongestionControl::NewReno);
    c.init(MSS, 0);
    grow_to(c, 40);
    c.on_enter_recovery(40 * MSS, 0);
    for (int i = 0; i < 3; ++i) c.on_recovery_dupack();      // RFC 5681 inflation
    CHECK(c.cwnd() == 23 * MSS);
    c.on_partial_ack(3 * MSS);                  // RFC 6582: deflate, add back one SMSS
    CHECK(c.cwnd() == 21 * MSS);
    c.on_exit_recovery(5 * MSS, 0);
    CHECK(c.cwnd() == 6 * MSS);
    CHECK(c.ssthresh() == 20 * MSS);
}

TEST_CASE("CUBIC reduces by beta 0.7 and remembers W_max", "[tcp][cc]") {
    Congestion c(CongestionControl::Cubic);
    c.init(MSS, 0);
    grow_to(c, 100);
    c.on_enter_recovery(100 * MSS, 0);
    CHECK(c.ssthresh() == 70 * MSS);
    CHECK(c.cwnd() == 70 * MSS);
    CHECK(c.cubic_w_max() == Approx(100));
}

TEST_CASE("CUBIC fast convergence lowers W_max when losses come below it", "[tcp][cc]") {
    Congestion c(CongestionControl::Cubic);
    c.init(MSS, 0);
    grow_to(c, 100);
    c.on_enter_recovery(100 * MSS, 0);
    c.on_exit_recovery(100 * MSS, 0);
    c.on_enter_recovery(70 * MSS, 0);           // lost again at 70 < W_max = 100
    CHECK(c.cubic_w_max() == Approx(70 * (1 + 0.7) / 2));
    CHECK(c.cwnd() == 49 * MSS);
}

TEST_CASE("CUBIC's window follows W(t) = C(t-K)^3 + W_max after a loss", "[tcp][cc]") {
    Congestion c(CongestionControl::Cubic);
    c.init(MSS, 0);
    grow_to(c, 100);
    c.on_enter_recovery(100 * MSS, 0);
    c.on_exit_recovery(100 * MSS, 0);
    REQUIRE(c.cwnd() == 70 * MSS);
    const TimeNs rtt = 100 * ms;
    const double K = std::cbrt((100.0 - 70.0) / 0.4);        // RFC 9438 eq. 2
    auto W = [&](double t) { return 0.4 * std::pow(t - K, 3) + 100.0; };
    TimeNs t = 0;
    ack_one_rtt(c, t, rtt);                     // starts the epoch at t = 0
    CHECK(c.cubic_k() == Approx(K).epsilon(1e-9));
    CHECK(c.cubic_w(0) == Approx(70.0));
    CHECK(c.cubic_w(K) == Approx(100.0));
    t = rtt;
    const double checkpoints[] = {0.5, 1.0, 2.0, 3.0, 4.0, K, 5.0, 6.0};
    for (double cp : checkpoints) {
        while (t < static_cast<TimeNs>(cp * 1e9)) t = ack_one_rtt(c, t, rtt);
        double now = static_cast<double>(t) / 1e9;
        double segs = static_cast<double>(c.cwnd()) / MSS;
        CAPTURE(now, segs, W(now));
        // The window tracks the curve with at most about one RTT of lag.
        CHECK(segs >= W(now - 0.1) - 1.5);
        CHECK(segs <= W(now + 0.1) + 1.0);
    }
}

TEST_CASE("CUBIC follows the Reno-friendly estimate when it is above the curve", "[tcp][cc]") {
    Congestion c(CongestionControl::Cubic);
    c.init(MSS, 0);
    grow_to(c, 100);
    c.on_enter_recovery(100 * MSS, 0);
    c.on_exit_recovery(100 * MSS, 0);
    // A 1 ms RTT: Reno would add ~0.53 segments per RTT, far faster than the cubic
    // curve's first second.
    TimeNs t = 0;
    const TimeNs rtt = 1 * ms;
    while (t < 500 * ms) t = ack_one_rtt(c, t, rtt);
    double segs = static_cast<double>(c.cwnd()) / MSS;
    CHECK(segs > c.cubic_w(0.5 + 0.001) + 5);
    // W_est grew by alpha_cubic = 3(1-0.7)/(1+0.7) per RTT until reaching cwnd_prior
    // (100 segments), then by 1 per RTT: the window must be well above 100.
    CHECK(segs > 120);
}

TEST_CASE("an RTO collapses cwnd to one segment and sets ssthresh", "[tcp][cc]") {
    auto [algo, ssthresh] = GENERATE(table<CongestionControl, uint32_t>({
        {CongestionControl::NewReno, 20 * MSS},     // FlightSize / 2
        {CongestionControl::Cubic, 28 * MSS},       // cwnd * 0.7
    }));
    CAPTURE(static_cast<int>(algo));
    Congestion c(algo);
    c.init(MSS, 0);
    grow_to(c, 40);
    c.on_rto(40 * MSS, 0);
    CHECK(c.cwnd() == MSS);
    CHECK(c.ssthresh() == ssthresh);
    c.on_rto(MSS, 0, false);                    // backed-off expiry: ssthresh unchanged
    CHECK(c.ssthresh() == ssthresh);
    c.on_ack(MSS, MSS, 0, 0);                   // slow start again
    CHECK(c.cwnd() == 2 * MSS);
}

TEST_CASE("ssthresh never drops below two segments", "[tcp][cc]") {
    auto algo = GENERATE(CongestionControl::NewReno, CongestionControl::Cubic);
    Congestion c(algo);
    c.init(MSS, 0);
    c.on_rto(MSS, 0);
    c.on_enter_recovery(MSS, 0);
    CHECK(c.ssthresh() == 2 * MSS);
}

TEST_CASE("after an idle period longer than the RTO the window restarts at IW", "[tcp][cc]") {
    auto [idle, expect] = GENERATE(table<TimeNs, uint32_t>({
        {100 * ms, 50 * MSS},       // shorter than the RTO: unchanged
        {2000 * ms, 10 * MSS},      // RFC 5681 4.1: min(IW, cwnd)
    }));
    CAPTURE(idle);
    Congestion c(CongestionControl::Cubic);
    c.init(MSS, 0);
    grow_to(c, 50);
    c.on_idle_restart(0, idle, 300 * ms);
    CHECK(c.cwnd() == expect);
}
