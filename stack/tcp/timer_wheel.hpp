// Hashed timing wheel (Varghese & Lauck, scheme 6): O(1) arm/cancel, intrusive timers.
// Owned by the engine; the TCB embeds one Timer per kind it needs (RTO, delayed ACK,
// persist, keepalive, TIME_WAIT). Engine::poll(now) → TimerWheel::advance(now, fire).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "stack/device.hpp"

namespace fastnet {

struct TimerLink {
    TimerLink* next = nullptr;     // intrusive circular list; nullptr when not armed
    TimerLink* prev = nullptr;
};

// Embedded in its owner; must not move while armed, and must be cancelled before its
// owner is destroyed (unless the wheel is being destroyed too: ~TimerWheel touches no
// timer). kind/owner are free for the caller.
struct Timer : TimerLink {
    TimeNs expires = 0;        // absolute time, ns
    uint32_t kind = 0;
    uint32_t slot = 0;         // wheel slot, for the occupancy bitmap
    void* owner = nullptr;

    Timer() = default;
    // A moved timer is unarmed (its owner moves to another wheel): cancel the source first.
    Timer(Timer&& o) noexcept : kind(o.kind) {}
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
};

// A single-level wheel of `slots` buckets of `tick` ns. A timer further away than one
// revolution (slots*tick, 4.096 s by default) simply stays in its bucket and is skipped
// on each pass until its time comes, so 60 s TIME_WAIT and 2 h keepalive work unchanged;
// they cost one comparison per revolution.
class TimerWheel {
public:
    explicit TimerWheel(TimeNs tick = 1'000'000, uint32_t slots = 4096, TimeNs start = 0);
    ~TimerWheel();
    TimerWheel(const TimerWheel&) = delete;
    TimerWheel& operator=(const TimerWheel&) = delete;

    // (Re)arms t to fire at the first advance(now) with now >= at. A time already in
    // the past fires at the next advance(). Re-arming an armed timer moves it.
    void arm(Timer& t, TimeNs at);
    void cancel(Timer& t);               // no-op when not armed
    static bool armed(const Timer& t) { return t.next != nullptr; }

    // Fires, via fire(Timer&), every timer with expires <= now; each is disarmed before
    // its callback, which may re-arm it or arm/cancel any other timer. A timer re-armed
    // from a callback for a time <= now fires in the same call unless its bucket was
    // already passed, in which case it fires at the next advance().
    template <class F> void advance(TimeNs now, F&& fire);

    // A time <= the earliest expiry (may be earlier, never later); ~0ull when empty.
    // Costs a bitmap scan plus a walk of the current bucket.
    TimeNs next_expiry() const;
    size_t size() const { return count_; }
    TimeNs tick() const { return tick_; }

private:
    void unlink(Timer& t);
    void collect_slot(uint32_t s, TimeNs now, TimerLink* due);   // due timers → `due`

    TimeNs tick_;
    uint32_t mask_;
    uint64_t cur_;              // ticks < cur_ are fully processed
    size_t count_ = 0;
    std::unique_ptr<TimerLink[]> heads_;  // bucket list heads (sentinels)
    std::unique_ptr<uint64_t[]> bits_;    // occupancy, one bit per slot
};

template <class F>
void TimerWheel::advance(TimeNs now, F&& fire) {
    uint64_t nt = now / tick_;
    if (nt < cur_) nt = cur_;
    // Every bucket at most once: a jump of more than a revolution visits each bucket.
    uint64_t last = nt - cur_ > mask_ ? cur_ + mask_ : nt;
    TimerLink due;
    due.next = due.prev = &due;
    for (uint64_t t = cur_; t <= last; ++t) {
        uint32_t s = static_cast<uint32_t>(t) & mask_;
        if (!(bits_[s >> 6] >> (s & 63) & 1)) continue;
        cur_ = t;   // arms from callbacks for past times land here, not behind us
        collect_slot(s, now, &due);
        while (due.next != &due) {
            Timer* x = static_cast<Timer*>(due.next);
            x->next->prev = x->prev;
            x->prev->next = x->next;
            x->next = x->prev = nullptr;
            --count_;
            fire(*x);
        }
    }
    cur_ = nt;
}

}  // namespace fastnet
