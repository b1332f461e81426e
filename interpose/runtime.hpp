// The process-wide runtime (configuration, interface, XDP steering, shared UMEM) and the
// per-thread engines. The runtime starts at the first TCP socket() fastnet may take;
// if it cannot (no privilege, no interface, no AF_XDP), it says so once and every socket
// goes to the kernel (FASTNET_STRICT=1: the process exits with status 1 instead).
// fs::socket() → Runtime::get().start() → thread_engine(); blocking calls → RtEngine::pump().
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "interpose/fdtable.hpp"
#include "stack/engine.hpp"

namespace fastnet::ipose {

namespace pass {
struct ExecPlan;
}

// One engine with what it needs to run: its device, its lock (a socket may be touched
// by threads other than the owner; the lock is uncontended in the common case), the fds
// a thread sleeps on, and the sockets it serves (SockId → Entry) for readiness events.
class RtEngine : public EventSink {
public:
    std::mutex mu;
    Engine* engine = nullptr;
    int wait_fd = -1;                 // device fd: readable when frames arrive
    int wake_fd = -1;                 // eventfd: readiness produced by another thread
    int slot = 0;                     // XSKMAP slot (shared by the processes on the interface)
    int index = 0;                    // this process's engine number
    uint32_t displaced_seen = 0;      // Umem::displaced(slot) last acted on (progress thread)
    int stats_slot = -1;
    std::unordered_map<SockId, Entry*> sockets;   // under mu
    std::vector<Entry*> changed;                   // under mu: readiness moved since last drain
    uint64_t last_poll = 0;
    // Socket calls left frames unkicked (the engine defers its kicks to the next poll):
    // the progress thread polls such an engine at its next round.
    std::atomic<bool> tx_dirty{false};

    void on_events(SockId sock, uint32_t events) override;
    void on_moved_flow_released(Endpoint local, Endpoint remote) override;

    // Polls the engine once (the caller holds mu), publishing counters now and then.
    void poll_locked(uint64_t now);
    // Entries whose readiness moved, handed to the epoll layer outside the lock.
    void take_changed(std::vector<Entry*>& out);
};

class Runtime {
public:
    static Runtime& get();

    // True when fastnet serves TCP sockets in this process. Starts the runtime on the
    // first call; a failure is logged once.
    bool start();
    RtEngine* thread_engine();          // this thread's engine, created on first use
    // Through fastnetd: any preloaded process on the interface can run a connection this
    // one passes (standalone: only the processes forked from the one that started).
    bool via_daemon() const;
    std::vector<RtEngine*> engines();   // all of them (progress thread, epoll)

    // Whether a connection to dst (host order) leaves through the accelerated interface.
    bool reaches(uint32_t dst_ip) const;
    // Whether ip (host order) is 0.0.0.0 or the accelerated interface's address.
    bool local_ip(uint32_t ip) const;
    uint32_t iface_ip() const;

    // Steering: the XDP program sends new flows for this port to these engines.
    int listen_port(uint16_t port, RtEngine* e);
    void unlisten_port(uint16_t port, RtEngine* e);
    // Steering: this flow's frames go to e (a connection that moved between engines),
    // or no longer need an exact entry.
    int steer_flow(Endpoint local, Endpoint remote, RtEngine* e);
    void unsteer_flow(Endpoint local, Endpoint remote);
    // The same for a connection moving to another process's engine (xproc.cpp).
    int steer_flow_to_slot(Endpoint local, Endpoint remote, uint32_t slot);
    // A connection on its way to another process image: its frames are dropped until
    // the receiver steers it (only if no other slot took the flow meanwhile).
    void park_flow(Endpoint local, Endpoint remote);
    // The same for a connection the kernel continues (TCP_REPAIR handover).
    int steer_to_kernel(Endpoint local, Endpoint remote);

    // fork() prepare: connections the child inherits get one more holder (xproc.hpp).
    void before_fork();

    void after_fork_in_child();
    // The parent keeps its connections and the listeners it watches (in an epoll set,
    // polled or accepted on right now, or accepted on within the last second: a BGSAVE,
    // system() or popen() changes nothing, nor an accept-and-fork server);
    // a listener it does not watch leaves its port until it is waited on or accepted on
    // again, so a master that forks workers to serve it gets no connection it would
    // never accept (meanwhile new flows go to the workers once they adopt the port, or
    // to the kernel side of the listener, which the workers also accept from).
    void after_fork_in_parent();
    // A forked child's engine now serves an inherited listener on port: the parent's
    // engines leave the port's slot set, and the parent is told (Umem::displace).
    void adopted_listener(uint16_t port);
    // setuid() and friends: create what needs privilege while it is still there.
    void before_privilege_drop();
    // exec: close-on-exec fastnet sockets close as the kernel would close them (FIN, or
    // RST with unread data) and the segments leave before the image is replaced; the
    // connections exec keeps go into images for the new image when it loads fastnet
    // (`preloaded`), to the kernel otherwise (passing.hpp). exec_failed: back here.
    void before_exec(bool preloaded, pass::ExecPlan* plan);
    void exec_failed(const pass::ExecPlan& plan);
    // Process exit: close every fastnet socket as the kernel would (FIN, or RST when
    // data is unread) and push the segments out, so peers learn the process is gone.
    void at_exit();
    // Connections of e that still have something to deliver continue in kernel sockets
    // (TCP_REPAIR); their flows are steered to the kernel. The caller holds e.mu.
    void hand_over_to_kernel(RtEngine& e);
};

uint64_t now_ns();

// Busy polling: how long a thread about to sleep polls first (FASTNET_SPIN_US, or the
// latency profile's), and the pause between two looks.
uint64_t spin_ns();
inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

}  // namespace fastnet::ipose
