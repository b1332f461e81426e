// The libc contract of fastnet sockets that really run on the engine: this program runs
// preloaded in the test bed's server namespace (accel_testbed.sh), against kernel peers
// (peer.py) in the client namespace. Every connection it opens to the peer is an active
// open from fastnet's port range — a kernel socket could not use it (reserved) — which
// the tests check, so a silent fallback to the kernel fails them.
// Environment: FASTNET_TEST_PEER, FASTNET_TEST_LOCAL, FASTNET_TEST_BASE, FASTNET_TEST_CLI_NS.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <string>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/uio.h>
#include <sys/sendfile.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <dirent.h>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "fastnet_fd.hpp"

namespace {

const char* env(const char* n) {
    const char* v = getenv(n);
    if (!v) FAIL("missing " << n << " (run through accel_testbed.sh)");
    return v;
}

uint16_t base() { return static_cast<uint16_t>(atoi(env("FASTNET_TEST_BASE"))); }
uint16_t echo_port() { return base() + 1; }
uint16_t reset_port() { return base() + 2; }
uint16_t silent_port() { return base() + 3; }
uint16_t late_port() { return base() + 4; }

sockaddr_in addr(const char* ip, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

sockaddr* sa(sockaddr_in& a) { return reinterpret_cast<sockaddr*>(&a); }

// Runs a command in the client namespace, on the kernel (never preloaded).
void in_cli(const std::string& cmd) {
    std::string s = std::string("env -u LD_PRELOAD ip netns exec ") + env("FASTNET_TEST_CLI_NS") + " " + cmd;
    REQUIRE(system(s.c_str()) == 0);
}

// A kernel client in the client namespace connects to us, sends `msg`, lingers.
void kernel_client_async(uint16_t port, const char* msg) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import socket,time; s=socket.create_connection((\"%s\",%u)); "
             "s.sendall(b\"%s\"); time.sleep(2)' > /dev/null 2>&1 &",
             env("FASTNET_TEST_LOCAL"), port, msg);
    in_cli(cmd);
}

// A fastnet socket's number is a placeholder (a dup of the library's anchor eventfd);
// a kernel socket's is a socket: /proc tells them apart.
bool in_active_range(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, sa(a), &len) == 0);
    uint16_t port = ntohs(a.sin_port);
    CAPTURE(port);
    return port >= 40000 && port < 40000 + 16384;
}

int connect_to(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a = addr(env("FASTNET_TEST_PEER"), port);
    REQUIRE(connect(fd, sa(a), sizeof a) == 0);
    CHECK(in_active_range(fd));
    CHECK(served_by_fastnet(fd));
    return fd;
}

std::atomic<int> g_sigpipes{0};
void on_sigpipe(int) { ++g_sigpipes; }
void on_sigusr1(int) {}

}  // namespace

TEST_CASE("a connection to a kernel echo server carries 1 MB each way", "[data]") {
    int fd = connect_to(echo_port());
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    REQUIRE(getpeername(fd, sa(peer), &len) == 0);
    CHECK(ntohs(peer.sin_port) == echo_port());

    std::vector<char> out(1 << 20), in(out.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(i * 7 + i / 4096);
    // The reader is another thread: a socket is usable from any thread.
    std::thread reader([&] {
        size_t got = 0;
        while (got < in.size()) {
            ssize_t r = recv(fd, in.data() + got, in.size() - got, 0);
            if (r <= 0) break;
            got += static_cast<size_t>(r);
        }
    });
    size_t sent = 0;
    while (sent < out.size()) {
        ssize_t w = send(fd, out.data() + sent, std::min<size_t>(out.size() - sent, 100000), 0);
        REQUIRE(w > 0);
        sent += static_cast<size_t>(w);
    }
    reader.join();
    CHECK(in == out);
    CHECK(close(fd) == 0);
}

TEST_CASE("connecting to a port nobody listens on fails with ECONNREFUSED", "[errno]") {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = addr(env("FASTNET_TEST_PEER"), base() + 9);
    errno = 0;
    CHECK(connect(fd, sa(a), sizeof a) == -1);
    CHECK(errno == ECONNREFUSED);
    close(fd);

    // Non-blocking: EINPROGRESS, then the error through poll and SO_ERROR.
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    errno = 0;
    CHECK(connect(fd, sa(a), sizeof a) == -1);
    CHECK(errno == EINPROGRESS);
    CHECK(in_active_range(fd));
    pollfd p{fd, POLLOUT, 0};
    REQUIRE(poll(&p, 1, 3000) == 1);
    CHECK((p.revents & POLLERR));
    int err = 0;
    socklen_t len = sizeof err;
    REQUIRE(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
    CHECK(err == ECONNREFUSED);
    close(fd);
}

TEST_CASE("non-blocking receives with nothing to read fail with EAGAIN", "[errno]") {
    int fd = connect_to(silent_port());
    char buf[8];
    errno = 0;
    CHECK(recv(fd, buf, sizeof buf, MSG_DONTWAIT) == -1);
    CHECK(errno == EAGAIN);
    REQUIRE(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK));
    errno = 0;
    CHECK(read(fd, buf, sizeof buf) == -1);
    CHECK(errno == EAGAIN);
    int n = -1;
    REQUIRE(ioctl(fd, FIONREAD, &n) == 0);
    CHECK(n == 0);
    close(fd);
}

TEST_CASE("SO_RCVTIMEO bounds a blocking receive on an accelerated connection", "[blocking]") {
    int fd = connect_to(silent_port());
    timeval tv{0, 200000};
    REQUIRE(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    timeval back{};
    socklen_t len = sizeof back;
    REQUIRE(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &back, &len) == 0);
    CHECK(back.tv_usec == 200000);
    char buf[4];
    auto t0 = std::chrono::steady_clock::now();
    errno = 0;
    CHECK(recv(fd, buf, sizeof buf, 0) == -1);
    CHECK(errno == EAGAIN);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    CHECK(ms >= 180);
    CHECK(ms < 2000);
    close(fd);
}

TEST_CASE("a signal handler interrupts a blocking accelerated receive with EINTR", "[blocking]") {
    struct sigaction act{}, old{};
    act.sa_handler = on_sigusr1;
    sigaction(SIGUSR1, &act, &old);
    int fd = connect_to(silent_port());
    pthread_t self = pthread_self();
    std::thread t([self] {
        usleep(150000);
        pthread_kill(self, SIGUSR1);
    });
    char buf[4];
    errno = 0;
    CHECK(recv(fd, buf, sizeof buf, 0) == -1);
    CHECK(errno == EINTR);
    t.join();
    close(fd);
    sigaction(SIGUSR1, &old, nullptr);
}

TEST_CASE("writing to a reset connection fails with EPIPE, with SIGPIPE unless MSG_NOSIGNAL", "[errno]") {
    struct sigaction act{}, old{};
    act.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &act, &old);
    int fd = connect_to(reset_port());
    pollfd p{fd, POLLIN, 0};
    REQUIRE(poll(&p, 1, 3000) == 1);   // the RST
    char buf[16] = "x";
    errno = 0;
    CHECK(recv(fd, buf, sizeof buf, 0) == -1);
    CHECK(errno == ECONNRESET);
    g_sigpipes = 0;
    errno = 0;
    CHECK(send(fd, buf, sizeof buf, MSG_NOSIGNAL) == -1);
    CHECK(errno == EPIPE);
    CHECK(g_sigpipes == 0);
    errno = 0;
    CHECK(write(fd, buf, sizeof buf) == -1);
    CHECK(errno == EPIPE);
    CHECK(g_sigpipes == 1);
    close(fd);
    sigaction(SIGPIPE, &old, nullptr);
}

