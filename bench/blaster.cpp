// Frame generator for the reflector benchmark: sends Ethernet/IPv4/TCP(RST) frames from
// the client namespace through an AF_PACKET socket, bounded by count and time. RST so
// the client kernel silently drops the reflected frames instead of answering them.
//
// usage: blaster --if IFNAME --src-mac M --dst-mac M --src-ip A --dst-ip A --port P
//                [--flows F] [--count N] [--seconds S] [--size BYTES]
// Prints: sent=N seconds=T frames_per_s=R
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

bool parse_mac(const char* s, uint8_t out[6])
{
    unsigned v[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return false;
    for (int i = 0; i < 6; i++) out[i] = uint8_t(v[i]);
    return true;
}

// RFC 1071 sum, folded, not complemented.
uint32_t sum16(const uint8_t* p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
    if (len & 1) sum += uint32_t(p[len - 1] << 8);
    return sum;
}
uint16_t fold(uint32_t sum)
{
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

std::vector<uint8_t> build(const uint8_t* smac, const uint8_t* dmac, uint32_t sip, uint32_t dip,
                           uint16_t sport, uint16_t dport, size_t size)
{
    std::vector<uint8_t> f(size < 54 ? 54 : size, 0);
    memcpy(&f[0], dmac, 6);
    memcpy(&f[6], smac, 6);
    f[12] = 0x08;
    uint8_t* ip = &f[14];
    size_t ip_len = f.size() - 14;
    ip[0] = 0x45; ip[2] = uint8_t(ip_len >> 8); ip[3] = uint8_t(ip_len);
    ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
    memcpy(ip + 12, &sip, 4);
    memcpy(ip + 16, &dip, 4);
    uint16_t c = fold(sum16(ip, 20, 0));
    ip[10] = uint8_t(c >> 8); ip[11] = uint8_t(c);
    uint8_t* tcp = ip + 20;
    tcp[0] = uint8_t(sport >> 8); tcp[1] = uint8_t(sport);
    tcp[2] = uint8_t(dport >> 8); tcp[3] = uint8_t(dport);
    tcp[4] = 0x12; tcp[5] = 0x34;
    tcp[12] = 0x50; tcp[13] = 0x04;  // doff 5, RST
    size_t tcp_len = ip_len - 20;
    uint8_t pseudo[12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0; pseudo[9] = 6; pseudo[10] = uint8_t(tcp_len >> 8); pseudo[11] = uint8_t(tcp_len);
    c = fold(sum16(tcp, tcp_len, sum16(pseudo, 12, 0)));
    tcp[16] = uint8_t(c >> 8); tcp[17] = uint8_t(c);
    return f;
}

}  // namespace

int main(int argc, char** argv)
{
    const char *ifname = nullptr, *smac_s = nullptr, *dmac_s = nullptr, *sip_s = nullptr, *dip_s = nullptr;
    uint16_t port = 9000;
    unsigned flows = 64, seconds = 5;
    size_t size = 64;
    uint64_t count = 50000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        const char* v = argv[i + 1];
        if (a == "--if") ifname = v;
        else if (a == "--src-mac") smac_s = v;
        else if (a == "--dst-mac") dmac_s = v;
        else if (a == "--src-ip") sip_s = v;
        else if (a == "--dst-ip") dip_s = v;
        else if (a == "--port") port = uint16_t(atoi(v));
        else if (a == "--flows") flows = unsigned(atoi(v));
        else if (a == "--count") count = strtoull(v, nullptr, 10);
        else if (a == "--seconds") seconds = unsigned(atoi(v));
        else if (a == "--size") size = size_t(atoi(v));
        else { fprintf(stderr, "blaster: unknown argument %s\n", a.c_str()); return 2; }
    }
    uint8_t smac[6], dmac[6];
    if (!ifname || !smac_s || !dmac_s || !sip_s || !dip_s || !parse_mac(smac_s, smac) ||
        !parse_mac(dmac_s, dmac) || flows == 0 || flows > 4096 || size > 1514) {
        fprintf(stderr, "usage: blaster --if IF --src-mac M --dst-mac M --src-ip A --dst-ip A "
                        "[--port P] [--flows 1..4096] [--count N] [--seconds S] [--size 54..1514]\n");
        return 2;
    }
    int fd = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: send only, receive nothing
    if (fd < 0) { perror("blaster: socket(AF_PACKET)"); return 1; }
    int one = 1;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_ifindex = int(if_nametoindex(ifname));
    ll.sll_halen = 6;
    memcpy(ll.sll_addr, dmac, 6);
    if (bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll)) { perror("blaster: bind"); return 1; }

    std::vector<std::vector<uint8_t>> frames;
    for (unsigned i = 0; i < flows; i++)
        frames.push_back(build(smac, dmac, inet_addr(sip_s), inet_addr(dip_s), uint16_t(20000 + i), port, size));

    constexpr unsigned kBatch = 64;
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    uint64_t sent = 0, errors = 0;
    unsigned next = 0;
    uint64_t start = now_ns(), deadline = start + uint64_t(seconds) * 1000000000ull;
    while (sent < count) {
        unsigned n = count - sent < kBatch ? unsigned(count - sent) : kBatch;
        for (unsigned i = 0; i < n; i++) {
            auto& f = frames[next++ % flows];
            iov[i] = {f.data(), f.size()};
            msgs[i] = {};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, msgs, n, 0);
        if (r > 0) sent += unsigned(r);
        else if (errno != ENOBUFS && errno != EAGAIN) { perror("blaster: sendmmsg"); break; }
        else errors++;
        if (now_ns() > deadline) break;
    }
    double secs = double(now_ns() - start) / 1e9;
    printf("sent=%llu seconds=%.3f frames_per_s=%.0f send_errors=%llu\n", (unsigned long long)sent,
           secs, double(sent) / secs, (unsigned long long)errors);
    close(fd);
    return 0;
}
