// TCP headers and options (RFC 9293 3.1, RFC 7323 window scale + timestamps, RFC 2018
// SACK): the checked TcpView and emit_tcp_header(). parse_frame() calls TcpView::parse
// on the IPv4 payload; the TCB reads TcpView; emit_tcp_frame() writes via TcpHeaderSpec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "stack/wire/result.hpp"
#include "stack/wire/seq.hpp"

namespace fastnet {

// Flag bits of byte 13 (RFC 9293 3.1; ECE/CWR from RFC 3168).
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;
inline constexpr uint8_t kTcpEce = 0x40;
inline constexpr uint8_t kTcpCwr = 0x80;

inline constexpr size_t kTcpMinHeaderLen = 20;
inline constexpr size_t kTcpMaxOptionsLen = 40;   // data offset is 4 bits: 60 - 20
inline constexpr uint8_t kTcpMaxWscale = 14;      // RFC 7323 2.3
inline constexpr uint8_t kTcpMaxSackBlocks = 4;   // 2 + 8n <= 40

// Option kinds (IANA "TCP Option Kind Numbers").
inline constexpr uint8_t kTcpOptEol = 0;
inline constexpr uint8_t kTcpOptNop = 1;
inline constexpr uint8_t kTcpOptMss = 2;
inline constexpr uint8_t kTcpOptWscale = 3;
inline constexpr uint8_t kTcpOptSackPermitted = 4;
inline constexpr uint8_t kTcpOptSack = 5;
inline constexpr uint8_t kTcpOptTimestamps = 8;

struct SackBlock {
    Seq left, right;   // [left, right): RFC 2018 3
    friend bool operator==(const SackBlock&, const SackBlock&) = default;
};

struct Timestamps {
    uint32_t tsval = 0, tsecr = 0;
    friend bool operator==(const Timestamps&, const Timestamps&) = default;
};

struct TcpOptions {
    std::optional<uint16_t> mss;
    std::optional<uint8_t> wscale;      // already clamped to kTcpMaxWscale on parse
    bool sack_permitted = false;
    std::optional<Timestamps> ts;
    uint8_t sack_count = 0;
    SackBlock sack[kTcpMaxSackBlocks];

    friend bool operator==(const TcpOptions& a, const TcpOptions& b);
};

// Parses the option bytes of a header (after the 20 fixed bytes). Returns false when
// malformed: length 0 or 1 on a non-NOP/EOL kind, an option overrunning the area, or a
// known kind with the wrong length (MSS 4, WS 3, SACK-permitted 2, SACK 2+8n with
// 1<=n<=4, TS 10). Unknown kinds are skipped by their length; EOL ends the list.
// The last occurrence of a repeated option wins.
bool parse_tcp_options(const uint8_t* opts, size_t len, TcpOptions& out);

struct TcpView {
    uint16_t src_port = 0, dst_port = 0;
    Seq seq, ack;
    uint8_t header_len = 0;   // data offset * 4
    uint8_t flags = 0;        // kTcp* bits
    uint16_t window = 0;      // raw field, not scaled
    uint16_t checksum = 0;
    uint16_t urgent = 0;
    TcpOptions opts;
    const uint8_t* header = nullptr;
    const uint8_t* payload = nullptr;
    size_t payload_len = 0;

    bool has(uint8_t f) const { return (flags & f) == f; }
    // Sequence space the segment occupies: payload + SYN + FIN (RFC 9293 3.4).
    uint32_t seg_len() const {
        return static_cast<uint32_t>(payload_len) + ((flags & kTcpSyn) ? 1 : 0) +
               ((flags & kTcpFin) ? 1 : 0);
    }

    // `data` is the whole segment (header + payload). Errors: Truncated (< 20 bytes),
    // BadTcpHeader (data offset < 5 or past len), BadTcpOptions. Does not check the
    // checksum: that needs the pseudo-header (tcp_checksum_ok in checksum.hpp).
    static Result<TcpView> parse(const uint8_t* data, size_t len);
};

struct TcpHeaderSpec {
    uint16_t src_port = 0, dst_port = 0;
    Seq seq, ack;
    uint8_t flags = 0;
    uint16_t window = 0;      // already scaled down by the sender's shift
    uint16_t urgent = 0;
    TcpOptions opts;          // every option present is written
};

// How many of opts.sack_count SACK blocks emit_tcp_header() writes: as many as fit in
// 40 bytes next to the other options (3 with timestamps, 4 without).
uint8_t tcp_sack_blocks_that_fit(const TcpOptions& opts);

// Bytes the options of `opts` take when emitted (a multiple of 4, at most 40). SACK
// blocks that do not fit in 40 bytes are left out (as Linux does when TS is on).
size_t tcp_options_len(const TcpOptions& opts);

// Header length for the spec: 20 + tcp_options_len(spec.opts).
inline size_t tcp_header_len(const TcpHeaderSpec& spec) {
    return kTcpMinHeaderLen + tcp_options_len(spec.opts);
}

// Writes header + options in Linux's layout: MSS; SACK-permitted+TS (or NOP,NOP,TS or
// NOP,NOP,SACK-permitted); NOP,WS; NOP,NOP,SACK blocks. The checksum field is written as
// 0 (emit_tcp_frame fills it). Returns the header length, or 0 when cap is too small.
size_t emit_tcp_header(uint8_t* buf, size_t cap, const TcpHeaderSpec& spec);

} // namespace fastnet
