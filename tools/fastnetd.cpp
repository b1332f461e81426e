// fastnetd: the privileged owner of one interface for unprivileged fastnet processes.
// It attaches the XDP program, creates one UMEM per RX queue (memfd-backed) with its
// first, never-steered socket, keeps every queue's fill ring topped up and its
// completion ring drained (only the socket that registered a UMEM can map those rings),
// reaps the slots of clients that died (watched through pidfds), hands clients the fds
// they cannot make themselves, and at a client's exit continues its unfinished
// connections in kernel sockets (TCP_REPAIR needs CAP_NET_ADMIN; see
// stack/xdp/fastnetd_proto.hpp). Clients are checked with SO_PEERCRED.
// usage: fastnetd --iface IF [--allow-uid UID]... [--allow-group GROUP]...
//                 [--queues N|all] [--umem-frames N] [--port-base P] [--port-count N]
//                 [--dir DIR]
// Foreground; logs to stderr; SIGTERM/SIGINT end it (clients keep the program attached
// through their copies of its bpf_link until they exit).
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "stack/handover.hpp"
#include "stack/net/interface.hpp"
#include "stack/xdp/fastnetd_proto.hpp"
#include "stack/xdp/steering.hpp"
#include "stack/xdp/umem.hpp"
#include "stack/xdp/xsk_device.hpp"
#include "stack/xdp/xsk_queues.hpp"

using namespace fastnet;

namespace {

constexpr uint32_t kSlots = 16;   // as the runtime's (interpose/runtime.cpp)
constexpr long kServiceMinNs = 50'000;
constexpr long kServiceMaxNs = 1'000'000;
constexpr uint64_t kReapNs = 250'000'000;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434   // the same number on every architecture
#endif

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fastnetd: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

[[noreturn]] void usage(const char* why)
{
    if (why)
        say("%s", why);
    fprintf(stderr,
            "usage: fastnetd --iface IF [--allow-uid UID]... [--allow-group GROUP]...\n"
            "                [--queues N|all] [--umem-frames N] [--port-base P] [--port-count N]\n"
            "                [--dir DIR]\n");
    exit(2);
}

bool parse_u32(const char* s, uint32_t lo, uint32_t hi, uint32_t* out)
{
    if (!s || !*s)
        return false;
    char* end = nullptr;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = static_cast<uint32_t>(v);
    return true;
}

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

struct Options {
    const char* iface = nullptr;
    std::vector<uid_t> uids;
    std::vector<gid_t> gids;
    uint32_t queues = 0;   // 0 = all
    uint32_t frames = 8192;   // per queue: every client engine caches some
    uint32_t port_base = 40000, port_count = 16384;
    std::string dir = kDaemonDir;
};

Options parse(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto val = [&]() -> const char* {
            if (i + 1 >= argc)
                usage((a + " needs a value").c_str());
            return argv[++i];
        };
        if (a == "--iface") {
            o.iface = val();
            if (strlen(o.iface) >= IF_NAMESIZE || !*o.iface)
                usage("--iface: an interface name of 1 to 15 characters");
        } else if (a == "--allow-uid") {
            const char* v = val();
            uint32_t u;
            if (parse_u32(v, 0, 0x7fffffff, &u)) {
                o.uids.push_back(u);
            } else if (passwd* pw = getpwnam(v)) {
                o.uids.push_back(pw->pw_uid);
            } else {
                usage((std::string("--allow-uid: no user ") + v).c_str());
            }
        } else if (a == "--allow-group") {
            const char* v = val();
            uint32_t g;
            if (parse_u32(v, 0, 0x7fffffff, &g)) {
                o.gids.push_back(g);
            } else if (group* gr = getgrnam(v)) {
                o.gids.push_back(gr->gr_gid);
            } else {
                usage((std::string("--allow-group: no group ") + v).c_str());
            }
        } else if (a == "--queues") {
            const char* v = val();
            if (strcmp(v, "all") != 0 && !parse_u32(v, 1, kMaxXskQueues, &o.queues))
                usage("--queues: all, or a count from 1 to 16");
        } else if (a == "--umem-frames") {
            if (!parse_u32(val(), 512, 1u << 20, &o.frames) || (o.frames & (o.frames - 1)))
                usage("--umem-frames: a power of two from 512 to 1048576");
        } else if (a == "--port-base") {
            if (!parse_u32(val(), 1024, 65535, &o.port_base))
                usage("--port-base: a port from 1024 to 65535");
        } else if (a == "--port-count") {
            if (!parse_u32(val(), 1, 65535, &o.port_count))
                usage("--port-count: a count from 1 to 65535");
        } else if (a == "--dir") {
            o.dir = val();
        } else if (a == "-h" || a == "--help") {
            usage(nullptr);
        } else {
            usage(("unknown argument " + a).c_str());
        }
    }
    if (!o.iface)
        usage("--iface is required");
    if (o.port_base + o.port_count > 65536)
        usage("--port-base + --port-count must stay within 65536");
    return o;
}

