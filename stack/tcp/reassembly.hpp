// Receiver-side out-of-order tracking: which byte ranges above rcv_nxt have arrived
// (the data itself sits in the receive ByteRing at its offset, byte_ring.hpp write_at()),
// and the SACK blocks to advertise (RFC 2018 4). TCB input, data step → add(),
// pop_contiguous(); TCB output → sack_blocks().
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/wire/seq.hpp"
#include "stack/wire/tcp.hpp"

namespace fastnet {

class Reassembly {
public:
    static constexpr size_t kCapacity = 16;

    // Records [seq, seq+len) as received out of order (seq > rcv_nxt, already trimmed to
    // the receive window by the caller). Merges with overlapping/adjacent ranges.
    // Returns false (and counts a drop) if it would need a 17th disjoint range: the
    // caller must then not keep the data.
    bool add(Seq seq, uint32_t len);

    // rcv_nxt has just advanced to rcv_nxt (in-order data was accepted). Forgets ranges
    // now at or below it and, if the first range starts at or below rcv_nxt, removes it
    // and returns how many bytes beyond rcv_nxt are now in order (advance rcv_nxt and
    // commit that many bytes in the ring). Otherwise 0.
    uint32_t pop_contiguous(Seq rcv_nxt);

    // RFC 2018 4: the first block holds the most recently received segment, the rest
    // are the most recently updated other ranges. Writes up to max blocks, returns count.
    size_t sack_blocks(SackBlock* out, size_t max) const;

    bool empty() const { return n_ == 0; }
    size_t ranges() const { return n_; }
    uint32_t bytes() const;                  // total bytes held out of order
    uint64_t drops() const { return drops_; }
    Seq highest() const { return n_ ? r_[n_ - 1].right : Seq(0); }   // valid if !empty()
    void clear() { n_ = 0; }

private:
    struct Range { Seq left, right; uint64_t stamp; };
    Range r_[kCapacity];      // sorted by left, disjoint, non-adjacent
    size_t n_ = 0;
    uint64_t clock_ = 0;
    uint64_t drops_ = 0;
};

}  // namespace fastnet
