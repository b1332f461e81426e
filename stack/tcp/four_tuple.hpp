// The connection key: {local ip, local port, remote ip, remote port}, host byte order.
// Used by the flow table (flow_table.hpp), RFC 6528 ISNs and SYN cookies (isn.hpp).
#pragma once

#include <cstdint>

namespace fastnet {

struct FourTuple {
    uint32_t local_ip = 0;
    uint32_t remote_ip = 0;
    uint16_t local_port = 0;
    uint16_t remote_port = 0;
    friend constexpr bool operator==(const FourTuple&, const FourTuple&) = default;
};

}  // namespace fastnet
