// Readiness over mixed fds. fastnet sockets' readiness lives in user space: each epoll
// instance that holds one gets an EpollSet (interest list + ready list fed by the
// engines' EventSink through notify_changed). Kernel fds stay in the application's
// kernel epoll set E. A thread sleeps on a private epoll set A holding E, the engines'
// XSK fds, a wakeup eventfd and the kernel side of listeners — so it wakes on whichever
// has work first. poll/select build the same picture per call.
// epoll.cpp / poll.cpp wrappers → fs::epoll_ctl / fs::epoll_wait / fs::poll.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "interpose/accel.hpp"
#include "interpose/fastsock.hpp"
#include "interpose/libc.hpp"

namespace fastnet::ipose {

// One fastnet socket in one epoll set.
struct EpItem {
    Entry* sock = nullptr;
    int fd = -1;
    EpollSet* set = nullptr;
    uint32_t interest = 0;
    uint64_t data = 0;
    bool queued = false;        // on set->ready (under set->mu)
    bool disabled = false;      // EPOLLONESHOT fired, until EPOLL_CTL_MOD
    int aux_fd = -1;            // what this item put into set->aux (listener shadow, nested set)
    EpItem* next_of_sock = nullptr;   // Entry::items list (under g_reg)
};

struct EpollSet {
    std::mutex mu;
    int epfd = -1;              // the application's kernel epoll set (E)
    int aux = -1;               // ours (A): E, wake, engine wait fds, listener shadows
    int wake = -1;              // eventfd: readiness produced by another thread
    std::unordered_map<int, EpItem*> items;
    std::vector<EpItem*> ready;
    std::unordered_map<RtEngine*, int> engines;   // items per engine (wait fd in aux)
    std::atomic<int> sleepers{0};
    bool kernel_first = false;
    Entry* self = nullptr;      // this set's table entry: its memberships in outer sets
};

namespace {

// Tags of the events in A (pointers are 8-aligned, the low bits say what they are).
constexpr uint64_t kTagKernel = 0, kTagWake = 1, kTagEngine = 2, kTagShadow = 3;

std::mutex g_reg;   // Entry::items lists and EpollSet creation; taken before set->mu

uint32_t to_poll_bits(uint32_t ev) { return ev & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP | EPOLLPRI); }

void aux_add(EpollSet* s, int fd, uint32_t events, uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    real().epoll_ctl(s->aux, EPOLL_CTL_ADD, fd, &ev);
}

void aux_del(EpollSet* s, int fd) { real().epoll_ctl(s->aux, EPOLL_CTL_DEL, fd, nullptr); }

void wake_set(EpollSet* s) {
    if (s->sleepers.load(std::memory_order_acquire) > 0) {
        uint64_t one = 1;
        real().write(s->wake, &one, sizeof one);
    }
}

void queue_locked(EpItem* it) {
    if (!it->queued && !it->disabled) {
        it->queued = true;
        it->set->ready.push_back(it);
    }
}

EpollSet* new_set(int epfd) {
    auto* s = new EpollSet();
    s->epfd = epfd;
    s->aux = real().epoll_create1(EPOLL_CLOEXEC);
    s->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->aux < 0 || s->wake < 0) {
        if (s->aux >= 0) real().close(s->aux);
        if (s->wake >= 0) real().close(s->wake);
        delete s;
        return nullptr;
    }
    aux_add(s, epfd, EPOLLIN, kTagKernel);
    aux_add(s, s->wake, EPOLLIN, kTagWake);
    return s;
}

// Whether adding a set whose private part is `from` to `to` would close a cycle of
// sets watching each other, or nest deeper than the kernel allows (EPOLL_MAX_NESTS):
// the kernel answers ELOOP for both. Under g_reg (which guards every set's items).
constexpr int kMaxNests = 4;
bool would_loop(const EpollSet* from, const EpollSet* to, int depth = 0) {
    if (from == to || depth > kMaxNests) return true;
    for (const auto& kv : from->items) {
        const Entry* inner = kv.second->sock;
        if (inner->kind == Kind::Epoll && inner->ep && would_loop(inner->ep, to, depth + 1)) return true;
    }
    return false;
}

// Under g_reg and s->mu.
void remove_item(EpollSet* s, EpItem* it) {
    for (EpItem** pp = &it->sock->items; *pp; pp = &(*pp)->next_of_sock) {
        if (*pp == it) {
            *pp = it->next_of_sock;
            break;
        }
    }
    if (it->queued) s->ready.erase(std::find(s->ready.begin(), s->ready.end(), it));
    if (it->aux_fd >= 0) aux_del(s, it->aux_fd);
    if (it->sock->kind == Kind::Socket) {
        RtEngine* e = it->sock->eng;
        if (--s->engines[e] == 0) {
            s->engines.erase(e);
            aux_del(s, e->wait_fd);
        }
    }
    s->items.erase(it->fd);
    delete it;
}