// Keeps the kernel from giving fastnet's active-open ports to its own sockets.
void reserve_ports(uint32_t base, uint32_t count)
{
    const char* path = "/proc/sys/net/ipv4/ip_local_reserved_ports";
    char cur[4096] = {};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, cur, sizeof cur - 1);
        close(fd);
        if (n > 0)
            cur[n] = 0;
    }
    char range[32];
    snprintf(range, sizeof range, "%u-%u", base, base + count - 1);
    if (strstr(cur, range))
        return;
    cur[strcspn(cur, "\n")] = 0;
    char next[4200];
    snprintf(next, sizeof next, "%s%s%s", cur, *cur ? "," : "", range);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, next, strlen(next)) < 0)
        say("cannot reserve ports %s in the kernel (%s)", range, strerror(errno));
    if (fd >= 0)
        close(fd);
}

// Whether a peer may use the interface: root, a listed uid, or a member of a listed
// group (primary or supplementary, from /proc/PID/status).
bool allowed(const Options& o, const ucred& cr)
{
    if (cr.uid == 0)
        return true;
    for (uid_t u : o.uids)
        if (u == cr.uid)
            return true;
    for (gid_t g : o.gids)
        if (g == cr.gid)
            return true;
    if (o.gids.empty())
        return false;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", cr.pid);
    FILE* f = fopen(path, "re");
    if (!f)
        return false;
    char line[1024];
    bool ok = false;
    while (!ok && fgets(line, sizeof line, f)) {
        if (strncmp(line, "Groups:", 7) != 0)
            continue;
        char* save = nullptr;
        for (char* t = strtok_r(line + 7, " \t\n", &save); t && !ok; t = strtok_r(nullptr, " \t\n", &save))
            for (gid_t g : o.gids)
                if (static_cast<gid_t>(strtoul(t, nullptr, 10)) == g)
                    ok = true;
    }
    fclose(f);
    return ok;
}

struct Daemon {
    Options opt;
    InterfaceInfo ifc;
    Steering steering;
    uint32_t nqueues = 1;
    Umem umem[kMaxXskQueues];
    XskDevice first[kMaxXskQueues];   // each UMEM's own socket: bound, never steered
    int listen_fd = -1;
    std::string path;         // DIR/IF.sock: clients
    std::string state_path;   // DIR/IF.state: the ring keeper, for a restarted fastnetd
    bool adopted = false;     // took the interface over from a running keeper
    pid_t keeper = 0;
    std::vector<int> clients;
    std::vector<int> refused;   // answered at their first request, then closed
    uint32_t local_ip = 0;      // the interface's, host order
    // Client processes and their pidfds: a process's slots are reaped the moment its
    // pidfd becomes readable. Without pidfds (ENOSYS) a kill(pid, 0) sweep every
    // kReapNs does it, as the ring keeper does when no fastnetd is left.
    struct Watched {
        pid_t pid;
        int pidfd;
    };
    std::vector<Watched> watched;
    bool pidfds = true;
    uint64_t handovers = 0, handovers_refused = 0, clients_exited = 0;

    int start();
    int take_over();
    void serve();
    void handle(int fd);
    void send_state(int fd);
    void hand_over(int fd, const DaemonHandover& m, size_t len, const int* fds, uint32_t nfds);
    uint32_t service_rings();
    void reap();
    void watch(int conn, pid_t pid);
    void watch_slot_holders();
    void client_exited(size_t i);
    void forget_slots(const uint32_t* dead, uint32_t n, uint32_t frames, const char* why);
    [[noreturn]] void keep();
    void stop();
};

