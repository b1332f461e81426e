// The internet checksum (RFC 1071), the IPv4 pseudo-header and the incremental
// update (RFC 1624). Called by ipv4.cpp / tcp.cpp / frame.cpp on every frame in and out.
//
// Conventions (one for the whole module):
// - A "partial sum" is a uint32_t holding the one's-complement sum of the data read as
//   big-endian 16-bit words, not yet folded or complemented. 0 is the empty sum. Partial
//   sums of disjoint pieces may be combined with csum_add/csum_add_at (never with `+`
//   across more than a few values: fold first if you must).
// - csum_fold() returns the value to store in a checksum field, in host order: write it
//   with store_be16(). A received header/segment is valid when csum_fold() over it
//   (checksum field included) is 0.
// - IPv4 addresses are host-order uint32_t everywhere in stack/wire (10.213.0.1 is
//   0x0AD50001), as in stack/engine.hpp's Endpoint.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastnet {

// Adds `len` bytes at `data` to `sum`, `data` starting at an even offset of the
// checksummed stream. An odd trailing byte is padded with zero (RFC 1071 4.1).
// Processes 8 bytes per step with a 64-bit accumulator.
uint32_t csum_add(uint32_t sum, const void* data, size_t len);

// Same, for a piece that starts at byte `offset` of the stream: only the parity matters.
// Chaining: s = csum_add(0, a, la); s = csum_add_at(s, b, lb, la); s = csum_add_at(s, c,
// lc, la + lb) equals csum_add over a||b||c for any lengths.
uint32_t csum_add_at(uint32_t sum, const void* data, size_t len, size_t offset);

// Copies len bytes src -> dst and returns csum_add_at(sum, src, len, offset); the sum is
// taken over the destination while it is still in cache.
uint32_t csum_copy_at(uint32_t sum, void* dst, const void* src, size_t len, size_t offset);

// Combines two partial sums (end-around carry).
uint32_t csum_combine(uint32_t a, uint32_t b);

// Folds to 16 bits and complements: the checksum field value (host order).
uint16_t csum_fold(uint32_t sum);

// Partial sum of the TCP/UDP pseudo-header (RFC 9293 3.1): addresses in host order,
// l4_len = TCP header + payload bytes.
uint32_t ipv4_pseudo_sum(uint32_t src_ip, uint32_t dst_ip, uint8_t proto, uint16_t l4_len);

// RFC 1624 eqn 3: HC' = ~(~HC + ~m + m'). All values host order. Used to patch a
// checksum after rewriting one 16-bit word (e.g. a port or a TTL/proto word).
uint16_t csum_update16(uint16_t old_check, uint16_t old_word, uint16_t new_word);

// True when the IPv4 header at `hdr` (header_len bytes, checksum field included) sums to 0.
bool ipv4_header_checksum_ok(const uint8_t* hdr, size_t header_len);

// True when the TCP segment (header + payload, seg_len bytes) is valid under the
// pseudo-header of src_ip -> dst_ip (host order).
bool tcp_checksum_ok(uint32_t src_ip, uint32_t dst_ip, const uint8_t* seg, size_t seg_len);

// True when the TCP checksum field (seg[16..17]; seg_len >= 18) holds what a Linux sender
// with TX checksum offload leaves for the device to finish (CHECKSUM_PARTIAL,
// __tcp_v4_send_check): the pseudo-header sum with the TCP length, folded and NOT
// complemented. A veth hands such segments over as they are. Verified on Linux 6.18
// with an AF_PACKET reader on the receiving veth.
bool tcp_checksum_is_pseudo_sum(uint32_t src_ip, uint32_t dst_ip, const uint8_t* seg,
                                size_t seg_len);

} // namespace fastnet
