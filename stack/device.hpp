// The device interface: how an engine gets Ethernet frames in and out.
// Implementations: stack/xdp/ (AF_XDP socket), stack/sim_link (simulated link for tests).
// Engine::poll() → rx_burst() → TCP input → rx_release(); TCP output → tx_alloc() →
// fill → tx_submit() → tx_flush() once per poll.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastnet {

// Monotonic time in nanoseconds. The TCP code never reads a clock: time is an argument.
using TimeNs = uint64_t;

// One frame buffer lent by the device. `handle` is the device's own reference (a UMEM
// address for AF_XDP); the engine passes it back unchanged.
struct Frame {
    uint8_t* data = nullptr;
    uint32_t len = 0;       // bytes of frame in data
    uint64_t handle = 0;
    // TX with tx_csum_offload(): the L4 checksum is the device's to finish, from byte
    // csum_start (the TCP header) into the field csum_offset bytes further; the field
    // holds the pseudo-header sum. 0: the frame is complete.
    uint16_t csum_start = 0;
    uint16_t csum_offset = 0;
};

class Device {
public:
    virtual ~Device() = default;

    // Up to n received frames into out[]; returns how many. The frames stay owned by
    // the caller until rx_release().
    virtual size_t rx_burst(Frame* out, size_t n) = 0;
    // Whether received frames are waiting for rx_burst(), answered without a syscall
    // (a socket call that reports state takes them in first). false: none, or unknown.
    virtual bool rx_ready() const { return false; }
    virtual void rx_release(const Frame* frames, size_t n) = 0;

    // Up to n empty TX buffers of tx_capacity() bytes each. Each must come back either
    // through tx_submit() (with len set) or tx_abandon().
    virtual size_t tx_alloc(Frame* out, size_t n) = 0;
    virtual void tx_submit(const Frame* frames, size_t n) = 0;
    virtual void tx_abandon(const Frame* frames, size_t n) = 0;
    // Makes submitted frames go out (one kick per batch). Called once per poll.
    virtual void tx_flush() = 0;

    virtual uint32_t tx_capacity() const = 0;
    // Whether TX frames may leave their TCP checksum to the device (Frame::csum_start),
    // as a kernel socket leaves it to a NIC with TX checksum offload.
    virtual bool tx_csum_offload() const { return false; }
    // An fd that becomes readable when frames arrive (to sleep on), or -1.
    virtual int wait_fd() const { return -1; }
};

}  // namespace fastnet
