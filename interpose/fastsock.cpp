// fastnet sockets: BSD socket semantics (blocking, timeouts, EINTR, SIGPIPE, handover)
// on top of the non-blocking engine. Every engine call takes the engine's lock; readiness
// the engine reports meanwhile is dispatched (accel.hpp) after the lock is released.
// socket.cpp / io.cpp wrappers → fs::* → Engine (stack/engine.hpp) or, after a
// handover, the kernel socket that replaced the fastnet one on the same fd number.
#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <type_traits>
#include <unistd.h>

#include "interpose/accel.hpp"
#include "interpose/config.hpp"
#include "interpose/counters.hpp"
#include "interpose/fastsock.hpp"
#include "interpose/libc.hpp"
#include "interpose/xproc.hpp"
#include "interpose/runtime.hpp"

namespace fastnet::ipose::fs {

namespace {

constexpr uint64_t kNoDeadline = ~0ull;
// A sleeping thread re-checks at least this often, in case a wakeup raced with it.
constexpr uint64_t kMaxSleepNs = 100'000'000;
// How often accept() looks at the kernel side of a listener that has not shown readiness.
constexpr uint64_t kShadowRetryNs = 1'000'000;

// Locks the engine serving en. The socket may move to another engine between the
// read of en->eng and the lock (follow_caller): then look again.
RtEngine* lock_engine(Entry* en, std::unique_lock<std::mutex>& g) {
    for (;;) {
        RtEngine* e = __atomic_load_n(&en->eng, __ATOMIC_ACQUIRE);
        g = std::unique_lock(e->mu);
        if (__atomic_load_n(&en->eng, __ATOMIC_ACQUIRE) == e) return e;
        g.unlock();
    }
}

// Runs f(Engine&) under the entry's engine lock, then dispatches readiness changes.
// A socket closed meanwhile (its last fd number went while this call held the entry)
// answers -EBADF (0 for a size) without reaching the engine, unless even_closed.
template <class F>
auto with_engine(Entry* en, F&& f, bool even_closed = false) -> decltype(f(*en->eng->engine)) {
    using R = decltype(f(*en->eng->engine));
    thread_local std::vector<Entry*> changed;
    R r;
    RtEngine* e;
    {
        std::unique_lock<std::mutex> g;
        e = lock_engine(en, g);
        uint64_t now = now_ns();
        e->engine->set_time(now);
        // What already arrived counts: a non-blocking accept right after the peer's
        // handshake, FIONREAD right after its data, the window a write sees.
        if (e->engine->rx_waiting()) e->engine->take_rx(now);
        if (!even_closed && en->closed.load(std::memory_order_relaxed)) {
            if constexpr (std::is_signed_v<R>) r = -EBADF;
            else r = 0;
        } else {
            r = f(*e->engine);
        }
        e->take_changed(changed);
        if (e->engine->tx_deferred()) note_tx(e);
    }
    if (!changed.empty()) notify_changed(e, changed);
    return r;
}

uint64_t deadline_from(const timeval& tv) {
    if (tv.tv_sec == 0 && tv.tv_usec == 0) return kNoDeadline;
    return now_ns() + static_cast<uint64_t>(tv.tv_sec) * 1000000000ull +
           static_cast<uint64_t>(tv.tv_usec) * 1000ull;
}

uint32_t sock_events_locked(Entry* en, Engine& eng) {
    if (en->closed.load(std::memory_order_relaxed)) return EPOLLHUP;   // as a socket shut down both ways
    uint32_t ev = eng.events(en->sid);
    if (en->shadow_ready.load(std::memory_order_relaxed)) ev |= EPOLLIN;
    return ev;
}

}  // namespace

// Readiness of a fastnet socket as EPOLL* bits (engine + kernel side of a listener).
// A plain lock, no dispatch: callers may hold an epoll set's lock (collect), and
// events() changes nothing that would need dispatching.
uint32_t sock_events(Entry* en) {
    std::unique_lock<std::mutex> g;
    RtEngine* e = lock_engine(en, g);
    return sock_events_locked(en, *e->engine);
}

// Sleeps until the socket may have one of `want` (or an error), the engine needs a poll,
// or the deadline passes. 0: look again; -EINTR; -EAGAIN: the deadline passed.
int wait_once(Entry* en, uint32_t want, uint64_t deadline) {
    if (en->closed.load(std::memory_order_acquire)) return -EBADF;
    RtEngine* e = en->eng;
    pump(e, true);
    flush_deferred();
    if (sock_events(en) & (want | EPOLLERR | EPOLLHUP)) return 0;
    uint64_t now = now_ns();
    if (deadline != kNoDeadline && now >= deadline) return -EAGAIN;
    // Busy polling (FASTNET_SPIN_US): the engine, then the socket, until something
    // happens or the spin ends; only then sleep.
    if (uint64_t spin = spin_ns()) {
        hold_signals(nullptr);
        for (uint64_t end = std::min(deadline, now + spin); now < end; now = now_ns()) {
            spin_pause();
            pump(e, true);
            if (sock_events(en) & (want | EPOLLERR | EPOLLHUP)) return 0;
        }
        if (deadline != kNoDeadline && now >= deadline) return -EAGAIN;
    }
    uint64_t until = std::min(deadline, std::min(engine_deadline(e), now + kMaxSleepNs));
    uint64_t ns = until > now ? until - now : 0;
    timespec ts{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
    pollfd p[3] = {{e->wait_fd, POLLIN, 0}, {e->wake_fd, POLLIN, 0}, {-1, POLLIN, 0}};
    nfds_t n = 2;
    if (en->shadow >= 0 && en->state == SockState::Listening) p[n++].fd = en->shadow;
    en->waiters.fetch_add(1, std::memory_order_seq_cst);
    // A close that came before the increment found no waiter to wake (end_calls).
    if (en->closed.load(std::memory_order_seq_cst)) {
        en->waiters.fetch_sub(1, std::memory_order_acq_rel);
        return -EBADF;
    }
    int r = real().ppoll(p, n, &ts, hold_signals(nullptr));
    int err = errno;
    en->waiters.fetch_sub(1, std::memory_order_acq_rel);
    if (r < 0 && err == EINTR) return -EINTR;
    if (p[1].revents & POLLIN) {
        uint64_t v;
        real().read(e->wake_fd, &v, sizeof v);
    }
    if (n == 3 && (p[2].revents & POLLIN)) en->shadow_ready.store(true, std::memory_order_relaxed);
    // Closed by another thread while asleep (fs::release wakes the engine's sleepers).
    return en->closed.load(std::memory_order_acquire) ? -EBADF : 0;
}

namespace {

// The socket leaves fastnet: a kernel socket takes its fd number (fdtable.cpp), the
// engine forgets it, the entry is recycled.
int handover(int fd, Entry* en, const char* why) {
    int r = handover_to_kernel(fd, en);
    if (r < 0) return r;
    with_engine(en, [&](Engine& eng) {
        en->closed.store(true, std::memory_order_release);   // calls still in progress end
        en->eng->sockets.erase(en->sid);
        return eng.abort(en->sid);
    }, true);
    FdTable& t = FdTable::get();
    if (t.remove(fd) == en && en->refs.fetch_sub(1) == 1) t.put(en);
    if (SharedCounters* c = counters()) c->handovers.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::Debug, "fd %d handed over to the kernel: %s", fd, why);
    return 0;
}

bool is_any(const sockaddr* sa) {
    if (sa->sa_family == AF_INET) return reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr == 0;
    if (sa->sa_family == AF_INET6) return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
    return false;
}

// Whether the engine can serve a local address: the wildcard (IPv4 half of "::" unless
// IPV6_V6ONLY) or the accelerated interface's IPv4 address.
bool engine_can_bind(Entry* en, const sockaddr* sa, socklen_t len, Endpoint* ep) {
    bool mapped = false;
    if (sa->sa_family != en->family) return false;
    if (!sockaddr_to_endpoint(sa, len, ep, &mapped)) return false;
    if (en->family == AF_INET6 && en->v6only) return false;
    if (en->family == AF_INET6 && !mapped && !is_any(sa)) return false;
    return Runtime::get().local_ip(ep->ip);
}

int make_shadow(Entry* en, const sockaddr* sa, socklen_t len) {
    const RealLibc& r = real();
    int k = r.socket(en->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (k < 0) return -errno;
    for (int i = 0; i < en->nopts; ++i)
        r.setsockopt(k, en->opts[i].level, en->opts[i].name, en->opts[i].val, en->opts[i].len);
    if (r.bind(k, sa, len) != 0) {
        int err = errno;
        r.close(k);
        return -err;
    }
    en->bound_len = sizeof en->bound;
    r.getsockname(k, reinterpret_cast<sockaddr*>(&en->bound), &en->bound_len);
    en->shadow = k;
    return 0;
}

uint16_t bound_port(const Entry* en) {
    if (en->bound.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&en->bound)->sin_port);
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&en->bound)->sin6_port);
}

}  // namespace

