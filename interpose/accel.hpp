// Internals shared by the accelerated-path files (runtime.cpp, fastsock.cpp,
// fastpoll.cpp): how a change of readiness reported by an engine reaches blocked
// threads and epoll sets.
// RtEngine::on_events → changed list → (engine lock released) → notify_changed().
// Lock order, outermost first (every lock class, what it protects and each place one is
// taken under another: docs/DESIGN.md "Lock order"): FdTable::adopt_mu_ → State::mu →
// epoll registry (g_reg) → EpollSet::mu (outer set, then nested) → RtEngine::mu (two only
// together, std::scoped_lock) → leaves: the UMEM control lock (SteerLock), TcpCore::inbox_mu, the UMEM
// lock, FdTable::free_mu_.
#pragma once

#include <mutex>
#include <vector>

#include "interpose/fdtable.hpp"
#include "interpose/runtime.hpp"

namespace fastnet::ipose {

// Wakes threads blocked on these sockets and queues them on the ready lists of the
// epoll sets they belong to, then drops the hold each one carried since it was queued
// (RtEngine::on_events). Called without any engine lock held.
void notify_changed(RtEngine* e, const std::vector<Entry*>& changed);

// Polls an engine if nobody has for a while (try-lock: never waits for another
// thread's engine), then dispatches the readiness it produced.
void pump(RtEngine* e, bool force);

// The engine's socket calls defer their kicks to its next poll (one kick per event-loop
// turn). A thread remembers the engines it left frames in (note_tx) and kicks them
// before it sleeps (flush_deferred), so nothing waits for the progress thread.
void note_tx(RtEngine* e);
void flush_deferred();

// The next time (CLOCK_MONOTONIC ns) the engine needs a poll; ~0 if none.
uint64_t engine_deadline(RtEngine* e);

// A socket closed for good: it leaves every epoll set it was in (fastpoll.cpp).
void epoll_forget(Entry* en);
// In a forked child: the epoll registry lock starts free.
void epoll_after_fork();
// The epoll registry lock: held while a socket changes engines (fastsock.cpp), so no
// epoll set counts the socket's engine meanwhile. Then epoll_engine_moved() (under it)
// moves the socket's epoll sets from waking on one engine's device to the other's.
std::unique_lock<std::mutex> epoll_registry_lock();
void epoll_engine_moved(Entry* en, RtEngine* from, RtEngine* to);

namespace fs {
// Readiness of a fastnet socket as EPOLL* bits: the engine's, plus EPOLLIN when the
// kernel side of a listener has a connection waiting.
uint32_t sock_events(Entry* en);
// One sleep of a blocking call: until the socket may have `want`, the engine needs a
// poll, or the deadline (CLOCK_MONOTONIC ns, ~0 = none). 0: look again; -EINTR; -EAGAIN.
int wait_once(Entry* en, uint32_t want, uint64_t deadline);
// The last hold on an epoll entry went: its user-space set is freed (fs::recycle).
void epoll_free(Entry* ep);
}  // namespace fs

}  // namespace fastnet::ipose