// A SOCK_SEQPACKET listener at path with the given mode (a stale file is replaced).
int listen_unix(const std::string& path, mode_t mode)
{
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    unlink(path.c_str());
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || chmod(path.c_str(), mode) < 0 ||
        listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

bool alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH); }

// A pidfd (Linux 5.3): readable once the process has exited, and unlike its pid never
// another process's. -errno (-ENOSYS on older kernels, -ESRCH when it is gone).
int open_pidfd(pid_t pid)
{
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r < 0 ? -errno : static_cast<int>(r);
}

// Whether the process behind a pidfd has exited.
bool exited(int pidfd)
{
    pollfd p{pidfd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

// A pidfd for the peer of a Unix connection (its SO_PEERCRED pid), checked to be that
// process: the pid is opened first, then the connection must still be up (had the peer
// died and its pid been reused in between, its end would be closed). -errno: -ESRCH
// when no such process exists, -ENOTCONN when the connection is down (the pidfd may be
// another process's).
int peer_pidfd(int conn, pid_t pid)
{
    int pfd = open_pidfd(pid);
    if (pfd < 0)
        return pfd;
    pollfd c{conn, POLLRDHUP, 0};
    if (poll(&c, 1, 0) == 1 && (c.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
        close(pfd);
        return -ENOTCONN;
    }
    return pfd;
}

int Daemon::start()
{
    if (find_interface(opt.iface, &ifc) < 0) {
        say("no interface %s", opt.iface);
        return 1;
    }
    EngineConfig ec;
    if (engine_config_from_kernel(ifc, &ec) < 0) {
        say("%s has no IPv4 address or no Ethernet address", opt.iface);
        return 1;
    }
    local_ip = ec.ip;
    int probe = open_pidfd(getpid());
    pidfds = probe != -ENOSYS;
    if (probe >= 0)
        close(probe);
    else if (!pidfds)
        say("no pidfd_open (Linux < 5.3): dead clients are found by a kill(pid, 0) sweep every %llu ms",
            static_cast<unsigned long long>(kReapNs / 1'000'000));
    mkdir(opt.dir.c_str(), 0755);
    path = opt.dir + "/" + ifc.name + ".sock";
    state_path = opt.dir + "/" + ifc.name + ".state";
    if (take_over() == 0) {
        adopted = true;
    } else {
    uint32_t have = ifc.rx_queues ? ifc.rx_queues : 1;
    nqueues = opt.queues ? opt.queues : have;
    if (nqueues > have)
        nqueues = have;
    if (nqueues > kMaxXskQueues) {
        say("%s has %u RX queues; serving the first %u (ethtool -L %s combined %u)", opt.iface,
            nqueues, kMaxXskQueues, opt.iface, kMaxXskQueues);
        nqueues = kMaxXskQueues;
    }
    raise_memlock_limit();
    for (uint32_t q = 0; q < nqueues; q++) {
        UmemConfig uc;
        uc.frame_count = opt.frames;
        uc.memfd = true;
        if (umem[q].create(uc) < 0) {
            say("%s", umem[q].error());
            return 1;
        }
    }
    if (steering.attach(ifc.ifindex, XdpAttachMode::Auto) < 0) {
        say("%s", steering.error());
        return 1;
    }
    for (uint32_t q = 0; q < nqueues; q++) {
        XskConfig xc;
        xc.ifname = ifc.name;
        xc.queue = q;
        xc.rx_size = xc.tx_size = 64;
        if (first[q].open(umem[q], xc) < 0) {
            say("%s", first[q].error());
            return 1;
        }
    }
    steering.set_local_ip(htonl(ec.ip));
    steering.set_active_range(static_cast<uint16_t>(opt.port_base),
                              static_cast<uint16_t>(opt.port_count), kSlots);
    reserve_ports(opt.port_base, opt.port_count);
    // The fill and completion rings are mapped here and can be mapped nowhere else: a
    // child of this process services them, so that a fastnetd that crashes or is killed
    // does not stop its clients' traffic, and hands the rest of the state to the next
    // fastnetd (take_over).
    fflush(stderr);
    keeper = fork();
    if (keeper < 0) {
        say("fork: %s", strerror(errno));
        return 1;
    }
    if (keeper == 0)
        keep();
    }

    listen_fd = listen_unix(path, 0666);
    if (listen_fd < 0) {
        say("cannot listen on %s: %s", path.c_str(), strerror(-listen_fd));
        return 1;
    }
    char ip[INET_ADDRSTRLEN];
    uint32_t be = htonl(ec.ip);
    inet_ntop(AF_INET, &be, ip, sizeof ip);
    say("serving %s (%s), %u queue(s), XDP %s mode, %s mode sockets, on %s%s", ifc.name, ip,
        nqueues, steering.attached_native() ? "native" : "generic", to_string(umem[0].mode()),
        path.c_str(), adopted ? ", taken over from the running ring keeper" : "");
    return 0;
}

// A ring keeper left by an earlier fastnetd still serves the interface: take its state
// (the same fds a client gets) instead of attaching anew. 0, or -errno when there is none.
int Daemon::take_over()
{
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (state_path.size() >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, state_path.c_str(), state_path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        close(fd);
        return -ENOENT;
    }
    ucred cr{};
    socklen_t crlen = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0)
        keeper = cr.pid;
    DaemonRequest rq;
    DaemonReply rp;
    int fds[kDaemonMaxFds];
    uint32_t n = 0;
    int r = daemon_send(fd, &rq, sizeof rq, nullptr, 0);
    if (r == 0)
        r = daemon_recv(fd, &rp, sizeof rp, fds, &n);
    close(fd);
    const uint32_t first = Steering::kMapCount + 1;
    if (r == 0 && (rp.status < 0 || rp.queues == 0 || rp.queues > kMaxXskQueues ||
                   n != first + 2 * rp.queues))
        r = -EPROTO;
    if (r < 0) {
        for (uint32_t i = 0; i < n; i++)
            close(fds[i]);
        say("the ring keeper at %s did not hand over its state (%s)", state_path.c_str(), strerror(-r));
        return r;
    }
    UmemConfig uc;
    uc.frame_count = rp.frame_count;
    uc.frame_size = rp.frame_size;
    uc.fill_size = rp.fill_size;
    uc.comp_size = rp.comp_size;
    nqueues = rp.queues;
    for (uint32_t q = 0; q < nqueues; q++)
        if (umem[q].attach(fds[first + 2 * q], fds[first + 2 * q + 1], uc) < 0) {
            say("%s", umem[q].error());
            return -EPROTO;
        }
    steering.adopt(fds, fds[Steering::kMapCount], static_cast<int>(rp.ifindex), rp.native != 0);
    opt.port_base = rp.port_base;
    opt.port_count = rp.port_count;
    return 0;
}

// The ring keeper: services every queue's fill and completion rings, reaps dead clients,
// and answers a restarted fastnetd on the state socket (root only). It ignores SIGINT
// and SIGTERM and ends by itself once no fastnetd and no client is left.
void Daemon::keep()
{
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    // The fastnetds it serves: its parent, then any that took over. While one lives it
    // reaps the dead clients (through pidfds); the keeper reaps only when none is left.
    for (Watched& w : watched)
        close(w.pidfd);
    watched.clear();
    struct Front {
        pid_t pid;
        int pidfd;   // -1: judged by kill(pid, 0)
    };
    pid_t parent = getppid();
    std::vector<Front> fronts{{parent, open_pidfd(parent)}};
    if (fronts[0].pidfd >= 0 && getppid() != parent) {   // it died before the pidfd opened
        close(fronts[0].pidfd);
        fronts[0].pidfd = -1;
    }
    int sfd = listen_unix(state_path, 0600);
    if (sfd < 0)
        say("ring keeper: cannot listen on %s (%s): a restarted fastnetd cannot take over",
            state_path.c_str(), strerror(-sfd));
    long wait_ns = kServiceMinNs;
    // A batch: an eighth of the fill ring's target. At 1 ms a frame waits in the
    // completion ring no longer, and the fill ring (2 048 frames) lasts 2 Mpps that long.
    const uint64_t batch = std::max<uint32_t>(umem[0].fill_target() / 8, 1);
    uint64_t last_reap = 0;
    for (;;) {
        pollfd p{sfd, POLLIN, 0};
        timespec ts{0, wait_ns};
        int n = ppoll(&p, sfd >= 0 ? 1 : 0, &ts, nullptr);
        // Paced by the work found: sleep about as long as a batch of frames takes to
        // gather, so a loaded interface costs about 1 000 wake-ups a second, not 20 000.
        uint32_t moved = service_rings();
        wait_ns = moved ? std::clamp(static_cast<long>(wait_ns * batch / moved), kServiceMinNs, kServiceMaxNs)
                        : std::min(wait_ns * 2, kServiceMaxNs);
        if (n > 0 && (p.revents & POLLIN)) {
            int c = accept4(sfd, nullptr, nullptr, SOCK_CLOEXEC);
            ucred cr{};
            socklen_t len = sizeof cr;
            if (c >= 0 && getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == 0) {
                DaemonRequest rq;
                uint32_t k = 0;
                pollfd w{c, POLLIN, 0};
                if (poll(&w, 1, 1000) == 1 && daemon_recv(c, &rq, sizeof rq, nullptr, &k) == 0) {
                    int pfd = peer_pidfd(c, cr.pid);   // before the answer, while it waits
                    send_state(c);
                    fronts.push_back({cr.pid, pfd >= 0 ? pfd : -1});
                    say("ring keeper: state handed to fastnetd %d", cr.pid);
                }
            }
            if (c >= 0)
                close(c);
        }
        if (uint64_t now = now_ns(); now - last_reap > kReapNs) {
            last_reap = now;
            bool front = false, client = false;
            for (const Front& f : fronts)
                front = front || (f.pidfd >= 0 ? !exited(f.pidfd) : alive(f.pid));
            if (!front)
                reap();
            for (uint32_t i = 0; i < kSlots; i++)
                client = client || umem[0].slot_pid(i) != 0;
            if (!front && !client)
                break;
        }
    }
    if (sfd >= 0)
        unlink(state_path.c_str());
    say("ring keeper: no fastnetd and no client left; the program goes with the last fd");
    _exit(0);
}

uint32_t Daemon::service_rings()
{
    // Completions into the free list, the fill ring up to its target; no cache here.
    // Returns the frames moved.
    uint32_t moved = 0;
    for (uint32_t q = 0; q < nqueues; q++) {
        if (!umem[q].needs_service())
            continue;
        uint32_t before = umem[q].backlog();
        uint64_t none[1];
        uint32_t n = 0;
        umem[q].service(none, &n, 0, 0, 0, 0);
        uint32_t after = umem[q].backlog();
        moved += before > after ? before - after : 0;
    }
    return moved;
}

// The kill(pid, 0) sweep: without pidfds, and in the keeper once no fastnetd is left.
void Daemon::reap()
{
    uint32_t dead[kSlots];
    uint32_t frames = 0;
    uint32_t n = umem[0].reap_dead_slots(kSlots, dead, &frames);
    forget_slots(dead, n, frames, "its process is gone");
}

void Daemon::forget_slots(const uint32_t* dead, uint32_t n, uint32_t frames, const char* why)
{
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t q = 1; q < nqueues; q++)
            frames += umem[q].reclaim(static_cast<uint8_t>(dead[i] + 1));
        umem[0].control_lock();
        steering.forget_slot(dead[i]);
        umem[0].control_unlock();
        say("slot %u: %s; slot, frames and steering reclaimed", dead[i], why);
    }
}

