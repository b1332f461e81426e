// Wrappers for the data calls: read/write and every recv*/send* form, sendfile, and the
// fortified variants glibc substitutes under _FORTIFY_SOURCE. Fastnet sockets go to
// fs::recv / fs::send as an iovec; everything else to libc.
// Both fcntl and fcntl64 (sendfile and sendfile64) are defined here; with 64-bit file
// offsets the headers would rename the first to the second.
#undef _FILE_OFFSET_BITS
#include <sys/sendfile.h>
#include <unistd.h>

#include "interpose/fastsock.hpp"
#include "interpose/passing.hpp"
#include "interpose/wrap.hpp"

using namespace fastnet::ipose;

extern "C" void __chk_fail(void) __attribute__((noreturn));

namespace {

// TCP does not report a source address: Linux sets the length to 0.
void no_source(socklen_t* alen) {
    if (alen) *alen = 0;
}

}  // namespace

extern "C" {

ssize_t read(int fd, void* buf, size_t len) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().read(fd, buf, len);
    iovec v{buf, len};
    return guarded(c, [&] { return fs::recv(fd, e, &v, 1, 0); });
}

ssize_t __read_chk(int fd, void* buf, size_t len, size_t buflen) {
    if (len > buflen) __chk_fail();
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().__read_chk(fd, buf, len, buflen);
    iovec v{buf, len};
    return guarded(c, [&] { return fs::recv(fd, e, &v, 1, 0); });
}

ssize_t write(int fd, const void* buf, size_t len) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().write(fd, buf, len);
    iovec v{const_cast<void*>(buf), len};
    return guarded(c, [&] { return fs::send(fd, e, &v, 1, 0); });
}

ssize_t readv(int fd, const struct iovec* iov, int iovcnt) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().readv(fd, iov, iovcnt);
    return guarded(c, [&] { return fs::recv(fd, e, iov, iovcnt, 0); });
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().writev(fd, iov, iovcnt);
    return guarded(c, [&] { return fs::send(fd, e, iov, iovcnt, 0); });
}

ssize_t recv(int fd, void* buf, size_t len, int flags) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().recv(fd, buf, len, flags);
    iovec v{buf, len};
    return guarded(c, [&] { return fs::recv(fd, e, &v, 1, flags); });
}

ssize_t __recv_chk(int fd, void* buf, size_t len, size_t buflen, int flags) {
    if (len > buflen) __chk_fail();
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().__recv_chk(fd, buf, len, buflen, flags);
    iovec v{buf, len};
    return guarded(c, [&] { return fs::recv(fd, e, &v, 1, flags); });
}

ssize_t recvfrom(int fd, void* buf, size_t len, int flags, struct sockaddr* addr, socklen_t* alen) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().recvfrom(fd, buf, len, flags, addr, alen);
    iovec v{buf, len};
    ssize_t r = guarded(c, [&] { return fs::recv(fd, e, &v, 1, flags); });
    if (r >= 0) no_source(alen);
    return r;
}

ssize_t __recvfrom_chk(int fd, void* buf, size_t len, size_t buflen, int flags,
                       struct sockaddr* addr, socklen_t* alen) {
    if (len > buflen) __chk_fail();
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().__recvfrom_chk(fd, buf, len, buflen, flags, addr, alen);
    iovec v{buf, len};
    ssize_t r = guarded(c, [&] { return fs::recv(fd, e, &v, 1, flags); });
    if (r >= 0) no_source(alen);
    return r;
}

ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) {
        ssize_t r = real().recvmsg(fd, msg, flags);
        if (r >= 0 && c.active() && msg->msg_controllen != 0) {   // descriptors may have come
            int saved = errno;
            try {
                pass::received(msg);
            } catch (...) {
            }
            errno = saved;
        }
        return r;
    }
    if (fs::bad_user_range(msg, sizeof *msg)) return c.finish(static_cast<ssize_t>(-EFAULT));
    if (msg->msg_iovlen > IOV_MAX) return c.finish(static_cast<ssize_t>(-EMSGSIZE));   // Linux __copy_msghdr
    ssize_t r = guarded(c, [&] { return fs::recv(fd, e, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags); });
    if (r >= 0) {
        msg->msg_namelen = 0;
        msg->msg_controllen = 0;
        msg->msg_flags = 0;
    }
    return r;
}

