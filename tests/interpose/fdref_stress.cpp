// Several threads at once close, dup2 over, move and use fastnet sockets (run preloaded
// on the test bed by fdref_stress.sh, also under ThreadSanitizer). What it checks:
//   - a call blocked on a socket (recv, send, accept, epoll_wait) whose fd another thread
//     closes or dup2()s over returns promptly with 0 or an error, and never with data:
//     the entry it holds must not be recycled for another socket under it;
//   - meanwhile, connections that churn (connect, dup, close: the recycled entries) and
//     accepted connections served from other threads (they move to the serving thread's
//     engine) carry every byte, each to the connection it was sent on.
// Every stream carries a pattern unique to its connection, so bytes that reach the wrong
// socket are seen.
// Usage: fdref_stress <peer-ip> <echo-port> <never-reads-port> <listen-port> <seconds>
// Exit 0 when every check held; the last line is a summary.
#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <functional>
#include <mutex>
#include <netinet/in.h>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

sockaddr_in echo_addr{}, silent_addr{};   // silent: a peer that never reads
int listen_port = 0;
std::atomic<bool> stop{false};
std::atomic<bool> killer_stop{false};   // once every thread that queues victims is gone
std::atomic<int> failures{0};
std::atomic<uint32_t> next_tag{1};
std::atomic<long> churned{0}, served{0}, victims{0}, max_wake_us{0}, stalls{0};
int null_fd = -1;

uint64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fprintf(stderr, " (errno %s)\n", strerror(errno));        \
            failures.fetch_add(1);                                    \
        }                                                             \
    } while (0)

// Byte i of connection `tag`'s stream.
uint8_t pattern(uint32_t tag, size_t i) {
    uint32_t x = tag * 2654435761u + static_cast<uint32_t>(i) * 40503u;
    return static_cast<uint8_t>(x ^ (x >> 13) ^ (x >> 24));
}

bool send_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

// One round on a connection to an echo: `len` bytes of the connection's pattern out, the
// same back (through an epoll set when ep >= 0), byte-exact.
// stalled (churned connections): a round that got no byte back before the receive
// timeout is counted there instead of failing, and fails the run above 5. A churned
// connection to the kernel echo peer used to see no echo, or no handshake, about once in
// 2 500 (idle engines held every free frame: docs/DESIGN.md "Shared UMEM"); what this
// test is about (a call acting on another socket, data crossing connections, a crash)
// fails at once.
bool echo_round(int fd, int ep, uint32_t tag, size_t off, size_t len, bool* stalled = nullptr) {
    std::vector<uint8_t> out(len), in(len);
    for (size_t i = 0; i < len; ++i) out[i] = pattern(tag, off + i);
    if (!send_all(fd, out.data(), len)) {
        CHECK(false, "send on connection %u", tag);
        return false;
    }
    size_t got = 0;
    while (got < len) {
        if (ep >= 0) {
            epoll_event ev{};
            int n = epoll_wait(ep, &ev, 1, 10000);
            if (n != 1 || ev.data.u32 != tag) {
                char b[1];
                ssize_t q = recv(fd, b, 1, MSG_PEEK | MSG_DONTWAIT);   // readiness or data lost?
                CHECK(false, "epoll_wait for connection %u: %d event(s), data %u; %zu of %zu bytes back, "
                      "recv now says %zd", tag, n, ev.data.u32, got, len, q);
                return false;
            }
        }
        ssize_t r = recv(fd, in.data() + got, len - got, 0);
        if (r < 0 && errno == EAGAIN && got == 0 && stalled) {
            *stalled = true;
            return false;
        }
        if (r <= 0) {
            CHECK(false, "recv on connection %u: %zd after %zu of %zu bytes", tag, r, got, len);
            return false;
        }
        got += static_cast<size_t>(r);
    }
    if (in != out) {
        size_t at = std::mismatch(in.begin(), in.end(), out.begin()).first - in.begin();
        CHECK(false, "connection %u: byte %zu differs (another connection's data?)", tag, off + at);
        return false;
    }
    return true;
}

