// fastnet socket operations when the runtime cannot accelerate (no engine or AF_XDP
// device in this build): socket() hands every socket to the kernel, so no fd ever
// becomes a fastnet socket and the other operations are never reached.
#include "interpose/fastsock.hpp"
#include "interpose/passing.hpp"
#include "interpose/runtime.hpp"

namespace fastnet::ipose::fs {

int socket(int domain, int type, int) {
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if ((domain == AF_INET || domain == AF_INET6) && base == SOCK_STREAM) Runtime::get().start();
    return kToKernel;
}
int bind(int, Entry*, const sockaddr*, socklen_t) { return -EBADF; }
int listen(int, Entry*, int) { return -EBADF; }
int accept(int, Entry*, sockaddr*, socklen_t*, int) { return -EBADF; }
int connect(int, Entry*, const sockaddr*, socklen_t) { return -EBADF; }
int shutdown(Entry*, int) { return -EBADF; }
void release(Entry*) {}
void recycle(Entry*) {}
ssize_t send(int, Entry*, const iovec*, int, int) { return -EBADF; }
ssize_t recv(int, Entry*, const iovec*, int, int) { return -EBADF; }
ssize_t sendfile(Entry*, int, off_t*, size_t) { return -EBADF; }
int getsockopt(Entry*, int, int, void*, socklen_t*) { return -EBADF; }
int setsockopt(int, Entry*, int, int, const void*, socklen_t) { return -EBADF; }
int getsockname(Entry*, sockaddr*, socklen_t*) { return -EBADF; }
int getpeername(Entry*, sockaddr*, socklen_t*) { return -EBADF; }
int ioctl(Entry*, unsigned long, void*) { return -EBADF; }
int epoll_ctl(int, Entry*, int, int, Entry*, epoll_event*) { return -EBADF; }
int epoll_wait(int, Entry*, epoll_event*, int, const timespec*, const sigset_t*) { return -EBADF; }
void epoll_release(Entry*) {}
int poll(pollfd*, nfds_t, const timespec*, const sigset_t*) { return -EBADF; }

}  // namespace fastnet::ipose::fs

namespace fastnet::ipose::pass {

ssize_t send(int, const msghdr*, int) { return kNotPassing; }
void received(msghdr*) {}
void before_exec(bool, ExecPlan*) {}
void exec_failed(const ExecPlan&) {}
void adopt_inherited() {}

}  // namespace fastnet::ipose::pass
