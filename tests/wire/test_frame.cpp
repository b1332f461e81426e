// Whole frames (stack/wire/frame.*): captured frames parse with checksums verified,
// every truncation is rejected, categories and errors, byte-identical re-emission,
// two-piece payloads, capacity checks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "stack/wire/bytes.hpp"
#include "stack/wire/frame.hpp"
#include "tests/wire/frames.hpp"

using namespace fastnet;
using namespace fastnet::testframes;

namespace {

TcpFrameSpec spec_from(const ParsedFrame& f) {
    TcpFrameSpec s;
    s.src_mac = f.eth.src;
    s.dst_mac = f.eth.dst;
    s.vlan_tpid = f.eth.vlan_tpid;
    s.vlan_tci = f.eth.vlan_tci;
    s.src_ip = f.ip.src;
    s.dst_ip = f.ip.dst;
    s.ip_id = f.ip.id;
    s.ttl = f.ip.ttl;
    s.tos = f.ip.tos;
    s.tcp.src_port = f.tcp.src_port;
    s.tcp.dst_port = f.tcp.dst_port;
    s.tcp.seq = f.tcp.seq;
    s.tcp.ack = f.tcp.ack;
    s.tcp.flags = f.tcp.flags;
    s.tcp.window = f.tcp.window;
    s.tcp.urgent = f.tcp.urgent;
    s.tcp.opts = f.tcp.opts;
    return s;
}

const NamedFrame& frame_named(const char* name) {
    for (const auto& f : kFrames)
        if (std::strcmp(f.name, name) == 0) return f;
    FAIL("no frame " << name);
    return kFrames[0];
}

// A data segment as a Linux 6.18 sender with TX checksum offload on (ethtool's default on
// a veth) hands it to the other end: 10.213.220.2:46684 -> 10.213.220.1:9555, 15 bytes
// "odd payload 15!", and in the checksum field (TCP offset 16) 0xcde3, the folded,
// uncomplemented pseudo-header sum (length 47) instead of the checksum 0x7ebf. Captured
// with an AF_PACKET socket on the receiving veth.
const uint8_t kPartialCsumData[] = {
    0xee, 0xfd, 0x27, 0xb5, 0x04, 0xe8, 0xa2, 0x22, 0x7d, 0x0a, 0x85, 0x84,
    0x08, 0x00, 0x45, 0x00, 0x00, 0x43, 0x73, 0xfd, 0x40, 0x00, 0x40, 0x06,
    0xf9, 0x09, 0x0a, 0xd5, 0xdc, 0x02, 0x0a, 0xd5, 0xdc, 0x01, 0xb6, 0x5c,
    0x25, 0x53, 0x83, 0x1d, 0xe9, 0x37, 0xa0, 0x81, 0xb5, 0xe3, 0x80, 0x18,
    0x00, 0x3f, 0xcd, 0xe3, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x94, 0x71,
    0x41, 0x3d, 0x07, 0xc3, 0xcb, 0x13, 0x6f, 0x64, 0x64, 0x20, 0x70, 0x61,
    0x79, 0x6c, 0x6f, 0x61, 0x64, 0x20, 0x31, 0x35, 0x21,
};
constexpr size_t kPartialCsumField = 14 + 20 + 16;

// A data segment with timestamps between two test addresses.
TcpFrameSpec data_spec() {
    TcpFrameSpec s;
    s.src_mac = MacAddr{{2, 0, 0, 0, 0, 1}};
    s.dst_mac = MacAddr{{2, 0, 0, 0, 0, 2}};
    s.src_ip = 0x0ad50001;
    s.dst_ip = 0x0ad50002;
    s.tcp.src_port = 8080;
    s.tcp.dst_port = 43210;
    s.tcp.flags = kTcpAck | kTcpPsh;
    s.tcp.opts.ts = Timestamps{1, 2};
    return s;
}

} // namespace

TEST_CASE("every captured TCP frame parses with checksums verified", "[frame]") {
    auto i = GENERATE(range<size_t>(0, std::size(kFrames)));
    const auto& f = kFrames[i];
    CAPTURE(f.name);
    auto r = parse_frame(f.data, f.len, true);
    CHECK(r.ok() == f.tcp);
    if (r) {
        CHECK(r->ip.src != 0);
        CHECK(r->tcp.payload + r->tcp.payload_len == f.data + f.wire_len);
    }
}