TEST_CASE("binding an address in use fails with EADDRINUSE", "[errno]") {
    sockaddr_in a = addr(env("FASTNET_TEST_LOCAL"), base() + 20);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(bind(l, sa(a), sizeof a) == 0);
    REQUIRE(listen(l, 8) == 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    errno = 0;
    CHECK(bind(fd, sa(a), sizeof a) == -1);
    CHECK(errno == EADDRINUSE);
    sockaddr_in any = addr("0.0.0.0", base() + 20);
    errno = 0;
    CHECK(bind(fd, sa(any), sizeof any) == -1);
    CHECK(errno == EADDRINUSE);
    close(fd);
    close(l);
}

TEST_CASE("an unconnected fastnet socket answers ENOTCONN, and EPIPE on send", "[errno]") {
    struct sigaction act{}, old{};
    act.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &act, &old);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    socklen_t len = sizeof a;
    char c = 0;
    errno = 0;
    CHECK(recv(fd, &c, 1, 0) == -1);
    CHECK(errno == ENOTCONN);
    errno = 0;
    CHECK(getpeername(fd, sa(a), &len) == -1);
    CHECK(errno == ENOTCONN);
    g_sigpipes = 0;
    errno = 0;
    CHECK(send(fd, &c, 1, 0) == -1);
    CHECK(errno == EPIPE);
    CHECK(g_sigpipes == 1);
    close(fd);
    sigaction(SIGPIPE, &old, nullptr);
}

