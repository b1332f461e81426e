// Byte ring for a socket's send and receive buffers. Storage is taken at the first
// byte written, and moves to a bigger block only when the buffer limit grows — never per
// packet, and never for a connection that carries no data (10 000 idle connections cost
// no ring memory). Blocks come from, and go back to, the owning engine's BlockCache
// when the ring has one (set_cache), else the heap. Send: app write() →
// TCB output peek(offset from snd_una) → ACK consume(). Receive: TCB input
// write()/write_at() + commit() → app read().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include "stack/tcp/block_cache.hpp"

namespace fastnet {

class ByteRing {
public:
    // A view of up to two pieces (the second is non-empty only across the wrap).
    struct Spans {
        const uint8_t* p1 = nullptr; size_t n1 = 0;
        const uint8_t* p2 = nullptr; size_t n2 = 0;
        size_t size() const { return n1 + n2; }
    };

    ByteRing() = default;
    explicit ByteRing(size_t capacity) { reset(capacity); }
    ByteRing(ByteRing&& o) noexcept { *this = std::move(o); }
    ByteRing& operator=(ByteRing&& o) noexcept {
        if (this != &o) {
            drop_storage();
            cache_ = o.cache_; buf_ = o.buf_; cap_ = o.cap_; head_ = o.head_; size_ = o.size_;
            o.buf_ = nullptr; o.cap_ = o.head_ = o.size_ = 0;
        }
        return *this;
    }
    ByteRing(const ByteRing&) = delete;
    ByteRing& operator=(const ByteRing&) = delete;
    ~ByteRing() { drop_storage(); }

    // Where storage comes from and goes back to (nullptr: the heap). A ring that moves
    // to another engine takes that engine's cache; the block it holds goes there later.
    void set_cache(BlockCache* c) { cache_ = c; }
    // Sets the capacity and drops the contents and the storage; capacity bytes of
    // storage are taken at the next write.
    void reset(size_t capacity) {
        drop_storage();
        cap_ = capacity; head_ = size_ = 0;
    }
    void clear() { head_ = size_ = 0; }
    // Raises the capacity (never lowers it), keeping every byte placed so far: in-order
    // ones and out-of-order ones at their offsets from the head. Storage already taken
    // moves to a new block of the new size (buffer autotuning, SO_SNDBUF/SO_RCVBUF);
    // false, with nothing changed, when that block cannot be had.
    bool grow(size_t capacity) {
        if (capacity <= cap_) return true;
        if (!buf_) {
            cap_ = capacity;
            return true;
        }
        uint8_t* n = take(capacity);
        if (!n) return false;
        std::memcpy(n, buf_ + head_, cap_ - head_);
        std::memcpy(n + (cap_ - head_), buf_, head_);
        drop_storage();
        buf_ = n;
        head_ = 0;
        cap_ = capacity;
        return true;
    }

    size_t size() const { return size_; }             // in-order bytes held
    size_t free() const { return cap_ - size_; }
    size_t capacity() const { return cap_; }
    bool empty() const { return size_ == 0; }
    bool has_storage() const { return buf_ != nullptr; }

    // Appends up to n bytes at the in-order end; returns how many fitted.
    size_t write(const void* src, size_t n) {
        n = write_at(0, src, n);
        size_ += n;
        return n;
    }
    // Copies up to n in-order bytes out and consumes them; returns how many.
    size_t read(void* dst, size_t n) {
        n = copy_out(0, dst, n);
        consume(n);
        return n;
    }
    // Copies up to n bytes starting offset bytes into the in-order data, without consuming.
    size_t copy_out(size_t offset, void* dst, size_t n) const {
        Spans s = peek(offset, n);
        if (s.n1) std::memcpy(dst, s.p1, s.n1);
        if (s.n2) std::memcpy(static_cast<uint8_t*>(dst) + s.n1, s.p2, s.n2);
        return s.size();
    }
    // Zero-copy view of up to n in-order bytes starting at offset (retransmission from
    // snd_una + offset).
    Spans peek(size_t offset, size_t n) const {
        Spans s;
        if (offset >= size_) return s;
        if (n > size_ - offset) n = size_ - offset;
        size_t pos = wrap(head_ + offset);
        s.p1 = buf_ + pos;
        s.n1 = n < cap_ - pos ? n : cap_ - pos;
        if (n > s.n1) { s.p2 = buf_; s.n2 = n - s.n1; }
        return s;
    }
    // Places up to n bytes `offset` bytes beyond the in-order end without making them
    // readable (out-of-order data; pairs with Reassembly). Clipped to the free space;
    // returns how many bytes were placed.
    size_t write_at(size_t offset, const void* src, size_t n) {
        if (offset >= free() || n == 0) return 0;
        if (n > free() - offset) n = free() - offset;
        if (!buf_ && !(buf_ = take(cap_))) return 0;   // out of memory: nothing taken
        size_t pos = wrap(head_ + size_ + offset);
        size_t first = n < cap_ - pos ? n : cap_ - pos;
        if (first) std::memcpy(buf_ + pos, src, first);
        if (n > first) std::memcpy(buf_, static_cast<const uint8_t*>(src) + first, n - first);
        return n;
    }
    // Makes n bytes already placed with write_at() part of the in-order data.
    void commit(size_t n) { size_ += n <= free() ? n : free(); }
    // Drops n in-order bytes from the front (ACKed send data, or data read elsewhere).
    void consume(size_t n) {
        if (n > size_) n = size_;
        head_ = wrap(head_ + n);
        size_ -= n;
        // head_ is not rewound when the ring empties: out-of-order bytes placed with
        // write_at() sit at positions relative to it and would move with it.
    }

private:
    size_t wrap(size_t x) const { return x >= cap_ ? x - cap_ : x; }   // x < 2*cap_
    uint8_t* take(size_t n) { return cache_ ? cache_->take(n) : new (std::nothrow) uint8_t[n]; }
    void drop_storage() {
        if (!buf_) return;
        if (cache_) cache_->give(buf_, cap_);
        else delete[] buf_;
        buf_ = nullptr;
    }

    BlockCache* cache_ = nullptr;
    uint8_t* buf_ = nullptr;
    size_t cap_ = 0, head_ = 0, size_ = 0;
};

}  // namespace fastnet