TEST_CASE("the captured VLAN data frame carries its 19-byte request", "[frame]") {
    auto r = parse_frame(kVlanData, sizeof kVlanData, true);
    REQUIRE(r);
    CHECK(r->eth.vlan_id() == 100);
    CHECK(r->ip.src == 0x0ad50002);
    CHECK(r->ip.dst == 0x0ad50001);
    CHECK(r->tcp.flags == (kTcpPsh | kTcpAck));
    REQUIRE(r->tcp.payload_len == 19);
    CHECK(std::memcmp(r->tcp.payload, "GET / HTTP/1.1\r\n\r\n!", 19) == 0);
    CHECK(r->tcp.seg_len() == 19);
}

TEST_CASE("every truncation of a valid frame is rejected", "[frame]") {
    auto i = GENERATE(range<size_t>(0, std::size(kFrames)));
    const auto& f = kFrames[i];
    if (!f.tcp) return;
    CAPTURE(f.name);
    for (size_t len = 0; len < f.len; ++len) {
        CAPTURE(len);
        auto r = parse_frame(f.data, len, true);
        if (len >= f.wire_len) {   // only Ethernet padding cut: still the same segment
            CHECK(r.ok());
            continue;
        }
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == ParseError::Truncated);
        // A heap copy of exactly `len` bytes lets ASan catch any read past the end.
        std::vector<uint8_t> exact(f.data, f.data + len);
        CHECK_FALSE(parse_frame(exact.data(), exact.size(), false).ok());
    }
}

TEST_CASE("frames that are not TCP over IPv4 fall into their category", "[frame]") {
    auto arp = parse_frame(kArpWhoHas, sizeof kArpWhoHas, true);
    REQUIRE_FALSE(arp);
    CHECK(arp.error() == ParseError::NotIpv4);

    std::vector<uint8_t> v6(kLinuxSyn, kLinuxSyn + sizeof kLinuxSyn);
    store_be16(v6.data() + 12, kEthIpv6);
    CHECK(parse_frame(v6.data(), v6.size(), true).error() == ParseError::NotIpv4);

    auto frag = parse_frame(kFragment, sizeof kFragment, true);
    REQUIRE_FALSE(frag);
    CHECK(frag.error() == ParseError::Fragment);

    std::vector<uint8_t> udp(kLinuxSyn, kLinuxSyn + sizeof kLinuxSyn);
    udp[14 + 9] = kIpProtoUdp;
    CHECK(parse_frame(udp.data(), udp.size(), false).error() == ParseError::NotTcp);
    CHECK(parse_frame(udp.data(), udp.size(), true).error() == ParseError::BadIpChecksum);
}

TEST_CASE("corrupted frames fail verification and parse without it", "[frame]") {
    struct Case { const char* what; size_t byte; ParseError e; };
    auto c = GENERATE(values<Case>({
        {"IP TTL changed", 14 + 8, ParseError::BadIpChecksum},
        {"IP source changed", 14 + 13, ParseError::BadIpChecksum},
        {"TCP port changed", 34 + 1, ParseError::BadTcpChecksum},
        {"TCP option byte changed", 34 + 23, ParseError::BadTcpChecksum},
        {"TCP checksum changed", 34 + 17, ParseError::BadTcpChecksum},
    }));
    CAPTURE(c.what);
    std::vector<uint8_t> f(kLinuxSyn, kLinuxSyn + sizeof kLinuxSyn);
    f[c.byte] ^= 0x01;
    auto r = parse_frame(f.data(), f.size(), true);
    REQUIRE_FALSE(r);
    CHECK(r.error() == c.e);
    CHECK(parse_frame(f.data(), f.size(), false).ok());
}

TEST_CASE("bad TCP headers in a frame are reported as such", "[frame]") {
    std::vector<uint8_t> f(kLinuxSyn, kLinuxSyn + sizeof kLinuxSyn);
    f[34 + 12] = 0x40;   // data offset 4
    CHECK(parse_frame(f.data(), f.size(), false).error() == ParseError::BadTcpHeader);
    f[34 + 12] = 0xa0;
    f[34 + 20 + 1] = 0;  // MSS length 0
    CHECK(parse_frame(f.data(), f.size(), false).error() == ParseError::BadTcpOptions);
}

