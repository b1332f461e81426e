// Simulated link: determinism per seed, loss rate, bandwidth and queue limit, delay,
// reordering, duplication, corruption, and no leaked buffers.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "stack/sim/sim_link.hpp"

using namespace fastnet;

namespace {
constexpr TimeNs us = 1'000;
constexpr TimeNs ms = 1'000'000;

bool send(SimDevice& d, uint32_t id, uint32_t len) {
    Frame f;
    if (d.tx_alloc(&f, 1) != 1) return false;
    std::memset(f.data, 0, len);
    std::memcpy(f.data, &id, sizeof id);
    f.len = len;
    d.tx_submit(&f, 1);
    d.tx_flush();
    return true;
}

struct Rx { uint32_t id; uint32_t len; TimeNs at; bool intact; };

void drain(SimDevice& d, std::vector<Rx>& out, TimeNs now) {
    Frame fs[32];
    size_t n;
    while ((n = d.rx_burst(fs, 32)) > 0) {
        for (size_t i = 0; i < n; ++i) {
            uint32_t id;
            std::memcpy(&id, fs[i].data, sizeof id);
            bool intact = true;
            for (uint32_t k = 4; k < fs[i].len; ++k) intact &= fs[i].data[k] == 0;
            out.push_back(Rx{id, fs[i].len, now, intact});
        }
        d.rx_release(fs, n);
    }
}

// Sends `count` frames a→b, one every `gap`, and runs the link until it is empty.
std::vector<Rx> run(SimLink& link, uint32_t count, TimeNs gap, uint32_t len = 1000) {
    std::vector<Rx> got;
    TimeNs now = 0;
    for (uint32_t i = 0; i < count; ++i) {
        link.advance(now);
        drain(link.b(), got, now);
        REQUIRE(send(link.a(), i, len));
        now += gap;
    }
    while (link.next_event() != ~0ull) {
        now = std::max(now, link.next_event());
        link.advance(now);
        drain(link.b(), got, now);
    }
    return got;
}
}  // namespace

TEST_CASE("the same seed gives the same deliveries, another seed does not", "[tcp][sim]") {
    SimLinkParams p;
    p.loss = 0.05; p.reorder = 0.1; p.reorder_extra = 300 * us; p.duplicate = 0.02;
    p.delay = 1 * ms;
    auto ids = [&](uint64_t seed) {
        SimLink link(p, p, seed);
        std::vector<uint32_t> v;
        for (auto& r : run(link, 5000, 50 * us)) v.push_back(r.id);
        return v;
    };
    auto a1 = ids(42), a2 = ids(42), b = ids(43);
    CHECK(a1 == a2);
    CHECK(a1 != b);
}

TEST_CASE("the loss rate over 100k frames is within tolerance", "[tcp][sim]") {
    const double loss = GENERATE(0.0, 0.01, 0.05, 0.2);
    const uint64_t seed = 1234;
    CAPTURE(loss, seed);
    SimLinkParams p;
    p.loss = loss;
    SimLink link(p, p, seed);
    auto got = run(link, 100000, 1 * us, 64);
    const auto& st = link.stats(0);
    CHECK(st.sent == 100000);
    CHECK(st.delivered == got.size());
    CHECK(st.lost + st.delivered == 100000);
    double rate = static_cast<double>(st.lost) / 100000.0;
    CHECK(rate == Approx(loss).margin(0.005));   // > 5 standard deviations at 20 %
    CHECK(link.buffers_in_use() == 0);
}

TEST_CASE("the bandwidth limit paces frames and the queue drops the tail", "[tcp][sim]") {
    SimLinkParams p;
    p.rate_bps = 10'000'000;                 // 10 Mbit/s: a 1250-byte frame takes 1 ms
    p.delay = 5 * ms;
    p.queue_bytes = 20 * 1250;
    SimLink link(p, p, 7);
    // 100 frames at once: 20 fit in the queue, the rest are dropped.
    auto got = run(link, 100, 0, 1250);
    CHECK(link.stats(0).queue_drops == 80);
    REQUIRE(got.size() == 20);
    for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i].id == i);
        CHECK(got[i].at == (i + 1) * ms + 5 * ms);   // serialisation + propagation
    }
    CHECK(link.buffers_in_use() == 0);
}

