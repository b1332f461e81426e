// Wrappers for the calls that drop root. A forked server worker (nginx) inherits its
// listeners from a root master and then calls setuid(): AF_XDP sockets need CAP_NET_RAW,
// so its engine is created and its listeners adopted just before the real call.
// Only a change away from euid 0 triggers it; everything else goes straight to libc.
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

}  // namespace

extern "C" {

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

}  // extern "C"
