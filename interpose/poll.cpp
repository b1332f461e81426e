// Wrappers for poll, ppoll, select, pselect (and the fortified poll forms). A call that
// names no fastnet fd goes to libc as it is; a mixed one goes to fs::poll, which keeps
// fastnet readiness in user space and sleeps in the kernel on the rest.
#include <cstring>
#include <sys/select.h>
#include <vector>

#include "interpose/fastsock.hpp"
#include "interpose/wrap.hpp"

using namespace fastnet::ipose;

extern "C" void __chk_fail(void) __attribute__((noreturn));

namespace {

bool any_fastnet(const Call& c, const pollfd* fds, nfds_t n) {
    if (!c.active()) return false;
    FdTable& t = FdTable::get();
    for (nfds_t i = 0; i < n; ++i)
        if (fds[i].fd >= 0 && t.lookup(fds[i].fd, true)) return true;
    count_passthrough();
    return false;
}

bool any_fastnet(const Call& c, int nfds, const fd_set* rd, const fd_set* wr, const fd_set* ex) {
    if (!c.active()) return false;
    FdTable& t = FdTable::get();
    for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd) {
        if ((rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) || (ex && FD_ISSET(fd, ex)))
            if (t.lookup(fd, true)) return true;
    }
    count_passthrough();
    return false;
}

int poll_ms(const Call& c, pollfd* fds, nfds_t nfds, int timeout_ms) {
    timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    return guarded(c, [&] { return fs::poll(fds, nfds, timeout_ms < 0 ? nullptr : &ts, nullptr); });
}

// select over mixed fds: the same engine as poll, then back into the three sets.
int select_mixed(const Call& c, int nfds, fd_set* rd, fd_set* wr, fd_set* ex, const timespec* timeout,
                 const sigset_t* mask) {
    std::vector<pollfd> pfds;
    for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd) {
        short ev = 0;
        if (rd && FD_ISSET(fd, rd)) ev |= POLLIN;
        if (wr && FD_ISSET(fd, wr)) ev |= POLLOUT;
        if (ex && FD_ISSET(fd, ex)) ev |= POLLPRI;
        if (ev) pfds.push_back({fd, ev, 0});
    }
    int r = fs::poll(pfds.data(), pfds.size(), timeout, mask);
    if (r < 0) return c.finish(r);
    for (auto& p : pfds)
        if (p.revents & POLLNVAL) return c.finish(-EBADF);
    if (rd) FD_ZERO(rd);
    if (wr) FD_ZERO(wr);
    if (ex) FD_ZERO(ex);
    int n = 0;
    for (auto& p : pfds) {
        // As Linux's select: errors and hangups make a descriptor readable/writable.
        if (rd && (p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP | POLLERR))) { FD_SET(p.fd, rd); ++n; }
        if (wr && (p.events & POLLOUT) && (p.revents & (POLLOUT | POLLERR))) { FD_SET(p.fd, wr); ++n; }
        if (ex && (p.events & POLLPRI) && (p.revents & POLLPRI)) { FD_SET(p.fd, ex); ++n; }
    }
    return c.finish(n);
}

}  // namespace

extern "C" {

int poll(struct pollfd* fds, nfds_t nfds, int timeout) {
    Call c;
    if (!any_fastnet(c, fds, nfds)) return real().poll(fds, nfds, timeout);
    return poll_ms(c, fds, nfds, timeout);
}

int __poll_chk(struct pollfd* fds, nfds_t nfds, int timeout, size_t fdslen) {
    if (fdslen / sizeof(*fds) < nfds) __chk_fail();
    Call c;
    if (!any_fastnet(c, fds, nfds)) return real().__poll_chk(fds, nfds, timeout, fdslen);
    return poll_ms(c, fds, nfds, timeout);
}

int ppoll(struct pollfd* fds, nfds_t nfds, const struct timespec* timeout, const sigset_t* mask) {
    Call c;
    if (!any_fastnet(c, fds, nfds)) return real().ppoll(fds, nfds, timeout, mask);
    return guarded(c, [&] { return fs::poll(fds, nfds, timeout, mask); });
}

int __ppoll_chk(struct pollfd* fds, nfds_t nfds, const struct timespec* timeout,
                const sigset_t* mask, size_t fdslen) {
    if (fdslen / sizeof(*fds) < nfds) __chk_fail();
    Call c;
    if (!any_fastnet(c, fds, nfds)) return real().__ppoll_chk(fds, nfds, timeout, mask, fdslen);
    return guarded(c, [&] { return fs::poll(fds, nfds, timeout, mask); });
}

int select(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, struct timeval* timeout) {
    Call c;
    if (!any_fastnet(c, nfds, rd, wr, ex)) return real().select(nfds, rd, wr, ex, timeout);
    timespec ts{};
    if (timeout) ts = {timeout->tv_sec, timeout->tv_usec * 1000};
    try {
        return select_mixed(c, nfds, rd, wr, ex, timeout ? &ts : nullptr, nullptr);
    } catch (abi::__forced_unwind&) {
        throw;
    } catch (...) {
        return c.finish(-ENOMEM);
    }
}

int pselect(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, const struct timespec* timeout,
            const sigset_t* mask) {
    Call c;
    if (!any_fastnet(c, nfds, rd, wr, ex)) return real().pselect(nfds, rd, wr, ex, timeout, mask);
    try {
        return select_mixed(c, nfds, rd, wr, ex, timeout, mask);
    } catch (abi::__forced_unwind&) {
        throw;
    } catch (...) {
        return c.finish(-ENOMEM);
    }
}

}  // extern "C"
