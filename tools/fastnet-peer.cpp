// fastnet-peer: one engine on one AF_XDP socket, driven through the engine API directly
// (no interposition). The interop tests and benchmarks use it as fastnet's end of a TCP
// conversation with a kernel peer: bulk transfers from/to files and short connections.
// main() → Peer::start() (interface, UMEM, XSK, XDP program, neighbour cache, engine)
//        → run_server() / run_client() → Peer::pump() (poll the engine, sleep on its fds).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "stack/engine.hpp"
#include "stack/net/interface.hpp"
#include "stack/net/neighbour.hpp"
#include "stack/xdp/steering.hpp"
#include "stack/xdp/umem.hpp"
#include "stack/xdp/xsk_device.hpp"

using namespace fastnet;

namespace {

volatile sig_atomic_t g_stop = 0;

TimeNs now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return TimeNs(ts.tv_sec) * 1'000'000'000ull + TimeNs(ts.tv_nsec);
}

[[noreturn]] void die(const char* fmt, const char* a = "", const char* b = "") {
    fprintf(stderr, "fastnet-peer: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(1);
}

struct Options {
    std::string iface;
    bool server = false;
    uint16_t port = 0;
    Endpoint remote{};
    std::string send_file;      // bytes to send on each connection (then shut down writes)
    std::string recv_file;      // where the received bytes of the (first) connection go
    uint64_t conns = 1;         // client: connections to make, server: to accept (0 = forever)
    uint32_t parallel = 1;      // client: connections open at once
    uint32_t request = 0;       // short-connection mode: bytes sent, the same number expected back
    bool echo = false;          // server: echo what arrives, close after the peer's FIN
    bool linger0 = false;       // close with RST (SO_LINGER 0)
    bool abort_after_recv = false;
    double timeout_s = 60;
    bool stats = false;
    double msl_s = -1;          // override the engine's MSL (TIME_WAIT lasts 2*MSL)
};

void usage() {
    fprintf(stderr,
        "usage: fastnet-peer --iface IF server --port P [--echo] [--send F] [--recv F] [--conns N]\n"
        "       fastnet-peer --iface IF client --connect IP:PORT [--send F] [--recv F]\n"
        "                    [--conns N] [--parallel K] [--request BYTES]\n"
        "common: --timeout SECONDS  --linger0  --abort-after-recv  --msl SECONDS  --stats\n"
        "  --stats: print the engine's counters at the end, after waiting (up to 2*MSL + 1 s)\n"
        "  for every TCB to be gone.\n"
        "  server --echo: echo every connection's bytes back and close after its FIN.\n"
        "  --send F: send F's bytes on each connection, then shut down writing.\n"
        "  --recv F: write the first connection's received bytes to F.\n"
        "  client --request B: each connection sends B bytes and waits for B bytes back.\n");
    exit(2);
}

uint64_t parse_u64(const char* s, const char* what) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || end == s) die("bad %s: '%s'", what, s);
    return v;
}

Options parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* { if (i + 1 >= argc) usage(); return argv[++i]; };
        if (a == "--iface") o.iface = next();
        else if (a == "server") o.server = true;
        else if (a == "client") o.server = false;
        else if (a == "--port") o.port = uint16_t(parse_u64(next(), "port"));
        else if (a == "--connect") {
            std::string hp = next();
            auto colon = hp.rfind(':');
            in_addr ip{};
            if (colon == std::string::npos || inet_pton(AF_INET, hp.substr(0, colon).c_str(), &ip) != 1)
                die("bad --connect '%s' (want IPv4:PORT)", hp.c_str());
            o.remote = {ntohl(ip.s_addr), uint16_t(parse_u64(hp.c_str() + colon + 1, "port"))};
        }
        else if (a == "--send") o.send_file = next();
        else if (a == "--recv") o.recv_file = next();
        else if (a == "--conns") o.conns = parse_u64(next(), "--conns");
        else if (a == "--parallel") o.parallel = uint32_t(parse_u64(next(), "--parallel"));
        else if (a == "--request") o.request = uint32_t(parse_u64(next(), "--request"));
        else if (a == "--echo") o.echo = true;
        else if (a == "--linger0") o.linger0 = true;
        else if (a == "--abort-after-recv") o.abort_after_recv = true;
        else if (a == "--timeout") o.timeout_s = atof(next());
        else if (a == "--stats") o.stats = true;
        else if (a == "--msl") o.msl_s = atof(next());
        else usage();
    }
    if (o.iface.empty()) die("--iface is required");
    if (o.server && o.port == 0) die("server needs --port");
    if (!o.server && o.remote.port == 0) die("client needs --connect");
    if (o.parallel == 0) o.parallel = 1;
    return o;
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::vector<uint8_t> data;
    if (path.empty()) return data;
    FILE* f = fopen(path.c_str(), "rb");
    if (!f) die("cannot open %s: %s", path.c_str(), strerror(errno));
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) data.insert(data.end(), buf, buf + n);
    fclose(f);
    return data;
}

