// RFC 6675 scoreboard: SACKed ranges above snd_una, IsLost, SetPipe and NextSeg.
// Called from TCB input (update on each ACK) and output (pipe/next_seg in recovery).
#include "stack/tcp/sack.hpp"

#include <algorithm>

namespace fastnet {

void SackScoreboard::trim_below(Seq snd_una) {
    size_t k = 0;
    while (k < n_ && r_[k].right <= snd_una) { sacked_ -= r_[k].right - r_[k].left; ++k; }
    if (k) {
        for (size_t i = k; i < n_; ++i) r_[i - k] = r_[i];
        n_ -= k;
    }
    if (n_ && r_[0].left < snd_una) {
        sacked_ -= snd_una - r_[0].left;
        r_[0].left = snd_una;
    }
}

uint32_t SackScoreboard::insert(Seq l, Seq r) {
    size_t i = 0;
    while (i < n_ && r_[i].right < l) ++i;
    size_t j = i;
    uint32_t merged = 0;
    while (j < n_ && r_[j].left <= r) {
        l = seq_min(l, r_[j].left);
        r = seq_max(r, r_[j].right);
        merged += r_[j].right - r_[j].left;
        ++j;
    }
    if (i == j) {
        if (n_ == kCapacity) {
            if (i == n_) return 0;               // the new range would be the highest
            --n_;                                // forget the highest range
            sacked_ -= r_[n_].right - r_[n_].left;
        }
        for (size_t m = n_; m > i; --m) r_[m] = r_[m - 1];
        ++n_;
    } else if (j - i > 1) {
        size_t gone = j - i - 1;
        for (size_t m = j; m < n_; ++m) r_[m - gone] = r_[m];
        n_ -= gone;
    }
    r_[i] = SackBlock{l, r};
    uint32_t added = static_cast<uint32_t>(r - l) - merged;
    sacked_ += added;
    return added;
}

uint32_t SackScoreboard::update(Seq snd_una, const SackBlock* blocks, size_t n, Seq snd_nxt) {
    trim_below(snd_una);
    uint32_t fresh = 0;
    for (size_t k = 0; k < n; ++k) {
        Seq l = blocks[k].left, r = blocks[k].right;
        if (!(l < r) || r <= snd_una || r > snd_nxt) continue;   // empty, D-SACK/stale, bogus
        if (r - l > 0x3fffffff) continue;                         // nonsense width
        if (l < snd_una) l = snd_una;
        fresh += insert(l, r);
    }
    return fresh;
}

bool SackScoreboard::is_sacked(Seq seq, uint32_t len) const {
    Seq end = seq + len;
    for (size_t i = 0; i < n_; ++i) {
        if (r_[i].left > seq) return false;
        if (seq < r_[i].right) return end <= r_[i].right;
    }
    return false;
}

void SackScoreboard::above(Seq seq, uint32_t mss, uint32_t* bytes, uint32_t* segs) const {
    uint32_t b = 0, s = 0;
    for (size_t i = n_; i-- > 0;) {
        if (r_[i].right <= seq) break;
        Seq l = r_[i].left > seq ? r_[i].left : seq;
        uint32_t part = r_[i].right - l;
        b += part;
        s += mss ? (part + mss - 1) / mss : 1;
    }
    *bytes = b;
    *segs = s;
}

bool SackScoreboard::is_lost(Seq seq, uint32_t mss) const {
    uint32_t b, s;
    above(seq, mss, &b, &s);
    return s >= kDupThresh || b > (kDupThresh - 1) * mss;
}

uint32_t SackScoreboard::pipe(Seq snd_una, Seq snd_nxt, Seq high_rxt, uint32_t mss,
                              Seq lost_lo, Seq lost_hi) const {
    // Walk the holes from the top down, carrying the SACKed bytes/segments above: every
    // byte of a hole has the same SACKed data above it, so a hole is lost or not as a
    // whole (IsLost). RFC 6675 SetPipe counts a byte once if not lost and once more if
    // it was retransmitted (below HighRxt).
    const uint32_t lost_bytes = (kDupThresh - 1) * mss;
    uint32_t pipe = 0, above_b = 0, above_s = 0;
    auto hole = [&](Seq a, Seq b) {
        if (a < snd_una) a = snd_una;
        if (b > snd_nxt) b = snd_nxt;
        if (!(a < b)) return;
        if (above_s < kDupThresh && above_b <= lost_bytes) pipe += b - a;
        Seq rx_end = seq_min(b, high_rxt);
        if (a < rx_end) {
            pipe += rx_end - a;
            Seq gl = seq_max(a, lost_lo), gh = seq_min(rx_end, lost_hi);
            if (gl < gh) pipe -= gh - gl;
        }
    };
    Seq top = snd_nxt;                        // upper end of the hole above range i
    for (size_t i = n_; i-- > 0;) {
        hole(r_[i].right, top);
        uint32_t len = r_[i].right - r_[i].left;
        above_b += len;
        above_s += mss ? (len + mss - 1) / mss : 1;
        top = r_[i].left;
    }
    hole(snd_una, top);
    return pipe;
}

SackScoreboard::Next SackScoreboard::next_seg(Seq snd_una, Seq snd_nxt, Seq high_rxt,
                                              uint32_t mss, bool can_send_new) const {
    Next out;
    // The first un-SACKed byte above HighRxt and below the highest SACKed byte. IsLost
    // only weakens as sequence numbers rise, so if this hole is not lost none above is.
    Seq start = seq_max(snd_una, high_rxt);
    bool found = false;
    Seq s, hole_end;
    Seq c = snd_una;
    for (size_t i = 0; i < n_; ++i) {
        Seq a = seq_max(c, start);
        Seq b = seq_min(r_[i].left, snd_nxt);
        if (a < b) { s = a; hole_end = b; found = true; break; }
        c = seq_max(c, r_[i].right);
    }
    if (found && is_lost(s, mss)) {                      // rule 1
        out.kind = Next::Retransmit;
        out.seq = s;
        out.len = std::min<uint32_t>(mss, hole_end - s);
        return out;
    }
    if (can_send_new) {                                  // rule 2
        out.kind = Next::NewData;
        out.seq = snd_nxt;
        return out;
    }
    if (found) {                                         // rule 3
        out.kind = Next::Retransmit;
        out.seq = s;
        out.len = std::min<uint32_t>(mss, hole_end - s);
    }
    return out;
}

}  // namespace fastnet
