// The libc contract of the intercepted calls, run under LD_PRELOAD=libfastnet.so
// (meson sets it): return values, errno, signals and blocking behaviour must be exactly
// the kernel's. Sockets here use loopback, which fastnet always leaves to the kernel, so
// this proves the passthrough path; the test bed scripts prove the accelerated one.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace {

constexpr int kBadFd = 987654;   // far above anything open, below no limit we rely on

sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

// A listening socket on 127.0.0.1 with a kernel-chosen port.
int listener(uint16_t* port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a = loopback(0);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd, 16) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

// A connected pair over loopback TCP: {client, server side}.
std::pair<int, int> tcp_pair() {
    uint16_t port;
    int l = listener(&port);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(port);
    REQUIRE(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    int s = accept(l, nullptr, nullptr);
    REQUIRE(s >= 0);
    close(l);
    return {c, s};
}

std::atomic<int> g_sigpipes{0};
void on_sigpipe(int) { ++g_sigpipes; }
void on_sigusr1(int) {}

}  // namespace

TEST_CASE("the test really runs with libfastnet.so preloaded", "[preload]") {
    Dl_info info{};
    void* sym = dlsym(RTLD_DEFAULT, "socket");
    REQUIRE(sym);
    REQUIRE(dladdr(sym, &info));
    CAPTURE(info.dli_fname);
    CHECK(std::string(info.dli_fname).find("libfastnet") != std::string::npos);
}

namespace bad {
char buf[8];
sockaddr_in a = loopback(1);
socklen_t len = sizeof a;
int v = 0;
socklen_t vlen = sizeof v;
epoll_event ev{};
sockaddr* sa() { return reinterpret_cast<sockaddr*>(&a); }
}  // namespace bad

TEST_CASE("every call on an unknown fd fails with EBADF", "[errno]") {
    using namespace bad;
    using Call = long (*)();
    auto [name, call] = GENERATE(table<const char*, Call>({
        {"read", [] { return (long)read(kBadFd, buf, sizeof buf); }},
        {"write", [] { return (long)write(kBadFd, buf, sizeof buf); }},
        {"recv", [] { return (long)recv(kBadFd, buf, sizeof buf, 0); }},
        {"send", [] { return (long)send(kBadFd, buf, sizeof buf, 0); }},
        {"recvfrom", [] { return (long)recvfrom(kBadFd, buf, sizeof buf, 0, nullptr, nullptr); }},
        {"sendto", [] { return (long)sendto(kBadFd, buf, sizeof buf, 0, nullptr, 0); }},
        {"close", [] { return (long)close(kBadFd); }},
        {"bind", [] { return (long)bind(kBadFd, sa(), sizeof a); }},
        {"listen", [] { return (long)listen(kBadFd, 1); }},
        {"accept", [] { return (long)accept(kBadFd, nullptr, nullptr); }},
        {"accept4", [] { return (long)accept4(kBadFd, nullptr, nullptr, SOCK_NONBLOCK); }},
        {"connect", [] { return (long)connect(kBadFd, sa(), sizeof a); }},
        {"shutdown", [] { return (long)shutdown(kBadFd, SHUT_RDWR); }},
        {"getsockopt", [] { return (long)getsockopt(kBadFd, SOL_SOCKET, SO_ERROR, &v, &vlen); }},
        {"setsockopt", [] { return (long)setsockopt(kBadFd, SOL_SOCKET, SO_REUSEADDR, &v, sizeof v); }},
        {"getsockname", [] { return (long)getsockname(kBadFd, sa(), &len); }},
        {"getpeername", [] { return (long)getpeername(kBadFd, sa(), &len); }},
        {"fcntl", [] { return (long)fcntl(kBadFd, F_GETFL); }},
        {"ioctl", [] { return (long)ioctl(kBadFd, FIONREAD, &v); }},
        {"dup", [] { return (long)dup(kBadFd); }},
        {"dup2", [] { return (long)dup2(kBadFd, kBadFd + 1); }},
        {"epoll_ctl", [] { return (long)epoll_ctl(kBadFd, EPOLL_CTL_ADD, 0, &ev); }},
        {"epoll_wait", [] { return (long)epoll_wait(kBadFd, &ev, 1, 0); }},
    }));
    CAPTURE(name);
    errno = 0;
    CHECK(call() == -1);
    CHECK(errno == EBADF);
}

