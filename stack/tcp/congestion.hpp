// Congestion control: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438), byte-based with
// appropriate byte counting (RFC 3465). One object per TCB, chosen by
// EngineConfig::cc; the TCB's ACK processing and timers call it as documented below.
#pragma once

#include <cstdint>

#include "stack/device.hpp"
#include "stack/engine.hpp"

namespace fastnet {

// All windows in bytes, times in ns. The TCB sends while flight_size < cwnd() (or, in
// SACK loss recovery, while RFC 6675 pipe < cwnd()).
class Congestion {
public:
    explicit Congestion(CongestionControl algo = CongestionControl::Cubic) : algo_(algo) {}

    // At connection establishment, with the effective SMSS (RFC 5681 2: the size of the
    // largest segment we can send, MSS option minus TCP options in every segment).
    // cwnd = IW (RFC 6928), ssthresh = "arbitrarily high" (RFC 5681 3.1).
    void init(uint32_t mss, TimeNs now);
    // The SMSS changed (PMTU); keeps cwnd in whole segments' worth.
    void set_mss(uint32_t mss);

    // An ACK advanced snd_una by acked_bytes (> 0) outside loss recovery.
    // flight_size: bytes outstanding BEFORE this ACK (snd_nxt - old snd_una); growth
    // only happens when the sender was cwnd-limited (RFC 7661-lite: flight >= cwnd/2 in
    // slow start, flight + 3*SMSS >= cwnd in congestion avoidance).
    // srtt: current smoothed RTT (ns; 0 if none yet), used by CUBIC.
    void on_ack(uint32_t acked_bytes, uint32_t flight_size, TimeNs now, TimeNs srtt);

    // Loss detected by duplicate ACKs / SACK (RFC 5681 3.2 step 2, RFC 6675 5 step 4).
    // NewReno: ssthresh = max(FlightSize/2, 2*SMSS); CUBIC: ssthresh = max(cwnd*0.7,
    // 2*SMSS) and W_max (with fast convergence). Then cwnd = ssthresh. A non-SACK
    // NewReno sender that wants the RFC 5681 inflation calls on_recovery_dupack() for
    // the three dupacks and every further one; a SACK sender uses pipe instead.
    void on_enter_recovery(uint32_t flight_size, TimeNs now);
    // Non-SACK fast recovery (RFC 5681 3.2 step 4): cwnd += SMSS per duplicate ACK.
    void on_recovery_dupack();
    // RFC 6582 3.2 step 5, a partial ACK in non-SACK fast recovery: deflate cwnd by the
    // newly acked bytes, add back SMSS if acked >= SMSS.
    void on_partial_ack(uint32_t acked_bytes);
    // snd_una reached the recovery point (RFC 6582 "recover"). flight_size is bytes
    // outstanding after the ACK: cwnd = min(ssthresh, max(flight_size, SMSS) + SMSS)
    // (RFC 6582 3.2 step 6, option 1).
    void on_exit_recovery(uint32_t flight_size, TimeNs now);

    // The retransmission timer expired (RFC 5681 3.1 eq. 4, RFC 9438 4.8):
    // ssthresh = max(FlightSize/2, 2*SMSS) (CUBIC: max(cwnd*0.7, 2*SMSS)), cwnd = 1*SMSS
    // (loss window). Call once per timeout episode, not for each backed-off expiry
    // (RFC 5681 eq. 4 note: later expiries of the same segment do not lower ssthresh
    // further) — pass first_timeout=false on repeated expiries.
    void on_rto(uint32_t flight_size, TimeNs now, bool first_timeout = true);

    // About to send after the connection was idle (nothing in flight) for idle_ns.
    // RFC 5681 4.1: if idle > RTO, cwnd = min(IW, cwnd). CUBIC also restarts its epoch.
    void on_idle_restart(TimeNs now, TimeNs idle_ns, TimeNs rto);

    uint32_t cwnd() const { return cwnd_; }
    uint32_t ssthresh() const { return ssthresh_; }
    uint32_t mss() const { return mss_; }
    bool in_slow_start() const { return cwnd_ < ssthresh_; }
    bool in_recovery() const { return in_recovery_; }
    CongestionControl algorithm() const { return algo_; }
    uint32_t initial_window() const;                 // RFC 6928 IW for the current SMSS

    // CUBIC state, for tests and TCP_INFO-style introspection (segments, seconds).
    double cubic_w_max() const { return w_max_; }
    double cubic_k() const { return k_; }
    // RFC 9438 eq. 1: W_cubic(t) = C*(t-K)^3 + W_max, in segments, t in seconds since
    // the epoch start.
    double cubic_w(double t) const;

    // RFC 9438 4.6 / 5.1 constants.
    static constexpr double kBeta = 0.7;
    static constexpr double kC = 0.4;

private:
    void cubic_on_loss();
    void cubic_ca(uint32_t acked, TimeNs now, TimeNs srtt);
    void reno_ca(uint32_t acked);

    CongestionControl algo_;
    uint32_t mss_ = 1460;
    uint32_t cwnd_ = 14600;
    uint32_t ssthresh_ = 0xffffffffu;
    uint32_t bytes_acked_ = 0;        // RFC 3465 counter for congestion avoidance
    bool in_recovery_ = false;

    // CUBIC (segments as doubles, time in ns)
    double w_max_ = 0;                // window just before the last reduction
    double origin_ = 0;               // W_max used by the current epoch's curve
    double cwnd_prior_ = 0;           // cwnd when ssthresh was last set (RFC 9438 4.3)
    double k_ = 0;                    // seconds
    double cwnd_epoch_ = 0;
    double w_est_ = 0;                // RFC 9438 4.3 Reno-friendly estimate
    TimeNs epoch_start_ = 0;
    bool epoch_valid_ = false;
    double cnt_frac_ = 0;             // fractional cwnd growth carried between ACKs (bytes)
};

}  // namespace fastnet
