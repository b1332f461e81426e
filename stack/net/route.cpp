// Route lookups over rtnetlink: RTM_GETROUTE for one destination, RTM_GETROUTE dumps of
// the main table for the default route and for an interface's specific routes. Called at
// start-up, per connect() and on route changes, never per packet.
#include "stack/net/route.hpp"

#include <arpa/inet.h>
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "stack/net/netlink.hpp"

namespace fastnet {
namespace {

struct RouteMsg {
    bool ok = false;
    RouteInfo r;
    uint32_t dst_len = 0;
    uint32_t priority = 0;
};

// An RTM_GETROUTE dump request for IPv4.
struct DumpRequest {
    nlmsghdr h{NLMSG_LENGTH(sizeof(rtmsg)), RTM_GETROUTE, NLM_F_DUMP, 0, 0};
    rtmsg rt{};
    DumpRequest() { rt.rtm_family = AF_INET; }
};
static_assert(offsetof(DumpRequest, rt) == NLMSG_HDRLEN);

// Reads an RTM_NEWROUTE message (AF_INET only) into m.
bool parse_route(const nlmsghdr* h, RouteMsg* m) {
    if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg)))
        return false;
    auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(h));
    if (rt->rtm_family != AF_INET) return false;
    *m = RouteMsg{};
    m->r.type = rt->rtm_type;
    m->r.table = rt->rtm_table;
    m->dst_len = rt->rtm_dst_len;
    RtAttrs attrs(RTM_RTA(rt), h->nlmsg_len - NLMSG_LENGTH(sizeof(rtmsg)));
    uint32_t v = 0;
    while (const rtattr* a = attrs.next()) {
        switch (a->rta_type) {
            case RTA_DST: if (RtAttrs::get(a, &v, 4)) m->r.dst = ntohl(v); break;
            case RTA_GATEWAY: if (RtAttrs::get(a, &v, 4)) m->r.gateway = ntohl(v); break;
            case RTA_PREFSRC: if (RtAttrs::get(a, &v, 4)) m->r.prefsrc = ntohl(v); break;
            case RTA_OIF: if (RtAttrs::get(a, &v, 4)) m->r.oif = static_cast<int>(v); break;
            case RTA_TABLE: if (RtAttrs::get(a, &v, 4)) m->r.table = v; break;
            case RTA_PRIORITY: if (RtAttrs::get(a, &v, 4)) m->priority = v; break;
            default: break;
        }
    }
    m->ok = true;
    return true;
}

}  // namespace

int lookup_route(uint32_t dst, RouteInfo* out) {
    NetlinkSocket nl;
    int rc = nl.open();
    if (rc < 0) return rc;
    alignas(nlmsghdr) uint8_t buf[NLMSG_SPACE(sizeof(rtmsg)) + 64] = {};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    h->nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    h->nlmsg_type = RTM_GETROUTE;
    auto* rt = static_cast<rtmsg*>(NLMSG_DATA(h));
    rt->rtm_family = AF_INET;
    rt->rtm_dst_len = 32;
    uint32_t dst_be = htonl(dst);
    nl_put_attr(h, sizeof buf, RTA_DST, &dst_be, 4);

    RouteMsg m;
    rc = nl.transact(h, [](const nlmsghdr* r, void* ctx) {
        parse_route(r, static_cast<RouteMsg*>(ctx));
        return false;
    }, &m);
    if (rc < 0) return rc;
    if (!m.ok) return -EPROTO;
    switch (m.r.type) {
        case RTN_UNREACHABLE: return -EHOSTUNREACH;
        case RTN_PROHIBIT: return -EACCES;
        case RTN_BLACKHOLE: return -EINVAL;
        default: break;
    }
    *out = m.r;
    out->dst = dst;
    out->next_hop = m.r.gateway ? m.r.gateway : dst;
    return 0;
}

int interface_routes(int oif, std::vector<Ipv4Route>* out) {
    NetlinkSocket nl;
    int rc = nl.open();
    if (rc < 0) return rc;
    DumpRequest req;
    nlmsghdr* h = &req.h;
    struct Ctx { int oif; std::vector<Ipv4Route> routes; } ctx{oif, {}};
    rc = nl.transact(h, [](const nlmsghdr* r, void* p) {
        auto* c = static_cast<Ctx*>(p);
        RouteMsg m;
        if (!parse_route(r, &m) || m.dst_len == 0 || m.dst_len > 32 || m.r.table != RT_TABLE_MAIN ||
            m.r.type != RTN_UNICAST || m.r.oif != c->oif)
            return true;
        uint32_t mask = m.dst_len == 32 ? ~0u : ~(~0u >> m.dst_len);
        c->routes.push_back({m.r.dst & mask, static_cast<uint8_t>(m.dst_len), m.r.gateway, m.priority});
        return true;
    }, &ctx);
    if (rc < 0) return rc;
    std::sort(ctx.routes.begin(), ctx.routes.end(), [](const Ipv4Route& a, const Ipv4Route& b) {
        return a.len != b.len ? a.len > b.len : a.metric < b.metric;
    });
    *out = std::move(ctx.routes);
    return 0;
}

uint32_t route_next_hop(const std::vector<Ipv4Route>& routes, uint32_t dst) {
    for (const Ipv4Route& r : routes) {
        uint32_t mask = r.len == 32 ? ~0u : ~(~0u >> r.len);
        if ((dst & mask) == r.prefix) return r.gateway ? r.gateway : dst;
    }
    return 0;
}

int default_route(RouteInfo* out, int oif) {
    NetlinkSocket nl;
    int rc = nl.open();
    if (rc < 0) return rc;
    DumpRequest req;
    nlmsghdr* h = &req.h;

    struct Ctx { int oif = 0; bool found = false; RouteMsg best; } ctx;
    ctx.oif = oif;
    rc = nl.transact(h, [](const nlmsghdr* r, void* p) {
        auto* c = static_cast<Ctx*>(p);
        RouteMsg m;
        if (!parse_route(r, &m) || m.dst_len != 0 || m.r.table != RT_TABLE_MAIN ||
            m.r.type != RTN_UNICAST || (c->oif && m.r.oif != c->oif))
            return true;
        if (!c->found || m.priority < c->best.priority) {
            c->best = m;
            c->found = true;
        }
        return true;
    }, &ctx);
    if (rc < 0) return rc;
    if (!ctx.found) return -ENOENT;
    *out = ctx.best.r;
    out->dst = 0;
    out->next_hop = out->gateway;
    return 0;
}

}  // namespace fastnet
