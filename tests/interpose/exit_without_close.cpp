// Connects, sends one byte and exits without close(): the kernel would end the
// connection at exit, and so must fastnet (accel_testbed.sh checks the peer's view).
// Usage: exit_without_close <ipv4> <port>
#include <arpa/inet.h>
#include <cstdlib>
#include <netinet/in.h>
#include <sys/socket.h>

int main(int argc, char** argv) {
    if (argc < 3) return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(atoi(argv[2])));
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) return 2;
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 1;
    if (send(fd, "x", 1, 0) != 1) return 1;
    exit(0);
}
