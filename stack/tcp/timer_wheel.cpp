// Hashed timing wheel: bucket bookkeeping (arm, cancel, next_expiry); advance() is
// inline in timer_wheel.hpp so the fire callback inlines into the engine's poll loop.
#include "stack/tcp/timer_wheel.hpp"

#include <algorithm>

namespace fastnet {

TimerWheel::TimerWheel(TimeNs tick, uint32_t slots, TimeNs start)
    : tick_(tick ? tick : 1) {
    uint32_t n = 64;                      // at least one bitmap word
    while (n < slots) n <<= 1;
    mask_ = n - 1;
    cur_ = start / tick_;
    heads_.reset(new TimerLink[n]);
    for (uint32_t i = 0; i < n; ++i) heads_[i].next = heads_[i].prev = &heads_[i];
    bits_.reset(new uint64_t[n / 64]());
}

// Touches no timer: their owners (TCBs in a pool) may already be gone when the engine
// tears down, so timers still linked here are simply forgotten.
TimerWheel::~TimerWheel() = default;

void TimerWheel::arm(Timer& t, TimeNs at) {
    if (armed(t)) unlink(t);
    uint64_t tk = at / tick_;
    if (tk < cur_) tk = cur_;
    uint32_t s = static_cast<uint32_t>(tk) & mask_;
    t.expires = at;
    t.slot = s;
    TimerLink* h = &heads_[s];
    t.prev = h->prev;
    t.next = h;
    h->prev->next = &t;
    h->prev = &t;
    bits_[s >> 6] |= 1ull << (s & 63);
    ++count_;
}

void TimerWheel::cancel(Timer& t) {
    if (armed(t)) unlink(t);
}

void TimerWheel::unlink(Timer& t) {
    t.next->prev = t.prev;
    t.prev->next = t.next;
    t.next = t.prev = nullptr;
    --count_;
    TimerLink* h = &heads_[t.slot];
    if (h->next == h) bits_[t.slot >> 6] &= ~(1ull << (t.slot & 63));
}

void TimerWheel::collect_slot(uint32_t s, TimeNs now, TimerLink* due) {
    TimerLink* h = &heads_[s];
    for (TimerLink* x = h->next; x != h;) {
        TimerLink* nx = x->next;
        if (static_cast<Timer*>(x)->expires <= now) {
            x->next->prev = x->prev;
            x->prev->next = x->next;
            x->prev = due->prev;
            x->next = due;
            due->prev->next = x;
            due->prev = x;
        }
        x = nx;
    }
    if (h->next == h) bits_[s >> 6] &= ~(1ull << (s & 63));
}

TimeNs TimerWheel::next_expiry() const {
    if (count_ == 0) return ~0ull;
    const uint32_t cs = static_cast<uint32_t>(cur_) & mask_;
    TimeNs best = ~0ull;
    // The current bucket may hold timers later in this tick or whole revolutions
    // ahead: take its exact minimum.
    const TimerLink* h = &heads_[cs];
    for (const TimerLink* x = h->next; x != h; x = x->next)
        best = std::min(best, static_cast<const Timer*>(x)->expires);
    // Any other bucket at distance d holds nothing due before tick cur_ + d.
    uint32_t s = (cs + 1) & mask_;
    for (uint32_t scanned = 0; scanned < mask_;) {
        uint64_t w = bits_[s >> 6] >> (s & 63);
        if (w) {
            uint32_t d = static_cast<uint32_t>(__builtin_ctzll(w));
            uint32_t dist = scanned + d + 1;          // distance from cs
            if (dist > mask_) break;
            best = std::min(best, (cur_ + dist) * tick_);
            break;
        }
        uint32_t step = 64 - (s & 63);
        scanned += step;
        s = (s + step) & mask_;
    }
    return best;
}

}  // namespace fastnet
