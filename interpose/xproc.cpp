// The table of connections shared by a process tree, and the moves of a connection
// between its processes (xproc.hpp; docs/DESIGN.md "Processes"). The requester posts a
// request in the entry; the owner's engine, at its next poll, writes the connection into
// the transfer area, steers the flow to the requester's slot and forgets it without a
// segment; the requester builds it in its own engine. Frames of the flow that reached
// the old owner meanwhile are dropped there and recovered by retransmission.
#include "interpose/xproc.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <unordered_set>

#include "interpose/accel.hpp"
#include "interpose/config.hpp"
#include "interpose/libc.hpp"
#include "interpose/runtime.hpp"

namespace fastnet::ipose::xproc {

namespace {

constexpr uint32_t kEntries = 4096;
constexpr uint32_t kSlotCount = 64;            // covers the XSKMAP slots (runtime.cpp kSlots)
constexpr size_t kTransferBytes = 8u << 20;    // one connection's send and receive bytes
// How long a requester waits for the owner's engine (it polls every 2 ms at most).
constexpr uint64_t kClaimNs = 1'000'000'000;
// Holders recorded by pid per entry. More are counted in `holders` but not recorded:
// their holds are trusted (only their own release drops them), never checked for life.
constexpr int kHolderPids = 8;
// A child being forked is recorded as a placeholder (its parent's pid, negated) until
// its fork handler puts its own pid there (xproc::inherited); one still there after
// this long belongs to a child that died before its handler ran.
constexpr uint64_t kForkGraceNs = 5'000'000'000;
// How often an owner's engine looks for holders that died without releasing the
// connections it keeps for them.
constexpr uint64_t kHolderCheckNs = 250'000'000;

enum class State : uint32_t {
    Free,
    Live,         // served by owner
    Requested,    // req asks owner for it
    Exported,     // in the transfer area, for req to import
    CloseReq,     // the last holder left; the owner (who closed its fd) closes it: FIN
};

// One recorded holder. pid > 0: a process, `start` its start time (/proc/PID/stat field
// 22, 0 when unreadable) which tells a reused pid apart; pid < 0: a child of -pid being
// forked since `start` (now_ns).
struct Holder {
    int32_t pid;
    uint64_t start;
};

struct Shared {
    State state;
    int32_t holders;                // processes holding an fd-table entry for it
    Holder held[kHolderPids];       // the first kHolderPids of them; pid 0: a free record
    Endpoint local, remote;
    int32_t owner_pid;
    int32_t owner_slot;
    SockId owner_sid;               // the owner's engine socket
    bool owner_closed;              // the owner holds no fd: its engine keeps it for the others
    int32_t req_pid;
    int32_t req_slot;
    int32_t result;                 // a refused request's -errno
};

struct Table {
    pthread_mutex_t mu;             // process-shared, robust
    std::atomic<uint32_t> pending[kSlotCount];   // requests for each slot's engine
    // Slots whose engine keeps connections for other holders (owner_closed), and when
    // each next looks whether those holders still live (serve).
    std::atomic<uint32_t> keeps[kSlotCount];
    std::atomic<uint64_t> next_check[kSlotCount];
    int32_t transfer_entry;         // whose connection is in the transfer area, -1: none
    int32_t transfer_pid;           // who is to import it
    Engine::ConnState transfer_state;
    Shared e[kEntries];
    alignas(64) uint8_t transfer[kTransferBytes];
};

Table* g_table = nullptr;

// A process's state letter and start time from /proc/PID/stat. false: unreadable.
bool proc_stat(pid_t pid, char* state, uint64_t* start) {
    char path[40], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = real().read(fd, buf, sizeof buf - 1);
    real().close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, the last ')' ends it.
    const char* p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2]) return false;
    *state = p[2];
    p += 3;
    for (int field = 4; field < 22 && p; ++field) {   // fields 4..21, then the start time
        p = strchr(p, ' ');
        if (p) ++p;
    }
    if (!p) return false;
    *start = strtoull(p, nullptr, 10);
    return true;
}

uint64_t start_of(pid_t pid) {
    char st;
    uint64_t start = 0;
    return proc_stat(pid, &st, &start) ? start : 0;
}

// This process's own record (its start time read once per process).
Holder self() {
    static pid_t pid = 0;
    static uint64_t start = 0;
    pid_t me = getpid();
    if (pid != me) {
        start = start_of(me);
        pid = me;
    }
    return Holder{me, start};
}

// Whether process pid still runs: kill(pid, 0), and a zombie (killed, not yet waited
// for by its parent) holds nothing any more. `start` (when known) guards a reused pid.
bool alive(pid_t pid, uint64_t start = 0) {
    if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH)) return false;
    char st;
    uint64_t now_start;
    if (!proc_stat(pid, &st, &now_start)) return true;   // no /proc: kill() said it runs
    return st != 'Z' && st != 'X' && (start == 0 || now_start == start);
}

