// Frame reflector: the ceiling of the AF_XDP data path. One thread per XSK (all on one
// queue, one shared UMEM) receives TCP frames for a port, swaps MACs/addresses/ports and
// sends them back through the XskDevice API exactly as an engine would (rx_burst →
// tx_alloc → copy → tx_submit → tx_flush). Run inside the server namespace.
//
// usage: reflector --if IFNAME [--xsks N] [--port P] [--seconds S] [--ready-file F]
// Prints one line: xsks=N reflected=F seconds=T frames_per_s=R per_xsk=a,b,...
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "stack/xdp/steering.hpp"
#include "stack/xdp/umem.hpp"
#include "stack/xdp/xsk_device.hpp"

using namespace fastnet;

namespace {

std::atomic<bool> g_stop{false};

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

struct Worker {
    XskDevice dev;
    uint64_t reflected = 0;
    uint64_t first_ns = 0, last_ns = 0;
};

// Swaps Ethernet, IPv4 and TCP endpoints in place. The checksums are sums over the
// swapped fields, so they stay valid (RFC 1071: the sum is order-independent).
bool reflect(uint8_t* p, uint32_t len)
{
    if (len < 14 + 20 + 20 || p[12] != 0x08 || p[13] != 0x00) return false;
    uint8_t tmp[6];
    memcpy(tmp, p, 6);
    memcpy(p, p + 6, 6);
    memcpy(p + 6, tmp, 6);
    uint8_t* ip = p + 14;
    size_t ihl = size_t(ip[0] & 0xf) * 4;
    if (ip[9] != 6 || len < 14 + ihl + 20) return false;
    memcpy(tmp, ip + 12, 4);
    memcpy(ip + 12, ip + 16, 4);
    memcpy(ip + 16, tmp, 4);
    uint8_t* tcp = ip + ihl;
    memcpy(tmp, tcp, 2);
    memcpy(tcp, tcp + 2, 2);
    memcpy(tcp + 2, tmp, 2);
    return true;
}

void run(Worker* w)
{
    Frame rx[64], tx[64];
    int idle = 0;
    while (!g_stop.load(std::memory_order_relaxed)) {
        size_t n = w->dev.rx_burst(rx, 64);
        if (n == 0) {
            w->dev.tx_flush();
            // Spin a little, then sleep on the XSK fd: two cores are shared with the
            // generator, so a pure busy loop would starve it.
            if (++idle > 64) {
                pollfd pfd{w->dev.wait_fd(), POLLIN, 0};
                poll(&pfd, 1, 10);
                idle = 0;
            }
            continue;
        }
        idle = 0;
        size_t m = w->dev.tx_alloc(tx, n);
        size_t out = 0;
        for (size_t i = 0; i < m; i++) {
            memcpy(tx[out].data, rx[i].data, rx[i].len);
            if (!reflect(tx[out].data, rx[i].len)) continue;
            tx[out].len = rx[i].len;
            out++;
        }
        w->dev.rx_release(rx, n);
        if (out < m) w->dev.tx_abandon(tx + out, m - out);
        w->dev.tx_submit(tx, out);
        w->dev.tx_flush();
        uint64_t t = now_ns();
        if (!w->first_ns) w->first_ns = t;
        w->last_ns = t;
        w->reflected += out;
    }
}

void on_signal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv)
{
    std::string ifname, ready_file;
    unsigned nxsk = 1, seconds = 10;
    uint16_t port = 9000;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) { fprintf(stderr, "reflector: %s needs a value\n", a.c_str()); exit(2); }
            return argv[++i];
        };
        if (a == "--if") ifname = next();
        else if (a == "--xsks") nxsk = unsigned(atoi(next()));
        else if (a == "--port") port = uint16_t(atoi(next()));
        else if (a == "--seconds") seconds = unsigned(atoi(next()));
        else if (a == "--ready-file") ready_file = next();
        else { fprintf(stderr, "reflector: unknown argument %s\n", a.c_str()); return 2; }
    }
    if (ifname.empty() || nxsk < 1 || nxsk > 8) {
        fprintf(stderr, "usage: reflector --if IFNAME [--xsks 1..8] [--port P] [--seconds S]\n");
        return 2;
    }
    ZeroCopyMode zc;
    char msg[128];
    if (zerocopy_mode_from_env(&zc, msg, sizeof msg)) { fprintf(stderr, "reflector: %s\n", msg); return 2; }

    Steering steer;
    if (steer.attach(int(if_nametoindex(ifname.c_str())))) {
        fprintf(stderr, "reflector: %s\n", steer.error());
        return 1;
    }
    Umem umem;
    UmemConfig uc;
    uc.frame_count = 8192;
    if (umem.create(uc)) { fprintf(stderr, "reflector: %s\n", umem.error()); return 1; }
    std::vector<Worker> workers(nxsk);
    for (unsigned i = 0; i < nxsk; i++) {
        XskConfig xc;
        xc.ifname = ifname.c_str();
        xc.zerocopy = zc;
        xc.rx_size = 2048;
        xc.tx_size = 2048;
        if (workers[i].dev.open(umem, xc)) { fprintf(stderr, "reflector: %s\n", workers[i].dev.error()); return 1; }
        if (steer.set_xsk(i, workers[i].dev.fd()) || steer.add_listen_slot(port, i)) {
            fprintf(stderr, "reflector: %s\n", steer.error());
            return 1;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back(run, &w);
    if (!ready_file.empty()) {
        FILE* f = fopen(ready_file.c_str(), "w");
        if (f) { fprintf(f, "%s\n", to_string(workers[0].dev.mode())); fclose(f); }
    }
    for (unsigned s = 0; s < seconds * 10 && !g_stop; s++) usleep(100000);
    g_stop = true;
    for (auto& t : threads) t.join();

    uint64_t total = 0, first = 0, last = 0;
    std::string per;
    for (auto& w : workers) {
        total += w.reflected;
        if (w.first_ns && (!first || w.first_ns < first)) first = w.first_ns;
        if (w.last_ns > last) last = w.last_ns;
        per += (per.empty() ? "" : ",") + std::to_string(w.reflected);
    }
    double secs = last > first ? double(last - first) / 1e9 : 0;
    uint64_t kicks = 0, again = 0;
    for (auto& w : workers) { kicks += w.dev.stats().tx_kicks; again += w.dev.stats().tx_kick_again; }
    printf("xsks=%u mode=%s reflected=%llu seconds=%.3f frames_per_s=%.0f per_xsk=%s tx_kicks=%llu kick_again=%llu\n",
           nxsk, to_string(workers[0].dev.mode()), (unsigned long long)total, secs,
           secs > 0 ? double(total) / secs : 0.0, per.c_str(), (unsigned long long)kicks,
           (unsigned long long)again);
    for (auto& w : workers) w.dev.close();
    steer.close();
    umem.destroy();
    return 0;
}
