// The simulated link: pooled frame buffers, per-direction impairments and a min-heap of
// frames in flight ordered by arrival time. Engine TX → SimDevice::tx_submit →
// SimLink::submit; test loop → SimLink::advance → receiver's RX ring → rx_burst.
#include "stack/sim/sim_link.hpp"

#include <algorithm>
#include <cstring>

namespace fastnet {

namespace {

uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

// ---- SimDevice -------------------------------------------------------------------

size_t SimDevice::rx_burst(Frame* out, size_t n) {
    size_t k = 0;
    const size_t cap = rx_.size();
    while (k < n && rx_count_) {
        uint32_t b = rx_[rx_head_];
        rx_head_ = rx_head_ + 1 == cap ? 0 : rx_head_ + 1;
        --rx_count_;
        out[k++] = Frame{link_->buf(b), link_->len_[b], b};
    }
    return k;
}

void SimDevice::rx_release(const Frame* frames, size_t n) {
    for (size_t i = 0; i < n; ++i) link_->give_buffer(static_cast<uint32_t>(frames[i].handle));
}

size_t SimDevice::tx_alloc(Frame* out, size_t n) {
    size_t k = 0;
    for (; k < n; ++k) {
        uint32_t b = link_->take_buffer();
        if (b == ~0u) break;
        out[k] = Frame{link_->buf(b), 0, b};
    }
    return k;
}

void SimDevice::tx_submit(const Frame* frames, size_t n) {
    for (size_t i = 0; i < n; ++i) link_->submit(side_, frames[i]);
}

void SimDevice::tx_abandon(const Frame* frames, size_t n) {
    rx_release(frames, n);
}

uint32_t SimDevice::tx_capacity() const { return link_->fsize_; }

// ---- SimLink ---------------------------------------------------------------------

SimLink::SimLink(const SimLinkParams& a_to_b, const SimLinkParams& b_to_a, uint64_t seed,
                 uint32_t buffers, uint32_t frame_size)
    : nbuf_(buffers), fsize_(frame_size),
      mem_(new uint8_t[size_t(buffers) * frame_size]()) {
    free_.reserve(buffers);
    for (uint32_t i = buffers; i-- > 0;) free_.push_back(i);   // hands out 0, 1, 2 ...
    len_.assign(buffers, 0);
    for (int s = 0; s < 2; ++s) {
        dev_[s].link_ = this;
        dev_[s].side_ = s;
        dev_[s].rx_.assign(buffers, 0);
        Direction& d = dir_[s];
        d.p = s == 0 ? a_to_b : b_to_a;
        uint64_t x = seed ^ (s ? 0xd1b54a32d192ed03ull : 0);
        for (auto& w : d.rng) w = splitmix64(x);
        d.q.reserve(buffers);
    }
}

SimLink::~SimLink() = default;

uint64_t SimLink::next_u64(Direction& d) {
    // xoshiro256** (Blackman & Vigna): fast, and the same sequence on every platform.
    uint64_t* s = d.rng;
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double SimLink::uniform(Direction& d) {
    return static_cast<double>(next_u64(d) >> 11) * 0x1.0p-53;
}

uint32_t SimLink::take_buffer() {
    if (free_.empty()) return ~0u;
    uint32_t b = free_.back();
    free_.pop_back();
    return b;
}

void SimLink::give_buffer(uint32_t b) {
    if (b < nbuf_) free_.push_back(b);
}

bool SimLink::later(const InFlight& x, const InFlight& y) {
    return x.at != y.at ? x.at > y.at : x.order > y.order;
}

void SimLink::submit(int side, const Frame& f) {
    Direction& d = dir_[side];
    const uint32_t b = static_cast<uint32_t>(f.handle);
    const uint32_t len = std::min(f.len, fsize_);
    ++d.stats.sent;
    // Draw the same numbers for every frame whatever the settings, so changing one
    // probability does not reshuffle the others' decisions.
    const double u_loss = uniform(d), u_reorder = uniform(d), u_dup = uniform(d),
                 u_corrupt = uniform(d);
    const uint64_t r_pos = next_u64(d);

    if (u_loss < d.p.loss) { ++d.stats.lost; give_buffer(b); return; }

    TimeNs depart = now_;
    if (d.p.rate_bps) {
        const TimeNs ser = static_cast<TimeNs>(
            (static_cast<__uint128_t>(len) * 8u * 1'000'000'000u) / d.p.rate_bps);
        const TimeNs start = std::max(d.busy_until, now_);
        const uint64_t backlog = static_cast<uint64_t>(
            (static_cast<__uint128_t>(start - now_) * d.p.rate_bps) / 8'000'000'000u);
        if (backlog + len > d.p.queue_bytes) { ++d.stats.queue_drops; give_buffer(b); return; }
        depart = start + ser;
        d.busy_until = depart;
    }
    TimeNs at = depart + d.p.delay;
    if (u_reorder < d.p.reorder) { at += d.p.reorder_extra; ++d.stats.reordered; }
    if (u_corrupt < d.p.corrupt && len) {
        buf(b)[r_pos % len] ^= static_cast<uint8_t>(1u << (r_pos >> 32 & 7));
        ++d.stats.corrupted;
    }
    d.q.push_back(InFlight{at, order_++, b, len});
    std::push_heap(d.q.begin(), d.q.end(), later);
    if (u_dup < d.p.duplicate) {
        uint32_t b2 = take_buffer();
        if (b2 == ~0u) { ++d.stats.no_buffer; return; }
        std::memcpy(buf(b2), buf(b), len);
        ++d.stats.duplicated;
        d.q.push_back(InFlight{at, order_++, b2, len});
        std::push_heap(d.q.begin(), d.q.end(), later);
    }
}

void SimLink::advance(TimeNs now) {
    if (now > now_) now_ = now;
    for (int s = 0; s < 2; ++s) {
        Direction& d = dir_[s];
        SimDevice& rx = dev_[1 - s];
        const size_t cap = rx.rx_.size();
        while (!d.q.empty() && d.q.front().at <= now_) {
            std::pop_heap(d.q.begin(), d.q.end(), later);
            InFlight f = d.q.back();
            d.q.pop_back();
            len_[f.buf] = f.len;
            size_t tail = rx.rx_head_ + rx.rx_count_;
            if (tail >= cap) tail -= cap;
            rx.rx_[tail] = f.buf;       // cannot overflow: the ring holds every buffer
            ++rx.rx_count_;
            ++d.stats.delivered;
            d.stats.bytes_delivered += f.len;
        }
    }
}

TimeNs SimLink::next_event() const {
    TimeNs t = ~0ull;
    for (const Direction& d : dir_)
        if (!d.q.empty()) t = std::min(t, d.q.front().at);
    return t;
}

}  // namespace fastnet
