// What to send: run_output() → output(Tcb) decides (SYN, data within min(cwnd, snd_wnd)
// with Nagle and SWS avoidance, SACK/NewReno recovery retransmissions, FIN, ACKs) →
// send_segment() → emit() → emit_tcp_frame() into a Device TX buffer. Segments without
// a TCB (RST for no socket, SYN cookie SYN-ACKs) go through send_raw().
#include <algorithm>

#include "stack/tcp/core.hpp"

namespace fastnet {

uint32_t TcpCore::tsval(const Tcb& t) const {
    // RFC 7323 5.4: a 1 ms clock; a per-connection offset hides the host's uptime.
    return static_cast<uint32_t>(now / 1'000'000) + t.ts_offset;
}

uint32_t TcpCore::send_window(const Tcb& t) const { return std::min(t.snd_wnd, t.cc.cwnd()); }

bool TcpCore::emit(uint32_t dst_ip, TcpFrameSpec& spec, const uint8_t* p1, size_t l1,
                   const uint8_t* p2, size_t l2) {
    uint32_t hop = nb.next_hop(dst_ip);
    if (!hop) {
        hop = dst_ip;
        if ((dst_ip & cfg.netmask) != (cfg.ip & cfg.netmask) && cfg.gateway) hop = cfg.gateway;
    }
    uint8_t mac[6];
    if (!nb.resolve(hop, mac)) {
        stats.tx_unresolved++;
        return false;
    }
    Frame f;
    if (dev.tx_alloc(&f, 1) != 1) {
        stats.tx_no_buffer++;
        return false;
    }
    spec.dst_mac = MacAddr::from(mac);
    spec.src_mac = MacAddr::from(cfg.mac);
    spec.ip_id = ip_id++;
    bool offload = dev.tx_csum_offload();
    size_t n = emit_tcp_frame(f.data, dev.tx_capacity(), spec, p1, l1, p2, l2, offload);
    if (n == 0) {
        dev.tx_abandon(&f, 1);
        stats.tx_no_buffer++;
        return false;
    }
    f.len = static_cast<uint32_t>(n);
    if (offload) {
        f.csum_start = static_cast<uint16_t>(n - tcp_header_len(spec.tcp) - l1 - l2);
        f.csum_offset = 16;   // RFC 9293: the checksum field's offset in the TCP header
        stats.tx_csum_offload++;
    }
    dev.tx_submit(&f, 1);
    stats.frames_tx++;
    stats.bytes_tx += n;
    return true;
}

bool TcpCore::send_raw(uint32_t src_ip, uint16_t src_port, uint32_t dst_ip, uint16_t dst_port,
                       Seq seq, Seq ack, uint8_t flags, uint16_t window, const TcpOptions* o) {
    TcpFrameSpec sp;
    sp.src_ip = src_ip;
    sp.dst_ip = dst_ip;
    sp.tcp.src_port = src_port;
    sp.tcp.dst_port = dst_port;
    sp.tcp.seq = seq;
    sp.tcp.ack = ack;
    sp.tcp.flags = flags;
    sp.tcp.window = window;
    if (o) sp.tcp.opts = *o;
    return emit(dst_ip, sp, nullptr, 0, nullptr, 0);
}

bool TcpCore::send_rst_raw(uint32_t src_ip, uint16_t src_port, uint32_t dst_ip,
                           uint16_t dst_port, Seq seq, Seq ack, uint8_t flags) {
    return send_raw(src_ip, src_port, dst_ip, dst_port, seq, ack, flags, 0, nullptr);
}

void TcpCore::send_rst_for(Tcb& t) {
    // Linux tcp_send_active_reset: RST|ACK at snd_nxt, with the connection's options
    // (a timestamp when they were negotiated).
    TcpOptions o;
    if (t.ts_ok) o.ts = Timestamps{tsval(t), t.ts_recent};
    send_raw(t.local.ip, t.local.port, t.remote.ip, t.remote.port, t.snd_nxt, t.rcv_nxt,
             kTcpRst | kTcpAck, 0, &o);
}

uint16_t TcpCore::window_to_advertise(Tcb& t, bool syn) {
    uint32_t space = rcv_space(t);
    if (syn) {   // RFC 7323 2.2: the window in a SYN is never scaled
        t.rcv_wnd = std::min<uint32_t>(space, 65535);
        if (t.rcv_nxt + t.rcv_wnd > t.rcv_adv) t.rcv_adv = t.rcv_nxt + t.rcv_wnd;
        return static_cast<uint16_t>(t.rcv_wnd);
    }
    Seq edge = t.rcv_nxt + space;
    // RFC 9293 3.8.6.2.2 receiver SWS avoidance: move the right edge only by
    // min(RCV.BUFF/2, MSS) or more.
    uint32_t thresh = std::min<uint32_t>(t.rcvbuf / 2, t.adv_mss);
    if (edge > t.rcv_adv && static_cast<uint32_t>(edge - t.rcv_adv) < thresh) edge = t.rcv_adv;
    // RFC 9293 3.8.6.2.2 / RFC 7323 2.4: never shrink the window.
    if (edge < t.rcv_adv) edge = t.rcv_adv;
    uint32_t wnd = edge > t.rcv_nxt ? static_cast<uint32_t>(edge - t.rcv_nxt) : 0;
    uint32_t shift = t.rcv_wscale;
    uint32_t field = (wnd + (1u << shift) - 1) >> shift;   // round up: no shrink by rounding
    if (field > 65535) field = 65535;
    t.rcv_wnd = field << shift;
    t.rcv_adv = t.rcv_nxt + t.rcv_wnd;
    return static_cast<uint16_t>(field);
}

void TcpCore::fill_options(Tcb& t, TcpOptions& o, bool syn) {
    if (syn) {
        const bool offer = t.state == TcpState::SynSent;   // SYN-ACK only echoes
        o.mss = t.adv_mss;
        if (offer || t.ws_ok) o.wscale = t.rcv_wscale;
        o.sack_permitted = offer || t.sack_ok;
        if (offer || t.ts_ok) o.ts = Timestamps{tsval(t), offer ? 0u : t.ts_recent};
        return;
    }
    if (t.ts_ok) o.ts = Timestamps{tsval(t), t.ts_recent};
    if (t.sack_ok && !t.ooo.empty())
        o.sack_count = static_cast<uint8_t>(t.ooo.sack_blocks(o.sack, t.ts_ok ? 3 : 4));
}

int TcpCore::send_segment(Tcb& t, uint8_t flags, Seq seq, uint32_t len, bool rexmit) {
    TcpFrameSpec sp;
    sp.src_ip = t.local.ip;
    sp.dst_ip = t.remote.ip;
    sp.tcp.src_port = t.local.port;
    sp.tcp.dst_port = t.remote.port;
    sp.tcp.seq = seq;
    const bool syn = flags & kTcpSyn;
    if (t.state != TcpState::SynSent) flags |= kTcpAck;
    sp.tcp.ack = (flags & kTcpAck) ? t.rcv_nxt : Seq(0);
    fill_options(t, sp.tcp.opts, syn);
    ByteRing::Spans p;
    if (len > 0) {
        // RFC 9293 3.7.1: payload = min(SendMSS + 20, MTU - 20) - TCP header with options.
        uint32_t opt = static_cast<uint32_t>(tcp_options_len(sp.tcp.opts));
        uint32_t cap = std::min<uint32_t>(t.rcv_mss + 20u, cfg.mtu - 20u) - 20u - opt;
        if (t.user_mss) cap = std::min<uint32_t>(cap, t.user_mss);
        if (len > cap) {
            len = cap;
            flags &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
        }
        p = t.snd.peek(static_cast<size_t>(seq - t.snd_buf_seq), len);
        len = static_cast<uint32_t>(p.size());
    }
    sp.tcp.flags = flags;
    sp.tcp.window = window_to_advertise(t, syn);
    if (!emit(t.remote.ip, sp, p.p1, p.n1, p.p2, p.n2)) return -1;
    t.info.segs_out++;
    if (len > 0) {
        t.info.data_segs_out++;
        t.info.bytes_sent += len;
        if (rexmit) t.info.bytes_retrans += len;
    }

    const bool fin = flags & kTcpFin;
    const uint32_t seqlen = len + (syn ? 1 : 0) + (fin ? 1 : 0);
    if (fin) {
        t.fin_sent = true;
        t.fin_seq = seq + len;
    }
    const Seq end = seq + seqlen;
    if (seqlen > 0 && t.snd_max == t.snd_una) t.una_since = now;   // the oldest in flight now
    if (len > 0 && end > t.snd_max && notsent_lowat(t) != ~0u) mark_events(t);   // EPOLLOUT may turn on
    if (len > 0 && !rexmit && t.data_rcvd && now - t.last_data_rcv < cfg.delack)
        t.pingpong = true;   // Linux tcp_event_data_sent: a reply within the ACK delay
    if (seq == t.snd_nxt) t.snd_nxt = end;
    if (end > t.snd_max) t.snd_max = end;
    if (seqlen > 0) {
        if (rexmit) {
            stats.retransmits++;
            t.total_retrans++;
            t.rtt_timing = false;   // Karn (RFC 6298 3)
        } else if (!t.rtt_timing && !t.ts_ok) {
            t.rtt_timing = true;
            t.rtt_seq = seq;
            t.rtt_sent = now;
        }
        if (syn && !rexmit) t.rtt_sent = now;
        // RFC 6298 5.1: start the timer if it is not running.
        if (!t.rto_at || t.persist) arm_rto(t);
        t.last_send = now;
    }
    if (flags & kTcpAck) {
        t.ack_now = false;
        if (t.quickacks && t.rcv_nxt != t.last_ack_sent) --t.quickacks;   // Linux tcp_dec_quickack_mode
        t.rcv_unacked_bytes = 0;
        t.last_ack_sent = t.rcv_nxt;
        if (t.delack_at) {
            t.delack_at = 0;
            rearm(t);
        }
    }
    return static_cast<int>(len);
}

// A pure ACK carries snd_max, not snd_nxt: after an RTO rolled snd_nxt back, the peer may
// already hold more, and an ACK below its rcv_nxt would be dropped as out of window.
bool TcpCore::send_ack(Tcb& t) { return send_segment(t, kTcpAck, t.snd_max, 0, false) >= 0; }

bool TcpCore::send_probe(Tcb& t) {
    // Linux tcp_xmit_probe_skb: an old sequence number makes the peer answer with an ACK.
    return send_segment(t, kTcpAck, t.snd_una - 1, 0, false) >= 0;
}

// record_end: the segment ends where an MSG_EOR write ended.
bool TcpCore::nagle_ok(Tcb& t, uint32_t len, uint32_t avail, bool record_end) const {
    if (len >= t.snd_mss) return true;
    if (len == avail) {
        if (t.fin_queued) return true;             // Linux tcp_nagle_test: a FIN goes
        // TCP_CORK, MSG_MORE (Linux TCP_NAGLE_CORK): a partial last segment waits for
        // more data, uncorking, or the persist timer (Linux's probe timer, >= 200 ms).
        if (t.cork || t.more) return false;
        // RFC 9293 3.7.4 Nagle: a short segment only when nothing is unacknowledged.
        if (t.nodelay) return true;
        return t.snd_max == t.snd_una;
    }
    // A record that ends short of a full segment is not the last: Linux sends every
    // skb but the last without the Nagle test.
    if (record_end) return true;
    // RFC 9293 3.8.6.2.1 sender SWS avoidance: at least half the largest window seen.
    return t.max_snd_wnd > 0 && len >= t.max_snd_wnd / 2;
}

// ACK, plus PSH when a write ended in [seq, seq + len) or the segment reaches the end of
// the queued data (Linux tcp_mark_push on each sendmsg's last skb), plus FIN after the
// last byte. len is cut at the end of an MSG_EOR record (*record_end then set): the next
// record starts a new segment (Linux tcp_skb_can_collapse_to).
uint8_t TcpCore::data_flags(const Tcb& t, Seq seq, uint32_t& len, bool* record_end) const {
    uint8_t flags = kTcpAck;
    if (record_end) *record_end = false;
    for (uint32_t i = 0; i < t.wmark_count; ++i) {
        const Tcb::WriteMark& m = t.wmarks[(t.wmark_first + i) % Tcb::kWriteMarks];
        if (m.end <= seq) continue;
        if (m.end > seq + len) break;
        flags |= kTcpPsh;
        if (m.eor) {
            len = static_cast<uint32_t>(m.end - seq);
            if (record_end) *record_end = true;
            break;
        }
    }
    const Seq data_end = t.snd_data_end();
    if (seq + len == data_end) {
        flags |= kTcpPsh;
        if (t.fin_queued) flags |= kTcpFin;
    }
    return flags;
}

// The end of what the application just queued; eor: MSG_EOR.
void TcpCore::add_write_mark(Tcb& t, bool eor) {
    const Seq end = t.snd_data_end();
    if (t.wmark_count) {
        Tcb::WriteMark& last = t.wmarks[(t.wmark_first + t.wmark_count - 1) % Tcb::kWriteMarks];
        if (last.end == end || t.wmark_count == Tcb::kWriteMarks) {
            // Full: the newest boundary moves (those two writes share a segment).
            last.end = end;
            last.eor = eor;
            return;
        }
    }
    t.wmarks[(t.wmark_first + t.wmark_count) % Tcb::kWriteMarks] = {end, eor};
    ++t.wmark_count;
}

void TcpCore::drop_write_marks(Tcb& t) {
    while (t.wmark_count && t.wmarks[t.wmark_first].end <= t.snd_una) {
        t.wmark_first = (t.wmark_first + 1) % Tcb::kWriteMarks;
        --t.wmark_count;
    }
}

// Linux tcp_notsent_lowat: the socket's value, else net.ipv4.tcp_notsent_lowat.
uint32_t TcpCore::notsent_lowat(const Tcb& t) const {
    return t.notsent_lowat ? t.notsent_lowat : cfg.notsent_lowat;
}

// Linux tcp_clamp_rto_to_user_timeout: with TCP_USER_TIMEOUT, the retransmission timer
// fires no later than when the oldest unacknowledged data has waited that long.
TimeNs TcpCore::user_timeout_clamp(const Tcb& t, TimeNs at) const {
    if (!t.user_timeout || t.snd_una == t.snd_max) return at;
    return std::min(at, std::max(t.una_since + t.user_timeout, now + 1'000'000));
}

TimeNs TcpCore::persist_interval(const Tcb& t) const {
    TimeNs iv = t.rtt.rto();
    for (uint32_t i = 0; i < t.persist_backoff && iv < kPersistMax; ++i) iv *= 2;
    return std::clamp(iv, kPersistMin, kPersistMax);
}

void TcpCore::maybe_arm_persist(Tcb& t) {
    // RFC 9293 3.8.6.1: with data waiting, nothing in flight and no usable window, only
    // the persist timer can find out that the window opened.
    if (t.snd_max != t.snd_una || (t.rto_at && !t.persist) || t.persist) return;
    t.persist = true;
    t.rto_at = now + persist_interval(t);
    rearm(t);
}

// Skips ranges the receiver already holds (after an RTO rolled snd_nxt back).
void TcpCore::skip_sacked(Tcb& t) {
    if (!t.sack_ok || t.snd_nxt >= t.snd_max) return;
    for (size_t i = 0; i < t.sb.ranges(); ++i) {
        const SackBlock& b = t.sb.range(i);
        if (b.left <= t.snd_nxt && t.snd_nxt < b.right) t.snd_nxt = seq_min(b.right, t.snd_max);
    }
}

void TcpCore::retransmit_head(Tcb& t) {
    Seq data_end = t.snd_data_end();
    uint32_t len = data_end > t.snd_una ? static_cast<uint32_t>(data_end - t.snd_una) : 0;
    len = std::min<uint32_t>(len, t.snd_mss);
    uint8_t flags = kTcpAck;
    if (t.fin_sent && t.snd_una + len == t.fin_seq) flags |= kTcpFin;
    if (len == 0 && !(flags & kTcpFin)) return;
    send_segment(t, flags, t.snd_una, len, true);
    if (t.high_rxt < t.snd_una + len) t.high_rxt = t.snd_una + len;
}

void TcpCore::rxt_marks_reset(Tcb& t) {
    t.rxt_mark_first = t.rxt_mark_count = 0;
    t.rxt_again = t.rxt_lost_end = t.snd_una;
}

// Remembers when high_rxt passed its current value; retransmissions sent within an
// eighth of an RTT share a mark (RFC 8985 6.2 compares send times with RTT/4 slack).
void TcpCore::rxt_mark(Tcb& t) {
    const TimeNs batch = std::max<TimeNs>(t.rtt.srtt() / 8, 1'000'000);
    if (t.rxt_mark_count) {
        Tcb::RxtMark& last =
            t.rxt_marks[(t.rxt_mark_first + t.rxt_mark_count - 1) % Tcb::kRxtMarks];
        if (now - last.at < batch) {
            last.end = seq_max(last.end, t.high_rxt);
            return;
        }
    }
    if (t.rxt_mark_count == Tcb::kRxtMarks) {
        // Full: fold the oldest into the next one (later time, so detected later).
        Tcb::RxtMark& next = t.rxt_marks[(t.rxt_mark_first + 1) % Tcb::kRxtMarks];
        next.end = seq_max(next.end, t.rxt_marks[t.rxt_mark_first].end);
        t.rxt_mark_first = (t.rxt_mark_first + 1) % Tcb::kRxtMarks;
        --t.rxt_mark_count;
    }
    t.rxt_marks[(t.rxt_mark_first + t.rxt_mark_count) % Tcb::kRxtMarks] = {t.high_rxt, now};
    ++t.rxt_mark_count;
}

bool TcpCore::sack_recovery_send(Tcb& t) {
    // RFC 6675 5 (C): while cwnd - pipe >= SMSS, send NextSeg().
    for (int guard = 0; guard < 1024; ++guard) {
        if (t.rxt_again < t.snd_una) t.rxt_again = t.snd_una;
        uint32_t pipe = t.sb.pipe(t.snd_una, t.snd_max, t.high_rxt, t.snd_mss, t.rxt_again,
                                  t.rxt_lost_end);
        if (pipe + t.snd_mss > t.cc.cwnd()) break;
        Seq data_end = t.snd_data_end();
        uint32_t rwnd_room = (t.snd_una + t.snd_wnd) > t.snd_max
                                 ? static_cast<uint32_t>((t.snd_una + t.snd_wnd) - t.snd_max) : 0;
        bool can_new = data_end > t.snd_max && rwnd_room > 0 && t.snd_nxt == t.snd_max;
        SackScoreboard::Next n;
        bool again = false;
        if (t.rxt_again < t.rxt_lost_end) {
            // RFC 8985 6.2 / 7.1: lost retransmissions go first, lowest first.
            n = t.sb.next_seg(t.snd_una, t.snd_max, t.rxt_again, t.snd_mss, false);
            if (n.kind == SackScoreboard::Next::Retransmit && n.seq < t.rxt_lost_end) {
                again = true;
                n.len = std::min<uint32_t>(n.len, t.rxt_lost_end - n.seq);
            } else {
                t.rxt_again = t.rxt_lost_end;
            }
        }
        if (!again)
            n = t.sb.next_seg(t.snd_una, t.snd_max, t.high_rxt, t.snd_mss, can_new);
        if (n.kind == SackScoreboard::Next::None) break;
        if (n.kind == SackScoreboard::Next::Retransmit) {
            uint32_t len = std::min<uint32_t>(n.len, t.snd_mss);
            uint8_t flags = kTcpAck;
            if (n.seq >= data_end) {
                // The hole is the FIN itself.
                if (!t.fin_sent) break;
                len = 0;
                flags |= kTcpFin;
            } else if (n.seq + len >= data_end) {
                len = static_cast<uint32_t>(data_end - n.seq);
                if (t.fin_sent) flags |= kTcpFin;
            }
            int sent = send_segment(t, flags, n.seq, len, true);
            if (sent < 0) return false;
            Seq e = n.seq + static_cast<uint32_t>(sent) + ((flags & kTcpFin) ? 1 : 0);
            if (again) {
                t.rxt_again = e;
            } else if (t.high_rxt < e) {
                t.high_rxt = e;
                rxt_mark(t);
            }
            if (sent == 0 && !(flags & kTcpFin)) break;
        } else {
            uint32_t avail = static_cast<uint32_t>(data_end - t.snd_max);
            uint32_t len = std::min({avail, rwnd_room, static_cast<uint32_t>(t.snd_mss)});
            uint8_t flags = data_flags(t, t.snd_max, len, nullptr);
            int sent = send_segment(t, flags, t.snd_max, len, false);
            if (sent < 0) return false;
            if (sent == 0) break;
        }
    }
    return true;
}

bool TcpCore::output(Tcb& t) {
    switch (t.state) {
    case TcpState::Closed:
    case TcpState::Listen: return true;
    case TcpState::SynSent:
        if (t.snd_nxt == t.iss) return send_segment(t, kTcpSyn, t.iss, 0, t.syn_retries > 0) >= 0;
        return true;
    case TcpState::SynReceived:
        if (t.snd_nxt == t.iss)
            return send_segment(t, kTcpSyn | kTcpAck, t.iss, 0, t.syn_retries > 0) >= 0;
        if (t.ack_now) return send_ack(t);
        return true;
    case TcpState::TimeWait:
        if (t.ack_now) return send_ack(t);
        return true;
    default: break;
    }
    if (t.snd.capacity() == 0) {
        if (t.ack_now) return send_ack(t);
        return true;
    }

    if (t.in_recovery && t.sack_ok) {
        if (!sack_recovery_send(t)) return false;
    } else {
        // RFC 5681 4.1 / RFC 9438 restart after idle.
        if (t.snd_max == t.snd_una && t.last_send && now - t.last_send > t.rtt.rto() &&
            t.snd_data_end() > t.snd_nxt)
            t.cc.on_idle_restart(now, now - t.last_send, t.rtt.rto());
        for (;;) {
            skip_sacked(t);
            Seq data_end = t.snd_data_end();
            uint32_t avail = data_end > t.snd_nxt ? static_cast<uint32_t>(data_end - t.snd_nxt) : 0;
            if (avail == 0) break;
            int32_t usable = static_cast<int32_t>((t.snd_una + send_window(t)) - t.snd_nxt);
            // RFC 3042 limited transmit: two segments beyond cwnd on the first dupacks.
            if (!t.in_recovery && t.dupacks > 0 && t.dupacks < SackScoreboard::kDupThresh) {
                int32_t lt = static_cast<int32_t>((t.snd_una + std::min(t.snd_wnd,
                    t.cc.cwnd() + t.dupacks * t.snd_mss)) - t.snd_nxt);
                usable = std::max(usable, lt);
            }
            if (usable <= 0) {
                if (static_cast<int32_t>((t.snd_una + t.snd_wnd) - t.snd_nxt) <= 0)
                    maybe_arm_persist(t);
                break;
            }
            uint32_t len = std::min({avail, static_cast<uint32_t>(usable),
                                     static_cast<uint32_t>(t.snd_mss)});
            const bool rexmit = t.snd_nxt < t.snd_max;
            bool record_end = false;
            uint8_t flags = data_flags(t, t.snd_nxt, len, &record_end);
            if (!rexmit && !nagle_ok(t, len, avail, record_end)) {
                // SWS or cork: the override timeout (maybe_arm_persist waits while data
                // is in flight; its ACK runs output again).
                maybe_arm_persist(t);
                break;
            }
            Seq at = t.snd_nxt;
            int sent = send_segment(t, flags, at, len, rexmit);
            if (sent < 0) return false;
            if (sent == 0) break;
            if (rexmit && t.high_rxt < at + static_cast<uint32_t>(sent))
                t.high_rxt = at + static_cast<uint32_t>(sent);
        }
        // A FIN on its own: all data is out (first FIN, or again after an RTO).
        if (t.fin_queued && t.snd_nxt == t.snd_data_end() &&
            (!t.fin_sent || t.snd_nxt == t.fin_seq)) {
            if (send_segment(t, kTcpFin | kTcpAck, t.snd_nxt, 0, t.fin_sent) < 0) return false;
        }
    }
    if (t.ack_now) return send_ack(t);
    return true;
}

}  // namespace fastnet