// Watches a client process from its first request on (conn: its connection, for the
// check that the pidfd is that process).
void Daemon::watch(int conn, pid_t pid)
{
    if (!pidfds || pid <= 0)
        return;
    for (const Watched& w : watched)
        if (w.pid == pid)
            return;
    int pfd = conn >= 0 ? peer_pidfd(conn, pid) : open_pidfd(pid);
    if (pfd >= 0) {
        watched.push_back({pid, pfd});
    } else if (pfd == -ESRCH) {
        // Gone already: its slots, if it took any, go now.
        uint32_t dead[kSlots];
        uint32_t frames = 0;
        uint32_t n = umem[0].reap_slots_of(pid, kSlots, dead, &frames);
        forget_slots(dead, n, frames, "its process is gone");
    }
    // Else (the connection is down already): the next tick watches its slots' holder.
}

// Slot holders not watched yet (clients of a fastnetd this one took over from, or a
// forked client between taking its slot and its first request): watched from now on.
void Daemon::watch_slot_holders()
{
    for (uint32_t i = 0; i < kSlots; i++)
        if (pid_t p = umem[0].slot_pid(i); p > 0)
            watch(-1, p);
}

void Daemon::client_exited(size_t i)
{
    pid_t pid = watched[i].pid;
    close(watched[i].pidfd);
    watched.erase(watched.begin() + static_cast<long>(i));
    clients_exited++;
    uint32_t dead[kSlots];
    uint32_t frames = 0;
    uint32_t n = umem[0].reap_slots_of(pid, kSlots, dead, &frames);
    char why[64];
    snprintf(why, sizeof why, "pid %d exited (pidfd)", pid);
    forget_slots(dead, n, frames, why);
}

