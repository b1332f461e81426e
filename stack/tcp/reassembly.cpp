// Out-of-order interval set above rcv_nxt and RFC 2018 SACK block selection.
// TCB input (data step) → add() / pop_contiguous(); TCB output → sack_blocks().
#include "stack/tcp/reassembly.hpp"

namespace fastnet {

bool Reassembly::add(Seq seq, uint32_t len) {
    if (len == 0) return true;
    Seq l = seq, r = seq + len;
    size_t i = 0;
    while (i < n_ && r_[i].right < l) ++i;
    size_t j = i;
    while (j < n_ && r_[j].left <= r) {
        l = seq_min(l, r_[j].left);
        r = seq_max(r, r_[j].right);
        ++j;
    }
    if (i == j) {
        if (n_ == kCapacity) { ++drops_; return false; }
        for (size_t m = n_; m > i; --m) r_[m] = r_[m - 1];
        ++n_;
    } else if (j - i > 1) {
        size_t gone = j - i - 1;
        for (size_t m = j; m < n_; ++m) r_[m - gone] = r_[m];
        n_ -= gone;
    }
    // RFC 2018 4: the block holding the latest segment is reported first.
    r_[i] = Range{l, r, ++clock_};
    return true;
}

uint32_t Reassembly::pop_contiguous(Seq rcv_nxt) {
    size_t k = 0;
    while (k < n_ && r_[k].right <= rcv_nxt) ++k;
    uint32_t got = 0;
    if (k < n_ && r_[k].left <= rcv_nxt) {
        got = static_cast<uint32_t>(r_[k].right - rcv_nxt);
        ++k;
    }
    if (k) {
        for (size_t m = k; m < n_; ++m) r_[m - k] = r_[m];
        n_ -= k;
    }
    return got;
}

size_t Reassembly::sack_blocks(SackBlock* out, size_t max) const {
    // Most recently changed first (RFC 2018 4: repeat the most recently reported
    // blocks so each survives a few lost ACKs). n_ <= 16: a selection pass is cheapest.
    size_t cnt = max < n_ ? max : n_;
    uint64_t bound = ~0ull;
    for (size_t k = 0; k < cnt; ++k) {
        size_t best = n_;
        for (size_t i = 0; i < n_; ++i)
            if (r_[i].stamp < bound && (best == n_ || r_[i].stamp > r_[best].stamp)) best = i;
        out[k] = SackBlock{r_[best].left, r_[best].right};
        bound = r_[best].stamp;
    }
    return cnt;
}

uint32_t Reassembly::bytes() const {
    uint32_t b = 0;
    for (size_t i = 0; i < n_; ++i) b += static_cast<uint32_t>(r_[i].right - r_[i].left);
    return b;
}

}  // namespace fastnet
