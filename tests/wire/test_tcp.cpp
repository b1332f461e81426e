// TCP view, options and emitter (stack/wire/tcp.*): the captured Linux SYN, option
// round trips in Linux's layout, malformed option lists, bad data offsets.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <vector>

#include "stack/wire/tcp.hpp"
#include "tests/wire/frames.hpp"

using namespace fastnet;
using namespace fastnet::testframes;

namespace {
constexpr size_t kSynTcp = 14 + 20;   // offset of the TCP header in kLinuxSyn
}

TEST_CASE("the captured Linux SYN parses to MSS 1460, SACK-permitted, TS and WS 7",
          "[tcp]") {
    auto t = TcpView::parse(kLinuxSyn + kSynTcp, sizeof kLinuxSyn - kSynTcp);
    REQUIRE(t);
    CHECK(t->src_port == 43210);
    CHECK(t->dst_port == 8080);
    CHECK(t->seq == Seq(0x1a2b3c4d));
    CHECK(t->flags == kTcpSyn);
    CHECK(t->has(kTcpSyn));
    CHECK_FALSE(t->has(kTcpAck));
    CHECK(t->window == 64240);
    CHECK(t->header_len == 40);
    CHECK(t->payload_len == 0);
    CHECK(t->seg_len() == 1);
    CHECK(t->opts.mss == uint16_t{1460});
    CHECK(t->opts.sack_permitted);
    REQUIRE(t->opts.ts);
    CHECK(t->opts.ts->tsval == 0x0098a4c2);
    CHECK(t->opts.ts->tsecr == 0);
    CHECK(t->opts.wscale == uint8_t{7});
    CHECK(t->opts.sack_count == 0);
}

TEST_CASE("a SYN is emitted byte for byte in Linux's option layout", "[tcp]") {
    TcpHeaderSpec s;
    s.src_port = 43210;
    s.dst_port = 8080;
    s.seq = Seq(0x1a2b3c4d);
    s.flags = kTcpSyn;
    s.window = 64240;
    s.opts.mss = 1460;
    s.opts.sack_permitted = true;
    s.opts.ts = Timestamps{0x0098a4c2, 0};
    s.opts.wscale = 7;
    uint8_t buf[60];
    REQUIRE(emit_tcp_header(buf, sizeof buf, s) == 40);
    uint8_t expect[40];
    std::memcpy(expect, kLinuxSyn + kSynTcp, 40);
    expect[16] = expect[17] = 0;   // emit_tcp_header leaves the checksum to its caller
    CHECK(std::memcmp(buf, expect, 40) == 0);
    CHECK(emit_tcp_header(buf, 39, s) == 0);
}

TEST_CASE("TCP headers and options round-trip through emit and parse", "[tcp]") {
    auto mss = GENERATE(0, 536, 1460, 65535);
    auto ws = GENERATE(-1, 0, 7, 14);
    auto sackp = GENERATE(false, true);
    auto ts = GENERATE(false, true);
    auto nsack = GENERATE(0, 1, 2, 3, 4);
    CAPTURE(mss, ws, sackp, ts, nsack);
    TcpHeaderSpec s;
    s.src_port = 1;
    s.dst_port = 65535;
    s.seq = Seq(0xfffffff0u);
    s.ack = Seq(0x00000010u);
    s.flags = kTcpAck | kTcpPsh | kTcpEce;
    s.window = 0xabcd;
    s.urgent = 0x1234;
    if (mss) s.opts.mss = static_cast<uint16_t>(mss);
    if (ws >= 0) s.opts.wscale = static_cast<uint8_t>(ws);
    s.opts.sack_permitted = sackp;
    if (ts) s.opts.ts = Timestamps{0xdeadbeef, 0x01020304};
    s.opts.sack_count = static_cast<uint8_t>(nsack);
    for (int i = 0; i < nsack; ++i)
        s.opts.sack[i] = {Seq(0xfffffff0u + 100u * i), Seq(0xfffffff0u + 100u * i + 50)};

    size_t hl = tcp_header_len(s);
    CHECK(hl % 4 == 0);
    CHECK(hl <= 60);
    std::vector<uint8_t> buf(hl + 3, 0x5a);
    REQUIRE(emit_tcp_header(buf.data(), buf.size(), s) == hl);
    auto t = TcpView::parse(buf.data(), buf.size());
    REQUIRE(t);
    CHECK(t->header_len == hl);
    CHECK(t->src_port == 1);
    CHECK(t->dst_port == 65535);
    CHECK(t->seq == s.seq);
    CHECK(t->ack == s.ack);
    CHECK(t->flags == s.flags);
    CHECK(t->window == s.window);
    CHECK(t->urgent == s.urgent);
    CHECK(t->payload_len == 3);
    TcpOptions expect = s.opts;
    expect.sack_count = tcp_sack_blocks_that_fit(s.opts);
    // What Linux sends too: 4 blocks alone, 3 next to timestamps.
    if (!mss && ws < 0) CHECK(expect.sack_count == std::min(nsack, ts ? 3 : 4));
    CHECK(t->opts == expect);
}

