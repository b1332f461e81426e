// The /dev/shm/fastnet.<pid> segment: created at init (and again in a forked child),
// removed at exit. A seqlock per engine slot lets fastnet-stat read a consistent copy.
#include "interpose/counters.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "interpose/libc.hpp"

namespace fastnet::ipose {

namespace {
std::atomic<SharedCounters*> g_counters{nullptr};
int g_owner_pid = 0;
}

SharedCounters* counters() { return g_counters.load(std::memory_order_acquire); }

namespace {
// Segments of processes that died without running exit handlers (SIGKILL, SIGTERM's
// default action) stay in /dev/shm: the next fastnet process removes them.
void remove_stale_segments() {
    DIR* d = opendir("/dev/shm");
    if (!d) return;
    while (dirent* de = readdir(d)) {
        int pid = 0;
        char tail = 0;
        if (sscanf(de->d_name, "fastnet.%d%c", &pid, &tail) != 1 || pid <= 0) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;
        char path[64];
        counters_path(pid, path, sizeof path);
        unlink(path);
    }
    closedir(d);
}
}  // namespace

void counters_open() {
    int saved = errno;
    remove_stale_segments();
    errno = saved;
    int pid = getpid();
    char path[64];
    counters_path(pid, path, sizeof path);
    // O_CLOEXEC: the segment is this process's; an exec'd image makes its own.
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return;
    if (ftruncate(fd, sizeof(SharedCounters)) != 0) {
        real().close(fd);
        unlink(path);
        return;
    }
    void* p = mmap(nullptr, sizeof(SharedCounters), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    real().close(fd);
    if (p == MAP_FAILED) {
        unlink(path);
        return;
    }
    auto* c = static_cast<SharedCounters*>(p);   // zero-filled by ftruncate
    c->version = kCountersVersion;
    c->pid = pid;
    snprintf(c->state, sizeof c->state, "kernel: no TCP socket yet");
    __atomic_store_n(&c->magic, kCountersMagic, __ATOMIC_RELEASE);
    // A forked child leaves the parent's mapping alone: it just stops using it.
    g_owner_pid = pid;
    g_counters.store(c, std::memory_order_release);
}

void counters_close() {
    SharedCounters* c = g_counters.exchange(nullptr);
    if (!c || g_owner_pid != getpid()) return;
    char path[64];
    counters_path(g_owner_pid, path, sizeof path);
    unlink(path);
    munmap(c, sizeof *c);
}

void counters_set_state(const char* fmt, ...) {
    SharedCounters* c = counters();
    if (!c) return;
    char buf[sizeof c->state];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(c->state, buf, sizeof buf);
}

int counters_claim_slot() {
    SharedCounters* c = counters();
    if (!c) return -1;
    for (int i = 0; i < kMaxEngineSlots; ++i) {
        uint32_t expected = 0;
        if (c->engines[i].used.compare_exchange_strong(expected, 1)) return i;
    }
    return -1;
}

void counters_publish(int slot, const EngineStats& s, uint32_t frames_cached) {
    SharedCounters* c = counters();
    if (!c || slot < 0) return;
    EngineSlot& e = c->engines[slot];
    uint32_t seq = e.seq;
    __atomic_store_n(&e.seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    e.frames_rx = s.frames_rx; e.frames_tx = s.frames_tx;
    e.bytes_rx = s.bytes_rx; e.bytes_tx = s.bytes_tx;
    e.conn_opened = s.conn_opened; e.conn_accepted = s.conn_accepted;
    e.conn_closed = s.conn_closed; e.conn_reset = s.conn_reset;
    e.retransmits = s.retransmits; e.syn_cookies_sent = s.syn_cookies_sent;
    e.challenge_acks = s.challenge_acks;
    e.moved_in = s.moved_in; e.frames_forwarded = s.frames_forwarded;
    e.frames_cached = frames_cached;
    e.rx_csum_partial = s.rx_csum_partial;
    e.tx_csum_offload = s.tx_csum_offload;
    e.handed_over = s.handed_over;
    constexpr int n = static_cast<int>(Drop::Count_) < kMaxDrops ? static_cast<int>(Drop::Count_) : kMaxDrops;
    for (int i = 0; i < n; ++i) e.drops[i] = s.drops[i];
    __atomic_store_n(&e.seq, seq + 2, __ATOMIC_RELEASE);
}

void counters_release_slot(int slot) {
    // The slot keeps its last numbers (connections an exited thread served still count);
    // it is simply not reused.
    (void)slot;
}

}  // namespace fastnet::ipose
