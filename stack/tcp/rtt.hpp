// Round-trip time estimation and the retransmission timeout, RFC 6298.
// TCB input: on an ACK that acknowledges new data → sample(); on RTO expiry → backoff().
// TCP_INFO reads srtt()/rttvar()/rto().
#pragma once

#include <algorithm>
#include <cstdint>

#include "stack/device.hpp"

namespace fastnet {

// All values in ns. Karn's rule (RFC 6298 (3)) is the caller's: without timestamps,
// never sample a segment that was retransmitted. With timestamps (RFC 7323 4.1) the
// echoed TSecr identifies the transmission, so those samples are fine.
class RttEstimator {
public:
    static constexpr TimeNs kDefaultMin = 200'000'000;       // Linux TCP_RTO_MIN; RFC 6298 (2.4) says 1 s
    static constexpr TimeNs kDefaultMax = 120'000'000'000;   // RFC 6298 (2.5): at least 60 s; Linux uses 120 s
    static constexpr TimeNs kDefaultInitial = 1'000'000'000; // RFC 6298 (2.1)
    static constexpr TimeNs kDefaultGranularity = 1'000'000; // G: our timers tick at 1 ms

    explicit RttEstimator(TimeNs rto_min = kDefaultMin, TimeNs rto_initial = kDefaultInitial,
                          TimeNs rto_max = kDefaultMax, TimeNs granularity = kDefaultGranularity)
        : min_(rto_min), max_(rto_max), g_(granularity), base_rto_(clamp(rto_initial)),
          rto_(base_rto_) {}

    // A measured round trip r (ns). RFC 6298 (2.2)/(2.3), alpha = 1/8, beta = 1/4.
    // A new sample also undoes any backoff (RFC 6298 (5.7) note on collapsing the RTO).
    void sample(TimeNs r) {
        min_rtt_ = have_ ? std::min(min_rtt_, r) : r;
        if (!have_) {
            srtt_ = r;
            rttvar_ = r / 2;
            have_ = true;
        } else {
            TimeNs err = srtt_ > r ? srtt_ - r : r - srtt_;
            rttvar_ = rttvar_ - rttvar_ / 4 + err / 4;    // (1 - beta) * RTTVAR + beta * |SRTT - R'|
            srtt_ = srtt_ - srtt_ / 8 + r / 8;            // (1 - alpha) * SRTT + alpha * R'
        }
        base_rto_ = clamp(srtt_ + std::max(g_, 4 * rttvar_));   // K = 4
        rto_ = base_rto_;
        backoffs_ = 0;
    }

    // RFC 6298 (5.5): the timer expired, double the RTO (bounded by rto_max).
    void backoff() {
        rto_ = rto_ > max_ / 2 ? max_ : rto_ * 2;
        ++backoffs_;
    }

    // RFC 6298 (5.7): after the SYN (or SYN-ACK) was retransmitted and the handshake
    // finished without a valid sample, the RTO for data restarts at 3 s.
    void reset_after_syn_retransmit() {
        if (!have_) base_rto_ = rto_ = clamp(3'000'000'000);
        backoffs_ = 0;
    }

    TimeNs rto() const { return rto_; }
    TimeNs srtt() const { return srtt_; }         // 0 before the first sample
    TimeNs rttvar() const { return rttvar_; }
    // The smallest sample of the connection's life (Linux keeps a windowed minimum,
    // tcp_min_rtt_wlen = 300 s; a route change is the only difference, and rare).
    TimeNs min_rtt() const { return min_rtt_; }
    bool has_sample() const { return have_; }
    uint32_t backoffs() const { return backoffs_; }
    TimeNs rto_min() const { return min_; }
    void set_rto_min(TimeNs m) { min_ = m; base_rto_ = clamp(base_rto_); rto_ = std::max(rto_, min_); }

private:
    TimeNs clamp(TimeNs v) const { return std::min(std::max(v, min_), max_); }

    TimeNs min_, max_, g_;
    TimeNs srtt_ = 0, rttvar_ = 0, min_rtt_ = 0;
    TimeNs base_rto_, rto_;
    uint32_t backoffs_ = 0;
    bool have_ = false;
};

}  // namespace fastnet
