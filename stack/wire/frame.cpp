// Whole frames: parse_frame() (Engine::poll -> here -> TCP input) and emit_tcp_frame()
// (TCP output -> here -> Device::tx_submit). The payload is checksummed while it is
// copied (right after, while in cache), so the payload is not read from memory twice.
#include "stack/wire/frame.hpp"

#include <cstring>

#include "stack/wire/bytes.hpp"

namespace fastnet {

const char* parse_error_name(ParseError e) {
    switch (e) {
    case ParseError::Truncated: return "truncated";
    case ParseError::NotIpv4: return "not-ipv4";
    case ParseError::Fragment: return "fragment";
    case ParseError::BadIpChecksum: return "bad-ip-checksum";
    case ParseError::BadIpHeader: return "bad-ip-header";
    case ParseError::NotTcp: return "not-tcp";
    case ParseError::BadTcpHeader: return "bad-tcp-header";
    case ParseError::BadTcpChecksum: return "bad-tcp-checksum";
    case ParseError::BadTcpOptions: return "bad-tcp-options";
    }
    return "unknown";
}

ParseResult parse_frame(const uint8_t* data, size_t len, bool verify_checksums,
                        bool accept_csum_partial) {
    ParsedFrame f;
    auto eth = EthernetView::parse(data, len);
    if (!eth) return ParseError::Truncated;
    if (eth->ethertype != kEthIpv4) return ParseError::NotIpv4;
    f.eth = *eth;
    auto ip = Ipv4View::parse(f.eth.payload, f.eth.payload_len, verify_checksums);
    if (!ip) return ip.error();
    if (ip->is_fragment()) return ParseError::Fragment;
    if (ip->proto != kIpProtoTcp) return ParseError::NotTcp;
    f.ip = *ip;
    auto tcp = TcpView::parse(f.ip.payload, f.ip.payload_len);
    if (!tcp) return tcp.error();
    if (verify_checksums && !tcp_checksum_ok(f.ip.src, f.ip.dst, f.ip.payload, f.ip.payload_len)) {
        // Only a failed verification pays for the second comparison.
        if (!accept_csum_partial ||
            !tcp_checksum_is_pseudo_sum(f.ip.src, f.ip.dst, f.ip.payload, f.ip.payload_len))
            return ParseError::BadTcpChecksum;
        f.csum_partial = true;
    }
    f.tcp = *tcp;
    return f;
}

size_t tcp_frame_len(const TcpFrameSpec& spec, size_t payload_len) {
    EthernetSpec e{spec.dst_mac, spec.src_mac, kEthIpv4, spec.vlan_tpid, spec.vlan_tci};
    return ethernet_header_len(e) + kIpv4MinHeaderLen + tcp_header_len(spec.tcp) + payload_len;
}

size_t emit_tcp_frame(uint8_t* buf, size_t cap, const TcpFrameSpec& spec,
                      const uint8_t* payload1, size_t len1,
                      const uint8_t* payload2, size_t len2, bool leave_tcp_csum) {
    // Frames shorter than Ethernet's 60-byte minimum are not padded: the NIC (or veth)
    // pads on the wire, and the IP total length makes any padding harmless.
    EthernetSpec e{spec.dst_mac, spec.src_mac, kEthIpv4, spec.vlan_tpid, spec.vlan_tci};
    size_t eth_len = ethernet_header_len(e);
    size_t tcp_hl = tcp_header_len(spec.tcp);
    if (len1 > 0xffff || len2 > 0xffff) return 0;
    size_t seg_len = tcp_hl + len1 + len2;
    if (kIpv4MinHeaderLen + seg_len > 0xffff) return 0;
    size_t total = eth_len + kIpv4MinHeaderLen + seg_len;
    if (total > cap) return 0;

    emit_ethernet(buf, cap, e);
    Ipv4Spec ip{spec.src_ip, spec.dst_ip, spec.ip_id, spec.ttl, kIpProtoTcp, spec.tos, true,
                static_cast<uint16_t>(seg_len)};
    uint8_t* iph = buf + eth_len;
    emit_ipv4(iph, cap - eth_len, ip);
    uint8_t* th = iph + kIpv4MinHeaderLen;
    emit_tcp_header(th, cap - eth_len - kIpv4MinHeaderLen, spec.tcp);

    uint32_t sum = ipv4_pseudo_sum(spec.src_ip, spec.dst_ip, kIpProtoTcp,
                                   static_cast<uint16_t>(seg_len));
    if (leave_tcp_csum) {
        // What Linux leaves for a NIC (__tcp_v4_send_check): the pseudo-header sum,
        // folded, not complemented; the device sums from the TCP header on.
        if (len1) memcpy(th + tcp_hl, payload1, len1);
        if (len2) memcpy(th + tcp_hl + len1, payload2, len2);
        store_be16(th + 16, static_cast<uint16_t>(~csum_fold(sum)));
        return total;
    }
    sum = csum_add(sum, th, tcp_hl);
    if (len1) sum = csum_copy_at(sum, th + tcp_hl, payload1, len1, tcp_hl);
    if (len2) sum = csum_copy_at(sum, th + tcp_hl + len1, payload2, len2, tcp_hl + len1);
    store_be16(th + 16, csum_fold(sum));
    return total;
}

} // namespace fastnet