TEST_CASE("frames re-emitted from their parsed fields are byte-identical", "[frame]") {
    auto name = GENERATE("linux-syn", "linux-syn-ack", "vlan-data", "sack-ack", "padded-ack");
    CAPTURE(name);
    const auto& f = frame_named(name);
    auto r = parse_frame(f.data, f.len, true);
    REQUIRE(r);
    auto split = GENERATE(size_t{0}, size_t{1}, size_t{7}, size_t{1000});
    CAPTURE(split);
    size_t n1 = std::min(split, r->tcp.payload_len);
    uint8_t buf[256];
    size_t n = emit_tcp_frame(buf, sizeof buf, spec_from(*r), r->tcp.payload, n1,
                              r->tcp.payload + n1, r->tcp.payload_len - n1);
    REQUIRE(n == f.wire_len);
    CHECK(std::memcmp(buf, f.data, n) == 0);
    CHECK(tcp_frame_len(spec_from(*r), r->tcp.payload_len) == n);
}

TEST_CASE("a payload split anywhere across two pieces gives the same frame", "[frame]") {
    auto len = GENERATE(size_t{0}, size_t{1}, size_t{2}, size_t{15}, size_t{1448},
                        size_t{1449});
    std::mt19937 rng(static_cast<uint32_t>(len));
    std::vector<uint8_t> payload(len);
    for (auto& b : payload) b = static_cast<uint8_t>(rng());
    TcpFrameSpec s = data_spec();
    std::vector<uint8_t> whole(tcp_frame_len(s, len));
    REQUIRE(emit_tcp_frame(whole.data(), whole.size(), s, payload.data(), len, nullptr, 0) ==
            whole.size());
    auto r = parse_frame(whole.data(), whole.size(), true);
    REQUIRE(r);
    REQUIRE(r->tcp.payload_len == len);
    CHECK(std::equal(payload.begin(), payload.end(), r->tcp.payload));
    for (size_t cut = 0; cut <= len; cut += (len > 64 ? 37 : 1)) {
        CAPTURE(len, cut);
        std::vector<uint8_t> two(whole.size());
        REQUIRE(emit_tcp_frame(two.data(), two.size(), s, payload.data(), cut,
                               payload.data() + cut, len - cut) == two.size());
        CHECK(two == whole);
    }
}

TEST_CASE("a frame left for TX checksum offload is the complete frame once a device sums it",
          "[frame][csum-offload]") {
    auto len = GENERATE(size_t{0}, size_t{1}, size_t{7}, size_t{1448});
    auto vlan = GENERATE(false, true);
    std::mt19937 rng(static_cast<uint32_t>(len * 2 + vlan));
    std::vector<uint8_t> payload(len);
    for (auto& b : payload) b = static_cast<uint8_t>(rng());
    TcpFrameSpec s = data_spec();
    if (vlan) { s.vlan_tpid = 0x8100; s.vlan_tci = 7; }
    std::vector<uint8_t> whole(tcp_frame_len(s, len)), left(whole.size());
    size_t cut = len / 3;
    REQUIRE(emit_tcp_frame(whole.data(), whole.size(), s, payload.data(), len, nullptr, 0) ==
            whole.size());
    REQUIRE(emit_tcp_frame(left.data(), left.size(), s, payload.data(), cut,
                           payload.data() + cut, len - cut, true) == left.size());
    size_t l4 = whole.size() - tcp_header_len(s.tcp) - len;   // what TcpCore::emit passes
    CAPTURE(len, vlan, l4);
    auto r = parse_frame(left.data(), left.size(), true, true);
    REQUIRE(r);
    CHECK(r->csum_partial);    // what a receiver on a veth sees: the pseudo-header sum
    CHECK(!parse_frame(left.data(), left.size(), true, false));
    // A device finishes it: the one's-complement sum from csum_start on, folded, into the
    // field 16 bytes further. The result is the software-checksummed frame.
    uint16_t check = csum_fold(csum_add(0, left.data() + l4, left.size() - l4));
    store_be16(left.data() + l4 + 16, check);
    CHECK(left == whole);
}

TEST_CASE("emit_tcp_frame returns 0 when the frame does not fit", "[frame]") {
    TcpFrameSpec s;
    s.tcp.opts.mss = 1460;
    uint8_t payload[100] = {};
    size_t need = tcp_frame_len(s, sizeof payload);
    CHECK(need == 14 + 20 + 24 + 100);
    std::vector<uint8_t> buf(need);
    CHECK(emit_tcp_frame(buf.data(), need - 1, s, payload, 60, payload + 60, 40) == 0);
    CHECK(emit_tcp_frame(buf.data(), need, s, payload, 60, payload + 60, 40) == need);
    std::vector<uint8_t> big(70000);
    CHECK(emit_tcp_frame(big.data(), big.size(), s, big.data(), 65535 - 20 - 24 + 1,
                         nullptr, 0) == 0);
}

