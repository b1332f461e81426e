// Receiver out-of-order set: merging, in-order pop, RFC 2018 SACK block order, overflow.
#include <catch2/catch.hpp>

#include <vector>

#include "stack/tcp/reassembly.hpp"

using namespace fastnet;

TEST_CASE("the first SACK block holds the most recently received segment", "[tcp][reasm]") {
    const uint32_t base = GENERATE(1000u, 0xffffff00u);
    CAPTURE(base);
    Reassembly r;
    REQUIRE(r.add(Seq(base + 1000), 100));
    REQUIRE(r.add(Seq(base + 3000), 100));
    REQUIRE(r.add(Seq(base + 5000), 100));
    REQUIRE(r.add(Seq(base + 3100), 100));    // extends the middle range
    SackBlock b[4];
    REQUIRE(r.sack_blocks(b, 4) == 3);
    // RFC 2018 4: [3000,3200) first, then the others most recent first.
    CHECK(b[0] == SackBlock{Seq(base + 3000), Seq(base + 3200)});
    CHECK(b[1] == SackBlock{Seq(base + 5000), Seq(base + 5100)});
    CHECK(b[2] == SackBlock{Seq(base + 1000), Seq(base + 1100)});
    REQUIRE(r.sack_blocks(b, 2) == 2);        // room for only two with timestamps on
    CHECK(b[0].left == Seq(base + 3000));
    CHECK(b[1].left == Seq(base + 5000));
}

TEST_CASE("overlapping segments merge and only in-order data is popped", "[tcp][reasm]") {
    struct Seg { uint32_t seq, len; };
    struct Case { std::vector<Seg> segs; uint32_t ranges, bytes; };
    auto c = GENERATE(
        Case{{{100, 50}, {120, 50}}, 1, 70},
        Case{{{100, 50}, {150, 50}}, 1, 100},          // adjacent
        Case{{{100, 50}, {90, 100}}, 1, 100},          // covers
        Case{{{100, 10}, {200, 10}, {105, 100}}, 1, 110},
        Case{{{100, 10}, {300, 10}, {200, 10}}, 3, 30});
    Reassembly r;
    for (auto s : c.segs) REQUIRE(r.add(Seq(s.seq), s.len));
    CHECK(r.ranges() == c.ranges);
    CHECK(r.bytes() == c.bytes);
}

TEST_CASE("pop_contiguous returns the bytes that became in order", "[tcp][reasm]") {
    Reassembly r;
    r.add(Seq(2000), 500);
    r.add(Seq(3000), 500);
    CHECK(r.pop_contiguous(Seq(1000)) == 0);
    CHECK(r.pop_contiguous(Seq(2000)) == 500);   // rcv_nxt reached the range
    CHECK(r.ranges() == 1);
    CHECK(r.pop_contiguous(Seq(3200)) == 300);   // overlapping in-order segment
    CHECK(r.empty());
    r.add(Seq(5000), 10);
    CHECK(r.pop_contiguous(Seq(6000)) == 0);     // stale range dropped
    CHECK(r.empty());
}

TEST_CASE("a 17th disjoint range is refused and counted", "[tcp][reasm]") {
    Reassembly r;
    for (uint32_t i = 0; i < Reassembly::kCapacity; ++i) REQUIRE(r.add(Seq(1000 + i * 100), 10));
    CHECK_FALSE(r.add(Seq(50'000), 10));
    CHECK(r.drops() == 1);
    CHECK(r.add(Seq(1010), 10));                 // still merges with existing ranges
    CHECK(r.ranges() == Reassembly::kCapacity);
}