// Everything one engine on the interface needs, brought up in dependency order and torn
// down in reverse by the destructors (the bpf_link goes with the Steering object).
class Peer {
public:
    void start(const Options& o) {
        InterfaceInfo ifc;
        if (find_interface(o.iface.c_str(), &ifc) < 0) die("no interface %s", o.iface.c_str());
        if (int r = engine_config_from_kernel(ifc, &cfg_); r < 0)
            die("%s has no IPv4/Ethernet address: %s", o.iface.c_str(), strerror(-r));
        if (o.msl_s >= 0) cfg_.msl = TimeNs(o.msl_s * 1e9);
        cfg_.slot = 0;
        cfg_.nslots = 1;
        getrandom(cfg_.isn_secret, sizeof cfg_.isn_secret, 0);
        raise_memlock_limit();
        if (umem_.create({}) < 0) die("UMEM: %s", umem_.error());
        XskConfig xc;
        xc.ifname = ifc.name;
        if (zerocopy_mode_from_env(&xc.zerocopy, msg_, sizeof msg_) < 0) die("%s", msg_);
        if (dev_.open(umem_, xc) < 0) die("XSK: %s", dev_.error());
        if (steer_.attach(ifc.ifindex, XdpAttachMode::Native) < 0) die("XDP: %s", steer_.error());
        steer_.set_local_ip(htonl(cfg_.ip));
        steer_.set_active_range(cfg_.port_base, cfg_.port_count, 1);
        if (steer_.set_xsk(0, dev_.fd()) < 0) die("XSKMAP: %s", steer_.error());
        if (nb_.open(ifc.ifindex) < 0) die("neighbour cache on %s failed", ifc.name);
        engine_ = std::make_unique<Engine>(cfg_, dev_, nb_);
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{EPOLLIN, {}};
        epoll_ctl(ep_, EPOLL_CTL_ADD, dev_.fd(), &ev);
        epoll_ctl(ep_, EPOLL_CTL_ADD, nb_.fd(), &ev);
        fprintf(stderr, "fastnet-peer: %s %s mode, ip %s\n", ifc.name,
                to_string(dev_.mode()), inet_ntoa(in_addr{htonl(cfg_.ip)}));
    }

