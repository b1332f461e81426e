// The shared UMEM, its fill/completion rings and the frame pool; see umem.hpp.
// Locking: one process-shared robust mutex in the shared header guards the fill ring,
// the completion ring and the free list; callers take it once per batch.
#include "stack/xdp/umem.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "stack/xdp/xsk_uapi.hpp"

namespace fastnet {

struct UmemShared {
    pthread_mutex_t lock;
    // libxdp keeps cached cursors in these structs: they must be shared too, or one
    // process's stale cached_prod would overwrite another's entries.
    xsk_ring_prod fill;
    xsk_ring_cons comp;
    uint32_t frame_count;
    uint32_t free_count;
    int32_t mode;
    int32_t slot_pid[kUmemSlots];  // process holding each slot, 0 = free
    // Steering edits by several processes (a read-modify-write of a port's slot set)
    // and the per-slot count of times another process took the slot off a port.
    pthread_mutex_t control;
    uint32_t displaced[kUmemSlots];
    // An engine found the free list empty (take() short): until it holds frames again,
    // every engine's next service gives its cache back down to its low mark. Without it
    // idle engines could sit on every frame the fill ring leaves while one engine, its
    // output held back for want of a TX frame, retried each millisecond.
    uint32_t starved;
    // Bytes of TX metadata before each TX frame's data (XDP_UMEM_TX_METADATA_LEN), 0 when
    // the kernel has none; set by the creator, read by fastnetd's clients.
    uint32_t tx_meta_len;
};

namespace {

bool alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH); }

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
bool pow2(uint32_t v) { return v && !(v & (v - 1)); }
// net/xdp/xdp_umem.c: chunks smaller than 2 KiB are refused.
constexpr uint32_t kMinFrameSize = 2048;

}  // namespace

int raise_memlock_limit()
{
    rlimit r{RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MEMLOCK, &r) == 0)
        return 0;
    // Without CAP_SYS_RESOURCE the soft limit can still go up to the hard one.
    if (getrlimit(RLIMIT_MEMLOCK, &r))
        return -errno;
    r.rlim_cur = r.rlim_max;
    return setrlimit(RLIMIT_MEMLOCK, &r) ? -errno : 0;
}

Umem::~Umem() { destroy(); }

int Umem::fail(int err, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err_, sizeof err_, fmt, ap);
    va_end(ap);
    if (n >= 0 && static_cast<size_t>(n) < sizeof err_)
        snprintf(err_ + n, sizeof err_ - n, ": %s", strerror(-err));
    return err;
}

int Umem::create(const UmemConfig& cfg)
{
    if (created())
        return fail(-EEXIST, "UMEM already created");
    long page = sysconf(_SC_PAGESIZE);
    if (!pow2(cfg.frame_size) || cfg.frame_size < kMinFrameSize ||
        cfg.frame_size > static_cast<uint32_t>(page))
        return fail(-EINVAL, "UMEM frame size %u: need a power of two in [%u, %ld]",
                    cfg.frame_size, kMinFrameSize, page);
    if (!pow2(cfg.fill_size) || !pow2(cfg.comp_size))
        return fail(-EINVAL, "UMEM ring sizes %u/%u: need powers of two", cfg.fill_size,
                    cfg.comp_size);
    if (cfg.frame_count < 64)
        return fail(-EINVAL, "UMEM of %u frames is too small", cfg.frame_count);
    cfg_ = cfg;
    if (cfg_.fill_target == 0)
        cfg_.fill_target = cfg.fill_size < cfg.frame_count / 2 ? cfg.fill_size : cfg.frame_count / 2;
    if (cfg_.fill_target > cfg_.fill_size)
        cfg_.fill_target = cfg_.fill_size;

    raise_memlock_limit();  // best effort: registration reports ENOBUFS if still short

    int mfd = -1;
    if (cfg.memfd) {
        mfd = memfd_create("fastnet-umem", MFD_CLOEXEC);
        if (mfd < 0)
            return fail(-errno, "memfd_create for a UMEM");
    }
    if (int r = map_memory(cfg, mfd); r < 0) {
        if (mfd >= 0)
            close(mfd);
        return r;
    }
    memfd_ = mfd;
    size_t area = size_t(cfg.frame_count) * cfg.frame_size;
    shared_ = new (map_) UmemShared{};

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    // A worker killed inside the critical section must not wedge the others.
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&shared_->lock, &attr);
    pthread_mutex_init(&shared_->control, &attr);
    pthread_mutexattr_destroy(&attr);

    shared_->frame_count = cfg.frame_count;
    for (uint32_t i = 0; i < cfg.frame_count; i++)
        free_list_[i] = uint64_t(cfg.frame_count - 1 - i) * cfg.frame_size;
    shared_->free_count = cfg.frame_count;

    if (int r = register_memory(area); r < 0) {
        unmap();
        if (memfd_ >= 0)
            close(memfd_);
        memfd_ = -1;
        return r;
    }
    sockets_ = 0;
    return 0;
}

