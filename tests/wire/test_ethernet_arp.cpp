// Ethernet (+802.1Q/802.1ad) and ARP views and emitters (stack/wire/ethernet.*, arp.*).
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "stack/wire/arp.hpp"
#include "stack/wire/ethernet.hpp"
#include "tests/wire/frames.hpp"

using namespace fastnet;
using namespace fastnet::testframes;

TEST_CASE("a VLAN-tagged frame yields its id, priority and inner ethertype", "[ethernet]") {
    auto e = EthernetView::parse(kVlanData, sizeof kVlanData);
    REQUIRE(e);
    CHECK(e->has_vlan());
    CHECK(e->vlan_tpid == kEthVlan);
    CHECK(e->vlan_id() == 100);
    CHECK((e->vlan_tci >> 13) == 5);
    CHECK(e->ethertype == kEthIpv4);
    CHECK(e->header_len == 18);
    CHECK(e->payload == kVlanData + 18);
    CHECK(e->payload_len == sizeof kVlanData - 18);
    CHECK(e->dst == MacAddr{{2, 0, 0, 0, 0, 1}});
    CHECK(e->src == MacAddr{{2, 0, 0, 0, 0, 2}});
}

TEST_CASE("an untagged frame has a 14-byte header", "[ethernet]") {
    auto e = EthernetView::parse(kLinuxSyn, sizeof kLinuxSyn);
    REQUIRE(e);
    CHECK_FALSE(e->has_vlan());
    CHECK(e->ethertype == kEthIpv4);
    CHECK(e->header_len == 14);
    CHECK(e->payload_len == sizeof kLinuxSyn - 14);
}

TEST_CASE("every truncation of an Ethernet header is rejected", "[ethernet]") {
    auto len = GENERATE(range<size_t>(0, 18));
    CAPTURE(len);
    CHECK_FALSE(EthernetView::parse(kVlanData, len));
    CHECK(EthernetView::parse(kLinuxSyn, len).has_value() == (len >= 14));
}

TEST_CASE("Ethernet headers round-trip through emit and parse", "[ethernet]") {
    auto tpid = GENERATE(uint16_t{0}, kEthVlan, kEthQinQ);
    auto type = GENERATE(kEthIpv4, kEthArp, kEthIpv6, uint16_t{0x1234});
    auto tci = GENERATE(uint16_t{0}, uint16_t{0xffff}, uint16_t{0x2064});
    CAPTURE(tpid, type, tci);
    EthernetSpec s{MacAddr{{1, 2, 3, 4, 5, 6}}, MacAddr{{0xa, 0xb, 0xc, 0xd, 0xe, 0xf}}, type,
                   tpid, tci};
    uint8_t buf[32] = {};
    size_t n = emit_ethernet(buf, sizeof buf, s);
    REQUIRE(n == ethernet_header_len(s));
    CHECK(emit_ethernet(buf, n - 1, s) == 0);
    auto e = EthernetView::parse(buf, sizeof buf);
    REQUIRE(e);
    CHECK(e->dst == s.dst);
    CHECK(e->src == s.src);
    CHECK(e->ethertype == type);
    CHECK(e->vlan_tpid == tpid);
    CHECK(e->vlan_tci == (tpid ? tci : 0));
    CHECK(e->header_len == n);
}

TEST_CASE("MAC addresses format as colon-separated lower-case hex", "[ethernet]") {
    MacAddr m{{0x02, 0xab, 0x00, 0xff, 0x10, 0x9c}};
    CHECK(std::string(m.format().c_str()) == "02:ab:00:ff:10:9c");
    CHECK_FALSE(m.is_broadcast());
    CHECK_FALSE(m.is_multicast());
    CHECK(kBroadcastMac.is_broadcast());
    CHECK(kBroadcastMac.is_multicast());
    CHECK(MacAddr{{0x01, 0x00, 0x5e, 0, 0, 1}}.is_multicast());
    CHECK(std::string(kBroadcastMac.format().c_str()) == "ff:ff:ff:ff:ff:ff");
}

TEST_CASE("the captured ARP request asks who has 10.213.0.1", "[arp]") {
    auto e = EthernetView::parse(kArpWhoHas, sizeof kArpWhoHas);
    REQUIRE(e);
    CHECK(e->ethertype == kEthArp);
    CHECK(e->dst.is_broadcast());
    auto a = ArpView::parse(e->payload, e->payload_len);
    REQUIRE(a);
    CHECK(a->op == kArpRequest);
    CHECK(a->sha == MacAddr{{2, 0, 0, 0, 0, 2}});
    CHECK(a->spa == 0x0ad50002);
    CHECK(a->tha == MacAddr{});
    CHECK(a->tpa == 0x0ad50001);
    uint8_t buf[kArpLen];
    REQUIRE(emit_arp(buf, sizeof buf, *a) == kArpLen);
    CHECK(std::memcmp(buf, e->payload, kArpLen) == 0);
}

TEST_CASE("ARP bodies round-trip through emit and parse", "[arp]") {
    auto op = GENERATE(kArpRequest, kArpReply, uint16_t{0xffff});
    auto spa = GENERATE(0u, 0x0ad50001u, 0xffffffffu);
    CAPTURE(op, spa);
    ArpView a{op, MacAddr{{1, 2, 3, 4, 5, 6}}, MacAddr{{6, 5, 4, 3, 2, 1}}, spa, ~spa};
    uint8_t buf[64];
    REQUIRE(emit_arp(buf, sizeof buf, a) == kArpLen);
    CHECK(emit_arp(buf, kArpLen - 1, a) == 0);
    auto b = ArpView::parse(buf, kArpLen);
    REQUIRE(b);
    CHECK(b->op == a.op);
    CHECK(b->sha == a.sha);
    CHECK(b->tha == a.tha);
    CHECK(b->spa == a.spa);
    CHECK(b->tpa == a.tpa);
}

TEST_CASE("ARP that is truncated or not Ethernet/IPv4 is refused", "[arp]") {
    const uint8_t* body = kArpWhoHas + 14;
    auto len = GENERATE(range<size_t>(0, kArpLen));
    CAPTURE(len);
    CHECK_FALSE(ArpView::parse(body, len));
    auto field = GENERATE(0, 1, 2, 3, 4, 5);   // htype, ptype, hlen, plen bytes
    CAPTURE(field);
    uint8_t b[kArpLen];
    std::memcpy(b, body, kArpLen);
    b[field] ^= 0x40;
    CHECK_FALSE(ArpView::parse(b, kArpLen));
}
