// The accelerated runtime: finds the interface (stack/net), creates the shared UMEM and
// attaches the XDP steering program (stack/xdp), then builds one engine per thread with
// its own XSK, neighbour cache and XSKMAP slot. A progress thread keeps engines that no
// application thread polls acking, retransmitting and firing timers.
// fs::socket() → Runtime::start() → thread_engine(); fs::* and epoll → pump().
#include "interpose/runtime.hpp"

#include <arpa/inet.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <memory>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "interpose/accel.hpp"
#include "interpose/config.hpp"
#include "interpose/counters.hpp"
#include "interpose/fastsock.hpp"
#include "interpose/passing.hpp"
#include "interpose/libc.hpp"
#include "interpose/xproc.hpp"
#include "stack/handover.hpp"
#include "stack/net/interface.hpp"
#include "stack/net/neighbour.hpp"
#include "stack/net/route.hpp"
#include "stack/tcp/isn.hpp"
#include "stack/xdp/fastnetd_proto.hpp"
#include "stack/xdp/steering.hpp"
#include "stack/xdp/umem.hpp"
#include "stack/xdp/xsk_device.hpp"
#include "stack/xdp/xsk_queues.hpp"

namespace fastnet::ipose {

namespace {

// Engines of one process; threads beyond this share engines (under the engine lock).
constexpr int kMaxEngines = 8;
// Slots (XSKMAP indexes) of all processes on the interface: forked workers each claim
// theirs from the shared UMEM. The active-open port range is split by slot.
constexpr uint32_t kSlots = 16;
static_assert(kSlots <= kUmemSlots && kSlots <= FASTNET_MAX_SLOTS);
// A listener accepted on this recently is watched: a fork leaves it on its port.
constexpr uint64_t kAcceptedRecentlyNs = 1'000'000'000;
// How often the progress thread looks for slots of processes that died.
constexpr uint64_t kReapNs = 250'000'000;
// How long an engine may go unpolled before the progress thread polls it.
constexpr uint64_t kProgressNs = 2'000'000;
constexpr uint64_t kPublishNs = 10'000'000;
// How often an engine drains the kernel's neighbour and route notifications (a non-blocking
// recvfrom on its netlink socket): once per poll was one system call per connection for
// a short-connection server. A changed MAC or route is applied within this much.
constexpr uint64_t kNeighbourNs = 1'000'000;
// How long an exiting process waits for the peers to acknowledge what is in flight before
// it hands what is left to the kernel (Runtime::at_exit).
constexpr uint64_t kExitDrainNs = 50'000'000;
constexpr uint64_t kExitLockNs = 200'000'000;
// How long a thread trusts a route lookup (Runtime::reaches).
constexpr uint64_t kRouteCacheNs = 1'000'000'000;

struct EngineBox {
    RtEngine rt;
    XskQueues dev;
    NeighbourCache nb;
    std::unique_ptr<Engine> engine;
    uint64_t last_publish = 0;
    uint64_t last_neighbours = 0;      // the last drain of the neighbour notifications
    uint64_t published_rx[kMaxXskQueues] = {};   // per queue, already in the counters
};

// Adds what each queue received since the last call to the process's counters.
void publish_queues(EngineBox* b) {
    SharedCounters* c = counters();
    if (!c) return;
    for (uint32_t q = 0; q < b->dev.queues() && q < 16; ++q) {
        uint64_t now = b->dev.queue(q).stats().rx_frames;
        c->queue_rx_frames[q].fetch_add(now - b->published_rx[q], std::memory_order_relaxed);
        b->published_rx[q] = now;
    }
}

struct State {
    std::mutex mu;
    int started = 0;                   // 0 not tried, 1 running, -1 failed
    // The process these engines belong to. A vfork() child shares this memory without
    // fork handlers: its execve() or _exit() must not close the parent's sockets.
    pid_t pid = 0;
    InterfaceInfo ifc;
    EngineConfig base;
    // One UMEM per RX queue served (queue q's XSKs share umem[q]); umem[0] also holds
    // what the process tree shares about slots: the slot table, the control lock and
    // the displacement counts.
    Umem umem[kMaxXskQueues];
    uint32_t nqueues = 1;
    Steering steering;
    EngineBox* boxes[kMaxEngines] = {};
    std::atomic<int> nboxes{0};
    unsigned next_share = 0;
    int spare = 0;                     // the last `spare` boxes belong to no thread yet
    // A forked child: the parent's pid and slots, which the child's engine displaces
    // from a port when it adopts an inherited listener (Runtime::adopted_listener).
    pid_t parent_pid = 0;
    uint32_t parent_slots[kMaxEngines] = {};
    int nparent_slots = 0;
    bool progress_running = false;     // in this process (a forked child starts its own)
    // fastnetd (stack/xdp/fastnetd_proto.hpp): the connection this process asks for
    // sockets on (a forked child makes its own), or -1 when standalone.
    bool via_daemon = false;
    int daemon_fd = -1;
    pid_t daemon_pid = 0;
    pthread_t progress{};
};

State& st() {
    static State* s = new State();     // never destroyed: engines outlive static destructors
    return *s;
}

// Steering edits of all processes on the interface go through the UMEM's process-shared
// control lock (a port's slot set is read, changed and written back).
struct SteerLock {
    SteerLock() { st().umem[0].control_lock(); }
    ~SteerLock() { st().umem[0].control_unlock(); }
    SteerLock(const SteerLock&) = delete;
    SteerLock& operator=(const SteerLock&) = delete;
};

thread_local RtEngine* tl_engine __attribute__((tls_model("initial-exec"))) = nullptr;
// Engines this thread left unkicked frames in (note_tx / flush_deferred).
thread_local RtEngine* tl_dirty[kMaxEngines];
thread_local int tl_ndirty = 0;

// Keeps the kernel from handing fastnet's active-open ports to its own sockets: their
// replies would be steered to an engine. Per network namespace; needs root.
void reserve_ports(uint16_t base, uint16_t count) {
    const char* path = "/proc/sys/net/ipv4/ip_local_reserved_ports";
    char cur[4096] = {};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = real().read(fd, cur, sizeof cur - 1);
        real().close(fd);
        if (n > 0) cur[n] = 0;
    }
    char range[32];
    snprintf(range, sizeof range, "%u-%u", base, base + count - 1);
    if (strstr(cur, range)) return;
    char next[4200];
    size_t len = strcspn(cur, "\n");
    cur[len] = 0;
    snprintf(next, sizeof next, "%s%s%s", cur, len ? "," : "", range);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || real().write(fd, next, strlen(next)) < 0)
        log(LogLevel::Warn, "cannot reserve ports %s in the kernel (%s): kernel sockets may "
                            "collide with fastnet's active opens", range, strerror(errno));
    if (fd >= 0) real().close(fd);
}