int socket(int domain, int type, int protocol) {
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if ((domain != AF_INET && domain != AF_INET6) || base != SOCK_STREAM ||
        (protocol != 0 && protocol != IPPROTO_TCP))
        return kToKernel;
    if (!Runtime::get().start()) return kToKernel;
    RtEngine* e = Runtime::get().thread_engine();
    if (!e) return kToKernel;
    FdTable& t = FdTable::get();
    int fd = t.new_fd(type & SOCK_CLOEXEC);
    if (fd < 0) return fd;
    Entry* en = t.alloc();
    if (!en) {
        real().close(fd);
        return -ENOMEM;
    }
    en->family = domain;
    en->nonblock = type & SOCK_NONBLOCK;
    en->eng = e;
    int sid = with_engine(en, [&](Engine& eng) {
        int s = eng.socket();
        if (s >= 0) e->sockets[static_cast<SockId>(s)] = en;
        return s;
    });
    if (sid < 0) {
        t.put(en);
        real().close(fd);
        return sid == -ENOBUFS ? -ENOBUFS : kToKernel;
    }
    en->sid = static_cast<SockId>(sid);
    t.install(fd, en);
    if (SharedCounters* c = counters()) c->sockets_accelerated.fetch_add(1, std::memory_order_relaxed);
    return fd;
}

int bind(int fd, Entry* en, const sockaddr* addr, socklen_t len) {
    if (!addr) return -EFAULT;
    if (en->state != SockState::Fresh) return -EINVAL;
    if (len < sizeof(sa_family_t)) return -EINVAL;
    Endpoint ep;
    bool accel = engine_can_bind(en, addr, len, &ep);
    // The kernel gets the bind first: it judges the address and reserves the port
    // (EADDRINUSE, EACCES, EADDRNOTAVAIL come from it, as without fastnet).
    if (int r = make_shadow(en, addr, len); r < 0) return r;
    if (!accel || is_loopback(addr, len)) return handover(fd, en, "local address not on the accelerated interface");
    ep.port = bound_port(en);
    int r = with_engine(en, [&](Engine& eng) { return eng.bind(en->sid, ep); });
    if (r < 0) return handover(fd, en, "the engine cannot bind this port");
    en->state = SockState::Bound;
    return 0;
}

