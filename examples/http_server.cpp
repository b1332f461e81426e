// A tiny HTTP/1.1 server on epoll: answers every request with 200 and a small body,
// keeps connections alive unless the request says "Connection: close" (or is HTTP/1.0
// without keep-alive). Ordinary socket code, no fastnet headers.
// Usage: http_server <port> [bind-address]   (prints "listening on <port>" when ready)
#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>

namespace {

constexpr char kBody[] = "hello from http_server\n";

struct Conn {
    std::string in, out;
    bool close_after = false;
};

bool header_says(const std::string& head, const char* name, const char* value) {
    size_t pos = 0;
    while ((pos = head.find("\r\n", pos)) != std::string::npos) {
        pos += 2;
        size_t n = strlen(name);
        if (strncasecmp(head.c_str() + pos, name, n) == 0 && head[pos + n] == ':') {
            size_t end = head.find("\r\n", pos);
            std::string v = head.substr(pos + n + 1, end - pos - n - 1);
            return strcasestr(v.c_str(), value) != nullptr;
        }
    }
    return false;
}

// Moves every complete request from c.in into responses in c.out.
void serve(Conn& c) {
    size_t end;
    while (!c.close_after && (end = c.in.find("\r\n\r\n")) != std::string::npos) {
        std::string head = c.in.substr(0, end);
        c.in.erase(0, end + 4);
        bool http10 = head.find(" HTTP/1.0") != std::string::npos;
        c.close_after = header_says(head, "Connection", "close") ||
                        (http10 && !header_says(head, "Connection", "keep-alive"));
        char hdr[256];
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
                 sizeof kBody - 1, c.close_after ? "Connection: close\r\n" : "");
        c.out += hdr;
        c.out += kBody;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <port> [bind-address]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (argc > 2 && inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", argv[2]);
        return 2;
    }
    if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 512) != 0) {
        perror("bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("listening on %d\n", port);
    fflush(stdout);

    std::unordered_map<int, Conn> conns;
    epoll_event evs[128];
    char buf[16384];
    for (;;) {
        int n = epoll_wait(ep, evs, 128, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                    conns[c];
                }
                continue;
            }
            Conn& c = conns[fd];
            bool dead = false;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = recv(fd, buf, sizeof buf, 0);
                    if (r > 0) { c.in.append(buf, static_cast<size_t>(r)); continue; }
                    if (r == 0 || errno != EAGAIN) dead = true;
                    break;
                }
                serve(c);
            }
            while (!c.out.empty()) {
                ssize_t w = send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
                if (w > 0) { c.out.erase(0, static_cast<size_t>(w)); continue; }
                if (w < 0 && errno != EAGAIN) dead = true;
                break;
            }
            epoll_event cev{};
            cev.data.fd = fd;
            cev.events = EPOLLIN | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
            if (!dead && c.out.empty() && c.close_after) dead = true;
            if (dead) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
                close(fd);
                conns.erase(fd);
            } else {
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
            }
        }
    }
}
