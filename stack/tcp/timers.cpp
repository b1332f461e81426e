// TCB timers and state bookkeeping. Each TCB keeps its deadlines (retransmission or
// persist, delayed ACK, keepalive, TIME_WAIT / FIN_WAIT_2) and one wheel Timer armed at
// the earliest: Engine::poll() → TimerWheel::advance() → on_timer() → on_rto() ...
// Also the state-change helpers every file uses (set_state, conn_error, tcb_closed).
#include <algorithm>
#include <cerrno>

#include "stack/tcp/core.hpp"

namespace fastnet {

void TcpCore::rearm(Tcb& t) {
    TimeNs d = ~0ull;
    for (TimeNs x : {t.rto_at, t.delack_at, t.keepalive_at, t.timewait_at})
        if (x && x < d) d = x;
    if (d == ~0ull) {
        wheel.cancel(t.timer);
        return;
    }
    if (!TimerWheel::armed(t.timer) || t.timer.expires != d) wheel.arm(t.timer, d);
}

void TcpCore::arm_keepalive(Tcb& t) {
    if (!t.keepalive) {
        t.keepalive_at = 0;
        return;
    }
    t.keepalive_at = now + t.keepidle;
    rearm(t);
}

// Linux tcp_incr_quickack: about half a window of segments, 2 to TCP_MAX_QUICKACKS (16).
void TcpCore::incr_quickack(Tcb& t) {
    uint32_t q = t.rcv_wnd / (2u * std::max<uint32_t>(t.rcv_mss_est, 1));
    q = std::clamp<uint32_t>(q ? q : 2, 2, 16);
    if (q > t.quickacks) t.quickacks = static_cast<uint8_t>(q);
}

void TcpCore::on_timer(Tcb& t) {
    const SockId id = t.id;
    auto alive = [&] { return pool.get(id) == &t && t.state != TcpState::Closed; };
    if (t.timewait_at && t.timewait_at <= now) {
        t.timewait_at = 0;
        if (t.state == TcpState::TimeWait || t.state == TcpState::FinWait2) {
            tcb_closed(t);
            return;
        }
    }
    if (t.delack_at && t.delack_at <= now) {
        t.delack_at = 0;
        t.ack_now = true;
        t.pingpong = false;   // Linux tcp_delack_timer_handler: a missed piggyback ends it
        mark_output(t);
    }
    if (t.rto_at && t.rto_at <= now) {
        t.rto_at = 0;
        if (t.persist) on_persist(t);
        else if (t.tlp_armed) on_pto(t);
        else on_rto(t);
        if (!alive()) return;
    }
    if (t.keepalive_at && t.keepalive_at <= now) {
        t.keepalive_at = 0;
        on_keepalive(t);
        if (!alive()) return;
    }
    rearm(t);
}

void TcpCore::on_rto(Tcb& t) {
    switch (t.state) {
    case TcpState::SynSent:
    case TcpState::SynReceived: {
        // Linux tcp_syn_retries / tcp_synack_retries, RTO doubling each time.
        const uint32_t limit = t.state == TcpState::SynSent ? kSynRetries : kSynackRetries;
        if (t.syn_retries >= limit) {
            if (t.state == TcpState::SynReceived && !t.accepted) tcb_closed(t);
            else conn_error(t, ETIMEDOUT);
            return;
        }
        t.syn_retries++;
        t.retransmits++;
        t.info.total_rto++;
        t.rtt.backoff();
        t.snd_nxt = t.iss;
        // RFC 6298 5.6: restart the timer now, not only when the SYN goes out: a SYN
        // that cannot leave (no TX buffer, no neighbour) left the connection with no
        // timer at all, and one closed then never ended (found by tcp_input_fuzz).
        t.rto_at = now + t.rtt.rto();
        mark_output(t);
        return;
    }
    case TcpState::Established:
    case TcpState::FinWait1:
    case TcpState::CloseWait:
    case TcpState::Closing:
    case TcpState::LastAck:
        break;
    default:
        return;
    }
    if (t.snd_una == t.snd_max) return;
    // Linux tcp_retries2 (orphans: tcp_orphan_retries, 8 when unset), or with
    // TCP_USER_TIMEOUT the time the oldest unacknowledged data has waited
    // (retransmits_timed_out).
    const uint32_t limit = t.user_closed ? 8 : kRetries2;
    if (t.user_timeout ? now - t.una_since >= t.user_timeout : t.retransmits >= limit) {
        conn_error(t, ETIMEDOUT);
        return;
    }
    // RFC 6298 5.5-5.7 and RFC 5681 3.1: back off, collapse cwnd, resend from snd_una.
    t.undo_valid = false;
    t.cc.on_rto(static_cast<uint32_t>(t.snd_max - t.snd_una), now, t.retransmits == 0);
    t.rtt.backoff();
    if (t.retransmits == 0) {
        t.info.total_rto_recoveries++;
        t.info.rto_recovery_start = now;
    }
    t.retransmits++;
    t.info.total_rto++;
    t.in_recovery = false;
    t.dupacks = 0;
    t.recover = t.snd_max;   // RFC 6582 4: no fast retransmit for these old dupacks
    t.snd_nxt = t.snd_una;
    t.high_rxt = t.snd_una;
    rxt_marks_reset(t);
    t.tlp_out = false;
    t.rtt_timing = false;
    // RFC 6298 5.6: restart the timer now; output only restarts it when a segment goes
    // out, and behind a zero window none may, which left orphans with no timer at all.
    t.rto_at = user_timeout_clamp(t, now + t.rtt.rto());
    mark_output(t);
}

// RFC 6298 5.1/5.3 (re)start of the retransmission timer; with SACK, outside recovery,
// it first runs as RFC 8985 7.2's probe timeout.
void TcpCore::arm_rto(Tcb& t) {
    t.persist = false;
    TimeNs rto = t.rtt.rto();
    t.tlp_armed = false;
    const TimeNs srtt = t.rtt.srtt();
    if (t.sack_ok && srtt && !t.in_recovery && !t.tlp_out && t.retransmits == 0 &&
        t.snd_nxt == t.snd_max && (t.state == TcpState::Established ||
                                   t.state == TcpState::CloseWait)) {
        // RFC 8985 7.2: PTO = 2*SRTT; one segment in flight may wait for a delayed ACK.
        TimeNs pto = 2 * srtt;
        if (t.snd_max - t.snd_una <= t.snd_mss) pto = std::max(pto, srtt * 3 / 2 + cfg.delack);
        if (pto < rto) {
            rto = pto;
            t.tlp_armed = true;
        }
    }
    t.rto_at = user_timeout_clamp(t, now + rto);
    if (t.rto_at < now + rto) t.tlp_armed = false;
    rearm(t);
}

// RFC 8985 7.3: the probe is new data if the peer's window has room, else the last
// segment again; the RTO then takes over.
void TcpCore::on_pto(Tcb& t) {
    t.tlp_armed = false;
    if (t.snd_una == t.snd_max || t.snd.capacity() == 0) return;
    Seq data_end = t.snd_data_end();
    uint32_t room = (t.snd_una + t.snd_wnd) > t.snd_max
                        ? static_cast<uint32_t>((t.snd_una + t.snd_wnd) - t.snd_max) : 0;
    t.tlp_out = true;   // before sending: send_segment() must not arm another PTO
    int sent = -1;
    if (data_end > t.snd_max && !t.fin_sent && room > 0) {
        uint32_t len = std::min({static_cast<uint32_t>(data_end - t.snd_max), room,
                                 static_cast<uint32_t>(t.snd_mss)});
        uint8_t flags = data_flags(t, t.snd_max, len, nullptr);
        sent = send_segment(t, flags, t.snd_max, len, false);
    } else {
        Seq top = t.fin_sent ? t.fin_seq : seq_min(t.snd_max, data_end);
        uint8_t flags = kTcpAck;
        if (t.fin_sent) flags |= kTcpFin;
        // SACKed data is never sent again: the probe is the highest segment the peer
        // does not hold (Linux has no probe once SACK blocks arrived; fastnet, without
        // RACK's reordering timer, keeps it as its fast way out of a stalled tail).
        for (size_t i = t.sack_ok ? t.sb.ranges() : 0; i-- > 0;) {
            const SackBlock& b = t.sb.range(i);
            if (b.left < top && top <= b.right) {
                top = b.left;
                flags = kTcpAck;   // the FIN (at the top) is SACKed with its data
            }
        }
        uint32_t len = top > t.snd_una ? std::min<uint32_t>(top - t.snd_una, t.snd_mss) : 0;
        sent = send_segment(t, flags, top - len, len, true);
    }
    t.tlp_out = sent >= 0;
    t.tlp_end = t.snd_max;
    t.tlp_armed = false;
    t.rto_at = user_timeout_clamp(t, now + t.rtt.rto());
}

void TcpCore::on_persist(Tcb& t) {
    t.persist = false;
    // Linux tcp_probe_timer: an orphan stops probing a closed window after
    // tcp_orphan_retries (8 when unset); otherwise a silent peer pins it for ever.
    if (t.user_closed && t.persist_backoff >= 8) {
        conn_error(t, ETIMEDOUT);
        return;
    }
    Seq data_end = t.snd_data_end();
    uint32_t avail = data_end > t.snd_nxt ? static_cast<uint32_t>(data_end - t.snd_nxt) : 0;
    if (!t.synchronized() || t.snd.capacity() == 0 || avail == 0) {
        // Nothing to probe with, but a SYN or FIN still unacknowledged: that is the
        // retransmission timer's (which gives up on it in time).
        if (t.snd_una != t.snd_max) t.rto_at = now + t.rtt.rto();
        return;
    }
    int32_t usable = static_cast<int32_t>((t.snd_una + t.snd_wnd) - t.snd_nxt);
    if (usable > 0) {
        // The SWS override timeout (RFC 9293 3.8.6.2.1): send what fits now.
        uint32_t len = std::min({avail, static_cast<uint32_t>(usable),
                                 static_cast<uint32_t>(t.snd_mss)});
        uint8_t flags = data_flags(t, t.snd_nxt, len, nullptr) | kTcpPsh;
        if (send_segment(t, flags, t.snd_nxt, len, false) >= 0) {
            t.persist_backoff = 0;
            return;
        }
    } else {
        // RFC 9293 3.8.6.1 zero-window probe; Linux tcp_probe_timer gives up once
        // probing has lasted TCP_USER_TIMEOUT.
        if (t.persist_backoff == 0) t.probe_since = now;
        if (t.user_timeout && now - t.probe_since >= t.user_timeout) {
            conn_error(t, ETIMEDOUT);
            return;
        }
        send_probe(t);
    }
    t.persist_backoff++;
    t.persist = true;
    t.rto_at = now + persist_interval(t);
    if (t.user_timeout && usable <= 0)   // Linux tcp_clamp_probe0_to_user_timeout
        t.rto_at = std::min(t.rto_at, std::max(t.probe_since + t.user_timeout, now + 1'000'000));
}

void TcpCore::on_keepalive(Tcb& t) {
    if (!t.keepalive || !(t.state == TcpState::Established || t.state == TcpState::CloseWait ||
                          t.state == TcpState::FinWait2)) return;
    if (t.keepalive_probes == 0 && now < t.last_recv + t.keepidle) {
        t.keepalive_at = t.last_recv + t.keepidle;   // traffic since: wait again
        return;
    }
    if (t.snd_max != t.snd_una) {   // the retransmission timer watches the peer
        t.keepalive_at = now + t.keepidle;
        return;
    }
    // Linux tcp_keepalive_timer: with TCP_USER_TIMEOUT, the time since the peer was last
    // heard decides (once a probe went unanswered), not the probe count.
    if (t.user_timeout ? t.keepalive_probes > 0 && now - t.last_recv >= t.user_timeout
                       : t.keepalive_probes >= t.keepcnt) {
        conn_error(t, ETIMEDOUT);
        return;
    }
    send_probe(t);
    t.keepalive_probes++;
    t.keepalive_at = now + t.keepintvl;
}

void TcpCore::enter_time_wait(Tcb& t) {
    set_state(t, TcpState::TimeWait);
    t.rto_at = t.delack_at = t.keepalive_at = 0;
    t.persist = false;
    t.timewait_at = now + 2 * cfg.msl;
    if (t.user_closed) release_buffers(t);
    rearm(t);
}

void TcpCore::set_state(Tcb& t, TcpState s) {
    t.state = s;
    mark_events(t);
}

void TcpCore::conn_error(Tcb& t, int err) {
    t.so_error = err;
    t.reset = true;
    if (err == ECONNRESET) stats.conn_reset++;
    tcb_closed(t);
}

void TcpCore::abort_tcb(Tcb& t) {
    if (t.synchronized() && t.state != TcpState::TimeWait) send_rst_for(t);
    stats.conn_reset++;
    t.reset = true;
    tcb_closed(t);
}

void TcpCore::tcb_closed(Tcb& t) {
    if (t.state != TcpState::Closed) stats.conn_closed++;
    t.state = TcpState::Closed;
    t.rto_at = t.delack_at = t.keepalive_at = t.timewait_at = 0;
    t.persist = false;
    t.ack_now = false;
    wheel.cancel(t.timer);
    flow_remove(t);
    if (!t.accepted && t.accept_link.linked) {
        // Established and queued: the application still gets it from accept() and
        // learns of the reset (or timeout) from it, as on Linux (inet_csk_accept
        // returns a child that has since gone to CLOSE).
        if (Tcb* l = pool.get(t.listener)) mark_events(*l);
    } else if (!t.accepted) {
        listener_unlink_child(t);
        reap(t);
    } else if (t.user_closed) {
        reap(t);
    } else {
        mark_events(t);
    }
}

}  // namespace fastnet
