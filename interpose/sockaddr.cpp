// sockaddr <-> engine Endpoint: IPv4, and IPv4-mapped IPv6 for dual-stack sockets.
// Used by fastsock.cpp (bind, connect, accept, getsockname/getpeername).
#include <algorithm>
#include <arpa/inet.h>
#include <cstring>

#include "interpose/fdtable.hpp"

namespace fastnet::ipose {

bool sockaddr_to_endpoint(const sockaddr* sa, socklen_t len, Endpoint* out, bool* mapped) {
    if (!sa) return false;
    *mapped = false;
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        out->ip = ntohl(in->sin_addr.s_addr);
        out->port = ntohs(in->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            uint32_t v4;
            memcpy(&v4, &in6->sin6_addr.s6_addr[12], 4);
            out->ip = ntohl(v4);
            out->port = ntohs(in6->sin6_port);
            *mapped = true;
            return true;
        }
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
            // "::" binds both families; the IPv4 half is the engine's.
            out->ip = 0;
            out->port = ntohs(in6->sin6_port);
            return true;
        }
    }
    return false;
}

void endpoint_to_sockaddr(int family, Endpoint ep, sockaddr* sa, socklen_t* len) {
    sockaddr_storage ss{};
    socklen_t full;
    if (family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(ep.port);
        if (ep.ip != 0) {
            in6->sin6_addr.s6_addr[10] = 0xff;
            in6->sin6_addr.s6_addr[11] = 0xff;
            uint32_t v4 = htonl(ep.ip);
            memcpy(&in6->sin6_addr.s6_addr[12], &v4, 4);
        }
        full = sizeof(sockaddr_in6);
    } else {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        in->sin_family = AF_INET;
        in->sin_port = htons(ep.port);
        in->sin_addr.s_addr = htonl(ep.ip);
        full = sizeof(sockaddr_in);
    }
    if (!sa || !len) return;
    // As the kernel does: copy what fits, report the full length.
    memcpy(sa, &ss, std::min<socklen_t>(*len, full));
    *len = full;
}

bool is_loopback(const sockaddr* sa, socklen_t len) {
    if (!sa) return false;
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in))
        return (ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        auto* a = &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

}  // namespace fastnet::ipose
