// Wrappers for the epoll calls. An epoll instance is always a real kernel epoll fd; it
// gains a user-space part (fs::epoll_ctl) only when a fastnet fd is first added, and
// until then every call on it is plain libc.
#include "interpose/fastsock.hpp"
#include "interpose/wrap.hpp"

using namespace fastnet::ipose;

namespace {

EntryRef epoll_entry(const Call& c, int epfd) {
    if (!c.active()) return EntryRef();
    EntryRef e = FdTable::get().lookup(epfd);
    if (e && e->kind == Kind::Epoll) return e;
    count_passthrough();
    return EntryRef();
}

int wait_ms(const Call& c, int epfd, Entry* ep, epoll_event* evs, int maxevents, int timeout,
            const sigset_t* mask) {
    timespec ts{timeout / 1000, (timeout % 1000) * 1000000L};
    return guarded(c, [&] { return fs::epoll_wait(epfd, ep, evs, maxevents, timeout < 0 ? nullptr : &ts, mask); });
}

}  // namespace

extern "C" {

int epoll_create(int size) noexcept {
    Call c;
    if (c.active()) count_passthrough();
    return real().epoll_create(size);
}

int epoll_create1(int flags) noexcept {
    Call c;
    if (c.active()) count_passthrough();
    return real().epoll_create1(flags);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) noexcept {
    Call c;
    if (!c.active()) return real().epoll_ctl(epfd, op, fd, ev);
    FdTable& t = FdTable::get();
    EntryRef ep = t.lookup(epfd);
    EntryRef target = t.lookup(fd, op != EPOLL_CTL_DEL);
    if (ep && ep->kind != Kind::Epoll) return c.finish(-EINVAL);   // a fastnet socket is no epoll fd
    if (!target) {
        count_passthrough();
        return real().epoll_ctl(epfd, op, fd, ev);
    }
    try {
        return c.finish(fs::epoll_ctl(epfd, ep, op, fd, target, ev));
    } catch (...) {
        return c.finish(-ENOMEM);
    }
}

int epoll_wait(int epfd, struct epoll_event* evs, int maxevents, int timeout) {
    Call c;
    EntryRef ep = epoll_entry(c, epfd);
    if (!ep) return real().epoll_wait(epfd, evs, maxevents, timeout);
    return wait_ms(c, epfd, ep, evs, maxevents, timeout, nullptr);
}

int epoll_pwait(int epfd, struct epoll_event* evs, int maxevents, int timeout, const sigset_t* mask) {
    Call c;
    EntryRef ep = epoll_entry(c, epfd);
    if (!ep) return real().epoll_pwait(epfd, evs, maxevents, timeout, mask);
    return wait_ms(c, epfd, ep, evs, maxevents, timeout, mask);
}

int epoll_pwait2(int epfd, struct epoll_event* evs, int maxevents, const struct timespec* timeout,
                 const sigset_t* mask) {
    Call c;
    EntryRef ep = epoll_entry(c, epfd);
    if (!ep) {
        if (!real().epoll_pwait2) return c.finish(-ENOSYS);
        return real().epoll_pwait2(epfd, evs, maxevents, timeout, mask);
    }
    return guarded(c, [&] { return fs::epoll_wait(epfd, ep, evs, maxevents, timeout, mask); });
}

}  // extern "C"