// A stalled connection names itself on stderr (its local port, for a packet capture).
void note_stall(int fd, const char* what) {
    sockaddr_in a{};
    socklen_t l = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
    fprintf(stderr, "stall: %s, local port %u\n", what, ntohs(a.sin_port));
}

// -1: failed; -2: no handshake within 10 s (counted as a stall by the caller).
int connect_to(const sockaddr_in& a) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    timeval tv{10, 0};   // an echo or a handshake that never comes is a failure, not a hang
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        bool timed_out = errno == EINPROGRESS;   // SO_SNDTIMEO on a connect, as Linux
        if (timed_out) note_stall(fd, "no handshake");
        close(fd);
        return timed_out ? -2 : -1;
    }
    return fd;
}

int make_listener(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 64) != 0) {
        CHECK(false, "listener on port %d", port);
        close(fd);
        return -1;
    }
    return fd;
}

// --- the killer: ends a blocked call by closing (or dup2()ing over) its fd -------------

struct Victim {
    Victim(int f, pid_t t, bool d, const char* w) : fd(f), tid(t), use_dup2(d), what(w) {}
    int fd;
    pid_t tid;
    bool use_dup2;
    const char* what;
    std::atomic<ssize_t> ret{-2};
    std::atomic<int> err{0};
    uint64_t killed_at = 0;
    bool done = false;
};
std::mutex kill_mu;
std::condition_variable kill_cv;
std::deque<Victim*> kill_queue;

// Whether thread tid sleeps in one of the calls a blocked socket call ends in.
bool blocked_in_wait(pid_t tid) {
    char path[64], buf[64] = {};
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) return false;
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n <= 0) return false;
    long nr = strtol(buf, nullptr, 10);
    return nr == SYS_ppoll || nr == SYS_poll || nr == SYS_epoll_wait || nr == SYS_epoll_pwait ||
           nr == 441 /* epoll_pwait2 */;
}

void killer() {
    for (;;) {
        Victim* v;
        {
            std::unique_lock g(kill_mu);
            kill_cv.wait(g, [] { return !kill_queue.empty() || killer_stop.load(); });
            if (kill_queue.empty()) return;
            v = kill_queue.front();
            kill_queue.pop_front();
        }
        // Only once the call is asleep: a close before it looked the fd up would test
        // the application's own race (the number may name another socket by then).
        // Seen once asleep in the call's wait is enough: it does not return before the
        // close (no data comes, nothing is read on the other side).
        uint64_t give_up = now_us() + 5'000'000;
        bool seen = false;
        while (!(seen = blocked_in_wait(v->tid)) && now_us() < give_up) usleep(1000);
        if (!seen) {
            char path[64], buf[128] = {};
            snprintf(path, sizeof path, "/proc/self/task/%d/syscall", v->tid);
            int f = open(path, O_RDONLY | O_CLOEXEC);
            if (f >= 0) { if (read(f, buf, sizeof buf - 1) < 0) buf[0] = 0; close(f); }
            CHECK(false, "%s on fd %d never blocked (returned %zd, errno %d; syscall %s)", v->what, v->fd,
                  v->ret.load(), v->err.load(), buf);
        }
        usleep(2000);   // let it sleep properly
        std::lock_guard g(kill_mu);
        v->killed_at = now_us();
        if (v->use_dup2) CHECK(dup2(null_fd, v->fd) == v->fd, "dup2 over fd %d", v->fd);
        else CHECK(close(v->fd) == 0, "close fd %d", v->fd);
        v->done = true;
        kill_cv.notify_all();
    }
}

