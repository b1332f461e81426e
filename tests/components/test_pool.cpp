// Object pool: O(1) alloc/free, live count, generation-checked handles.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "stack/pool.hpp"

using namespace fastnet;

namespace {
struct Tracked {
    static inline int alive = 0;
    int v;
    explicit Tracked(int x) : v(x) { ++alive; }
    ~Tracked() { --alive; }
};
}  // namespace

TEST_CASE("a freed handle is stale even after its slot is reused", "[tcp][pool]") {
    ObjectPool<Tracked> p(4);
    uint32_t h = p.alloc(1);
    REQUIRE(h != ObjectPool<Tracked>::kInvalid);
    REQUIRE(p.get(h)->v == 1);
    CHECK(p.free(h));
    CHECK(p.get(h) == nullptr);
    CHECK_FALSE(p.free(h));                   // double free detected
    uint32_t h2 = p.alloc(2);
    CHECK(p.index_of(h2) == p.index_of(h));   // same slot ...
    CHECK(h2 != h);                           // ... new generation
    CHECK(p.get(h) == nullptr);
    CHECK(p.get(h2)->v == 2);
}

TEST_CASE("the pool holds exactly its capacity and counts live objects", "[tcp][pool]") {
    const uint32_t cap = GENERATE(1u, 3u, 64u, 1000u);
    CAPTURE(cap);
    {
        ObjectPool<Tracked> p(cap);
        std::vector<uint32_t> hs;
        for (uint32_t i = 0; i < cap; ++i) hs.push_back(p.alloc(static_cast<int>(i)));
        CHECK(p.alloc(0) == ObjectPool<Tracked>::kInvalid);
        CHECK(p.live() == cap);
        CHECK(std::set<uint32_t>(hs.begin(), hs.end()).size() == cap);
        for (uint32_t i = 0; i < cap; i += 2) CHECK(p.free(hs[i]));
        CHECK(p.live() == cap - (cap + 1) / 2);
        CHECK(Tracked::alive == static_cast<int>(p.live()));
    }
    CHECK(Tracked::alive == 0);               // the destructor ends the survivors
}

TEST_CASE("generations wrap without ever producing kNoSock", "[tcp][pool]") {
    // 2^16 slots leave 16 generation bits; the last slot with an all-ones generation
    // would be ~0u. Cycle that slot through more than 2^16 generations.
    const uint32_t cap = 1u << 16;
    ObjectPool<int> p(cap);
    std::vector<uint32_t> hs;
    for (uint32_t i = 0; i < cap; ++i) hs.push_back(p.alloc(0));
    REQUIRE(p.index_of(hs.back()) == cap - 1);
    p.free(hs.back());
    uint32_t prev = hs.back();
    for (int i = 0; i < 70000; ++i) {
        uint32_t h = p.alloc(i);
        REQUIRE(h != ~0u);
        REQUIRE(h != prev);                   // consecutive generations always differ
        REQUIRE(p.get(prev) == nullptr);
        REQUIRE(*p.get(h) == i);
        p.free(h);
        prev = h;
    }
    CHECK(p.live() == cap - 1);
}

TEST_CASE("a pool touches a slot only when it is first used, and reuses freed ones first", "[tcp][pool]") {
    ObjectPool<Tracked> p(100000);
    CHECK(p.touched() == 0);
    uint32_t a = p.alloc(1), b = p.alloc(2), c = p.alloc(3);
    CHECK(p.touched() == 3);
    CHECK(p.at_index(5) == nullptr);
    CHECK(p.get(p.index_of(c) + 1) == nullptr);   // a slot never used is no object
    CHECK(p.free(b));
    uint32_t d = p.alloc(4);
    CHECK(p.index_of(d) == p.index_of(b));
    CHECK(p.touched() == 3);
    CHECK(p.get(a)->v == 1);
    CHECK(p.get(c)->v == 3);
    CHECK(p.get(d)->v == 4);
}
