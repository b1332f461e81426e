// Segment arrival: Engine::poll() → rx_frame() → parse_frame() → flow lookup →
// input() (RFC 9293 3.10.7, in its order) or listen_input() (listener.cpp) or a RST
// for a segment with no socket. Output decisions are left to output.cpp: input only
// records what must be sent (ack_now, window changes) and marks the TCB.
#include <algorithm>
#include <cerrno>

#include "stack/tcp/core.hpp"

namespace fastnet {

namespace {

Drop drop_for(ParseError e) {
    switch (e) {
    case ParseError::NotIpv4:
    case ParseError::NotTcp: return Drop::NotForUs;
    case ParseError::Fragment: return Drop::Fragment;
    case ParseError::BadIpChecksum:
    case ParseError::BadTcpChecksum: return Drop::BadChecksum;
    default: return Drop::Malformed;
    }
}

}  // namespace

void TcpCore::rx_frame(const uint8_t* data, size_t len) {
    stats.frames_rx++;
    stats.bytes_rx += len;
    // Checksums always verified; a veth peer's partial ones recognised (EngineConfig).
    ParseResult r = parse_frame(data, len, true, cfg.accept_csum_partial);
    if (!r) {
        stats.drops[static_cast<int>(drop_for(r.error()))]++;
        return;
    }
    const ParsedFrame& f = *r;
    if (f.csum_partial) stats.rx_csum_partial++;
    if (f.ip.dst != cfg.ip) {
        stats.drops[static_cast<int>(Drop::NotForUs)]++;
        return;
    }
    const TcpView& seg = f.tcp;
    FourTuple k{cfg.ip, f.ip.src, seg.dst_port, seg.src_port};
    uint32_t h = flows.find(k);
    if (h != FlowTable::kEmpty) {
        if (Tcb* t = pool.get(h)) {
            input(*t, seg);
            return;
        }
    }
    if (!moved.empty() && forward_moved(k, data, len)) return;
    if (Tcb* l = find_listener(seg.dst_port, f.ip.src, seg.src_port)) {
        listen_input(*l, seg, f.ip.src, f.ip.dst);
        return;
    }
    // RFC 9293 3.10.7.1, CLOSED: a RST answers anything but a RST.
    stats.drops[static_cast<int>(Drop::NoSocket)]++;
    if (seg.has(kTcpRst)) return;
    if (seg.has(kTcpAck))
        send_rst_raw(cfg.ip, seg.dst_port, f.ip.src, seg.src_port, seg.ack, Seq(0), kTcpRst);
    else
        send_rst_raw(cfg.ip, seg.dst_port, f.ip.src, seg.src_port, Seq(0),
                     seg.seq + seg.seg_len(), kTcpRst | kTcpAck);
}

// RFC 5961 7 / Linux tcp_challenge_ack_limit: at most kChallengeAckLimit a second.
bool TcpCore::challenge_ack_allowed() {
    if (now - challenge_window_start >= 1'000'000'000ull) {
        challenge_window_start = now;
        challenge_count = 0;
    }
    if (challenge_count >= kChallengeAckLimit) return false;
    ++challenge_count;
    return true;
}

void TcpCore::send_challenge_ack(Tcb& t) {
    if (!challenge_ack_allowed()) return;
    stats.challenge_acks++;
    send_ack(t);
}

void TcpCore::parse_syn_options(Tcb& t, const TcpOptions& o) {
    // RFC 9293 3.7.1: without the option the peer takes 536.
    t.rcv_mss = o.mss ? std::max<uint16_t>(*o.mss, 64) : kDefaultMss;
    if (o.wscale) {
        t.ws_ok = true;
        t.snd_wscale = *o.wscale;
    } else {
        t.ws_ok = false;
        t.snd_wscale = 0;
        t.rcv_wscale = 0;   // RFC 7323 2.2: both sides scale or neither
    }
    t.sack_ok = o.sack_permitted;
    if (o.ts) {
        t.ts_ok = true;
        t.ts_recent = o.ts->tsval;
        t.ts_recent_age = now;
    } else {
        t.ts_ok = false;
    }
    setup_mss(t);
}

void TcpCore::update_window(Tcb& t, const TcpView& seg) {
    // RFC 9293 3.10.7.4: only a segment newer than the last update moves the window.
    if (t.snd_wl1 < seg.seq || (t.snd_wl1 == seg.seq && t.snd_wl2 <= seg.ack)) {
        uint32_t w = seg.has(kTcpSyn) ? seg.window : uint32_t(seg.window) << t.snd_wscale;
        bool opened = w > t.snd_wnd;
        t.snd_wnd = w;
        t.snd_wl1 = seg.seq;
        t.snd_wl2 = seg.ack;
        t.max_snd_wnd = std::max(t.max_snd_wnd, w);
        if (opened) mark_output(t);
        if (w > 0 && t.persist) {
            t.persist = false;
            t.persist_backoff = 0;
            t.rto_at = 0;
            mark_output(t);
        }
    }
}

void TcpCore::input(Tcb& t, const TcpView& seg) {
    t.info.segs_in++;
    if (seg.payload_len) t.info.data_segs_in++;
    if (seg.has(kTcpAck)) t.info.last_ack_recv = now;
    if (t.state == TcpState::SynSent) {
        input_syn_sent(t, seg);
        mark_output(t);
        return;
    }
    t.last_recv = now;
    t.keepalive_probes = 0;

    // TIME_WAIT and a new SYN (Linux tcp_timewait_state_process): a higher sequence
    // number or a newer timestamp shows the SYN is from a new incarnation.
    if (t.state == TcpState::TimeWait && seg.has(kTcpSyn) && !seg.has(kTcpAck) &&
        !seg.has(kTcpRst)) {
        bool newer = (t.ts_ok && seg.opts.ts)
                         ? static_cast<int32_t>(seg.opts.ts->tsval - t.ts_recent) > 0
                         : seg.seq > t.rcv_nxt;
        Tcb* l = find_listener(t.local.port, t.remote.ip, t.remote.port);
        if (newer && l) {
            tcb_closed(t);
            listen_input(*l, seg, t.remote.ip, t.local.ip);
            return;
        }
    }
    // A retransmitted SYN of the half-open connection: the SYN-ACK was lost.
    if (t.state == TcpState::SynReceived && seg.has(kTcpSyn) && !seg.has(kTcpAck) &&
        seg.seq == t.irs) {
        t.snd_nxt = t.iss;
        mark_output(t);
        return;
    }

    // Simultaneous open: the peer's SYN-ACK acknowledges our SYN-ACK; its SYN is the
    // one we already took (Linux tcp_validate_incoming lets exactly this through).
    TcpView synack;
    if (t.state == TcpState::SynReceived && seg.has(kTcpSyn | kTcpAck) && !seg.has(kTcpRst) &&
        seg.payload_len == 0 && seg.seq + 1 == t.rcv_nxt && seg.ack == t.snd_max) {
        synack = seg;
        synack.flags = static_cast<uint8_t>(synack.flags & ~kTcpSyn);
        synack.seq = t.rcv_nxt;
        input(t, synack);
        return;
    }

    // Step 1: sequence number check, PAWS first (RFC 7323 5.3).
    const bool rst = seg.has(kTcpRst);
    if (t.ts_ok && seg.opts.ts && !rst &&
        static_cast<int32_t>(seg.opts.ts->tsval - t.ts_recent) < 0) {
        if (now - t.ts_recent_age > kPawsIdle) {
            // RFC 7323 5.5: TS.Recent is too old to compare against; take the new one.
            t.ts_recent = seg.opts.ts->tsval;
            t.ts_recent_age = now;
        } else {
            stats.drops[static_cast<int>(Drop::Paws)]++;
            t.ack_now = true;
            mark_output(t);
            return;
        }
    }
    const uint32_t wnd = t.rcv_adv > t.rcv_nxt ? uint32_t(t.rcv_adv - t.rcv_nxt) : 0;
    const uint32_t seg_len = seg.seg_len();
    bool acceptable;
    if (seg_len == 0)
        acceptable = wnd == 0 ? seg.seq == t.rcv_nxt : in_window(seg.seq, t.rcv_nxt, wnd);
    else
        acceptable = wnd != 0 && (in_window(seg.seq, t.rcv_nxt, wnd) ||
                                  in_window(seg.seq + (seg_len - 1), t.rcv_nxt, wnd));
    // RFC 9293 3.10.7.4: with a zero window, ACKs and RSTs at rcv_nxt still count.
    const bool zero_wnd_ctl = !acceptable && wnd == 0 && seg.seq == t.rcv_nxt;
    if (!acceptable && !zero_wnd_ctl) {
        stats.drops[static_cast<int>(Drop::OutOfWindow)]++;
        if (!rst) {
            t.ack_now = true;
            mark_output(t);
            // RFC 9293 3.10.7.4 TIME-WAIT: a retransmitted FIN restarts the 2 MSL wait.
            if (t.state == TcpState::TimeWait && seg.has(kTcpFin)) {
                t.timewait_at = now + 2 * cfg.msl;
                rearm(t);
            }
        }
        return;
    }

    // Trim to the window: keep [rcv_nxt, rcv_nxt + wnd).
    Seq seq = seg.seq;
    const uint8_t* data = seg.payload;
    uint32_t len = static_cast<uint32_t>(seg.payload_len);
    bool syn = seg.has(kTcpSyn), fin = seg.has(kTcpFin);
    if (syn && seq < t.rcv_nxt) { syn = false; seq += 1; }
    if (seq < t.rcv_nxt) {
        uint32_t skip = static_cast<uint32_t>(t.rcv_nxt - seq);
        if (skip >= len) {
            if (skip > len) fin = false;   // the FIN too was old
            skip = len;
        }
        data += skip;
        len -= skip;
        seq += skip;
    }
    if (zero_wnd_ctl) {
        if (len || fin) t.ack_now = true;   // text dropped: repeat the zero window
        len = 0;
        fin = false;
    } else if (len > 0 && seq + len > t.rcv_nxt + wnd) {
        len = static_cast<uint32_t>((t.rcv_nxt + wnd) - seq);
        fin = false;
    }

    // RFC 7323 4.3: remember the timestamp of a segment covering Last.ACK.sent.
    if (t.ts_ok && seg.opts.ts && seg.seq <= t.last_ack_sent &&
        static_cast<int32_t>(seg.opts.ts->tsval - t.ts_recent) >= 0) {
        t.ts_recent = seg.opts.ts->tsval;
        t.ts_recent_age = now;
    }

    // Step 2: RST (RFC 5961 3.2: only an exact match resets; in-window earns a challenge).
    if (rst) {
        if (seg.seq != t.rcv_nxt) {
            send_challenge_ack(t);
            return;
        }
        switch (t.state) {
        case TcpState::SynReceived:
            if (t.listener != kNoSock && !t.accepted) {   // passive: back to LISTEN
                stats.conn_reset++;
                tcb_closed(t);
            } else {
                conn_error(t, ECONNREFUSED);
            }
            return;
        case TcpState::Established:
        case TcpState::FinWait1:
        case TcpState::FinWait2:
            conn_error(t, ECONNRESET);
            return;
        case TcpState::CloseWait:
            // Linux tcp_reset: the peer already closed its side, so the error a
            // write then meets is EPIPE (and SIGPIPE), not ECONNRESET.
            stats.conn_reset++;
            conn_error(t, EPIPE);
            return;
        default:   // Closing, LastAck, TimeWait
            stats.conn_reset++;
            t.reset = true;
            tcb_closed(t);
            return;
        }
    }

    // Step 4: SYN in a synchronized state (RFC 5961 4.2): challenge ACK, drop.
    if (syn) {
        send_challenge_ack(t);
        return;
    }

    // Step 5: ACK.
    if (!seg.has(kTcpAck)) return;
    if (t.state == TcpState::SynReceived) {
        if (!(t.snd_una < seg.ack && seg.ack <= t.snd_max)) {
            send_rst_raw(t.local.ip, t.local.port, t.remote.ip, t.remote.port, seg.ack,
                         Seq(0), kTcpRst);
            return;
        }
        t.snd_wnd = uint32_t(seg.window) << t.snd_wscale;
        t.max_snd_wnd = std::max(t.max_snd_wnd, t.snd_wnd);
        t.snd_wl1 = seg.seq;
        t.snd_wl2 = seg.ack;
        if (!alloc_buffers(t)) {
            abort_tcb(t);
            return;
        }
        set_state(t, TcpState::Established);
        if (t.syn_retries) t.rtt.reset_after_syn_retransmit();
        t.cc.init(t.snd_mss, now);
        if (!t.accepted) {
            child_established(t);
            if (t.state == TcpState::Closed) return;   // the listener was gone
        } else {
            arm_keepalive(t);   // simultaneous open
        }
    }
    if (!ack_processing(t, seg)) return;
    if (t.state == TcpState::Closed) return;

    // Step 6: URG is ignored (RFC 6093: urgent data is deprecated for new applications).

    // Step 7: segment text.
    if (len > 0) {
        if (t.state == TcpState::Established || t.state == TcpState::FinWait1 ||
            t.state == TcpState::FinWait2) {
            if (t.user_closed && seq + len > t.rcv_nxt) {
                // Linux (RFC 2525 2.17): data for a socket nobody will read → RST.
                abort_tcb(t);
                return;
            }
            process_data(t, seg, data, len, seq);
        }
        // Other states: the peer already sent a FIN; ignore the text.
    }

    // Step 8: FIN.
    if (fin && (t.state == TcpState::Established || t.state == TcpState::FinWait1 ||
                t.state == TcpState::FinWait2 || t.state == TcpState::SynReceived ||
                t.state == TcpState::CloseWait || t.state == TcpState::Closing ||
                t.state == TcpState::LastAck || t.state == TcpState::TimeWait)) {
        Seq fin_at = seq + len;
        if (fin_at == t.rcv_nxt) {
            if (!t.fin_rcvd) process_fin(t);
            else t.ack_now = true;
            if (t.state == TcpState::TimeWait) {
                t.timewait_at = now + 2 * cfg.msl;
                t.ack_now = true;
                rearm(t);
            }
        } else if (fin_at > t.rcv_nxt) {
            t.ooo_fin = true;
            t.ooo_fin_seq = fin_at;
        }
    }
    mark_output(t);
}

void TcpCore::input_syn_sent(Tcb& t, const TcpView& seg) {
    // RFC 9293 3.10.7.3.
    bool ack_ok = false;
    if (seg.has(kTcpAck)) {
        if (seg.ack <= t.iss || seg.ack > t.snd_max) {
            if (!seg.has(kTcpRst))
                send_rst_raw(t.local.ip, t.local.port, t.remote.ip, t.remote.port, seg.ack,
                             Seq(0), kTcpRst);
            stats.drops[static_cast<int>(Drop::OutOfWindow)]++;
            return;
        }
        ack_ok = t.snd_una <= seg.ack && seg.ack <= t.snd_max;
    }
    if (seg.has(kTcpRst)) {
        if (ack_ok) conn_error(t, ECONNREFUSED);
        return;
    }
    if (!seg.has(kTcpSyn)) return;

    t.irs = seg.seq;
    t.rcv_nxt = seg.seq + 1;
    t.last_recv = now;
    parse_syn_options(t, seg.opts);
    if (!seg.opts.wscale) t.rcv_wscale = 0;
    if (ack_ok) {
        // Karn: only a SYN sent once is timed by the clock; timestamps are always fine.
        // A sample beyond the SYN's (backed-off) RTO cannot be a round trip of this
        // handshake (a SYN sent before the engine's clock was set reads as the uptime):
        // taken, it would hold the RTO at its maximum for the connection's life.
        TimeNs d = ~TimeNs(0);
        if (t.ts_ok && seg.opts.ts && seg.opts.ts->tsecr)
            d = TimeNs(tsval(t) - seg.opts.ts->tsecr) * 1'000'000;
        else if (t.syn_retries == 0)
            d = now - t.rtt_sent;
        if (d <= t.rtt.rto())
            t.rtt.sample(d);
        else if (t.syn_retries)
            t.rtt.reset_after_syn_retransmit();
        note_acked(t, static_cast<uint32_t>(seg.ack - t.snd_una));
        t.snd_una = seg.ack;
        t.snd_wnd = seg.window;   // RFC 7323 2.2: never scaled in a SYN
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = seg.seq;
        t.snd_wl2 = seg.ack;
        t.rto_at = 0;
        t.retransmits = 0;
        set_state(t, TcpState::Established);
        t.cc.init(t.snd_mss, now);
        t.ack_now = true;
        t.rcv_adv = t.rcv_nxt;   // recomputed when the ACK goes out
        arm_keepalive(t);
        rearm(t);
        mark_events(t);
        // Data on a SYN-ACK is rare; it is dropped and the peer retransmits it.
    } else {
        // Simultaneous open (RFC 9293 3.5 figure 8): answer with SYN-ACK on our ISS.
        set_state(t, TcpState::SynReceived);
        t.snd_wnd = seg.window;
        t.snd_wl1 = seg.seq;
        t.snd_wl2 = t.iss;
        t.snd_nxt = t.iss;
    }
}

bool TcpCore::ack_processing(Tcb& t, const TcpView& seg) {
    const Seq ack = seg.ack;
    // RFC 5961 5.2: SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT.
    if (ack > t.snd_max) {
        send_challenge_ack(t);
        return false;
    }
    if (ack < t.snd_una - std::max<uint32_t>(t.max_snd_wnd, 1)) {
        send_challenge_ack(t);
        return false;
    }
    const uint32_t old_wnd = t.snd_wnd;
    const uint32_t flight_before = static_cast<uint32_t>(t.snd_max - t.snd_una);
    const Seq snd_una_before = t.snd_una;

    uint32_t newly_sacked = 0;
    // RFC 2883: a first block below the cumulative ACK, or inside the second, is a D-SACK.
    if (t.sack_ok && seg.opts.sack_count) {
        const SackBlock& b = seg.opts.sack[0];
        if (b.left < ack || (seg.opts.sack_count > 1 && seg.opts.sack[1].left <= b.left &&
                             b.right <= seg.opts.sack[1].right))
            t.info.dsack_dups++;
    }
    if (t.sack_ok && seg.opts.sack_count)
        newly_sacked = t.sb.update(seq_max(ack, t.snd_una), seg.opts.sack, seg.opts.sack_count,
                                   t.snd_max);

    if (ack > t.snd_una) {
        uint32_t acked = static_cast<uint32_t>(ack - t.snd_una);
        // RTT measurement: RFC 7323 4 (timestamps) or one timed segment (Karn).
        if (t.ts_ok && seg.opts.ts && seg.opts.ts->tsecr) {
            // An echo older than the current (backed-off) RTO belongs to a segment sent
            // before a timeout (a duplicate answered with an old TS.Recent): like Karn,
            // such a sample would only inflate the estimate.
            TimeNs d = TimeNs(tsval(t) - seg.opts.ts->tsecr) * 1'000'000 + 500'000;
            if (d <= t.rtt.rto()) t.rtt.sample(d);
        } else if (t.rtt_timing && ack > t.rtt_seq) {
            t.rtt.sample(now - t.rtt_sent);
            t.rtt_timing = false;
        }
        Seq data_end = t.snd_data_end();
        Seq upto = seq_min(ack, data_end);
        if (upto > t.snd_buf_seq) {
            uint32_t n = static_cast<uint32_t>(upto - t.snd_buf_seq);
            t.snd.consume(n);
            t.snd_buf_seq += n;
            mark_events(t);
        }
        if (t.fin_sent && ack > t.fin_seq) t.fin_acked = true;
        note_acked(t, acked);
        t.snd_una = ack;
        drop_write_marks(t);
        t.more = false;          // Linux: an ACK pushes with the socket's own Nagle setting
        t.una_since = now;       // what is still in flight left no later than now
        if (t.snd_nxt < t.snd_una) t.snd_nxt = t.snd_una;
        if (t.high_rxt < t.snd_una) t.high_rxt = t.snd_una;
        if (t.sack_ok) t.sb.update(t.snd_una, nullptr, 0, t.snd_max);
        if (t.retransmits && t.info.rto_recovery_start) {
            t.info.total_rto_ns += now - t.info.rto_recovery_start;
            t.info.rto_recovery_start = 0;
        }
        t.retransmits = 0;
        t.dupacks = 0;
        if (t.tlp_out && ack >= t.tlp_end) t.tlp_out = false;   // RFC 8985 7.4

        if (t.in_recovery && t.undo_valid && seg.opts.ts && seg.opts.ts->tsecr &&
            ack > t.undo_seq && static_cast<int32_t>(seg.opts.ts->tsecr - t.undo_tsval) < 0) {
            // RFC 3522: the first retransmitted segment was acknowledged by its original
            // transmission, so that "loss" was reordering: restore the window. Recovery
            // itself goes on, so real holes are still repaired from the scoreboard.
            t.cc = t.cc_prior;
            t.undo_valid = false;
            t.undone = true;
            t.spurious_undos++;
        }
        if (t.in_recovery) {
            if (ack >= t.recover) {
                t.in_recovery = false;
                if (!t.undone)
                    t.cc.on_exit_recovery(static_cast<uint32_t>(t.snd_max - t.snd_una), now);
            } else if (!t.sack_ok) {
                // RFC 6582 3.2 step 5: partial ACK → retransmit the next hole at once.
                t.cc.on_partial_ack(acked);
                retransmit_head(t);
            }
        } else {
            t.cc.on_ack(acked, flight_before, now, t.rtt.srtt());
            sndbuf_expand(t);
        }
        // RFC 6298 5.2/5.3: stop the timer when all is acked, else restart it.
        if (t.snd_una == t.snd_max) {
            if (!t.persist) t.rto_at = 0;
        } else {
            arm_rto(t);
        }
        rearm(t);
        mark_output(t);
    } else if (ack == t.snd_una) {
        // RFC 5681 2 "duplicate acknowledgment", or RFC 6675 5 with SACK news.
        bool dup = seg.payload_len == 0 && !seg.has(kTcpSyn) && !seg.has(kTcpFin) &&
                   t.snd_max > t.snd_una &&
                   (uint32_t(seg.window) << t.snd_wscale) == old_wnd;
        if (dup || (t.sack_ok && newly_sacked > 0)) on_dupack(t);
    }
    if (t.sack_ok && seg.ack == t.snd_una && !t.sb.empty() && t.sb.range(0).left == t.snd_una &&
        t.snd_una < t.snd_max) {
        // The cumulative ACK stops at data the peer SACKed: it reneged, dropping what it
        // had queued out of order (Linux tcp_check_sack_reneging). The scoreboard no
        // longer says what the peer holds: forget it, and let a short timer resend from
        // snd_una (Linux: max(SRTT/2, 10 ms)). Only then is SACKed data sent again.
        t.sb.clear();
        t.tlp_armed = false;
        t.persist = false;
        t.rto_at = now + std::max<TimeNs>(t.rtt.srtt() / 2, 10'000'000);
        rearm(t);
    }
    if (t.in_recovery && t.sack_ok && (ack > snd_una_before || newly_sacked > 0))
        detect_lost_retransmits(t);
    update_window(t, seg);

    switch (t.state) {
    case TcpState::FinWait1:
        if (t.fin_acked) {
            set_state(t, TcpState::FinWait2);
            if (t.user_closed) {   // Linux tcp_fin_timeout for orphans
                t.timewait_at = now + kFinTimeout;
                rearm(t);
            }
        }
        break;
    case TcpState::Closing:
        if (t.fin_acked) enter_time_wait(t);
        break;
    case TcpState::LastAck:
        if (t.fin_acked) {
            tcb_closed(t);
            return false;
        }
        break;
    default:
        break;
    }
    return true;
}

// Linux counts every SND.UNA advance (SYN and FIN too) in tcpi_bytes_acked. The delivery
// rate is measured over intervals of at least one SRTT, so one ACK's burst does not set it.
void TcpCore::note_acked(Tcb& t, uint32_t bytes) {
    Tcb::Info& i = t.info;
    i.bytes_acked += bytes;
    i.delivered += (bytes + t.snd_mss - 1) / t.snd_mss;
    if (!i.rate_start) {
        i.rate_start = now;
        i.rate_bytes_start = i.bytes_acked;
        return;
    }
    const TimeNs span = now - i.rate_start;
    if (span > 0 && span >= t.rtt.srtt()) {
        i.delivery_rate = (i.bytes_acked - i.rate_bytes_start) * 1'000'000'000ull / span;
        i.rate_start = now;
        i.rate_bytes_start = i.bytes_acked;
    }
}

void TcpCore::on_dupack(Tcb& t) {
    ++t.dupacks;
    if (t.in_recovery) {
        if (!t.sack_ok) t.cc.on_recovery_dupack();   // RFC 5681 3.2 step 4
        mark_output(t);
        return;
    }
    // RFC 8985 7.4 with 6.2: SACK news after a loss probe means the un-SACKed data sent
    // before it, a PTO (2 SRTT) or more earlier, is lost — no three dupacks will come.
    const bool probe_found = t.sack_ok && t.tlp_out;
    bool lost = t.dupacks >= SackScoreboard::kDupThresh ||
                (t.sack_ok && t.sb.is_lost(t.snd_una, t.snd_mss)) || probe_found;
    if (!lost) {
        // RFC 3042 limited transmit: the output loop may send new data against the
        // first two dupacks; pipe (SACK) already accounts for what left the network.
        mark_output(t);
        return;
    }
    // RFC 6582 3.2 step 2: no new recovery until snd_una passes the previous one.
    if (!t.sack_ok && t.recover > t.snd_una) return;
    t.cc_prior = t.cc;
    t.undo_valid = t.ts_ok;
    t.undo_tsval = tsval(t);
    t.undo_seq = t.snd_una;
    t.undone = false;
    t.in_recovery = true;
    t.recover = t.snd_max;
    t.high_rxt = t.snd_una;
    t.rescue_valid = false;
    rxt_marks_reset(t);
    t.cc.on_enter_recovery(static_cast<uint32_t>(t.snd_max - t.snd_una), now);
    // A loss probe armed before recovery would resend the tail the peer SACKs, about
    // an RTT after the fast retransmit: from here the timer is the RTO (Linux re-arms
    // it when the head is retransmitted, tcp_xmit_retransmit_queue).
    if (t.tlp_armed) arm_rto(t);
    if (!t.sack_ok) {
        for (uint32_t i = 0; i < SackScoreboard::kDupThresh; ++i) t.cc.on_recovery_dupack();
        retransmit_head(t);
    } else if (probe_found && !t.sb.is_lost(t.snd_una, t.snd_mss)) {
        // NextSeg() would not yet call the head lost: send it now.
        t.tlp_out = false;
        retransmit_head(t);
        rxt_mark(t);
    }
    mark_output(t);
}

// RFC 8985 6.2 (RACK) for retransmissions only: an ACK that SACKs or acknowledges new
// data arriving RTT + reo_wnd after a batch of retransmissions left finds those still
// un-SACKed lost again; sack_recovery_send() re-sends them, and pipe stops counting them.
// Without this a lost retransmission waits for the RTO.
void TcpCore::detect_lost_retransmits(Tcb& t) {
    const TimeNs rtt = t.rtt.srtt() ? t.rtt.srtt() : t.rtt.rto();
    const TimeNs wait = rtt + std::max<TimeNs>(rtt / 4, 1'000'000);   // RFC 8985 6.2.1 reo_wnd
    Seq lost = t.snd_una;
    while (t.rxt_mark_count && t.rxt_marks[t.rxt_mark_first].at + wait <= now) {
        lost = seq_max(lost, t.rxt_marks[t.rxt_mark_first].end);
        t.rxt_mark_first = (t.rxt_mark_first + 1) % Tcb::kRxtMarks;
        --t.rxt_mark_count;
    }
    if (!(lost > t.snd_una)) return;
    if (t.rxt_again < t.snd_una || !(t.rxt_again < t.rxt_lost_end)) t.rxt_again = t.snd_una;
    t.rxt_lost_end = seq_max(t.rxt_lost_end, lost);
    mark_output(t);
}

void TcpCore::process_data(Tcb& t, const TcpView& seg, const uint8_t* data, size_t len, Seq seq) {
    if (seq == t.rcv_nxt) {
        size_t n = t.rcv.write(data, len);
        t.rcv_nxt += static_cast<uint32_t>(n);
        if (!t.rcvbuf_lock) rcv_rtt_measure(t, seg, static_cast<uint32_t>(n));
        t.info.bytes_received += n;
        bool had_ooo = !t.ooo.empty();
        if (had_ooo) {
            uint32_t more = t.ooo.pop_contiguous(t.rcv_nxt);
            if (more) {
                t.rcv.commit(more);
                t.rcv_nxt += more;
                t.info.bytes_received += more;
            }
            t.ack_now = true;   // RFC 5681 4.2: ACK at once when a hole is filled
        }
        t.rcv_unacked_bytes += static_cast<uint32_t>(n);
        // Linux tcp_measure_rcv_mss: the largest segment seen is the peer's full size.
        if (len > t.rcv_mss_est && len <= 65535) t.rcv_mss_est = static_cast<uint16_t>(len);
        // Linux tcp_event_data_recv: quick-ACK mode for the first data of a connection
        // and for data after more than an RTO of silence.
        if (n && (!t.data_rcvd || now - t.last_data_rcv > t.rtt.rto())) {
            t.data_rcvd = true;
            incr_quickack(t);
        }
        if (n) t.last_data_rcv = now;
        if (n && t.quickacks && !t.pingpong) t.ack_now = true;
        // RFC 5681 4.2 / RFC 9293 3.8.6.3: ACK at least every second full-sized segment.
        if (t.rcv_unacked_bytes >= 2u * t.rcv_mss_est) t.ack_now = true;
        if (!t.ack_now && !t.delack_at) {
            t.delack_at = now + cfg.delack;
            rearm(t);
        }
        mark_events(t);
    } else {
        // Out of order: place it, remember the range, and send a duplicate ACK at once
        // (RFC 5681 4.2) carrying SACK blocks (RFC 2018 4).
        t.info.rcv_ooopack++;
        size_t off = static_cast<size_t>(seq - t.rcv_nxt);
        size_t placed = t.rcv.write_at(off, data, len);
        if (placed && !t.ooo.add(seq, static_cast<uint32_t>(placed)))
            stats.drops[static_cast<int>(Drop::NoBuffer)]++;
        t.ack_now = true;
    }
    if (t.ooo_fin && t.ooo_fin_seq == t.rcv_nxt) {
        t.ooo_fin = false;
        process_fin(t);
    }
}

void TcpCore::process_fin(Tcb& t) {
    t.rcv_nxt += 1;
    t.fin_rcvd = true;
    t.ack_now = true;
    switch (t.state) {
    case TcpState::SynReceived:
    case TcpState::Established: set_state(t, TcpState::CloseWait); break;
    case TcpState::FinWait1:
        if (t.fin_acked) enter_time_wait(t);
        else set_state(t, TcpState::Closing);
        break;
    case TcpState::FinWait2: enter_time_wait(t); break;
    default: break;
    }
    mark_events(t);
}

}  // namespace fastnet
