// Connections that leave a process image: a connected fastnet socket passed to another
// process with SCM_RIGHTS (node's cluster module, fd-passing supervisors), or kept open
// across execve() (no close-on-exec). The connection travels as an **image**: a sealed
// memfd holding the socket's settings, the TCB's state (Engine::ConnState) and its
// unacknowledged, unsent and unread bytes, in place of the fd number. The receiving
// process (or the new image) builds the connection in one of its engines, steers the
// flow there and puts a fastnet socket on the number the image arrived on
// (docs/DESIGN.md "Passing connections").
// sendmsg (kernel fd) → pass::send; recvmsg (kernel fd) → pass::received;
// execve/execv/execvp/execvpe → pass::before_exec (→ pass::exec_failed);
// library constructor → pass::adopt_inherited (FASTNET_PASSED).
#pragma once

#include <string>
#include <sys/socket.h>
#include <sys/types.h>
#include <vector>

namespace fastnet::ipose::pass {

// sendmsg() on a kernel socket: when its SCM_RIGHTS name fastnet sockets, connections
// travel as images through fastnetd (the sender's numbers are left as unconnected kernel
// sockets once the message is sent) and are handed to the kernel standalone (a process
// exec'd from this tree cannot join its UMEM); listeners go as their kernel side. Returns the call's result (>= 0 or
// -errno), or kNotPassing when the message passes no fastnet socket.
inline constexpr ssize_t kNotPassing = -1000000;
ssize_t send(int fd, const msghdr* msg, int flags);

// recvmsg() on a kernel socket returned: every image among the received descriptors
// becomes a fastnet socket on the same number.
void received(msghdr* msg);

// exec: the connections whose numbers survive it (no close-on-exec) are written into
// images on their numbers when the new image will load fastnet (`preloaded`) and can
// join the interface (through fastnetd), and handed to the kernel (TCP_REPAIR)
// otherwise; listeners become their kernel side. `env` gets
// the FASTNET_PASSED=... entry to add to the new image's environment (empty: none).
struct ExecPlan {
    std::vector<int> images;
    std::vector<int> kernel;             // numbers now on kernel sockets
    std::string env;
};
void before_exec(bool preloaded, ExecPlan* plan);
// The exec failed: the images become this process's connections again.
void exec_failed(const ExecPlan& plan);

// At load: the images an exec'd-from image left on the numbers FASTNET_PASSED names.
void adopt_inherited();

}  // namespace fastnet::ipose::pass
