// The UMEM of one (device, queue): frame memory shared by every engine's XSK on that
// queue, the one fill ring and one completion ring they share, and the frame pool.
// XskDevice::open() binds Umem::fd() first; XskDevice hot path → Umem::service()/take()/give().
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>

struct xsk_ring_prod;
struct xsk_ring_cons;

namespace fastnet {

// Slots a UMEM's processes can hold at once (tags are one byte: slot + 1).
inline constexpr uint32_t kUmemSlots = 32;

struct UmemConfig {
    uint32_t frame_count = 4096;
    uint32_t frame_size = 4096;  // power of two, 2048..page size (aligned chunk mode)
    uint32_t fill_size = 2048;   // ring sizes: powers of two
    uint32_t comp_size = 2048;
    // Frames kept in the fill ring; the rest serve TX and the engines' caches.
    // 0 = min(fill_size, frame_count / 2).
    uint32_t fill_target = 0;
    // Back the memory with a memfd (fastnetd: clients map the same memory, Umem::attach).
    bool memfd = false;
};

enum class XskMode : int32_t { Unbound = 0, Copy = 1, ZeroCopy = 2 };

// Everything the engines of all processes share lives in one MAP_SHARED mapping: a
// header page(s) with the lock, the fill/completion ring cursors and the free list,
// then the frames. A forked child sees the same header at the same address.
struct UmemShared;

class Umem {
public:
    Umem() = default;
    ~Umem();
    Umem(const Umem&) = delete;
    Umem& operator=(const Umem&) = delete;

    // Maps the memory and registers it (XDP_UMEM_REG). Raises RLIMIT_MEMLOCK first.
    // 0 or -errno (see error()).
    int create(const UmemConfig& cfg = {});
    // A client of fastnetd: maps the UMEM fastnetd created (its memfd) and binds its
    // sockets to fastnetd's UMEM socket (umem_fd). Both fds become the Umem's. The fill and
    // completion rings stay fastnetd's: it keeps the fill ring topped up and drains
    // completions into the free list (the kernel lets only the socket that registered
    // the UMEM map them, and only before it is bound); service() here only moves
    // frames between the caller's cache and the free list. 0 or -errno.
    int attach(int memfd, int umem_fd, const UmemConfig& cfg);
    // Fails with -EBUSY while sockets still use it.
    int destroy();
    bool created() const { return fd_ >= 0 || remote_; }
    bool remote() const { return remote_; }
    int memfd() const { return memfd_; }
    const UmemConfig& config() const { return cfg_; }

    uint8_t* frame(uint64_t addr) const { return area_ + addr; }
    uint32_t frame_size() const { return cfg_.frame_size; }
    uint32_t frame_count() const { return cfg_.frame_count; }
    // The chunk an address points into (RX descriptors carry an offset).
    uint64_t chunk(uint64_t addr) const { return addr & ~uint64_t(cfg_.frame_size - 1); }

    // Under one lock acquisition: drain the completion ring, top the fill ring up to its
    // target, then bring the caller's cache to between lo and hi frames.
    // cache[0..*count) is the caller's private stash of free frame addresses.
    // Frames entering the cache are tagged with owner (see reclaim()).
    void service(uint64_t* cache, uint32_t* count, uint32_t cap, uint32_t lo, uint32_t hi,
                 uint8_t owner = 0);
    // Cheap unlocked check whether service() has work (completions or a low fill ring).
    bool needs_service() const;
    // The work service() would find, in frames: completions waiting plus the fill ring's
    // shortfall from its target (unlocked, approximate). fastnetd paces itself by it.
    uint32_t backlog() const;
    uint32_t fill_target() const { return cfg_.fill_target; }
    // Frames from / to the shared free list, one lock each.
    uint32_t take(uint64_t* out, uint32_t n, uint8_t owner = 0);
    void give(const uint64_t* in, uint32_t n);

    // Frame ownership, for a process that dies holding frames. Every frame an engine
    // holds (cache, received, allocated for TX) carries its owner tag (slot + 1); frames
    // in the free list and the kernel's rings carry 0. The owner tags its frames itself
    // without the lock: each tag byte is written by one party at a time.
    void tag(uint64_t addr, uint8_t owner) { owner_[addr / cfg_.frame_size] = owner; }
    // Returns every frame tagged owner to the free list (its holder is gone). Frames the
    // dead holder had in its own RX/TX rings are the kernel's and cannot be told apart.
    uint32_t reclaim(uint8_t owner);

