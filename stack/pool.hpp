// Fixed-capacity object pool with generation-checked handles. The engine keeps its
// TCBs here: a SockId is a handle, so a stale id (socket closed, slot reused) is
// detected instead of touching someone else's connection. alloc/free/get are O(1).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace fastnet {

// Handle layout: low index_bits = slot index, the rest = slot generation (never all
// ones, so ~0u — kNoSock — is never a valid handle).
template <class T>
class ObjectPool {
public:
    static constexpr uint32_t kInvalid = ~0u;

    // The storage is reserved, not touched: a slot is built when it is first used, so a
    // pool sized for 64 Ki sockets costs resident memory only for the sockets it had.
    // It is mapped directly, not taken from malloc: an allocator may fill what it hands
    // out (glibc's MALLOC_PERTURB_ does, for the whole 100+ MiB), which would touch every
    // page at engine creation and take a new engine half a second or more.
    explicit ObjectPool(uint32_t capacity) : cap_(capacity) {
        while ((1ull << bits_) < capacity) ++bits_;
        gen_limit_ = static_cast<uint32_t>((1ull << (32 - bits_)) - 1);   // generations 0..limit-1
        bytes_ = sizeof(Slot) * (cap_ ? cap_ : 1);
        void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        storage_ = static_cast<Slot*>(p);   // page-aligned: enough for any Slot
    }
    ~ObjectPool() {
        for (uint32_t i = 0; i < used_; ++i) {
            if (storage_[i].live) obj(i)->~T();
            storage_[i].~Slot();
        }
        munmap(storage_, bytes_);
    }
    ObjectPool(const ObjectPool&) = delete;
    ObjectPool& operator=(const ObjectPool&) = delete;

    // Constructs a T in a free slot; kInvalid when full.
    template <class... A>
    uint32_t alloc(A&&... args) {
        uint32_t i;
        if (free_head_ != kInvalid) {
            i = free_head_;
            free_head_ = storage_[i].next_free;
        } else if (used_ < cap_) {
            i = used_++;
            new (&storage_[i]) Slot();
        } else {
            return kInvalid;
        }
        Slot& s = storage_[i];
        new (s.mem) T(std::forward<A>(args)...);
        s.live = true;
        ++live_;
        return (s.gen << bits_) | i;
    }
    // Destroys the object; false for a stale or invalid handle.
    bool free(uint32_t h) {
        T* p = get(h);
        if (!p) return false;
        uint32_t i = h & idx_mask();
        p->~T();
        Slot& s = storage_[i];
        s.live = false;
        s.gen = s.gen + 1 >= gen_limit_ ? 0 : s.gen + 1;
        s.next_free = free_head_;
        free_head_ = i;
        --live_;
        return true;
    }
    // The object for a live handle of this generation, else nullptr.
    T* get(uint32_t h) {
        uint32_t i = h & idx_mask();
        if (h == kInvalid || i >= used_) return nullptr;
        Slot& s = storage_[i];
        if (!s.live || s.gen != gen_of(h)) return nullptr;
        return obj(i);
    }
    const T* get(uint32_t h) const { return const_cast<ObjectPool*>(this)->get(h); }

    // Slot-index access, for iteration (timers, leak checks): nullptr if the slot is free.
    T* at_index(uint32_t i) { return i < used_ && storage_[i].live ? obj(i) : nullptr; }
    uint32_t handle_at(uint32_t i) const { return (storage_[i].gen << bits_) | i; }
    uint32_t index_of(uint32_t h) const { return h & idx_mask(); }

    size_t live() const { return live_; }
    size_t capacity() const { return cap_; }
    size_t touched() const { return used_; }           // slots ever used (resident)

private:
    struct Slot {
        alignas(T) unsigned char mem[sizeof(T)];
        uint32_t gen = 0;
        uint32_t next_free = kInvalid;
        bool live = false;
    };

    T* obj(uint32_t i) { return std::launder(reinterpret_cast<T*>(storage_[i].mem)); }
    uint32_t idx_mask() const { return bits_ >= 32 ? ~0u : (1u << bits_) - 1; }
    uint32_t gen_of(uint32_t h) const { return bits_ >= 32 ? 0 : h >> bits_; }

    uint32_t cap_;
    uint32_t bits_ = 0;
    uint32_t gen_limit_ = 1;
    uint32_t free_head_ = kInvalid;    // slots freed after use; never-used ones follow used_
    uint32_t used_ = 0;
    size_t live_ = 0;
    size_t bytes_ = 0;
    Slot* storage_ = nullptr;
};

}  // namespace fastnet