TEST_CASE("epoll over an accelerated listener, its connection and a pipe", "[epoll]") {
    uint16_t port = base() + 30;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in any = addr("0.0.0.0", port);
    REQUIRE(bind(l, sa(any), sizeof any) == 0);
    REQUIRE(listen(l, 16) == 0);
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0xabc0000000000001ull;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) == 0);
    ev.data.u64 = 0xabc0000000000002ull;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, pfd[0], &ev) == 0);
    errno = 0;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) == -1);
    CHECK(errno == EEXIST);
    epoll_event out[8];
    CHECK(epoll_wait(ep, out, 8, 0) == 0);

    kernel_client_async(port, "hello");
    REQUIRE(epoll_wait(ep, out, 8, 3000) == 1);
    CHECK(out[0].data.u64 == 0xabc0000000000001ull);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int c = accept4(l, sa(peer), &len, SOCK_NONBLOCK);
    REQUIRE(c >= 0);
    // system() forked a shell meanwhile: the listener must still be the engine's.
    CHECK(served_by_fastnet(c));
    char ip[32];
    inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
    CHECK(std::string(ip) == env("FASTNET_TEST_PEER"));

    // Edge-triggered and one-shot on the connection.
    ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
    ev.data.u64 = 0xabc0000000000003ull;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) == 0);
    int n = epoll_wait(ep, out, 8, 3000);
    REQUIRE(n == 1);
    CHECK(out[0].data.u64 == 0xabc0000000000003ull);
    CHECK((out[0].events & EPOLLIN));
    CHECK(epoll_wait(ep, out, 8, 0) == 0);          // edge: once
    char buf[16];
    REQUIRE(recv(c, buf, sizeof buf, 0) == 5);
    CHECK(std::string(buf, 5) == "hello");

    // The pipe (a kernel fd) is reported beside them, with its own data.
    REQUIRE(write(pfd[1], "p", 1) == 1);
    REQUIRE(epoll_wait(ep, out, 8, 1000) == 1);
    CHECK(out[0].data.u64 == 0xabc0000000000002ull);
    char pc;
    REQUIRE(read(pfd[0], &pc, 1) == 1);

    // MOD to level-triggered writable, then one-shot.
    ev.events = EPOLLOUT;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev) == 0);
    CHECK(epoll_wait(ep, out, 8, 0) == 1);
    CHECK(epoll_wait(ep, out, 8, 0) == 1);
    ev.events = EPOLLOUT | EPOLLONESHOT;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev) == 0);
    CHECK(epoll_wait(ep, out, 8, 0) == 1);
    CHECK(epoll_wait(ep, out, 8, 0) == 0);

    // The peer closes (after its 2 s): EPOLLRDHUP.
    ev.events = EPOLLIN | EPOLLRDHUP;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev) == 0);
    REQUIRE(epoll_wait(ep, out, 8, 5000) == 1);
    CHECK((out[0].events & EPOLLRDHUP));
    CHECK(recv(c, buf, sizeof buf, 0) == 0);

    // DEL, and close removes.
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_DEL, c, nullptr) == 0);
    errno = 0;
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, c, nullptr) == -1);
    CHECK(errno == ENOENT);
    close(c);
    close(l);
    CHECK(epoll_wait(ep, out, 8, 0) == 0);
    close(ep);
    close(pfd[0]);
    close(pfd[1]);
}

TEST_CASE("an accelerated listener also accepts loopback clients", "[listen]") {
    uint16_t port = base() + 40;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in any = addr("0.0.0.0", port);
    REQUIRE(bind(l, sa(any), sizeof any) == 0);
    REQUIRE(listen(l, 16) == 0);
    int k = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in lo = addr("127.0.0.1", port);
    REQUIRE(connect(k, sa(lo), sizeof lo) == 0);   // handed to the kernel
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int c = accept(l, sa(peer), &len);
    REQUIRE(c >= 0);
    CHECK(peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    CHECK_FALSE(served_by_fastnet(c));   // the kernel side of the listener
    CHECK_FALSE(served_by_fastnet(k));   // a loopback connect is handed to the kernel
    REQUIRE(write(k, "lo", 2) == 2);
    char buf[4];
    REQUIRE(read(c, buf, sizeof buf) == 2);
    close(c);
    close(k);

    kernel_client_async(port, "xdp");   // and one through the accelerated interface
    c = accept(l, sa(peer), &len);
    REQUIRE(c >= 0);
    CHECK(served_by_fastnet(c));
    CHECK(read(c, buf, sizeof buf) == 3);
    close(c);
    close(l);
}

TEST_CASE("poll and select see an accelerated socket beside a pipe", "[poll]") {
    int fd = connect_to(echo_port());
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    pollfd p[2] = {{fd, POLLIN, 0}, {pfd[0], POLLIN, 0}};
    CHECK(poll(p, 2, 0) == 0);
    REQUIRE(send(fd, "echo", 4, 0) == 4);
    REQUIRE(poll(p, 2, 3000) == 1);
    CHECK(p[0].revents == POLLIN);
    CHECK(p[1].revents == 0);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    FD_SET(pfd[0], &rd);
    timeval tv{1, 0};
    REQUIRE(select(std::max(fd, pfd[0]) + 1, &rd, nullptr, nullptr, &tv) == 1);
    CHECK(FD_ISSET(fd, &rd));
    CHECK_FALSE(FD_ISSET(pfd[0], &rd));
    char buf[8];
    REQUIRE(recv(fd, buf, sizeof buf, 0) == 4);
    REQUIRE(write(pfd[1], "x", 1) == 1);
    REQUIRE(poll(p, 2, 1000) == 1);
    CHECK(p[1].revents == POLLIN);
    close(fd);
    close(pfd[0]);
    close(pfd[1]);
}

TEST_CASE("a dual-stack IPv6 socket reaches an IPv4 peer through the engine", "[ipv6]") {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(echo_port());
    std::string mapped = std::string("::ffff:") + env("FASTNET_TEST_PEER");
    inet_pton(AF_INET6, mapped.c_str(), &a.sin6_addr);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    sockaddr_in6 local{};
    socklen_t len = sizeof local;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0);
    CHECK(local.sin6_family == AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&local.sin6_addr));
    CHECK(ntohs(local.sin6_port) >= 40000);
    REQUIRE(send(fd, "six", 3, 0) == 3);
    char buf[4];
    REQUIRE(recv(fd, buf, 3, MSG_WAITALL) == 3);
    CHECK(std::string(buf, 3) == "six");
    close(fd);
}