void Daemon::handle(int fd)
{
    DaemonHandover msg;   // the largest request; the others are its first part
    const DaemonRequest& rq = msg.rq;
    uint32_t nin = 0;
    int in[kDaemonMaxFds];
    size_t len = 0;
    int r = daemon_recv(fd, &msg, sizeof msg, in, &nin, &len);
    if (r == 0 && (len < sizeof rq || (rq.op != DaemonOp::Handover && len != sizeof rq)))
        r = -EPROTO;
    struct CloseAll {
        int* fds;
        uint32_t* n;
        ~CloseAll()
        {
            for (uint32_t i = 0; i < *n; i++)
                close(fds[i]);
        }
    } close_in{in, &nin};
    if (r < 0 || rq.magic != kDaemonMagic || rq.version != kDaemonVersion) {
        close(fd);
        for (auto* v : {&clients, &refused})
            for (auto& c : *v)
                if (c == fd)
                    c = -1;
        return;
    }
    DaemonReply rp;
    for (auto& c : refused) {
        if (c != fd)
            continue;
        // Answered here, after reading the request: closing a connection with an unread
        // request would reset it and lose the answer.
        ucred cr{};
        socklen_t len = sizeof cr;
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len);
        rp.status = -EACCES;
        snprintf(rp.message, sizeof rp.message,
                 "uid %u is not allowed by fastnetd on %s (--allow-uid, --allow-group)", cr.uid,
                 ifc.name);
        daemon_send(fd, &rp, sizeof rp, nullptr, 0);
        c = -1;
        shutdown(fd, SHUT_WR);
        for (auto& k : clients)
            if (k == fd)
                k = -1;
        close(fd);
        return;
    }
    if (rq.op == DaemonOp::Hello || rq.op == DaemonOp::Xsk || rq.op == DaemonOp::Handover) {
        ucred cr{};
        socklen_t len = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
            watch(fd, cr.pid);
    }
    if (rq.op == DaemonOp::Hello) {
        send_state(fd);
    } else if (rq.op == DaemonOp::Handover) {
        hand_over(fd, msg, len, in, nin);
    } else if (rq.op == DaemonOp::Status) {
        DaemonStatus st;
        snprintf(st.ifname, sizeof st.ifname, "%s", ifc.name);
        st.pid = getpid();
        st.keeper = keeper;
        st.clients = static_cast<uint32_t>(clients.size());
        st.queues = nqueues;
        st.frames = umem[0].frame_count();
        for (uint32_t q = 0; q < nqueues && q < 16; q++) {
            st.free_frames[q] = umem[q].free_frames();
            st.fill_frames[q] = umem[q].fill_level();
        }
        for (uint32_t i = 0; i < kSlots; i++)
            st.slot_pid[i] = umem[0].slot_pid(i);
        st.handovers = handovers;
        st.handovers_refused = handovers_refused;
        st.clients_exited = clients_exited;
        st.pidfd = pidfds;
        daemon_send(fd, &st, sizeof st, nullptr, 0);
    } else if (rq.op == DaemonOp::Xsk && rq.queue < nqueues) {
        int s = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (s < 0) {
            rp.status = -errno;
            snprintf(rp.message, sizeof rp.message, "fastnetd cannot create an AF_XDP socket: %s",
                     strerror(errno));
            daemon_send(fd, &rp, sizeof rp, nullptr, 0);
        } else {
            rp.nfds = 1;
            daemon_send(fd, &rp, sizeof rp, &s, 1);
            close(s);
        }
    } else {
        rp.status = -EINVAL;
        snprintf(rp.message, sizeof rp.message, "unknown request %u (queue %u)",
                 static_cast<uint32_t>(rq.op), rq.queue);
        daemon_send(fd, &rp, sizeof rp, nullptr, 0);
    }
}

