// Passive open: a listener's SYN queue (half-open children in SynReceived), its accept
// queue, and SYN cookies when the SYN queue is full (RFC 4987 3.6).
// input.cpp rx_frame() → listen_input(); input() SynReceived → child_established();
// Engine::accept() → accept_dequeue().
#include <algorithm>
#include <cerrno>

#include "stack/tcp/core.hpp"

namespace fastnet {

Tcb* TcpCore::next_in_group(const Tcb& l) const {
    if (l.group_next == kNoSock) return nullptr;
    Tcb* t = const_cast<ObjectPool<Tcb>&>(pool).get(l.group_next);
    return t && t->state == TcpState::Listen ? t : nullptr;
}

Tcb* TcpCore::listen_head(uint16_t port) const {
    SockId id = listen_by_port[port];
    if (id == kNoSock) return nullptr;
    Tcb* head = const_cast<ObjectPool<Tcb>&>(pool).get(id);
    return head && head->state == TcpState::Listen ? head : nullptr;
}

Tcb* TcpCore::find_listener(uint16_t port, uint32_t remote_ip, uint16_t remote_port) const {
    Tcb* head = listen_head(port);
    if (!head || head->group_next == kNoSock) return head;
    uint32_t n = 0;
    for (const Tcb* t = head; t; t = next_in_group(*t)) ++n;
    uint32_t h = (remote_ip ^ (uint32_t(remote_port) << 16 | remote_port)) * 0x9e3779b1u;
    uint32_t pick = (h >> 16) % n;
    Tcb* t = head;
    while (pick--) t = next_in_group(*t);
    return t;
}

Tcb* TcpCore::new_child(Tcb& l, uint32_t local_ip, uint32_t remote_ip, const TcpView& seg) {
    uint32_t h = pool.alloc();
    if (h == ObjectPool<Tcb>::kInvalid) {
        stats.drops[static_cast<int>(Drop::NoBuffer)]++;
        return nullptr;
    }
    Tcb& c = *pool.get(h);
    init_tcb(c, h);
    c.accepted = false;
    c.connected_once = true;
    c.listener = l.id;
    // Options a child inherits from its listener (as Linux does).
    c.nodelay = l.nodelay;
    c.keepalive = l.keepalive;
    c.keepidle = l.keepidle;
    c.keepintvl = l.keepintvl;
    c.keepcnt = l.keepcnt;
    c.linger_on = l.linger_on;
    c.linger_secs = l.linger_secs;
    c.sndbuf = l.sndbuf;
    c.rcvbuf = l.rcvbuf;
    c.sndbuf_lock = l.sndbuf_lock;
    c.rcvbuf_lock = l.rcvbuf_lock;
    c.user_mss = l.user_mss;
    c.cork = l.cork;
    c.notsent_lowat = l.notsent_lowat;
    c.user_timeout = l.user_timeout;
    c.local = {local_ip, seg.dst_port};
    c.remote = {remote_ip, seg.src_port};
    c.rcv_wscale = wscale_for(rcvbuf_ceiling(c));
    return &c;
}

void TcpCore::listen_input(Tcb& l, const TcpView& seg, uint32_t src_ip, uint32_t dst_ip) {
    // RFC 9293 3.10.7.2, LISTEN: a RST is ignored, but counted like every other drop.
    if (seg.has(kTcpRst)) {
        stats.drops[static_cast<int>(Drop::Other)]++;
        return;
    }
    const FourTuple k{dst_ip, src_ip, seg.dst_port, seg.src_port};
    if (seg.has(kTcpAck)) {
        if (!seg.has(kTcpSyn)) {
            // RFC 4987 3.6: the ACK completing a cookie handshake carries our state.
            auto mss = syncookie_check(secret, k, seg.seq.v - 1, seg.ack.v - 1, now);
            if (mss && static_cast<int>(l.accept_queue_len) < l.backlog) {
                Tcb* c = new_child(l, dst_ip, src_ip, seg);
                if (!c) return;
                c->irs = seg.seq - 1;
                c->rcv_nxt = seg.seq;
                c->iss = seg.ack - 1;
                c->snd_una = c->snd_nxt = c->snd_max = seg.ack;
                c->snd_buf_seq = seg.ack;
                c->recover = c->iss;
                c->rcv_mss = *mss;
                c->ws_ok = c->ts_ok = c->sack_ok = false;   // not encoded in the cookie
                c->snd_wscale = c->rcv_wscale = 0;
                setup_mss(*c);
                c->snd_wnd = seg.window;
                c->max_snd_wnd = seg.window;
                c->snd_wl1 = seg.seq;
                c->snd_wl2 = seg.ack;
                c->rcv_wnd = std::min<uint32_t>(l.rcvbuf, 65535);   // what the SYN-ACK offered
                c->rcv_adv = c->rcv_nxt + c->rcv_wnd;
                c->last_ack_sent = c->rcv_nxt;
                if (!alloc_buffers(*c) || !flow_insert(*c)) {
                    release_buffers(*c);
                    c->state = TcpState::Closed;
                    reap_now(*c);
                    return;
                }
                set_state(*c, TcpState::Established);
                c->cc.init(c->snd_mss, now);
                c->last_recv = now;
                arm_keepalive(*c);
                accept_enqueue(l, *c);
                // The ACK may carry data: run it through the established path.
                if (seg.payload_len || seg.has(kTcpFin)) input(*c, seg);
                return;
            }
        }
        // An ACK to a listener (RFC 9293 3.10.7.2): <SEQ=SEG.ACK><CTL=RST>.
        stats.drops[static_cast<int>(Drop::NoSocket)]++;
        send_rst_raw(dst_ip, seg.dst_port, src_ip, seg.src_port, seg.ack, Seq(0), kTcpRst);
        return;
    }
    if (!seg.has(kTcpSyn)) {
        stats.drops[static_cast<int>(Drop::Other)]++;
        return;
    }
    if (static_cast<int>(l.accept_queue_len) >= l.backlog) {
        // Linux drops the SYN when the accept queue is full; the peer retries.
        stats.drops[static_cast<int>(Drop::BacklogFull)]++;
        return;
    }
    if (l.syn_queue_len >= cfg.syn_backlog) {
        // RFC 4987 3.6: no state; the ISN encodes MSS, time and the 4-tuple.
        uint16_t peer_mss = seg.opts.mss ? *seg.opts.mss : kDefaultMss;
        uint16_t mss = std::min<uint16_t>(peer_mss, static_cast<uint16_t>(cfg.mtu - 40));
        uint32_t cookie = syncookie_make(secret, k, seg.seq.v, mss, now);
        uint8_t idx = syncookie_mss_index(mss);
        TcpOptions o;
        o.mss = kSyncookieMss[idx];
        send_raw(dst_ip, seg.dst_port, src_ip, seg.src_port, Seq(cookie), seg.seq + 1,
                 kTcpSyn | kTcpAck, static_cast<uint16_t>(std::min<uint32_t>(l.rcvbuf, 65535)), &o);
        stats.syn_cookies_sent++;
        return;
    }
    Tcb* c = new_child(l, dst_ip, src_ip, seg);
    if (!c) return;
    c->irs = seg.seq;
    c->rcv_nxt = seg.seq + 1;
    c->rcv_adv = c->rcv_nxt;
    c->last_ack_sent = c->rcv_nxt;
    parse_syn_options(*c, seg.opts);
    c->iss = Seq(isn_rfc6528(secret, k, now));
    c->snd_una = c->snd_nxt = c->snd_max = c->iss;
    c->snd_buf_seq = c->iss + 1;
    c->recover = c->iss;
    c->snd_wnd = seg.window;   // RFC 7323 2.2: a SYN's window is never scaled
    c->snd_wl1 = seg.seq;
    c->snd_wl2 = c->iss;
    c->last_recv = now;
    c->ts_offset = ts_offset(secret, k.local_ip, k.remote_ip);
    if (!flow_insert(*c)) {
        c->state = TcpState::Closed;
        reap_now(*c);
        return;
    }
    set_state(*c, TcpState::SynReceived);
    c->in_syn_queue = true;
    l.syn_queue_len++;
    mark_output(*c);
}

void TcpCore::child_established(Tcb& c) {
    Tcb* l = pool.get(c.listener);
    if (c.in_syn_queue) {
        c.in_syn_queue = false;
        if (l) l->syn_queue_len--;
    }
    if (!l || l->state != TcpState::Listen) {
        abort_tcb(c);
        return;
    }
    arm_keepalive(c);
    accept_enqueue(*l, c);
}

void TcpCore::accept_enqueue(Tcb& l, Tcb& c) {
    c.accept_link.linked = true;
    c.accept_link.next = nullptr;
    c.accept_link.prev = l.accept_tail;
    if (l.accept_tail) l.accept_tail->accept_link.next = &c;
    else l.accept_head = &c;
    l.accept_tail = &c;
    l.accept_queue_len++;
    mark_events(l);
}

void TcpCore::listener_unlink_child(Tcb& c) {
    Tcb* l = pool.get(c.listener);
    if (c.in_syn_queue) {
        c.in_syn_queue = false;
        if (l) l->syn_queue_len--;
    }
    if (c.accept_link.linked && l) {
        Tcb* p = c.accept_link.prev;
        Tcb* n = c.accept_link.next;
        if (p) p->accept_link.next = n;
        else l->accept_head = n;
        if (n) n->accept_link.prev = p;
        else l->accept_tail = p;
        l->accept_queue_len--;
    }
    c.accept_link = TcbLink{};
    c.listener = kNoSock;
}

Tcb* TcpCore::accept_dequeue(Tcb& l) {
    Tcb* c = l.accept_head;
    if (!c) return nullptr;
    listener_unlink_child(*c);
    c->accepted = true;
    stats.conn_accepted++;
    return c;
}

void TcpCore::close_listener(Tcb& l) {
    // Children still queued die with the listener: established ones get a RST.
    for (uint32_t i = 0; i < pool.capacity(); ++i) {
        Tcb* c = pool.at_index(i);
        if (!c || c == &l || c->accepted || c->listener != l.id) continue;
        // Out of the queue first: tcb_closed() keeps a queued child for accept().
        listener_unlink_child(*c);
        if (c->state == TcpState::Closed) reap(*c);   // reset while queued
        else abort_tcb(*c);
    }
    // Out of the port's SO_REUSEPORT group; the others go on serving.
    if (listen_by_port[l.local.port] == l.id) {
        listen_by_port[l.local.port] = l.group_next;
    } else if (Tcb* p = listen_head(l.local.port)) {
        while (p && p->group_next != l.id) p = next_in_group(*p);
        if (p) p->group_next = l.group_next;
    }
    l.group_next = kNoSock;
}

}  // namespace fastnet