TEST_CASE("one accelerated socket in two epoll sets is reported by both", "[epoll]") {
    int fd = connect_to(echo_port());
    int ep1 = epoll_create1(0), ep2 = epoll_create(1);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 1;
    REQUIRE(epoll_ctl(ep1, EPOLL_CTL_ADD, fd, &ev) == 0);
    ev.data.u64 = 2;
    REQUIRE(epoll_ctl(ep2, EPOLL_CTL_ADD, fd, &ev) == 0);
    REQUIRE(send(fd, "twice", 5, 0) == 5);
    epoll_event out[2];
    REQUIRE(epoll_wait(ep1, out, 2, 3000) == 1);
    CHECK(out[0].data.u64 == 1);
    REQUIRE(epoll_wait(ep2, out, 2, 3000) == 1);
    CHECK(out[0].data.u64 == 2);
    // Closing the socket takes it out of both.
    close(fd);
    CHECK(epoll_wait(ep1, out, 2, 0) == 0);
    CHECK(epoll_wait(ep2, out, 2, 0) == 0);
    close(ep1);
    close(ep2);
}

TEST_CASE("a blocking accept on an accelerated listener honours SO_RCVTIMEO", "[blocking]") {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in any = addr("0.0.0.0", base() + 50);
    REQUIRE(bind(l, sa(any), sizeof any) == 0);
    REQUIRE(listen(l, 4) == 0);
    timeval tv{0, 150000};
    REQUIRE(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    errno = 0;
    CHECK(accept(l, nullptr, nullptr) == -1);
    CHECK(errno == EAGAIN);
    close(l);
}

TEST_CASE("a nested epoll set reports its accelerated socket to the outer set", "[epoll]") {
    int fd = connect_to(echo_port());
    int inner = epoll_create1(0), outer = epoll_create1(0);
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 7;
    REQUIRE(epoll_ctl(inner, EPOLL_CTL_ADD, fd, &ev) == 0);
    ev.data.u64 = 8;
    REQUIRE(epoll_ctl(outer, EPOLL_CTL_ADD, inner, &ev) == 0);
    ev.data.u64 = 9;
    REQUIRE(epoll_ctl(outer, EPOLL_CTL_ADD, pfd[0], &ev) == 0);
    epoll_event out[4];
    CHECK(epoll_wait(outer, out, 4, 0) == 0);
    REQUIRE(send(fd, "nest", 4, 0) == 4);
    REQUIRE(epoll_wait(outer, out, 4, 3000) == 1);   // the inner set became readable
    CHECK(out[0].data.u64 == 8);
    REQUIRE(epoll_wait(inner, out, 4, 0) == 1);
    CHECK(out[0].data.u64 == 7);
    char buf[8];
    REQUIRE(recv(fd, buf, sizeof buf, 0) == 4);
    CHECK(epoll_wait(outer, out, 4, 0) == 0);        // nothing left
    REQUIRE(write(pfd[1], "k", 1) == 1);             // the kernel fd beside it
    REQUIRE(epoll_wait(outer, out, 4, 1000) == 1);
    CHECK(out[0].data.u64 == 9);
    close(fd);
    close(inner);
    close(outer);
    close(pfd[0]);
    close(pfd[1]);
}

TEST_CASE("epoll sets that would watch each other are refused with ELOOP", "[epoll]") {
    int fd = connect_to(echo_port());
    int a = epoll_create1(0), b = epoll_create1(0), c = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    REQUIRE(epoll_ctl(a, EPOLL_CTL_ADD, fd, &ev) == 0);   // a holds a fastnet socket
    REQUIRE(epoll_ctl(b, EPOLL_CTL_ADD, a, &ev) == 0);    // b -> a
    REQUIRE(epoll_ctl(c, EPOLL_CTL_ADD, b, &ev) == 0);    // c -> b -> a
    errno = 0;
    CHECK(epoll_ctl(a, EPOLL_CTL_ADD, c, &ev) == -1);     // a -> c would close the cycle
    CHECK(errno == ELOOP);
    errno = 0;
    CHECK(epoll_ctl(a, EPOLL_CTL_ADD, b, &ev) == -1);
    CHECK(errno == ELOOP);
    int da = dup(a);                                       // a set added to itself
    errno = 0;
    CHECK(epoll_ctl(a, EPOLL_CTL_ADD, da, &ev) == -1);
    CHECK(errno == ELOOP);
    // Nothing was linked: waiting on each set still works and sees the data.
    REQUIRE(send(fd, "loop", 4, 0) == 4);
    epoll_event out[4];
    CHECK(epoll_wait(c, out, 4, 3000) == 1);
    CHECK(epoll_wait(a, out, 4, 0) == 1);
    char buf[8];
    CHECK(recv(fd, buf, sizeof buf, 0) == 4);
    CHECK(epoll_wait(a, out, 4, 0) == 0);
    for (int x : {fd, a, b, c, da}) close(x);
}

namespace {
// Reads exactly n bytes (the echo may come back in pieces).
std::string read_n(int fd, size_t n) {
    std::string s(n, '\0');
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, &s[got], n - got, 0);
        if (r <= 0) break;
        got += static_cast<size_t>(r);
    }
    s.resize(got);
    return s;
}
}  // namespace

