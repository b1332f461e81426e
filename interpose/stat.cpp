// fastnet-stat: prints the counters of running fastnet processes, read from their
// /dev/shm/fastnet.<pid> segments (counters.hpp). Usage: fastnet-stat [--json] [pid];
// fastnet-stat --daemon [--json] [interface] asks fastnetd for its view instead.
// Without a pid: every live fastnet process.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include "interpose/counters.hpp"
#include "stack/xdp/fastnetd_proto.hpp"

using namespace fastnet;
using namespace fastnet::ipose;

namespace {

struct Totals {
    int pid = 0;
    std::string state;
    int engines = 0;
    uint64_t sockets_accelerated = 0, accepted_kernel = 0, handovers = 0, passthrough_calls = 0;
    uint64_t passed_out = 0, passed_in = 0;
    uint64_t slots_reaped = 0, frames_reclaimed = 0;
    uint64_t umem_frames = 0, umem_frames_free = 0, frames_cached = 0;
    uint64_t queues = 0, queue_rx[16] = {};
    EngineStats e{};
};

bool read_one(int pid, Totals* t, std::string* err) {
    char path[64];
    counters_path(pid, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = std::string(path) + ": " + strerror(errno);
        return false;
    }
    struct stat st{};
    if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < sizeof(SharedCounters)) {
        close(fd);
        *err = std::string(path) + ": not a fastnet counters segment";
        return false;
    }
    void* p = mmap(nullptr, sizeof(SharedCounters), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        *err = std::string(path) + ": " + strerror(errno);
        return false;
    }
    auto* c = static_cast<const SharedCounters*>(p);
    if (__atomic_load_n(&c->magic, __ATOMIC_ACQUIRE) != kCountersMagic || c->version != kCountersVersion) {
        munmap(p, sizeof(SharedCounters));
        *err = std::string(path) + ": not a fastnet counters segment (or another version)";
        return false;
    }
    t->pid = c->pid;
    t->state.assign(c->state, strnlen(c->state, sizeof c->state));
    t->sockets_accelerated = c->sockets_accelerated.load(std::memory_order_relaxed);
    t->accepted_kernel = c->accepted_kernel.load(std::memory_order_relaxed);
    t->handovers = c->handovers.load(std::memory_order_relaxed);
    t->passed_out = c->passed_out.load(std::memory_order_relaxed);
    t->passed_in = c->passed_in.load(std::memory_order_relaxed);
    t->passthrough_calls = c->passthrough_calls.load(std::memory_order_relaxed);
    t->slots_reaped = c->slots_reaped.load(std::memory_order_relaxed);
    t->frames_reclaimed = c->frames_reclaimed.load(std::memory_order_relaxed);
    t->umem_frames = c->umem_frames.load(std::memory_order_relaxed);
    t->umem_frames_free = c->umem_frames_free.load(std::memory_order_relaxed);
    t->queues = c->queues.load(std::memory_order_relaxed);
    for (int q = 0; q < 16; ++q) t->queue_rx[q] = c->queue_rx_frames[q].load(std::memory_order_relaxed);
    constexpr int ndrops = static_cast<int>(Drop::Count_) < kMaxDrops ? static_cast<int>(Drop::Count_) : kMaxDrops;
    for (int i = 0; i < kMaxEngineSlots; ++i) {
        const EngineSlot& s = c->engines[i];
        if (!s.used.load(std::memory_order_acquire)) continue;
        ++t->engines;
        EngineSlot copy;
        for (int tries = 0; tries < 1000; ++tries) {   // seqlock: retry while written
            uint32_t a = __atomic_load_n(&s.seq, __ATOMIC_ACQUIRE);
            memcpy(static_cast<void*>(&copy), &s, sizeof copy);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (!(a & 1) && a == __atomic_load_n(&s.seq, __ATOMIC_RELAXED)) break;
        }
        EngineStats& e = t->e;
        e.frames_rx += copy.frames_rx; e.frames_tx += copy.frames_tx;
        e.bytes_rx += copy.bytes_rx; e.bytes_tx += copy.bytes_tx;
        e.conn_opened += copy.conn_opened; e.conn_accepted += copy.conn_accepted;
        e.conn_closed += copy.conn_closed; e.conn_reset += copy.conn_reset;
        e.retransmits += copy.retransmits; e.syn_cookies_sent += copy.syn_cookies_sent;
        e.challenge_acks += copy.challenge_acks;
        e.moved_in += copy.moved_in; e.frames_forwarded += copy.frames_forwarded;
        t->frames_cached += copy.frames_cached;
        e.rx_csum_partial += copy.rx_csum_partial;
        e.tx_csum_offload += copy.tx_csum_offload;
        e.handed_over += copy.handed_over;
        for (int d = 0; d < ndrops; ++d) e.drops[d] += copy.drops[d];
    }
    munmap(p, sizeof(SharedCounters));
    return true;
}

