// Flow table: random insert/find/erase against std::unordered_map, backward-shift
// deletion keeps every remaining key reachable.
#include <catch2/catch.hpp>

#include <random>
#include <unordered_map>
#include <vector>

#include "stack/tcp/flow_table.hpp"

using namespace fastnet;

namespace {
uint64_t pack(const FourTuple& t) {
    return (uint64_t(t.remote_ip & 0xffff) << 32) | (uint64_t(t.remote_port) << 16) | t.local_port;
}
}  // namespace

TEST_CASE("the flow table agrees with std::unordered_map over random operations", "[tcp][flow]") {
    const uint64_t seed = GENERATE(1, 2, 3, 4);
    const uint32_t cap = GENERATE(64u, 4096u);
    CAPTURE(seed, cap);
    std::mt19937_64 rng(seed);
    FlowTable ft(cap, rng());
    REQUIRE(ft.slots() >= 2 * cap);
    std::unordered_map<uint64_t, uint32_t> ref;
    // A small key space so that inserts collide with existing keys and erases hit.
    std::vector<FourTuple> keys;
    for (uint32_t i = 0; i < cap * 2; ++i)
        keys.push_back(FourTuple{0x0ad50001, 0x0ad50000 + (i % 97),
                                 80, static_cast<uint16_t>(40000 + i / 97)});
    for (int op = 0; op < 200000; ++op) {
        const FourTuple& k = keys[rng() % keys.size()];
        uint32_t v = static_cast<uint32_t>(rng() % 1000000);
        switch (rng() % 3) {
        case 0: {
            bool ok = ft.insert(k, v);
            bool expect = !ref.count(pack(k)) && ref.size() < cap;
            REQUIRE(ok == expect);
            if (ok) ref[pack(k)] = v;
            break;
        }
        case 1:
            REQUIRE(ft.erase(k) == (ref.erase(pack(k)) == 1));
            break;
        default: {
            auto it = ref.find(pack(k));
            REQUIRE(ft.find(k) == (it == ref.end() ? FlowTable::kEmpty : it->second));
        }
        }
        REQUIRE(ft.size() == ref.size());
    }
    for (const auto& k : keys) {
        auto it = ref.find(pack(k));
        REQUIRE(ft.find(k) == (it == ref.end() ? FlowTable::kEmpty : it->second));
    }
}

TEST_CASE("the flow hash depends on the seed and on every tuple field", "[tcp][flow]") {
    FlowTable a(16, 1), b(16, 2);
    FourTuple t{1, 2, 3, 4};
    CHECK(a.hash(t) != b.hash(t));
    FourTuple u[] = {{9, 2, 3, 4}, {1, 9, 3, 4}, {1, 2, 9, 4}, {1, 2, 3, 9}};
    for (auto& x : u) CHECK(a.hash(x) != a.hash(t));
}