TEST_CASE("vectored, message and file forms carry data on an accelerated connection", "[data]") {
    int fd = connect_to(echo_port());
    char a[] = "ab", b[] = "cde";
    iovec out[2] = {{a, 2}, {b, 3}};
    REQUIRE(writev(fd, out, 2) == 5);
    char x[2], y[3];
    iovec in[2] = {{x, 2}, {y, 3}};
    ssize_t n = 0;
    while (n < 5) {
        pollfd p{fd, POLLIN, 0};
        REQUIRE(poll(&p, 1, 3000) == 1);
        int avail = 0;
        REQUIRE(ioctl(fd, FIONREAD, &avail) == 0);
        if (avail >= 5) break;
        usleep(10000);
        ++n;
    }
    REQUIRE(readv(fd, in, 2) == 5);
    CHECK(std::string(x, 2) + std::string(y, 3) == "abcde");

    msghdr m{};
    char c1[] = "msg";
    iovec v1{c1, 3};
    m.msg_iov = &v1;
    m.msg_iovlen = 1;
    REQUIRE(sendmsg(fd, &m, MSG_NOSIGNAL) == 3);
    char r1[8] = {};
    iovec rv{r1, 3};
    msghdr rm{};
    rm.msg_iov = &rv;
    rm.msg_iovlen = 1;
    REQUIRE(recvmsg(fd, &rm, MSG_WAITALL) == 3);
    CHECK(std::string(r1, 3) == "msg");

    mmsghdr mm[2]{};
    char p1[] = "one", p2[] = "two";
    iovec mv[2] = {{p1, 3}, {p2, 3}};
    mm[0].msg_hdr.msg_iov = &mv[0];
    mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &mv[1];
    mm[1].msg_hdr.msg_iovlen = 1;
    REQUIRE(sendmmsg(fd, mm, 2, 0) == 2);
    CHECK(read_n(fd, 6) == "onetwo");

    char path[] = "/tmp/fastnet-sendfile.XXXXXX";
    int f = mkstemp(path);
    REQUIRE(f >= 0);
    unlink(path);
    std::string body(100000, 'z');
    REQUIRE(write(f, body.data(), body.size()) == static_cast<ssize_t>(body.size()));
    off_t off = 0;
    std::string echoed;
    std::thread reader([&] { echoed = read_n(fd, body.size()); });
    size_t sent = 0;
    while (sent < body.size()) {
        ssize_t w = sendfile(fd, f, &off, body.size() - sent);
        REQUIRE(w > 0);
        sent += static_cast<size_t>(w);
    }
    reader.join();
    CHECK(off == static_cast<off_t>(body.size()));
    CHECK(echoed == body);
    close(f);
    close(fd);
}

TEST_CASE("descriptor calls on an accelerated socket behave as on a kernel one", "[fd]") {
    int fd = connect_to(echo_port());
    int v = 0;
    socklen_t len = sizeof v;
    REQUIRE(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0);
    CHECK(v == SOCK_STREAM);
    REQUIRE(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == 0);
    CHECK(v == AF_INET);
    int one = 1;
    REQUIRE(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    REQUIRE(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0);
    CHECK(v == 1);

    // dup2 onto a high number, F_DUPFD_CLOEXEC: all name the same connection.
    int d = dup2(fd, 200);
    REQUIRE(d == 200);
    int f = fcntl(fd, F_DUPFD_CLOEXEC, 300);
    REQUIRE(f >= 300);
    CHECK((fcntl(f, F_GETFD) & FD_CLOEXEC));
    CHECK_FALSE((fcntl(d, F_GETFD) & FD_CLOEXEC));
    close(fd);                                  // the others keep it open
    REQUIRE(send(d, "dup", 3, 0) == 3);
    CHECK(read_n(f, 3) == "dup");
    CHECK(served_by_fastnet(d));
    CHECK(served_by_fastnet(f));

    // shutdown(SHUT_WR): the echo server sees EOF and closes; we read EOF.
    REQUIRE(shutdown(d, SHUT_WR) == 0);
    char c;
    CHECK(recv(f, &c, 1, 0) == 0);
    errno = 0;
    CHECK(send(f, "x", 1, MSG_NOSIGNAL) == -1);
    CHECK(errno == EPIPE);
    close(d);
    close(f);
}

namespace {

// One counter of this process as fastnet-stat reports it (published every 10 ms).
long stat_counter(const char* name) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --json %d | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"%s\"])'",
             env("FASTNET_TEST_STAT"), getpid(), name);
    FILE* p = popen(cmd, "r");
    REQUIRE(p);
    long v = -1;
    if (fscanf(p, "%ld", &v) != 1) v = -1;
    pclose(p);
    return v;
}

char pattern(size_t i, int dir) { return static_cast<char>((i * 131 + i / 1000 + dir * 77) & 0xff); }

}  // namespace

