// The single entry points for whole frames. RX: Device::rx_burst() -> Engine::poll() ->
// parse_frame() -> TCP input. TX: TCP output -> emit_tcp_frame() into a device buffer ->
// Device::tx_submit(). Ethernet(+VLAN) / IPv4 / TCP only; everything else is a category.
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/wire/checksum.hpp"
#include "stack/wire/ethernet.hpp"
#include "stack/wire/ipv4.hpp"
#include "stack/wire/result.hpp"
#include "stack/wire/tcp.hpp"

namespace fastnet {

struct ParsedFrame {
    EthernetView eth;
    Ipv4View ip;
    TcpView tcp;   // tcp.payload / tcp.payload_len: the segment's data
    // Accepted with the pseudo-header sum in the TCP checksum field (accept_csum_partial).
    bool csum_partial = false;
};

using ParseResult = Result<ParsedFrame>;

// Checks, in order: Ethernet (Truncated), ethertype (NotIpv4), IPv4 header (Truncated,
// BadIpHeader, BadIpChecksum if verify_checksums), Fragment, protocol (NotTcp), TCP
// header (Truncated, BadTcpHeader, BadTcpOptions), TCP checksum (BadTcpChecksum if
// verify_checksums). Never reads past data + len; trailing Ethernet padding is ignored.
// accept_csum_partial: a TCP segment that fails verification is still accepted (and
// marked csum_partial) when its checksum field holds the pseudo-header sum, what a
// sender with TX checksum offload leaves on a veth (tcp_checksum_is_pseudo_sum). Only
// for devices that hand over such frames: on a wire the value is just a bad checksum.
// The IPv4 header checksum is always complete and always verified.
ParseResult parse_frame(const uint8_t* data, size_t len, bool verify_checksums,
                        bool accept_csum_partial = false);

struct TcpFrameSpec {
    MacAddr src_mac, dst_mac;
    uint16_t vlan_tpid = 0, vlan_tci = 0;   // 0: untagged
    uint32_t src_ip = 0, dst_ip = 0;        // host order
    uint16_t ip_id = 0;
    uint8_t ttl = kIpDefaultTtl;
    uint8_t tos = 0;
    TcpHeaderSpec tcp;
};

// Bytes emit_tcp_frame() needs for a payload of payload_len bytes.
size_t tcp_frame_len(const TcpFrameSpec& spec, size_t payload_len);

// Writes Ethernet + IPv4 (DF) + TCP header/options + payload1 || payload2 into buf, with
// both checksums filled. Two payload pieces let a wrapped ring buffer go out without a
// bounce copy; either may be null with length 0. Returns the frame length, or 0 when it
// does not fit in cap (or the IP datagram would exceed 65535 bytes).
// leave_tcp_csum: the TCP checksum field gets the pseudo-header sum for a device to
// finish (TX checksum offload; see Frame::csum_start), the payload a plain copy.
size_t emit_tcp_frame(uint8_t* buf, size_t cap, const TcpFrameSpec& spec,
                      const uint8_t* payload1, size_t len1,
                      const uint8_t* payload2, size_t len2, bool leave_tcp_csum = false);

} // namespace fastnet
