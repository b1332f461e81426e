// RFC 6675 scoreboard: merging, invalid/D-SACK blocks, IsLost, SetPipe, NextSeg.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "stack/tcp/sack.hpp"

using namespace fastnet;

namespace {
constexpr uint32_t MSS = 1000;
SackBlock blk(uint32_t l, uint32_t r) { return SackBlock{Seq(l), Seq(r)}; }
}  // namespace

TEST_CASE("overlapping and adjacent SACK blocks merge into one range", "[tcp][sack]") {
    const uint32_t base = GENERATE(0u, 0xfffff000u);   // also across the 2^32 wrap
    CAPTURE(base);
    SackScoreboard sb;
    Seq una(base), nxt(base + 20000);
    const SackBlock b1[] = {blk(base + 2000, base + 3000)};
    CHECK(sb.update(una, b1, 1, nxt) == 1000);
    const SackBlock b2[] = {blk(base + 3000, base + 4000), blk(base + 6000, base + 7000)};
    CHECK(sb.update(una, b2, 2, nxt) == 2000);
    CHECK(sb.ranges() == 2);
    const SackBlock b3[] = {blk(base + 2500, base + 6500)};   // bridges both
    CHECK(sb.update(una, b3, 1, nxt) == 2000);
    REQUIRE(sb.ranges() == 1);
    CHECK(sb.range(0).left == Seq(base + 2000));
    CHECK(sb.range(0).right == Seq(base + 7000));
    CHECK(sb.sacked_bytes() == 5000);
    CHECK(sb.is_sacked(Seq(base + 2000), 5000));
    CHECK_FALSE(sb.is_sacked(Seq(base + 1999), 2));
    CHECK(sb.highest_sacked(una) == Seq(base + 7000));
    CHECK(sb.update(una, b3, 1, nxt) == 0);                    // repeat: nothing new
}

TEST_CASE("blocks below snd_una, above snd_nxt or empty are ignored", "[tcp][sack]") {
    auto [l, r] = GENERATE(table<uint32_t, uint32_t>({
        {500, 1000},       // D-SACK of data already cumulatively acked
        {0, 1000},
        {5000, 12000},     // beyond snd_nxt
        {4000, 4000},      // empty
        {4000, 3000},      // inverted
    }));
    CAPTURE(l, r);
    SackScoreboard sb;
    const SackBlock b[] = {blk(l, r)};
    CHECK(sb.update(Seq(1000), b, 1, Seq(11000)) == 0);
    CHECK(sb.empty());
}

TEST_CASE("advancing snd_una forgets ranges below it and clips a straddling one", "[tcp][sack]") {
    SackScoreboard sb;
    const SackBlock b[] = {blk(2000, 3000), blk(4000, 6000)};
    sb.update(Seq(1000), b, 2, Seq(10000));
    REQUIRE(sb.sacked_bytes() == 3000);
    sb.update(Seq(5000), nullptr, 0, Seq(10000));
    REQUIRE(sb.ranges() == 1);
    CHECK(sb.range(0).left == Seq(5000));
    CHECK(sb.sacked_bytes() == 1000);
    sb.update(Seq(6000), nullptr, 0, Seq(10000));
    CHECK(sb.empty());
    CHECK(sb.sacked_bytes() == 0);
}

TEST_CASE("a block reaching below snd_una counts only its part above", "[tcp][sack]") {
    SackScoreboard sb;
    const SackBlock b[] = {blk(500, 3000)};
    CHECK(sb.update(Seq(1000), b, 1, Seq(10000)) == 2000);
}

TEST_CASE("a full scoreboard forgets its highest range, never a lower one", "[tcp][sack]") {
    SackScoreboard sb;
    Seq una(0), nxt(1'000'000);
    for (uint32_t i = 0; i < SackScoreboard::kCapacity; ++i) {
        const SackBlock b[] = {blk(1000 + i * 2000, 2000 + i * 2000)};
        sb.update(una, b, 1, nxt);
    }
    REQUIRE(sb.ranges() == SackScoreboard::kCapacity);
    const SackBlock high[] = {blk(900'000, 901'000)};
    CHECK(sb.update(una, high, 1, nxt) == 0);
    const SackBlock low[] = {blk(100, 200)};
    CHECK(sb.update(una, low, 1, nxt) == 100);
    CHECK(sb.ranges() == SackScoreboard::kCapacity);
    CHECK(sb.range(0).left == Seq(100));
    CHECK(sb.highest_sacked(una) == Seq(1000 + 30 * 2000 + 1000));
}