// memcached's pattern: a dispatcher thread accepts, a worker thread serves. The worker
// has an engine of its own; the connection moves there (its frames follow through the
// XDP flow map) while the kernel peer keeps sending, and not a byte is lost or reordered.
TEST_CASE("a connection accepted by one thread and served by another moves to its engine, byte-exact", "[threads]") {
    uint16_t port = base() + 60;
    const size_t kBytes = 4 << 20;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in any = addr("0.0.0.0", port);
    REQUIRE(bind(l, sa(any), sizeof any) == 0);
    REQUIRE(listen(l, 4) == 0);
    long moved_before = stat_counter("sockets_moved");
    REQUIRE(moved_before >= 0);

    // The peer streams kBytes, then checks kBytes coming back; "ok" or why not, in a file.
    char result[] = "/tmp/fastnet-handoff.XXXXXX";
    int rfd = mkstemp(result);
    REQUIRE(rfd >= 0);
    close(rfd);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '\n"
             "import socket\n"
             "n=%zu\n"
             "pat=lambda d: bytes(((i*131+i//1000+d*77)&255) for i in range(n))\n"
             "s=socket.create_connection((\"%s\",%u)); s.sendall(pat(0)); s.shutdown(socket.SHUT_WR)\n"
             "got=bytearray()\n"
             "while True:\n"
             "    b=s.recv(1<<16)\n"
             "    if not b: break\n"
             "    got+=b\n"
             "open(\"%s\",\"w\").write(\"ok\" if got==pat(1) else \"got %%d bytes, wrong\" %% len(got))\n"
             "' > /dev/null 2>&1 &",
             kBytes, env("FASTNET_TEST_LOCAL"), port, result);
    in_cli(cmd);

    int c = accept(l, nullptr, nullptr);
    REQUIRE(c >= 0);
    CHECK(served_by_fastnet(c));
    // The dispatcher reads the first bytes on its own engine.
    std::vector<char> in(kBytes);
    size_t got = 0;
    while (got < 1000) {
        ssize_t r = recv(c, in.data() + got, 1000 - got, 0);
        REQUIRE(r > 0);
        got += static_cast<size_t>(r);
    }
    bool eof = false;
    std::thread worker([&] {
        while (got < in.size()) {
            ssize_t r = recv(c, in.data() + got, std::min<size_t>(in.size() - got, 65536), 0);
            if (r <= 0) break;
            got += static_cast<size_t>(r);
        }
        char x;
        eof = recv(c, &x, 1, 0) == 0;
        std::vector<char> out(kBytes);
        for (size_t i = 0; i < out.size(); ++i) out[i] = pattern(i, 1);
        size_t sent = 0;
        while (sent < out.size()) {
            ssize_t w = send(c, out.data() + sent, out.size() - sent, 0);
            if (w <= 0) break;
            sent += static_cast<size_t>(w);
        }
    });
    worker.join();
    CHECK(got == kBytes);
    CHECK(eof);
    size_t bad = kBytes;
    for (size_t i = 0; i < got && bad == kBytes; ++i)
        if (in[i] != pattern(i, 0)) bad = i;
    CAPTURE(bad);
    CHECK(bad == kBytes);
    CHECK(close(c) == 0);
    CHECK(close(l) == 0);
    std::string verdict;
    for (int i = 0; i < 100 && verdict.empty(); ++i) {
        usleep(100000);
        if (FILE* f = fopen(result, "r")) {
            char buf[128] = {};
            if (fgets(buf, sizeof buf, f)) verdict = buf;
            fclose(f);
        }
    }
    unlink(result);
    CHECK(verdict == "ok");
    usleep(50000);
    CHECK(stat_counter("sockets_moved") == moved_before + 1);
}

namespace {

// Kernel TCP sockets of this (server) namespace on a port, listeners aside: none while
// a flow is fastnet's.
int kernel_sockets_on(uint16_t port) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ss -Htan '( sport = :%u or dport = :%u )' | grep -vc LISTEN", port, port);
    FILE* p = popen(cmd, "r");
    REQUIRE(p);
    int n = -1;
    if (fscanf(p, "%d", &n) != 1) n = -1;
    pclose(p);
    return n;
}

uint16_t local_port(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, sa(a), &len) == 0);
    return ntohs(a.sin_port);
}

// The NULL / first-page buffer contract, identical on a kernel socket and a fastnet one:
// EFAULT where bytes would be copied, nothing lost, length 0 valid. `arrive` makes
// "ping" arrive on fd.
template <class F>
void check_bad_buffers(int fd, F&& arrive) {
    auto fails_efault = [](ssize_t r) {
        int err = errno;
        CAPTURE(r, err);
        return r == -1 && err == EFAULT;
    };
    // Through a volatile: the compiler must not judge (or fold) the calls it can see.
    volatile uintptr_t raw[3] = {0, 16, ~uintptr_t{0} - 8};
    void* null = reinterpret_cast<void*>(raw[0]);
    void* first_page = reinterpret_cast<void*>(raw[1]);
    void* wraps = reinterpret_cast<void*>(raw[2]);
    iovec* null_iov = static_cast<iovec*>(null);
    iovec nulliov{null, 10};
    msghdr m{};
    m.msg_iov = &nulliov;
    m.msg_iovlen = 1;
    // Output: EFAULT, and nothing is sent.
    CHECK(fails_efault(write(fd, null, 10)));
    CHECK(fails_efault(send(fd, null, 10, MSG_NOSIGNAL)));
    CHECK(fails_efault(sendto(fd, null, 10, MSG_NOSIGNAL, nullptr, 0)));
    CHECK(fails_efault(write(fd, first_page, 10)));
    CHECK(fails_efault(send(fd, wraps, 64, MSG_NOSIGNAL)));
    CHECK(fails_efault(writev(fd, &nulliov, 1)));
    CHECK(fails_efault(writev(fd, null_iov, 1)));
    CHECK(fails_efault(sendmsg(fd, &m, MSG_NOSIGNAL)));
    CHECK(write(fd, null, 0) == 0);
    CHECK(send(fd, null, 0, 0) == 0);
    // Input with nothing queued: what the socket says (EAGAIN), as Linux never copies.
    errno = 0;
    CHECK(recv(fd, null, 10, MSG_DONTWAIT) == -1);
    CHECK(errno == EAGAIN);
    arrive();
    pollfd p{fd, POLLIN, 0};
    REQUIRE(poll(&p, 1, 5000) == 1);
    // Input with data queued: EFAULT, and the data stays.
    CHECK(fails_efault(read(fd, null, 10)));
    CHECK(fails_efault(recv(fd, null, 10, 0)));
    CHECK(fails_efault(recv(fd, null, 10, MSG_PEEK | MSG_DONTWAIT)));
    CHECK(fails_efault(recvfrom(fd, null, 10, 0, nullptr, nullptr)));
    CHECK(fails_efault(read(fd, first_page, 10)));
    CHECK(fails_efault(readv(fd, &nulliov, 1)));
    CHECK(fails_efault(readv(fd, null_iov, 1)));
    CHECK(fails_efault(recvmsg(fd, &m, 0)));
    CHECK(read(fd, null, 0) == 0);
    int n = -1;
    REQUIRE(ioctl(fd, FIONREAD, &n) == 0);
    CHECK(n == 4);
    char buf[16] = {};
    CHECK(recv(fd, buf, sizeof buf, 0) == 4);
    CHECK(std::string(buf) == "ping");
}

}  // namespace