std::vector<std::pair<const char*, uint64_t>> fields(const Totals& t) {
    static const char* const kQueueNames[16] = {
        "rx_frames_q0", "rx_frames_q1", "rx_frames_q2", "rx_frames_q3", "rx_frames_q4",
        "rx_frames_q5", "rx_frames_q6", "rx_frames_q7", "rx_frames_q8", "rx_frames_q9",
        "rx_frames_q10", "rx_frames_q11", "rx_frames_q12", "rx_frames_q13", "rx_frames_q14",
        "rx_frames_q15"};
    std::vector<std::pair<const char*, uint64_t>> f = {{"sockets_accelerated", t.sockets_accelerated}, {"accepted_kernel", t.accepted_kernel},
            {"handovers", t.handovers}, {"passthrough_calls", t.passthrough_calls},
            {"conn_passed_out", t.passed_out}, {"conn_passed_in", t.passed_in},
            {"slots_reaped", t.slots_reaped}, {"frames_reclaimed", t.frames_reclaimed},
            {"frames_rx", t.e.frames_rx}, {"frames_tx", t.e.frames_tx},
            {"bytes_rx", t.e.bytes_rx}, {"bytes_tx", t.e.bytes_tx},
            {"conn_opened", t.e.conn_opened}, {"conn_accepted", t.e.conn_accepted},
            {"conn_closed", t.e.conn_closed}, {"conn_reset", t.e.conn_reset},
            {"retransmits", t.e.retransmits}, {"syn_cookies_sent", t.e.syn_cookies_sent},
            {"challenge_acks", t.e.challenge_acks},
            {"sockets_moved", t.e.moved_in}, {"frames_forwarded", t.e.frames_forwarded},
            {"rx_csum_partial", t.e.rx_csum_partial}, {"tx_csum_offload", t.e.tx_csum_offload},
            {"conn_handed_over", t.e.handed_over},
            {"umem_frames", t.umem_frames},
            {"umem_frames_idle", t.umem_frames_free + t.frames_cached},
            {"queues", t.queues}};
    for (uint64_t q = 0; q < t.queues && q < 16; ++q) f.push_back({kQueueNames[q], t.queue_rx[q]});
    return f;
}

std::string json_string(const std::string& s) {
    std::string o = "\"";
    for (char ch : s) {
        if (ch == '"' || ch == '\\') { o += '\\'; o += ch; }
        else if (static_cast<unsigned char>(ch) < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", ch); o += b; }
        else o += ch;
    }
    return o + "\"";
}

void print_text(const Totals& t) {
    printf("pid %d: %s, %d engine%s\n", t.pid, t.state.c_str(), t.engines, t.engines == 1 ? "" : "s");
    for (auto& [k, v] : fields(t)) printf("  %-22s %llu\n", k, static_cast<unsigned long long>(v));
    for (int d = 0; d < static_cast<int>(Drop::Count_); ++d)
        printf("  drop_%-17s %llu\n", drop_reason_name(static_cast<Drop>(d)),
               static_cast<unsigned long long>(t.e.drops[d]));
}

void print_json(const Totals& t) {
    printf("{\"pid\": %d, \"state\": %s, \"engines\": %d", t.pid, json_string(t.state).c_str(), t.engines);
    for (auto& [k, v] : fields(t)) printf(", \"%s\": %llu", k, static_cast<unsigned long long>(v));
    printf(", \"drops\": {");
    for (int d = 0; d < static_cast<int>(Drop::Count_); ++d)
        printf("%s\"%s\": %llu", d ? ", " : "", drop_reason_name(static_cast<Drop>(d)),
               static_cast<unsigned long long>(t.e.drops[d]));
    printf("}}");
}

int usage() {
    fprintf(stderr, "usage: fastnet-stat [--json] [pid]\n"
                    "       fastnet-stat --daemon [--json] [interface]   (fastnetd's view)\n");
    return 2;
}

}  // namespace

