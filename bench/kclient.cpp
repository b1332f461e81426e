// The kernel's side of bench/interop.sh, the same loops as fastnet-peer's client on
// kernel sockets.
// Short connections (`fastnet-peer client --request B`): PARALLEL non-blocking connections
// at a time, each: connect, send B bytes, read B bytes back, close; CONNS in all.
// Prints "kernel short conns=N failed=F seconds=S conn_per_s=R".
// Bulk (`fastnet-peer client --send FILE`): one connection sends MIB MiB from memory,
// shuts down its write side and waits for the peer's close.
// Prints "kernel bulk bytes=N seconds=S gbit_per_s=R".
// usage: kclient HOST PORT CONNS PARALLEL BYTES  |  kclient --bulk HOST PORT MIB
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Conn {
    int fd = -1;
    size_t sent = 0, got = 0;
};

double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int bulk(const char* host, int port, long mib) {
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 || mib < 1) {
        fprintf(stderr, "kclient: bad address or size\n");
        return 2;
    }
    std::vector<char> data(static_cast<size_t>(mib) << 20);
    for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i * 131);
    const double t0 = now();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) < 0) {
        perror("kclient: connect");
        return 1;
    }
    size_t off = 0;
    while (off < data.size()) {
        ssize_t w = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (w <= 0) {
            perror("kclient: send");
            return 1;
        }
        off += static_cast<size_t>(w);
    }
    shutdown(fd, SHUT_WR);
    char b[256];
    while (recv(fd, b, sizeof b, 0) > 0) {}
    close(fd);
    const double secs = now() - t0;
    printf("kernel bulk bytes=%zu seconds=%.3f gbit_per_s=%.3f\n", data.size(), secs,
           static_cast<double>(data.size()) * 8 / secs / 1e9);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 5 && std::string(argv[1]) == "--bulk") return bulk(argv[2], atoi(argv[3]), atol(argv[4]));
    if (argc != 6) {
        fprintf(stderr, "usage: kclient HOST PORT CONNS PARALLEL BYTES\n");
        return 2;
    }
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<uint16_t>(atoi(argv[2])));
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "kclient: bad address %s\n", argv[1]);
        return 2;
    }
    const long total = atol(argv[3]), parallel = atol(argv[4]);
    const size_t bytes = static_cast<size_t>(atol(argv[5]));
    if (total < 1 || parallel < 1 || bytes < 1 || bytes > 65536) {
        fprintf(stderr, "kclient: CONNS, PARALLEL >= 1, 1 <= BYTES <= 65536\n");
        return 2;
    }
    std::vector<char> req(bytes, 'q'), buf(65536);
    std::vector<Conn> conns(static_cast<size_t>(parallel));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long started = 0, done = 0, failed = 0;
    auto start = [&](size_t i) {
        Conn& c = conns[i];
        for (;;) {   // a connect that fails at once counts, and the slot tries the next
            c = Conn{};
            if (started >= total) return;
            started++;
            c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c.fd >= 0 && (connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0 ||
                              errno == EINPROGRESS))
                break;
            if (c.fd >= 0) close(c.fd);
            c.fd = -1;
            failed++;
        }
        epoll_event ev{};
        ev.events = EPOLLOUT | EPOLLIN;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    };
    auto finish = [&](size_t i, bool ok) {
        close(conns[i].fd);
        conns[i].fd = -1;
        (ok ? done : failed)++;
    };
    const double t0 = now();
    for (size_t i = 0; i < conns.size(); i++) start(i);
    epoll_event evs[256];
    while (done + failed < total) {
        int n = epoll_wait(ep, evs, 256, 10000);
        if (n <= 0) {
            fprintf(stderr, "kclient: stalled\n");
            break;
        }
        for (int k = 0; k < n; k++) {
            size_t i = evs[k].data.u64;
            Conn& c = conns[i];
            if (c.fd < 0) continue;
            if (evs[k].events & (EPOLLERR | EPOLLHUP)) {
                finish(i, false);
                start(i);
                continue;
            }
            if ((evs[k].events & EPOLLOUT) && c.sent < bytes) {
                ssize_t w = send(c.fd, req.data() + c.sent, bytes - c.sent, MSG_NOSIGNAL);
                if (w > 0) c.sent += static_cast<size_t>(w);
                if (c.sent == bytes) {
                    epoll_event ev{};
                    ev.events = EPOLLIN;
                    ev.data.u64 = i;
                    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
                }
            }
            if (evs[k].events & EPOLLIN) {
                ssize_t r;
                while ((r = recv(c.fd, buf.data(), buf.size(), 0)) > 0) c.got += static_cast<size_t>(r);
                if (c.got >= bytes || r == 0) {
                    finish(i, c.got == bytes);
                    start(i);
                }
            }
        }
    }
    const double secs = now() - t0;
    printf("kernel short conns=%ld failed=%ld seconds=%.2f conn_per_s=%.0f\n", done, failed, secs,
           static_cast<double>(done) / secs);
    return failed ? 1 : 0;
}
