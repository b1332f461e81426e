// TCP header and options: TcpView::parse (called by parse_frame), parse_tcp_options,
// emit_tcp_header (called by emit_tcp_frame). Option layout on emit follows Linux's
// tcp_options_write() so captures look familiar and every option stays 4-byte aligned.
#include "stack/wire/tcp.hpp"

#include <algorithm>

#include "stack/wire/bytes.hpp"

namespace fastnet {

bool operator==(const TcpOptions& a, const TcpOptions& b) {
    if (a.mss != b.mss || a.wscale != b.wscale || a.sack_permitted != b.sack_permitted ||
        a.ts != b.ts || a.sack_count != b.sack_count)
        return false;
    for (size_t i = 0; i < a.sack_count && i < kTcpMaxSackBlocks; ++i)
        if (!(a.sack[i] == b.sack[i])) return false;
    return true;
}

bool parse_tcp_options(const uint8_t* o, size_t len, TcpOptions& out) {
    size_t i = 0;
    while (i < len) {
        uint8_t kind = o[i];
        if (kind == kTcpOptEol) break;
        if (kind == kTcpOptNop) {
            ++i;
            continue;
        }
        if (i + 1 >= len) return false;   // kind without its length byte
        size_t olen = o[i + 1];
        if (olen < 2 || olen > len - i) return false;
        const uint8_t* v = o + i + 2;
        switch (kind) {
        case kTcpOptMss:
            if (olen != 4) return false;
            out.mss = load_be16(v);
            break;
        case kTcpOptWscale:
            if (olen != 3) return false;
            // RFC 7323 2.3: a shift above 14 MUST be treated as 14.
            out.wscale = std::min<uint8_t>(v[0], kTcpMaxWscale);
            break;
        case kTcpOptSackPermitted:
            if (olen != 2) return false;
            out.sack_permitted = true;
            break;
        case kTcpOptSack: {
            size_t n = (olen - 2) / 8;
            if (olen < 10 || (olen - 2) % 8 != 0 || n > kTcpMaxSackBlocks) return false;
            out.sack_count = static_cast<uint8_t>(n);
            for (size_t k = 0; k < n; ++k) {
                out.sack[k].left = Seq(load_be32(v + 8 * k));
                out.sack[k].right = Seq(load_be32(v + 8 * k + 4));
            }
            break;
        }
        case kTcpOptTimestamps:
            if (olen != 10) return false;
            out.ts = Timestamps{load_be32(v), load_be32(v + 4)};
            break;
        default:
            break;   // RFC 9293 3.1: unknown options are skipped by their length
        }
        i += olen;
    }
    return true;
}

Result<TcpView> TcpView::parse(const uint8_t* data, size_t len) {
    if (len < kTcpMinHeaderLen) return ParseError::Truncated;
    size_t hl = static_cast<size_t>(data[12] >> 4) * 4;
    if (hl < kTcpMinHeaderLen || hl > len) return ParseError::BadTcpHeader;
    TcpView t;
    if (!parse_tcp_options(data + kTcpMinHeaderLen, hl - kTcpMinHeaderLen, t.opts))
        return ParseError::BadTcpOptions;
    t.src_port = load_be16(data);
    t.dst_port = load_be16(data + 2);
    t.seq = Seq(load_be32(data + 4));
    t.ack = Seq(load_be32(data + 8));
    t.header_len = static_cast<uint8_t>(hl);
    t.flags = data[13];
    t.window = load_be16(data + 14);
    t.checksum = load_be16(data + 16);
    t.urgent = load_be16(data + 18);
    t.header = data;
    t.payload = data + hl;
    t.payload_len = len - hl;
    return t;
}

namespace {

// Bytes of everything but SACK blocks, each padded to 4 as Linux lays them out.
size_t fixed_options_len(const TcpOptions& o) {
    size_t n = 0;
    if (o.mss) n += 4;
    if (o.ts) n += 12;                        // SACK-perm+TS or NOP,NOP,TS
    else if (o.sack_permitted) n += 4;        // NOP,NOP,SACK-perm
    if (o.wscale) n += 4;                     // NOP,WS
    return n;
}

} // namespace

uint8_t tcp_sack_blocks_that_fit(const TcpOptions& o) {
    size_t room = kTcpMaxOptionsLen - fixed_options_len(o);
    size_t fit = room >= 12 ? (room - 4) / 8 : 0;
    return static_cast<uint8_t>(std::min<size_t>({o.sack_count, kTcpMaxSackBlocks, fit}));
}

size_t tcp_options_len(const TcpOptions& o) {
    size_t n = tcp_sack_blocks_that_fit(o);
    return fixed_options_len(o) + (n ? 4 + 8 * n : 0);
}

size_t emit_tcp_header(uint8_t* buf, size_t cap, const TcpHeaderSpec& s) {
    const TcpOptions& o = s.opts;
    size_t hl = tcp_header_len(s);
    if (cap < hl) return 0;
    store_be16(buf, s.src_port);
    store_be16(buf + 2, s.dst_port);
    store_be32(buf + 4, s.seq.v);
    store_be32(buf + 8, s.ack.v);
    buf[12] = static_cast<uint8_t>((hl / 4) << 4);
    buf[13] = s.flags;
    store_be16(buf + 14, s.window);
    store_be16(buf + 16, 0);
    store_be16(buf + 18, s.urgent);

    uint8_t* p = buf + kTcpMinHeaderLen;
    if (o.mss) {
        p[0] = kTcpOptMss;
        p[1] = 4;
        store_be16(p + 2, *o.mss);
        p += 4;
    }
    if (o.ts) {
        if (o.sack_permitted) {
            p[0] = kTcpOptSackPermitted;
            p[1] = 2;
        } else {
            p[0] = kTcpOptNop;
            p[1] = kTcpOptNop;
        }
        p[2] = kTcpOptTimestamps;
        p[3] = 10;
        store_be32(p + 4, o.ts->tsval);
        store_be32(p + 8, o.ts->tsecr);
        p += 12;
    } else if (o.sack_permitted) {
        p[0] = kTcpOptNop;
        p[1] = kTcpOptNop;
        p[2] = kTcpOptSackPermitted;
        p[3] = 2;
        p += 4;
    }
    if (o.wscale) {
        p[0] = kTcpOptNop;
        p[1] = kTcpOptWscale;
        p[2] = 3;
        p[3] = *o.wscale;
        p += 4;
    }
    if (size_t n = tcp_sack_blocks_that_fit(o)) {
        p[0] = kTcpOptNop;
        p[1] = kTcpOptNop;
        p[2] = kTcpOptSack;
        p[3] = static_cast<uint8_t>(2 + 8 * n);
        p += 4;
        for (size_t k = 0; k < n; ++k) {
            store_be32(p, o.sack[k].left.v);
            store_be32(p + 4, o.sack[k].right.v);
            p += 8;
        }
    }
    return hl;
}

} // namespace fastnet