TEST_CASE("option lists are accepted or refused by their lengths", "[tcp]") {
    struct Case { const char* what; std::vector<uint8_t> o; bool ok; };
    auto c = GENERATE(values<Case>({
        {"empty", {}, true},
        {"NOPs only", {1, 1, 1, 1}, true},
        {"EOL then garbage", {0, 0xff, 0x00, 0x07}, true},
        {"unknown kind skipped by length", {0xfe, 4, 0xaa, 0xbb, 2, 4, 5, 0xb4}, true},
        {"unknown kind of length 2", {0x1e, 2, 1, 1}, true},
        {"length 0", {2, 0, 0, 0}, false},
        {"length 1", {0xfe, 1, 1, 1}, false},
        {"kind without its length byte", {1, 1, 1, 2}, false},
        {"option overrunning the header", {1, 1, 0xfe, 3}, false},
        {"MSS of length 3", {2, 3, 5, 1}, false},
        {"MSS of length 6", {2, 6, 5, 0xb4, 0, 0, 1, 1}, false},
        {"WS of length 4", {3, 4, 7, 0}, false},
        {"SACK-permitted of length 3", {4, 3, 0, 1}, false},
        {"SACK with no block", {1, 1, 5, 2}, false},
        {"SACK of length 11", {5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, false},
        {"TS of length 8", {8, 8, 0, 0, 0, 0, 0, 0}, false},
        {"TS overrunning by one", {1, 1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0}, false},
    }));
    CAPTURE(c.what);
    TcpOptions o;
    CHECK(parse_tcp_options(c.o.data(), c.o.size(), o) == c.ok);
    // Same bytes inside a real header: refused as BadTcpOptions.
    std::vector<uint8_t> seg(20 + ((c.o.size() + 3) & ~size_t{3}), 0);
    std::copy(c.o.begin(), c.o.end(), seg.begin() + 20);
    seg[12] = static_cast<uint8_t>((seg.size() / 4) << 4);
    auto t = TcpView::parse(seg.data(), seg.size());
    CHECK(t.ok() == c.ok);
    if (!c.ok) CHECK(t.error() == ParseError::BadTcpOptions);
}

TEST_CASE("a SACK option of more than four blocks is refused", "[tcp]") {
    std::vector<uint8_t> o{5, 42};
    o.resize(42, 0);
    TcpOptions opts;
    CHECK_FALSE(parse_tcp_options(o.data(), o.size(), opts));
}

TEST_CASE("window scale shifts above 14 are treated as 14", "[tcp]") {
    auto shift = GENERATE(uint8_t{14}, uint8_t{15}, uint8_t{255});
    CAPTURE(shift);
    uint8_t o[] = {1, 3, 3, shift};
    TcpOptions opts;
    REQUIRE(parse_tcp_options(o, sizeof o, opts));
    CHECK(opts.wscale == uint8_t{14});
}

TEST_CASE("the last copy of a repeated option wins", "[tcp]") {
    uint8_t o[] = {2, 4, 0x05, 0xb4, 2, 4, 0x02, 0x18};
    TcpOptions opts;
    REQUIRE(parse_tcp_options(o, sizeof o, opts));
    CHECK(opts.mss == uint16_t{536});
}

TEST_CASE("a data offset below 5 or beyond the segment is refused", "[tcp]") {
    auto doff = GENERATE(range(0, 16));
    CAPTURE(doff);
    uint8_t seg[40] = {};
    seg[12] = static_cast<uint8_t>(doff << 4);
    auto t = TcpView::parse(seg, sizeof seg);
    CHECK(t.ok() == (doff >= 5 && doff <= 10));
    if (!t) CHECK(t.error() == ParseError::BadTcpHeader);
}

TEST_CASE("a TCP segment shorter than 20 bytes is truncated", "[tcp]") {
    auto len = GENERATE(range<size_t>(0, 20));
    CAPTURE(len);
    auto t = TcpView::parse(kLinuxSyn + kSynTcp, len);
    REQUIRE_FALSE(t);
    CHECK(t.error() == ParseError::Truncated);
}

TEST_CASE("the SACK blocks of a captured ACK are read in order", "[tcp]") {
    auto t = TcpView::parse(kSackAck + 34, sizeof kSackAck - 34);
    REQUIRE(t);
    CHECK(t->opts.sack_count == 2);
    CHECK(t->opts.sack[0] == SackBlock{Seq(0xfffffff0u), Seq(0x10)});
    CHECK(t->opts.sack[1] == SackBlock{Seq(0x20), Seq(0x40)});
    CHECK(t->opts.sack[0].left < t->opts.sack[0].right);
    REQUIRE(t->opts.ts);
    CHECK(t->opts.ts->tsval == 5);
}