TEST_CASE("NULL and first-page buffers give EFAULT, not SIGSEGV, on an accelerated connection as on a kernel one", "[errno][efault]") {
    SECTION("kernel (loopback, handed over)") {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in lo = addr("127.0.0.1", 0);
        REQUIRE(bind(l, sa(lo), sizeof lo) == 0);
        REQUIRE(listen(l, 1) == 0);
        socklen_t len = sizeof lo;
        REQUIRE(getsockname(l, sa(lo), &len) == 0);
        int k = socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(connect(k, sa(lo), sizeof lo) == 0);
        int c = accept(l, nullptr, nullptr);
        REQUIRE(c >= 0);
        CHECK_FALSE(served_by_fastnet(k));
        check_bad_buffers(k, [&] { REQUIRE(write(c, "ping", 4) == 4); });
        close(c);
        close(k);
        close(l);
    }
    SECTION("fastnet") {
        long tx_before = stat_counter("bytes_tx");
        int fd = connect_to(echo_port());
        check_bad_buffers(fd, [&] { REQUIRE(send(fd, "ping", 4, 0) == 4); });
        // The flow is fastnet's: no kernel socket for it, and the engine's counters moved.
        CHECK(kernel_sockets_on(local_port(fd)) == 0);
        usleep(50000);
        CHECK(stat_counter("bytes_tx") >= tx_before + 4);
        // Still a working connection.
        REQUIRE(send(fd, "pong", 4, 0) == 4);
        char buf[8] = {};
        CHECK(recv(fd, buf, 4, MSG_WAITALL) == 4);
        CHECK(std::string(buf, 4) == "pong");
        close(fd);
    }
}

namespace {

// A kernel client (no preload, `ns`: "" for this namespace) connects to ip:port and
// resets the connection (SO_LINGER 0) before the server accepts it. Returns when done.
void connect_and_reset(const char* ns, const char* ip, uint16_t port) {
    char cmd[768];
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD %s%s /usr/bin/python3 -c 'import socket,struct; "
             "s=socket.create_connection((\"%s\",%u)); "
             "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(\"ii\",1,0)); s.close()'",
             *ns ? "ip netns exec " : "", ns, ip, port);
    REQUIRE(system(cmd) == 0);
}

// The listener's queued connection was reset by the peer: accept still returns it,
// the first read says ECONNRESET, the next 0, a write EPIPE (Linux's behaviour).
void check_accept_after_reset(int l, bool fastnet) {
    timeval tv{3, 0};   // a bound, so that a hang shows as a failure
    REQUIRE(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int c = accept(l, sa(peer), &len);
    int err = errno;
    CAPTURE(err);
    REQUIRE(c >= 0);
    CHECK(served_by_fastnet(c) == fastnet);
    CHECK(peer.sin_family == AF_INET);
    char buf[8];
    errno = 0;
    CHECK(read(c, buf, sizeof buf) == -1);
    CHECK(errno == ECONNRESET);
    CHECK(read(c, buf, sizeof buf) == 0);
    errno = 0;
    CHECK(send(c, "x", 1, MSG_NOSIGNAL) == -1);
    CHECK(errno == EPIPE);
    CHECK(close(c) == 0);
}

}  // namespace