int recvmmsg(int fd, struct mmsghdr* vec, unsigned int vlen, int flags, struct timespec* timeout) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().recvmmsg(fd, vec, vlen, flags, timeout);
    if (fs::bad_user_range(vec, size_t{vlen} * sizeof *vec)) return c.finish(-EFAULT);
    // A stream has no message boundaries: the first receive may block, the rest do not.
    unsigned n = 0;
    for (; n < vlen; ++n) {
        msghdr& m = vec[n].msg_hdr;
        int f = n == 0 ? (flags & ~MSG_WAITFORONE) : (flags | MSG_DONTWAIT);
        if (n > 0 && (flags & MSG_WAITFORONE)) f |= MSG_DONTWAIT;
        ssize_t r = m.msg_iovlen > IOV_MAX ? -EMSGSIZE
                                           : fs::recv(fd, e, m.msg_iov, static_cast<int>(m.msg_iovlen), f);
        if (r < 0) {
            if (n == 0) return c.finish(static_cast<int>(r));
            break;
        }
        vec[n].msg_len = static_cast<unsigned>(r);
        m.msg_namelen = 0;
        m.msg_controllen = 0;
        m.msg_flags = 0;
        if (r == 0) { ++n; break; }
    }
    return c.finish(static_cast<int>(n));
}

ssize_t send(int fd, const void* buf, size_t len, int flags) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().send(fd, buf, len, flags);
    iovec v{const_cast<void*>(buf), len};
    return guarded(c, [&] { return fs::send(fd, e, &v, 1, flags); });
}

ssize_t sendto(int fd, const void* buf, size_t len, int flags, const struct sockaddr* addr,
               socklen_t alen) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().sendto(fd, buf, len, flags, addr, alen);
    // A connected TCP socket ignores the address, as Linux does.
    iovec v{const_cast<void*>(buf), len};
    return guarded(c, [&] { return fs::send(fd, e, &v, 1, flags); });
}

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) {
        if (c.active() && !fs::bad_user_range(msg, sizeof *msg) && msg->msg_controllen != 0) {
            ssize_t r;
            try {
                r = pass::send(fd, msg, flags);   // SCM_RIGHTS may name fastnet sockets
            } catch (...) {
                r = -ENOMEM;
            }
            if (r != pass::kNotPassing) return c.finish(r);
        }
        return real().sendmsg(fd, msg, flags);
    }
    if (fs::bad_user_range(msg, sizeof *msg)) return c.finish(static_cast<ssize_t>(-EFAULT));
    if (msg->msg_iovlen > IOV_MAX) return c.finish(static_cast<ssize_t>(-EMSGSIZE));   // Linux __copy_msghdr
    return guarded(c, [&] { return fs::send(fd, e, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags); });
}

int sendmmsg(int fd, struct mmsghdr* vec, unsigned int vlen, int flags) {
    Call c;
    EntryRef e = socket_entry(c, fd);
    if (!e) return real().sendmmsg(fd, vec, vlen, flags);
    if (fs::bad_user_range(vec, size_t{vlen} * sizeof *vec)) return c.finish(-EFAULT);
    unsigned n = 0;
    for (; n < vlen; ++n) {
        msghdr& m = vec[n].msg_hdr;
        ssize_t r = m.msg_iovlen > IOV_MAX ? -EMSGSIZE
                                           : fs::send(fd, e, m.msg_iov, static_cast<int>(m.msg_iovlen), flags);
        if (r < 0) {
            if (n == 0) return c.finish(static_cast<int>(r));
            break;
        }
        vec[n].msg_len = static_cast<unsigned>(r);
    }
    return c.finish(static_cast<int>(n));
}

ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
    Call c;
    EntryRef out = socket_entry(c, out_fd);
    EntryRef in = c.active() ? FdTable::get().lookup(in_fd) : EntryRef();
    if (!out && !in) return real().sendfile(out_fd, in_fd, offset, count);
    if (in) return c.finish(static_cast<ssize_t>(-EINVAL));   // sendfile reads files, not sockets
    return guarded(c, [&] { return fs::sendfile(out, in_fd, offset, count); });
}

ssize_t sendfile64(int out_fd, int in_fd, off64_t* offset, size_t count) {
    Call c;
    EntryRef out = socket_entry(c, out_fd);
    EntryRef in = c.active() ? FdTable::get().lookup(in_fd) : EntryRef();
    if (!out && !in) return real().sendfile64(out_fd, in_fd, offset, count);
    if (in) return c.finish(static_cast<ssize_t>(-EINVAL));
    static_assert(sizeof(off_t) == sizeof(off64_t), "64-bit targets only");
    return guarded(c, [&] { return fs::sendfile(out, in_fd, reinterpret_cast<off_t*>(offset), count); });
}

}  // extern "C"
