// The engine's established-flow table: 4-tuple → TCB index, open addressing with linear
// probing and backward-shift deletion (no tombstones). Engine RX: every segment →
// find(); TCB creation → insert(); TCB release → erase().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "stack/tcp/four_tuple.hpp"

namespace fastnet {

class FlowTable {
public:
    static constexpr uint32_t kEmpty = ~0u;    // not a storable value

    // Holds up to max_entries; the slot array is the next power of two >= 2*max_entries
    // so the load factor stays <= 0.5. seed keys the hash (pick it at random: remote
    // peers choose the tuples, so an unkeyed hash could be flooded into one chain).
    explicit FlowTable(uint32_t max_entries, uint64_t seed = 0x243f6a8885a308d3ull)
        : max_(max_entries), seed_(seed) {
        size_t n = 16;
        while (n < 2ull * max_entries) n <<= 1;
        mask_ = n - 1;
        slots_.reset(new Slot[n]);
    }

    // false if the key is already present (value unchanged) or the table is full.
    bool insert(const FourTuple& k, uint32_t value) {
        if (value == kEmpty) return false;
        size_t i = hash(k) & mask_;
        for (;; i = (i + 1) & mask_) {
            Slot& s = slots_[i];
            if (s.value == kEmpty) {
                if (size_ >= max_) return false;
                s.key = k; s.value = value; ++size_;
                return true;
            }
            if (s.key == k) return false;
        }
    }
    // The value, or kEmpty.
    uint32_t find(const FourTuple& k) const {
        for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.value == kEmpty) return kEmpty;
            if (s.key == k) return s.value;
        }
    }
    bool erase(const FourTuple& k) {
        size_t i = hash(k) & mask_;
        for (;; i = (i + 1) & mask_) {
            if (slots_[i].value == kEmpty) return false;
            if (slots_[i].key == k) break;
        }
        // Backward shift: pull later entries of the probe run into the hole when their
        // home slot is not between the hole and their position (cyclically).
        size_t hole = i;
        for (size_t j = (i + 1) & mask_; slots_[j].value != kEmpty; j = (j + 1) & mask_) {
            size_t home = hash(slots_[j].key) & mask_;
            if (((j - home) & mask_) >= ((j - hole) & mask_)) {
                slots_[hole] = slots_[j];
                hole = j;
            }
        }
        slots_[hole].value = kEmpty;
        --size_;
        return true;
    }

    // A new hash key; only while the table is empty (placements depend on it).
    void reseed(uint64_t seed) {
        if (size_ == 0) seed_ = seed;
    }

    size_t size() const { return size_; }
    size_t max_entries() const { return max_; }
    size_t slots() const { return mask_ + 1; }

    // Keyed 64-bit hash of a 4-tuple (two rounds of 64x64→128 multiply-fold). Public
    // so the XDP-side flow map or RSS code can reuse the same spreading if wanted.
    uint64_t hash(const FourTuple& k) const {
        uint64_t a = (uint64_t(k.local_ip) << 32 | k.remote_ip) ^ seed_;
        uint64_t b = (uint64_t(k.local_port) << 16 | k.remote_port) ^ (seed_ * 0x9e3779b97f4a7c15ull);
        uint64_t h = fold(a ^ 0xa0761d6478bd642full, b ^ 0xe7037ed1a0b428dbull);
        return fold(h ^ 0x8ebc6af09c88c6e3ull, h ^ seed_ ^ 0x589965cc75374cc3ull);
    }

private:
    struct Slot { FourTuple key; uint32_t value = kEmpty; };
    static uint64_t fold(uint64_t a, uint64_t b) {
        __uint128_t m = static_cast<__uint128_t>(a) * b;
        return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
    }

    size_t max_;
    size_t size_ = 0;
    size_t mask_;
    uint64_t seed_;
    std::unique_ptr<Slot[]> slots_;
};

}  // namespace fastnet
