// What the engine needs to know about its network interface, read from the kernel over
// rtnetlink (RTM_GETLINK, RTM_GETADDR): runtime start-up → find_interface() /
// default_interface() → engine_config_from_kernel() → EngineConfig.
#pragma once

#include <cstdint>
#include <net/if.h>
#include <vector>

#include "stack/engine.hpp"

namespace fastnet {

struct Ipv4Prefix {
    uint32_t ip = 0;           // host order
    uint8_t prefix_len = 0;
    friend bool operator==(const Ipv4Prefix&, const Ipv4Prefix&) = default;
};

struct InterfaceInfo {
    int ifindex = 0;
    char name[IFNAMSIZ] = {};
    uint8_t mac[6] = {};
    bool has_mac = false;      // false for loopback/tun-like devices without an Ethernet address
    uint32_t mtu = 0;
    bool up = false;           // administratively up (IFF_UP)
    bool running = false;      // carrier and operational (IFF_RUNNING)
    bool loopback = false;
    uint32_t rx_queues = 0;    // active RX queues; 0 when unknown
    // The link kind (IFLA_INFO_KIND: "veth", "bridge", "macvlan" ...); empty for a
    // physical device.
    char kind[16] = {};
    std::vector<Ipv4Prefix> ipv4;   // in the kernel's order; the first is the primary
};

// By name or by index. 0 or -errno (-ENODEV when there is no such interface).
int find_interface(const char* name, InterfaceInfo* out);
int find_interface(int ifindex, InterfaceInfo* out);

// The interface fastnet serves when none is configured: the one the default route goes
// through; without a default route, the only non-loopback interface that is up.
// -ENODEV when there is none, -EEXIST when several are up and none is the default route's.
int default_interface(InterfaceInfo* out);

// Every interface of the namespace (for diagnostics and tests). 0 or -errno.
int list_interfaces(std::vector<InterfaceInfo>* out);

// Fills mac, ip, netmask, mtu and gateway (the default route through this interface, 0
// when none) of cfg from the kernel's view of `ifc`, and accept_csum_partial for a veth
// (its peer's segments arrive with the pseudo-header sum as their checksum). -EADDRNOTAVAIL without an IPv4
// address, -EINVAL without an Ethernet address.
int engine_config_from_kernel(const InterfaceInfo& ifc, EngineConfig* cfg);

}  // namespace fastnet