TEST_CASE("a paced sender below the bandwidth limit loses nothing", "[tcp][sim]") {
    SimLinkParams p;
    p.rate_bps = 100'000'000;                // 1000-byte frame: 80 µs
    p.queue_bytes = 10'000;
    SimLink link(p, p, 9);
    auto got = run(link, 10000, 100 * us);
    CHECK(got.size() == 10000);
    CHECK(link.stats(0).queue_drops == 0);
    // Throughput over the run never exceeds the limit.
    double seconds = static_cast<double>(got.back().at) / 1e9;
    CHECK(link.stats(0).bytes_delivered * 8 / seconds <= 100'000'000 * 1.001);
}

TEST_CASE("reordering and duplication are applied at their rates", "[tcp][sim]") {
    SimLinkParams p;
    p.reorder = 0.1; p.reorder_extra = 500 * us; p.duplicate = 0.05;
    SimLink link(p, p, 99);
    auto got = run(link, 20000, 20 * us, 200);
    const auto& st = link.stats(0);
    CHECK(static_cast<double>(st.reordered) / 20000 == Approx(0.1).margin(0.01));
    CHECK(static_cast<double>(st.duplicated) / 20000 == Approx(0.05).margin(0.01));
    CHECK(got.size() == 20000 + st.duplicated);
    size_t out_of_order = 0;
    for (size_t i = 1; i < got.size(); ++i) out_of_order += got[i].id < got[i - 1].id;
    CHECK(out_of_order > 1000);
    std::vector<int> seen(20000, 0);
    for (auto& r : got) seen[r.id]++;
    for (int s : seen) REQUIRE((s == 1 || s == 2));
    CHECK(link.buffers_in_use() == 0);
}

TEST_CASE("corruption flips one bit in the chosen frames", "[tcp][sim]") {
    SimLinkParams p;
    p.corrupt = 0.1;
    SimLink link(p, p, 5);
    auto got = run(link, 10000, 10 * us, 500);
    size_t broken = 0;
    REQUIRE(got.size() == 10000);               // no loss, no reordering: id i arrives i-th
    for (size_t i = 0; i < got.size(); ++i) broken += !got[i].intact || got[i].id != i;
    CHECK(link.stats(0).corrupted > 800);
    // A flip in the 4 id bytes shows as a wrong id; elsewhere as a non-zero byte.
    CHECK(broken == link.stats(0).corrupted);
}

TEST_CASE("both directions run independently and frames carry their length", "[tcp][sim]") {
    SimLinkParams fast, slow;
    fast.delay = 1 * ms;
    slow.delay = 3 * ms;
    SimLink link(fast, slow, 1);
    REQUIRE(send(link.a(), 1, 60));
    REQUIRE(send(link.b(), 2, 1514));
    CHECK(link.next_event() == 1 * ms);
    std::vector<Rx> at_a, at_b;
    link.advance(1 * ms);
    drain(link.a(), at_a, 1 * ms);
    drain(link.b(), at_b, 1 * ms);
    REQUIRE(at_b.size() == 1);
    CHECK(at_b[0].len == 60);
    CHECK(at_a.empty());
    CHECK(link.next_event() == 3 * ms);
    link.advance(3 * ms);
    drain(link.a(), at_a, 3 * ms);
    REQUIRE(at_a.size() == 1);
    CHECK(at_a[0].id == 2);
    CHECK(at_a[0].len == 1514);
    CHECK(link.buffers_in_use() == 0);
    CHECK(link.next_event() == ~0ull);
}

TEST_CASE("abandoned and exhausted TX buffers are accounted for", "[tcp][sim]") {
    SimLink link({}, {}, 3, 8, 256);
    Frame f[10];
    CHECK(link.a().tx_alloc(f, 10) == 8);      // pool of 8
    CHECK(link.buffers_in_use() == 8);
    CHECK(link.a().tx_capacity() == 256);
    link.a().tx_abandon(f, 8);
    CHECK(link.buffers_in_use() == 0);
}
