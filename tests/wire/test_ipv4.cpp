// IPv4 view and emitter (stack/wire/ipv4.*): round trips, options skipped, fragments
// flagged, malformed headers refused with the right error, Ethernet padding trimmed.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "stack/wire/bytes.hpp"
#include "stack/wire/checksum.hpp"
#include "stack/wire/ipv4.hpp"
#include "tests/wire/frames.hpp"

using namespace fastnet;
using namespace fastnet::testframes;

namespace {
void refresh_checksum(uint8_t* h) {
    store_be16(h + 10, 0);
    store_be16(h + 10, csum_fold(csum_add(0, h, static_cast<size_t>(h[0] & 0xf) * 4)));
}
} // namespace

TEST_CASE("IPv4 headers round-trip through emit and parse", "[ipv4]") {
    auto ttl = GENERATE(uint8_t{1}, uint8_t{64}, uint8_t{255});
    auto id = GENERATE(uint16_t{0}, uint16_t{0xbeef});
    auto df = GENERATE(true, false);
    auto plen = GENERATE(uint16_t{0}, uint16_t{1}, uint16_t{1480});
    CAPTURE(ttl, id, df, plen);
    Ipv4Spec s{0x0ad50002, 0xc0a80101, id, ttl, kIpProtoTcp, 0x10, df, plen};
    std::vector<uint8_t> buf(20 + plen);
    REQUIRE(emit_ipv4(buf.data(), buf.size(), s) == 20);
    auto v = Ipv4View::parse(buf.data(), buf.size(), true);
    REQUIRE(v);
    CHECK(v->src == s.src);
    CHECK(v->dst == s.dst);
    CHECK(v->id == id);
    CHECK(v->ttl == ttl);
    CHECK(v->tos == 0x10);
    CHECK(v->df == df);
    CHECK_FALSE(v->is_fragment());
    CHECK(v->proto == kIpProtoTcp);
    CHECK(v->header_len == 20);
    CHECK(v->payload == buf.data() + 20);
    CHECK(v->payload_len == plen);
}

TEST_CASE("emit_ipv4 refuses a small buffer or an oversized datagram", "[ipv4]") {
    uint8_t buf[20];
    Ipv4Spec s;
    CHECK(emit_ipv4(buf, 19, s) == 0);
    s.payload_len = 65535 - 20;
    CHECK(emit_ipv4(buf, 20, s) == 20);
    s.payload_len = 65535 - 19;
    CHECK(emit_ipv4(buf, 20, s) == 0);
}

TEST_CASE("IPv4 options are skipped and the payload starts after them", "[ipv4]") {
    auto v = Ipv4View::parse(kIpOptions + 14, sizeof kIpOptions - 14, true);
    REQUIRE(v);
    CHECK(v->header_len == 28);
    CHECK(v->options_len() == 8);
    CHECK(v->payload == kIpOptions + 14 + 28);
    CHECK(v->payload_len == 23);
    CHECK(v->proto == kIpProtoTcp);
}

TEST_CASE("fragments are recognised by MF or a non-zero offset", "[ipv4]") {
    struct Case { uint16_t frag_field; bool fragment; uint16_t offset; };
    auto c = GENERATE(values<Case>({
        {0x4000, false, 0},      // DF only
        {0x0000, false, 0},
        {0x2000, true, 0},       // first fragment
        {0x0001, true, 8},       // last fragment
        {0x20b9, true, 185 * 8}, // middle fragment
        {0x1fff, true, 8191 * 8},
    }));
    CAPTURE(c.frag_field);
    uint8_t h[20];
    Ipv4Spec s;
    s.payload_len = 0;
    emit_ipv4(h, sizeof h, s);
    store_be16(h + 6, c.frag_field);
    refresh_checksum(h);
    auto v = Ipv4View::parse(h, sizeof h, true);
    REQUIRE(v);
    CHECK(v->is_fragment() == c.fragment);
    CHECK(v->frag_offset == c.offset);
    auto f = Ipv4View::parse(kFragment + 14, sizeof kFragment - 14, true);
    REQUIRE(f);
    CHECK(f->is_fragment());
    CHECK(f->mf);
}

TEST_CASE("malformed IPv4 headers are refused with the matching error", "[ipv4]") {
    struct Case { const char* what; int byte; uint8_t value; bool fix_checksum; ParseError e; };
    auto c = GENERATE(values<Case>({
        {"version 6", 0, 0x65, true, ParseError::BadIpHeader},
        {"version 0", 0, 0x05, true, ParseError::BadIpHeader},
        {"IHL 4", 0, 0x44, true, ParseError::BadIpHeader},
        {"IHL 0", 0, 0x40, true, ParseError::BadIpHeader},
        {"IHL past the buffer", 0, 0x4f, false, ParseError::Truncated},
        {"total length below the header", 3, 19, true, ParseError::BadIpHeader},
        {"total length past the buffer", 3, 0xff, true, ParseError::Truncated},
        {"header checksum wrong", 8, 63, false, ParseError::BadIpChecksum},
    }));
    CAPTURE(c.what);
    // kPaddedAck's datagram (40 bytes) without the padding.
    uint8_t h[40];
    std::memcpy(h, kPaddedAck + 14, sizeof h);
    REQUIRE(Ipv4View::parse(h, sizeof h, true));
    h[c.byte] = c.value;
    if (c.fix_checksum) refresh_checksum(h);
    auto v = Ipv4View::parse(h, sizeof h, true);
    REQUIRE_FALSE(v);
    CHECK(v.error() == c.e);
    if (c.e == ParseError::BadIpChecksum) CHECK(Ipv4View::parse(h, sizeof h, false));
}

TEST_CASE("every truncation of an IPv4 datagram is rejected", "[ipv4]") {
    const uint8_t* d = kIpOptions + 14;
    size_t n = sizeof kIpOptions - 14;
    auto len = GENERATE_COPY(range<size_t>(0, n));
    CAPTURE(len);
    auto v = Ipv4View::parse(d, len, true);
    REQUIRE_FALSE(v);
    CHECK(v.error() == ParseError::Truncated);
}

TEST_CASE("Ethernet padding after the IPv4 datagram is trimmed", "[ipv4]") {
    auto v = Ipv4View::parse(kPaddedAck + 14, sizeof kPaddedAck - 14, true);
    REQUIRE(v);
    CHECK(v->total_len == 40);
    CHECK(v->payload_len == 20);
}
