// Checksum vectors for stack/wire/checksum.*: RFC 1071 example, odd lengths, pieces at
// odd offsets, copy+sum, RFC 1624 incremental update, pseudo-header, captured frames.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "stack/wire/bytes.hpp"
#include "stack/wire/checksum.hpp"
#include "tests/wire/frames.hpp"

using namespace fastnet;

namespace {

// Byte-pair reference, written as plainly as RFC 1071 4.1 describes it.
uint16_t reference_sum(const uint8_t* p, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1) s += static_cast<uint32_t>(p[n - 1] << 8);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

uint16_t folded(uint32_t partial) { return static_cast<uint16_t>(~csum_fold(partial)); }

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

} // namespace

TEST_CASE("the RFC 1071 example bytes sum to 0xddf2", "[checksum]") {
    const uint8_t bytes[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    uint32_t s = csum_add(0, bytes, sizeof bytes);
    CHECK(folded(s) == 0xddf2);
    CHECK(csum_fold(s) == 0x220d);
}

TEST_CASE("data of any length and alignment sums like the byte-pair reference",
          "[checksum]") {
    auto len = GENERATE(range<size_t>(0, 70), size_t{255}, size_t{1500}, size_t{9001});
    auto align = GENERATE(range<size_t>(0, 8));
    CAPTURE(len, align);
    auto buf = random_bytes(len + 8, static_cast<uint32_t>(len * 8 + align));
    const uint8_t* p = buf.data() + align;
    CHECK(folded(csum_add(0, p, len)) == reference_sum(p, len));
}

TEST_CASE("all-0xff data does not lose carries", "[checksum]") {
    auto len = GENERATE(size_t{2}, size_t{7}, size_t{8}, size_t{64}, size_t{65535});
    CAPTURE(len);
    std::vector<uint8_t> v(len, 0xff);
    CHECK(folded(csum_add(0, v.data(), len)) == reference_sum(v.data(), len));
}

TEST_CASE("pieces chained at odd offsets sum like the whole", "[checksum]") {
    auto buf = random_bytes(301, 7);
    auto a = GENERATE(size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{8},
                      size_t{9}, size_t{100}, size_t{301});
    auto b = GENERATE(size_t{0}, size_t{1}, size_t{5}, size_t{16}, size_t{33});
    if (a + b > buf.size()) b = buf.size() - a;
    CAPTURE(a, b);
    uint32_t s = csum_add(0, buf.data(), a);
    s = csum_add_at(s, buf.data() + a, b, a);
    s = csum_add_at(s, buf.data() + a + b, buf.size() - a - b, a + b);
    CHECK(folded(s) == reference_sum(buf.data(), buf.size()));
    CHECK(csum_fold(s) == csum_fold(csum_add(0, buf.data(), buf.size())));
}

TEST_CASE("copying while summing copies the bytes and gives the same sum", "[checksum]") {
    auto len = GENERATE(range<size_t>(0, 40), size_t{1448}, size_t{1449});
    auto offset = GENERATE(size_t{0}, size_t{1});
    CAPTURE(len, offset);
    auto src = random_bytes(len, static_cast<uint32_t>(len));
    std::vector<uint8_t> dst(len + 1, 0xaa);
    uint32_t s = csum_copy_at(0x1234, dst.data(), src.data(), len, offset);
    CHECK(std::equal(src.begin(), src.end(), dst.begin()));
    CHECK(dst[len] == 0xaa);
    CHECK(s == csum_add_at(0x1234, src.data(), len, offset));
}

TEST_CASE("the RFC 1624 example update gives 0x0000, not 0xffff", "[checksum]") {
    // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285: HC' = 0x0000.
    CHECK(csum_update16(0xdd2f, 0x5555, 0x3285) == 0x0000);
}

TEST_CASE("an incremental update equals recomputing the checksum", "[checksum]") {
    auto seed = GENERATE(range<uint32_t>(1, 201));
    CAPTURE(seed);
    std::mt19937 rng(seed);
    uint8_t hdr[20];
    for (auto& b : hdr) b = static_cast<uint8_t>(rng());
    store_be16(hdr + 10, 0);
    store_be16(hdr + 10, csum_fold(csum_add(0, hdr, sizeof hdr)));
    size_t word = 2 * (rng() % 10);
    if (word == 10) word = 8;   // never rewrite the checksum field itself
    uint16_t old_word = load_be16(hdr + word);
    uint16_t new_word = static_cast<uint16_t>(rng());
    if (seed % 4 == 0) new_word = 0;
    CAPTURE(word, old_word, new_word);
    uint16_t updated = csum_update16(load_be16(hdr + 10), old_word, new_word);
    store_be16(hdr + word, new_word);
    store_be16(hdr + 10, 0);
    CHECK(updated == csum_fold(csum_add(0, hdr, sizeof hdr)));
    store_be16(hdr + 10, updated);
    CHECK(ipv4_header_checksum_ok(hdr, sizeof hdr));
}

TEST_CASE("the pseudo-header sums host-order addresses as big-endian words",
          "[checksum]") {
    uint8_t ph[12];
    store_be32(ph, 0x0ad50002);
    store_be32(ph + 4, 0x0ad50001);
    ph[8] = 0;
    ph[9] = 6;
    store_be16(ph + 10, 40);
    CHECK(csum_fold(ipv4_pseudo_sum(0x0ad50002, 0x0ad50001, 6, 40)) ==
          csum_fold(csum_add(0, ph, sizeof ph)));
}

TEST_CASE("checksums of the captured frames verify and any flipped bit fails them",
          "[checksum]") {
    using namespace fastnet::testframes;
    // kVlanData: 18-byte Ethernet header, 20-byte IP header, 51-byte segment.
    std::vector<uint8_t> f(kVlanData, kVlanData + sizeof kVlanData);
    uint8_t* ip = f.data() + 18;
    REQUIRE(ipv4_header_checksum_ok(ip, 20));
    REQUIRE(tcp_checksum_ok(0x0ad50002, 0x0ad50001, ip + 20, f.size() - 38));
    CHECK_FALSE(tcp_checksum_ok(0x0ad50003, 0x0ad50001, ip + 20, f.size() - 38));
    auto bit = GENERATE(range<size_t>(0, 51 * 8));
    CAPTURE(bit);
    ip[20 + bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    CHECK_FALSE(tcp_checksum_ok(0x0ad50002, 0x0ad50001, ip + 20, f.size() - 38));
}

TEST_CASE("the pseudo-header sum a CHECKSUM_PARTIAL sender leaves is recognised, nothing else",
          "[checksum][csum-partial]") {
    auto len = GENERATE(size_t{20}, size_t{21}, size_t{32}, size_t{1480});
    CAPTURE(len);
    std::vector<uint8_t> seg = random_bytes(len, static_cast<uint32_t>(len));
    uint8_t ph[12];
    store_be32(ph, 0x0ad50002);
    store_be32(ph + 4, 0x0ad50001);
    ph[8] = 0;
    ph[9] = 6;
    store_be16(ph + 10, static_cast<uint16_t>(len));
    uint16_t pseudo = reference_sum(ph, sizeof ph);   // folded, not complemented
    store_be16(seg.data() + 16, pseudo);
    CHECK(tcp_checksum_is_pseudo_sum(0x0ad50002, 0x0ad50001, seg.data(), len));
    CHECK_FALSE(tcp_checksum_is_pseudo_sum(0x0ad50003, 0x0ad50001, seg.data(), len));
    CHECK_FALSE(tcp_checksum_is_pseudo_sum(0x0ad50002, 0x0ad50001, seg.data(), len - 1));
    CHECK_FALSE(tcp_checksum_is_pseudo_sum(0x0ad50002, 0x0ad50001, seg.data(), 17));
    store_be16(seg.data() + 16, static_cast<uint16_t>(~pseudo));
    CHECK_FALSE(tcp_checksum_is_pseudo_sum(0x0ad50002, 0x0ad50001, seg.data(), len));
}
