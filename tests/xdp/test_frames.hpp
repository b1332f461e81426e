// Hand-built test frames for the steering tests: Ethernet (+VLAN tags) / IPv4 (+options,
// fragment bits) / TCP, with knobs to break each header. Independent of stack/wire so a
// parser bug there cannot hide a steering bug here.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <vector>

namespace fastnet::test {

struct FrameSpec {
    std::vector<uint16_t> vlan_tpids;  // outermost first, e.g. {0x88a8, 0x8100}
    uint16_t ethertype = 0x0800;
    uint8_t ip_version = 4;
    uint8_t ihl = 5;                   // words; >5 adds NOP option bytes
    uint16_t frag_off = 0;             // host order: flags<<13 | offset
    uint8_t protocol = 6;
    uint32_t saddr = htonl(0x0ad50002);  // 10.213.0.2
    uint32_t daddr = htonl(0x0ad50001);  // 10.213.0.1
    uint16_t sport = 40000;
    uint16_t dport = 80;
    uint8_t doff = 5;
    uint8_t tcp_flags = 0x02;          // SYN
    uint32_t seq = 0;                  // the TCP sequence number (a SYN's ISN)
    size_t l4_len = 20;                // bytes after the IPv4 header
};

inline void put16(std::vector<uint8_t>& b, uint16_t v)
{
    b.push_back(uint8_t(v >> 8));
    b.push_back(uint8_t(v));
}

inline std::vector<uint8_t> build_frame(const FrameSpec& s)
{
    std::vector<uint8_t> b;
    for (int i = 0; i < 6; i++) b.push_back(0x02);   // dst MAC
    for (int i = 0; i < 6; i++) b.push_back(0x04);   // src MAC
    for (uint16_t tpid : s.vlan_tpids) {
        put16(b, tpid);
        put16(b, 0x0064);  // TCI: VLAN 100
    }
    put16(b, s.ethertype);
    size_t ip = b.size();
    size_t ip_len = size_t(s.ihl) * 4;
    b.push_back(uint8_t(s.ip_version << 4 | (s.ihl & 0xf)));
    b.push_back(0);
    put16(b, uint16_t(ip_len + s.l4_len));
    put16(b, 1);
    put16(b, s.frag_off);
    b.push_back(64);
    b.push_back(s.protocol);
    put16(b, 0);  // checksum: the program does not check it
    const uint8_t* sa = reinterpret_cast<const uint8_t*>(&s.saddr);
    const uint8_t* da = reinterpret_cast<const uint8_t*>(&s.daddr);
    b.insert(b.end(), sa, sa + 4);
    b.insert(b.end(), da, da + 4);
    while (b.size() < ip + ip_len) b.push_back(1);  // IPv4 NOP options
    size_t tcp = b.size();
    put16(b, s.sport);
    put16(b, s.dport);
    put16(b, uint16_t(s.seq >> 16));
    put16(b, uint16_t(s.seq));
    for (int i = 0; i < 4; i++) b.push_back(0);     // ack
    b.push_back(uint8_t(s.doff << 4));
    b.push_back(s.tcp_flags);
    put16(b, 65535);
    put16(b, 0);
    put16(b, 0);
    while (b.size() < tcp + s.l4_len) b.push_back(0);
    b.resize(tcp + s.l4_len);
    return b;
}

}  // namespace fastnet::test
