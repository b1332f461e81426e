// Operations on fastnet sockets and on epoll/poll sets that hold some: the layer between
// the thin wrappers (socket.cpp, io.cpp, poll.cpp, epoll.cpp) and the engine.
// Every function returns a value >= 0 or -errno. The wrappers only call in here for fds
// the table knows (or, for fs::socket, TCP sockets fastnet may take).
// Built from fastsock.cpp + fastpoll.cpp when the engine and the AF_XDP device are in
// the tree, from accel_absent.cpp (everything goes to the kernel) otherwise.
#pragma once

#include <cstdint>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "interpose/fdtable.hpp"

namespace fastnet::ipose::fs {

// Returned by socket() when fastnet does not take the socket: the kernel gets it.
inline constexpr int kToKernel = -100000;

// Whether a non-empty user range is certainly not the caller's memory: in the first page
// (NULL plus an offset), wrapping around, or (x86-64) beyond any user address space.
// The kernel says EFAULT for every unmapped address; fastnet copies in user space, where
// only these cheap cases can be told without a syscall (README: other bad pointers fault
// as in any user-space copy).
inline bool bad_user_range(const void* p, size_t len) {
    if (len == 0) return false;
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (a < 4096 || a + len < a) return true;
#if defined(__x86_64__)
    if (a + len > (uintptr_t{1} << 56)) return true;   // 5-level paging ends below 2^56
#endif
    return false;
}

int socket(int domain, int type, int protocol);
int bind(int fd, Entry* e, const sockaddr* addr, socklen_t len);
int listen(int fd, Entry* e, int backlog);
int accept(int fd, Entry* e, sockaddr* addr, socklen_t* len, int flags);
int connect(int fd, Entry* e, const sockaddr* addr, socklen_t len);
int shutdown(Entry* e, int how);
// The last fd number of the socket went away (it is already out of the table): the
// engine closes it and calls still in progress on it end (Entry::closed).
void release(Entry* e);
// The last hold on the entry went (no fd number, no call in progress): what the entry
// still owns is freed — a listener's kernel side, an epoll set's user-space part.
void recycle(Entry* e);

// fork(): the parent keeps its ports. In the child, an inherited listener gets a
// listening socket in this process's engine when the child accepts or waits on it; its
// slot joins the port and the parent's slots leave it (false: it stays the kernel's).
// The parent learns it through Umem::displaced(): listeners_displaced() puts back the
// listeners it still watches, and leaves the others out (leave_port) until accepted on
// or waited on again (rejoin_port), so a master that only forks workers (nginx) gets no
// connections it would never accept.
bool adopt_listener(int fd, Entry* e);
void leave_port(Entry* e);
void rejoin_port(Entry* e);
void listeners_displaced(RtEngine* e);   // progress thread, on a change of displaced()

ssize_t send(int fd, Entry* e, const iovec* iov, int iovcnt, int flags);
ssize_t recv(int fd, Entry* e, const iovec* iov, int iovcnt, int flags);
ssize_t sendfile(Entry* out, int in_fd, off_t* offset, size_t count);

int getsockopt(Entry* e, int level, int name, void* val, socklen_t* len);
int setsockopt(int fd, Entry* e, int level, int name, const void* val, socklen_t len);
int getsockname(Entry* e, sockaddr* addr, socklen_t* len);
int getpeername(Entry* e, sockaddr* addr, socklen_t* len);
int ioctl(Entry* e, unsigned long req, void* arg);

// epoll: ep is the table entry of epfd (null until a fastnet fd is first added).
int epoll_ctl(int epfd, Entry* ep, int op, int fd, Entry* target, epoll_event* ev);
int epoll_wait(int epfd, Entry* ep, epoll_event* evs, int maxevents, const timespec* timeout,
               const sigset_t* mask);
void epoll_release(Entry* ep);     // the epoll fd closed
// poll/select over fds of which at least one is a fastnet socket.
int poll(pollfd* fds, nfds_t nfds, const timespec* timeout, const sigset_t* mask);

}  // namespace fastnet::ipose::fs