TEST_CASE("parse errors have names for counters and logs", "[frame]") {
    CHECK(std::string(parse_error_name(ParseError::BadTcpChecksum)) == "bad-tcp-checksum");
    CHECK(std::string(parse_error_name(ParseError::NotIpv4)) == "not-ipv4");
}

TEST_CASE("a segment with the pseudo-header sum in its checksum field passes only in partial mode",
          "[frame][csum-partial]") {
    std::vector<uint8_t> f(kPartialCsumData, kPartialCsumData + sizeof kPartialCsumData);
    REQUIRE(load_be16(f.data() + kPartialCsumField) == 0xcde3);
    auto strict = parse_frame(f.data(), f.size(), true);
    REQUIRE_FALSE(strict);
    CHECK(strict.error() == ParseError::BadTcpChecksum);

    auto partial = parse_frame(f.data(), f.size(), true, true);
    REQUIRE(partial);
    CHECK(partial->csum_partial);
    CHECK(partial->ip.src == 0x0ad5dc02);
    CHECK(partial->tcp.dst_port == 9555);
    REQUIRE(partial->tcp.payload_len == 15);
    CHECK(std::memcmp(partial->tcp.payload, "odd payload 15!", 15) == 0);

    // The same segment with its checksum completed passes both ways and is not marked.
    store_be16(f.data() + kPartialCsumField, 0x7ebf);
    for (bool accept : {false, true}) {
        CAPTURE(accept);
        auto r = parse_frame(f.data(), f.size(), true, accept);
        REQUIRE(r);
        CHECK_FALSE(r->csum_partial);
    }
}

TEST_CASE("a wrong TCP checksum fails in both modes", "[frame][csum-partial]") {
    struct Case { const char* what; uint16_t field; };
    auto c = GENERATE(values<Case>({
        {"pseudo-header sum + 1", 0xcde4},
        {"pseudo-header sum - 1", 0xcde2},
        {"complemented pseudo-header sum", static_cast<uint16_t>(~0xcde3)},
        {"pseudo-header sum without the TCP length", 0xcdb4},
        {"zero", 0x0000},
        {"all ones", 0xffff},
        {"the full checksum with a bit flipped", 0x7ebf ^ 0x0100},
    }));
    CAPTURE(c.what);
    std::vector<uint8_t> f(kPartialCsumData, kPartialCsumData + sizeof kPartialCsumData);
    store_be16(f.data() + kPartialCsumField, c.field);
    for (bool accept : {false, true}) {
        CAPTURE(accept);
        auto r = parse_frame(f.data(), f.size(), true, accept);
        REQUIRE_FALSE(r);
        CHECK(r.error() == ParseError::BadTcpChecksum);
    }
}

TEST_CASE("partial mode leaves the IPv4 header checksum and the addresses verified",
          "[frame][csum-partial]") {
    std::vector<uint8_t> f(kPartialCsumData, kPartialCsumData + sizeof kPartialCsumData);
    SECTION("a corrupted IP header is still a bad IP checksum") {
        f[14 + 8] ^= 0x01;   // TTL
        CHECK(parse_frame(f.data(), f.size(), true, true).error() == ParseError::BadIpChecksum);
    }
    SECTION("the pseudo-header sum of another address pair is a bad TCP checksum") {
        // Source 10.213.220.2 -> .3 with the IP checksum patched to stay valid: the field
        // no longer matches the pseudo-header the segment now arrives with.
        f[14 + 15] = 0x03;
        store_be16(f.data() + 14 + 10,
                   csum_update16(load_be16(f.data() + 14 + 10), 0xdc02, 0xdc03));
        auto r = parse_frame(f.data(), f.size(), true, true);
        REQUIRE_FALSE(r);
        CHECK(r.error() == ParseError::BadTcpChecksum);
    }
    SECTION("a frame that passes full verification never takes the partial path") {
        auto r = parse_frame(kLinuxSyn, sizeof kLinuxSyn, true, true);
        REQUIRE(r);
        CHECK_FALSE(r->csum_partial);
    }
}