int listen(int fd, Entry* en, int backlog) {
    if (en->state == SockState::Listening) {
        en->backlog = backlog;
        with_engine(en, [&](Engine& eng) { return eng.listen(en->sid, backlog); });
        return real().listen(en->shadow, backlog) == 0 ? 0 : -errno;
    }
    if (en->state == SockState::Fresh) {
        sockaddr_storage any{};
        any.ss_family = static_cast<sa_family_t>(en->family);
        socklen_t len = en->family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        if (int r = bind(fd, en, reinterpret_cast<sockaddr*>(&any), len); r < 0) return r;
        if (FdTable::get().raw(fd) != en) return real().listen(fd, backlog);   // handed over
    }
    if (en->state != SockState::Bound) return -EINVAL;
    en->backlog = backlog;
    int r = with_engine(en, [&](Engine& eng) { return eng.listen(en->sid, backlog); });
    if (r < 0) return r;
    if (real().listen(en->shadow, backlog) != 0) return -errno;
    if ((r = Runtime::get().listen_port(bound_port(en), en->eng)) < 0) {
        log(LogLevel::Warn, "cannot steer port %u to fastnet (%s): its connections go to the kernel",
            bound_port(en), strerror(-r));
    }
    en->state = SockState::Listening;
    return 0;
}

bool adopt_listener(int fd, Entry* en) {
    RtEngine* e = Runtime::get().thread_engine();
    if (!e) return false;
    Endpoint ep;
    bool mapped = false;
    if (!sockaddr_to_endpoint(reinterpret_cast<const sockaddr*>(&en->bound), en->bound_len, &ep, &mapped))
        return false;
    ep.port = bound_port(en);
    en->eng = e;
    int sid = with_engine(en, [&](Engine& eng) {
        int s = eng.socket();
        if (s < 0) return s;
        // The options the application set (SO_REUSEPORT makes it one of a group here
        // too; the accepted connections inherit TCP_NODELAY, keepalive ...).
        for (int i = 0; i < en->nopts; ++i)
            eng.setsockopt(static_cast<SockId>(s), en->opts[i].level, en->opts[i].name, en->opts[i].val,
                           en->opts[i].len);
        int r = eng.bind(static_cast<SockId>(s), ep);
        if (r == 0) r = eng.listen(static_cast<SockId>(s), en->backlog);
        if (r < 0) {
            eng.abort(static_cast<SockId>(s));
            return r;
        }
        e->sockets[static_cast<SockId>(s)] = en;
        return s;
    });
    if (sid < 0) {
        log(LogLevel::Warn, "inherited listener on port %u stays with the kernel: %s", ep.port, strerror(-sid));
        return false;
    }
    en->sid = static_cast<SockId>(sid);
    en->dormant.store(false, std::memory_order_relaxed);
    // The number becomes a dup of the anchor again, as every fastnet socket's is.
    const RealLibc& r = real();
    int fdflags = r.fcntl(fd, F_GETFD);
    r.dup3(FdTable::get().anchor(), fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
    if (int rc = Runtime::get().listen_port(ep.port, e); rc < 0)
        log(LogLevel::Warn, "cannot steer port %u to this process (%s)", ep.port, strerror(-rc));
    Runtime::get().adopted_listener(ep.port);
    log(LogLevel::Info, "inherited listener on port %u: this process's engine serves it too", ep.port);
    return true;
}

void leave_port(Entry* en) {
    if (en->state != SockState::Listening || en->dormant.exchange(true)) return;
    Runtime::get().unlisten_port(bound_port(en), en->eng);
}

void rejoin_port(Entry* en) {
    if (!en->dormant.load(std::memory_order_relaxed) || !en->dormant.exchange(false)) return;
    Runtime::get().listen_port(bound_port(en), en->eng);
}

void listeners_displaced(RtEngine* e) {
    // A forked child took some of this engine's ports. A listener this process still
    // watches (an epoll set, a poll or accept in progress) goes back into its port's
    // set; one it does not watch (a master that only supervises its workers) stays out
    // until it is accepted on or waited on again (rejoin_port).
    FdTable& t = FdTable::get();
    for (int fd = 0; fd <= t.high_water() && static_cast<unsigned>(fd) < t.size(); ++fd) {
        EntryRef en(t.hold(fd));   // the application may close it meanwhile
        if (!en || en->kind != Kind::Socket || en->orphan() || en->eng != e ||
            en->state != SockState::Listening)
            continue;
        if (en->items || en->waiters.load(std::memory_order_acquire) > 0) {
            en->dormant.store(false, std::memory_order_relaxed);
            Runtime::get().listen_port(bound_port(en), e);
        } else {
            leave_port(en);
        }
    }
}

int accept(int fd, Entry* en, sockaddr* addr, socklen_t* len, int flags) {
    (void)fd;
    if (en->state != SockState::Listening) return -EINVAL;
    rejoin_port(en);
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) return -EINVAL;
    uint64_t deadline = deadline_from(en->rcvtimeo);
    FdTable& t = FdTable::get();
    for (;;) {
        if (en->closed.load(std::memory_order_acquire)) return -EBADF;
        for (int side = 0; side < 2; ++side) {
            bool kernel = (side == 0) == en->accept_kernel_first;
            if (kernel) {
                // Tried when the kernel listener has shown a connection, else at most
                // once per kShadowRetryNs: a failed accept4() costs the kernel a socket
                // and a file it frees again (a tenth of a preloaded nginx's time when it
                // was tried at every accept).
                uint64_t now = now_ns();
                if (!en->shadow_ready.load(std::memory_order_relaxed) && now - en->shadow_tried < kShadowRetryNs)
                    continue;
                en->shadow_tried = now;
                int k = real().accept4(en->shadow, addr, len, flags);
                if (k >= 0) {
                    en->last_accept = now;
                    en->accept_kernel_first = false;
                    if (SharedCounters* c = counters()) c->accepted_kernel.fetch_add(1, std::memory_order_relaxed);
                    return k;
                }
                if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
                en->shadow_ready.store(false, std::memory_order_relaxed);
                continue;
            }
            Endpoint peer;
            Entry* child = t.alloc();
            if (!child) return -ENOMEM;
            int sid = with_engine(en, [&](Engine& eng) {
                int s = eng.accept(en->sid, &peer);
                if (s >= 0) en->eng->sockets[static_cast<SockId>(s)] = child;
                return s;
            });
            if (sid == -EAGAIN) {
                t.put(child);
                continue;
            }
            if (sid < 0) {
                t.put(child);
                return sid;
            }
            int cfd = t.new_fd(flags & SOCK_CLOEXEC);
            if (cfd < 0) {
                with_engine(en, [&](Engine& eng) {
                    en->eng->sockets.erase(static_cast<SockId>(sid));
                    return eng.abort(static_cast<SockId>(sid));
                });
                t.put(child);
                return cfd;
            }
            child->family = en->family;
            child->nonblock = flags & SOCK_NONBLOCK;
            child->eng = en->eng;
            child->sid = static_cast<SockId>(sid);
            child->state = SockState::Connected;
            child->steered_port = bound_port(en);
            t.install(cfd, child);
            en->accept_kernel_first = true;   // next time the kernel side goes first
            en->last_accept = now_ns();
            if (addr && len) endpoint_to_sockaddr(en->family, peer, addr, len);
            if (SharedCounters* c = counters()) c->sockets_accelerated.fetch_add(1, std::memory_order_relaxed);
            return cfd;
        }
        if (en->nonblock) return -EAGAIN;
        if (int r = wait_once(en, EPOLLIN, deadline); r < 0) return r;
    }
}