void record(Shared& x, Holder h) {
    for (Holder& r : x.held)
        if (r.pid == 0) {
            r = h;
            return;
        }
}

// Drops pid's record, if it has one (an unrecorded holder has none).
void unrecord(Shared& x, pid_t pid) {
    for (Holder& r : x.held)
        if (r.pid == pid) {
            r = Holder{0, 0};
            return;
        }
}

// Drops the holders that left without releasing (killed) or never arrived (a child
// that died before its fork handler ran). Where the count decides something.
void prune(Shared& x) {
    const uint64_t now = now_ns();
    for (Holder& r : x.held) {
        bool gone = r.pid > 0 ? !alive(r.pid, r.start) : r.pid < 0 && now - r.start > kForkGraceNs;
        if (!gone) continue;
        log(LogLevel::Debug, "shared connection: holder %d is gone", r.pid);
        r = Holder{0, 0};
        --x.holders;
    }
}

// One holder (this process) lets go. Returns the holders left, dead ones not counted.
int32_t let_go(Shared& x) {
    --x.holders;
    unrecord(x, getpid());
    if (x.holders > 0) prune(x);
    return x.holders;
}

struct Lock {
    Lock() {
        int r = pthread_mutex_lock(&g_table->mu);
        if (r == EOWNERDEAD) pthread_mutex_consistent(&g_table->mu);   // a holder died inside
    }
    ~Lock() { pthread_mutex_unlock(&g_table->mu); }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
};

void post(uint32_t slot) {
    if (slot < kSlotCount) g_table->pending[slot].fetch_add(1, std::memory_order_release);
}
void done(uint32_t slot) {
    if (slot < kSlotCount) g_table->pending[slot].fetch_sub(1, std::memory_order_release);
}

void sleep_ns(long ns) {
    timespec ts{0, ns};
    nanosleep(&ts, nullptr);
}

}  // namespace

bool init() {
    if (g_table) return true;
    void* p = mmap(nullptr, sizeof(Table), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log(LogLevel::Warn, "no shared connection table (%s): connections accepted before fork() "
                            "stay the parent's", strerror(errno));
        return false;
    }
    Table* t = static_cast<Table*>(p);   // zero-filled: every entry Free
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&t->mu, &a);
    pthread_mutexattr_destroy(&a);
    t->transfer_entry = -1;
    g_table = t;
    return true;
}

void at_fork() {
    if (!g_table) return;
    FdTable& t = FdTable::get();
    const pid_t me = getpid();
    std::unordered_set<Entry*> seen;
    for (int fd = 0; fd <= t.high_water() && static_cast<unsigned>(fd) < t.size(); ++fd) {
        Entry* en = t.raw(fd);
        if (!en || en->kind != Kind::Socket || !seen.insert(en).second) continue;
        uint8_t inh = en->inherited.load(std::memory_order_acquire);
        const Holder forking{-me, now_ns()};
        if (en->xidx >= 0) {
            Lock g;
            g_table->e[en->xidx].holders++;
            record(g_table->e[en->xidx], forking);
            continue;
        }
        if (inh != Entry::Own || en->state != SockState::Connected || !en->eng) continue;
        Endpoint local, remote;
        RtEngine* e;
        SockId sid;
        {
            std::lock_guard ge(en->eng->mu);
            e = en->eng;
            sid = en->sid;
            if (sid == kNoSock || e->engine->local_endpoint(sid, &local) < 0 ||
                e->engine->remote_endpoint(sid, &remote) < 0)
                continue;
            Lock g;
            for (uint32_t i = 0; i < kEntries; ++i) {
                Shared& x = g_table->e[i];
                if (x.state != State::Free) continue;
                x = Shared{State::Live, 2, {}, local, remote, me, e->slot, sid, false, 0, -1, 0};
                x.held[0] = self();
                x.held[1] = forking;
                en->xidx = static_cast<int>(i);
                break;
            }
        }
        if (en->xidx < 0) log(LogLevel::Info, "shared connection table full: fd %d stays the parent's", fd);
    }
}

bool inherited(const Entry* en) {
    if (!g_table || en->xidx < 0) return false;
    // The child's fork handler: its pid takes the place its parent recorded for it
    // (once: several numbers may name one entry).
    const pid_t parent = getppid();
    Lock g;
    const Holder me = self();
    Shared& x = g_table->e[en->xidx];
    for (const Holder& r : x.held)
        if (r.pid == me.pid) return true;
    for (Holder& r : x.held)
        if (r.pid == -parent) {
            r = me;
            break;
        }
    return true;
}

