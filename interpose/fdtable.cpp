// The fd table, the anchor fd behind every fastnet socket number, and in-place handover
// to a kernel socket (dup3 of a new kernel socket onto the fastnet socket's number).
#include "interpose/fdtable.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "interpose/libc.hpp"

namespace fastnet::ipose {

void Entry::remember_opt(int level, int name, const void* val, socklen_t len) {
    if (len > sizeof(SavedOpt::val)) return;
    for (int i = 0; i < nopts; ++i) {
        if (opts[i].level == level && opts[i].name == name) {
            opts[i].len = len;
            memcpy(opts[i].val, val, len);
            return;
        }
    }
    if (nopts == static_cast<int>(std::size(opts))) return;
    opts[nopts].level = level;
    opts[nopts].name = name;
    opts[nopts].len = len;
    memcpy(opts[nopts].val, val, len);
    ++nopts;
}

FdTable& FdTable::get() {
    static FdTable t;
    return t;
}

bool FdTable::init() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
    // The soft limit may be raised later (servers do); size for the hard limit, capped.
    // The pages are only touched for fd numbers actually used.
    rlim_t n = std::max<rlim_t>(rl.rlim_cur, std::min<rlim_t>(rl.rlim_max, 1u << 20));
    n = std::min<rlim_t>(n, 1u << 22);
    size_t bytes = n * sizeof(std::atomic<Entry*>);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    // An eventfd that is never written: if a fastnet fd number ever reaches a kernel
    // call we do not intercept, the kernel sees a harmless descriptor, not a stranger's.
    anchor_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (anchor_ < 0) {
        munmap(p, bytes);
        return false;
    }
    slots_ = static_cast<std::atomic<Entry*>*>(p);
    size_ = static_cast<unsigned>(n);
    return true;
}

int FdTable::new_fd(bool cloexec) {
    int fd = real().fcntl(anchor_, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (fd < 0) return -errno;
    if (static_cast<unsigned>(fd) >= size_) {
        real().close(fd);
        return -EMFILE;
    }
    return fd;
}

Entry* FdTable::alloc() {
    Entry* e = nullptr;
    {
        std::lock_guard g(free_mu_);
        if (free_) {
            e = free_;
            free_ = reinterpret_cast<Entry*>(e->items);
        }
    }
    if (!e) return new (std::nothrow) Entry();
    e->~Entry();
    return new (e) Entry();
}

void FdTable::release(Entry* e) {
    std::lock_guard g(free_mu_);
    e->state = SockState::Closed;
    e->items = reinterpret_cast<EpItem*>(free_);
    free_ = e;
}

int handover_to_kernel(int fd, Entry* e) {
    const RealLibc& r = real();
    int k = e->shadow;
    if (k < 0) {
        k = r.socket(e->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (k < 0) return -errno;
        for (int i = 0; i < e->nopts; ++i)
            r.setsockopt(k, e->opts[i].level, e->opts[i].name, e->opts[i].val, e->opts[i].len);
        if (e->bound_len && r.bind(k, reinterpret_cast<sockaddr*>(&e->bound), e->bound_len) != 0) {
            int err = errno;
            r.close(k);
            return -err;
        }
    }
    int fl = r.fcntl(k, F_GETFL);
    r.fcntl(k, F_SETFL, e->nonblock ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
    if (e->rcvtimeo.tv_sec || e->rcvtimeo.tv_usec)
        r.setsockopt(k, SOL_SOCKET, SO_RCVTIMEO, &e->rcvtimeo, sizeof e->rcvtimeo);
    if (e->sndtimeo.tv_sec || e->sndtimeo.tv_usec)
        r.setsockopt(k, SOL_SOCKET, SO_SNDTIMEO, &e->sndtimeo, sizeof e->sndtimeo);
    int fdflags = r.fcntl(fd, F_GETFD);
    // dup3 replaces the anchor dup atomically: the number is never free in between.
    if (r.dup3(k, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
        int err = errno;
        if (k != e->shadow) r.close(k);
        return -err;
    }
    r.close(k);
    e->shadow = -1;
    return 0;
}

bool sockaddr_to_endpoint(const sockaddr* sa, socklen_t len, Endpoint* out, bool* mapped) {
    if (!sa) return false;
    *mapped = false;
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        out->ip = ntohl(in->sin_addr.s_addr);
        out->port = ntohs(in->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            uint32_t v4;
            memcpy(&v4, &in6->sin6_addr.s6_addr[12], 4);
            out->ip = ntohl(v4);
            out->port = ntohs(in6->sin6_port);
            *mapped = true;
            return true;
        }
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
            // "::" binds both families; the IPv4 half is the engine's.
            out->ip = 0;
            out->port = ntohs(in6->sin6_port);
            return true;
        }
    }
    return false;
}

void endpoint_to_sockaddr(int family, Endpoint ep, sockaddr* sa, socklen_t* len) {
    sockaddr_storage ss{};
    socklen_t full;
    if (family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(ep.port);
        if (ep.ip != 0) {
            in6->sin6_addr.s6_addr[10] = 0xff;
            in6->sin6_addr.s6_addr[11] = 0xff;
            uint32_t v4 = htonl(ep.ip);
            memcpy(&in6->sin6_addr.s6_addr[12], &v4, 4);
        }
        full = sizeof(sockaddr_in6);
    } else {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        in->sin_family = AF_INET;
        in->sin_port = htons(ep.port);
        in->sin_addr.s_addr = htonl(ep.ip);
        full = sizeof(sockaddr_in);
    }
    if (!sa || !len) return;
    // As the kernel does: copy what fits, report the full length.
    memcpy(sa, &ss, std::min<socklen_t>(*len, full));
    *len = full;
}

bool is_loopback(const sockaddr* sa, socklen_t len) {
    if (!sa) return false;
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in))
        return (ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        auto* a = &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

}  // namespace fastnet::ipose
