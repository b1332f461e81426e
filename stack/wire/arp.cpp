// ARP for Ethernet/IPv4 (RFC 826): ArpView::parse and emit_arp.
#include "stack/wire/arp.hpp"

#include "stack/wire/bytes.hpp"

namespace fastnet {
namespace {
constexpr uint16_t kArpHtypeEthernet = 1;   // RFC 826 / IANA hardware type
}

std::optional<ArpView> ArpView::parse(const uint8_t* data, size_t len) {
    if (len < kArpLen) return std::nullopt;
    if (load_be16(data) != kArpHtypeEthernet || load_be16(data + 2) != kEthIpv4 ||
        data[4] != 6 || data[5] != 4)
        return std::nullopt;
    ArpView a;
    a.op = load_be16(data + 6);
    a.sha = MacAddr::from(data + 8);
    a.spa = load_be32(data + 14);
    a.tha = MacAddr::from(data + 18);
    a.tpa = load_be32(data + 24);
    return a;
}

size_t emit_arp(uint8_t* buf, size_t cap, const ArpView& a) {
    if (cap < kArpLen) return 0;
    store_be16(buf, kArpHtypeEthernet);
    store_be16(buf + 2, kEthIpv4);
    buf[4] = 6;
    buf[5] = 4;
    store_be16(buf + 6, a.op);
    a.sha.store(buf + 8);
    store_be32(buf + 14, a.spa);
    a.tha.store(buf + 18);
    store_be32(buf + 24, a.tpa);
    return kArpLen;
}

} // namespace fastnet