TEST_CASE("poll reports POLLNVAL and select EBADF for an unknown fd", "[errno]") {
    // A number inside the process's fd table (the kernel's select ignores bits beyond it).
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    close(pfd[1]);
    close(pfd[0]);
    pollfd p{pfd[1], POLLIN, 0};
    REQUIRE(fcntl(p.fd, F_GETFD) == -1);
    CHECK(poll(&p, 1, 0) == 1);
    CHECK(p.revents == POLLNVAL);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p.fd, &rd);
    timeval tv{0, 0};
    errno = 0;
    CHECK(select(p.fd + 1, &rd, nullptr, nullptr, &tv) == -1);
    CHECK(errno == EBADF);
}

TEST_CASE("a successful call leaves errno as it found it", "[errno]") {
    errno = EXDEV;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    CHECK(errno == EXDEV);
    int one = 1;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    CHECK(errno == EXDEV);
    CHECK(close(fd) == 0);
    CHECK(errno == EXDEV);
}

TEST_CASE("connecting to a closed loopback port fails with ECONNREFUSED", "[errno]") {
    uint16_t port;
    int l = listener(&port);
    close(l);   // the port is now closed
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(port);
    errno = 0;
    CHECK(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == -1);
    CHECK(errno == ECONNREFUSED);
    close(fd);
}

TEST_CASE("binding a port in use fails with EADDRINUSE", "[errno]") {
    uint16_t port;
    int l = listener(&port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(port);
    errno = 0;
    CHECK(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == -1);
    CHECK(errno == EADDRINUSE);
    close(fd);
    close(l);
}

TEST_CASE("an unconnected socket answers ENOTCONN, and EPIPE with SIGPIPE on send", "[errno]") {
    struct sigaction sa{}, old{};
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, &old);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    socklen_t len = sizeof a;
    char c = 0;
    errno = 0;
    CHECK(recv(fd, &c, 1, 0) == -1);
    CHECK(errno == ENOTCONN);
    errno = 0;
    CHECK(getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == -1);
    CHECK(errno == ENOTCONN);
    g_sigpipes = 0;
    errno = 0;
    CHECK(send(fd, &c, 1, 0) == -1);
    CHECK(errno == EPIPE);
    CHECK(g_sigpipes == 1);
    errno = 0;
    CHECK(shutdown(fd, SHUT_RDWR) == -1);
    CHECK(errno == ENOTCONN);
    close(fd);
    sigaction(SIGPIPE, &old, nullptr);
}

TEST_CASE("writing to a reset connection raises SIGPIPE unless MSG_NOSIGNAL", "[errno][signal]") {
    struct sigaction sa{}, old{};
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, &old);
    auto [c, s] = tcp_pair();
    linger lg{1, 0};   // close with RST
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(s);
    usleep(50000);
    char buf[16] = "x";
    // The first write may still be accepted before the RST is seen; soon it is EPIPE.
    ssize_t r = 0;
    for (int i = 0; i < 50 && r >= 0; ++i) r = send(c, buf, sizeof buf, MSG_NOSIGNAL);
    g_sigpipes = 0;
    errno = 0;
    CHECK(send(c, buf, sizeof buf, MSG_NOSIGNAL) == -1);
    CHECK(errno == EPIPE);
    CHECK(g_sigpipes == 0);
    errno = 0;
    CHECK(write(c, buf, sizeof buf) == -1);
    CHECK(errno == EPIPE);
    CHECK(g_sigpipes == 1);
    close(c);
    sigaction(SIGPIPE, &old, nullptr);
}