int connect(int fd, Entry* en, const sockaddr* addr, socklen_t len) {
    if (!addr) return -EFAULT;
    if (en->state == SockState::Listening) return -EINVAL;
    if (en->state == SockState::Connecting || en->state == SockState::Connected) {
        int r = with_engine(en, [&](Engine& eng) {
            Endpoint ep;
            bool mapped;
            return sockaddr_to_endpoint(addr, len, &ep, &mapped) ? eng.connect(en->sid, ep) : -EINVAL;
        });
        if (r == -EISCONN && en->state == SockState::Connecting) {
            en->state = SockState::Connected;
            return 0;   // a second connect() after EINPROGRESS, once established
        }
        return r;
    }
    Endpoint ep;
    bool mapped = false;
    bool accel = en->state == SockState::Fresh && addr->sa_family == en->family &&
                 sockaddr_to_endpoint(addr, len, &ep, &mapped) &&
                 !(en->family == AF_INET6 && (!mapped || en->v6only)) && !is_loopback(addr, len) &&
                 Runtime::get().reaches(ep.ip);
    if (!accel) {
        if (int r = handover(fd, en, "destination not reached through the accelerated interface"); r < 0) return r;
        return real().connect(fd, addr, len) == 0 ? 0 : -errno;
    }
    int r = with_engine(en, [&](Engine& eng) { return eng.connect(en->sid, ep); });
    if (r != -EINPROGRESS && r != 0) return r;
    en->state = SockState::Connecting;
    if (en->nonblock) return -EINPROGRESS;
    uint64_t deadline = deadline_from(en->sndtimeo);
    for (;;) {
        uint32_t ev = sock_events(en);
        if (en->closed.load(std::memory_order_acquire)) return -EBADF;
        if (ev & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t l = sizeof err;
            with_engine(en, [&](Engine& eng) { return eng.getsockopt(en->sid, SOL_SOCKET, SO_ERROR, &err, &l); });
            en->state = SockState::Closed;
            return -(err ? err : ECONNREFUSED);
        }
        if (ev & EPOLLOUT) {
            en->state = SockState::Connected;
            return 0;
        }
        r = wait_once(en, EPOLLOUT, deadline);
        if (r == -EAGAIN) return -EINPROGRESS;   // SO_SNDTIMEO on connect, as Linux
        if (r < 0) return r;
    }
}

int shutdown(Entry* en, int how) {
    int r = with_engine(en, [&](Engine& eng) { return eng.shutdown(en->sid, how); });
    if (r == 0 && en->state == SockState::Listening && en->shadow >= 0) real().shutdown(en->shadow, how);
    return r;
}

namespace {

// Calls still in progress on the entry end: their next engine call or wakeup answers
// -EBADF; the engine's sleepers are woken so a blocked one sees it now, not within
// kMaxSleepNs.
void end_calls(Entry* en) {
    en->closed.store(true, std::memory_order_seq_cst);
    if (en->waiters.load(std::memory_order_seq_cst) > 0 && en->eng) {
        uint64_t one = 1;
        real().write(__atomic_load_n(&en->eng, __ATOMIC_ACQUIRE)->wake_fd, &one, sizeof one);
    }
}

}  // namespace