// A number from a sysctl file, or `fallback` when it cannot be read.
uint32_t read_sysctl_u32(const char* path, uint32_t fallback) {
    char buf[32] = {};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fallback;
    ssize_t n = real().read(fd, buf, sizeof buf - 1);
    real().close(fd);
    if (n <= 0) return fallback;
    char* end = nullptr;
    unsigned long v = strtoul(buf, &end, 10);
    return end != buf && v > 0 && v <= 0x7fffffffu ? static_cast<uint32_t>(v) : fallback;
}

// Slots whose process died (a killed worker): their frames back to the pool, their
// ports and flows no longer steered to a socket nobody reads.
void reap_dead_slots() {
    State& s = st();
    uint32_t dead[kSlots];
    uint32_t frames = 0;
    uint32_t n = s.umem[0].reap_dead_slots(kSlots, dead, &frames);
    for (uint32_t i = 0; i < n; ++i)
        for (uint32_t q = 1; q < s.nqueues; ++q) frames += s.umem[q].reclaim(static_cast<uint8_t>(dead[i] + 1));
    if (n)
        if (SharedCounters* c = counters()) c->frames_reclaimed.fetch_add(frames, std::memory_order_relaxed);
    for (uint32_t i = 0; i < n; ++i) {
        {
            SteerLock g;
            s.steering.forget_slot(dead[i]);
        }
        if (SharedCounters* c = counters()) c->slots_reaped.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::Info, "slot %u: its process is gone; slot, %u frames and steering reclaimed",
            dead[i], frames);
    }
}

void* progress_main(void*) {
    // This thread is fastnet's own: everything it calls goes straight to libc.
    ++detail::depth;
    uint64_t last_reap = 0;
    for (;;) {
        timespec ts{0, static_cast<long>(kProgressNs)};
        nanosleep(&ts, nullptr);
        State& s = st();
        int n = s.nboxes.load(std::memory_order_acquire);
        for (int i = 0; i < n; ++i) pump(&s.boxes[i]->rt, false);
        for (int i = 0; i < n; ++i) {
            RtEngine& e = s.boxes[i]->rt;
            uint32_t d = s.umem[0].displaced(static_cast<uint32_t>(e.slot));
            if (d != e.displaced_seen) {
                e.displaced_seen = d;
                fs::listeners_displaced(&e);
            }
        }
        if (uint64_t now = now_ns(); now - last_reap > kReapNs) {
            last_reap = now;
            reap_dead_slots();
            if (SharedCounters* c = counters()) {
                uint64_t frames = 0, free = 0;
                for (uint32_t q = 0; q < s.nqueues; ++q) {
                    frames += s.umem[q].frame_count();
                    free += s.umem[q].free_frames() + s.umem[q].fill_level();
                }
                c->umem_frames.store(frames, std::memory_order_relaxed);
                c->umem_frames_free.store(free, std::memory_order_relaxed);
                c->queues.store(s.nqueues, std::memory_order_relaxed);
            }
        }
    }
    return nullptr;
}

// Started with the process's first engine (in a forked child too).
void start_progress(State& s) {
    if (s.progress_running) return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   // signals stay with the application's threads
    s.progress_running = pthread_create(&s.progress, nullptr, progress_main, nullptr) == 0;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// The key of ISNs, TSval offsets and SYN cookies: one per host and boot, as the kernel's,
// so that every fastnet process (and a restarted one) numbers a reused 4-tuple after the
// earlier incarnation a peer may still hold in TIME-WAIT. A key per process made a new
// process's SYNs look older than the last one's (PAWS): the peer answered with an ACK,
// and each such connection waited a second for its SYN to be retransmitted. Derived from
// the kernel's boot id, which only local users can read (and they cannot inject
// segments without CAP_NET_RAW); a random key where it cannot be read.
void host_secret(uint64_t out[2]) {
    char id[64] = {};
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? real().read(fd, id, sizeof id - 1) : -1;
    if (fd >= 0) real().close(fd);
    if (n >= 32) {
        static const uint64_t k0[2] = {0x66617374'6e657431ull, 0x69736e2d'6b657930ull};
        static const uint64_t k1[2] = {0x66617374'6e657432ull, 0x69736e2d'6b657931ull};
        out[0] = siphash24(k0, id, static_cast<size_t>(n));
        out[1] = siphash24(k1, id, static_cast<size_t>(n));
        return;
    }
    if (getrandom(out, 2 * sizeof(uint64_t), GRND_NONBLOCK) != 2 * sizeof(uint64_t)) out[0] = now_ns();
}

// The RX queues the engines bind: queues 0..n-1 of the interface (FASTNET_QUEUES, else
// all it has). A frame arriving on a queue beyond them finds no XSK and goes to the
// kernel (counted by the XDP program).
uint32_t served_queues(const InterfaceInfo& ifc, uint32_t wanted) {
    uint32_t have = ifc.rx_queues ? ifc.rx_queues : 1;
    uint32_t n = wanted ? wanted : have;
    if (n > have) {
        log(LogLevel::Warn, "FASTNET_QUEUES=%u, but %s has %u RX queue(s): serving %u", wanted,
            ifc.name, have, have);
        n = have;
    }
    if (n > kMaxXskQueues) {
        log(LogLevel::Warn, "%s has %u RX queues; fastnet serves the first %u: flows the NIC "
                            "puts on the others go to the kernel (ethtool -L %s combined %u)",
            ifc.name, n, kMaxXskQueues, ifc.name, kMaxXskQueues);
        n = kMaxXskQueues;
    } else if (n < have) {
        log(LogLevel::Warn, "serving %u of the %u RX queues of %s: flows on the others go to "
                            "the kernel", n, have, ifc.name);
    }
    return n;
}

// Calls made here go straight to libc, whatever called us.
struct Direct {
    Direct() { ++detail::depth; }
    ~Direct() { --detail::depth; }
    Direct(const Direct&) = delete;
    Direct& operator=(const Direct&) = delete;
};

// A connection to the fastnetd serving ifname, or -errno (-ENOENT: none runs).
int daemon_connect(const char* ifname) {
    Direct direct;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s.sock", kDaemonDir, ifname);
    if (access(sa.sun_path, F_OK) != 0) return -ENOENT;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        int e = errno;
        close(fd);
        // A socket file without a daemon (one that was killed): standalone.
        return e == ECONNREFUSED ? -ENOENT : -e;
    }
    return fd;
}