// A nested epoll set is readable when one of its fastnet items is ready or its kernel
// set has events (poll() on an epoll fd does not consume them). Under the outer set's
// lock; takes the inner one (no cycle: fs::epoll_ctl refuses one with ELOOP).
bool nested_ready(EpollSet* inner) {
    {
        std::lock_guard g(inner->mu);
        for (EpItem* it : inner->ready) {
            if (it->disabled) continue;
            uint32_t ev = it->sock->kind == Kind::Socket ? fs::sock_events(it->sock)
                                                         : (nested_ready(it->sock->ep) ? uint32_t(EPOLLIN) : 0u);
            if (ev & (it->interest | EPOLLERR | EPOLLHUP)) return true;
        }
    }
    pollfd p{inner->epfd, POLLIN, 0};
    return real().poll(&p, 1, 0) > 0;
}

uint32_t item_events(EpItem* it) {
    if (it->sock->kind == Kind::Socket) return fs::sock_events(it->sock);
    return it->sock->ep && nested_ready(it->sock->ep) ? uint32_t(EPOLLIN) : 0u;
}

// Moves ready fastnet events into out; under s->mu. Level-triggered items stay queued.
int collect(EpollSet* s, epoll_event* out, int max) {
    int n = 0;
    std::vector<EpItem*> keep;
    keep.reserve(s->ready.size());
    for (EpItem* it : s->ready) {
        if (it->disabled) { it->queued = false; continue; }
        if (n == max) { keep.push_back(it); continue; }
        uint32_t got = item_events(it) & (it->interest | EPOLLERR | EPOLLHUP);
        got = to_poll_bits(got);
        if (!got) { it->queued = false; continue; }
        out[n].events = got;
        out[n].data.u64 = it->data;
        ++n;
        if (it->interest & EPOLLONESHOT) { it->disabled = true; it->queued = false; }
        else if (it->interest & EPOLLET) it->queued = false;
        else keep.push_back(it);
    }
    s->ready.swap(keep);
    return n;
}

// The engines a wait on s depends on: its own items' and those of nested sets.
void add_engines(EpollSet* s, std::vector<RtEngine*>& out) {
    for (auto& [e, n] : s->engines)
        if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
    for (auto& [fd, it] : s->items) {
        if (it->sock->kind == Kind::Epoll && it->sock->ep) {
            std::lock_guard g(it->sock->ep->mu);
            add_engines(it->sock->ep, out);
        }
    }
}

uint64_t min_deadline(const std::vector<RtEngine*>& engines, uint64_t until) {
    for (RtEngine* e : engines) until = std::min(until, engine_deadline(e));
    return until;
}

timespec ns_to_ts(uint64_t ns) {
    return timespec{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
}

constexpr uint64_t kMaxSleepNs = 100'000'000;

// Queues an item and wakes its set's sleepers; then the same for every outer set that
// holds this set (nested epoll), which its sleepers would not otherwise hear of.
void queue_and_wake(EpItem* it, int depth) {
    {
        std::lock_guard sg(it->set->mu);
        queue_locked(it);
    }
    wake_set(it->set);
    if (depth < 8 && it->set->self)
        for (EpItem* up = it->set->self->items; up; up = up->next_of_sock) queue_and_wake(up, depth + 1);
}

}  // namespace

void notify_changed(RtEngine* e, const std::vector<Entry*>& changed) {
    bool wake_engine = false;
    {
        std::lock_guard g(g_reg);
        for (Entry* en : changed) {
            if (en->waiters.load(std::memory_order_acquire) > 0) wake_engine = true;
            for (EpItem* it = en->items; it; it = it->next_of_sock) queue_and_wake(it, 0);
        }
    }
    FdTable& t = FdTable::get();
    for (Entry* en : changed) t.put(en);   // the hold RtEngine::on_events took
    if (wake_engine) {
        uint64_t one = 1;
        real().write(e->wake_fd, &one, sizeof one);
    }
}

void epoll_after_fork() { new (&g_reg) std::mutex(); }

std::unique_lock<std::mutex> epoll_registry_lock() { return std::unique_lock(g_reg); }

