// The descriptor table: which fd numbers are fastnet sockets (or epoll sets holding
// fastnet sockets) and everything needed to serve them or hand them to the kernel.
// Every fastnet socket owns a real kernel fd number, a dup() of one per-process anchor,
// so numbers never collide with kernel fds and close-on-exec keeps working.
// Wrappers → FdTable::lookup(fd) (lock-free, a counted hold for the call) → Entry →
// fastsock.cpp / epoll.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <type_traits>
#include <utility>

#include "stack/engine.hpp"

namespace fastnet::ipose {

class RtEngine;      // runtime.hpp: one engine, its device and lock
struct EpollSet;     // fastpoll.cpp: user-space part of an epoll instance
struct EpItem;

enum class Kind : uint8_t { Socket, Epoll };

enum class SockState : uint8_t { Fresh, Bound, Listening, Connecting, Connected, Closed };

// An option the application set, replayed onto the kernel socket at handover.
struct SavedOpt {
    int level = 0, name = 0;
    socklen_t len = 0;
    alignas(8) uint8_t val[24] = {};
};

struct Entry {
    Kind kind = Kind::Socket;
    std::atomic<int> refs{1};        // fd numbers pointing here (dup, dup2, F_DUPFD)
    // The last fd number went (or the socket was handed over to the kernel): a call still
    // in progress on the entry answers -EBADF at its next engine call or wakeup.
    std::atomic<bool> closed{false};

    // --- sockets ---
    int family = AF_INET;            // as the application created it
    bool nonblock = false;
    bool v6only = false;             // AF_INET6 with IPV6_V6ONLY set
    SockState state = SockState::Fresh;
    // The engine serving the socket and its id there. A connection served from another
    // thread moves to that thread's engine (fastsock.cpp follow_caller): both change
    // then, with both engines locked; read them under the engine lock (lock_engine).
    RtEngine* eng = nullptr;
    SockId sid = kNoSock;
    RtEngine* follow_hint = nullptr;         // the other engine that used it last
    bool stays = false;                      // a move was refused: not tried again
    // Kernel socket bound to the same address and port: reserves the port in the kernel,
    // reports EADDRINUSE like the kernel, and (once listening) serves loopback clients.
    int shadow = -1;
    std::atomic<bool> shadow_ready{false};   // edge seen on the shadow, not yet drained
    uint64_t shadow_tried = 0;               // last accept4() on the shadow (ns)
    bool accept_kernel_first = false;        // alternates so neither side starves
    sockaddr_storage bound{};
    socklen_t bound_len = 0;
    // Accepted sockets: the listener's port. Steering keeps the port on this engine while
    // the listener or any connection accepted on it is open (a closed listener must not
    // send its live connections' segments to the kernel, which would answer RST).
    uint16_t steered_port = 0;
    timeval rcvtimeo{}, sndtimeo{};
    int linger_onoff = 0, linger_secs = 0;
    SavedOpt opts[12];
    int nopts = 0;
    std::atomic<int> waiters{0};             // threads blocked on this socket
    int backlog = 0;                         // listen()'s, for a forked child's engine
    // Listener out of its port's slot set: a forked child took the port and this process
    // does not watch the listener (fs::listeners_displaced); back at accept/poll/epoll_ctl.
    std::atomic<bool> dormant{false};
    // When accept() last returned a connection (ns): a listener accepted on within the
    // last second is watched, and a fork does not take it off its port (a server that
    // accepts and forks a handler: PostgreSQL's postmaster).
    uint64_t last_accept = 0;
    // A listener inherited through fork() (see FdTable::lookup): Orphan until this
    // process accepts or waits on it, then Adopted by its engine or left KernelOnly.
    // A connection inherited through fork() is Remote: another process's engine serves
    // it until this one uses it (xproc.hpp); KernelOnly if that fails.
    enum Inherit : uint8_t { Own, Orphan, KernelOnly, Remote };
    std::atomic<uint8_t> inherited{Own};
    int xidx = -1;                           // entry in the shared table (xproc.hpp), or -1
    bool orphan() const { return inherited.load(std::memory_order_acquire) != Own; }

    // --- epoll sets ---
    EpollSet* ep = nullptr;

    // Memberships in user-space epoll sets (guarded by the epoll registry lock).
    // Never reused for anything else: an engine thread may still hold this entry in its
    // readiness list after the fd was closed, and walks items under that lock.
    EpItem* items = nullptr;
    Entry* free_next = nullptr;              // FdTable's free list

    void remember_opt(int level, int name, const void* val, socklen_t len);
};

// How an entry is stored: the entry and the count of holds on it. One hold per call in
// progress (EntryRef), one for all the fd numbers together (while refs > 0), one per
// readiness change not yet dispatched. The count lives beside the entry, not in it:
// alloc() re-constructs the entry in place while a stale lookup may still touch the count.
struct EntryCell {
    Entry entry;
    std::atomic<int> holds{1};
};

class EntryRef;

class FdTable {
public:
    static FdTable& get();

    bool init();                     // anchor fd + table sized to RLIMIT_NOFILE
    bool ready() const { return slots_ != nullptr; }

