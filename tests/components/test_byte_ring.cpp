// Byte ring: wrap-around, zero-copy peek across the wrap, out-of-order write_at/commit.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "stack/tcp/byte_ring.hpp"

using namespace fastnet;

namespace {
std::string to_string(const ByteRing::Spans& s) {
    return std::string(reinterpret_cast<const char*>(s.p1), s.n1) +
           std::string(reinterpret_cast<const char*>(s.p2), s.n2);
}
}  // namespace

TEST_CASE("writes beyond capacity are clipped and reads drain in order", "[tcp][ring]") {
    ByteRing r(8);
    CHECK(r.write("abcdefghij", 10) == 8);
    CHECK(r.free() == 0);
    char out[16] = {};
    CHECK(r.read(out, 3) == 3);
    CHECK(std::string(out, 3) == "abc");
    CHECK(r.write("XYZ", 3) == 3);                 // wraps
    CHECK(r.read(out, 16) == 8);
    CHECK(std::string(out, 8) == "defghXYZ");
    CHECK(r.empty());
}

TEST_CASE("peek returns two spans across the wrap without consuming", "[tcp][ring]") {
    auto [consumed, offset, n, expect, pieces] = GENERATE(table<size_t, size_t, size_t, std::string, int>({
        {0, 0, 10, "0123456789", 1},
        {6, 0, 10, "6789ABCDEF", 2},
        {6, 2, 3, "89A", 2},
        {6, 4, 3, "ABC", 1},
        {6, 8, 10, "EF", 1},          // clipped at the end of the data
        {6, 10, 1, "", 0},            // offset past the data
    }));
    CAPTURE(consumed, offset, n);
    ByteRing r(10);
    r.write("0123456789", 10);
    r.consume(consumed);
    const std::string more = "ABCDEFGHIJ";
    r.write(more.data(), consumed);
    auto s = r.peek(offset, n);
    CHECK(to_string(s) == expect);
    CHECK((s.n1 ? 1 : 0) + (s.n2 ? 1 : 0) == pieces);
    CHECK(r.size() == 10);
}

TEST_CASE("out-of-order data placed with write_at becomes readable on commit", "[tcp][ring]") {
    const size_t start = GENERATE(0u, 5u, 9u);    // ring head positions, to cross the wrap
    CAPTURE(start);
    ByteRing r(12);
    std::vector<char> junk(start, '.');
    r.write(junk.data(), start);
    r.consume(start);
    // Segments "cd" and "ef" arrive before "ab".
    CHECK(r.write_at(4, "ef", 2) == 2);
    CHECK(r.write_at(2, "cd", 2) == 2);
    CHECK(r.size() == 0);
    CHECK(r.write("ab", 2) == 2);
    r.commit(4);                                  // what Reassembly::pop_contiguous said
    char out[8] = {};
    CHECK(r.read(out, 8) == 6);
    CHECK(std::string(out, 6) == "abcdef");
}

TEST_CASE("write_at never writes past the free space", "[tcp][ring]") {
    ByteRing r(8);
    r.write("abcd", 4);
    CHECK(r.write_at(2, "xyzw", 4) == 2);
    CHECK(r.write_at(4, "q", 1) == 0);
    r.commit(100);                                // clipped to capacity
    CHECK(r.size() == 8);
}

TEST_CASE("a random stream through the ring arrives byte-exact", "[tcp][ring]") {
    const uint64_t seed = GENERATE(1, 7, 99);
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    ByteRing r(1000);
    uint64_t wpos = 0, rpos = 0;
    std::vector<uint8_t> buf(700);
    for (int it = 0; it < 20000; ++it) {
        size_t n = rng() % 700;
        for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>((wpos + i) * 131);
        wpos += r.write(buf.data(), n);
        size_t m = rng() % 700;
        if (rng() & 1) {
            size_t got = r.read(buf.data(), m);
            for (size_t i = 0; i < got; ++i)
                REQUIRE(buf[i] == static_cast<uint8_t>((rpos + i) * 131));
            rpos += got;
        } else {
            auto s = r.peek(0, m);
            size_t got = s.size();
            for (size_t i = 0; i < got; ++i) {
                uint8_t b = i < s.n1 ? s.p1[i] : s.p2[i - s.n1];
                REQUIRE(b == static_cast<uint8_t>((rpos + i) * 131));
            }
            r.consume(got);
            rpos += got;
        }
        REQUIRE(r.size() == wpos - rpos);
    }
}

