// The real libc functions behind every intercepted name, the library's init levels and
// the re-entry guard. Every wrapper starts with `Call c;` and asks c.active(): before
// init, while initialising, when disabled and on re-entry (libbpf, netlink code or
// dlsym calling back into an intercepted name) the answer is no and the wrapper goes
// straight to libc.
#pragma once

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

namespace fastnet::ipose {

struct RealLibc {
#define FASTNET_CALL(ret, name, params) ret(*name) params = nullptr;
#include "interpose/calls.def"
#undef FASTNET_CALL
};

// Resolved once (dlsym RTLD_NEXT); safe to call at any time, from any thread.
const RealLibc& real();

enum class Level : int { NotStarted, Initialising, Ready, Disabled };
Level level();

// Runs the process-wide init once (constructor or first call, whichever comes first).
void ensure_init();

namespace detail {
extern constinit thread_local int depth __attribute__((tls_model("initial-exec")));
extern int level_cache;   // Level, read racily as a fast path; ensure_init publishes it
// hold_signals() blocked the thread's signals for the rest of the call.
extern constinit thread_local bool signals_held __attribute__((tls_model("initial-exec")));
void release_signals();   // the mask hold_signals() saved, back when the call returns
}

// A blocking fastnet call sleeps in a loop (look at the engines, sleep until a wake-up,
// a timer or the deadline, look again). A handler that ran between two sleeps, in the
// call's own user-space part, would leave no trace: the call would sleep on and never
// answer EINTR (a server's SIGTERM lost until traffic comes). So before its first sleep
// (or spin) such a call blocks every asynchronous signal until it returns, and sleeps
// with the mask it returns: the caller's (ppoll, epoll_pwait) or the thread's own. A
// signal then arrives in the sleep (EINTR) or when the call returns, as with the kernel.
const sigset_t* hold_signals(const sigset_t* callers_mask);

// Marks the thread as inside fastnet for the life of a wrapper's fastnet path, so that
// anything our own code (or a library it calls) does through an intercepted name goes to
// libc. errno is saved on entry: finish() restores it on success, as libc would leave it.
class Call {
public:
    Call() noexcept : saved_errno_(errno) {
        if (detail::depth++ == 0) {
            if (__builtin_expect(detail::level_cache != static_cast<int>(Level::Ready), 0)) {
                if (detail::level_cache == static_cast<int>(Level::NotStarted)) ensure_init();
                active_ = detail::level_cache == static_cast<int>(Level::Ready);
            } else {
                active_ = true;
            }
        }
        errno = saved_errno_;
    }
    ~Call() {
        if (--detail::depth == 0 && __builtin_expect(detail::signals_held, 0)) detail::release_signals();
    }
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

    bool active() const { return active_; }

    // r >= 0: success, errno as it was on entry. r < 0: -errno, returns -1.
    template <class T>
    T finish(T r) const noexcept {
        if (r < 0) {
            errno = static_cast<int>(-r);
            return -1;
        }
        errno = saved_errno_;
        return r;
    }

private:
    int saved_errno_;
    bool active_ = false;
};

// Logging at FASTNET_LOG's level, one line to stderr, prefixed "fastnet[pid]: ".
enum class LogLevel : int { Error = 0, Warn = 1, Info = 2, Debug = 3 };
void set_log_level(LogLevel l);
bool log_enabled(LogLevel l);
void log(LogLevel l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace fastnet::ipose
