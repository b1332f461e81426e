// The fd table, the anchor fd behind every fastnet socket number, and in-place handover
// to a kernel socket (dup3 of a new kernel socket onto the fastnet socket's number).
#include "interpose/fdtable.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "interpose/fastsock.hpp"
#include "interpose/libc.hpp"

namespace fastnet::ipose {

void Entry::remember_opt(int level, int name, const void* val, socklen_t len) {
    if (len > sizeof(SavedOpt::val)) return;
    for (int i = 0; i < nopts; ++i) {
        if (opts[i].level == level && opts[i].name == name) {
            opts[i].len = len;
            memcpy(opts[i].val, val, len);
            return;
        }
    }
    if (nopts == static_cast<int>(std::size(opts))) return;
    opts[nopts].level = level;
    opts[nopts].name = name;
    opts[nopts].len = len;
    memcpy(opts[nopts].val, val, len);
    ++nopts;
}

FdTable& FdTable::get() {
    static FdTable t;
    return t;
}

bool FdTable::init() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
    // The soft limit may be raised later (servers do); size for the hard limit, capped.
    // The pages are only touched for fd numbers actually used.
    rlim_t n = std::max<rlim_t>(rl.rlim_cur, std::min<rlim_t>(rl.rlim_max, 1u << 20));
    n = std::min<rlim_t>(n, 1u << 22);
    size_t bytes = n * sizeof(std::atomic<Entry*>);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    // An unbound TCP socket (an eventfd where sockets cannot be made): if a fastnet fd
    // number reaches a kernel call we do not intercept, the kernel sees a harmless
    // descriptor, not a stranger's, and one that is a socket to fstat() (libuv's
    // uv_guess_handle, sd_is_socket). Unbound, it is in no table `ss` lists.
    anchor_ = real().socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (anchor_ < 0) anchor_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (anchor_ < 0) {
        munmap(p, bytes);
        return false;
    }
    slots_ = static_cast<std::atomic<Entry*>*>(p);
    size_ = static_cast<unsigned>(n);
    return true;
}

int FdTable::new_fd(bool cloexec) {
    int fd = real().fcntl(anchor_, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (fd < 0) return -errno;
    if (static_cast<unsigned>(fd) >= size_) {
        real().close(fd);
        return -EMFILE;
    }
    return fd;
}

Entry* FdTable::alloc() {
    Entry* e = nullptr;
    {
        std::lock_guard g(free_mu_);
        if (free_) {
            e = free_;
            free_ = e->free_next;
        }
    }
    if (!e) {
        auto* cell = new (std::nothrow) EntryCell();
        return cell ? &cell->entry : nullptr;
    }
    // Only the count may be touched by others now (a stale lookup's increment and undo).
    e->~Entry();
    new (e) Entry();
    holds(e).fetch_sub(kFree - 1, std::memory_order_acq_rel);   // off the free list, one hold
    return e;
}

Entry* FdTable::adopt_orphan(int fd, Entry* e) const {
    std::lock_guard g(adopt_mu_);
    uint8_t st = e->inherited.load(std::memory_order_acquire);
    if (st == Entry::Remote) {
        st = remote_hook && remote_hook(fd, e) ? Entry::Own : Entry::KernelOnly;
        e->inherited.store(st, std::memory_order_release);
    } else if (st == Entry::Orphan) {
        st = orphan_hook && orphan_hook(fd, e) ? Entry::Own : Entry::KernelOnly;
        e->inherited.store(st, std::memory_order_release);
    }
    return st == Entry::Own ? e : nullptr;
}

void FdTable::recycle(Entry* e) {
    // The count reached 0. A stale lookup may count itself in again for a moment; then
    // its own put() recycles, not this one.
    int zero = 0;
    if (!holds(e).compare_exchange_strong(zero, kFree, std::memory_order_acq_rel)) return;
    int saved = errno;      // runs in a wrapper's epilogue, after errno was set
    fs::recycle(e);
    errno = saved;
    std::lock_guard g(free_mu_);
    e->free_next = free_;
    free_ = e;
}

int handover_to_kernel(int fd, Entry* e) {
    const RealLibc& r = real();
    int k = e->shadow;
    if (k < 0) {
        k = r.socket(e->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (k < 0) return -errno;
        for (int i = 0; i < e->nopts; ++i)
            r.setsockopt(k, e->opts[i].level, e->opts[i].name, e->opts[i].val, e->opts[i].len);
        if (e->bound_len && r.bind(k, reinterpret_cast<sockaddr*>(&e->bound), e->bound_len) != 0) {
            int err = errno;
            r.close(k);
            return -err;
        }
    }
    int fl = r.fcntl(k, F_GETFL);
    r.fcntl(k, F_SETFL, e->nonblock ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
    if (e->rcvtimeo.tv_sec || e->rcvtimeo.tv_usec)
        r.setsockopt(k, SOL_SOCKET, SO_RCVTIMEO, &e->rcvtimeo, sizeof e->rcvtimeo);
    if (e->sndtimeo.tv_sec || e->sndtimeo.tv_usec)
        r.setsockopt(k, SOL_SOCKET, SO_SNDTIMEO, &e->sndtimeo, sizeof e->sndtimeo);
    int fdflags = r.fcntl(fd, F_GETFD);
    // dup3 replaces the anchor dup atomically: the number is never free in between.
    if (r.dup3(k, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
        int err = errno;
        if (k != e->shadow) r.close(k);
        return -err;
    }
    r.close(k);
    e->shadow = -1;
    return 0;
}

}  // namespace fastnet::ipose
