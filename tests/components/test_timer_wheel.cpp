// Timer wheel: firing order, cancel, re-arm from callbacks, timers beyond one
// revolution, next_expiry() never later than the earliest timer, and a randomized
// comparison against std::multimap.
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <vector>

#include "stack/tcp/timer_wheel.hpp"

using namespace fastnet;

namespace {
constexpr TimeNs ms = 1'000'000;
constexpr TimeNs sec = 1'000'000'000;
}

TEST_CASE("timers fire in expiry order and only once they are due", "[tcp][timer]") {
    TimerWheel w;
    Timer t[5];
    const TimeNs at[5] = {30 * ms, 5 * ms, 5 * ms + 1, 2 * sec, 17 * ms};
    for (int i = 0; i < 5; ++i) { t[i].kind = i; w.arm(t[i], at[i]); }
    REQUIRE(w.size() == 5);
    std::vector<uint32_t> fired;
    auto fire = [&](Timer& x) { fired.push_back(x.kind); };
    w.advance(5 * ms, fire);
    CHECK(fired == std::vector<uint32_t>{1});
    w.advance(5 * ms + 1, fire);
    CHECK(fired == std::vector<uint32_t>{1, 2});
    w.advance(29 * ms, fire);
    CHECK(fired == std::vector<uint32_t>{1, 2, 4});
    w.advance(3 * sec, fire);
    CHECK(fired == std::vector<uint32_t>{1, 2, 4, 0, 3});
    CHECK(w.size() == 0);
    for (auto& x : t) CHECK_FALSE(TimerWheel::armed(x));
}

TEST_CASE("a cancelled timer never fires and re-arming moves it", "[tcp][timer]") {
    TimerWheel w;
    Timer a, b;
    w.arm(a, 10 * ms);
    w.arm(b, 10 * ms);
    w.cancel(a);
    w.cancel(a);                        // harmless twice
    w.arm(b, 50 * ms);                  // moved, not duplicated
    CHECK(w.size() == 1);
    int n = 0;
    w.advance(20 * ms, [&](Timer&) { ++n; });
    CHECK(n == 0);
    w.advance(50 * ms, [&](Timer& x) { CHECK(&x == &b); ++n; });
    CHECK(n == 1);
}

TEST_CASE("a callback may re-arm its own timer and cancel another due timer", "[tcp][timer]") {
    TimerWheel w;
    Timer periodic, victim;
    periodic.kind = 1;
    victim.kind = 2;
    w.arm(periodic, 10 * ms);
    w.arm(victim, 10 * ms);
    int periodic_fired = 0, victim_fired = 0;
    auto fire = [&](Timer& x) {
        if (x.kind == 1) {
            ++periodic_fired;
            w.cancel(victim);
            w.arm(x, x.expires + 10 * ms);
        } else {
            ++victim_fired;
        }
    };
    w.advance(10 * ms, fire);
    CHECK(periodic_fired == 1);
    CHECK(victim_fired == 0);
    w.advance(45 * ms, fire);           // fires at 20, 30, 40 in one call
    CHECK(periodic_fired == 4);
    CHECK(w.size() == 1);
    CHECK(periodic.expires == 50 * ms);
}

TEST_CASE("timers beyond one revolution fire at their time, not a revolution early", "[tcp][timer]") {
    auto far = GENERATE(as<TimeNs>{}, 4096 * ms, 4097 * ms, 60 * sec, 7200 * sec, 7200 * sec + 3);
    CAPTURE(far);
    TimerWheel w;                       // 4096 slots of 1 ms: one revolution is 4.096 s
    Timer t;
    w.arm(t, far);
    int n = 0;
    auto fire = [&](Timer&) { ++n; };
    // Step through time in uneven strides, as an engine would.
    TimeNs now = 0;
    while (now + 997 * ms < far) {
        now += 997 * ms;
        w.advance(now, fire);
        REQUIRE(n == 0);
        REQUIRE(w.next_expiry() <= far);
        REQUIRE(w.next_expiry() > now);
    }
    w.advance(far - 1, fire);
    CHECK(n == 0);
    w.advance(far, fire);
    CHECK(n == 1);
}

TEST_CASE("next_expiry is never later than the earliest timer and not in the past", "[tcp][timer]") {
    TimerWheel w;
    CHECK(w.next_expiry() == ~0ull);
    Timer a, b;
    w.arm(a, 12 * ms + 500);
    CHECK(w.next_expiry() <= 12 * ms + 500);
    CHECK(w.next_expiry() >= 12 * ms);
    w.arm(b, 3 * ms);
    CHECK(w.next_expiry() <= 3 * ms);
    w.advance(3 * ms, [](Timer&) {});
    CHECK(w.next_expiry() > 3 * ms);
    CHECK(w.next_expiry() <= 12 * ms + 500);
    // A timer later in the current tick: exact, so the engine does not spin.
    w.advance(12 * ms, [](Timer&) {});
    CHECK(w.next_expiry() == 12 * ms + 500);
}

TEST_CASE("100k random arms, cancels and advances match a reference multimap", "[tcp][timer]") {
    const uint64_t seed = GENERATE(1, 2, 3);
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    constexpr int N = 512;
    TimerWheel w(1 * ms, 256);          // small wheel: many timers beyond one revolution
    std::vector<Timer> timers(N);
    std::multimap<TimeNs, int> ref;
    std::vector<std::multimap<TimeNs, int>::iterator> where(N);
    std::vector<bool> in_ref(N, false);
    for (int i = 0; i < N; ++i) timers[i].kind = i;
    TimeNs now = 0;
    for (int op = 0; op < 100000; ++op) {
        int i = static_cast<int>(rng() % N);
        switch (rng() % 4) {
        case 0: case 1: {
            TimeNs at = now + (rng() % 4 == 0 ? rng() % (2000 * ms) : rng() % (20 * ms));
            if (rng() % 50 == 0 && now > 5 * ms) at = now - 5 * ms;   // in the past
            w.arm(timers[i], at);
            if (in_ref[i]) ref.erase(where[i]);
            where[i] = ref.emplace(at, i);
            in_ref[i] = true;
            break;
        }
        case 2:
            w.cancel(timers[i]);
            if (in_ref[i]) { ref.erase(where[i]); in_ref[i] = false; }
            break;
        default: {
            TimeNs ne = w.next_expiry();
            if (!ref.empty()) REQUIRE(ne <= ref.begin()->first);
            else REQUIRE(ne == ~0ull);
            now += rng() % (rng() % 10 == 0 ? 3000 * ms : 3 * ms);
            std::vector<int> fired;
            w.advance(now, [&](Timer& x) { fired.push_back(static_cast<int>(x.kind)); });
            std::vector<int> expect;
            while (!ref.empty() && ref.begin()->first <= now) {
                expect.push_back(ref.begin()->second);
                in_ref[ref.begin()->second] = false;
                ref.erase(ref.begin());
            }
            std::sort(fired.begin(), fired.end());
            std::sort(expect.begin(), expect.end());
            REQUIRE(fired == expect);
        }
        }
        REQUIRE(w.size() == ref.size());
    }
    for (auto& t : timers) w.cancel(t);
    CHECK(w.size() == 0);
    CHECK(w.next_expiry() == ~0ull);
}
