// Big-endian loads and stores on unaligned bytes: the only way wire code touches
// multi-byte fields. Used by every view in stack/wire/ and by the checksum code.
// memcpy + byte swap compiles to a single mov/movbe; no alignment or aliasing UB.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace fastnet {

inline uint16_t bswap16(uint16_t v) { return static_cast<uint16_t>((v << 8) | (v >> 8)); }
inline uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

inline uint16_t load_be16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return std::endian::native == std::endian::little ? bswap16(v) : v;
}

inline uint32_t load_be32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return std::endian::native == std::endian::little ? bswap32(v) : v;
}

inline void store_be16(uint8_t* p, uint16_t v) {
    if constexpr (std::endian::native == std::endian::little) v = bswap16(v);
    std::memcpy(p, &v, sizeof v);
}

inline void store_be32(uint8_t* p, uint32_t v) {
    if constexpr (std::endian::native == std::endian::little) v = bswap32(v);
    std::memcpy(p, &v, sizeof v);
}

} // namespace fastnet