void release(Entry* en) {
    // Out of every epoll set first, so none reports the closing socket. refs is 0 now:
    // an epoll_ctl adding it meanwhile is refused (fs::epoll_ctl, under the same lock).
    epoll_forget(en);
    // Shared with another process (xproc.hpp): nothing is sent while it still holds it.
    // An orphan: a connection that could not be taken over.
    if ((en->xidx >= 0 && xproc::release(en)) || en->orphan()) {
        end_calls(en);
        return;
    }
    // A closed listener's slot leaves the port at once, whatever it accepted: new flows
    // must not reach an engine that no longer listens (nginx's old workers after a
    // reload, until they exit), and its connections follow their flows' records
    // (docs/DESIGN.md "Steering").
    const bool listener = en->state == SockState::Listening;
    uint16_t port = listener ? bound_port(en) : en->steered_port;
    bool port_in_use = false;
    with_engine(en, [&](Engine& eng) {
        // Under the engine lock: no other thread's call is inside the engine for it.
        en->closed.store(true, std::memory_order_seq_cst);
        en->eng->sockets.erase(en->sid);
        if (port != 0) {
            for (const auto& [sid, other] : en->eng->sockets) {
                (void)sid;
                if ((!listener && other->steered_port == port) ||
                    (other->state == SockState::Listening && bound_port(other) == port)) {
                    port_in_use = true;
                    break;
                }
            }
        }
        // The slot leaves before the listener closes: a SYN steered here in between
        // would be answered with a RST.
        if (listener && port != 0 && !port_in_use) Runtime::get().unlisten_port(port, en->eng);
        return eng.close(en->sid);
    }, true);
    end_calls(en);
    if (!listener && port != 0 && !port_in_use) Runtime::get().unlisten_port(port, en->eng);
    // The kernel side of a listener (its port in the kernel) goes with the entry
    // (fs::recycle): while a call is in progress, the port stays, as with Linux's file.
}

void recycle(Entry* en) {
    if (en->kind == Kind::Epoll) {
        epoll_free(en);
        return;
    }
    if (en->shadow >= 0) real().close(en->shadow);
    en->shadow = -1;
}

namespace {

// Thread handoff (docs/DESIGN.md "Cross-thread use"; memcached's dispatcher accepts, a worker
// serves): an accepted connection that the same other engine's thread reads or writes
// twice in a row moves to that engine, and the XDP flow map sends its frames there. Twice,
// so that a socket two threads take turns on stays where it is. Not while a thread is
// blocked on it (it sleeps on the old engine's fds).
void follow_caller(Entry* en) {
    // A connection other processes share stays on the engine the shared table names.
    if (__atomic_load_n(&en->steered_port, __ATOMIC_RELAXED) == 0 || en->state != SockState::Connected ||
        __atomic_load_n(&en->stays, __ATOMIC_RELAXED) || en->xidx >= 0)
        return;
    RtEngine* to = Runtime::get().thread_engine();
    RtEngine* from = __atomic_load_n(&en->eng, __ATOMIC_ACQUIRE);
    if (!to || to == from) {
        __atomic_store_n(&en->follow_hint, nullptr, __ATOMIC_RELAXED);
        return;
    }
    if (__atomic_exchange_n(&en->follow_hint, to, __ATOMIC_RELAXED) != to) return;
    if (en->waiters.load(std::memory_order_acquire) > 0) return;
    thread_local std::vector<Entry*> changed_from, changed_to;
    bool moved = false;
    {
        // Registry first, then the engines (docs/DESIGN.md "Lock order").
        auto reg = epoll_registry_lock();
        {
            std::scoped_lock g(from->mu, to->mu);
            if (en->eng != from || en->closed.load(std::memory_order_relaxed)) return;
            Endpoint local, remote;
            if (from->engine->local_endpoint(en->sid, &local) < 0 ||
                from->engine->remote_endpoint(en->sid, &remote) < 0)
                return;
            if (Runtime::get().steer_flow(local, remote, to) < 0) {   // flow map full
                __atomic_store_n(&en->stays, true, __ATOMIC_RELAXED);
                return;
            }
            uint64_t now = now_ns();
            from->poll_locked(now);      // what already arrived for it is taken in here
            to->engine->set_time(now);
            int sid = from->engine->move_to(en->sid, *to->engine);
            if (sid < 0) {
                Runtime::get().unsteer_flow(local, remote);
                __atomic_store_n(&en->stays, true, __ATOMIC_RELAXED);   // not worth a lock round per call
                log(LogLevel::Debug, "socket stays on engine %d: %s", from->index, strerror(-sid));
            } else {
                from->sockets.erase(en->sid);
                to->sockets[static_cast<SockId>(sid)] = en;
                __atomic_store_n(&en->sid, static_cast<SockId>(sid), __ATOMIC_RELAXED);
                __atomic_store_n(&en->eng, to, __ATOMIC_RELEASE);
                __atomic_store_n(&en->steered_port, 0, __ATOMIC_RELAXED);   // its own flow entry steers it now
                moved = true;
            }
            from->take_changed(changed_from);
            to->take_changed(changed_to);
        }
        if (moved) epoll_engine_moved(en, from, to);
    }
    if (!changed_from.empty()) notify_changed(from, changed_from);
    if (!changed_to.empty()) notify_changed(to, changed_to);
}

}  // namespace