// One request, its reply and the fds that come with it (at most max).
int daemon_call(int fd, const DaemonRequest& rq, DaemonReply* rp, int* fds, uint32_t max, uint32_t* nfds) {
    Direct direct;
    int r = daemon_send(fd, &rq, sizeof rq, nullptr, 0);
    int got[kDaemonMaxFds];
    uint32_t n = 0;
    // A refusal is sent (and the connection closed) before any request is read: a failed
    // send may still have an answer waiting.
    if (r == 0 || r == -EPIPE || r == -ECONNRESET) r = daemon_recv(fd, rp, sizeof *rp, got, &n);
    if (r == 0 && (rp->magic != kDaemonMagic || rp->version != kDaemonVersion)) r = -EPROTO;
    if (r == 0 && rp->status < 0) r = rp->status;
    if (r == 0 && n != rp->nfds) r = -EPROTO;
    if (r < 0 || n > max) {
        for (uint32_t i = 0; i < n; ++i) close(got[i]);
        return r < 0 ? r : -EPROTO;
    }
    memcpy(fds, got, n * sizeof(int));
    *nfds = n;
    return 0;
}

// A fresh AF_XDP socket for queue q from fastnetd (a forked child connects on its own:
// the parent's requests and replies must not interleave with its).
int daemon_xsk(State& s, uint32_t q) {
    if (s.daemon_pid != getpid()) {
        if (s.daemon_fd >= 0) real().close(s.daemon_fd);
        s.daemon_fd = daemon_connect(s.ifc.name);
        s.daemon_pid = getpid();
        if (s.daemon_fd < 0) return s.daemon_fd;
    }
    DaemonRequest rq;
    rq.op = DaemonOp::Xsk;
    rq.queue = q;
    DaemonReply rp;
    int fd = -1;
    uint32_t n = 0;
    int r = daemon_call(s.daemon_fd, rq, &rp, &fd, 1, &n);
    return r < 0 ? r : n == 1 ? fd : -EPROTO;
}

int fail_start(const char* why, int err) {
    State& s = st();
    s.started = -1;
    if (config().strict) {
        log(LogLevel::Error, "cannot start: %s%s%s; exiting because FASTNET_STRICT=1", why,
            err ? ": " : "", err ? strerror(err) : "");
        _exit(1);
    }
    log(LogLevel::Warn, "cannot start: %s%s%s; every socket goes to the kernel", why,
        err ? ": " : "", err ? strerror(err) : "");
    counters_set_state("kernel: %s", why);
    return false;
}

// Connections accepted before fork() are usable in the child through the table the
// process tree shares (xproc.hpp); it must exist before the first fork.
void start_shared_table() {
    if (xproc::init()) FdTable::get().remote_hook = xproc::claim;
}

// The runtime is up (under s.mu): the shared connection table, the flag, one line.
bool started(State& s) {
    start_shared_table();
    __atomic_store_n(&s.started, 1, __ATOMIC_RELEASE);
    char ip[INET_ADDRSTRLEN];
    uint32_t ip_be = htonl(s.base.ip);
    inet_ntop(AF_INET, &ip_be, ip, sizeof ip);
    counters_set_state("accelerated on %s (%s)%s, XDP %s mode", s.ifc.name, ip,
                       s.via_daemon ? " through fastnetd" : "",
                       s.steering.attached_native() ? "native" : "generic");
    log(LogLevel::Info, "accelerating TCP on %s (%s)%s, %u queue(s)%s", s.ifc.name, ip,
        s.via_daemon ? " through fastnetd" : "", s.nqueues,
        s.base.accept_csum_partial ? "; veth: a peer's partial TCP checksums are accepted" : "");
    return true;
}

// The runtime on an interface fastnetd serves: its UMEMs, its program (maps and link)
// and its active-open range, from the HELLO reply's fds.
bool start_with_daemon(State& s, int d) {
    DaemonRequest rq;
    DaemonReply rp;
    int fds[kDaemonMaxFds];
    uint32_t n = 0;
    char why[320];
    int r = daemon_call(d, rq, &rp, fds, kDaemonMaxFds, &n);
    if (r < 0) {
        real().close(d);
        if (rp.status < 0 && rp.message[0]) snprintf(why, sizeof why, "fastnetd refused this process: %s", rp.message);
        else snprintf(why, sizeof why, "fastnetd on %s did not answer (%s)", s.ifc.name, strerror(-r));
        return fail_start(why, 0);
    }
    const uint32_t first_umem = Steering::kMapCount + 1;
    if (rp.queues == 0 || rp.queues > kMaxXskQueues || n != first_umem + 2 * rp.queues) {
        for (uint32_t i = 0; i < n; ++i) real().close(fds[i]);
        real().close(d);
        return fail_start("fastnetd sent a reply this library does not understand", 0);
    }
    UmemConfig uc;
    uc.frame_count = rp.frame_count;
    uc.frame_size = rp.frame_size;
    uc.fill_size = rp.fill_size;
    uc.comp_size = rp.comp_size;
    s.nqueues = rp.queues;
    for (uint32_t q = 0; q < s.nqueues; ++q) {
        if (s.umem[q].attach(fds[first_umem + 2 * q], fds[first_umem + 2 * q + 1], uc) < 0) {
            snprintf(why, sizeof why, "fastnetd's UMEM: %s", s.umem[q].error());
            for (uint32_t i = first_umem + 2 * q; i < n; ++i) real().close(fds[i]);
            return fail_start(why, 0);
        }
    }
    s.steering.adopt(fds, fds[Steering::kMapCount], static_cast<int>(rp.ifindex), rp.native != 0);
    s.base.port_base = static_cast<uint16_t>(rp.port_base);
    s.base.port_count = static_cast<uint16_t>(rp.port_count);
    s.via_daemon = true;
    s.daemon_fd = d;
    s.daemon_pid = s.pid = getpid();
    return started(s);
}

}  // namespace

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t spin_ns() { return uint64_t(config().spin_us) * 1000; }

