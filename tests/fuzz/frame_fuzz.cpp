// libFuzzer harness over parse_frame() (stack/wire/frame.*): arbitrary bytes must never
// crash or read out of bounds, and any frame that parses must re-emit through
// emit_tcp_frame() to a frame that parses back to the same fields and payload.
// Built with clang++ -fsanitize=fuzzer,address,undefined by tests/fuzz/meson.build.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "stack/wire/arp.hpp"
#include "stack/wire/frame.hpp"

using namespace fastnet;

namespace {

[[noreturn]] void mismatch(const char* what) {
    __builtin_printf("round-trip mismatch: %s\n", what);
    std::abort();
}

#define EXPECT(cond)                  \
    do {                              \
        if (!(cond)) mismatch(#cond); \
    } while (0)

TcpFrameSpec spec_from(const ParsedFrame& f) {
    TcpFrameSpec s;
    s.src_mac = f.eth.src;
    s.dst_mac = f.eth.dst;
    s.vlan_tpid = f.eth.vlan_tpid;
    s.vlan_tci = f.eth.vlan_tci;
    s.src_ip = f.ip.src;
    s.dst_ip = f.ip.dst;
    s.ip_id = f.ip.id;
    s.ttl = f.ip.ttl;
    s.tos = f.ip.tos;
    s.tcp.src_port = f.tcp.src_port;
    s.tcp.dst_port = f.tcp.dst_port;
    s.tcp.seq = f.tcp.seq;
    s.tcp.ack = f.tcp.ack;
    s.tcp.flags = f.tcp.flags;
    s.tcp.window = f.tcp.window;
    s.tcp.urgent = f.tcp.urgent;
    s.tcp.opts = f.tcp.opts;
    return s;
}

void round_trip(const ParsedFrame& f, size_t split_seed) {
    static uint8_t out[70000];   // bigger than any IPv4 datagram plus headers
    TcpFrameSpec s = spec_from(f);
    if (kIpv4MinHeaderLen + tcp_header_len(s.tcp) + f.tcp.payload_len > 0xffff) {
        // Re-laid-out options can make the datagram too big to exist: refused, not cut.
        EXPECT(emit_tcp_frame(out, sizeof out, s, f.tcp.payload, f.tcp.payload_len,
                              nullptr, 0) == 0);
        return;
    }
    size_t n1 = f.tcp.payload_len ? split_seed % (f.tcp.payload_len + 1) : 0;
    size_t n = emit_tcp_frame(out, sizeof out, s, f.tcp.payload, n1, f.tcp.payload + n1,
                              f.tcp.payload_len - n1);
    EXPECT(n == tcp_frame_len(s, f.tcp.payload_len));
    auto r = parse_frame(out, n, true);
    EXPECT(r.ok());
    const ParsedFrame& g = *r;
    EXPECT(g.eth.src == f.eth.src && g.eth.dst == f.eth.dst);
    EXPECT(g.eth.vlan_tpid == f.eth.vlan_tpid && g.eth.vlan_tci == f.eth.vlan_tci);
    EXPECT(g.ip.src == f.ip.src && g.ip.dst == f.ip.dst && g.ip.id == f.ip.id);
    EXPECT(g.ip.ttl == f.ip.ttl && g.ip.tos == f.ip.tos && g.ip.df);
    EXPECT(g.tcp.src_port == f.tcp.src_port && g.tcp.dst_port == f.tcp.dst_port);
    EXPECT(g.tcp.seq == f.tcp.seq && g.tcp.ack == f.tcp.ack);
    EXPECT(g.tcp.flags == f.tcp.flags && g.tcp.window == f.tcp.window);
    EXPECT(g.tcp.urgent == f.tcp.urgent);
    TcpOptions expect = f.tcp.opts;
    expect.sack_count = tcp_sack_blocks_that_fit(f.tcp.opts);
    EXPECT(g.tcp.opts == expect);
    EXPECT(g.tcp.payload_len == f.tcp.payload_len);
    EXPECT(std::memcmp(g.tcp.payload, f.tcp.payload, f.tcp.payload_len) == 0);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto strict = parse_frame(data, size, true);
    auto loose = parse_frame(data, size, false);
    if (strict.ok()) EXPECT(loose.ok());   // verification only ever removes frames
    // Partial mode adds exactly the frames whose only fault is a pseudo-header sum.
    auto partial = parse_frame(data, size, true, true);
    if (strict.ok()) EXPECT(partial.ok() && !partial->csum_partial);
    if (partial.ok()) EXPECT(loose.ok());
    if (partial.ok() && partial->csum_partial)
        EXPECT(!strict.ok() && strict.error() == ParseError::BadTcpChecksum);
    if (!strict.ok() && strict.error() != ParseError::BadTcpChecksum)
        EXPECT(!partial.ok() && partial.error() == strict.error());
    if (loose.ok()) round_trip(*loose, size * 31 + (size ? data[size - 1] : 0));

    if (auto e = EthernetView::parse(data, size); e && e->ethertype == kEthArp) {
        if (auto a = ArpView::parse(e->payload, e->payload_len)) {
            uint8_t buf[kArpLen];
            EXPECT(emit_arp(buf, sizeof buf, *a) == kArpLen);
            EXPECT(std::memcmp(buf, e->payload, kArpLen) == 0);
        }
    }
    return 0;
}
