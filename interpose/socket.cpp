// Wrappers for the socket and descriptor calls: look up the fd, hand fastnet sockets to
// fastsock.cpp and everything else to libc. A wrapper is a few lines; the libc contract
// (return value + errno) is restored by Call::finish().
// Both fcntl and fcntl64 (sendfile and sendfile64) are defined here; with 64-bit file
// offsets the headers would rename the first to the second.
#undef _FILE_OFFSET_BITS
#include <cstdarg>
#include <cxxabi.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "interpose/counters.hpp"
#include "interpose/fastsock.hpp"
#include "interpose/fdtable.hpp"
#include "interpose/libc.hpp"
#include "interpose/wrap.hpp"

using namespace fastnet::ipose;

namespace {

// Drops one fd's reference to an entry already removed from the table. The last one
// closes the socket (or epoll set) and drops the numbers' hold: the entry is recycled
// once no call holds it either.
void drop_ref(Entry* e) {
    if (e->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (e->orphan() && e->xidx < 0) {
        // A listener inherited through fork() and never adopted: only its kernel side
        // is this process's to close, with the entry (fs::recycle). (A shared
        // connection: fs::release.)
    } else if (e->kind == Kind::Epoll) {
        fs::epoll_release(e);
    } else {
        fs::release(e);
    }
    FdTable::get().put(e);
}

// A new fd number now refers to e (dup family), which the caller holds. If its last
// number was closed meanwhile by another thread, the new number is closed again and the
// call fails with EBADF, as if the close had come first.
int share(int newfd, Entry* e) {
    if (static_cast<unsigned>(newfd) >= FdTable::get().size()) return newfd;
    int n = e->refs.load(std::memory_order_acquire);
    do {
        if (n == 0) {
            real().close(newfd);
            return -EBADF;
        }
    } while (!e->refs.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel));
    FdTable::get().install(newfd, e);
    return newfd;
}

}  // namespace

namespace fastnet::ipose {

void close_on_exec_sockets() {
    FdTable& t = FdTable::get();
    const RealLibc& r = real();
    for (int fd = 0; fd <= t.high_water() && static_cast<unsigned>(fd) < t.size(); ++fd) {
        Entry* e = t.raw(fd);
        if (!e || e->orphan()) continue;
        int fl = r.fcntl(fd, F_GETFD);
        if (fl < 0 || !(fl & FD_CLOEXEC)) continue;
        if ((e = t.remove(fd)) != nullptr) drop_ref(e);
    }
}

}  // namespace fastnet::ipose

extern "C" {

int socket(int domain, int type, int protocol) noexcept {
    Call c;
    if (c.active()) {
        int r;
        try {
            r = fs::socket(domain, type, protocol);
        } catch (...) {
            r = fs::kToKernel;
        }
        if (r != fs::kToKernel) return c.finish(r);
        count_passthrough();
    }
    return real().socket(domain, type, protocol);
}

int socketpair(int domain, int type, int protocol, int sv[2]) noexcept {
    Call c;
    if (c.active()) count_passthrough();
    return real().socketpair(domain, type, protocol, sv);
}

int bind(int fd, const struct sockaddr* addr, socklen_t len) noexcept {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().bind(fd, addr, len);
    return guarded(c, [&] { return fs::bind(fd, e, addr, len); });
}

int listen(int fd, int backlog) noexcept {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().listen(fd, backlog);
    return guarded(c, [&] { return fs::listen(fd, e, backlog); });
}

int accept(int fd, struct sockaddr* addr, socklen_t* len) {
    Call c;
    EntryRef e = socket_entry(c, fd, true);
    if (!e) return real().accept(fd, addr, len);
    return guarded(c, [&] { return fs::accept(fd, e, addr, len, 0); });
}

int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
    Call c;
    EntryRef e = socket_entry(c, fd, true);
    if (!e) return real().accept4(fd, addr, len, flags);
    return guarded(c, [&] { return fs::accept(fd, e, addr, len, flags); });
}

int connect(int fd, const struct sockaddr* addr, socklen_t len) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().connect(fd, addr, len);
    return guarded(c, [&] { return fs::connect(fd, e, addr, len); });
}

int shutdown(int fd, int how) noexcept {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().shutdown(fd, how);
    return guarded(c, [&] { return fs::shutdown(e, how); });
}

