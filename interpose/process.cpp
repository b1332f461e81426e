// Process-level calls. setuid() and friends: a forked server worker (nginx) inherits its
// listeners from a root master and then drops root, but AF_XDP sockets need CAP_NET_RAW,
// so its engine is created and its listeners adopted just before the real call (only a
// change away from euid 0 triggers it). exec: the kernel would close close-on-exec
// sockets, sending FIN; fastnet's engine vanishes with the image, so it closes them
// first; the connections exec keeps (no close-on-exec) travel to the new image
// (passing.hpp). _exit/_Exit: what exit() does through the library's destructor.
// (execl/execle/execlp and posix_spawn reach execve inside libc, out of reach.)
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "interpose/libc.hpp"
#include "interpose/passing.hpp"
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

// Whether the program `file` names exists and may be executed (`search`: along PATH, as
// execvp does): connections are only prepared for an exec that can succeed.
bool executable(const char* file, bool search) {
    if (!file || !*file) return false;
    if (!search || strchr(file, '/')) return access(file, X_OK) == 0;
    const char* path = getenv("PATH");
    std::string dirs = path ? path : "/bin:/usr/bin";
    size_t start = 0;
    for (;;) {
        size_t end = dirs.find(':', start);
        std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
        std::string full = (dir.empty() ? std::string(".") : dir) + "/" + file;
        if (access(full.c_str(), X_OK) == 0) return true;
        if (end == std::string::npos) return false;
        start = end + 1;
    }
}

// Whether the new image loads fastnet: LD_PRELOAD in its environment names it.
bool preloads_fastnet(char* const envp[]) {
    for (char* const* e = envp; e && *e; ++e)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0) return strstr(*e + 11, "fastnet") != nullptr;
    return false;
}

// What an exec changes: the connections it keeps (passing.hpp) and the environment that
// tells the new image where they are.
struct Exec {
    pass::ExecPlan plan;
    std::vector<char*> env;
    char* const* envp;

    Exec(const Call& c, const char* file, bool search, char* const envp_in[]) : envp(envp_in) {
        if (!c.active() || !executable(file, search)) return;
        try {
            Runtime::get().before_exec(preloads_fastnet(envp_in), &plan);
            if (plan.env.empty()) return;
            for (char* const* e = envp_in; e && *e; ++e)
                if (strncmp(*e, "FASTNET_PASSED=", 15) != 0) env.push_back(*e);
            env.push_back(plan.env.data());
            env.push_back(nullptr);
            envp = env.data();
        } catch (...) {
        }
    }
    // The exec returned: it failed, and this image goes on with its connections.
    void failed() {
        int saved = errno;
        try {
            Runtime::get().exec_failed(plan);
        } catch (...) {
        }
        errno = saved;
    }
};

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
    Exec x(c, path, false, envp);
    int r = real().execve(path, argv, x.envp);
    x.failed();
    return r;
}

int execv(const char* path, char* const argv[]) {
    Call c;
    Exec x(c, path, false, environ);
    int r = real().execve(path, argv, x.envp);
    x.failed();
    return r;
}

int execvp(const char* file, char* const argv[]) {
    Call c;
    Exec x(c, file, true, environ);
    int r = real().execvpe(file, argv, x.envp);
    x.failed();
    return r;
}

int execvpe(const char* file, char* const argv[], char* const envp[]) {
    Call c;
    Exec x(c, file, true, envp);
    int r = real().execvpe(file, argv, x.envp);
    x.failed();
    return r;
}

}  // extern "C"