    // The entry fd names, held for the caller (an EntryRef: the hold goes when it does).
    // A listener inherited by a forked child is, in the child, a kernel listening socket
    // on its fd number (the shadow's) until the child accepts or waits on it: then
    // (adopt = true) orphan_hook lets this process's engine listen on the port too
    // (runtime.cpp). Other calls on it (setsockopt, close ...) are the kernel's.
    inline EntryRef lookup(int fd, bool adopt = false);
    // A hold on whatever fd names now, orphans included; null if nothing. Fast path: one
    // increment of the count and a second load of the slot, which must still name the
    // entry (else the entry was released meanwhile: undo and look again).
    Entry* hold(int fd) {
        if (static_cast<unsigned>(fd) >= size_) return nullptr;
        for (;;) {
            Entry* e = slots_[fd].load(std::memory_order_acquire);
            if (!e) return nullptr;
            // seq_cst on both sides of the check (and on remove()'s exchange): a lookup
            // that still sees e in the slot has counted itself before the closer's last
            // put() reads the count.
            int prev = holds(e).fetch_add(1, std::memory_order_seq_cst);
            if (!(prev & kFree) && slots_[fd].load(std::memory_order_seq_cst) == e) return e;
            put(e);
        }
    }
    // Drops one hold; the last recycles the entry (fs::recycle, then the free list).
    void put(Entry* e) {
        if (holds(e).fetch_sub(1, std::memory_order_acq_rel) == 1) recycle(e);
    }
    // A hold more on an entry already held (a readiness change queued for dispatch).
    static void add_hold(Entry* e) { holds(e).fetch_add(1, std::memory_order_relaxed); }
    bool (*orphan_hook)(int fd, Entry* e) = nullptr;
    bool (*remote_hook)(int fd, Entry* e) = nullptr;     // xproc::claim
    Entry* raw(int fd) const { return slots_[fd].load(std::memory_order_acquire); }
    // A fresh fd number for a fastnet socket (dup of the anchor), or -errno. The number
    // is checked to fit the table; it is closed and -EMFILE returned otherwise.
    int new_fd(bool cloexec);
    void install(int fd, Entry* e) {
        slots_[fd].store(e, std::memory_order_release);
        int hw = high_water_.load(std::memory_order_relaxed);
        while (fd > hw && !high_water_.compare_exchange_weak(hw, fd)) {}
    }
    // The highest fd number ever installed (bounds scans of the table).
    int high_water() const { return high_water_.load(std::memory_order_acquire); }
    // In a forked child: locks another thread may have held at fork() start free.
    void after_fork() {
        new (&free_mu_) std::mutex();
        new (&adopt_mu_) std::mutex();
    }
    Entry* remove(int fd) {
        if (static_cast<unsigned>(fd) >= size_) return nullptr;
        return slots_[fd].exchange(nullptr, std::memory_order_seq_cst);
    }

    // A fresh entry with one hold (its fd numbers' once installed; put() it if it never
    // is). Entries are recycled, never unmapped: a stale lookup touches valid memory.
    Entry* alloc();

    unsigned size() const { return size_; }
    int anchor() const { return anchor_; }

private:
    // Set in the count while the entry is on the free list: a stale lookup that
    // increments it then sees it is not a live entry.
    static constexpr int kFree = 1 << 30;
    static std::atomic<int>& holds(Entry* e) { return reinterpret_cast<EntryCell*>(e)->holds; }
    void recycle(Entry* e);
    Entry* adopt_orphan(int fd, Entry* e) const;

    std::atomic<Entry*>* slots_ = nullptr;
    unsigned size_ = 0;
    int anchor_ = -1;
    std::atomic<int> high_water_{-1};
    std::mutex free_mu_;
    Entry* free_ = nullptr;
    mutable std::mutex adopt_mu_;
};

static_assert(std::is_standard_layout_v<EntryCell>, "an Entry* must convert to its EntryCell*");

// A counted hold on a table entry for the length of one call: close(), dup2() onto the
// number or a handover on another thread can end the socket meanwhile (Entry::closed),
// but the entry is not recycled for another socket until every hold is gone.
// Converts to Entry* only as a named variable: `Entry* e = t.lookup(fd)` (a hold dropped
// at once) does not compile.
class EntryRef {
public:
    EntryRef() = default;
    explicit EntryRef(Entry* e) : e_(e) {}   // takes over a hold
    EntryRef(EntryRef&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
    EntryRef& operator=(EntryRef&& o) noexcept {
        if (this != &o) {
            reset();
            e_ = std::exchange(o.e_, nullptr);
        }
        return *this;
    }
    EntryRef(const EntryRef&) = delete;
    EntryRef& operator=(const EntryRef&) = delete;
    ~EntryRef() { reset(); }
    void reset() {
        if (e_) FdTable::get().put(std::exchange(e_, nullptr));
    }
    Entry* get() const { return e_; }
    Entry* operator->() const { return e_; }
    explicit operator bool() const& { return e_ != nullptr; }
    explicit operator bool() const&& { return e_ != nullptr; }
    operator Entry*() const& { return e_; }
    operator Entry*() const&& = delete;

private:
    Entry* e_ = nullptr;
};

inline EntryRef FdTable::lookup(int fd, bool adopt) {
    Entry* e = hold(fd);
    if (__builtin_expect(e && e->orphan(), 0)) {
        Entry* a = adopt || e->inherited.load(std::memory_order_relaxed) == Entry::Remote ? adopt_orphan(fd, e)
                                                                                          : nullptr;
        if (!a) {
            put(e);
            return EntryRef();
        }
    }
    return EntryRef(e);
}

// exec: every fastnet socket whose fd number is close-on-exec is closed (socket.cpp).
void close_on_exec_sockets();

// In-place handover: replaces fastnet socket `fd` by a kernel socket with the same
// number, the options and bind the application asked for, and the same flags. The
// caller has already unhooked the engine side. Returns 0 or -errno.
int handover_to_kernel(int fd, Entry* e);

// sockaddr helpers (IPv4 and IPv4-mapped IPv6 ↔ engine Endpoint).
bool sockaddr_to_endpoint(const sockaddr* sa, socklen_t len, Endpoint* out, bool* mapped);
void endpoint_to_sockaddr(int family, Endpoint ep, sockaddr* sa, socklen_t* len);
bool is_loopback(const sockaddr* sa, socklen_t len);

}  // namespace fastnet::ipose
