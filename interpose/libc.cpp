// Resolution of the real libc functions, the init levels and logging.
// Call (libc.hpp) → ensure_init() → real() + load_config() + FdTable::init() +
// counters_open(); the constructor below runs the same init at load time.
#include "interpose/libc.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "interpose/config.hpp"
#include "interpose/counters.hpp"
#include "interpose/fdtable.hpp"
#include "interpose/passing.hpp"
#include "interpose/runtime.hpp"

namespace fastnet::ipose {

namespace detail {
constinit thread_local int depth __attribute__((tls_model("initial-exec"))) = 0;
constinit thread_local bool signals_held __attribute__((tls_model("initial-exec"))) = false;
namespace {
thread_local sigset_t saved_mask;
}

void release_signals() {
    int e = errno;
    signals_held = false;
    pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);   // pending signals run here
    errno = e;
}
int level_cache = static_cast<int>(Level::NotStarted);
}

const sigset_t* hold_signals(const sigset_t* callers_mask) {
    if (!detail::signals_held) {
        // Not the synchronous ones: a fault while they are blocked kills the process.
        static const sigset_t async = [] {
            sigset_t all;
            sigfillset(&all);
            for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) sigdelset(&all, s);
            return all;
        }();
        int e = errno;
        if (pthread_sigmask(SIG_BLOCK, &async, &detail::saved_mask) == 0) detail::signals_held = true;
        errno = e;
        if (!detail::signals_held) return callers_mask;
    }
    return callers_mask ? callers_mask : &detail::saved_mask;
}

namespace {

RealLibc g_real;
std::atomic<bool> g_resolved{false};
std::atomic<int> g_level{static_cast<int>(Level::NotStarted)};
std::atomic<int> g_log_level{static_cast<int>(LogLevel::Warn)};

void resolve() {
#define FASTNET_CALL(ret, name, params) \
    g_real.name = reinterpret_cast<ret(*) params>(dlsym(RTLD_NEXT, #name));
#include "interpose/calls.def"
#undef FASTNET_CALL
    g_resolved.store(true, std::memory_order_release);
}

void set_level(Level l) {
    g_level.store(static_cast<int>(l), std::memory_order_release);
    __atomic_store_n(&detail::level_cache, static_cast<int>(l), __ATOMIC_RELEASE);
}

void after_fork_in_child() {
    // The child's counters are its own; its engines would be rebuilt by the runtime.
    if (level() == Level::Ready) {
        counters_open();
        Runtime::get().after_fork_in_child();
    }
}

void before_fork() {
    if (level() == Level::Ready) Runtime::get().before_fork();
}

void after_fork_in_parent() {
    if (level() == Level::Ready) Runtime::get().after_fork_in_parent();
}

}  // namespace

const RealLibc& real() {
    if (!g_resolved.load(std::memory_order_acquire)) resolve();
    return g_real;
}

Level level() { return static_cast<Level>(g_level.load(std::memory_order_acquire)); }

void ensure_init() {
    int expected = static_cast<int>(Level::NotStarted);
    if (!g_level.compare_exchange_strong(expected, static_cast<int>(Level::Initialising))) {
        // Another thread is initialising: wait for it rather than race half-built state.
        // (Our own thread never gets here: Call's depth guard stops re-entry first.)
        while (g_level.load(std::memory_order_acquire) == static_cast<int>(Level::Initialising))
            sched_yield();
        __atomic_store_n(&detail::level_cache, g_level.load(), __ATOMIC_RELEASE);
        return;
    }
    __atomic_store_n(&detail::level_cache, static_cast<int>(Level::Initialising), __ATOMIC_RELEASE);
    int saved = errno;
    real();
    Config& cfg = config_mut();
    auto err = load_config(cfg);
    set_log_level(cfg.log);
    if (err) {
        log(LogLevel::Error, "%s=\"%s\" is not valid (accepted: %s); %s", err->var,
            err->value.c_str(), err->accepted,
            cfg.strict ? "exiting because FASTNET_STRICT=1"
                       : "fastnet is disabled and every socket goes to the kernel");
        if (cfg.strict) _exit(1);
        set_level(Level::Disabled);
        errno = saved;
        return;
    }
    if (cfg.disable) {
        set_level(Level::Disabled);
        errno = saved;
        return;
    }
    if (!FdTable::get().init()) {
        log(LogLevel::Error, "cannot set up the descriptor table; every socket goes to the kernel");
        if (cfg.strict) _exit(1);
        set_level(Level::Disabled);
        errno = saved;
        return;
    }
    counters_open();
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
    set_level(Level::Ready);
    errno = saved;
}

void set_log_level(LogLevel l) { g_log_level.store(static_cast<int>(l), std::memory_order_relaxed); }

bool log_enabled(LogLevel l) {
    return static_cast<int>(l) <= g_log_level.load(std::memory_order_relaxed);
}

void log(LogLevel l, const char* fmt, ...) {
    if (!log_enabled(l)) return;
    int saved = errno;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "fastnet[%d]: ", static_cast<int>(getpid()));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    va_end(ap);
    size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : std::min<size_t>(m, sizeof buf - n - 2));
    buf[len++] = '\n';
    real().write(2, buf, len);
    errno = saved;
}

namespace {
__attribute__((constructor)) void fastnet_load() {
    ++detail::depth;
    ensure_init();
    // Connections the image that exec'd this one left on fd numbers (passing.hpp).
    if (level() == Level::Ready) {
        try {
            pass::adopt_inherited();
        } catch (...) {
        }
    }
    --detail::depth;
}
__attribute__((destructor)) void fastnet_unload() {
    ++detail::depth;
    if (level() == Level::Ready) Runtime::get().at_exit();
    counters_close();
    --detail::depth;
}
}  // namespace

}  // namespace fastnet::ipose