// The UMEM's own socket: registration (with room for TX metadata where the kernel has
// it), the fill and completion rings sized and mapped into the shared header's cursors.
// Done here rather than by libxdp, whose registration cannot ask for TX metadata.
int Umem::register_memory(size_t area)
{
    int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(-errno, "creating the UMEM's AF_XDP socket");
    xsk_uapi::UmemReg mr{};
    mr.addr = reinterpret_cast<uintptr_t>(area_);
    mr.len = area;
    mr.chunk_size = cfg_.frame_size;
    mr.flags = xsk_uapi::kUmemTxMetadataLen;
    mr.tx_metadata_len = kTxMetaLen;
    int err = setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof mr) < 0 ? -errno : 0;
    if (err == -EINVAL) {   // a kernel before 6.11: no TX metadata
        mr.flags = 0;
        mr.tx_metadata_len = 0;
        err = setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof mr) < 0 ? -errno : 0;
    }
    if (err) {
        close(fd);
        return fail(err, "registering a UMEM of %u x %u bytes%s", cfg_.frame_count,
                    cfg_.frame_size, err == -ENOBUFS ? " (RLIMIT_MEMLOCK too low)" : "");
    }
    shared_->tx_meta_len = mr.tx_metadata_len;
    int fsz = static_cast<int>(cfg_.fill_size), csz = static_cast<int>(cfg_.comp_size);
    xdp_mmap_offsets off{};
    socklen_t olen = sizeof off;
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &fsz, sizeof fsz) < 0 ||
        setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &csz, sizeof csz) < 0 ||
        getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &olen) < 0) {
        err = -errno;
        close(fd);
        return fail(err, "sizing the UMEM's fill and completion rings");
    }
    fill_len_ = off.fr.desc + cfg_.fill_size * sizeof(uint64_t);
    comp_len_ = off.cr.desc + cfg_.comp_size * sizeof(uint64_t);
    void* fm = mmap(nullptr, fill_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    XDP_UMEM_PGOFF_FILL_RING);
    void* cm = fm == MAP_FAILED ? MAP_FAILED
                                : mmap(nullptr, comp_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                                       fd, XDP_UMEM_PGOFF_COMPLETION_RING);
    if (cm == MAP_FAILED) {
        err = -errno;
        if (fm != MAP_FAILED)
            munmap(fm, fill_len_);
        close(fd);
        return fail(err, "mapping the UMEM's fill and completion rings");
    }
    fill_map_ = fm;
    comp_map_ = cm;
    xsk_uapi::point_ring(shared_->fill, static_cast<uint8_t*>(fm), off.fr, cfg_.fill_size, true);
    xsk_uapi::point_ring(shared_->comp, static_cast<uint8_t*>(cm), off.cr, cfg_.comp_size, false);
    fd_ = fd;
    fd_bound_ = false;
    fd_ring_sizes_ = 0;
    return 0;
}