ssize_t send(int fd, Entry* en, const iovec* iov, int iovcnt, int flags) {
    (void)fd;
    follow_caller(en);
    if (iovcnt < 0 || iovcnt > IOV_MAX) return -EINVAL;
    if (bad_user_range(iov, static_cast<size_t>(iovcnt) * sizeof(iovec))) return -EFAULT;
    bool dontwait = en->nonblock || (flags & MSG_DONTWAIT);
    uint64_t deadline = kNoDeadline;
    bool timed = false;
    ssize_t total = 0;
    // One write to the engine however many buffers: PSH and MSG_EOR go at its end only.
    int last = iovcnt - 1;
    while (last > 0 && iov[last].iov_len == 0) --last;
    for (int i = 0; i < iovcnt; ++i) {
        auto* p = static_cast<const char*>(iov[i].iov_base);
        size_t left = iov[i].iov_len;
        const bool bad = bad_user_range(p, left);
        while (left > 0) {
            ssize_t r = with_engine(en, [&](Engine& eng) -> ssize_t {
                if (!bad) return eng.send(en->sid, p, left, flags, i < last);
                // As Linux: the connection's state (error, EPIPE, not yet connected)
                // first, EFAULT where the bytes would be copied.
                ssize_t s = eng.send(en->sid, p, 0, flags);
                return s == 0 ? -EFAULT : s;
            });
            if (r > 0) {
                p += r;
                left -= static_cast<size_t>(r);
                total += r;
                continue;
            }
            if (r == 0) break;
            if (r == -EAGAIN) {
                if (dontwait) return total > 0 ? total : -EAGAIN;
                if (!timed) { deadline = deadline_from(en->sndtimeo); timed = true; }
                int w = wait_once(en, EPOLLOUT, deadline);
                if (w < 0) return total > 0 ? total : w;
                continue;
            }
            if (total > 0) return total;
            if (r == -ENOTCONN) r = -EPIPE;   // Linux: sending on a never-connected socket
            if (r == -EPIPE && !(flags & MSG_NOSIGNAL)) raise(SIGPIPE);
            return r;
        }
    }
    return total;
}

ssize_t recv(int fd, Entry* en, const iovec* iov, int iovcnt, int flags) {
    (void)fd;
    follow_caller(en);
    if (iovcnt < 0 || iovcnt > IOV_MAX) return -EINVAL;
    if (flags & MSG_OOB) return -EINVAL;    // no urgent data (SO_OOBINLINE-less Linux says EINVAL)
    if (bad_user_range(iov, static_cast<size_t>(iovcnt) * sizeof(iovec))) return -EFAULT;
    bool peek = flags & MSG_PEEK;
    bool waitall = (flags & MSG_WAITALL) && !peek;
    bool dontwait = en->nonblock || (flags & MSG_DONTWAIT);
    uint64_t deadline = kNoDeadline;
    bool timed = false;
    ssize_t total = 0;
    for (int i = 0; i < iovcnt; ++i) {
        auto* p = static_cast<char*>(iov[i].iov_base);
        size_t left = iov[i].iov_len;
        const bool bad = bad_user_range(p, left);
        while (left > 0) {
            ssize_t r = with_engine(en, [&](Engine& eng) -> ssize_t {
                // As Linux: the copy fails, not the call. With data queued: EFAULT, the
                // data stays; without, what the socket says (EAGAIN, 0, its error),
                // and the engine does not touch p when it has nothing to copy.
                if (bad && eng.unread(en->sid) > 0) return -EFAULT;
                return eng.recv(en->sid, p, left, flags & MSG_PEEK);
            });
            if (r > 0) {
                total += r;
                if (peek) return total;
                p += r;
                left -= static_cast<size_t>(r);
                if (left > 0 && !waitall) return total;
                continue;
            }
            if (r == 0) return total;   // end of stream
            if (r == -EAGAIN) {
                if (total > 0 && !waitall) return total;
                if (dontwait) return total > 0 ? total : -EAGAIN;
                if (!timed) { deadline = deadline_from(en->rcvtimeo); timed = true; }
                int w = wait_once(en, EPOLLIN, deadline);
                if (w < 0) return total > 0 ? total : w;
                continue;
            }
            return total > 0 ? total : r;
        }
    }
    return total;
}

ssize_t sendfile(Entry* out, int in_fd, off_t* offset, size_t count) {
    char buf[65536];
    ssize_t total = 0;
    off_t pos = offset ? *offset : 0;
    while (static_cast<size_t>(total) < count) {
        size_t want = std::min(sizeof buf, count - static_cast<size_t>(total));
        ssize_t n = offset ? pread(in_fd, buf, want, pos) : real().read(in_fd, buf, want);
        if (n < 0) {
            if (total > 0) break;
            return -errno;
        }
        if (n == 0) break;
        iovec v{buf, static_cast<size_t>(n)};
        ssize_t w = send(-1, out, &v, 1, 0);
        if (w < 0) {
            if (total > 0) break;
            return w;
        }
        total += w;
        pos += w;
        if (w < n) {
            // The socket took less than was read: give the rest back to the file.
            if (!offset) lseek(in_fd, w - n, SEEK_CUR);
            break;
        }
    }
    if (offset) *offset = pos;
    return total;
}

namespace {

// Linux tcp_setsockopt/tcp_getsockopt pass other levels to ip_*sockopt (AF_INET) or
// ipv6_*sockopt (AF_INET6, which sends IPPROTO_IP on to ip_*sockopt): every other level,
// IPPROTO_IPV6 on an AF_INET socket included, is ENOPROTOOPT.
bool level_answers(int family, int level) {
    return level == SOL_SOCKET || level == IPPROTO_TCP || level == IPPROTO_IP ||
           (level == IPPROTO_IPV6 && family == AF_INET6);
}

}  // namespace