Runtime& Runtime::get() {
    static Runtime r;
    return r;
}

bool Runtime::start() {
    State& s = st();
    if (__atomic_load_n(&s.started, __ATOMIC_ACQUIRE) != 0) return s.started > 0;
    std::lock_guard g(s.mu);
    if (s.started != 0) return s.started > 0;
    const Config& cfg = config();

    int r = cfg.iface[0] ? find_interface(cfg.iface, &s.ifc) : default_interface(&s.ifc);
    if (r < 0) {
        char why[96];
        if (cfg.iface[0]) snprintf(why, sizeof why, "no interface %s", cfg.iface);
        else snprintf(why, sizeof why, "no interface to accelerate (no default route, no single interface up)");
        return fail_start(why, 0);
    }
    if (s.ifc.loopback) return fail_start("the interface is loopback", 0);
    if ((r = engine_config_from_kernel(s.ifc, &s.base)) < 0)
        return fail_start("the interface has no IPv4 address or no Ethernet address", -r);
    s.base.port_base = cfg.port_base;
    s.base.port_count = cfg.port_count;
    s.base.nslots = kSlots;
    s.base.sndbuf = cfg.sndbuf;
    s.base.rcvbuf = cfg.rcvbuf;
    s.base.sndbuf_max = cfg.sndbuf_max;
    s.base.rcvbuf_max = cfg.rcvbuf_max;
    // SO_SNDBUF / SO_RCVBUF are capped as the kernel would cap them.
    s.base.wmem_max = read_sysctl_u32("/proc/sys/net/core/wmem_max", s.base.wmem_max);
    s.base.rmem_max = read_sysctl_u32("/proc/sys/net/core/rmem_max", s.base.rmem_max);
    host_secret(s.base.isn_secret);

    // A fastnetd serving the interface owns it: every preloaded process goes through it,
    // root or not. Without one, a root process runs standalone.
    if (int d = daemon_connect(s.ifc.name); d >= 0) return start_with_daemon(s, d);

    raise_memlock_limit();
    UmemConfig uc;
    uc.frame_count = cfg.umem_frames;
    // The components' messages already name the errno.
    s.nqueues = served_queues(s.ifc, cfg.queues);
    for (uint32_t q = 0; q < s.nqueues; ++q) {
        if ((r = s.umem[q].create(uc)) < 0)
            return s.umem[q].error()[0] ? fail_start(s.umem[q].error(), 0)
                                        : fail_start("cannot create the UMEM", -r);
    }
    if ((r = s.steering.attach(s.ifc.ifindex, XdpAttachMode::Auto)) < 0) {
        // One steering program per interface: another fastnet process (or any XDP
        // program) already holds it.
        return s.steering.error()[0] ? fail_start(s.steering.error(), 0)
                                     : fail_start("cannot attach the XDP program", -r);
    }
    s.steering.set_local_ip(htonl(s.base.ip));
    s.steering.set_active_range(cfg.port_base, cfg.port_count, kSlots);
    reserve_ports(cfg.port_base, cfg.port_count);

    s.pid = getpid();
    return started(s);
}

