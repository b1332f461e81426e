// Ethernet II + one 802.1Q/802.1ad tag: EthernetView::parse and emit_ethernet.
// Called first by parse_frame() and emit_tcp_frame() (frame.cpp).
#include "stack/wire/ethernet.hpp"

#include <cstring>

#include "stack/wire/bytes.hpp"

namespace fastnet {

bool MacAddr::is_broadcast() const { return *this == kBroadcastMac; }

MacAddr::Text MacAddr::format() const {
    static constexpr char kHex[] = "0123456789abcdef";
    Text t;
    for (size_t i = 0; i < 6; ++i) {
        t.s[i * 3] = kHex[b[i] >> 4];
        t.s[i * 3 + 1] = kHex[b[i] & 0xf];
        t.s[i * 3 + 2] = i == 5 ? '\0' : ':';
    }
    return t;
}

std::optional<EthernetView> EthernetView::parse(const uint8_t* data, size_t len) {
    if (len < kEthHeaderLen) return std::nullopt;
    EthernetView v;
    v.dst = MacAddr::from(data);
    v.src = MacAddr::from(data + 6);
    uint16_t type = load_be16(data + 12);
    size_t off = kEthHeaderLen;
    // One tag only: a second (QinQ inner) tag shows up as ethertype 0x8100 and so as
    // "not IPv4" to the caller, which is what fastnet wants for double-tagged frames.
    if (type == kEthVlan || type == kEthQinQ) {
        if (len < kEthHeaderLen + kVlanTagLen) return std::nullopt;
        v.vlan_tpid = type;
        v.vlan_tci = load_be16(data + 14);
        type = load_be16(data + 16);
        off += kVlanTagLen;
    }
    v.ethertype = type;
    v.header_len = static_cast<uint16_t>(off);
    v.payload = data + off;
    v.payload_len = len - off;
    return v;
}

size_t emit_ethernet(uint8_t* buf, size_t cap, const EthernetSpec& spec) {
    size_t n = ethernet_header_len(spec);
    if (cap < n) return 0;
    spec.dst.store(buf);
    spec.src.store(buf + 6);
    if (spec.vlan_tpid) {
        store_be16(buf + 12, spec.vlan_tpid);
        store_be16(buf + 14, spec.vlan_tci);
        store_be16(buf + 16, spec.ethertype);
    } else {
        store_be16(buf + 12, spec.ethertype);
    }
    return n;
}

} // namespace fastnet
