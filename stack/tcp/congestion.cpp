// NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438) window arithmetic. Called from the
// TCB's ACK processing (on_ack, recovery entry/exit) and its RTO timer (on_rto).
#include "stack/tcp/congestion.hpp"

#include <algorithm>
#include <cmath>

namespace fastnet {

uint32_t Congestion::initial_window() const {
    // RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)).
    return std::min(10 * mss_, std::max(2 * mss_, 14600u));
}

void Congestion::init(uint32_t mss, TimeNs) {
    mss_ = mss ? mss : 536;
    cwnd_ = initial_window();
    ssthresh_ = 0xffffffffu;       // RFC 5681 3.1: arbitrarily high
    bytes_acked_ = 0;
    in_recovery_ = false;
    w_max_ = origin_ = k_ = cwnd_epoch_ = w_est_ = cwnd_prior_ = 0;
    epoch_valid_ = false;
    cnt_frac_ = 0;
}

void Congestion::set_mss(uint32_t mss) {
    if (!mss || mss == mss_) return;
    // Keep the window the same number of segments.
    uint64_t segs = std::max<uint64_t>(1, cwnd_ / mss_);
    mss_ = mss;
    cwnd_ = static_cast<uint32_t>(std::min<uint64_t>(segs * mss_, 0xffffffffu));
}

void Congestion::on_ack(uint32_t acked, uint32_t flight, TimeNs now, TimeNs srtt) {
    if (in_recovery_ || acked == 0) return;
    if (cwnd_ < ssthresh_) {
        if (uint64_t(flight) * 2 < cwnd_) return;          // not cwnd-limited
        // Every acknowledged byte, as Linux's tcp_slow_start (RFC 3465 2.2 would cap an
        // ACK at L = 2 SMSS): a peer whose stretch ACKs (GRO, LRO) cover many segments
        // does not slow the start down.
        uint64_t c = uint64_t(cwnd_) + acked;
        if (c <= ssthresh_) {
            cwnd_ = static_cast<uint32_t>(std::min<uint64_t>(c, 0xffffffffu));
            return;
        }
        // Crossed ssthresh: the remainder counts toward congestion avoidance.
        acked = static_cast<uint32_t>(c - ssthresh_);
        cwnd_ = ssthresh_;
    }
    if (uint64_t(flight) + 3ull * mss_ < cwnd_) return;    // application-limited
    if (algo_ == CongestionControl::Cubic) cubic_ca(acked, now, srtt);
    else reno_ca(acked);
}

void Congestion::reno_ca(uint32_t acked) {
    // RFC 5681 3.1 / RFC 3465 2.1: +1 SMSS once a full cwnd of bytes has been ACKed.
    bytes_acked_ += acked;
    if (bytes_acked_ >= cwnd_) {
        bytes_acked_ -= cwnd_;
        cwnd_ += mss_;
    }
}

double Congestion::cubic_w(double t) const {
    double d = t - k_;
    return kC * d * d * d + origin_;
}

void Congestion::cubic_ca(uint32_t acked, TimeNs now, TimeNs srtt) {
    const double mss = mss_;
    double cw = cwnd_ / mss;
    if (!epoch_valid_) {
        // RFC 9438 4.2: a new epoch begins with congestion avoidance.
        epoch_valid_ = true;
        epoch_start_ = now;
        cwnd_epoch_ = cw;
        if (w_max_ <= cw) { k_ = 0; origin_ = cw; }
        else { k_ = std::cbrt((w_max_ - cw) / kC); origin_ = w_max_; }
        w_est_ = cw;
        cnt_frac_ = 0;
    }
    double t = static_cast<double>(now - epoch_start_) * 1e-9;
    double rtt = static_cast<double>(srtt) * 1e-9;
    double segs = acked / mss;

    // RFC 9438 4.3: Reno-friendly estimate; alpha_cubic until W_est reaches the
    // window before the last reduction, then 1.
    double alpha = w_est_ >= cwnd_prior_ ? 1.0 : 3.0 * (1.0 - kBeta) / (1.0 + kBeta);
    w_est_ += alpha * segs / cw;

    double wc = cubic_w(t);
    double inc_bytes;
    if (wc < w_est_) {
        inc_bytes = (w_est_ - cw) * mss;               // Reno-friendly region
    } else {
        // RFC 9438 4.4/4.5: target = W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd];
        // cwnd grows by (target - cwnd)/cwnd per SMSS acked.
        double target = std::clamp(cubic_w(t + rtt), cw, 1.5 * cw);
        inc_bytes = (target - cw) / cw * segs * mss;
    }
    if (inc_bytes <= 0) return;
    cnt_frac_ += inc_bytes;
    uint64_t whole = static_cast<uint64_t>(cnt_frac_);
    cnt_frac_ -= static_cast<double>(whole);
    cwnd_ = static_cast<uint32_t>(std::min<uint64_t>(uint64_t(cwnd_) + whole, 0xffffffffu));
}

void Congestion::cubic_on_loss() {
    double cw = static_cast<double>(cwnd_) / mss_;
    cwnd_prior_ = cw;
    // RFC 9438 4.7 fast convergence: a flow whose window shrank releases bandwidth.
    if (cw < w_max_) w_max_ = cw * (1.0 + kBeta) / 2.0;
    else w_max_ = cw;
    // RFC 9438 4.6: ssthresh = cwnd * beta_cubic (at least 2 SMSS, RFC 5681 eq. 4).
    ssthresh_ = std::max(static_cast<uint32_t>(uint64_t(cwnd_) * 7 / 10), 2 * mss_);   // beta = 0.7
    epoch_valid_ = false;
}

void Congestion::on_enter_recovery(uint32_t flight, TimeNs) {
    if (algo_ == CongestionControl::Cubic) cubic_on_loss();
    else ssthresh_ = std::max(flight / 2, 2 * mss_);       // RFC 5681 eq. 4
    cwnd_ = ssthresh_;
    bytes_acked_ = 0;
    in_recovery_ = true;
}

void Congestion::on_recovery_dupack() {
    if (in_recovery_) cwnd_ += mss_;
}

void Congestion::on_partial_ack(uint32_t acked) {
    if (!in_recovery_) return;
    cwnd_ = cwnd_ > acked ? cwnd_ - acked : 0;
    if (acked >= mss_) cwnd_ += mss_;
    cwnd_ = std::max(cwnd_, mss_);
}

void Congestion::on_exit_recovery(uint32_t flight, TimeNs) {
    if (!in_recovery_) return;
    in_recovery_ = false;
    cwnd_ = std::min(ssthresh_, std::max(flight, mss_) + mss_);
    bytes_acked_ = 0;
}

void Congestion::on_rto(uint32_t flight, TimeNs, bool first_timeout) {
    if (first_timeout) {
        if (algo_ == CongestionControl::Cubic) cubic_on_loss();
        else ssthresh_ = std::max(flight / 2, 2 * mss_);
    }
    cwnd_ = mss_;                    // RFC 5681 3.1: loss window
    bytes_acked_ = 0;
    in_recovery_ = false;
    epoch_valid_ = false;
}

void Congestion::on_idle_restart(TimeNs, TimeNs idle, TimeNs rto) {
    if (idle <= rto) return;
    // RFC 5681 4.1: restart window = min(IW, cwnd).
    cwnd_ = std::min(cwnd_, initial_window());
    bytes_acked_ = 0;
    epoch_valid_ = false;            // RFC 9438 5.8: do not let t count the idle time
}

}  // namespace fastnet
