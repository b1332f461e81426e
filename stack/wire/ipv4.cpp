// IPv4 (RFC 791): Ipv4View::parse (called by parse_frame) and emit_ipv4 (called by
// emit_tcp_frame). Options are skipped by IHL; fragments are flagged, not reassembled.
#include "stack/wire/ipv4.hpp"

#include "stack/wire/bytes.hpp"
#include "stack/wire/checksum.hpp"

namespace fastnet {

Result<Ipv4View> Ipv4View::parse(const uint8_t* data, size_t len, bool verify_checksum) {
    if (len < kIpv4MinHeaderLen) return ParseError::Truncated;
    Ipv4View v;
    if ((data[0] >> 4) != 4) return ParseError::BadIpHeader;
    size_t hl = static_cast<size_t>(data[0] & 0x0f) * 4;
    if (hl < kIpv4MinHeaderLen) return ParseError::BadIpHeader;
    if (hl > len) return ParseError::Truncated;
    uint16_t total = load_be16(data + 2);
    if (total < hl) return ParseError::BadIpHeader;
    if (total > len) return ParseError::Truncated;   // anything beyond is Ethernet padding
    if (verify_checksum && !ipv4_header_checksum_ok(data, hl)) return ParseError::BadIpChecksum;

    v.header_len = static_cast<uint8_t>(hl);
    v.tos = data[1];
    v.total_len = total;
    v.id = load_be16(data + 4);
    uint16_t frag = load_be16(data + 6);
    v.df = (frag & 0x4000) != 0;
    v.mf = (frag & 0x2000) != 0;
    v.frag_offset = static_cast<uint16_t>((frag & 0x1fff) * 8);
    v.ttl = data[8];
    v.proto = data[9];
    v.checksum = load_be16(data + 10);
    v.src = load_be32(data + 12);
    v.dst = load_be32(data + 16);
    v.header = data;
    v.payload = data + hl;
    v.payload_len = total - hl;
    return v;
}

size_t emit_ipv4(uint8_t* buf, size_t cap, const Ipv4Spec& s) {
    if (cap < kIpv4MinHeaderLen || s.payload_len > 0xffff - kIpv4MinHeaderLen) return 0;
    buf[0] = 0x45;
    buf[1] = s.tos;
    store_be16(buf + 2, static_cast<uint16_t>(kIpv4MinHeaderLen + s.payload_len));
    store_be16(buf + 4, s.id);
    store_be16(buf + 6, s.df ? 0x4000 : 0);
    buf[8] = s.ttl;
    buf[9] = s.proto;
    store_be16(buf + 10, 0);
    store_be32(buf + 12, s.src);
    store_be32(buf + 16, s.dst);
    store_be16(buf + 10, csum_fold(csum_add(0, buf, kIpv4MinHeaderLen)));
    return kIpv4MinHeaderLen;
}

} // namespace fastnet