bool pending(int slot) {
    if (!g_table || static_cast<unsigned>(slot) >= kSlotCount) return false;
    if (g_table->pending[slot].load(std::memory_order_acquire) != 0) return true;
    return g_table->keeps[slot].load(std::memory_order_acquire) != 0 &&
           now_ns() >= g_table->next_check[slot].load(std::memory_order_relaxed);
}

bool claim(int fd, Entry* en) {
    if (!g_table || en->xidx < 0) return false;
    RtEngine* me = Runtime::get().thread_engine();
    if (!me) return false;
    const pid_t pid = getpid();
    Shared& x = g_table->e[en->xidx];
    {
        std::lock_guard ge(me->mu);
        Lock g;
        if (x.state != State::Live || x.owner_pid == pid || !alive(x.owner_pid)) {
            log(LogLevel::Info, "fd %d: the connection's owner %d is gone", fd, x.owner_pid);
            return false;
        }
        // Frames that reach this engine before the import are dropped, not answered (RST).
        me->engine->set_time(now_ns());
        me->engine->expect_flow(x.local, x.remote);
        x.state = State::Requested;
        x.req_pid = pid;
        x.req_slot = me->slot;
        x.result = 0;
        post(static_cast<uint32_t>(x.owner_slot));
    }
    const uint64_t give_up = now_ns() + kClaimNs;
    for (;;) {
        State s = __atomic_load_n(&x.state, __ATOMIC_ACQUIRE);
        if (s == State::Exported || s != State::Requested || now_ns() >= give_up) break;
        sleep_ns(100'000);
    }
    std::vector<Entry*> changed;
    bool ok = false;
    {
        std::lock_guard ge(me->mu);
        Lock g;
        if (x.state == State::Requested) {   // no answer: the owner is stuck or stopped
            done(static_cast<uint32_t>(x.owner_slot));
            x.state = State::Live;
            log(LogLevel::Warn, "fd %d: process %d did not hand the connection over within 1 s",
                fd, x.owner_pid);
            return false;
        }
        if (x.state != State::Exported || x.req_pid != pid || g_table->transfer_entry != en->xidx) {
            log(LogLevel::Info, "fd %d: process %d refused the connection (%s)", fd, x.owner_pid,
                strerror(-x.result));
            return false;
        }
        me->engine->set_time(now_ns());
        int sid = me->engine->import_connection(g_table->transfer_state, g_table->transfer);
        g_table->transfer_entry = -1;
        if (sid < 0) {
            // The owner has let it go: this process cannot have it either. Its holders
            // still close it (the entry stays, with nobody serving it).
            x.state = State::Live;
            x.owner_pid = 0;
            log(LogLevel::Warn, "fd %d: cannot import the connection (%s)", fd, strerror(-sid));
            return false;
        }
        x.state = State::Live;
        x.owner_pid = pid;
        x.owner_slot = me->slot;
        x.owner_sid = static_cast<SockId>(sid);
        x.owner_closed = false;
        me->sockets[static_cast<SockId>(sid)] = en;
        __atomic_store_n(&en->sid, static_cast<SockId>(sid), __ATOMIC_RELAXED);
        __atomic_store_n(&en->eng, me, __ATOMIC_RELEASE);
        en->steered_port = 0;          // its exact flow entry steers it
        en->stays = true;              // it does not follow threads: the table names this engine
        en->state = SockState::Connected;
        me->take_changed(changed);
        if (me->engine->tx_deferred()) note_tx(me);
        ok = true;
    }
    if (!changed.empty()) notify_changed(me, changed);
    log(LogLevel::Debug, "fd %d: connection taken over from another process", fd);
    return ok;
}

void serve(RtEngine& e) {
    const pid_t me = getpid();
    const bool check = static_cast<unsigned>(e.slot) < kSlotCount &&
                       g_table->keeps[e.slot].load(std::memory_order_acquire) != 0 &&
                       now_ns() >= g_table->next_check[e.slot].load(std::memory_order_relaxed);
    bool keeps = false;
    Lock g;
    for (uint32_t i = 0; i < kEntries; ++i) {
        Shared& x = g_table->e[i];
        if (x.owner_pid != me || x.owner_slot != e.slot) continue;
        if (x.state == State::Live && x.owner_closed) {
            // Kept for other holders: if they all died without closing (SIGKILL), the
            // connection closes now, as the kernel closes a file when its last holder dies.
            if (check) prune(x);
            if (x.holders > 0) {
                keeps = true;
                continue;
            }
            e.engine->close(x.owner_sid);
            x.state = State::Free;
            continue;
        }
        if (x.state != State::Requested && x.state != State::CloseReq) continue;
        if (x.state == State::CloseReq) {
            e.engine->close(x.owner_sid);   // the last holder is gone: FIN (or RST, unread data)
            x.state = State::Free;
            done(static_cast<uint32_t>(e.slot));
            continue;
        }
        if (g_table->transfer_entry >= 0) {
            if (alive(g_table->transfer_pid)) continue;          // one at a time: next poll
            g_table->e[g_table->transfer_entry].state = State::Live;   // its importer died
            g_table->e[g_table->transfer_entry].owner_pid = 0;
            g_table->transfer_entry = -1;
        }
        int r = e.engine->export_connection(x.owner_sid, &g_table->transfer_state, g_table->transfer,
                                            kTransferBytes);
        if (r == -EAGAIN) continue;         // out-of-order data: once the hole is filled
        if (r >= 0 && Runtime::get().steer_flow_to_slot(x.local, x.remote, static_cast<uint32_t>(x.req_slot)) < 0)
            r = -ENOBUFS;                   // the flow map is full
        done(static_cast<uint32_t>(e.slot));
        if (r < 0) {
            x.result = r;
            x.state = State::Live;
            continue;
        }
        e.engine->release_exported(x.owner_sid);
        // This process's own fd (if it still has one) now names a connection served
        // elsewhere: its next use asks for it back.
        if (auto it = e.sockets.find(x.owner_sid); it != e.sockets.end()) {
            Entry* en = it->second;
            e.sockets.erase(it);
            __atomic_store_n(&en->sid, kNoSock, __ATOMIC_RELAXED);
            en->inherited.store(Entry::Remote, std::memory_order_release);
        }
        x.owner_pid = x.req_pid;
        x.owner_slot = x.req_slot;
        x.owner_sid = kNoSock;
        g_table->transfer_entry = static_cast<int32_t>(i);
        g_table->transfer_pid = x.req_pid;
        __atomic_store_n(&x.state, State::Exported, __ATOMIC_RELEASE);
    }
    if (check) {
        g_table->next_check[e.slot].store(now_ns() + kHolderCheckNs, std::memory_order_relaxed);
        if (!keeps) g_table->keeps[e.slot].store(0, std::memory_order_release);
    }
}

bool release(Entry* en) {
    if (!g_table || en->xidx < 0) return false;
    const pid_t me = getpid();
    const bool owner = en->inherited.load(std::memory_order_acquire) == Entry::Own && en->eng &&
                       en->sid != kNoSock;
    Shared& x = g_table->e[en->xidx];
    en->xidx = -1;
    if (owner) {
        std::lock_guard ge(en->eng->mu);
        Lock g;
        if (let_go(x) <= 0 || x.owner_pid != me) {
            x.state = State::Free;
            return false;                  // the last live holder: closed as usual
        }
        x.owner_closed = true;             // kept for the other holders, who close it
        if (static_cast<unsigned>(x.owner_slot) < kSlotCount) {
            // Its engine closes it should they all die without closing (serve).
            g_table->next_check[x.owner_slot].store(now_ns() + kHolderCheckNs, std::memory_order_relaxed);
            g_table->keeps[x.owner_slot].store(1, std::memory_order_release);
        }
        en->eng->sockets.erase(en->sid);
        return true;
    }
    Lock g;
    if (let_go(x) > 0) return true;
    // The last holder, never the owner here: the owner closed its fd and kept the
    // connection for us; its engine closes it now.
    if (x.state == State::Live && x.owner_closed && alive(x.owner_pid)) {
        x.state = State::CloseReq;
        post(static_cast<uint32_t>(x.owner_slot));
    } else if (x.state == State::Live) {
        x.state = State::Free;
    }
    return true;
}

void leave(Entry* en) {
    if (!g_table || en->xidx < 0) return;
    Shared& x = g_table->e[en->xidx];
    en->xidx = -1;
    Lock g;
    if (let_go(x) <= 0) x.state = State::Free;
    else if (x.owner_pid == getpid()) x.owner_pid = 0;
}

void release_all() {
    if (!g_table) return;
    FdTable& t = FdTable::get();
    for (int fd = 0; fd <= t.high_water() && static_cast<unsigned>(fd) < t.size(); ++fd) {
        Entry* en = t.raw(fd);
        if (!en || en->kind != Kind::Socket || en->xidx < 0) continue;
        if (en->inherited.load(std::memory_order_acquire) != Entry::Own) {
            release(en);
            continue;
        }
        // Served here: it closes with this process (exec, exit). Other holders can no
        // longer have it; the entry goes with the last of them.
        leave(en);
    }
}

}  // namespace fastnet::ipose::xproc