TEST_CASE("accept returns a connection the peer reset before it was accepted; read says ECONNRESET", "[accept][rst]") {
    SECTION("kernel (loopback listener, handed over)") {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in lo = addr("127.0.0.1", 0);
        REQUIRE(bind(l, sa(lo), sizeof lo) == 0);
        REQUIRE(listen(l, 4) == 0);
        socklen_t len = sizeof lo;
        REQUIRE(getsockname(l, sa(lo), &len) == 0);
        CHECK_FALSE(served_by_fastnet(l));
        connect_and_reset("", "127.0.0.1", ntohs(lo.sin_port));
        usleep(100000);
        check_accept_after_reset(l, false);
        close(l);
    }
    SECTION("fastnet") {
        uint16_t port = base() + 70;
        int l = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in any = addr("0.0.0.0", port);
        REQUIRE(bind(l, sa(any), sizeof any) == 0);
        REQUIRE(listen(l, 4) == 0);
        CHECK(served_by_fastnet(l));
        long accepted = stat_counter("conn_accepted"), resets = stat_counter("conn_reset");
        connect_and_reset(env("FASTNET_TEST_CLI_NS"), env("FASTNET_TEST_LOCAL"), port);
        usleep(100000);
        check_accept_after_reset(l, true);
        CHECK(kernel_sockets_on(port) == 0);   // nothing reached the kernel side
        usleep(50000);
        CHECK(stat_counter("conn_accepted") == accepted + 1);
        CHECK(stat_counter("conn_reset") >= resets + 1);
        close(l);
    }
}

namespace {

// Stops every other thread of this process (the runtime's progress thread) while it
// sleeps, from a child process through ptrace, so that until release() no engine is
// polled behind this thread's back: frames that arrive stay in the XSK's RX ring.
class OtherThreadsStopped {
public:
    OtherThreadsStopped() {
        std::vector<pid_t> tids;
        pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
        if (DIR* d = opendir("/proc/self/task")) {
            while (dirent* e = readdir(d))
                if (e->d_name[0] != '.' && atoi(e->d_name) != self) tids.push_back(atoi(e->d_name));
            closedir(d);
        }
        REQUIRE(!tids.empty());
        REQUIRE(pipe(go_) == 0);
        REQUIRE(pipe(done_) == 0);
        child_ = fork();
        REQUIRE(child_ >= 0);
        if (child_ == 0) {
            bool ok = true;
            for (pid_t t : tids) ok = ok && stop_sleeping(t);
            char c = ok ? 'y' : 'n';
            (void)!::write(done_[1], &c, 1);
            (void)!::read(go_[0], &c, 1);
            for (pid_t t : tids) ptrace(PTRACE_DETACH, t, nullptr, nullptr);
            _exit(0);
        }
        char c = 'n';
        REQUIRE(::read(done_[0], &c, 1) == 1);
        stopped = c == 'y';
    }
    ~OtherThreadsStopped() { release(); }
    void release() {
        if (child_ <= 0) return;
        (void)!::write(go_[1], "g", 1);
        waitpid(child_, nullptr, 0);
        child_ = -1;
        for (int fd : {go_[0], go_[1], done_[0], done_[1]}) close(fd);
    }
    bool stopped = false;

private:
    // Stopped inside its nanosleep: it holds no engine lock.
    static bool stop_sleeping(pid_t t) {
        for (int attempt = 0; attempt < 2000; ++attempt) {
            if (ptrace(PTRACE_SEIZE, t, nullptr, nullptr) != 0) return false;
            ptrace(PTRACE_INTERRUPT, t, nullptr, nullptr);
            int st;
            if (waitpid(t, &st, __WALL) != t) return false;
            user_regs_struct r{};
            ptrace(PTRACE_GETREGS, t, nullptr, &r);
            if (r.orig_rax == SYS_nanosleep || r.orig_rax == SYS_clock_nanosleep) return true;
            ptrace(PTRACE_DETACH, t, nullptr, nullptr);
            usleep(200);
        }
        return false;
    }
    pid_t child_ = -1;
    int go_[2] = {-1, -1}, done_[2] = {-1, -1};
};

// Waits until the kernel peer on `peer_port` has `bytes` unacknowledged toward our
// `port`: they have left it, and on a veth that means they are in our RX ring.
bool peer_unacked(uint16_t peer_port, uint16_t port, int bytes) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD ip netns exec %s ss -Htn '( sport = :%u and dport = :%u )' | "
             "awk '$3 == %d' | grep -q .",
             env("FASTNET_TEST_CLI_NS"), peer_port, port, bytes);
    for (int i = 0; i < 100; ++i) {
        if (system(cmd) == 0) return true;
        usleep(50000);
    }
    return false;
}

}  // namespace

TEST_CASE("calls that report state take in the frames already in the RX ring, without a prior poll", "[rx]") {
#if !defined(__x86_64__)
    SKIP("the progress thread is stopped through x86-64 registers");
#endif
    auto what = GENERATE(std::string("FIONREAD"), std::string("MSG_PEEK|MSG_DONTWAIT"));
    CAPTURE(what);
    int fd = connect_to(late_port());   // the peer sends "late!" 2 s after accepting
    uint16_t port = local_port(fd);
    usleep(100000);                     // our handshake ACK is out (progress thread)
    OtherThreadsStopped frozen;
    REQUIRE(frozen.stopped);
    // No fastnet call from here on until the one under test: nothing polls the engine.
    REQUIRE(peer_unacked(late_port(), port, 5));
    usleep(100000);
    int n = -1;
    char buf[8] = {};
    if (what == "FIONREAD") {
        REQUIRE(ioctl(fd, FIONREAD, &n) == 0);
    } else {
        n = static_cast<int>(recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT));
    }
    frozen.release();
    CHECK(n == 5);
    CHECK(kernel_sockets_on(port) == 0);
    CHECK(recv(fd, buf, sizeof buf, 0) == 5);
    CHECK(std::string(buf, 5) == "late!");
    close(fd);
}
