// Moves of a connection between processes (docs/DESIGN.md "Processes"): the owner's
// engine writes a connection's state and bytes out (export_connection), forgets it
// without a segment (release_exported), and the requesting process's engine builds it
// again (import_connection). interpose/xproc.cpp drives both sides.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <type_traits>

#include "stack/tcp/core.hpp"

namespace fastnet {

namespace {

static_assert(std::is_trivially_copyable_v<RttEstimator> &&
              sizeof(RttEstimator) <= sizeof(Engine::ConnState::rtt));
static_assert(std::is_trivially_copyable_v<Congestion> &&
              sizeof(Congestion) <= sizeof(Engine::ConnState::cc));

// States a connection can move in: open and synchronized, its close not yet asked for
// by any process (a shutdown(SHUT_WR) is fine: the FIN moves with it).
bool movable(const Tcb& t) {
    switch (t.state) {
    case TcpState::Established: case TcpState::CloseWait: case TcpState::FinWait1:
    case TcpState::FinWait2: case TcpState::Closing: case TcpState::LastAck:
        return !t.user_closed && !t.dead && t.listener == kNoSock;
    default:
        return false;
    }
}

}  // namespace

int Engine::export_connection(SockId s, ConnState* out, uint8_t* buf, size_t cap) const {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t || !movable(*t)) return -EINVAL;
    // The receiver's holes are not worth carrying: the peer fills them within an RTT.
    if (!t->ooo.empty()) return -EAGAIN;
    ConnState& o = *out;
    o = ConnState{};
    o.local = t->local;
    o.remote = t->remote;
    o.state = static_cast<uint8_t>(t->state);
    o.iss = t->iss.v; o.snd_una = t->snd_una.v; o.snd_nxt = t->snd_nxt.v; o.snd_max = t->snd_max.v;
    o.snd_wl1 = t->snd_wl1.v; o.snd_wl2 = t->snd_wl2.v;
    o.snd_wnd = t->snd_wnd; o.max_snd_wnd = t->max_snd_wnd;
    o.irs = t->irs.v; o.rcv_nxt = t->rcv_nxt.v; o.rcv_adv = t->rcv_adv.v;
    o.last_ack_sent = t->last_ack_sent.v; o.rcv_wnd = t->rcv_wnd;
    o.snd_wscale = t->snd_wscale; o.rcv_wscale = t->rcv_wscale;
    o.ws_ok = t->ws_ok; o.ts_ok = t->ts_ok; o.sack_ok = t->sack_ok;
    o.ts_recent = t->ts_recent; o.ts_offset = t->ts_offset; o.ts_recent_age = t->ts_recent_age;
    o.snd_mss = t->snd_mss; o.rcv_mss = t->rcv_mss; o.adv_mss = t->adv_mss; o.user_mss = t->user_mss;
    o.rcv_mss_est = t->rcv_mss_est;
    o.fin_queued = t->fin_queued; o.fin_sent = t->fin_sent; o.fin_acked = t->fin_acked;
    o.fin_rcvd = t->fin_rcvd; o.rd_shutdown = t->rd_shutdown; o.fin_seq = t->fin_seq.v;
    o.sndbuf = t->sndbuf; o.rcvbuf = t->rcvbuf;
    o.sndbuf_lock = t->sndbuf_lock; o.rcvbuf_lock = t->rcvbuf_lock;
    o.rcvq_space = t->rcvq_space; o.rcvq_copied = t->rcvq_copied; o.rcvq_time = t->rcvq_time;
    o.rcv_rtt = t->rcv_rtt; o.rcv_rtt_seq = t->rcv_rtt_seq.v; o.rcv_rtt_time = t->rcv_rtt_time;
    std::memcpy(o.rtt, &t->rtt, sizeof t->rtt);
    std::memcpy(o.cc, &t->cc, sizeof t->cc);
    o.total_retrans = t->total_retrans;
    o.last_send = t->last_send; o.last_recv = t->last_recv; o.una_since = t->una_since;
    o.pingpong = t->pingpong; o.data_rcvd = t->data_rcvd;
    o.nodelay = t->nodelay; o.keepalive = t->keepalive; o.reuseaddr = t->reuseaddr;
    o.reuseport = t->reuseport; o.linger_on = t->linger_on; o.cork = t->cork;
    o.linger_secs = t->linger_secs; o.so_error = t->so_error;
    o.keepidle = t->keepidle; o.keepintvl = t->keepintvl; o.user_timeout = t->user_timeout;
    o.keepcnt = t->keepcnt; o.notsent_lowat = t->notsent_lowat;
    // The ring holds [snd_buf_seq, snd_data_end); acknowledged bytes may still be in it.
    size_t skip = std::min<size_t>(static_cast<uint32_t>(t->snd_una - t->snd_buf_seq), t->snd.size());
    size_t snd = t->snd.size() - skip, rcv = t->rcv.size();
    if (snd + rcv > cap) return -ENOSPC;
    t->snd.copy_out(skip, buf, snd);
    t->rcv.copy_out(0, buf + snd, rcv);
    o.snd_len = static_cast<uint32_t>(snd);
    o.rcv_len = static_cast<uint32_t>(rcv);
    return static_cast<int>(snd + rcv);
}

void Engine::release_exported(SockId s) {
    TcpCore& c = *impl_;
    Tcb* t = c.get(s);
    if (!t) return;
    c.moved.push_back({FourTuple{t->local.ip, t->remote.ip, t->local.port, t->remote.port}, nullptr,
                       c.now + kMovedForwardNs});
    c.stats.moved_out++;
    // Its steering entry (if it came here from another engine) now names the new owner.
    t->moved_in = false;
    t->user_closed = true;
    t->state = TcpState::Closed;       // not a close: conn_closed is not counted
    c.unlink_work(*t);
    c.tcb_closed(*t);
    c.finish_api();
}

