// Process-level calls. setuid() and friends: a forked server worker (nginx) inherits its
// listeners from a root master and then drops root, but AF_XDP sockets need CAP_NET_RAW,
// so its engine is created and its listeners adopted just before the real call (only a
// change away from euid 0 triggers it). exec: the kernel would close close-on-exec
// sockets, sending FIN; fastnet's engine vanishes with the image, so it closes them
// first. _exit/_Exit: what exit() does through the library's destructor. (execl/execle/execlp and posix_spawn reach execve inside libc, out of reach.)
#include <unistd.h>

#include "interpose/libc.hpp"
#include "interpose/runtime.hpp"

using namespace fastnet::ipose;

namespace {

void prepare(const Call& c, uid_t target) {
    if (c.active() && geteuid() == 0 && target != 0 && target != static_cast<uid_t>(-1)) {
        try {
            Runtime::get().before_privilege_drop();
        } catch (...) {
        }
    }
}

void before_exec(const Call& c) {
    if (!c.active()) return;
    try {
        Runtime::get().before_exec();
    } catch (...) {
    }
}

}  // namespace

extern "C" {

// vfork(): the child would share fastnet's memory (fd table, engines) without fork
// handlers, and its close(), execve() or _exit() calls, all intercepted, would act on
// the parent's sockets (Python's subprocess closes every fd it does not pass). A vfork
// may be a fork (POSIX leaves the sharing unspecified): the child gets its own copy
// and runs the fork handlers. glibc's posix_spawn does not come here.
pid_t vfork() noexcept {
    return fork();
}

// _exit() skips atexit handlers and destructors, where fastnet closes its sockets and
// hands unfinished connections to the kernel: do that first. exit() runs it already.
void _exit(int status) noexcept {
    Call c;
    if (c.active()) {
        try {
            Runtime::get().at_exit();
        } catch (...) {
        }
    }
    real()._exit(status);
    __builtin_unreachable();
}

void _Exit(int status) noexcept {
    Call c;
    if (c.active()) {
        try {
            Runtime::get().at_exit();
        } catch (...) {
        }
    }
    real()._Exit(status);
    __builtin_unreachable();
}

int setuid(uid_t uid) noexcept {
    Call c;
    prepare(c, uid);
    return real().setuid(uid);
}

int seteuid(uid_t uid) noexcept {
    Call c;
    prepare(c, uid);
    return real().seteuid(uid);
}

int setreuid(uid_t ruid, uid_t euid) noexcept {
    Call c;
    prepare(c, euid);
    return real().setreuid(ruid, euid);
}

int setresuid(uid_t ruid, uid_t euid, uid_t suid) noexcept {
    Call c;
    prepare(c, euid);
    return real().setresuid(ruid, euid, suid);
}

int execve(const char* path, char* const argv[], char* const envp[]) {
    Call c;
    before_exec(c);
    return real().execve(path, argv, envp);
}

int execv(const char* path, char* const argv[]) {
    Call c;
    before_exec(c);
    return real().execv(path, argv);
}

int execvp(const char* file, char* const argv[]) {
    Call c;
    before_exec(c);
    return real().execvp(file, argv);
}

int execvpe(const char* file, char* const argv[], char* const envp[]) {
    Call c;
    before_exec(c);
    return real().execvpe(file, argv, envp);
}

}  // extern "C"
