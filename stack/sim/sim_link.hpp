// A simulated wire between two devices, for deterministic engine tests: per direction
// seeded loss, reordering, duplication, corruption, propagation delay and a bandwidth
// limit with a tail-drop queue. Test loop: link.advance(now) → engine.poll(now) on both
// sides → now = min(link.next_event(), engines' next_deadline()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "stack/device.hpp"

namespace fastnet {

struct SimLinkParams {
    double loss = 0;               // probability a frame is dropped
    double reorder = 0;            // probability a frame is delayed by reorder_extra
    TimeNs reorder_extra = 1'000'000;
    double duplicate = 0;          // probability a frame is delivered twice
    double corrupt = 0;            // probability one byte of a frame is flipped
    TimeNs delay = 1'000'000;      // one-way propagation delay
    uint64_t rate_bps = 0;         // bits per second; 0 = unlimited (no queue)
    uint32_t queue_bytes = 256 * 1024;   // bottleneck queue; tail drop beyond it
};

struct SimLinkStats {
    uint64_t sent = 0;             // frames submitted by the sender
    uint64_t lost = 0;             // dropped by the loss probability
    uint64_t queue_drops = 0;      // dropped because the queue was full
    uint64_t no_buffer = 0;        // duplicates not made because the pool was empty
    uint64_t duplicated = 0, reordered = 0, corrupted = 0;
    uint64_t delivered = 0;        // frames moved into the receiver's RX queue
    uint64_t bytes_delivered = 0;
};

class SimLink;

// One end of the link. Frames come from the link's shared buffer pool: tx_alloc()
// takes buffers, the link passes them to the other end without copying (duplicates
// are copies), rx_release() returns them.
class SimDevice final : public Device {
public:
    size_t rx_burst(Frame* out, size_t n) override;
    void rx_release(const Frame* frames, size_t n) override;
    size_t tx_alloc(Frame* out, size_t n) override;
    void tx_submit(const Frame* frames, size_t n) override;
    void tx_abandon(const Frame* frames, size_t n) override;
    void tx_flush() override {}
    uint32_t tx_capacity() const override;

    size_t rx_pending() const { return rx_count_; }

private:
    friend class SimLink;
    SimLink* link_ = nullptr;
    int side_ = 0;                             // 0 = a (sends a→b), 1 = b
    std::vector<uint32_t> rx_;                 // ring of buffer indices, capacity = pool
    size_t rx_head_ = 0, rx_count_ = 0;
};

class SimLink {
public:
    // a_to_b / b_to_a: the two directions. buffers: pool size (all frames in flight, in
    // RX queues or held by the engines); frame_size: bytes per buffer (tx_capacity).
    SimLink(const SimLinkParams& a_to_b, const SimLinkParams& b_to_a, uint64_t seed,
            uint32_t buffers = 16384, uint32_t frame_size = 2048);
    ~SimLink();
    SimLink(const SimLink&) = delete;
    SimLink& operator=(const SimLink&) = delete;

    SimDevice& a() { return dev_[0]; }
    SimDevice& b() { return dev_[1]; }

    // Sets the link clock (frames submitted later are stamped with it) and moves every
    // frame due at or before now into its receiver's RX queue, in arrival order.
    void advance(TimeNs now);
    TimeNs now() const { return now_; }
    // Arrival time of the next frame in flight; ~0ull when none.
    TimeNs next_event() const;

    const SimLinkStats& stats(int dir) const { return dir_[dir].stats; }   // 0: a→b
    SimLinkParams& params(int dir) { return dir_[dir].p; }
    size_t in_flight() const { return dir_[0].q.size() + dir_[1].q.size(); }
    size_t buffers_in_use() const { return nbuf_ - free_.size(); }
    uint32_t frame_size() const { return fsize_; }

private:
    friend class SimDevice;
    struct InFlight {
        TimeNs at;
        uint64_t order;            // tie-break: submission order
        uint32_t buf, len;
    };
    struct Direction {
        SimLinkParams p;
        uint64_t rng[4];           // xoshiro256** state, per direction
        TimeNs busy_until = 0;     // the serialiser is busy until then
        std::vector<InFlight> q;   // binary min-heap on (at, order)
        SimLinkStats stats;
    };
    static bool later(const InFlight& x, const InFlight& y);
    double uniform(Direction& d);
    uint64_t next_u64(Direction& d);
    uint32_t take_buffer();
    void give_buffer(uint32_t b);
    void submit(int side, const Frame& f);
    uint8_t* buf(uint32_t b) { return mem_.get() + size_t(b) * fsize_; }

    SimDevice dev_[2];
    Direction dir_[2];
    TimeNs now_ = 0;
    uint64_t order_ = 0;
    uint32_t nbuf_, fsize_;
    std::unique_ptr<uint8_t[]> mem_;
    std::vector<uint32_t> free_;
    std::vector<uint32_t> len_;    // frame length per buffer while it sits in an RX queue
};

}  // namespace fastnet