TEST_CASE("IsLost needs three SACKed segments or more than two SMSS above", "[tcp][sack]") {
    struct Case { std::vector<SackBlock> blocks; uint32_t seq; bool lost; };
    auto c = GENERATE(
        Case{{blk(1000, 2000)}, 0, false},
        Case{{blk(1000, 3000)}, 0, false},                       // exactly 2 SMSS
        Case{{blk(1000, 3001)}, 0, true},                        // more than 2 SMSS
        Case{{blk(1000, 1100), blk(1200, 1300), blk(1400, 1500)}, 0, true},   // 3 segments
        Case{{blk(1000, 1100), blk(1200, 1300)}, 0, false},
        Case{{blk(1000, 4000)}, 4000, false},                    // nothing above 4000
        Case{{blk(1000, 4000), blk(5000, 6000)}, 4000, false},
        Case{{blk(1000, 4000), blk(5000, 8000)}, 4000, true});
    CAPTURE(c.seq, c.lost);
    SackScoreboard sb;
    sb.update(Seq(0), c.blocks.data(), c.blocks.size(), Seq(100000));
    CHECK(sb.is_lost(Seq(c.seq), MSS) == c.lost);
}

TEST_CASE("pipe counts unSACKed, unlost bytes plus retransmissions", "[tcp][sack]") {
    // 10 segments outstanding [0, 10000); segments 2,3,4 and 6 SACKed.
    SackScoreboard sb;
    const SackBlock b[] = {blk(2000, 5000), blk(6000, 7000)};
    sb.update(Seq(0), b, 2, Seq(10000));
    struct Case { uint32_t high_rxt; uint32_t pipe; };
    auto c = GENERATE(
        // holes: [0,2000) lost (4 segs above), [5000,6000) not lost (1 seg above),
        // [7000,10000) not lost: 0 + 1000 + 3000.
        Case{0, 4000},
        Case{1000, 5000},      // the first lost segment was retransmitted
        Case{2000, 6000});
    CAPTURE(c.high_rxt);
    CHECK(sb.pipe(Seq(0), Seq(10000), Seq(c.high_rxt), MSS) == c.pipe);
}

TEST_CASE("pipe without any SACK information is the flight size", "[tcp][sack]") {
    SackScoreboard sb;
    CHECK(sb.pipe(Seq(100), Seq(5100), Seq(100), MSS) == 5000);
}

TEST_CASE("NextSeg retransmits lost holes first, then new data, then other holes", "[tcp][sack]") {
    SackScoreboard sb;
    const SackBlock b[] = {blk(2000, 5000), blk(6000, 7000)};
    sb.update(Seq(0), b, 2, Seq(10000));
    using K = SackScoreboard::Next;
    struct Case { uint32_t high_rxt; bool can_new; K::Kind kind; uint32_t seq, len; };
    auto c = GENERATE(
        Case{0, true, K::Retransmit, 0, 1000},        // rule 1
        Case{1000, true, K::Retransmit, 1000, 1000},  // rule 1, next lost segment
        Case{2000, true, K::NewData, 10000, 0},       // hole at 5000 not lost: rule 2
        Case{2000, false, K::Retransmit, 5000, 1000}, // rule 3
        Case{6000, false, K::None, 0, 0});            // nothing below highest SACKed
    CAPTURE(c.high_rxt, c.can_new);
    auto n = sb.next_seg(Seq(0), Seq(10000), Seq(c.high_rxt), MSS, c.can_new);
    CHECK(n.kind == c.kind);
    if (c.kind != K::None) CHECK(n.seq == Seq(c.seq));
    if (c.kind == K::Retransmit) CHECK(n.len == c.len);
}

TEST_CASE("NextSeg never retransmits a partial hole beyond its end", "[tcp][sack]") {
    SackScoreboard sb;
    const SackBlock b[] = {blk(500, 4000)};
    sb.update(Seq(0), b, 1, Seq(8000));
    auto n = sb.next_seg(Seq(0), Seq(8000), Seq(0), MSS, false);
    REQUIRE(n.kind == SackScoreboard::Next::Retransmit);
    CHECK(n.seq == Seq(0));
    CHECK(n.len == 500);
}

TEST_CASE("pipe equals a byte-by-byte SetPipe over random scoreboards", "[tcp][sack]") {
    const uint64_t seed = GENERATE(1, 2, 3);
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    const uint32_t mss = 10;
    for (int it = 0; it < 2000; ++it) {
        SackScoreboard sb;
        const uint32_t una = 0xffffff00u + static_cast<uint32_t>(rng() % 512);   // wraps
        const uint32_t nxt = una + 1 + static_cast<uint32_t>(rng() % 400);
        SackBlock b[4];
        size_t n = rng() % 5;
        for (size_t k = 0; k < n; ++k) {
            uint32_t l = una + static_cast<uint32_t>(rng() % (nxt - una));
            uint32_t r = l + 1 + static_cast<uint32_t>(rng() % 40);
            b[k] = blk(l, r);
        }
        sb.update(Seq(una), b, n, Seq(nxt));
        const uint32_t hrx = una + static_cast<uint32_t>(rng() % (nxt - una + 1));
        uint32_t expect = 0;
        for (uint32_t s = una; s != nxt; ++s) {
            if (sb.is_sacked(Seq(s), 1)) continue;
            if (!sb.is_lost(Seq(s), mss)) ++expect;
            if (Seq(s) < Seq(hrx)) ++expect;
        }
        REQUIRE(sb.pipe(Seq(una), Seq(nxt), Seq(hrx), mss) == expect);
    }
}