// Header (lock, ring cursors, free list, owner tags), then the frames; from the memfd
// when there is one (ftruncate'd by the creator).
int Umem::map_memory(const UmemConfig& cfg, int fd)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t free_off = round_up(sizeof(UmemShared), 64);
    size_t owner_off = free_off + sizeof(uint64_t) * cfg.frame_count;
    size_t header = round_up(owner_off + cfg.frame_count, static_cast<size_t>(page));
    size_t len = header + size_t(cfg.frame_count) * cfg.frame_size;
    if (fd >= 0 && !remote_ && ftruncate(fd, static_cast<off_t>(len)) < 0)
        return fail(-errno, "sizing the UMEM memfd to %zu bytes", len);
    if (fd >= 0) {
        struct stat st{};
        if (fstat(fd, &st) < 0 || static_cast<size_t>(st.st_size) < len)
            return fail(-EINVAL, "the UMEM memfd holds %lld bytes, %zu expected",
                        static_cast<long long>(st.st_size), len);
    }
    void* m = fd >= 0 ? mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                      : mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return fail(-errno, "mapping a UMEM of %zu bytes", len);
    map_len_ = len;
    map_ = static_cast<uint8_t*>(m);
    area_ = map_ + header;
    shared_ = reinterpret_cast<UmemShared*>(map_);
    free_list_ = reinterpret_cast<uint64_t*>(map_ + free_off);
    owner_ = map_ + owner_off;   // zero: every frame starts in the free list
    return 0;
}

void Umem::unmap()
{
    if (map_)
        munmap(map_, map_len_);
    map_ = area_ = nullptr;
    shared_ = nullptr;
    free_list_ = nullptr;
    owner_ = nullptr;
}

int Umem::attach(int memfd, int umem_fd, const UmemConfig& cfg)
{
    if (created())
        return fail(-EEXIST, "UMEM already created");
    cfg_ = cfg;
    remote_ = true;
    if (int r = map_memory(cfg, memfd); r < 0) {
        remote_ = false;
        return r;
    }
    if (shared_->frame_count != cfg.frame_count) {
        unmap();
        remote_ = false;
        return fail(-EINVAL, "the UMEM has %u frames, %u announced", shared_->frame_count,
                    cfg.frame_count);
    }
    memfd_ = memfd;
    remote_fd_ = umem_fd;
    sockets_ = 0;
    return 0;
}

int Umem::destroy()
{
    if (remote_) {
        unmap();
        if (memfd_ >= 0)
            close(memfd_);
        if (remote_fd_ >= 0)
            close(remote_fd_);
        memfd_ = remote_fd_ = -1;
        remote_ = false;
        return 0;
    }
    if (sockets_ > 0)
        return fail(-EBUSY, "UMEM still in use by %d socket(s)", sockets_);
    if (fill_map_)
        munmap(fill_map_, fill_len_);
    if (comp_map_)
        munmap(comp_map_, comp_len_);
    fill_map_ = comp_map_ = nullptr;
    if (fd_ >= 0)
        close(fd_);
    fd_ = -1;
    fd_bound_ = false;
    fd_ring_sizes_ = 0;
    sockets_ = 0;
    unmap();
    if (memfd_ >= 0)
        close(memfd_);
    memfd_ = -1;
    return 0;
}

int Umem::fd() const { return remote_ ? remote_fd_ : fd_; }

uint32_t Umem::tx_meta_len() const { return shared_ ? shared_->tx_meta_len : 0; }

