// Interface discovery over rtnetlink: RTM_GETLINK and RTM_GETADDR dumps, RX queue count
// from sysfs. list_interfaces() is the one reader; find_interface(), default_interface()
// and engine_config_from_kernel() select from it. Start-up only.
#include "stack/net/interface.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <linux/if_arp.h>
#include <linux/if_link.h>

#include "stack/net/netlink.hpp"
#include "stack/net/route.hpp"

namespace fastnet {
namespace {

// IFLA_LINKINFO { IFLA_INFO_KIND "veth" ... }. The kind comes with the link dump, answers
// for this process's namespace (sysfs may show another: see count_rx_queues) and needs
// no ethtool socket; /sys/class/net/IF/device being absent would only say "virtual".
void parse_link_kind(const rtattr* linkinfo, InterfaceInfo* info) {
    RtAttrs nested(RtAttrs::data(linkinfo), RtAttrs::len(linkinfo));
    while (const rtattr* a = nested.next()) {
        if (a->rta_type != IFLA_INFO_KIND) continue;
        size_t n = strnlen(static_cast<const char*>(RtAttrs::data(a)), RtAttrs::len(a));
        if (n >= sizeof info->kind) n = sizeof info->kind - 1;
        std::memcpy(info->kind, RtAttrs::data(a), n);
        info->kind[n] = '\0';
    }
}

bool parse_link(const nlmsghdr* h, InterfaceInfo* info) {
    if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg)))
        return false;
    auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    *info = InterfaceInfo{};
    info->ifindex = ifi->ifi_index;
    info->up = ifi->ifi_flags & IFF_UP;
    info->running = ifi->ifi_flags & IFF_RUNNING;
    info->loopback = ifi->ifi_flags & IFF_LOOPBACK;
    uint32_t num_rx = 0;
    RtAttrs attrs(IFLA_RTA(ifi), h->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg)));
    while (const rtattr* a = attrs.next()) {
        switch (a->rta_type) {
            case IFLA_IFNAME: {
                size_t n = RtAttrs::len(a);
                if (n >= IFNAMSIZ) n = IFNAMSIZ - 1;
                std::memcpy(info->name, RtAttrs::data(a), n);
                info->name[n] = '\0';
                break;
            }
            case IFLA_ADDRESS:
                if (ifi->ifi_type == ARPHRD_ETHER && RtAttrs::get(a, info->mac, 6))
                    info->has_mac = true;
                break;
            case IFLA_MTU: RtAttrs::get(a, &info->mtu, 4); break;
            case IFLA_NUM_RX_QUEUES: RtAttrs::get(a, &num_rx, 4); break;
            case IFLA_LINKINFO: parse_link_kind(a, info); break;
            default: break;
        }
    }
    info->rx_queues = num_rx;
    return true;
}

// sysfs lists the queues in use (real_num_rx_queues), netlink only how many were
// allocated; prefer sysfs, but only when it shows this namespace's device (a process
// that entered a namespace with setns() still sees the old /sys).
void count_rx_queues(InterfaceInfo* info) {
    char path[128];
    std::snprintf(path, sizeof path, "/sys/class/net/%s/ifindex", info->name);
    FILE* f = std::fopen(path, "re");
    if (!f) return;
    int idx = -1;
    bool same = std::fscanf(f, "%d", &idx) == 1 && idx == info->ifindex;
    std::fclose(f);
    if (!same) return;
    std::snprintf(path, sizeof path, "/sys/class/net/%s/queues", info->name);
    DIR* d = opendir(path);
    if (!d) return;
    uint32_t n = 0;
    while (dirent* e = readdir(d))
        if (std::strncmp(e->d_name, "rx-", 3) == 0) ++n;
    closedir(d);
    if (n) info->rx_queues = n;
}

struct AddrCtx {
    std::vector<InterfaceInfo>* list;
};

bool parse_addr(const nlmsghdr* h, void* p) {
    auto* ctx = static_cast<AddrCtx*>(p);
    if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg)))
        return true;
    auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    if (ifa->ifa_family != AF_INET) return true;
    uint32_t local = 0, address = 0;
    bool has_local = false, has_address = false;
    RtAttrs attrs(IFA_RTA(ifa), h->nlmsg_len - NLMSG_LENGTH(sizeof(ifaddrmsg)));
    while (const rtattr* a = attrs.next()) {
        // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
        if (a->rta_type == IFA_LOCAL) has_local = RtAttrs::get(a, &local, 4);
        if (a->rta_type == IFA_ADDRESS) has_address = RtAttrs::get(a, &address, 4);
    }
    if (!has_local && !has_address) return true;
    Ipv4Prefix pfx{ntohl(has_local ? local : address), ifa->ifa_prefixlen};
    for (auto& info : *ctx->list)
        if (info.ifindex == static_cast<int>(ifa->ifa_index)) info.ipv4.push_back(pfx);
    return true;
}