void Engine::expect_flow(Endpoint local, Endpoint remote) {
    TcpCore& c = *impl_;
    c.moved.push_back({FourTuple{local.ip, remote.ip, local.port, remote.port}, nullptr,
                       c.now + kMovedForwardNs});
}

int Engine::import_connection(const ConnState& in, const uint8_t* data) {
    TcpCore& c = *impl_;
    const FourTuple k{in.local.ip, in.remote.ip, in.local.port, in.remote.port};
    if (in.local.ip != c.cfg.ip) return -EINVAL;
    if (c.flows.find(k) != FlowTable::kEmpty) return -EEXIST;
    uint32_t h = c.pool.alloc();
    if (h == ObjectPool<Tcb>::kInvalid) return -ENOBUFS;
    Tcb& t = *c.pool.get(h);
    c.init_tcb(t, h);
    t.local = in.local;
    t.remote = in.remote;
    t.state = static_cast<TcpState>(in.state);
    t.connected_once = true;
    t.moved_in = true;                 // its exact steering entry goes when it is released
    t.iss = Seq(in.iss); t.snd_una = Seq(in.snd_una); t.snd_nxt = Seq(in.snd_nxt);
    t.snd_max = Seq(in.snd_max); t.snd_wl1 = Seq(in.snd_wl1); t.snd_wl2 = Seq(in.snd_wl2);
    t.snd_buf_seq = t.snd_una;
    t.snd_wnd = in.snd_wnd; t.max_snd_wnd = in.max_snd_wnd;
    t.irs = Seq(in.irs); t.rcv_nxt = Seq(in.rcv_nxt); t.rcv_adv = Seq(in.rcv_adv);
    t.last_ack_sent = Seq(in.last_ack_sent); t.rcv_wnd = in.rcv_wnd;
    t.snd_wscale = in.snd_wscale; t.rcv_wscale = in.rcv_wscale;
    t.ws_ok = in.ws_ok; t.ts_ok = in.ts_ok; t.sack_ok = in.sack_ok;
    t.ts_recent = in.ts_recent; t.ts_offset = in.ts_offset; t.ts_recent_age = in.ts_recent_age;
    t.snd_mss = in.snd_mss; t.rcv_mss = in.rcv_mss; t.adv_mss = in.adv_mss; t.user_mss = in.user_mss;
    t.rcv_mss_est = in.rcv_mss_est;
    t.fin_queued = in.fin_queued; t.fin_sent = in.fin_sent; t.fin_acked = in.fin_acked;
    t.fin_rcvd = in.fin_rcvd; t.rd_shutdown = in.rd_shutdown; t.fin_seq = Seq(in.fin_seq);
    std::memcpy(&t.rtt, in.rtt, sizeof t.rtt);
    std::memcpy(&t.cc, in.cc, sizeof t.cc);
    t.recover = t.snd_max;             // no recovery episode moves: SACK state starts over
    t.total_retrans = in.total_retrans;
    t.last_send = in.last_send; t.last_recv = in.last_recv; t.una_since = in.una_since;
    t.pingpong = in.pingpong; t.data_rcvd = in.data_rcvd;
    t.nodelay = in.nodelay; t.keepalive = in.keepalive; t.reuseaddr = in.reuseaddr;
    t.reuseport = in.reuseport; t.linger_on = in.linger_on; t.cork = in.cork;
    t.linger_secs = in.linger_secs; t.so_error = in.so_error;
    t.keepidle = in.keepidle; t.keepintvl = in.keepintvl; t.user_timeout = in.user_timeout;
    t.keepcnt = in.keepcnt; t.notsent_lowat = in.notsent_lowat;
    t.sndbuf_lock = in.sndbuf_lock; t.rcvbuf_lock = in.rcvbuf_lock;
    t.rcvq_space = in.rcvq_space; t.rcvq_copied = in.rcvq_copied; t.rcvq_time = in.rcvq_time;
    t.rcv_rtt = in.rcv_rtt; t.rcv_rtt_seq = Seq(in.rcv_rtt_seq); t.rcv_rtt_time = in.rcv_rtt_time;
    // Rings as big as they were, and never smaller than what they must hold.
    t.sndbuf = std::max<uint32_t>(in.sndbuf, in.snd_len);
    t.rcvbuf = std::max<uint32_t>(in.rcvbuf, in.rcv_len);
    c.alloc_buffers(t);
    if (t.snd.write(data, in.snd_len) != in.snd_len ||
        t.rcv.write(data + in.snd_len, in.rcv_len) != in.rcv_len ||
        !c.flow_insert(t)) {
        c.release_buffers(t);
        c.pool.free(h);
        return -ENOBUFS;
    }
    // Frames lost while the flow changed hands come back through retransmission: ours at
    // the RTO, the peer's answered by the ACK sent now.
    if (t.snd_nxt != t.snd_una || (t.fin_sent && !t.fin_acked)) t.rto_at = c.now + t.rtt.rto();
    if (t.keepalive) t.keepalive_at = c.now + t.keepidle;
    t.ack_now = true;
    c.stats.moved_in++;
    c.rearm(t);
    c.mark_output(t);
    c.mark_events(t);
    c.finish_api();
    return static_cast<int>(h);
}

}  // namespace fastnet
