// An HTTP server whose threads each own an SO_REUSEPORT listener on the same port (the
// per-thread listen pattern of modern servers): no shared accept queue, each thread
// accepts and serves its own connections. Ordinary socket code; run it as is or with
// LD_PRELOAD=libfastnet.so, where every thread's listener is served by that thread's
// engine. Each answer names the thread that served it.
// Usage: reuseport_server <port> [threads]   (prints "listening on <port>" when ready)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

std::atomic<int> ready{0};

int make_listener(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) {
        perror("setsockopt");
        close(fd);
        return -1;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) || listen(fd, 512)) {
        perror("bind/listen");
        close(fd);
        return -1;
    }
    return fd;
}

void serve(int index, int port) {
    int lfd = make_listener(port);
    if (lfd < 0) exit(1);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ready.fetch_add(1);
    char reply[128];
    int body_len = snprintf(nullptr, 0, "thread %d\n", index);
    int reply_len = snprintf(reply, sizeof reply,
                             "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\nthread %d\n",
                             body_len, index);
    epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; ++i) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
                    if (c < 0) break;
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            // One request per connection: answer once the request's head is in.
            char buf[4096];
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0 && !memmem(buf, static_cast<size_t>(r), "\r\n\r\n", 4)) continue;
            if (r > 0) (void)!write(fd, reply, static_cast<size_t>(reply_len));
            if (r < 0 && errno == EAGAIN) continue;
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
            close(fd);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <port> [threads]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]);
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    if (port <= 0 || port > 65535 || threads < 1 || threads > 64) {
        fprintf(stderr, "bad port or thread count\n");
        return 2;
    }
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) ts.emplace_back(serve, i, port);
    while (ready.load() < threads) usleep(1000);
    printf("listening on %d\n", port);
    fflush(stdout);
    for (auto& t : ts) t.join();
}