void Umem::lock() const
{
    if (pthread_mutex_lock(&shared_->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&shared_->lock);
}

void Umem::unlock() const { pthread_mutex_unlock(&shared_->lock); }

void Umem::control_lock() const
{
    if (pthread_mutex_lock(&shared_->control) == EOWNERDEAD)
        pthread_mutex_consistent(&shared_->control);
}

void Umem::control_unlock() const { pthread_mutex_unlock(&shared_->control); }

uint32_t Umem::displaced(uint32_t slot) const
{
    return slot < kUmemSlots ? __atomic_load_n(&shared_->displaced[slot], __ATOMIC_ACQUIRE) : 0;
}

void Umem::displace(uint32_t slot)
{
    if (slot < kUmemSlots)
        __atomic_fetch_add(&shared_->displaced[slot], 1, __ATOMIC_ACQ_REL);
}

int32_t Umem::slot_pid(uint32_t slot) const
{
    return slot < kUmemSlots ? __atomic_load_n(&shared_->slot_pid[slot], __ATOMIC_ACQUIRE) : 0;
}

xsk_ring_prod* Umem::fill_ring() const { return &shared_->fill; }
xsk_ring_cons* Umem::comp_ring() const { return &shared_->comp; }

XskMode Umem::mode() const
{
    return shared_ ? static_cast<XskMode>(__atomic_load_n(&shared_->mode, __ATOMIC_ACQUIRE))
                   : XskMode::Unbound;
}

void Umem::set_mode(XskMode m)
{
    __atomic_store_n(&shared_->mode, static_cast<int32_t>(m), __ATOMIC_RELEASE);
}

bool Umem::needs_service() const
{
    // fastnetd services the rings from the free list alone: engines must not sit on
    // frames it needs to keep the fill ring full.
    if (remote_)
        return __atomic_load_n(&shared_->free_count, __ATOMIC_RELAXED) < cfg_.fill_target;
    const xsk_ring_cons& c = shared_->comp;
    if (__atomic_load_n(c.producer, __ATOMIC_ACQUIRE) != __atomic_load_n(c.consumer, __ATOMIC_RELAXED))
        return true;
    // Refill in batches of a quarter of the target, not frame by frame.
    return fill_level() + cfg_.fill_target / 4 < cfg_.fill_target ||
           __atomic_load_n(&shared_->starved, __ATOMIC_RELAXED);
}

uint32_t Umem::backlog() const
{
    const xsk_ring_cons& c = shared_->comp;
    uint32_t done = __atomic_load_n(c.producer, __ATOMIC_ACQUIRE) - __atomic_load_n(c.consumer, __ATOMIC_RELAXED);
    uint32_t level = fill_level();
    return done + (level < cfg_.fill_target ? cfg_.fill_target - level : 0);
}

void Umem::service(uint64_t* cache, uint32_t* count, uint32_t cap, uint32_t lo, uint32_t hi,
                   uint8_t owner)
{
    lock();
    uint32_t n = *count;
    if (remote_)
        goto rebalance;
    {
    // Completed TX frames come back to whichever engine drains them: one shared pool.
    xsk_ring_cons* comp = &shared_->comp;
    uint32_t idx = 0;
    uint32_t done = xsk_ring_cons__peek(comp, cfg_.comp_size, &idx);
    for (uint32_t i = 0; i < done; i++) {
        uint64_t addr = chunk(*xsk_ring_cons__comp_addr(comp, idx + i));
        if (n < cap) {
            cache[n++] = addr;
            tag(addr, owner);
        } else {
            free_list_[shared_->free_count++] = addr;
        }
    }
    if (done)
        xsk_ring_cons__release(comp, done);

    xsk_ring_prod* fill = &shared_->fill;
    uint32_t free_slots = xsk_prod_nb_free(fill, cfg_.fill_size);
    uint32_t level = cfg_.fill_size - free_slots;
    if (level < cfg_.fill_target) {
        uint32_t want = cfg_.fill_target - level;
        uint32_t avail = n + shared_->free_count;
        if (want > avail)
            want = avail;
        if (want && xsk_ring_prod__reserve(fill, want, &idx) == want) {
            for (uint32_t i = 0; i < want; i++) {
                uint64_t addr = n ? cache[--n] : free_list_[--shared_->free_count];
                tag(addr, 0);
                *xsk_ring_prod__fill_addr(fill, idx + i) = addr;
            }
            xsk_ring_prod__submit(fill, want);
        }
    }
    }

rebalance:
    uint32_t mid = (lo + hi) / 2;
    if (!remote_ && shared_->starved) {
        if (n >= lo && shared_->free_count < lo) {   // give to the one that has none
            while (n > lo) {
                free_list_[shared_->free_count++] = cache[--n];
                tag(cache[n], 0);
            }
        }
        if (shared_->free_count >= cfg_.fill_target / 8)
            __atomic_store_n(&shared_->starved, 0, __ATOMIC_RELAXED);
    }
    if (n < lo) {
        while (n < mid && shared_->free_count) {
            cache[n] = free_list_[--shared_->free_count];
            tag(cache[n++], owner);
        }
    } else if (n > hi) {
        while (n > mid) {
            free_list_[shared_->free_count++] = cache[--n];
            tag(cache[n], 0);
        }
    }
    *count = n;
    unlock();
}

uint32_t Umem::take(uint64_t* out, uint32_t n, uint8_t owner)
{
    lock();
    uint32_t got = 0;
    while (got < n && shared_->free_count) {
        out[got] = free_list_[--shared_->free_count];
        tag(out[got++], owner);
    }
    if (got < n && !remote_)
        __atomic_store_n(&shared_->starved, 1, __ATOMIC_RELAXED);
    unlock();
    return got;
}

void Umem::give(const uint64_t* in, uint32_t n)
{
    lock();
    for (uint32_t i = 0; i < n; i++) {
        free_list_[shared_->free_count++] = chunk(in[i]);
        tag(in[i], 0);
    }
    unlock();
}

uint32_t Umem::reclaim(uint8_t owner)
{
    if (owner == 0)
        return 0;
    lock();
    uint32_t n = 0;
    for (uint32_t i = 0; i < cfg_.frame_count; i++) {
        if (owner_[i] != owner)
            continue;
        owner_[i] = 0;
        free_list_[shared_->free_count++] = uint64_t(i) * cfg_.frame_size;
        n++;
    }
    unlock();
    return n;
}

int Umem::claim_slot(uint32_t nslots)
{
    if (nslots > kUmemSlots)
        nslots = kUmemSlots;
    lock();
    int got = -ENOSPC;
    for (uint32_t i = 0; i < nslots && got < 0; i++)
        if (shared_->slot_pid[i] == 0)
            got = static_cast<int>(i);
    if (got >= 0)
        shared_->slot_pid[got] = getpid();
    unlock();
    return got;
}

template <class Dead>
uint32_t Umem::reap_slots_if(uint32_t nslots, uint32_t* out, uint32_t* frames, Dead dead)
{
    if (nslots > kUmemSlots)
        nslots = kUmemSlots;
    pid_t pids[kUmemSlots];
    lock();
    for (uint32_t i = 0; i < nslots; i++)
        pids[i] = shared_->slot_pid[i];
    unlock();
    uint32_t n = 0;
    for (uint32_t i = 0; i < nslots; i++) {
        if (pids[i] == 0 || !dead(pids[i]))
            continue;
        // Frames first, then the slot: a new holder must not see the old one's tags.
        uint32_t got = reclaim(static_cast<uint8_t>(i + 1));
        if (frames)
            *frames += got;
        lock();
        bool mine = shared_->slot_pid[i] == pids[i];
        if (mine)
            shared_->slot_pid[i] = 0;
        unlock();
        if (mine)
            out[n++] = i;
    }
    return n;
}

uint32_t Umem::reap_dead_slots(uint32_t nslots, uint32_t* out, uint32_t* frames)
{
    return reap_slots_if(nslots, out, frames, [](pid_t p) { return !alive(p); });
}

uint32_t Umem::reap_slots_of(int32_t pid, uint32_t nslots, uint32_t* out, uint32_t* frames)
{
    return reap_slots_if(nslots, out, frames, [pid](pid_t p) { return p == pid; });
}

void Umem::release_slot(uint32_t slot)
{
    if (slot >= kUmemSlots)
        return;
    lock();
    if (shared_->slot_pid[slot] == getpid())
        shared_->slot_pid[slot] = 0;
    unlock();
}

uint32_t Umem::free_frames() const
{
    lock();
    uint32_t n = shared_->free_count;
    unlock();
    return n;
}

uint32_t Umem::fill_level() const
{
    const xsk_ring_prod& f = shared_->fill;
    if (remote_)   // the ring is mapped in fastnetd only: its cursors as last seen there
        return __atomic_load_n(&f.cached_prod, __ATOMIC_RELAXED) -
               (__atomic_load_n(&f.cached_cons, __ATOMIC_RELAXED) - cfg_.fill_size);
    return __atomic_load_n(f.producer, __ATOMIC_ACQUIRE) -
           __atomic_load_n(f.consumer, __ATOMIC_ACQUIRE);
}

}  // namespace fastnet