    // Keeps kernel sockets off a port fastnet listens on: a bound kernel socket owns it.
    void hold_port(uint16_t port) {
        hold_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        if (bind(hold_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
            die("port %s is taken in the kernel: %s", std::to_string(port).c_str(), strerror(errno));
        if (steer_.add_listen_slot(port, 0) < 0) die("listen map: %s", steer_.error());
    }

    // One engine round; sleeps on the device and netlink fds when `idle` and the engine
    // has nothing due before then.
    void pump(bool idle) {
        TimeNs now = now_ns();
        nb_.poll_updates(now);
        engine_->poll(now);
        if (!idle) return;
        TimeNs next = engine_->next_deadline();
        int timeout_ms = 10;
        if (next != ~0ull) {
            TimeNs now2 = now_ns();
            timeout_ms = next <= now2 ? 0 : int(std::min<TimeNs>((next - now2) / 1'000'000 + 1, 10));
        }
        if (timeout_ms == 0) return;
        epoll_event evs[2];
        epoll_wait(ep_, evs, 2, timeout_ms);
    }

    // Lets the last FINs, ACKs and TIME_WAITs finish before the XSK disappears: at most
    // 300 ms, or 2*MSL + 1 s under --stats (whose live_tcbs must then read 0).
    void drain(const Options& o) {
        TimeNs wait = o.stats ? 2 * cfg_.msl + 1'000'000'000 : 300'000'000;
        TimeNs until = now_ns() + wait;
        while (now_ns() < until && engine_->live_tcbs() > 0) pump(true);
    }

    Engine& engine() { return *engine_; }
    const XskDevice& device() const { return dev_; }

    ~Peer() {
        engine_.reset();
        if (hold_fd_ >= 0) close(hold_fd_);
        if (ep_ >= 0) close(ep_);
    }

private:
    EngineConfig cfg_{};
    Umem umem_;
    XskDevice dev_;
    Steering steer_;
    NeighbourCache nb_;
    std::unique_ptr<Engine> engine_;
    int ep_ = -1;
    int hold_fd_ = -1;
    char msg_[256] = {};
};

// One connection's progress in either direction.
struct Conn {
    SockId id = kNoSock;
    size_t sent = 0;
    uint64_t received = 0;
    bool write_shut = false;
    bool peer_fin = false;
    bool connected = false;
    bool first = false;         // the connection whose bytes go to --recv
    std::vector<uint8_t> echo_buf;
    TimeNs started = 0;
};

struct Totals {
    uint64_t done = 0, failed = 0, bytes_in = 0, bytes_out = 0;
};

void set_linger0(Engine& e, SockId s) {
    linger l{1, 0};
    e.setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// Moves a connection forward without blocking. Returns true when it is finished (both
// directions done), false while it still has work; failures are counted in t.
bool drive(Engine& e, Conn& c, const Options& o, const std::vector<uint8_t>& out,
           FILE* sink, Totals& t) {
    uint8_t buf[64 * 1024];
    for (;;) {
        ssize_t n = e.recv(c.id, buf, sizeof buf, 0);
        if (n > 0) {
            c.received += uint64_t(n);
            t.bytes_in += uint64_t(n);
            if (sink) fwrite(buf, 1, size_t(n), sink);
            if (o.echo) c.echo_buf.insert(c.echo_buf.end(), buf, buf + n);
            continue;
        }
        if (n == 0) { c.peer_fin = true; break; }
        if (n == -EAGAIN) break;
        t.failed++;
        fprintf(stderr, "fastnet-peer: recv: %s\n", strerror(int(-n)));
        return true;
    }
    const uint8_t* src = o.echo ? c.echo_buf.data() : out.data();
    size_t total = o.echo ? c.echo_buf.size() : out.size();
    while (c.sent < total) {
        ssize_t n = e.send(c.id, src + c.sent, total - c.sent, 0);
        if (n == -EAGAIN) break;
        if (n < 0) {
            t.failed++;
            fprintf(stderr, "fastnet-peer: send: %s\n", strerror(int(-n)));
            return true;
        }
        c.sent += size_t(n);
        t.bytes_out += uint64_t(n);
    }
    if (o.echo && c.sent == c.echo_buf.size()) { c.echo_buf.clear(); c.sent = 0; }
    bool out_done = o.echo ? (c.peer_fin && c.echo_buf.empty()) : c.sent == total;
    if (out_done && !c.write_shut && !o.linger0 && !o.abort_after_recv) {
        e.shutdown(c.id, SHUT_WR);
        c.write_shut = true;
    }
    if (o.request && !o.server) return c.received >= o.request;
    return c.peer_fin && out_done;
}

int run_server(Peer& p, const Options& o) {
    Engine& e = p.engine();
    int ls = e.socket();
    if (ls < 0) die("socket: %s", strerror(-ls));
    if (int r = e.bind(SockId(ls), {0, o.port}); r < 0) die("bind: %s", strerror(-r));
    if (int r = e.listen(SockId(ls), 1024); r < 0) die("listen: %s", strerror(-r));
    p.hold_port(o.port);
    printf("listening %u\n", o.port);
    fflush(stdout);
    std::vector<uint8_t> out = read_file(o.send_file);
    FILE* sink = o.recv_file.empty() ? nullptr : fopen(o.recv_file.c_str(), "wb");
    std::vector<Conn> conns;
    Totals t;
    uint64_t accepted = 0;
    TimeNs deadline = now_ns() + TimeNs(o.timeout_s * 1e9);
    while (!g_stop && (o.conns == 0 || t.done + t.failed < o.conns)) {
        if (now_ns() > deadline) { fprintf(stderr, "fastnet-peer: timeout\n"); break; }
        bool busy = false;
        for (;;) {
            Endpoint peer;
            int s = e.accept(SockId(ls), &peer);
            if (s < 0) break;
            busy = true;
            accepted++;
            Conn c;
            c.id = SockId(s);
            c.first = accepted == 1;
            if (o.linger0) set_linger0(e, c.id);
            conns.push_back(std::move(c));
        }
        for (size_t i = 0; i < conns.size();) {
            if (drive(e, conns[i], o, out, conns[i].first ? sink : nullptr, t)) {
                if (o.abort_after_recv) e.abort(conns[i].id); else e.close(conns[i].id);
                t.done++;
                conns[i] = std::move(conns.back());
                conns.pop_back();
                busy = true;
            } else ++i;
        }
        p.pump(!busy);
    }
    for (auto& c : conns) e.close(c.id);
    e.close(SockId(ls));
    p.drain(o);
    if (sink) fclose(sink);
    printf("server done=%" PRIu64 " failed=%" PRIu64 " bytes_in=%" PRIu64 " bytes_out=%" PRIu64 "\n",
           t.done, t.failed, t.bytes_in, t.bytes_out);
    return t.failed ? 1 : 0;
}

int run_client(Peer& p, const Options& o) {
    Engine& e = p.engine();
    std::vector<uint8_t> out = o.request ? std::vector<uint8_t>(o.request, 'q') : read_file(o.send_file);
    FILE* sink = o.recv_file.empty() ? nullptr : fopen(o.recv_file.c_str(), "wb");
    std::vector<Conn> conns;
    Totals t;
    uint64_t started = 0;
    TimeNs t0 = now_ns(), deadline = t0 + TimeNs(o.timeout_s * 1e9);
    while (!g_stop && t.done + t.failed < o.conns) {
        if (now_ns() > deadline) { fprintf(stderr, "fastnet-peer: timeout\n"); break; }
        bool busy = false;
        while (started < o.conns && conns.size() < o.parallel) {
            e.set_time(now_ns());   // the SYN's timestamp and send time read the clock
            int s = e.socket();
            if (s < 0) die("socket: %s", strerror(-s));
            int r = e.connect(SockId(s), o.remote);
            if (r < 0 && r != -EINPROGRESS) {
                fprintf(stderr, "fastnet-peer: connect: %s\n", strerror(-r));
                e.close(SockId(s));
                t.failed++;
                started++;
                continue;
            }
            Conn c;
            c.id = SockId(s);
            c.started = now_ns();
            c.first = started == 0;
            if (o.linger0) set_linger0(e, c.id);
            conns.push_back(std::move(c));
            started++;
            busy = true;
        }
        for (size_t i = 0; i < conns.size();) {
            Conn& c = conns[i];
            uint32_t ev = e.events(c.id);
            bool finished = false;
            if (!c.connected) {
                if (ev & (EPOLLERR | EPOLLHUP)) {
                    int err = 0;
                    socklen_t len = sizeof err;
                    e.getsockopt(c.id, SOL_SOCKET, SO_ERROR, &err, &len);
                    fprintf(stderr, "fastnet-peer: connect failed: %s\n", strerror(err));
                    t.failed++;
                    e.close(c.id);
                    finished = true;
                } else if (ev & EPOLLOUT) {
                    c.connected = true;
                }
            }
            if (!finished && c.connected && drive(e, c, o, out, c.first ? sink : nullptr, t)) {
                if (o.abort_after_recv) e.abort(c.id); else e.close(c.id);
                t.done++;
                finished = true;
            }
            if (finished) {
                conns[i] = std::move(conns.back());
                conns.pop_back();
                busy = true;
            } else ++i;
        }
        p.pump(!busy);
    }
    double secs = double(now_ns() - t0) / 1e9;
    p.drain(o);
    if (sink) fclose(sink);
    printf("client done=%" PRIu64 " failed=%" PRIu64 " bytes_in=%" PRIu64 " bytes_out=%" PRIu64
           " seconds=%.3f conn_per_s=%.0f gbit_per_s=%.3f\n",
           t.done, t.failed, t.bytes_in, t.bytes_out, secs, double(t.done) / secs,
           double(t.bytes_in + t.bytes_out) * 8 / secs / 1e9);
    return (t.failed || t.done < o.conns) ? 1 : 0;
}

void print_stats(Peer& p) {
    const EngineStats& s = p.engine().stats();
    printf("stats frames_rx=%" PRIu64 " frames_tx=%" PRIu64 " opened=%" PRIu64 " accepted=%" PRIu64
           " closed=%" PRIu64 " reset=%" PRIu64 " retransmits=%" PRIu64 " rx_csum_partial=%" PRIu64
           " rcvbuf_grown=%" PRIu64 " sndbuf_grown=%" PRIu64
           " live_tcbs=%zu",
           s.frames_rx, s.frames_tx, s.conn_opened, s.conn_accepted, s.conn_closed, s.conn_reset,
           s.retransmits, s.rx_csum_partial, s.rcvbuf_grown, s.sndbuf_grown, p.engine().live_tcbs());
    for (int i = 0; i < int(Drop::Count_); ++i)
        if (s.drops[i]) printf(" drop_%s=%" PRIu64, drop_reason_name(Drop(i)), s.drops[i]);
    printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_args(argc, argv);
    signal(SIGINT, [](int) { g_stop = 1; });
    signal(SIGTERM, [](int) { g_stop = 1; });
    signal(SIGPIPE, SIG_IGN);
    Peer p;
    p.start(o);
    int rc = o.server ? run_server(p, o) : run_client(p, o);
    if (o.stats) print_stats(p);
    fflush(stdout);
    return rc;
}
