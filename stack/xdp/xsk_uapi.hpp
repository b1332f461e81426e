// AF_XDP definitions newer than the build's <linux/if_xdp.h> (Debian bookworm ships
// Linux 6.1's): TX metadata, Linux 6.8; XDP_UMEM_TX_METADATA_LEN, 6.11. Same layout and
// values as include/uapi/linux/if_xdp.h; a kernel without them refuses the
// registration flag with EINVAL, and Umem::create() then registers without. Also the
// one helper that points libxdp's ring structs at rings fastnet mapped itself.
#pragma once

#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include <cstdint>

namespace fastnet::xsk_uapi {

// struct xdp_umem_reg with its last field (tx_metadata_len).
struct UmemReg {
    uint64_t addr;
    uint64_t len;
    uint32_t chunk_size;
    uint32_t headroom;
    uint32_t flags;
    uint32_t tx_metadata_len;
};
static_assert(sizeof(UmemReg) == 32);

inline constexpr uint32_t kUmemTxMetadataLen = 1u << 2;   // XDP_UMEM_TX_METADATA_LEN
inline constexpr uint32_t kDescTxMetadata = 1u << 1;      // xdp_desc.options: XDP_TX_METADATA
inline constexpr uint64_t kTxmdChecksum = 1u << 1;        // XDP_TXMD_FLAGS_CHECKSUM

// union xsk_tx_metadata, the request side: just before the frame's data.
struct TxMetadata {
    uint64_t flags;
    uint16_t csum_start;    // from the frame's first byte
    uint16_t csum_offset;   // from csum_start to the checksum field
    uint32_t pad;
    uint64_t launch_time;
};
static_assert(sizeof(TxMetadata) == 24);

// Points a libxdp ring cursor struct (xsk_ring_prod / xsk_ring_cons) at a ring mapped at
// base, o being its XDP_MMAP_OFFSETS entry. A producer's cached_cons runs a ring's size
// ahead of the consumer index (libxdp's convention, which its accessors rely on).
template <class Ring>
void point_ring(Ring& r, uint8_t* base, const xdp_ring_offset& o, uint32_t size, bool producer)
{
    r.mask = size - 1;
    r.size = size;
    r.producer = reinterpret_cast<uint32_t*>(base + o.producer);
    r.consumer = reinterpret_cast<uint32_t*>(base + o.consumer);
    r.flags = reinterpret_cast<uint32_t*>(base + o.flags);
    r.ring = base + o.desc;
    r.cached_prod = *r.producer;
    r.cached_cons = *r.consumer + (producer ? size : 0);
}

}  // namespace fastnet::xsk_uapi
