// Idle ring storage an engine keeps for its next connections (ByteRing takes and gives
// blocks here). Without it every short connection took its send and receive rings from
// the heap and gave them back at close: blocks of 128-256 KB sit at glibc's mmap/trim
// thresholds, so the heap grew and shrank (brk, page faults, unmap) once per connection,
// and more so with several processes. Blocks are kept by exact size, in a few bins, up
// to a byte limit; anything beyond goes back to the heap. Not thread-safe: an engine
// uses it under its own lock, and a ring that moves to another engine switches cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace fastnet {

class BlockCache {
public:
    static constexpr size_t kDefaultIdleBytes = 8u << 20;

    explicit BlockCache(size_t max_idle_bytes = kDefaultIdleBytes) : max_idle_(max_idle_bytes) {}
    ~BlockCache() { trim(0); }
    BlockCache(const BlockCache&) = delete;
    BlockCache& operator=(const BlockCache&) = delete;

    // A block of exactly n bytes (contents undefined): a kept one, else from the heap;
    // nullptr when the heap has none.
    uint8_t* take(size_t n) {
        for (Bin& b : bins_)
            if (b.size == n && b.count) {
                idle_ -= n;
                ++hits;
                return b.blocks[--b.count];
            }
        ++misses;
        return new (std::nothrow) uint8_t[n];
    }
    // Keeps a block taken with take(n), or frees it when the cache is full.
    void give(uint8_t* p, size_t n) {
        if (!p) return;
        if (idle_ + n <= max_idle_) {
            Bin* bin = nullptr;
            for (Bin& b : bins_)
                if (b.size == n) { bin = &b; break; }
            if (!bin)   // an empty bin takes the new size
                for (Bin& b : bins_)
                    if (!b.count) { b.size = n; bin = &b; break; }
            if (bin && bin->count < kPerBin) {
                bin->blocks[bin->count++] = p;
                idle_ += n;
                return;
            }
        }
        delete[] p;
    }
    // Frees kept blocks until at most `keep` bytes remain idle.
    void trim(size_t keep) {
        for (Bin& b : bins_)
            while (b.count && idle_ > keep) {
                delete[] b.blocks[--b.count];
                idle_ -= b.size;
            }
    }
    size_t idle_bytes() const { return idle_; }

    uint64_t hits = 0, misses = 0;

private:
    static constexpr int kBins = 4, kPerBin = 64;
    struct Bin {
        size_t size = 0;
        int count = 0;
        uint8_t* blocks[kPerBin];
    };
    Bin bins_[kBins];
    size_t idle_ = 0;
    size_t max_idle_;
};

}  // namespace fastnet