void epoll_engine_moved(Entry* en, RtEngine* from, RtEngine* to) {
    for (EpItem* it = en->items; it; it = it->next_of_sock) {
        EpollSet* s = it->set;
        std::lock_guard sg(s->mu);
        if (--s->engines[from] == 0) {
            s->engines.erase(from);
            aux_del(s, from->wait_fd);
        }
        if (s->engines[to]++ == 0)
            aux_add(s, to->wait_fd, EPOLLIN, reinterpret_cast<uint64_t>(to) | kTagEngine);
        queue_locked(it);
        wake_set(s);
    }
}

void epoll_forget(Entry* en) {
    std::lock_guard g(g_reg);
    while (EpItem* it = en->items) {
        EpollSet* s = it->set;
        std::lock_guard sg(s->mu);
        remove_item(s, it);
    }
}

namespace fs {

int epoll_ctl(int epfd, Entry* ep, int op, int fd, Entry* target, epoll_event* ev) {
    if (epfd == fd) return -EINVAL;
    if (target->kind == Kind::Epoll && target->ep == nullptr) return real().epoll_ctl(epfd, op, fd, ev) == 0 ? 0 : -errno;
    if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && !ev) return -EFAULT;
    if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD && op != EPOLL_CTL_DEL) return -EINVAL;
    if (op != EPOLL_CTL_DEL && target->kind == Kind::Socket) rejoin_port(target);
    std::lock_guard g(g_reg);
    // Closed by another thread since the lookup: its memberships are gone (fs::release,
    // epoll_release take this lock after refs reached 0); none may be added.
    if ((ep && ep->refs.load(std::memory_order_acquire) == 0) ||
        (op != EPOLL_CTL_DEL && target->refs.load(std::memory_order_acquire) == 0))
        return -EBADF;
    if (!ep) {
        // Is epfd an epoll fd at all? Answer as the kernel would (EBADF / EINVAL).
        char link[64], path[40];
        snprintf(path, sizeof path, "/proc/self/fd/%d", epfd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0) return -EBADF;
        link[n] = 0;
        if (strcmp(link, "anon_inode:[eventpoll]") != 0) return -EINVAL;
        if (op != EPOLL_CTL_ADD) return -ENOENT;
        EpollSet* s = new_set(epfd);
        if (!s) return -ENOMEM;
        FdTable& t = FdTable::get();
        ep = t.alloc();
        if (!ep) return -ENOMEM;
        ep->kind = Kind::Epoll;
        ep->ep = s;
        s->self = ep;
        t.install(epfd, ep);
    }
    EpollSet* s = ep->ep;
    std::lock_guard sg(s->mu);
    auto found = s->items.find(fd);
    EpItem* it = found == s->items.end() ? nullptr : found->second;
    if (it && it->sock != target) {   // the number was closed and reused meanwhile
        remove_item(s, it);
        it = nullptr;
    }
    switch (op) {
    case EPOLL_CTL_ADD: {
        if (it) return -EEXIST;
        if (target->kind == Kind::Epoll && would_loop(target->ep, s)) return -ELOOP;
        it = new EpItem();
        it->sock = target;
        it->fd = fd;
        it->set = s;
        it->interest = ev->events;
        it->data = ev->data.u64;
        it->next_of_sock = target->items;
        target->items = it;
        s->items[fd] = it;
        if (target->kind == Kind::Epoll) {
            // A nested set: its private sleep set wakes ours for anything it would wake on.
            it->aux_fd = target->ep->aux;
            aux_add(s, it->aux_fd, EPOLLIN, reinterpret_cast<uint64_t>(it) | kTagShadow);
        } else {
            if (s->engines[target->eng]++ == 0)
                aux_add(s, target->eng->wait_fd, EPOLLIN,
                        reinterpret_cast<uint64_t>(target->eng) | kTagEngine);
            if (target->shadow >= 0 && target->state == SockState::Listening) {
                it->aux_fd = target->shadow;
                aux_add(s, target->shadow, EPOLLIN | EPOLLET, reinterpret_cast<uint64_t>(it) | kTagShadow);
            }
        }
        queue_locked(it);
        break;
    }
    case EPOLL_CTL_MOD:
        if (!it) return -ENOENT;
        if (ev->events & EPOLLEXCLUSIVE) return -EINVAL;   // as Linux: not with MOD
        it->interest = ev->events;
        it->data = ev->data.u64;
        it->disabled = false;
        queue_locked(it);
        break;
    case EPOLL_CTL_DEL:
        if (!it) return -ENOENT;
        remove_item(s, it);
        break;
    }
    wake_set(s);
    return 0;
}