// HANDOVER: a client at exit asks for one of its connections to continue in a kernel
// socket. Checked first: the message, a client holding a slot, the connection's
// local address, the window scales, and the memfd (a regular file, sealed against
// shrinking, holding data_len bytes of at most kDaemonHandoverMax): a bad request is
// refused with a reason and counted. The socket is built in repair mode and closed at
// once: the kernel delivers its queue and the FIN as for any closed socket. The
// client steers the flow to the kernel when it reads the answer; until then the
// segments the peer sends reach its engine, which no longer polls.
void Daemon::hand_over(int fd, const DaemonHandover& m, size_t len, const int* fds, uint32_t nfds)
{
    DaemonReply rp;
    ucred cr{};
    socklen_t crlen = sizeof cr;
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen);
    auto refuse = [&](int err, const char* fmt, auto... args) {
        rp.status = -err;
        snprintf(rp.message, sizeof rp.message, fmt, args...);
        handovers_refused++;
        say("pid %d: handover refused: %s", cr.pid, rp.message);
        daemon_send(fd, &rp, sizeof rp, nullptr, 0);
    };
    if (len != sizeof m)
        return refuse(EPROTO, "a HANDOVER request of %zu bytes (this fastnetd reads %zu)", len, sizeof m);
    if (nfds != 1)
        return refuse(EINVAL, "a HANDOVER request with %u fds (one memfd expected)", nfds);
    bool client = false;
    for (uint32_t i = 0; i < kSlots; i++)
        client = client || umem[0].slot_pid(i) == cr.pid;
    if (!client)
        return refuse(EPERM, "pid %d holds no slot on %s", cr.pid, ifc.name);
    if (m.local_ip != local_ip || m.local_port == 0 || m.remote_port == 0 || m.remote_ip == 0 ||
        m.remote_ip == local_ip)
        return refuse(EINVAL, "not a connection of %s", ifc.name);
    if (m.snd_wscale > 14 || m.rcv_wscale > 14 || m.mss == 0)   // RFC 7323 2.3: at most 14
        return refuse(EINVAL, "window scale %u/%u or MSS %u out of range", m.snd_wscale, m.rcv_wscale, m.mss);
    if (m.data_len > kDaemonHandoverMax)
        return refuse(EMSGSIZE, "%u bytes to hand over (at most %u)", m.data_len, kDaemonHandoverMax);
    struct stat sb{};
    int seals = fcntl(fds[0], F_GET_SEALS);
    if (fstat(fds[0], &sb) < 0 || !S_ISREG(sb.st_mode) || seals < 0 || !(seals & F_SEAL_SHRINK) ||
        sb.st_size < static_cast<off_t>(m.data_len))
        return refuse(EINVAL, "the data fd is not a memfd sealed against shrinking with %u bytes", m.data_len);
    void* data = nullptr;
    if (m.data_len) {
        data = mmap(nullptr, m.data_len, PROT_READ, MAP_SHARED, fds[0], 0);
        if (data == MAP_FAILED)
            return refuse(errno, "cannot map the data: %s", strerror(errno));
    }
    const char* step = "";
    int kfd = repair_into_kernel(from_daemon_handover(m), static_cast<const uint8_t*>(data), m.data_len, &step);
    if (data)
        munmap(data, m.data_len);
    if (kfd < 0)
        return refuse(-kfd, "%s: %s", step, strerror(-kfd));
    close(kfd);   // the kernel delivers the queue, then its FIN
    handovers++;
    daemon_send(fd, &rp, sizeof rp, nullptr, 0);
}