int getsockopt(int fd, int level, int name, void* val, socklen_t* len) noexcept {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().getsockopt(fd, level, name, val, len);
    return guarded(c, [&] { return fs::getsockopt(e, level, name, val, len); });
}

int setsockopt(int fd, int level, int name, const void* val, socklen_t len) noexcept {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().setsockopt(fd, level, name, val, len);
    return guarded(c, [&] { return fs::setsockopt(fd, e, level, name, val, len); });
}

int getsockname(int fd, struct sockaddr* addr, socklen_t* len) noexcept {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().getsockname(fd, addr, len);
    return guarded(c, [&] { return fs::getsockname(e, addr, len); });
}

int getpeername(int fd, struct sockaddr* addr, socklen_t* len) noexcept {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().getpeername(fd, addr, len);
    return guarded(c, [&] { return fs::getpeername(e, addr, len); });
}

int close(int fd) {
    Call c;
    Entry* e = c.active() ? FdTable::get().remove(fd) : nullptr;
    if (!e) {
        if (c.active()) count_passthrough();
        return real().close(fd);
    }
    try {
        drop_ref(e);
    } catch (...) {
    }
    // The number itself is a dup of the anchor (or of the kernel epoll fd).
    return c.finish(real().close(fd) == 0 ? 0 : -errno);
}

}  // extern "C"

namespace {

int fcntl_common(int (*real_fcntl)(int, int, ...), int fd, int cmd, unsigned long arg) {
    Call c;
    EntryRef e = c.active() ? FdTable::get().lookup(fd) : EntryRef();
    if (!e) {
        if (c.active()) count_passthrough();
        return real_fcntl(fd, cmd, arg);
    }
    switch (cmd) {
    case F_GETFL:
        if (e->kind != Kind::Socket) break;
        return c.finish(O_RDWR | (e->nonblock ? O_NONBLOCK : 0));
    case F_SETFL:
        // O_NONBLOCK lives in the entry: the anchor's file status flags are shared by
        // every fastnet socket.
        if (e->kind != Kind::Socket) break;
        e->nonblock = (arg & O_NONBLOCK) != 0;
        return c.finish(0);
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int r = real_fcntl(fd, cmd, arg);
        if (r < 0) return r;
        return c.finish(share(r, e));
    }
    default:
        break;
    }
    // F_GETFD/F_SETFD (close-on-exec is per number, so the kernel keeps it), locks, ...
    return real_fcntl(fd, cmd, arg);
}

}  // namespace

extern "C" {

int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return fcntl_common(real().fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    auto fn = real().fcntl64 ? real().fcntl64 : real().fcntl;
    return fcntl_common(fn, fd, cmd, arg);
}

int ioctl(int fd, unsigned long req, ...) noexcept {
    va_list ap;
    va_start(ap, req);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    Call c;
    EntryRef e = socket_entry(c, fd);
    // Close-on-exec belongs to the number (Python's set_inheritable uses these).
    if (!e || req == FIOCLEX || req == FIONCLEX) return real().ioctl(fd, req, arg);
    return guarded(c, [&] { return fs::ioctl(e, req, arg); });
}

int dup(int fd) noexcept {
    Call c;
    EntryRef e = c.active() ? FdTable::get().lookup(fd) : EntryRef();
    int r = real().dup(fd);
    if (!e || r < 0) return r;
    return c.finish(share(r, e));
}

namespace {
int dup_onto(const Call& c, int fd, int fd2, int r) {
    // r is the result of the real dup2/dup3 onto fd2: whatever fd2 was is gone.
    if (r < 0 || !c.active()) return r;
    FdTable& t = FdTable::get();
    EntryRef src = t.lookup(fd);
    if (Entry* old = t.remove(fd2)) {
        try { drop_ref(old); } catch (...) {}
    }
    if (src && share(fd2, src) < 0) return c.finish(-EBADF);
    return r;
}
}  // namespace

int dup2(int fd, int fd2) noexcept {
    Call c;
    if (fd == fd2) return real().dup2(fd, fd2);
    int r = real().dup2(fd, fd2);
    return dup_onto(c, fd, fd2, r);
}

int dup3(int fd, int fd2, int flags) noexcept {
    Call c;
    int r = real().dup3(fd, fd2, flags);
    if (fd == fd2) return r;
    return dup_onto(c, fd, fd2, r);
}

}  // extern "C"
