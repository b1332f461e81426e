// The runtime when the tree has no engine or no AF_XDP device yet: it never starts,
// says why once, and every TCP socket goes to the kernel. Replaced by runtime.cpp as soon
// as stack/tcp/engine.cpp, stack/xdp/ and stack/net/ are built (interpose/meson.build).
#include <atomic>
#include <time.h>
#include <unistd.h>

#include "interpose/config.hpp"
#include "interpose/counters.hpp"
#include "interpose/libc.hpp"
#include "interpose/runtime.hpp"

namespace fastnet::ipose {

Runtime& Runtime::get() {
    static Runtime r;
    return r;
}

bool Runtime::start() {
    static std::atomic<bool> said{false};
    if (!said.exchange(true)) {
        if (config().strict) {
            log(LogLevel::Error, "cannot start: AF_XDP device not available in this build; "
                                 "exiting because FASTNET_STRICT=1");
            _exit(1);
        }
        log(LogLevel::Warn, "cannot start: AF_XDP device not available in this build; "
                            "every socket goes to the kernel");
        counters_set_state("kernel: AF_XDP device not available in this build");
    }
    return false;
}

RtEngine* Runtime::thread_engine() { return nullptr; }
std::vector<RtEngine*> Runtime::engines() { return {}; }
bool Runtime::reaches(uint32_t) const { return false; }
bool Runtime::local_ip(uint32_t) const { return false; }
uint32_t Runtime::iface_ip() const { return 0; }
int Runtime::listen_port(uint16_t, RtEngine*) { return -ENOSYS; }
void Runtime::unlisten_port(uint16_t, RtEngine*) {}
void Runtime::after_fork_in_child() {}
void Runtime::adopted_listener(uint16_t) {}
void Runtime::after_fork_in_parent() {}
void Runtime::before_fork() {}
void Runtime::before_privilege_drop() {}
void Runtime::before_exec(bool, pass::ExecPlan*) {}
bool Runtime::via_daemon() const { return false; }
void Runtime::exec_failed(const pass::ExecPlan&) {}
void Runtime::at_exit() {}
void Runtime::hand_over_to_kernel(RtEngine&) {}

void RtEngine::on_events(SockId, uint32_t) {}

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace fastnet::ipose
