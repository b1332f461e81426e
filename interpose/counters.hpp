// Per-process counters in a small shared-memory segment, /dev/shm/fastnet.<pid>, so that
// fastnet-stat can read them from outside. The runtime copies each engine's EngineStats
// into that engine's slot after it polls; the interposer bumps its own counters directly.
// ensure_init() → counters_open(); exit → counters_close() removes the file.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>

#include "stack/engine.hpp"

namespace fastnet::ipose {

inline constexpr uint64_t kCountersMagic = 0x74656e7473616621ull;   // "!fastnet"
inline constexpr uint32_t kCountersVersion = 4;
inline constexpr int kMaxEngineSlots = 64;
inline constexpr int kMaxDrops = 16;

struct EngineSlot {
    std::atomic<uint32_t> used;      // 1 while an engine owns the slot
    uint32_t seq;                    // odd while being written (seqlock)
    uint64_t frames_rx, frames_tx, bytes_rx, bytes_tx;
    uint64_t conn_opened, conn_accepted, conn_closed, conn_reset;
    uint64_t retransmits, syn_cookies_sent, challenge_acks;
    uint64_t moved_in, frames_forwarded;   // connections that moved to this engine
    uint64_t frames_cached;                // UMEM frames in this engine's private cache
    uint64_t rx_csum_partial;              // segments accepted with a veth peer's partial checksum
    uint64_t tx_csum_offload;              // segments whose TCP checksum the device finished
    uint64_t handed_over;                  // connections handed to the kernel (TCP_REPAIR)
    uint64_t drops[kMaxDrops];
};

struct SharedCounters {
    uint64_t magic;
    uint32_t version;
    int32_t pid;
    char state[96];                  // "accelerated on <if>" or "kernel: <reason>"
    // Interposer counters (relaxed atomics; approximate while the process runs).
    std::atomic<uint64_t> sockets_accelerated;   // socket()s served by an engine
    std::atomic<uint64_t> accepted_kernel;       // accept()s served by the kernel side of a listener
    std::atomic<uint64_t> handovers;             // fastnet sockets moved to the kernel
    std::atomic<uint64_t> passthrough_calls;     // intercepted calls that went to libc
    std::atomic<uint64_t> engines_started;
    std::atomic<uint64_t> slots_reaped;          // slots of dead processes reclaimed
    std::atomic<uint64_t> frames_reclaimed;      // UMEM frames they held, back in the pool
    // The UMEM (shared by the process tree): its frames, and those in the shared free
    // list and the fill ring, sampled by the progress thread. At rest, free + fill + the
    // engines' caches account for every frame: fastnet-stat's umem_frames_idle.
    std::atomic<uint64_t> umem_frames;
    std::atomic<uint64_t> umem_frames_free;
    std::atomic<uint64_t> queues;                // RX queues the engines serve
    std::atomic<uint64_t> queue_rx_frames[16];   // frames the engines received, by RX queue
    std::atomic<uint64_t> passed_out;            // connections passed to another process or image
    std::atomic<uint64_t> passed_in;             // connections passed to this one (passing.hpp)
    uint64_t reserved[2];
    EngineSlot engines[kMaxEngineSlots];
};

// Null until counters_open() has run (and if /dev/shm is unusable).
SharedCounters* counters();
void counters_open();
void counters_close();
void counters_set_state(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

inline void count_passthrough() {
    if (SharedCounters* c = counters()) c->passthrough_calls.fetch_add(1, std::memory_order_relaxed);
}

// The runtime's per-engine hooks.
int counters_claim_slot();                          // -1 when all slots are taken
void counters_publish(int slot, const EngineStats& s, uint32_t frames_cached);
void counters_release_slot(int slot);

// Path of a process's segment.
inline void counters_path(int pid, char* out, size_t n) { snprintf(out, n, "/dev/shm/fastnet.%d", pid); }

}  // namespace fastnet::ipose