TEST_CASE("non-blocking calls with nothing to do fail with EAGAIN", "[errno]") {
    uint16_t port;
    int l = listener(&port);
    fcntl(l, F_SETFL, fcntl(l, F_GETFL) | O_NONBLOCK);
    errno = 0;
    CHECK(accept(l, nullptr, nullptr) == -1);
    CHECK(errno == EAGAIN);
    close(l);
    auto [c, s] = tcp_pair();
    char buf[4];
    errno = 0;
    CHECK(recv(c, buf, sizeof buf, MSG_DONTWAIT) == -1);
    CHECK(errno == EAGAIN);
    int nb = 1;
    REQUIRE(ioctl(s, FIONBIO, &nb) == 0);
    errno = 0;
    CHECK(read(s, buf, sizeof buf) == -1);
    CHECK(errno == EAGAIN);
    close(c);
    close(s);
}

TEST_CASE("SO_RCVTIMEO bounds a blocking receive", "[blocking]") {
    auto [c, s] = tcp_pair();
    timeval tv{0, 200000};
    REQUIRE(setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    char buf[4];
    auto t0 = std::chrono::steady_clock::now();
    errno = 0;
    CHECK(recv(c, buf, sizeof buf, 0) == -1);
    CHECK(errno == EAGAIN);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    CHECK(ms >= 150);
    CHECK(ms < 2000);
    close(c);
    close(s);
}

TEST_CASE("a signal handler interrupts a blocking receive with EINTR", "[blocking][signal]") {
    struct sigaction sa{}, old{};
    sa.sa_handler = on_sigusr1;   // no SA_RESTART
    sigaction(SIGUSR1, &sa, &old);
    auto [c, s] = tcp_pair();
    pthread_t self = pthread_self();
    std::thread t([self] {
        usleep(100000);
        pthread_kill(self, SIGUSR1);
    });
    char buf[4];
    errno = 0;
    CHECK(recv(c, buf, sizeof buf, 0) == -1);
    CHECK(errno == EINTR);
    t.join();
    close(c);
    close(s);
    sigaction(SIGUSR1, &old, nullptr);
}

TEST_CASE("epoll reports level- and edge-triggered readiness with the caller's data", "[epoll]") {
    auto [c, s] = tcp_pair();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 0x1234567890abcdefull;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    epoll_event out[4];
    CHECK(epoll_wait(ep, out, 4, 0) == 0);
    REQUIRE(write(c, "hi", 2) == 2);
    REQUIRE(epoll_wait(ep, out, 4, 1000) == 1);
    CHECK(out[0].data.u64 == 0x1234567890abcdefull);
    CHECK((out[0].events & EPOLLIN));
    CHECK(epoll_wait(ep, out, 4, 0) == 0);   // edge: reported once
    ev.events = EPOLLIN;                      // level from now on
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) == 0);
    CHECK(epoll_wait(ep, out, 4, 0) == 1);
    CHECK(epoll_wait(ep, out, 4, 0) == 1);
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_DEL, s, nullptr) == 0);
    CHECK(epoll_wait(ep, out, 4, 0) == 0);
    close(ep);
    close(c);
    close(s);
}

TEST_CASE("dup'd and fcntl-duplicated sockets share the connection", "[fd]") {
    auto [c, s] = tcp_pair();
    int d = dup(c);
    int f = fcntl(c, F_DUPFD_CLOEXEC, 100);
    REQUIRE(d >= 0);
    REQUIRE(f >= 100);
    CHECK((fcntl(f, F_GETFD) & FD_CLOEXEC));
    close(c);
    REQUIRE(write(d, "ab", 2) == 2);
    char buf[2];
    REQUIRE(read(s, buf, 2) == 2);
    CHECK(memcmp(buf, "ab", 2) == 0);
    close(d);
    close(f);
    close(s);
}