int dump(NetlinkSocket& nl, uint16_t type, size_t hdr_len, uint8_t family,
         NetlinkSocket::Callback cb, void* ctx) {
    alignas(nlmsghdr) uint8_t buf[NLMSG_SPACE(sizeof(ifinfomsg))] = {};
    static_assert(sizeof(ifinfomsg) >= sizeof(ifaddrmsg));
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    h->nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(hdr_len));
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_DUMP;
    // ifi_family and ifa_family are both the first byte of their header.
    *static_cast<uint8_t*>(NLMSG_DATA(h)) = family;
    return nl.transact(h, cb, ctx);
}

}  // namespace

int list_interfaces(std::vector<InterfaceInfo>* out) {
    out->clear();
    NetlinkSocket nl;
    int rc = nl.open();
    if (rc < 0) return rc;
    rc = dump(nl, RTM_GETLINK, sizeof(ifinfomsg), AF_UNSPEC, [](const nlmsghdr* h, void* p) {
        InterfaceInfo info;
        if (parse_link(h, &info)) static_cast<std::vector<InterfaceInfo>*>(p)->push_back(info);
        return true;
    }, out);
    if (rc < 0) return rc;
    AddrCtx ctx{out};
    rc = dump(nl, RTM_GETADDR, sizeof(ifaddrmsg), AF_INET, parse_addr, &ctx);
    if (rc < 0) return rc;
    for (auto& info : *out) count_rx_queues(&info);
    return 0;
}

int find_interface(const char* name, InterfaceInfo* out) {
    if (!name || !*name || std::strlen(name) >= IFNAMSIZ) return -EINVAL;
    std::vector<InterfaceInfo> all;
    int rc = list_interfaces(&all);
    if (rc < 0) return rc;
    for (auto& info : all) {
        if (std::strcmp(info.name, name) == 0) {
            *out = std::move(info);
            return 0;
        }
    }
    return -ENODEV;
}

int find_interface(int ifindex, InterfaceInfo* out) {
    std::vector<InterfaceInfo> all;
    int rc = list_interfaces(&all);
    if (rc < 0) return rc;
    for (auto& info : all) {
        if (info.ifindex == ifindex) {
            *out = std::move(info);
            return 0;
        }
    }
    return -ENODEV;
}

int default_interface(InterfaceInfo* out) {
    RouteInfo def;
    if (default_route(&def) == 0 && def.oif > 0) return find_interface(def.oif, out);
    std::vector<InterfaceInfo> all;
    int rc = list_interfaces(&all);
    if (rc < 0) return rc;
    InterfaceInfo* only = nullptr;
    for (auto& info : all) {
        if (info.loopback || !info.up) continue;
        if (only) return -EEXIST;
        only = &info;
    }
    if (!only) return -ENODEV;
    *out = std::move(*only);
    return 0;
}

int engine_config_from_kernel(const InterfaceInfo& ifc, EngineConfig* cfg) {
    if (!ifc.has_mac) return -EINVAL;
    if (ifc.ipv4.empty()) return -EADDRNOTAVAIL;
    std::memcpy(cfg->mac, ifc.mac, 6);
    cfg->ip = ifc.ipv4.front().ip;
    cfg->netmask = prefix_to_netmask(ifc.ipv4.front().prefix_len);
    if (ifc.mtu > 0 && ifc.mtu <= 0xffff) cfg->mtu = static_cast<uint16_t>(ifc.mtu);
    RouteInfo def;
    cfg->gateway = default_route(&def, ifc.ifindex) == 0 ? def.gateway : 0;
    // Only a veth hands over a kernel peer's CHECKSUM_PARTIAL segments unfinished; on a
    // NIC the same field value is a corrupted segment.
    cfg->accept_csum_partial = std::strcmp(ifc.kind, "veth") == 0;
    // The network namespace's net.ipv4.tcp_notsent_lowat (Linux: 4294967295, no limit).
    if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_notsent_lowat", "re")) {
        unsigned long v = 0;
        if (std::fscanf(f, "%lu", &v) == 1 && v > 0) cfg->notsent_lowat = v > ~0u ? ~0u : uint32_t(v);
        std::fclose(f);
    }
    return 0;
}

}  // namespace fastnet