// Runs call() (blocking on fd) while the killer closes fd under it. The call must end
// within 2 s of the close, with 0 or -1 (never data). dup2: the number is /dev/null after.
void blocked_call_ends(int fd, bool use_dup2, const char* what, const std::function<ssize_t()>& call) {
    Victim v{fd, static_cast<pid_t>(syscall(SYS_gettid)), use_dup2, what};
    {
        std::lock_guard g(kill_mu);
        kill_queue.push_back(&v);
    }
    kill_cv.notify_all();
    ssize_t r = call();
    int err = errno;
    v.err = err;
    v.ret = r;
    uint64_t end = now_us();
    std::unique_lock g(kill_mu);
    kill_cv.wait(g, [&] { return v.done; });
    CHECK(r <= 0, "%s on fd %d returned %zd after a %s (another socket's data?)", what, fd, r,
          use_dup2 ? "dup2 over it" : "close");
    CHECK(v.killed_at <= end, "%s on fd %d returned %zd (errno %d) before the fd was closed", what, fd, r, err);
    long us = static_cast<long>(end - std::min(end, v.killed_at));
    CHECK(us < 2'000'000, "%s on fd %d took %ld ms to end after the close", what, fd, us / 1000);
    long m = max_wake_us.load();
    while (us > m && !max_wake_us.compare_exchange_weak(m, us)) {}
    victims.fetch_add(1);
    g.unlock();
    if (use_dup2) close(fd);   // now /dev/null's
}

// --- churn: outgoing connections made, dup'd and closed as fast as they go ------------

void churn(int id) {
    for (unsigned n = 0; !stop.load(); ++n) {
        if (n % 5 == 4) {
            // A send blocked against a peer that never reads, closed under it.
            int fd = connect_to(silent_addr);
            if (fd == -2) stalls.fetch_add(1);
            CHECK(fd >= 0 || fd == -2, "connect to the silent peer");
            if (fd < 0) continue;
            int buf = 4096;
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
            blocked_call_ends(fd, n % 2, "send", [fd] {
                // One call, more than the peer and both sides' buffers can ever take:
                // it is still in progress when its fd is closed, and the fd is not used
                // again after it (the number may name another socket by then).
                static thread_local std::vector<uint8_t> big(64 << 20, 0x5a);
                ssize_t w = send(fd, big.data(), big.size(), MSG_NOSIGNAL);
                return w < static_cast<ssize_t>(big.size()) ? ssize_t(-1) : w;
            });
            continue;
        }
        int fd = connect_to(echo_addr);
        if (fd == -2) stalls.fetch_add(1);
        CHECK(fd >= 0 || fd == -2, "churn %d: connect to the echo peer", id);
        if (fd < 0) continue;
        uint32_t tag = next_tag.fetch_add(1);
        if (n % 3 == 1) {   // continue on a dup, the first number closed
            int d = dup(fd);
            CHECK(d >= 0, "dup");
            close(fd);
            fd = d;
        }
        bool stalled = false;
        echo_round(fd, -1, tag, 0, 1500, &stalled);
        if (stalled) {
            stalls.fetch_add(1);
            note_stall(fd, "no echo");
        }
        CHECK(close(fd) == 0, "close a churned connection");
        churned.fetch_add(1);
    }
}

// --- served connections: accepted on one thread, served on others (they move) ---------

std::mutex q_mu;
std::condition_variable q_cv;
std::deque<int> accepted;

void acceptor(int lfd) {
    for (;;) {
        int c = accept(lfd, nullptr, nullptr);
        if (c < 0) {
            // The listener was closed under the blocked accept (end of the run).
            CHECK(stop.load() && (errno == EBADF || errno == EINVAL), "accept");
            return;
        }
        std::lock_guard g(q_mu);
        accepted.push_back(c);
        q_cv.notify_one();
    }
}