// The HELLO answer: the program's maps and link, each queue's memfd and UMEM socket.
void Daemon::send_state(int fd)
{
    DaemonReply rp;
    {
        int fds[kDaemonMaxFds];
        int link = -1;
        steering.export_fds(fds, &link);
        uint32_t n = Steering::kMapCount;
        fds[n++] = link;
        for (uint32_t q = 0; q < nqueues; q++) {
            fds[n++] = umem[q].memfd();
            fds[n++] = umem[q].fd();
        }
        const UmemConfig& uc = umem[0].config();
        rp.ifindex = static_cast<uint32_t>(ifc.ifindex);
        rp.native = steering.attached_native();
        rp.queues = nqueues;
        rp.frame_count = uc.frame_count;
        rp.frame_size = uc.frame_size;
        rp.fill_size = uc.fill_size;
        rp.comp_size = uc.comp_size;
        rp.port_base = opt.port_base;
        rp.port_count = opt.port_count;
        rp.nfds = n;
        daemon_send(fd, &rp, sizeof rp, fds, n);
    }
}

void Daemon::serve()
{
    long wait_ns = kServiceMinNs;
    uint64_t last_reap = 0;
    while (!g_stop) {
        std::vector<pollfd> p;
        p.push_back({listen_fd, POLLIN, 0});
        for (int c : clients)
            p.push_back({c, POLLIN, 0});
        const size_t first_pidfd = p.size();
        for (const Watched& w : watched)
            p.push_back({w.pidfd, POLLIN, 0});
        timespec ts{0, wait_ns};
        int n = ppoll(p.data(), p.size(), &ts, nullptr);
        if (n < 0 && errno != EINTR)
            break;
        // The keeper services the rings; the front wakes for clients and reaping.
        wait_ns = 100'000'000;
        if (n > 0) {
            if (p[0].revents & POLLIN) {
                int c = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    ucred cr{};
                    socklen_t len = sizeof cr;
                    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || !allowed(opt, cr)) {
                        say("refused pid %d (uid %u)", cr.pid, cr.uid);
                        refused.push_back(c);
                    }
                    clients.push_back(c);
                }
            }
            // Exits first: a pid is reaped before a new request could watch it anew.
            for (size_t i = p.size(); i-- > first_pidfd;)
                if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                    client_exited(i - first_pidfd);
            for (size_t i = 1; i < first_pidfd; i++)
                if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                    handle(p[i].fd);
            std::vector<int> live;
            for (int c : clients)
                if (c >= 0)
                    live.push_back(c);
            clients.swap(live);
            live.clear();
            for (int c : refused)
                if (c >= 0)
                    live.push_back(c);
            refused.swap(live);
        }
        if (uint64_t now = now_ns(); now - last_reap > kReapNs) {
            last_reap = now;
            if (pidfds)
                watch_slot_holders();
            else
                reap();
        }
    }
}