namespace {

// A new engine with its own XSK and slot (under s.mu), or nullptr with `why` filled in.
EngineBox* add_engine(State& s, char* why, size_t why_len) {
    int n = s.nboxes.load(std::memory_order_relaxed);
    auto* box = new (std::nothrow) EngineBox();
    if (!box) {
        snprintf(why, why_len, "out of memory");
        return nullptr;
    }
    reap_dead_slots();
    int slot = s.umem[0].claim_slot(kSlots);
    if (slot < 0) {
        delete box;
        snprintf(why, why_len, "all %u XSK slots of the interface are taken", kSlots);
        return nullptr;
    }
    XskConfig xc;
    xc.ifname = s.ifc.name;
    xc.owner = static_cast<uint8_t>(slot + 1);
    const Config& cfg = config();
    xc.zerocopy = cfg.zerocopy == ZeroCopy::On ? ZeroCopyMode::On
                : cfg.zerocopy == ZeroCopy::Off ? ZeroCopyMode::Off : ZeroCopyMode::Auto;
    xc.tx_csum = cfg.tx_csum_software ? TxChecksumMode::Software : TxChecksumMode::Auto;
    // Each engine transmits on a queue of its own where it can (a NIC's TX queues are
    // per CPU); it receives on every queue, wherever the NIC's RSS puts its flows.
    std::function<int(uint32_t)> from_daemon;
    if (s.via_daemon) from_daemon = [&s](uint32_t q) { return daemon_xsk(s, q); };
    int r = box->dev.open(s.umem, s.nqueues, xc, static_cast<uint32_t>(slot) % s.nqueues, from_daemon);
    if (r < 0) snprintf(why, why_len, "cannot open an AF_XDP socket: %s", box->dev.error());
    else if ((r = box->nb.open(s.ifc.ifindex)) < 0)
        snprintf(why, why_len, "cannot open the neighbour cache: %s", strerror(-r));
    if (r < 0) {
        delete box;
        s.umem[0].release_slot(static_cast<uint32_t>(slot));
        return nullptr;
    }
    // XSKs and netlink sockets must not survive exec: an exec'd image would inherit them, keep
    // the queue bound to this UMEM and fail to bind its own.
    for (uint32_t q = 0; q <= box->dev.queues(); ++q) {
        int fd = q < box->dev.queues() ? box->dev.queue(q).fd() : box->nb.fd();
        int fl = real().fcntl(fd, F_GETFD);
        if (fl >= 0) real().fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
    EngineConfig ec = s.base;
    ec.slot = static_cast<uint16_t>(slot);
    ec.flush_per_call = false;         // kicked at the next poll (pump) or flush_deferred()
    box->engine = std::make_unique<Engine>(ec, box->dev, box->nb);
    box->rt.engine = box->engine.get();
    box->rt.wait_fd = box->dev.wait_fd();
    box->rt.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    box->rt.slot = slot;
    box->rt.index = n;
    box->rt.displaced_seen = s.umem[0].displaced(static_cast<uint32_t>(slot));
    box->rt.stats_slot = counters_claim_slot();
    box->engine->set_event_sink(&box->rt);
    {
        SteerLock sg;
        for (uint32_t q = 0; q < box->dev.queues(); ++q)
            s.steering.set_xsk(static_cast<uint32_t>(slot), box->dev.queue(q).fd(), q);
    }
    s.boxes[n] = box;
    s.nboxes.store(n + 1, std::memory_order_release);
    start_progress(s);
    if (SharedCounters* c = counters()) c->engines_started.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::Info, "engine %d: slot %d, AF_XDP sockets on %u queue(s) in %s mode, transmitting on queue %u",
        n, slot, box->dev.queues(), to_string(box->dev.mode()), box->dev.tx_queue());
    return box;
}

}  // namespace

bool Runtime::via_daemon() const { return st().via_daemon; }

RtEngine* Runtime::thread_engine() {
    if (tl_engine) return tl_engine;
    State& s = st();
    std::lock_guard g(s.mu);
    int n = s.nboxes.load(std::memory_order_relaxed);
    if (s.spare > 0) {   // made before the process dropped privilege
        tl_engine = &s.boxes[n - s.spare--]->rt;
        return tl_engine;
    }
    if (n == kMaxEngines) {
        tl_engine = &s.boxes[s.next_share++ % kMaxEngines]->rt;
        return tl_engine;
    }
    char why[320] = {};
    if (EngineBox* box = add_engine(s, why, sizeof why)) return tl_engine = &box->rt;
    if (n > 0) {
        log(LogLevel::Warn, "%s; this thread shares engine 0", why);
        return tl_engine = &s.boxes[0]->rt;
    }
    // Without a first engine fastnet cannot start at all (strict: exit).
    fail_start(why, 0);
    return nullptr;
}

std::vector<RtEngine*> Runtime::engines() {
    State& s = st();
    std::vector<RtEngine*> v;
    int n = s.nboxes.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) v.push_back(&s.boxes[i]->rt);
    return v;
}

bool Runtime::reaches(uint32_t dst) const {
    State& s = st();
    if (dst == s.base.ip) return false;            // our own address: the kernel's loopback
    // A lookup is a netlink round trip (socket, send, receive, close): each thread keeps
    // its answers for a second, so a client opening thousands of connections a second
    // asks once (a route change is seen within kRouteCacheNs).
    struct Cached { uint32_t dst; bool reach; uint64_t until; };
    thread_local Cached cache[16];
    const uint64_t now = now_ns();
    Cached& c = cache[(dst * 0x9e3779b1u) >> 28];
    if (c.dst == dst && c.until > now) return c.reach;
    RouteInfo ri;
    int r = lookup_route(dst, &ri);
    if (r < 0 && r != -EHOSTUNREACH && r != -EACCES && r != -EINVAL && r != -ENETUNREACH)
        r = lookup_route(dst, &ri);                // a failed round trip, not an answer: once more
    if (r < 0 && r != -EHOSTUNREACH && r != -EACCES && r != -EINVAL && r != -ENETUNREACH) {
        log(LogLevel::Info, "route lookup failed (%s): this connection goes to the kernel", strerror(-r));
        return false;                              // not remembered
    }
    c = {dst, r == 0 && ri.oif == s.ifc.ifindex && ri.type == RTN_UNICAST, now + kRouteCacheNs};
    return c.reach;
}

bool Runtime::local_ip(uint32_t ip) const { return ip == 0 || ip == st().base.ip; }
uint32_t Runtime::iface_ip() const { return st().base.ip; }

int Runtime::listen_port(uint16_t port, RtEngine* e) {
    State& s = st();
    SteerLock g;
    return s.steering.add_listen_slot(port, static_cast<uint32_t>(e->slot));
}

void Runtime::unlisten_port(uint16_t port, RtEngine* e) {
    State& s = st();
    SteerLock g;
    s.steering.remove_listen_slot(port, static_cast<uint32_t>(e->slot));
}

namespace {
FlowTuple flow_tuple(Endpoint local, Endpoint remote) {
    return FlowTuple{htonl(remote.ip), htonl(local.ip), remote.port, local.port};
}
}  // namespace

int Runtime::steer_flow(Endpoint local, Endpoint remote, RtEngine* e) {
    State& s = st();
    SteerLock g;
    return s.steering.add_flow(flow_tuple(local, remote), static_cast<uint32_t>(e->slot));
}

int Runtime::steer_flow_to_slot(Endpoint local, Endpoint remote, uint32_t slot) {
    State& s = st();
    SteerLock g;
    return s.steering.add_flow(flow_tuple(local, remote), slot);
}

