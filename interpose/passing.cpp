// Connections passed with SCM_RIGHTS or across execve() travel as images (passing.hpp;
// docs/DESIGN.md "Passing connections"). The sender holds the engine lock from the
// export to the release: nothing the engine does in between can make the image stale.
// The connection is released from the sender's engine only once the image is on its way
// (sendmsg returned, or the image is on the number exec keeps); frames of the flow that
// reach the old engine meanwhile are dropped there (Engine::release_exported) and come
// back by retransmission once the receiver has steered the flow to its own engine.
#include "interpose/passing.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "interpose/accel.hpp"
#include "interpose/config.hpp"
#include "interpose/counters.hpp"
#include "interpose/fastsock.hpp"
#include "stack/handover.hpp"
#include "interpose/libc.hpp"
#include "interpose/runtime.hpp"
#include "interpose/xproc.hpp"

namespace fastnet::ipose::pass {

namespace {

constexpr char kMagic[8] = {'f', 'n', 'c', 'o', 'n', 'n', 0, 1};
// Every seal: an image never changes once written, and these seals on a memfd name one.
constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
constexpr char kEnv[] = "FASTNET_PASSED";

// The image's first bytes; the connection's bytes (Engine::export_connection) follow.
struct Head {
    char magic[8];
    uint32_t head_size;               // sizeof(Head): both sides are the same build
    uint32_t state_size;              // sizeof(Engine::ConnState)
    uint64_t data_len;
    uint32_t ifindex_ip;              // the engine's address (import checks it too)
    int32_t family;
    uint8_t nonblock, v6only;
    timeval rcvtimeo, sndtimeo;
    int32_t linger_onoff, linger_secs;
    int32_t nopts;
    SavedOpt opts[12];
    Engine::ConnState st;
};
static_assert(std::is_trivially_copyable_v<Engine::ConnState>);

// The socket settings an image carries, between an Entry and a Head (same field names).
template <class From, class To>
void copy_settings(const From& a, To& b) {
    b.family = a.family;
    b.nonblock = a.nonblock;
    b.v6only = a.v6only;
    b.rcvtimeo = a.rcvtimeo;
    b.sndtimeo = a.sndtimeo;
    b.linger_onoff = a.linger_onoff;
    b.linger_secs = a.linger_secs;
    b.nopts = a.nopts;
    static_assert(sizeof a.opts == sizeof b.opts);
    memcpy(b.opts, a.opts, sizeof b.opts);
}

// The entry's engine, locked (it may move between engines until it is locked).
RtEngine* lock_entry(Entry* en, std::unique_lock<std::mutex>& g) {
    for (;;) {
        RtEngine* e = __atomic_load_n(&en->eng, __ATOMIC_ACQUIRE);
        if (!e) return nullptr;
        g = std::unique_lock(e->mu);
        if (__atomic_load_n(&en->eng, __ATOMIC_ACQUIRE) == e) return e;
        g.unlock();
    }
}

// Writes en's connection (its engine e locked) into a new sealed memfd. Returns the memfd
// or -errno: -EAGAIN while out-of-order data waits for a hole to be filled.
int write_image(RtEngine& e, Entry* en, bool cloexec) {
    const RealLibc& r = real();
    Engine& eng = *e.engine;
    size_t cap = eng.unsent(en->sid) + eng.unread(en->sid) + 4096;
    for (int attempt = 0; attempt < 4; ++attempt, cap *= 2) {
        int m = memfd_create("fastnet-connection", MFD_ALLOW_SEALING | (cloexec ? MFD_CLOEXEC : 0));
        if (m < 0) return -errno;
        const size_t size = sizeof(Head) + cap;
        void* p = MAP_FAILED;
        if (ftruncate(m, static_cast<off_t>(size)) == 0)
            p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            r.close(m);
            return -err;
        }
        Head* h = new (p) Head{};
        int n = eng.export_connection(en->sid, &h->st, reinterpret_cast<uint8_t*>(h + 1), cap);
        if (n >= 0) {
            memcpy(h->magic, kMagic, sizeof kMagic);
            h->head_size = sizeof(Head);
            h->state_size = sizeof(Engine::ConnState);
            h->data_len = static_cast<uint64_t>(n);
            h->ifindex_ip = h->st.local.ip;
            copy_settings(*en, *h);
        }
        munmap(p, size);
        if (n == -ENOSPC) {
            r.close(m);
            continue;
        }
        if (n < 0 || ftruncate(m, static_cast<off_t>(sizeof(Head) + static_cast<size_t>(n))) != 0 ||
            r.fcntl(m, F_ADD_SEALS, kSeals) != 0) {
            int err = n < 0 ? -n : errno;
            r.close(m);
            return -err;
        }
        return m;
    }
    return -ENOSPC;
}

// The image on number fd, mapped (read-only, private), or null when fd is no image.
const Head* map_image(int fd, size_t* size) {
    const RealLibc& r = real();
    if (r.fcntl(fd, F_GET_SEALS) != kSeals) return nullptr;   // not a memfd, or another one
    struct stat sb{};
    if (fstat(fd, &sb) != 0 || static_cast<size_t>(sb.st_size) < sizeof(Head)) return nullptr;
    *size = static_cast<size_t>(sb.st_size);
    void* p = mmap(nullptr, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return nullptr;
    auto* h = static_cast<const Head*>(p);
    if (memcmp(h->magic, kMagic, sizeof kMagic) != 0 || h->head_size != sizeof(Head) ||
        h->state_size != sizeof(Engine::ConnState) || h->data_len != *size - sizeof(Head)) {
        munmap(p, *size);
        return nullptr;
    }
    return h;
}

// Builds the image's connection in this thread's engine and puts a fastnet socket on fd
// (the image's number), sharing `same` if the image was already adopted on another
// number. Returns the entry, or null (logged; the number stays the image).
Entry* adopt(int fd, const Head* h, Entry* same) {
    const RealLibc& r = real();
    FdTable& t = FdTable::get();
    int fdflags = r.fcntl(fd, F_GETFD);
    const int dflags = fdflags >= 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0;
    if (same) {
        if (r.dup3(t.anchor(), fd, dflags) < 0) return nullptr;
        same->refs.fetch_add(1, std::memory_order_acq_rel);
        t.install(fd, same);
        return same;
    }
    if (!Runtime::get().start()) {
        log(LogLevel::Warn, "fd %d: a connection passed to this process cannot run here (fastnet "
                            "did not start): it is lost", fd);
        return nullptr;
    }
    RtEngine* me = Runtime::get().thread_engine();
    Entry* en = me ? t.alloc() : nullptr;
    if (!en) return nullptr;
    std::vector<Entry*> changed;
    int sid;
    {
        std::lock_guard g(me->mu);
        me->engine->set_time(now_ns());
        sid = me->engine->import_connection(h->st, reinterpret_cast<const uint8_t*>(h + 1));
        if (sid >= 0 && Runtime::get().steer_flow_to_slot(h->st.local, h->st.remote,
                                                          static_cast<uint32_t>(me->slot)) < 0) {
            me->engine->abort(static_cast<SockId>(sid));   // nobody could reach it: the peer learns
            sid = -ENOBUFS;
        }
        if (sid >= 0) {
            me->sockets[static_cast<SockId>(sid)] = en;
            me->take_changed(changed);
            if (me->engine->tx_deferred()) note_tx(me);
        }
    }
    if (sid < 0) {
        t.put(en);
        log(LogLevel::Warn, "fd %d: cannot take the connection passed to this process (%s): it is lost",
            fd, strerror(-sid));
        return nullptr;
    }
    copy_settings(*h, *en);
    en->nopts = std::clamp(en->nopts, 0, static_cast<int>(std::size(en->opts)));
    en->eng = me;
    en->sid = static_cast<SockId>(sid);
    en->state = SockState::Connected;
    en->steered_port = 0;          // its exact flow entry steers it
    en->stays = true;              // it stays on the engine its flow entry names
    // The number changes from the image to a fastnet socket atomically.
    if (r.dup3(t.anchor(), fd, dflags) < 0) {
        std::lock_guard g(me->mu);
        me->sockets.erase(en->sid);
        me->engine->abort(en->sid);
        t.put(en);
        return nullptr;
    }
    t.install(fd, en);
    if (!changed.empty()) notify_changed(me, changed);
    if (SharedCounters* c = counters()) c->passed_in.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::Debug, "fd %d: connection passed in", fd);
    return en;
}

// Adopts every image among fds (the same image on several numbers: one socket).
void adopt_all(const int* fds, size_t n) {
    struct Seen {
        dev_t dev;
        ino_t ino;
        Entry* en;
    };
    std::vector<Seen> seen;
    for (size_t i = 0; i < n; ++i) {
        size_t size = 0;
        const Head* h = map_image(fds[i], &size);
        if (!h) continue;
        struct stat sb{};
        fstat(fds[i], &sb);
        Entry* same = nullptr;
        for (const Seen& s : seen)
            if (s.dev == sb.st_dev && s.ino == sb.st_ino) same = s.en;
        Entry* en = adopt(fds[i], h, same);
        munmap(const_cast<Head*>(h), size);
        if (en && !same) seen.push_back({sb.st_dev, sb.st_ino, en});
    }
}

// Frames of en's flow are dropped (not answered by the kernel or a socket that no
// longer knows it) until the receiver steers it to its engine. The receiver may have
// done so already (it can import as soon as the message is sent): then nothing changes.
void park(Entry* en) {
    Endpoint local, remote;
    Engine& eng = *en->eng->engine;
    if (eng.local_endpoint(en->sid, &local) < 0 || eng.remote_endpoint(en->sid, &remote) < 0) return;
    Runtime::get().park_flow(local, remote);
}

// The sender's number after its connection left: an unconnected kernel socket (what a
// socket whose connection is elsewhere can still do: be closed), its flags kept.
void forget_number(int fd, Entry* en);

void leave_number(int fd, Entry* en) {
    const RealLibc& r = real();
    int fdflags = r.fcntl(fd, F_GETFD);
    int k = r.socket(en->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (k >= 0) {
        r.dup3(k, fd, fdflags >= 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
        r.close(k);
    }
    forget_number(fd, en);
}

// Whether en is a connection this process can let go of: connected, served by an engine
// of this process (an inherited one is taken over first by the lookup that found it).
bool movable(Entry* en) {
    return en->state == SockState::Connected && !en->orphan() &&
           __atomic_load_n(&en->eng, __ATOMIC_ACQUIRE) != nullptr && en->sid != kNoSock;
}

// The kernel continues en's connection (TCP_REPAIR, unread bytes included) on a socket
// that replaces number fd (flags, timeouts and options kept); the engine (e, locked)
// forgets it. Returns 0 or -errno (logged once: EPERM without CAP_NET_ADMIN).
int to_kernel(int fd, Entry* en, RtEngine& e, std::unique_lock<std::mutex>& g) {
    const RealLibc& r = real();
    static bool warned = false;
    Engine::HandoverState h;
    e.engine->set_time(now_ns());
    int res = e.engine->handover_state(en->sid, &h, true);
    // Data out of order waits for the peer to fill the hole (within a round trip or a
    // retransmission): up to 2 s.
    for (int i = 0; res == -EINVAL && i < 2000 && en->sid != kNoSock; ++i) {
        e.engine->poll(now_ns());
        g.unlock();
        timespec ts{0, 1'000'000};
        nanosleep(&ts, nullptr);
        g.lock();
        if (en->sid == kNoSock) return -EBADF;
        e.engine->set_time(now_ns());
        res = e.engine->handover_state(en->sid, &h, true);
    }
    const char* step = "its state (half-closed, or data out of order)";
    int kfd = res < 0 ? res : repair_into_kernel(h, &step);
    if (kfd < 0) {
        if (!warned)
            log(LogLevel::Warn, "fd %d: cannot hand the connection to the kernel (%s: %s); it stays "
                                "in this process", fd, step, strerror(-kfd));
        warned = true;
        return kfd;
    }
    Runtime::get().steer_to_kernel(h.local, h.remote);
    e.sockets.erase(en->sid);
    e.engine->detach(en->sid);
    en->sid = kNoSock;
    for (int i = 0; i < en->nopts; ++i)
        r.setsockopt(kfd, en->opts[i].level, en->opts[i].name, en->opts[i].val, en->opts[i].len);
    if (en->rcvtimeo.tv_sec || en->rcvtimeo.tv_usec)
        r.setsockopt(kfd, SOL_SOCKET, SO_RCVTIMEO, &en->rcvtimeo, sizeof en->rcvtimeo);
    if (en->sndtimeo.tv_sec || en->sndtimeo.tv_usec)
        r.setsockopt(kfd, SOL_SOCKET, SO_SNDTIMEO, &en->sndtimeo, sizeof en->sndtimeo);
    if (en->nonblock) r.fcntl(kfd, F_SETFL, r.fcntl(kfd, F_GETFL) | O_NONBLOCK);
    int fdflags = r.fcntl(fd, F_GETFD);
    r.dup3(kfd, fd, fdflags >= 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
    r.close(kfd);
    if (SharedCounters* c = counters()) c->handovers.fetch_add(1, std::memory_order_relaxed);
    return 0;
}

// The number no longer names a fastnet socket (a kernel socket or an image is on it).
void forget_number(int fd, Entry* en) {
    FdTable& t = FdTable::get();
    if (t.remove(fd) != en) return;
    if (en->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        en->closed.store(true, std::memory_order_seq_cst);   // a call still holding it ends
        epoll_forget(en);
        t.put(en);
    }
}

}  // namespace

ssize_t send(int fd, const msghdr* msg, int flags) {
    if (!msg || fs::bad_user_range(msg, sizeof *msg) || !msg->msg_control ||
        msg->msg_controllen < sizeof(cmsghdr) || fs::bad_user_range(msg->msg_control, msg->msg_controllen))
        return kNotPassing;
    FdTable& t = FdTable::get();
    struct Passed {
        size_t off;              // of the fd in the control data
        int fd;
        Entry* en;
        int image = -1;
    };
    std::vector<Passed> passed;
    std::vector<EntryRef> held;   // the passed sockets, until the call returns
    auto* base = static_cast<uint8_t*>(msg->msg_control);
    for (cmsghdr* c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(const_cast<msghdr*>(msg), c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; ++i) {
            uint8_t* at = CMSG_DATA(c) + i * sizeof(int);
            int pfd;
            memcpy(&pfd, at, sizeof pfd);
            EntryRef en = t.lookup(pfd);   // takes over a connection inherited through fork()
            if (en && en->kind == Kind::Socket) {
                passed.push_back({static_cast<size_t>(at - base), pfd, en});
                held.push_back(std::move(en));
            }
        }
    }
    if (passed.empty()) return kNotPassing;

    std::vector<uint8_t> ctl(base, base + msg->msg_controllen);
    msghdr m = *msg;
    m.msg_control = ctl.data();
    std::vector<Passed*> conns;
    for (Passed& p : passed) {
        if (movable(p.en)) {
            conns.push_back(&p);
        } else if (p.en->state == SockState::Listening && p.en->shadow >= 0) {
            memcpy(&ctl[p.off], &p.en->shadow, sizeof(int));   // the receiver gets the kernel side
        } else {
            log(LogLevel::Info, "fd %d passed to another process as it is: only connected and "
                                "listening sockets can be", p.fd);
        }
    }
    const RealLibc& r = real();
    for (Passed* p : conns) xproc::leave(p->en);   // other holders lose it: it moves out
    if (!Runtime::get().via_daemon()) {
        // Standalone, a process exec'd from this tree cannot join its UMEM: the kernel
        // continues the connections, and the message passes kernel sockets (shared with
        // this process, as the kernel's own would be).
        for (Passed* p : conns) {
            std::unique_lock<std::mutex> g;
            RtEngine* e = lock_entry(p->en, g);
            if (!e || p->en->sid == kNoSock || to_kernel(p->fd, p->en, *e, g) < 0) continue;
            g.unlock();
            forget_number(p->fd, p->en);
        }
        conns.clear();
    }
    int fl = r.fcntl(fd, F_GETFL);
    const bool blocking = !(flags & MSG_DONTWAIT) && fl >= 0 && !(fl & O_NONBLOCK);
    for (;;) {
        // Every engine involved, locked: the first with a blocking lock, the others tried
        // (two engine locks are never waited for in turn).
        std::vector<std::unique_lock<std::mutex>> held;
        std::vector<RtEngine*> locked;
        bool all = true;
        for (Passed* p : conns) {
            RtEngine* e = __atomic_load_n(&p->en->eng, __ATOMIC_ACQUIRE);
            if (std::find(locked.begin(), locked.end(), e) != locked.end()) continue;
            std::unique_lock<std::mutex> g;
            if (locked.empty()) {
                e = lock_entry(p->en, g);
            } else {
                g = std::unique_lock(e->mu, std::try_to_lock);
                if (!g.owns_lock() || __atomic_load_n(&p->en->eng, __ATOMIC_ACQUIRE) != e) {
                    all = false;
                    break;
                }
            }
            held.push_back(std::move(g));
            locked.push_back(e);
        }
        if (!all) {
            held.clear();
            sched_yield();
            continue;
        }
        // A connection that cannot be written out (no longer open) goes as it is; one
        // with a hole in its received data waits for the peer to fill it.
        bool hole = false;
        for (Passed* p : conns) {
            if (p->en->sid == kNoSock) continue;
            p->en->eng->engine->set_time(now_ns());
            int img = -1;
            for (Passed* q : conns)   // the same socket twice in one message: one image
                if (q != p && q->en == p->en && q->image >= 0) img = r.dup(q->image);
            if (img < 0) img = write_image(*p->en->eng, p->en, true);
            if (img == -EAGAIN) hole = true;
            if (img < 0) continue;
            p->image = img;
            memcpy(&ctl[p->off], &img, sizeof(int));
        }
        ssize_t res = -EAGAIN;
        if (!hole) {
            ssize_t w = r.sendmsg(fd, &m, flags | MSG_DONTWAIT);
            res = w < 0 ? -errno : w;
        }
        size_t moved = 0;
        if (res >= 0) {
            for (Passed* p : conns) {
                if (p->image < 0 || p->en->sid == kNoSock) continue;   // as it is, or listed twice
                park(p->en);
                p->en->eng->sockets.erase(p->en->sid);
                p->en->eng->engine->release_exported(p->en->sid);
                p->en->sid = kNoSock;
                ++moved;
            }
        }
        held.clear();
        for (Passed* p : conns) {
            if (p->image >= 0) {
                r.close(p->image);
                if (res >= 0) leave_number(p->fd, p->en);
            }
            p->image = -1;
            memcpy(&ctl[p->off], &p->fd, sizeof(int));
        }
        if (res >= 0) {
            if (SharedCounters* c = counters()) c->passed_out.fetch_add(moved, std::memory_order_relaxed);
            return res;
        }
        if (res != -EAGAIN || (!hole && !blocking)) return res;
        for (Passed* p : conns) pump(p->en->eng, true);
        pollfd pf{fd, POLLOUT, 0};
        r.poll(&pf, 1, hole ? 1 : -1);
    }
}

void received(msghdr* msg) {
    if (!msg || !msg->msg_control || msg->msg_controllen < sizeof(cmsghdr)) return;
    for (cmsghdr* c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        std::vector<int> fds(n);
        memcpy(fds.data(), CMSG_DATA(c), n * sizeof(int));
        adopt_all(fds.data(), n);
    }
}

void before_exec(bool preloaded, ExecPlan* plan) {
    FdTable& t = FdTable::get();
    const RealLibc& r = real();
    for (int fd = 0; fd <= t.high_water() && static_cast<unsigned>(fd) < t.size(); ++fd) {
        Entry* en = t.raw(fd);
        if (!en || en->kind != Kind::Socket) continue;
        int fl = r.fcntl(fd, F_GETFD);
        if (fl < 0 || (fl & FD_CLOEXEC)) continue;
        EntryRef held = t.lookup(fd);    // a connection inherited through fork(): taken over
        en = held;
        if (!en || en->kind != Kind::Socket) continue;
        if (en->state == SockState::Listening && en->shadow >= 0) {
            r.dup3(en->shadow, fd, 0);   // the new image inherits the kernel side
            continue;
        }
        if (!movable(en)) continue;
        xproc::leave(en);
        std::unique_lock<std::mutex> g;
        RtEngine* e = lock_entry(en, g);
        if (!e || en->sid == kNoSock) continue;
        e->engine->set_time(now_ns());
        const bool image = preloaded && Runtime::get().via_daemon();
        if (image) {
            int img = -EAGAIN;
            for (int i = 0; i < 1000 && img == -EAGAIN; ++i) {
                img = write_image(*e, en, false);
                if (img == -EAGAIN) {   // a hole in the received data: let the peer fill it
                    e->engine->poll(now_ns());
                    g.unlock();
                    timespec ts{0, 1'000'000};
                    nanosleep(&ts, nullptr);
                    g.lock();
                    e->engine->set_time(now_ns());
                }
            }
            if (img < 0 || r.dup3(img, fd, 0) < 0) {
                log(LogLevel::Warn, "fd %d: cannot carry the connection across exec (%s)", fd,
                    strerror(img < 0 ? -img : errno));
                if (img >= 0) r.close(img);
                continue;
            }
            r.close(img);
            park(en);
            e->sockets.erase(en->sid);
            e->engine->release_exported(en->sid);
            plan->images.push_back(fd);
        } else {
            // The new image does not load fastnet, or cannot join this process tree's
            // UMEM (standalone): the kernel continues the connection.
            if (to_kernel(fd, en, *e, g) < 0) continue;
            plan->kernel.push_back(fd);
        }
        en->sid = kNoSock;
        g.unlock();
        // Every number of this socket that survives exec names the same image or
        // kernel socket.
        for (int o = 0; o <= t.high_water() && static_cast<unsigned>(o) < t.size(); ++o) {
            if (o == fd || t.raw(o) != en) continue;
            int ofl = r.fcntl(o, F_GETFD);
            if (ofl >= 0 && !(ofl & FD_CLOEXEC)) {
                r.dup3(fd, o, 0);
                (image ? plan->images : plan->kernel).push_back(o);
            }
        }
        if (image) {
            if (SharedCounters* c = counters()) c->passed_out.fetch_add(1, std::memory_order_relaxed);
        }
    }
    if (plan->images.empty()) return;
    std::sort(plan->images.begin(), plan->images.end());
    plan->env = std::string(kEnv) + "=";
    for (size_t i = 0; i < plan->images.size(); ++i)
        plan->env += (i ? "," : "") + std::to_string(plan->images[i]);
}

void exec_failed(const ExecPlan& plan) {
    FdTable& t = FdTable::get();
    for (int fd : plan.kernel)             // a kernel socket now: the number is the kernel's
        if (Entry* old = t.raw(fd)) forget_number(fd, old);
    if (plan.images.empty()) return;
    for (int fd : plan.images) {
        if (Entry* old = t.remove(fd)) {   // the socket that was on the number before
            if (old->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                old->closed.store(true, std::memory_order_seq_cst);
                epoll_forget(old);
                t.put(old);
            }
        }
    }
    adopt_all(plan.images.data(), plan.images.size());
}

void adopt_inherited() {
    const char* v = getenv(kEnv);
    if (!v) return;
    std::vector<int> fds;
    for (const char* p = v; *p;) {
        char* end;
        long fd = strtol(p, &end, 10);
        if (end == p || fd < 0 || fd > (1 << 22)) break;
        fds.push_back(static_cast<int>(fd));
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end) break;
    }
    unsetenv(kEnv);                      // not for the images this one execs
    adopt_all(fds.data(), fds.size());
}

}  // namespace fastnet::ipose::pass