    // Slots (XSKMAP indexes) across all processes sharing this UMEM: claim_slot() takes
    // a free one for the calling process (-ENOSPC when none is). reap_dead_slots() frees
    // the slots of processes that are gone, their frames back in the pool, and lists
    // them in out[] (the caller clears their steering); returns how many. It asks
    // kill(pid, 0), which a reused pid fools; reap_slots_of() frees the slots of one
    // process known to be gone (fastnetd watches its clients through pidfds).
    int claim_slot(uint32_t nslots);
    void release_slot(uint32_t slot);
    uint32_t reap_dead_slots(uint32_t nslots, uint32_t* out, uint32_t* frames = nullptr);
    uint32_t reap_slots_of(int32_t pid, uint32_t nslots, uint32_t* out, uint32_t* frames = nullptr);
    // Steering edits by the processes sharing the UMEM are serialised by this
    // process-shared lock (robust: a holder killed inside does not wedge the others).
    void control_lock() const;
    void control_unlock() const;
    // How many times another process took `slot` off a listening port (a forked child
    // that adopted a listener displaces its parent); the slot's holder compares it with
    // the value it last saw.
    uint32_t displaced(uint32_t slot) const;
    void displace(uint32_t slot);
    // The process holding a slot, 0 when free.
    int32_t slot_pid(uint32_t slot) const;
    // In a forked child: the parent's sockets are not this process's to close.
    void forget_sockets_after_fork() { sockets_ = 0; }
    // The fd of the UMEM's own socket: the first XskDevice binds it, later sockets bind
    // to it (XDP_SHARED_UMEM).
    int fd() const;
    // Bytes of TX metadata the kernel reads before each TX frame's data (0: none, a
    // kernel before 6.11). XskDevice puts its TX frames that far into their chunks.
    uint32_t tx_meta_len() const;
    static constexpr uint32_t kTxMetaLen = 24;   // sizeof(struct xsk_tx_metadata)

    // Frames in the shared free list, in the fill ring, and awaiting completion
    // reclaim: for leak checks.
    uint32_t free_frames() const;
    uint32_t fill_level() const;

    // The mode the first socket bound with (later ones share it).
    XskMode mode() const;
    const char* error() const { return err_; }

private:
    friend class XskDevice;
    template <class Dead>
    uint32_t reap_slots_if(uint32_t nslots, uint32_t* out, uint32_t* frames, Dead dead);
    void lock() const;
    void unlock() const;
    int fail(int err, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
    int map_memory(const UmemConfig& cfg, int fd);
    int register_memory(size_t area);
    void unmap();
    xsk_ring_prod* fill_ring() const;
    xsk_ring_cons* comp_ring() const;
    void set_mode(XskMode m);

    UmemConfig cfg_{};
    UmemShared* shared_ = nullptr;
    uint8_t* map_ = nullptr;   // whole mapping: header, then frames
    size_t map_len_ = 0;
    uint8_t* area_ = nullptr;  // frames
    uint64_t* free_list_ = nullptr;
    uint8_t* owner_ = nullptr;  // one tag per frame, in the shared header
    int fd_ = -1;           // create(): the UMEM's own socket
    bool fd_bound_ = false; // ... bound to the queue by the first XskDevice::open()
    uint64_t fd_ring_sizes_ = 0;   // its RX/TX ring sizes (rx << 32 | tx), 0 = not sized
    void* fill_map_ = nullptr;   // create(): the fill and completion rings' mappings
    void* comp_map_ = nullptr;
    size_t fill_len_ = 0, comp_len_ = 0;
    int memfd_ = -1;
    bool remote_ = false;   // attach(): fastnetd services the rings
    int remote_fd_ = -1;    // attach(): fastnetd's UMEM socket
    // Sockets of this process on the UMEM (XskDevice::open). The UMEM's own socket stays
    // bound, its slot cleared, from the first open until destroy(): the kernel lets new
    // sockets join only a bound one, and maps the fill and completion rings only on it.
    int sockets_ = 0;
    char err_[256] = {};
};

// Raise RLIMIT_MEMLOCK as far as allowed (UMEM registration counts against it;
// ENOBUFS when exceeded). 0 or -errno.
int raise_memlock_limit();

}  // namespace fastnet