void Runtime::park_flow(Endpoint local, Endpoint remote) {
    State& s = st();
    SteerLock g;
    uint32_t slot = 0;
    if (s.steering.flow_slot(flow_tuple(local, remote), &slot) == 0 && slot != FASTNET_SLOT_PARKED) {
        // Already steered to a receiver: only the exporter's own entry is replaced.
        for (int i = 0; i < s.nboxes.load(std::memory_order_acquire); ++i)
            if (static_cast<uint32_t>(s.boxes[i]->rt.slot) == slot) {
                s.steering.add_flow(flow_tuple(local, remote), FASTNET_SLOT_PARKED);
                return;
            }
        return;
    }
    s.steering.add_flow(flow_tuple(local, remote), FASTNET_SLOT_PARKED);
}

int Runtime::steer_to_kernel(Endpoint local, Endpoint remote) {
    State& s = st();
    SteerLock g;
    return s.steering.add_kernel_flow(flow_tuple(local, remote));
}

void Runtime::before_fork() {
    if (__atomic_load_n(&st().started, __ATOMIC_ACQUIRE) > 0) xproc::at_fork();
}

void Runtime::unsteer_flow(Endpoint local, Endpoint remote) {
    State& s = st();
    SteerLock g;
    s.steering.remove_flow(flow_tuple(local, remote));
}

void Runtime::after_fork_in_child() {
    // The parent's engines, XSKs and epoll sets stay the parent's: two processes must
    // never drive one XSK's rings. The child builds its own engines (slots claimed from
    // the shared UMEM, XSKs bound to the same UMEM), and an inherited listener becomes
    // a kernel listener (its shadow) until the child accepts or waits on it, when its
    // engine listens on the port too and joins the port's slots (fastsock.cpp
    // adopt_listener). An inherited connection stays served by the parent's engine
    // until the child uses it, when it moves here (xproc.hpp: Remote); one the shared
    // table could not take stays the parent's, its number a bare placeholder here.
    tl_engine = nullptr;
    tl_ndirty = 0;                     // the parent's engines are not this process's
    State& s = st();
    new (&s.mu) std::mutex();
    epoll_after_fork();
    FdTable& t = FdTable::get();
    t.after_fork();
    if (s.started <= 0) return;
    const RealLibc& r = real();
    // Close the child's copies of the parent's XSKs (a dead parent's socket must not
    // stay bound through them), except the UMEM's own fd: new sockets bind to it.
    int n = s.nboxes.load(std::memory_order_relaxed);
    s.pid = getpid();
    s.parent_pid = getppid();
    s.nparent_slots = 0;
    for (int i = 0; i < n; ++i) {
        EngineBox* b = s.boxes[i];
        s.parent_slots[s.nparent_slots++] = static_cast<uint32_t>(b->rt.slot);
        for (uint32_t q = 0; q < b->dev.queues(); ++q)
            if (b->dev.queue(q).fd() != s.umem[q].fd()) r.close(b->dev.queue(q).fd());
        if (b->dev.queues() > 1) r.close(b->dev.wait_fd());
        r.close(b->nb.fd());
        r.close(b->rt.wake_fd);
        s.boxes[i] = nullptr;    // abandoned: its destructor would touch the parent's rings
    }
    s.nboxes.store(0, std::memory_order_release);
    s.next_share = 0;
    s.spare = 0;
    s.progress_running = false;
    for (uint32_t q = 0; q < s.nqueues; ++q) s.umem[q].forget_sockets_after_fork();
    counters_set_state("accelerated (forked child of %d)%s", getppid(),
                       s.via_daemon ? " through fastnetd" : "");
    t.orphan_hook = [](int fd, Entry* en) { return fs::adopt_listener(fd, en); };
    for (int fd = 0; fd <= t.high_water(); ++fd) {
        if (static_cast<unsigned>(fd) >= t.size()) break;
        Entry* en = t.raw(fd);
        if (!en) continue;
        if (en->kind == Kind::Socket && en->state == SockState::Listening && en->shadow >= 0) {
            if (!en->orphan()) {
                int fdflags = r.fcntl(fd, F_GETFD);
                r.dup3(en->shadow, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
                // The file status flags belong to the open file description, which the
                // parent's shadow shares: it stays non-blocking, or the parent's next
                // accept() on the kernel side would block (a blocking listener that
                // forks: Python's ForkingTCPServer).
            }
            en->eng = nullptr;
            en->sid = kNoSock;
            // The parent's epoll sets: their copies here are abandoned with the parent's
            // table, and their kernel halves are the parent's too (an engine added to
            // one would wake the parent with a pointer into this process).
            en->items = nullptr;
            en->follow_hint = nullptr;
            en->dormant.store(false, std::memory_order_relaxed);
            en->inherited.store(Entry::Orphan, std::memory_order_release);
            continue;
        }
        if (xproc::inherited(en)) {
            en->eng = nullptr;
            en->sid = kNoSock;
            en->items = nullptr;           // the parent's epoll sets
            en->follow_hint = nullptr;
            en->inherited.store(Entry::Remote, std::memory_order_release);
            continue;
        }
        t.remove(fd);
    }
}

void Runtime::after_fork_in_parent() {
    State& s = st();
    if (s.started <= 0) return;
    FdTable& t = FdTable::get();
    const uint64_t now = now_ns();
    for (int fd = 0; fd <= t.high_water() && static_cast<unsigned>(fd) < t.size(); ++fd) {
        Entry* en = t.raw(fd);
        if (en && en->kind == Kind::Socket && !en->orphan() && en->state == SockState::Listening &&
            !en->items && en->waiters.load(std::memory_order_acquire) == 0 &&
            now - en->last_accept > kAcceptedRecentlyNs)
            fs::leave_port(en);
    }
}

void Runtime::adopted_listener(uint16_t port) {
    // A child that serves an inherited listener takes its parent's engines off the port:
    // a parent that forks workers and then only supervises them (nginx's master) would
    // otherwise keep a share of the new flows and never accept them. A parent that
    // still watches the listener puts itself back (fs::listeners_displaced). Live flows
    // are unaffected either way: they follow their recorded slot.
    State& s = st();
    if (s.nparent_slots == 0) return;
    SteerLock g;
    for (int i = 0; i < s.nparent_slots; ++i) {
        uint32_t slot = s.parent_slots[i];
        if (s.umem[0].slot_pid(slot) != s.parent_pid) continue;     // gone, or reused
        if (s.steering.remove_listen_slot(port, slot) == 0) {
            s.umem[0].displace(slot);
            log(LogLevel::Info, "port %u: parent %d's slot %u leaves it to this worker", port,
                s.parent_pid, slot);
        }
    }
}

void Runtime::before_privilege_drop() {
    // The UMEM, the XDP program and XSKs need privilege: a server that drops root before
    // its first socket (memcached -u) starts the runtime now, and a forked worker about
    // to drop root creates its engines (map edits through inherited map fds need no
    // privilege on this kernel; creating sockets does).
    if (!start()) return;
    thread_engine();
    {
        // Threads started after the drop cannot open XSKs: one engine per CPU now, for
        // them to take (the sockets they serve follow them there).
        State& s = st();
        std::lock_guard g(s.mu);
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        char why[320];
        while (s.nboxes.load(std::memory_order_relaxed) < std::min<long>(cpus, kMaxEngines) &&
               add_engine(s, why, sizeof why))
            ++s.spare;
    }
    // Inherited listeners are adopted later, when this process accepts or waits on them
    // (adoption needs an engine, not privilege): a worker of an SO_REUSEPORT group
    // inherits every member but serves only its own.
}

void Runtime::before_exec(bool preloaded, pass::ExecPlan* plan) {
    State& s = st();
    if (__atomic_load_n(&s.started, __ATOMIC_ACQUIRE) <= 0 || getpid() != s.pid) return;
    close_on_exec_sockets();
    pass::before_exec(preloaded, plan);
    xproc::release_all();              // what other processes share does not survive exec
    int n = s.nboxes.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) pump(&s.boxes[i]->rt, true);
}

