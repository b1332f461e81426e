// Handover of a live connection to the kernel (TCP_REPAIR); see handover.cpp.
#pragma once

#include "stack/engine.hpp"

namespace fastnet::ipose {

// A connected kernel socket (out of repair mode) that continues the connection h
// describes, its queues filled; or -errno (EPERM without CAP_NET_ADMIN). The caller
// steers the flow to the kernel, detaches it from the engine, and closes the fd when
// the connection is to end (the kernel then delivers the data and its FIN).
// step names the step that failed.
int repair_into_kernel(const Engine::HandoverState& h, const char** step = nullptr);

}  // namespace fastnet::ipose