int getsockopt(Entry* en, int level, int name, void* val, socklen_t* len) {
    if (!val || !len) return -EFAULT;
    if (static_cast<int>(*len) < 0) return -EINVAL;   // Linux reads optlen as an int
    // Linux do_ip_getsockopt says EOPNOTSUPP to a level it does not know, ipv6_getsockopt
    // ENOPROTOOPT.
    if (!level_answers(en->family, level)) return en->family == AF_INET ? -EOPNOTSUPP : -ENOPROTOOPT;
    auto put = [&](const void* v, socklen_t n) {
        socklen_t m = std::min(*len, n);
        memcpy(val, v, m);
        *len = m;
        return 0;
    };
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_RCVTIMEO: return put(&en->rcvtimeo, sizeof(timeval));
        case SO_SNDTIMEO: return put(&en->sndtimeo, sizeof(timeval));
        case SO_DOMAIN: { int v = en->family; return put(&v, sizeof v); }
        case SO_PROTOCOL: { int v = IPPROTO_TCP; return put(&v, sizeof v); }
        default: break;
        }
    }
    if (level == IPPROTO_IPV6 && name == IPV6_V6ONLY && en->family == AF_INET6) {
        int v = en->v6only;
        return put(&v, sizeof v);
    }
    int r = with_engine(en, [&](Engine& eng) { return eng.getsockopt(en->sid, level, name, val, len); });
    if (r == -ENOPROTOOPT) {
        // Options the engine does not model: whatever the application set, else the
        // kernel's default for the same kind of socket.
        for (int i = 0; i < en->nopts; ++i)
            if (en->opts[i].level == level && en->opts[i].name == name) return put(en->opts[i].val, en->opts[i].len);
        int k = en->shadow >= 0 ? en->shadow : real().socket(en->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        r = real().getsockopt(k, level, name, val, len) == 0 ? 0 : -errno;
        if (k != en->shadow) real().close(k);
    }
    return r;
}