int epoll_wait(int epfd, Entry* ep, epoll_event* evs, int maxevents, const timespec* timeout,
               const sigset_t* mask) {
    if (maxevents <= 0 || maxevents > INT_MAX / static_cast<int>(sizeof(epoll_event))) return -EINVAL;
    EpollSet* s = ep->ep;
    uint64_t start = now_ns();
    uint64_t deadline = timeout ? start + static_cast<uint64_t>(timeout->tv_sec) * 1000000000ull +
                                      static_cast<uint64_t>(timeout->tv_nsec)
                                : ~0ull;
    std::vector<RtEngine*> engines;
    const uint64_t spin_until = start + spin_ns();
    // Whether the kernel fds need a look (a syscall). After a sleep on the private set,
    // only if the caller's kernel set was among what woke it: the private set holds it
    // level-triggered, so had it been ready the wake-up would say so.
    bool look_kernel = true;
    for (;;) {
        if (ep->closed.load(std::memory_order_acquire)) return -EBADF;   // closed while it waited
        {
            std::lock_guard sg(s->mu);
            engines.clear();
            add_engines(s, engines);
        }
        for (RtEngine* e : engines) pump(e, true);

        int n = 0;
        // Alternate which side fills the caller's array first, so neither starves.
        bool kernel_first = s->kernel_first;
        s->kernel_first = !kernel_first;
        if (kernel_first && look_kernel) {
            int k = real().epoll_wait(epfd, evs, maxevents, 0);
            if (k > 0) n += k;
        }
        if (n < maxevents) {
            std::lock_guard sg(s->mu);
            n += collect(s, evs + n, maxevents - n);
        }
        if (!kernel_first && look_kernel && n < maxevents) {
            int k = real().epoll_wait(epfd, evs + n, maxevents - n, 0);
            if (k > 0) n += k;
        }
        if (n > 0) return n;
        uint64_t now = now_ns();
        if (now >= deadline) return 0;
        if (now < spin_until) {   // busy polling (FASTNET_SPIN_US): look again, no sleep
            hold_signals(mask);
            spin_pause();
            continue;
        }

        flush_deferred();   // what this thread sent on other engines leaves before it sleeps
        uint64_t until = min_deadline(engines, std::min(deadline, now + kMaxSleepNs));
        timespec ts = ns_to_ts(until > now ? until - now : 0);
        epoll_event aev[16];
        s->sleepers.fetch_add(1, std::memory_order_seq_cst);
        if (ep->closed.load(std::memory_order_seq_cst)) {   // closed before we counted (epoll_release)
            s->sleepers.fetch_sub(1, std::memory_order_acq_rel);
            return -EBADF;
        }
        int r;
        const sigset_t* sleep_mask = hold_signals(mask);
        if (real().epoll_pwait2) {
            r = real().epoll_pwait2(s->aux, aev, 16, &ts, sleep_mask);
        } else {
            int ms = static_cast<int>((until - std::min(until, now) + 999999) / 1000000);
            r = real().epoll_pwait(s->aux, aev, 16, ms, sleep_mask);
        }
        int err = errno;
        s->sleepers.fetch_sub(1, std::memory_order_acq_rel);
        if (r < 0) {
            if (err == EINTR) return -EINTR;
            return -err;
        }
        look_kernel = r == 16;   // a full array may have left the kernel set's event out
        for (int i = 0; i < r; ++i) {
            uint64_t tag = aev[i].data.u64;
            if (tag == kTagKernel) {
                look_kernel = true;
            } else if (tag == kTagWake) {
                uint64_t v;
                real().read(s->wake, &v, sizeof v);
            } else if ((tag & 3) == kTagShadow) {
                auto* it = reinterpret_cast<EpItem*>(tag & ~3ull);
                std::lock_guard sg(s->mu);
                if (it->sock->kind == Kind::Socket) it->sock->shadow_ready.store(true, std::memory_order_relaxed);
                queue_locked(it);
            }
        }
    }
}

void epoll_release(Entry* ep) {
    EpollSet* s = ep->ep;
    if (!s) return;
    epoll_forget(ep);   // its own memberships in outer sets
    {
        std::lock_guard g(g_reg);
        std::lock_guard sg(s->mu);
        while (!s->items.empty()) remove_item(s, s->items.begin()->second);
    }
    // A thread still waiting on the set ends; the set itself goes with the last hold
    // (epoll_free).
    ep->closed.store(true, std::memory_order_seq_cst);
    uint64_t one = 1;
    if (s->sleepers.load(std::memory_order_seq_cst) > 0) real().write(s->wake, &one, sizeof one);
}