void Daemon::stop()
{
    if (!path.empty())
        unlink(path.c_str());
    for (int c : clients)
        close(c);
    if (listen_fd >= 0)
        close(listen_fd);
    bool client = false;
    for (uint32_t i = 0; i < kSlots; i++)
        client = client || umem[0].slot_pid(i) != 0;
    if (client || keeper <= 0) {
        say("stopping; the ring keeper serves the clients until they exit");
        return;
    }
    // No client left: the keeper would end by itself within its next reaping round
    // (kReapNs), holding the XDP program attached until then. Ended here, a stopped
    // fastnetd leaves the interface free at once (a standalone process can attach).
    int pfd = open_pidfd(keeper);
    kill(keeper, SIGKILL);
    if (pfd >= 0) {
        pollfd p{pfd, POLLIN, 0};
        poll(&p, 1, 2000);
        close(pfd);
    }
    if (!adopted)
        waitpid(keeper, nullptr, 0);
    if (!state_path.empty())
        unlink(state_path.c_str());
    say("stopping; no client left, the ring keeper is gone");
}

}  // namespace

int main(int argc, char** argv)
{
    Daemon d;
    d.opt = parse(argc, argv);
    if (geteuid() != 0) {
        say("must run as root (it attaches XDP programs and creates AF_XDP sockets)");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    if (int r = d.start(); r != 0) {
        d.stop();
        return r;
    }
    d.serve();
    d.stop();
    return 0;
}