namespace {

// The kernel's verdict on an option the engine does not implement, for a socket that is
// not on the wire yet: a kernel socket of the same family with the options set so far
// tries it. On success it is kept in *out: it is the socket the handover installs, so
// judging costs no call that the handover would not make anyway.
int judge_fresh(Entry* en, int level, int name, const void* val, socklen_t len, int* out) {
    const RealLibc& r = real();
    int k = r.socket(en->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (k < 0) return -errno;
    for (int i = 0; i < en->nopts; ++i)
        r.setsockopt(k, en->opts[i].level, en->opts[i].name, en->opts[i].val, en->opts[i].len);
    if (r.setsockopt(k, level, name, val, len) != 0) {
        int err = errno;
        r.close(k);
        return -err;
    }
    *out = k;
    return 0;
}

// Open connections: an option the engine does not implement is accepted and ignored if
// the kernel accepts it. Its verdict comes from a scratch kernel socket of the family;
// accepted calls are remembered per thread (family, level, name and the value itself), so
// a server repeating one (TCP_CORK on and off per response) pays the syscalls once.
// Rejections are not cached: they are not on a hot path. A remembered acceptance may
// outlive a privilege drop (SO_PRIORITY > 6 after setuid): the option is ignored anyway.
struct Accepted {
    int family = 0, level = 0, name = 0;
    socklen_t len = 0;
    uint8_t val[16] = {};
};
constexpr unsigned kAcceptedSlots = 32;
thread_local Accepted accepted_cache[kAcceptedSlots];

Accepted* accepted_slot(int family, int level, int name, const void* val, socklen_t len) {
    uint32_t h = static_cast<uint32_t>(level * 131 + name * 31 + family * 7) + len;
    for (socklen_t i = 0; i < len; ++i) h = h * 33 + static_cast<const uint8_t*>(val)[i];
    return &accepted_cache[h % kAcceptedSlots];
}

int judge_open(Entry* en, int level, int name, const void* val, socklen_t len) {
    bool cacheable = len <= sizeof(Accepted::val);
    Accepted* slot = cacheable ? accepted_slot(en->family, level, name, val, len) : nullptr;
    if (slot && slot->family == en->family && slot->level == level && slot->name == name &&
        slot->len == len && memcmp(slot->val, val, len) == 0)
        return 0;
    const RealLibc& r = real();
    int k = r.socket(en->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (k < 0) return -errno;
    int rc = r.setsockopt(k, level, name, val, len) == 0 ? 0 : -errno;
    r.close(k);
    // The scratch socket is closed, the connection is not: where the kernel's answer
    // depends on that, answer for an open connection.
    if (level == IPPROTO_TCP && (name == TCP_FASTOPEN || name == TCP_FASTOPEN_CONNECT) && rc == 0)
        return -EINVAL;      // Linux: only before connect() (TCP_FASTOPEN: or when listening)
    if (level == IPPROTO_TCP && name == TCP_ULP && (rc == 0 || rc == -ENOTCONN))
        return -EOPNOTSUPP;  // an upper-layer protocol (kTLS) cannot sit on an engine connection
    if (rc == 0 && slot) {
        slot->family = en->family;
        slot->level = level;
        slot->name = name;
        slot->len = len;
        memcpy(slot->val, val, len);
    }
    return rc;
}

}  // namespace

// A call the kernel would reject fails with the kernel's errno and leaves the socket
// where it is; a socket leaves fastnet only for an option the kernel accepts and the
// engine does not implement, before it is on the wire (interpose/README.md has the table).
int setsockopt(int fd, Entry* en, int level, int name, const void* val, socklen_t len) {
    if (static_cast<int>(len) < 0) return -EINVAL;   // Linux __sys_setsockopt
    if (!val && len) return -EFAULT;
    if (!level_answers(en->family, level)) return -ENOPROTOOPT;
    if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
        if (len < sizeof(timeval)) return -EINVAL;
        timeval tv;
        memcpy(&tv, val, sizeof tv);
        if (tv.tv_usec < 0 || tv.tv_usec >= 1000000) return -EDOM;
        if (tv.tv_sec < 0) tv = {0, 0};
        (name == SO_RCVTIMEO ? en->rcvtimeo : en->sndtimeo) = tv;
        return 0;
    }
    if (level == IPPROTO_IPV6 && name == IPV6_V6ONLY) {
        if (len < sizeof(int)) return -EINVAL;
        if (en->state != SockState::Fresh) return -EINVAL;   // Linux: once bound, EINVAL
        int v;
        memcpy(&v, val, sizeof v);
        en->v6only = v != 0;
        en->remember_opt(level, name, val, len);
        return 0;
    }
    // SO_TIMESTAMPING: the engine makes no timestamps (no SCM_TIMESTAMPING, no error
    // queue). A socket not on the wire yet goes to the kernel with it (below, as any option
    // the engine lacks); a listener or a connection refuses to turn any on rather than
    // accept and never deliver. Turning them off (0) is accepted.
    if (level == SOL_SOCKET && (name == SO_TIMESTAMPING_OLD || name == SO_TIMESTAMPING_NEW) &&
        (en->state == SockState::Listening || en->state == SockState::Connecting ||
         en->state == SockState::Connected)) {
        if (int j = judge_open(en, level, name, val, len); j < 0) return j;   // the value's errno
        int tsflags = 0;
        memcpy(&tsflags, val, std::min<size_t>(len, sizeof tsflags));
        if (tsflags != 0) return -EOPNOTSUPP;
        en->remember_opt(level, name, val, len);
        return 0;
    }
    // A bound or listening socket has its kernel twin, in the same state: it judges first
    // (and keeps the option for loopback clients). Listeners are set up once; the
    // per-call syscall stays off connections.
    if (en->shadow >= 0 && real().setsockopt(en->shadow, level, name, val, len) != 0) return -errno;
    int r = with_engine(en, [&](Engine& eng) { return eng.setsockopt(en->sid, level, name, val, len); });
    if (r != -ENOPROTOOPT) {
        if (r == 0) en->remember_opt(level, name, val, len);
        return r;
    }
    if (en->state == SockState::Fresh || (en->state == SockState::Bound && en->shadow >= 0)) {
        // Not on the wire yet: the kernel can serve this socket with the option.
        if (en->state == SockState::Fresh) {
            int k = -1;
            if (int j = judge_fresh(en, level, name, val, len, &k); j < 0) return j;
            en->shadow = k;   // the handover installs it
        }
        en->remember_opt(level, name, val, len);
        return handover(fd, en, "option not supported by the engine");
    }
    if (en->shadow < 0) {
        if (int j = judge_open(en, level, name, val, len); j < 0) return j;
    }
    en->remember_opt(level, name, val, len);
    log(LogLevel::Debug, "fd %d: option %d/%d accepted, not applied by the engine", fd, level, name);
    return 0;
}

int getsockname(Entry* en, sockaddr* addr, socklen_t* len) {
    if (!addr || !len) return -EFAULT;
    if (en->state == SockState::Connecting || en->state == SockState::Connected) {
        Endpoint ep;
        int r = with_engine(en, [&](Engine& eng) { return eng.local_endpoint(en->sid, &ep); });
        if (r < 0) return r;
        endpoint_to_sockaddr(en->family, ep, addr, len);
        return 0;
    }
    if (en->bound_len) {
        socklen_t m = std::min(*len, en->bound_len);
        memcpy(addr, &en->bound, m);
        *len = en->bound_len;
        return 0;
    }
    endpoint_to_sockaddr(en->family, Endpoint{}, addr, len);
    return 0;
}

int getpeername(Entry* en, sockaddr* addr, socklen_t* len) {
    if (!addr || !len) return -EFAULT;
    if (en->state != SockState::Connected && en->state != SockState::Connecting) return -ENOTCONN;
    Endpoint ep;
    int r = with_engine(en, [&](Engine& eng) {
        if (!(eng.events(en->sid) & EPOLLOUT) && en->state == SockState::Connecting) return -ENOTCONN;
        return eng.remote_endpoint(en->sid, &ep);
    });
    if (r < 0) return r;
    endpoint_to_sockaddr(en->family, ep, addr, len);
    return 0;
}

int ioctl(Entry* en, unsigned long req, void* arg) {
    if (!arg) return -EFAULT;
    switch (req) {
    case FIONBIO:
        en->nonblock = *static_cast<int*>(arg) != 0;
        return 0;
    case FIONREAD:   // == SIOCINQ
        *static_cast<int*>(arg) = static_cast<int>(with_engine(en, [&](Engine& eng) { return eng.unread(en->sid); }));
        return 0;
    case SIOCOUTQ:
        *static_cast<int*>(arg) = static_cast<int>(with_engine(en, [&](Engine& eng) { return eng.unsent(en->sid); }));
        return 0;
    default:
        return -ENOTTY;
    }
}

}  // namespace fastnet::ipose::fs
