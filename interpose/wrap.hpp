// Helpers shared by the wrapper files (socket.cpp, io.cpp, poll.cpp, epoll.cpp):
// the fd lookup that counts passthrough calls and holds the entry for the call, and the
// exception boundary.
#pragma once

#include <cxxabi.h>

#include "interpose/counters.hpp"
#include "interpose/fdtable.hpp"
#include "interpose/libc.hpp"

namespace fastnet::ipose {

// The fastnet socket fd names, held until the wrapper returns; empty for any other fd.
// adopt: the call accepts or waits on fd (FdTable::lookup).
inline EntryRef socket_entry(const Call& c, int fd, bool adopt = false) {
    if (!c.active()) return EntryRef();
    EntryRef e = FdTable::get().lookup(fd, adopt);
    if (e && e->kind == Kind::Socket) return e;
    count_passthrough();
    return EntryRef();
}

// No exception crosses into the application.
// A thread cancelled inside a blocking call unwinds through here (abi::__forced_unwind):
// let that through, which is also why cancellation-point wrappers are not noexcept.
template <class F>
inline auto guarded(const Call& c, F&& f) -> decltype(f()) {
    try {
        return c.finish(f());
    } catch (abi::__forced_unwind&) {
        throw;
    } catch (...) {
        return c.finish(static_cast<decltype(f())>(-ENOMEM));
    }
}

}  // namespace fastnet::ipose
