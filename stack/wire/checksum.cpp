// The internet checksum: the 8-bytes-per-step summing core shared by csum_add,
// csum_add_at and csum_copy_at, and the pseudo-header / RFC 1624 helpers on top.
// Hot path: every received and transmitted TCP segment passes through sum_native().
#include "stack/wire/checksum.hpp"

#include <bit>
#include <cstring>

#include "stack/wire/bytes.hpp"

namespace fastnet {
namespace {

// One's-complement sums are byte-order independent (RFC 1071 2(B)): sum the data as
// native 64-bit words, fold, and swap the two bytes at the end if the native lanes do
// not line up with big-endian 16-bit words. Two accumulators with separate carry
// counters keep two add chains in flight; carries are added back once at the end
// (2^64 == 1 mod 0xffff). Measured faster here than a 128-bit or 32-bit-split sum.
struct Acc {
    uint64_t a = 0, b = 0, ca = 0, cb = 0;
    void add_a(uint64_t x) { a += x; ca += (a < x); }
    void add_b(uint64_t x) { b += x; cb += (b < x); }
    uint16_t fold() const {
        uint64_t s = a + b;
        uint64_t c = ca + cb + (s < b);
        s += c;
        s += (s < c);
        s = (s & 0xffffffffu) + (s >> 32);
        s = (s & 0xffffffffu) + (s >> 32);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        return static_cast<uint16_t>(s);
    }
};

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline uint64_t load_tail(const uint8_t* p, size_t n) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);   // missing high-address bytes read as zero padding
    return v;
}

// 16-bit one's-complement sum in native lanes.
uint16_t sum_native(const uint8_t* p, size_t len) {
    Acc acc;
    while (len >= 32) {
        acc.add_a(load64(p));
        acc.add_b(load64(p + 8));
        acc.add_a(load64(p + 16));
        acc.add_b(load64(p + 24));
        p += 32;
        len -= 32;
    }
    while (len >= 8) {
        acc.add_a(load64(p));
        p += 8;
        len -= 8;
    }
    if (len) acc.add_b(load_tail(p, len));
    return acc.fold();
}

// Native-lane sum of a piece at `offset` -> its contribution in big-endian lanes.
inline uint32_t to_be_lanes(uint16_t native, size_t offset) {
    bool swap = (std::endian::native == std::endian::little) != ((offset & 1) != 0);
    return swap ? bswap16(native) : native;
}

} // namespace

uint32_t csum_combine(uint32_t a, uint32_t b) {
    uint32_t r = a + b;
    return r + (r < b);   // 2^32 == 1 (mod 0xffff): end-around carry keeps the value
}

uint32_t csum_add(uint32_t sum, const void* data, size_t len) {
    return csum_combine(sum, to_be_lanes(sum_native(static_cast<const uint8_t*>(data), len), 0));
}

uint32_t csum_add_at(uint32_t sum, const void* data, size_t len, size_t offset) {
    return csum_combine(sum,
                        to_be_lanes(sum_native(static_cast<const uint8_t*>(data), len), offset));
}

uint32_t csum_copy_at(uint32_t sum, void* dst, const void* src, size_t len, size_t offset) {
    // memcpy then sum the cache-hot copy: measured faster here than a fused 8-byte
    // copy-and-add loop, because libc's memcpy moves 32 bytes per instruction.
    if (len) std::memcpy(dst, src, len);
    return csum_add_at(sum, dst, len, offset);
}

uint16_t csum_fold(uint32_t sum) {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

uint32_t ipv4_pseudo_sum(uint32_t src_ip, uint32_t dst_ip, uint8_t proto, uint16_t l4_len) {
    // RFC 9293 3.1: src(32) dst(32) zero(8) proto(8) length(16), as big-endian words.
    return (src_ip >> 16) + (src_ip & 0xffff) + (dst_ip >> 16) + (dst_ip & 0xffff) +
           proto + l4_len;
}

uint16_t csum_update16(uint16_t old_check, uint16_t old_word, uint16_t new_word) {
    // RFC 1624 eqn 3; eqn 2 (~(-m)) would give the wrong 0x0000/0xffff answer.
    uint32_t s = static_cast<uint16_t>(~old_check);
    s += static_cast<uint16_t>(~old_word);
    s += new_word;
    return csum_fold(s);
}

bool ipv4_header_checksum_ok(const uint8_t* hdr, size_t header_len) {
    return csum_fold(csum_add(0, hdr, header_len)) == 0;
}

bool tcp_checksum_ok(uint32_t src_ip, uint32_t dst_ip, const uint8_t* seg, size_t seg_len) {
    if (seg_len > 0xffff) return false;
    uint32_t s = ipv4_pseudo_sum(src_ip, dst_ip, 6, static_cast<uint16_t>(seg_len));
    return csum_fold(csum_add(s, seg, seg_len)) == 0;
}

bool tcp_checksum_is_pseudo_sum(uint32_t src_ip, uint32_t dst_ip, const uint8_t* seg,
                                size_t seg_len) {
    if (seg_len < 18 || seg_len > 0xffff) return false;
    uint32_t s = ipv4_pseudo_sum(src_ip, dst_ip, 6, static_cast<uint16_t>(seg_len));
    return load_be16(seg + 16) == static_cast<uint16_t>(~csum_fold(s));
}

} // namespace fastnet
