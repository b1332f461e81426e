// Routes from the kernel over rtnetlink: which next hop and interface a destination goes
// through (RTM_GETROUTE for the address, so the kernel's own FIB lookup, policy rules
// included, decides), and the main table's default route.
// Runtime start-up / connect() to an address off the engine's subnet → lookup_route().
#pragma once

#include <vector>

#include <cstdint>

namespace fastnet {

struct RouteInfo {
    uint32_t dst = 0;          // the destination asked for (host order)
    uint32_t gateway = 0;      // 0 when the destination is on-link
    uint32_t next_hop = 0;     // what to resolve to a MAC: gateway, or dst when on-link
    uint32_t prefsrc = 0;      // the source address the kernel would pick; 0 when none
    int oif = 0;               // output interface index
    uint8_t type = 0;          // RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST ...
    uint32_t table = 0;        // RT_TABLE_MAIN ...
    bool on_link() const { return gateway == 0; }
};

// The kernel's answer for one destination. 0 or -errno: -ENETUNREACH without a route,
// -EHOSTUNREACH / -EACCES / -EINVAL for unreachable / prohibit / blackhole routes.
int lookup_route(uint32_t dst, RouteInfo* out);

// The default route (0.0.0.0/0) of the main table with the lowest metric, restricted to
// output interface `oif` unless it is 0. dst is 0, next_hop the gateway (or 0 for an
// on-link default such as a point-to-point link). -ENOENT when there is none.
int default_route(RouteInfo* out, int oif = 0);

// A route of the main table through one interface, more specific than the default.
struct Ipv4Route {
    uint32_t prefix = 0;       // host order, masked
    uint8_t len = 0;           // 1..32
    uint32_t gateway = 0;      // 0: on-link (the destination itself is the next hop)
    uint32_t metric = 0;
};
// Every unicast route of the main table with output interface oif and a prefix length
// of at least 1, sorted longest prefix first, then lowest metric. 0 or -errno.
int interface_routes(int oif, std::vector<Ipv4Route>* out);
// The next hop for dst by longest prefix among routes (sorted as interface_routes
// leaves them); 0 when none matches.
uint32_t route_next_hop(const std::vector<Ipv4Route>& routes, uint32_t dst);

}  // namespace fastnet