// fastnetd's view of one interface (its socket at path). 0, or 1 with a message.
int print_daemon(const std::string& path, bool json, bool first) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    DaemonRequest rq;
    rq.op = DaemonOp::Status;
    DaemonStatus st;
    int r = fd < 0 ? -errno : connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 ? -errno : 0;
    if (r == 0) r = daemon_send(fd, &rq, sizeof rq, nullptr, 0);
    if (r == 0) r = daemon_recv(fd, &st, sizeof st, nullptr, nullptr);
    if (fd >= 0) close(fd);
    if (r == 0 && st.status < 0) r = st.status;
    if (r < 0) {
        fprintf(stderr, "fastnet-stat: %s: %s\n", path.c_str(), strerror(-r));
        return 1;
    }
    int slots = 0;
    for (int32_t p : st.slot_pid) slots += p != 0;
    if (json) {
        printf("%s{\"interface\": %s, \"pid\": %d, \"keeper\": %d, \"clients\": %u, \"slots_used\": %d, "
               "\"queues\": %u, \"frames_per_queue\": %u, \"free_frames\": [", first ? "" : ", ",
               json_string(st.ifname).c_str(), st.pid, st.keeper, st.clients, slots, st.queues, st.frames);
        for (uint32_t q = 0; q < st.queues && q < 16; ++q) printf("%s%u", q ? ", " : "", st.free_frames[q]);
        printf("], \"fill_frames\": [");
        for (uint32_t q = 0; q < st.queues && q < 16; ++q) printf("%s%u", q ? ", " : "", st.fill_frames[q]);
        printf("], \"slot_pids\": [");
        bool any = false;
        for (int32_t p : st.slot_pid) if (p) { printf("%s%d", any ? ", " : "", p); any = true; }
        printf("], \"handovers\": %llu, \"handovers_refused\": %llu, \"clients_exited\": %llu, \"pidfd\": %u}",
               static_cast<unsigned long long>(st.handovers), static_cast<unsigned long long>(st.handovers_refused),
               static_cast<unsigned long long>(st.clients_exited), st.pidfd);
        return 0;
    }
    printf("fastnetd %d on %s: ring keeper %d, %u client connection%s, %d of 16 slots used, %u queue%s of %u frames\n",
           st.pid, st.ifname, st.keeper, st.clients, st.clients == 1 ? "" : "s", slots, st.queues,
           st.queues == 1 ? "" : "s", st.frames);
    for (uint32_t q = 0; q < st.queues && q < 16; ++q)
        printf("  queue %-2u free %-6u fill ring %u\n", q, st.free_frames[q], st.fill_frames[q]);
    for (int i = 0; i < 16; ++i)
        if (st.slot_pid[i]) printf("  slot %-2d pid %d\n", i, st.slot_pid[i]);
    printf("  clients seen to exit %llu (%s), connections handed to the kernel %llu, refused %llu\n",
           static_cast<unsigned long long>(st.clients_exited), st.pidfd ? "pidfd" : "kill(pid, 0) sweep",
           static_cast<unsigned long long>(st.handovers), static_cast<unsigned long long>(st.handovers_refused));
    return 0;
}

int daemons_main(const char* ifname, bool json) {
    std::vector<std::string> paths;
    if (ifname) {
        paths.push_back(std::string(kDaemonDir) + "/" + ifname + ".sock");
    } else if (DIR* d = opendir(kDaemonDir)) {
        while (dirent* de = readdir(d)) {
            size_t n = strlen(de->d_name);
            if (n > 5 && strcmp(de->d_name + n - 5, ".sock") == 0)
                paths.push_back(std::string(kDaemonDir) + "/" + de->d_name);
        }
        closedir(d);
    }
    int rc = 0;
    if (json) printf("[");
    bool first = true;
    for (auto& p : paths) {
        int r = print_daemon(p, json, first);
        if (r == 0) first = false;
        rc |= r;
    }
    if (json) printf("]\n");
    else if (paths.empty()) printf("no fastnetd running\n");
    return ifname ? rc : 0;
}

int main(int argc, char** argv) {
    bool json = false;
    int pid = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--daemon") == 0) {
            const char* ifname = nullptr;
            for (int k = 1; k < argc; ++k)
                if (strcmp(argv[k], "--json") == 0) json = true;
                else if (k != i && argv[k][0] != '-') ifname = argv[k];
            return daemons_main(ifname, json);
        }
        if (strcmp(argv[i], "--json") == 0) json = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return usage(), 0;
        else {
            char* end = nullptr;
            long v = strtol(argv[i], &end, 10);
            if (!*argv[i] || *end || v <= 0 || v > 0x7fffffff) return usage();
            pid = static_cast<int>(v);
        }
    }
    std::vector<int> pids;
    if (pid) {
        pids.push_back(pid);
    } else if (DIR* d = opendir("/dev/shm")) {
        while (dirent* de = readdir(d)) {
            int p = 0;
            if (sscanf(de->d_name, "fastnet.%d", &p) == 1 && p > 0 && (kill(p, 0) == 0 || errno == EPERM))
                pids.push_back(p);
        }
        closedir(d);
    }
    std::vector<Totals> all;
    for (int p : pids) {
        Totals t;
        std::string err;
        if (read_one(p, &t, &err)) all.push_back(t);
        else if (pid) {
            fprintf(stderr, "fastnet-stat: %s\n", err.c_str());
            return 1;
        }
    }
    if (json) {
        if (pid) print_json(all[0]);
        else {
            printf("[");
            for (size_t i = 0; i < all.size(); ++i) { if (i) printf(", "); print_json(all[i]); }
            printf("]");
        }
        printf("\n");
    } else {
        if (all.empty()) printf("no fastnet process running\n");
        for (auto& t : all) print_text(t);
    }
    return 0;
}
