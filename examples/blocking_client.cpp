// A blocking TCP client: connect, send a message, read the reply until the peer closes,
// print it. Ordinary socket code, no fastnet headers.
// Usage: blocking_client <ipv4> <port> <message> [--half-close]
//   --half-close: shutdown(SHUT_WR) after sending (for echo servers).
//   The message may use \r and \n escapes, e.g. 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n';
//   "-" sends standard input instead.
#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s <ipv4> <port> <message> [--half-close]\n", argv[0]);
        return 2;
    }
    bool half_close = argc > 4 && strcmp(argv[4], "--half-close") == 0;
    std::string msg;
    if (strcmp(argv[3], "-") == 0) {
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) msg.append(chunk, n);
    }
    for (const char* p = strcmp(argv[3], "-") == 0 ? "" : argv[3]; *p; ++p) {
        if (p[0] == '\\' && p[1] == 'r') { msg += '\r'; ++p; }
        else if (p[0] == '\\' && p[1] == 'n') { msg += '\n'; ++p; }
        else msg += *p;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(atoi(argv[2])));
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", argv[1]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        fprintf(stderr, "connect: %s\n", strerror(errno));
        return 1;
    }
    for (size_t off = 0; off < msg.size();) {
        ssize_t w = send(fd, msg.data() + off, msg.size() - off, 0);
        if (w < 0) {
            fprintf(stderr, "send: %s\n", strerror(errno));
            return 1;
        }
        off += static_cast<size_t>(w);
    }
    if (half_close) shutdown(fd, SHUT_WR);
    char buf[65536];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "recv: %s\n", strerror(errno));
            return 1;
        }
        fwrite(buf, 1, static_cast<size_t>(r), stdout);
    }
    close(fd);
    return 0;
}
