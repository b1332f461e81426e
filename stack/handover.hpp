// Handover of a live connection to the kernel (TCP_REPAIR); see handover.cpp.
#pragma once

#include "stack/engine.hpp"

namespace fastnet {

// A connected kernel socket (out of repair mode) that continues the connection h
// describes, its queues filled; or -errno (EPERM without CAP_NET_ADMIN). The caller
// steers the flow to the kernel, detaches it from the engine, and closes the fd when
// the connection is to end (the kernel then delivers the data and its FIN).
// step names the step that failed.
int repair_into_kernel(const Engine::HandoverState& h, const char** step = nullptr);
// The same with the bytes from snd_una given apart (h.data is not read): fastnetd maps
// them from the client's memfd.
int repair_into_kernel(const Engine::HandoverState& h, const uint8_t* data, size_t len,
                       const char** step = nullptr);

}  // namespace fastnet