void epoll_free(Entry* ep) {
    EpollSet* s = ep->ep;
    if (!s) return;
    real().close(s->aux);
    real().close(s->wake);
    delete s;
    ep->ep = nullptr;
}

int poll(pollfd* fds, nfds_t nfds, const timespec* timeout, const sigset_t* mask) {
    FdTable& t = FdTable::get();
    uint64_t now = now_ns();
    uint64_t deadline = timeout ? now + static_cast<uint64_t>(timeout->tv_sec) * 1000000000ull +
                                      static_cast<uint64_t>(timeout->tv_nsec)
                                : ~0ull;
    std::vector<EntryRef> socks(nfds);   // held until the call returns
    std::vector<RtEngine*> engines;
    for (nfds_t i = 0; i < nfds; ++i) {
        EntryRef ref = fds[i].fd >= 0 ? t.lookup(fds[i].fd, true) : EntryRef();
        if (ref && ref->kind == Kind::Socket) {
            Entry* en = ref;
            socks[i] = std::move(ref);
            if (en->state == SockState::Listening) rejoin_port(en);
            if (std::find(engines.begin(), engines.end(), en->eng) == engines.end()) engines.push_back(en->eng);
        }
    }
    // The kernel part: the caller's kernel fds, then the engines' wait and wake fds, then
    // the kernel side of fastnet listeners.
    std::vector<pollfd> k;
    std::vector<nfds_t> shadow_of;
    for (nfds_t i = 0; i < nfds; ++i) k.push_back(socks[i] ? pollfd{-1, 0, 0} : fds[i]);
    for (RtEngine* e : engines) {
        k.push_back({e->wait_fd, POLLIN, 0});
        k.push_back({e->wake_fd, POLLIN, 0});
    }
    for (nfds_t i = 0; i < nfds; ++i) {
        if (socks[i] && socks[i]->shadow >= 0 && socks[i]->state == SockState::Listening && (fds[i].events & POLLIN)) {
            k.push_back({socks[i]->shadow, POLLIN, 0});
            shadow_of.push_back(i);
        }
    }
    for (const EntryRef& en : socks) if (en) en->waiters.fetch_add(1, std::memory_order_acq_rel);
    int result;
    const uint64_t spin_until = now + spin_ns();
    for (;;) {
        for (RtEngine* e : engines) pump(e, true);
        int count = 0;
        for (nfds_t i = 0; i < nfds; ++i) {
            if (!socks[i]) continue;
            uint32_t want = static_cast<uint32_t>(fds[i].events) | POLLERR | POLLHUP;
            fds[i].revents = static_cast<short>(to_poll_bits(sock_events(socks[i])) & want);
            if (fds[i].revents) ++count;
        }
        flush_deferred();
        now = now_ns();
        // While busy polling (FASTNET_SPIN_US) the kernel fds are only looked at.
        uint64_t until = count || now < spin_until
                             ? now : min_deadline(engines, std::min(deadline, now + kMaxSleepNs));
        timespec ts = ns_to_ts(until > now ? until - now : 0);
        // About to sleep or spin: from here on a handler must end the call with EINTR.
        const sigset_t* m = until > now || now < spin_until ? hold_signals(mask) : mask;
        int r = real().ppoll(k.data(), k.size(), &ts, m);
        if (r < 0) {
            result = -errno;
            break;
        }
        for (nfds_t i = 0; i < nfds; ++i) {
            if (socks[i]) continue;
            fds[i].revents = k[i].revents;
            if (fds[i].revents) ++count;
        }
        for (size_t j = 0; j < engines.size(); ++j) {
            if (k[nfds + 2 * j + 1].revents & POLLIN) {
                uint64_t v;
                real().read(engines[j]->wake_fd, &v, sizeof v);
            }
        }
        size_t base = nfds + 2 * engines.size();
        for (size_t j = 0; j < shadow_of.size(); ++j) {
            if (k[base + j].revents & POLLIN) {
                Entry* en = socks[shadow_of[j]];
                en->shadow_ready.store(true, std::memory_order_relaxed);
                if (!(fds[shadow_of[j]].revents & POLLIN)) {
                    if (!fds[shadow_of[j]].revents) ++count;
                    fds[shadow_of[j]].revents |= POLLIN;
                }
            }
        }
        if (count > 0 || now_ns() >= deadline) {
            result = count;
            break;
        }
    }
    for (const EntryRef& en : socks) if (en) en->waiters.fetch_sub(1, std::memory_order_acq_rel);
    return result;
}

}  // namespace fs
}  // namespace fastnet::ipose