void worker(int id) {
    for (unsigned n = 0;; ++n) {
        int fd;
        {
            std::unique_lock g(q_mu);
            q_cv.wait(g, [] { return !accepted.empty() || stop.load(); });
            if (accepted.empty()) return;
            fd = accepted.front();
            accepted.pop_front();
        }
        uint32_t tag = next_tag.fetch_add(1);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = tag;
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl add");
        // Three rounds from this thread: the connection moves to its engine.
        bool ok = true;
        for (int r = 0; r < 3 && ok; ++r) ok = echo_round(fd, ep, tag, size_t(r) * 3000, 3000);
        served.fetch_add(1);
        switch (ok ? n % 4 : 3) {
        case 0: {   // a recv blocked on the moved connection; the fd closed under it
            char b[256];
            blocked_call_ends(fd, n % 8 == 4, "recv", [&] { return recv(fd, b, sizeof b, 0); });
            close(ep);
            break;
        }
        case 1: {   // an epoll_wait blocked on the set; the epoll fd closed under it
            epoll_event got{};
            blocked_call_ends(ep, n % 8 == 5, "epoll_wait", [&] { return ssize_t(epoll_wait(ep, &got, 1, 5000)); });
            close(fd);
            break;
        }
        case 2: {   // dup2 of a fresh connection onto this one's number, then served
            int other = connect_to(echo_addr);
            if (other == -2) stalls.fetch_add(1);
            CHECK(other >= 0 || other == -2, "worker %d: connect", id);
            if (other >= 0) {
                CHECK(dup2(other, fd) == fd, "dup2 a connection over another");
                close(other);
                uint32_t t2 = next_tag.fetch_add(1);
                echo_round(fd, -1, t2, 0, 2000);
            }
            close(ep);
            close(fd);
            break;
        }
        default:
            close(ep);
            close(fd);
        }
    }
}

// A blocked accept on a listener closed under it; the port is free again afterwards.
void accept_victim(int port) {
    for (unsigned n = 0; !stop.load(); ++n) {
        int l = make_listener(port);
        if (l < 0) return;
        blocked_call_ends(l, n % 2, "accept", [l] { return ssize_t(accept(l, nullptr, nullptr)); });
        usleep(20000);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s peer-ip echo-port never-reads-port listen-port seconds\n", argv[0]);
        return 2;
    }
    echo_addr.sin_family = AF_INET;
    inet_pton(AF_INET, argv[1], &echo_addr.sin_addr);
    silent_addr = echo_addr;
    echo_addr.sin_port = htons(static_cast<uint16_t>(atoi(argv[2])));
    silent_addr.sin_port = htons(static_cast<uint16_t>(atoi(argv[3])));
    listen_port = atoi(argv[4]);
    int seconds = atoi(argv[5]);
    alarm(static_cast<unsigned>(seconds) + 40);   // a hang is a failure, not a stuck CI
    null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    int lfd = make_listener(listen_port);
    if (lfd < 0) return 1;
    printf("listening\n");
    fflush(stdout);
    std::vector<std::thread> ts;
    ts.emplace_back(killer);
    ts.emplace_back(acceptor, lfd);
    for (int i = 0; i < 3; ++i) ts.emplace_back(worker, i);
    for (int i = 0; i < 2; ++i) ts.emplace_back(churn, i);
    ts.emplace_back(accept_victim, listen_port + 1);
    sleep(static_cast<unsigned>(seconds));
    stop.store(true);
    {
        std::lock_guard g(q_mu);
        q_cv.notify_all();
    }
    // The acceptor is asleep in accept(): closing the listener ends it.
    close(lfd);
    for (size_t i = 1; i < ts.size(); ++i) ts[i].join();
    {
        std::lock_guard g(kill_mu);
        killer_stop.store(true);
        kill_cv.notify_all();
    }
    ts[0].join();
    {
        std::lock_guard g(q_mu);
        for (int fd : accepted) close(fd);
    }
    CHECK(churned.load() >= 5, "only %ld churned connections", churned.load());
    CHECK(served.load() >= 5, "only %ld served connections", served.load());
    CHECK(victims.load() >= 5, "only %ld blocked calls ended by a close", victims.load());
    CHECK(stalls.load() <= 5, "%ld fresh connections saw no handshake or no echo (more than the known rare stall)",
          stalls.load());
    printf("summary: churned=%ld served=%ld blocked_calls_closed=%ld max_wake_ms=%.1f stalls=%ld failures=%d\n",
           churned.load(), served.load(), victims.load(), max_wake_us.load() / 1000.0, stalls.load(),
           failures.load());
    fflush(stdout);
    sleep(2);   // the counters are published a little later (fdref_stress.sh reads them)
    return failures.load() == 0 ? 0 : 1;
}
