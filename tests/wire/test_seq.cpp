// Wrap-safe sequence arithmetic (stack/wire/seq.hpp): comparisons, +/-, seq_diff,
// seq_max/min and in_window across the 2^32 wrap.
#include <catch2/catch.hpp>

#include "stack/wire/seq.hpp"

using namespace fastnet;

TEST_CASE("sequence comparisons stay right across the 2^32 wrap", "[seq]") {
    struct Case { uint32_t a, b; bool less; };
    auto c = GENERATE(values<Case>({
        {0xffffff00u, 0x00000100u, true},
        {0x00000100u, 0xffffff00u, false},
        {0u, 1u, true},
        {0xffffffffu, 0u, true},
        {0x7ffffffeu, 0x7fffffffu, true},
        {0x80000000u, 0x7fffffffu, false},
        {100u, 100u, false},
        {0x12345678u, 0x12345678u + 0x7fffffffu, true},
    }));
    CAPTURE(c.a, c.b);
    Seq a(c.a), b(c.b);
    CHECK((a < b) == c.less);
    CHECK((b > a) == c.less);
    CHECK((a >= b) == !c.less);
    CHECK((b <= a) == !c.less);
    CHECK((a <= b) == (c.less || c.a == c.b));
    CHECK((a == b) == (c.a == c.b));
}

TEST_CASE("adding to and subtracting from a sequence number wraps", "[seq]") {
    CHECK(Seq(0xffffffffu) + 1 == Seq(0));
    CHECK(Seq(0) - 1 == Seq(0xffffffffu));
    CHECK(Seq(10) + (-5) == Seq(5));
    CHECK(Seq(0xfffffff0u) + 0x20u == Seq(0x10));
    Seq s(0xfffffffeu);
    s += 3;
    CHECK(s == Seq(1));
    s -= 2;
    CHECK(s == Seq(0xffffffffu));
    ++s;
    CHECK(s.v == 0);
}

TEST_CASE("seq_diff gives the signed distance across the wrap", "[seq]") {
    struct Case { uint32_t a, b; int32_t d; };
    auto c = GENERATE(values<Case>({
        {0x00000100u, 0xffffff00u, 0x200},
        {0xffffff00u, 0x00000100u, -0x200},
        {5u, 5u, 0},
        {0u, 0xffffffffu, 1},
    }));
    CAPTURE(c.a, c.b);
    CHECK(seq_diff(Seq(c.a), Seq(c.b)) == c.d);
    CHECK(Seq(c.a) - Seq(c.b) == c.d);
}

TEST_CASE("seq_max and seq_min pick by sequence order, not by value", "[seq]") {
    CHECK(seq_max(Seq(0xfffffff0u), Seq(5)) == Seq(5));
    CHECK(seq_min(Seq(0xfffffff0u), Seq(5)) == Seq(0xfffffff0u));
    CHECK(seq_max(Seq(7), Seq(7)) == Seq(7));
}

TEST_CASE("in_window holds from lo up to lo+len-1, also across the wrap", "[seq]") {
    struct Case { uint32_t s, lo, len; bool in; };
    auto c = GENERATE(values<Case>({
        {0xfffffff0u, 0xfffffff0u, 0x20, true},
        {0x0000000fu, 0xfffffff0u, 0x20, true},
        {0x00000010u, 0xfffffff0u, 0x20, false},
        {0xffffffefu, 0xfffffff0u, 0x20, false},
        {100u, 100u, 0, false},
        {100u, 100u, 1, true},
        {101u, 100u, 1, false},
    }));
    CAPTURE(c.s, c.lo, c.len);
    CHECK(in_window(Seq(c.s), Seq(c.lo), c.len) == c.in);
}
