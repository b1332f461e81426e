// Sender-side SACK scoreboard and loss recovery helpers, RFC 6675 (with RFC 2018 blocks).
// TCB input: every ACK carrying SACK blocks → update(); output during recovery →
// pipe() and next_seg(); snd_una advance without blocks → update(snd_una, nullptr, 0, ..).
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/wire/seq.hpp"
#include "stack/wire/tcp.hpp"

namespace fastnet {

// Sequence space SACKed above snd_una, as sorted disjoint [left, right) ranges.
// All lengths in bytes.
class SackScoreboard {
public:
    static constexpr size_t kCapacity = 32;
    static constexpr uint32_t kDupThresh = 3;     // RFC 6675 2 / RFC 5681

    // Drops everything at or below snd_una, then merges the valid blocks. A block is
    // ignored when it is empty, reaches above snd_nxt, or lies entirely at or below
    // snd_una (a D-SACK, RFC 2883, or stale). Returns the bytes newly SACKed by these
    // blocks. When all kCapacity ranges are used, the highest range is forgotten (safe:
    // that data is merely treated as un-SACKed).
    uint32_t update(Seq snd_una, const SackBlock* blocks, size_t n, Seq snd_nxt);

    bool is_sacked(Seq seq, uint32_t len) const;      // [seq, seq+len) entirely SACKed
    // RFC 6675 IsLost(seq): DupThresh discontiguous SACKed segments (counted in units of
    // mss per range) or more than (DupThresh-1)*mss SACKed bytes above seq.
    bool is_lost(Seq seq, uint32_t mss) const;
    // RFC 6675 SetPipe(): bytes between snd_una and snd_nxt that are not SACKed and not
    // lost, plus those at or below high_rxt that were retransmitted. high_rxt is one
    // past the highest retransmitted byte (set it to snd_una on entering recovery).
    // Retransmissions in [lost_lo, lost_hi) were themselves found lost (RFC 8985 6.2)
    // and are not counted as in flight.
    uint32_t pipe(Seq snd_una, Seq snd_nxt, Seq high_rxt, uint32_t mss, Seq lost_lo,
                  Seq lost_hi) const;
    uint32_t pipe(Seq snd_una, Seq snd_nxt, Seq high_rxt, uint32_t mss) const {
        return pipe(snd_una, snd_nxt, high_rxt, mss, snd_una, snd_una);
    }

    struct Next {
        enum Kind : uint8_t { None, Retransmit, NewData } kind = None;
        Seq seq;
        uint32_t len = 0;      // <= mss; for NewData the caller picks the length
    };
    // RFC 6675 NextSeg(): rule 1 (lost, un-SACKed hole above high_rxt), rule 2 (new data,
    // if can_send_new — the caller knows the send buffer and peer window), rule 3 (any
    // un-SACKed hole above high_rxt below the highest SACKed byte). Rule 4 (rescue) no.
    Next next_seg(Seq snd_una, Seq snd_nxt, Seq high_rxt, uint32_t mss, bool can_send_new) const;

    uint32_t sacked_bytes() const { return sacked_; }
    // One past the highest SACKed byte; `fallback` (usually snd_una) when nothing is.
    Seq highest_sacked(Seq fallback) const { return n_ ? r_[n_ - 1].right : fallback; }
    size_t ranges() const { return n_; }
    const SackBlock& range(size_t i) const { return r_[i]; }
    bool empty() const { return n_ == 0; }
    void clear() { n_ = 0; sacked_ = 0; }

private:
    void trim_below(Seq snd_una);
    uint32_t insert(Seq left, Seq right);     // returns the bytes not SACKed before
    // SACKed bytes / mss-segments strictly above seq.
    void above(Seq seq, uint32_t mss, uint32_t* bytes, uint32_t* segs) const;

    SackBlock r_[kCapacity];
    size_t n_ = 0;
    uint32_t sacked_ = 0;
};

}  // namespace fastnet
