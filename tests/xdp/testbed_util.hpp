// Helpers for XDP tests that run under tests/testbed/with-testbed.sh: read the bed's
// environment, enter its namespaces, run client-side actions in a forked child, and
// take apart received frames. Test → Bed::from_env() → enter_server() / in_client().
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

namespace fastnet::test {

struct Bed {
    std::string ns_srv, ns_cli, if_srv, if_cli, ip_srv, ip_cli, mac_srv, mac_cli;
    bool ok = false;

    static Bed from_env()
    {
        Bed b;
        const char* names[] = {"TB_NS_SRV", "TB_NS_CLI", "TB_IF_SRV", "TB_IF_CLI",
                               "TB_IP_SRV", "TB_IP_CLI", "TB_MAC_SRV", "TB_MAC_CLI"};
        std::string* dst[] = {&b.ns_srv, &b.ns_cli, &b.if_srv, &b.if_cli,
                              &b.ip_srv, &b.ip_cli, &b.mac_srv, &b.mac_cli};
        for (int i = 0; i < 8; i++) {
            const char* v = getenv(names[i]);
            if (!v || !*v) return b;
            *dst[i] = v;
        }
        b.ok = true;
        return b;
    }

    uint32_t srv_ip() const { return inet_addr(ip_srv.c_str()); }  // network order
    uint32_t cli_ip() const { return inet_addr(ip_cli.c_str()); }
};

// Moves the calling thread into a named network namespace. 0 or -errno.
inline int enter_netns(const std::string& name)
{
    std::string path = "/run/netns/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = setns(fd, CLONE_NEWNET) ? -errno : 0;
    close(fd);
    return rc;
}

// Runs fn in a forked child inside namespace ns; returns the child's pid (fn's return
// value becomes its exit status). The child closes nothing: it exits quickly.
inline pid_t spawn_in(const std::string& ns, std::function<int()> fn)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (enter_netns(ns)) _exit(100);
    _exit(fn());
}

// Waits for a child for up to timeout_ms; kills it after that. Returns its exit status,
// or -1 when it had to be killed or died from a signal.
inline int reap(pid_t pid, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(10000);
    }
}

// Output of a shell command (for `ip link show` and the like).
inline std::string sh(const std::string& cmd)
{
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
}

// Opens non-blocking TCP connections from the client namespace: one SYN each (closed
// before the 1 s retransmission). Runs in a child that is already in the client ns.
inline int send_syns(const std::string& cli_ip, const std::string& srv_ip,
                     const uint16_t* sports, const uint16_t* dports, int n, int hold_ms)
{
    int fds[256];
    if (n > 256) return 2;
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(sports[i]);
        a.sin_addr.s_addr = inet_addr(cli_ip.c_str());
        if (bind(fds[i], reinterpret_cast<sockaddr*>(&a), sizeof a)) return 3;
        sockaddr_in d{};
        d.sin_family = AF_INET;
        d.sin_port = htons(dports[i]);
        d.sin_addr.s_addr = inet_addr(srv_ip.c_str());
        if (connect(fds[i], reinterpret_cast<sockaddr*>(&d), sizeof d) && errno != EINPROGRESS)
            return 4;
    }
    usleep(hold_ms * 1000);
    for (int i = 0; i < n; i++) close(fds[i]);
    return 0;
}

// Connects to ip:port, sends msg, expects it echoed back... by a plain kernel server
// that only reads: success = connect + full write + orderly close within timeout.
inline int kernel_tcp_roundtrip(const std::string& ip, uint16_t port, const char* msg)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in d{};
    d.sin_family = AF_INET;
    d.sin_port = htons(port);
    d.sin_addr.s_addr = inet_addr(ip.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&d), sizeof d)) return 10;
    size_t len = strlen(msg);
    if (write(fd, msg, len) != static_cast<ssize_t>(len)) return 11;
    char buf[64];
    ssize_t r = read(fd, buf, sizeof buf);
    close(fd);
    return r == static_cast<ssize_t>(len) && memcmp(buf, msg, len) == 0 ? 0 : 12;
}

// A minimal view of a received Ethernet/IPv4/TCP frame: enough to say which flow it is.
struct TcpTuple {
    bool ok = false;
    uint32_t saddr = 0, daddr = 0;  // network order
    uint16_t sport = 0, dport = 0;  // host order
    uint8_t flags = 0;
};

inline TcpTuple parse_tcp(const uint8_t* p, size_t len)
{
    TcpTuple t;
    if (len < 14 + 20 + 20 || p[12] != 0x08 || p[13] != 0x00) return t;
    size_t ihl = size_t(p[14] & 0xf) * 4;
    if (p[14 + 9] != 6 || len < 14 + ihl + 20) return t;
    memcpy(&t.saddr, p + 14 + 12, 4);
    memcpy(&t.daddr, p + 14 + 16, 4);
    const uint8_t* tcp = p + 14 + ihl;
    t.sport = uint16_t(tcp[0] << 8 | tcp[1]);
    t.dport = uint16_t(tcp[2] << 8 | tcp[3]);
    t.flags = tcp[13];
    t.ok = true;
    return t;
}

inline bool parse_mac(const std::string& s, uint8_t out[6])
{
    unsigned v[6];
    if (sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        return false;
    for (int i = 0; i < 6; i++) out[i] = uint8_t(v[i]);
    return true;
}

// RFC 1071 one's-complement sum over a header (for the hand-built TX frames).
inline uint16_t ip_checksum(const uint8_t* p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
    if (len & 1) sum += uint32_t(p[len - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

}  // namespace fastnet::test