void Runtime::exec_failed(const pass::ExecPlan& plan) {
    pass::exec_failed(plan);
}

void Runtime::at_exit() {
    State& s = st();
    if (s.started <= 0 || getpid() != s.pid) return;   // a vfork() child: not its engines
    static std::atomic<bool> once{false};   // exit() runs it, and _exit() may follow
    if (once.exchange(true)) return;
    xproc::release_all();              // a forked child gives back what it never used
    FdTable& t = FdTable::get();
    int n = s.nboxes.load(std::memory_order_acquire);
    // Engine locks are held only for the length of a call or a poll (never across a
    // sleep), so each is free within moments: the progress thread may be polling it right
    // now. An engine still busy after kExitLockNs (a thread that exits while another is
    // stuck inside) is left alone.
    std::vector<std::unique_lock<std::mutex>> held;
    std::vector<EngineBox*> boxes;
    for (int i = 0; i < n; ++i) {
        std::unique_lock g(s.boxes[i]->rt.mu, std::defer_lock);
        for (uint64_t give_up = now_ns() + kExitLockNs; !g.try_lock() && now_ns() < give_up;) {
            timespec ts{0, 100'000};
            nanosleep(&ts, nullptr);
        }
        if (!g.owns_lock()) continue;
        held.push_back(std::move(g));
        boxes.push_back(s.boxes[i]);
    }
    for (EngineBox* b : boxes) {
        RtEngine& e = b->rt;
        for (int fd = 0; fd <= t.high_water() && static_cast<unsigned>(fd) < t.size(); ++fd) {
            Entry* en = t.raw(fd);
            if (en && en->kind == Kind::Socket && !en->orphan() && en->eng == &e && en->sid != kNoSock) {
                e.sockets.erase(en->sid);
                e.engine->close(en->sid);
                en->sid = kNoSock;
            }
        }
    }
    // What is in flight is usually acknowledged within a round trip: a short wait keeps
    // the kernel out of connections that are about to end anyway (a client's last FIN).
    const uint64_t until = now_ns() + kExitDrainNs;
    for (;;) {
        bool pending = false;
        uint64_t now = now_ns();
        for (EngineBox* b : boxes) {
            b->engine->poll(now);
            SockId one;
            pending = pending || b->engine->connections(&one, 1) > 0;
        }
        if (!pending || now >= until) break;
        timespec ts{0, 200'000};
        nanosleep(&ts, nullptr);
    }
    for (EngineBox* b : boxes) {
        hand_over_to_kernel(b->rt);
        b->engine->poll(now_ns());
        counters_publish(b->rt.stats_slot, b->engine->stats(), b->dev.cached_frames());
    }
}

namespace {

// How long an exiting client waits for fastnetd to build one kernel socket.
constexpr int kDaemonHandoverMs = 5000;

// A connection handed to the kernel by fastnetd (its HANDOVER op), for a client without
// CAP_NET_ADMIN: the state in the request, the bytes from snd_una in a sealed memfd.
// 0, or -errno with why filled in: fastnetd's reason when it refused (*refused set),
// else what failed on the way (fastnetd gone, no memory).
int daemon_handover(State& s, const Engine::HandoverState& h, char* why, size_t why_len, bool* refused) {
    Direct direct;
    *refused = false;
    if (s.daemon_pid != getpid()) {   // a forked child asks on its own connection
        if (s.daemon_fd >= 0) close(s.daemon_fd);
        s.daemon_fd = daemon_connect(s.ifc.name);
        s.daemon_pid = getpid();
    }
    if (s.daemon_fd < 0) {
        snprintf(why, why_len, "no connection to fastnetd: %s", strerror(-s.daemon_fd));
        return s.daemon_fd;
    }
    int mfd = memfd_create("fastnet-handover", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int r = mfd < 0 ? -errno : 0;
    for (size_t off = 0; r == 0 && off < h.data.size();) {
        ssize_t w = write(mfd, h.data.data() + off, h.data.size() - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) r = w < 0 ? -errno : -EIO;
        else off += static_cast<size_t>(w);
    }
    if (r == 0 && fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) r = -errno;
    if (r < 0) {
        if (mfd >= 0) close(mfd);
        snprintf(why, why_len, "memfd for %zu bytes: %s", h.data.size(), strerror(-r));
        return r;
    }
    DaemonHandover m = to_daemon_handover(h);
    r = daemon_send(s.daemon_fd, &m, sizeof m, &mfd, 1);
    close(mfd);
    DaemonReply rp;
    if (r == 0) {
        pollfd p{s.daemon_fd, POLLIN, 0};
        int k;
        do k = poll(&p, 1, kDaemonHandoverMs);
        while (k < 0 && errno == EINTR);
        r = k == 1 ? daemon_recv(s.daemon_fd, &rp, sizeof rp, nullptr, nullptr) : k == 0 ? -ETIMEDOUT : -errno;
    }
    if (r == 0 && (rp.magic != kDaemonMagic || rp.version != kDaemonVersion)) r = -EPROTO;
    if (r < 0) {
        snprintf(why, why_len, "fastnetd did not answer: %s", strerror(-r));
        return r;
    }
    if (rp.status < 0) {
        *refused = true;
        snprintf(why, why_len, "fastnetd: %.*s", static_cast<int>(sizeof rp.message), rp.message);
        return rp.status;
    }
    return 0;
}

}  // namespace

void Runtime::hand_over_to_kernel(RtEngine& e) {
    // Every connection with data or a FIN still to deliver (closed ones included) goes
    // to a kernel socket, which finishes it after the process is gone: built here with
    // CAP_NET_ADMIN, or by fastnetd for its clients. The flow is steered to the kernel
    // only once that socket exists (the kernel would reset a flow it has no socket for);
    // until then what the peer sends reaches this engine, which is held (at_exit) and
    // does not answer. Without either the engine sends what it can once, and says so.
    static bool warned = false;
    Direct direct;   // the repair's socket calls go to libc
    State& s = st();
    std::vector<SockId> ids(4096);
    size_t n = e.engine->connections(ids.data(), ids.size());
    size_t moved = 0;
    for (size_t i = 0; i < n; ++i) {
        Engine::HandoverState h;
        if (e.engine->handover_state(ids[i], &h) < 0) continue;
        char why[224] = {};
        int kfd = -1, r;
        bool refused = false;
        if (s.via_daemon) {
            r = daemon_handover(s, h, why, sizeof why, &refused);
        } else {
            const char* step = "";
            r = kfd = repair_into_kernel(h, &step);
            if (r < 0) snprintf(why, sizeof why, "%s: %s", step, strerror(-r));
        }
        if (r < 0) {
            if (!warned)
                log(LogLevel::Warn, "cannot hand connections over to the kernel at exit (%s): "
                                    "their last segments are sent once and not retransmitted", why);
            warned = true;
            if (s.via_daemon ? !refused : r == -EPERM) break;   // the next would fail alike
            continue;
        }
        {
            SteerLock g;
            s.steering.add_kernel_flow(flow_tuple(h.local, h.remote));
        }
        e.engine->detach(ids[i]);
        if (kfd >= 0) real().close(kfd);   // the kernel delivers the queue, then its FIN
        ++moved;
    }
    if (moved)
        log(LogLevel::Info, "exit: %zu connection(s) handed over to the kernel%s", moved,
            s.via_daemon ? " by fastnetd" : "");
}

void RtEngine::on_moved_flow_released(Endpoint local, Endpoint remote) {
    Runtime::get().unsteer_flow(local, remote);
}

void RtEngine::on_events(SockId sock, uint32_t) {
    auto it = sockets.find(sock);
    if (it == sockets.end()) return;
    FdTable::add_hold(it->second);   // in the map: not released yet; notify_changed drops it
    changed.push_back(it->second);
}

void RtEngine::poll_locked(uint64_t now) {
    engine->poll(now);
    if (xproc::pending(slot)) xproc::serve(*this);   // another process asks for a connection
    tx_dirty.store(false, std::memory_order_relaxed);
    __atomic_store_n(&last_poll, now, __ATOMIC_RELAXED);   // pump() reads it unlocked
    State& s = st();
    EngineBox* box = s.boxes[index];
    // A system call each time: at most every kNeighbourNs, sooner when a lookup missed
    // (a new peer waits for its resolution request to go out).
    if (now - box->last_neighbours >= kNeighbourNs || box->nb.missed()) {
        box->last_neighbours = now;
        box->nb.poll_updates(now);
    }
    if (now - box->last_publish > kPublishNs) {
        box->last_publish = now;
        counters_publish(stats_slot, engine->stats(), box->dev.cached_frames());
        publish_queues(box);
    }
}

void RtEngine::take_changed(std::vector<Entry*>& out) {
    out.clear();
    out.swap(changed);
}

void note_tx(RtEngine* e) {
    e->tx_dirty.store(true, std::memory_order_relaxed);
    for (int i = 0; i < tl_ndirty; ++i)
        if (tl_dirty[i] == e) return;
    if (tl_ndirty < kMaxEngines) tl_dirty[tl_ndirty++] = e;
}

void flush_deferred() {
    for (int i = 0; i < tl_ndirty; ++i) {
        RtEngine* e = tl_dirty[i];
        if (!e->tx_dirty.load(std::memory_order_relaxed)) continue;   // polled meanwhile
        std::lock_guard g(e->mu);
        e->engine->flush();
        e->tx_dirty.store(false, std::memory_order_relaxed);
    }
    tl_ndirty = 0;
}

void pump(RtEngine* e, bool force) {
    uint64_t now = now_ns();
    if (!force && !e->tx_dirty.load(std::memory_order_relaxed) &&
        now - __atomic_load_n(&e->last_poll, __ATOMIC_RELAXED) < kProgressNs)
        return;
    thread_local std::vector<Entry*> changed;
    {
        std::unique_lock g(e->mu, std::try_to_lock);
        if (!g.owns_lock()) return;       // its owner is polling it right now
        e->poll_locked(now);
        e->take_changed(changed);
    }
    if (!changed.empty()) notify_changed(e, changed);
}

uint64_t engine_deadline(RtEngine* e) {
    std::lock_guard g(e->mu);
    return e->engine->next_deadline();
}

}  // namespace fastnet::ipose