TEST_CASE("rings take their storage from the engine's block cache and give it back", "[tcp][ring]") {
    BlockCache cache(3 * 4096);
    const uint8_t* first;
    {
        ByteRing r(4096);
        r.set_cache(&cache);
        CHECK(r.write("abc", 3) == 3);
        first = r.peek(0, 1).p1;
        CHECK(cache.misses == 1);
        CHECK(cache.idle_bytes() == 0);
    }   // closed: the block is kept
    CHECK(cache.idle_bytes() == 4096);
    ByteRing a(4096), b(4096), c(4096), d(4096), big(8192);
    for (ByteRing* r : {&a, &b, &c, &d, &big}) r->set_cache(&cache);
    CHECK(a.write("x", 1) == 1);
    CHECK(a.peek(0, 1).p1 == first);      // the same block again, not the heap
    CHECK(cache.hits == 1);
    CHECK(b.write("y", 1) == 1);          // nothing kept any more: the heap
    CHECK(cache.misses == 2);
    CHECK(c.write("z", 1) == 1);
    CHECK(d.write("w", 1) == 1);
    CHECK(big.write("v", 1) == 1);
    // A ring that grows gives its old block back and keeps its bytes.
    CHECK(a.grow(8192));
    CHECK(cache.idle_bytes() == 4096);
    char out[2] = {};
    CHECK(a.read(out, 2) == 1);
    CHECK(out[0] == 'x');
    // Moved rings carry their block; the source gives nothing back.
    ByteRing moved(std::move(b));
    CHECK(cache.idle_bytes() == 4096);
    CHECK(moved.read(out, 1) == 1);
    CHECK(out[0] == 'y');
    // Beyond the byte limit blocks go to the heap, not the cache.
    a.reset(0); moved.reset(0); c.reset(0); d.reset(0); big.reset(0);
    CHECK(cache.idle_bytes() <= 3 * 4096);
    cache.trim(0);
    CHECK(cache.idle_bytes() == 0);
}

TEST_CASE("placed out-of-order data survives the reader emptying the ring", "[tcp][ring]") {
    ByteRing r(16);
    r.write("abcd", 4);
    CHECK(r.write_at(2, "gh", 2) == 2);          // "ef" still missing
    char out[8] = {};
    CHECK(r.read(out, 8) == 4);                   // in-order data now empty
    CHECK(r.write("ef", 2) == 2);
    r.commit(2);
    CHECK(r.read(out, 8) == 4);
    CHECK(std::string(out, 4) == "efgh");
}

TEST_CASE("a ring takes its storage at the first byte written, not before", "[tcp][ring]") {
    ByteRing r(1 << 20);
    CHECK_FALSE(r.has_storage());
    CHECK(r.capacity() == (1u << 20));
    CHECK(r.free() == (1u << 20));
    char out[4];
    CHECK(r.read(out, sizeof out) == 0);
    CHECK(r.peek(0, 10).size() == 0);
    CHECK(r.write("", 0) == 0);
    CHECK_FALSE(r.has_storage());
    CHECK(r.write("abcd", 4) == 4);
    CHECK(r.has_storage());
    CHECK(r.read(out, 4) == 4);
    CHECK(std::string(out, 4) == "abcd");
    r.reset(16);
    CHECK_FALSE(r.has_storage());
    CHECK(r.empty());
}

TEST_CASE("growing keeps in-order and out-of-order bytes across the wrap", "[tcp][ring]") {
    ByteRing r(8);
    CHECK(r.grow(4));                              // never shrinks
    CHECK(r.capacity() == 8);
    CHECK_FALSE(r.has_storage());
    CHECK(r.grow(10));                             // no storage yet: only the size
    CHECK(r.capacity() == 10);
    CHECK_FALSE(r.has_storage());
    char out[32] = {};
    CHECK(r.write("abcdefgh", 8) == 8);
    CHECK(r.read(out, 6) == 6);                    // head at 6
    CHECK(r.write("ijkl", 4) == 4);                // "ghijkl", wrapping
    CHECK(r.write_at(2, "op", 2) == 2);            // out of order, after a 2-byte hole
    CHECK(r.grow(20));
    CHECK(r.capacity() == 20);
    CHECK(r.size() == 6);
    CHECK(r.write("mn", 2) == 2);                  // fills the hole: "op" is still there
    r.commit(2);
    CHECK(r.read(out, 32) == 10);
    CHECK(std::string(out, 10) == "ghijklmnop");
    CHECK(r.write("0123456789abcdefghij", 20) == 20);
    CHECK(r.free() == 0);
}
