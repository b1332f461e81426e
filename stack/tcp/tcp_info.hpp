// struct tcp_info as Linux 6.18 fills it for getsockopt(TCP_INFO) (include/uapi/linux/tcp.h,
// 280 bytes). glibc's <netinet/tcp.h> still has the 104-byte layout of 2007, and an
// installed <linux/tcp.h> may be older than the running kernel; callers pass the size of
// the layout they know and get that much (engine.cpp Engine::getsockopt truncates).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastnet {

struct LinuxTcpInfo {
    uint8_t tcpi_state;
    uint8_t tcpi_ca_state;
    uint8_t tcpi_retransmits;
    uint8_t tcpi_probes;
    uint8_t tcpi_backoff;
    uint8_t tcpi_options;
    uint8_t tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4;
    uint8_t tcpi_delivery_rate_app_limited : 1, tcpi_fastopen_client_fail : 2;

    uint32_t tcpi_rto;              // all times in µs unless named otherwise
    uint32_t tcpi_ato;
    uint32_t tcpi_snd_mss;
    uint32_t tcpi_rcv_mss;

    uint32_t tcpi_unacked;          // segments
    uint32_t tcpi_sacked;
    uint32_t tcpi_lost;
    uint32_t tcpi_retrans;
    uint32_t tcpi_fackets;

    uint32_t tcpi_last_data_sent;   // ms
    uint32_t tcpi_last_ack_sent;    // Linux: always 0
    uint32_t tcpi_last_data_recv;   // ms
    uint32_t tcpi_last_ack_recv;    // ms

    uint32_t tcpi_pmtu;
    uint32_t tcpi_rcv_ssthresh;
    uint32_t tcpi_rtt;
    uint32_t tcpi_rttvar;
    uint32_t tcpi_snd_ssthresh;
    uint32_t tcpi_snd_cwnd;
    uint32_t tcpi_advmss;
    uint32_t tcpi_reordering;

    uint32_t tcpi_rcv_rtt;
    uint32_t tcpi_rcv_space;

    uint32_t tcpi_total_retrans;

    uint64_t tcpi_pacing_rate;
    uint64_t tcpi_max_pacing_rate;
    uint64_t tcpi_bytes_acked;
    uint64_t tcpi_bytes_received;
    uint32_t tcpi_segs_out;
    uint32_t tcpi_segs_in;

    uint32_t tcpi_notsent_bytes;
    uint32_t tcpi_min_rtt;
    uint32_t tcpi_data_segs_in;
    uint32_t tcpi_data_segs_out;

    uint64_t tcpi_delivery_rate;

    uint64_t tcpi_busy_time;
    uint64_t tcpi_rwnd_limited;
    uint64_t tcpi_sndbuf_limited;

    uint32_t tcpi_delivered;
    uint32_t tcpi_delivered_ce;

    uint64_t tcpi_bytes_sent;
    uint64_t tcpi_bytes_retrans;
    uint32_t tcpi_dsack_dups;
    uint32_t tcpi_reord_seen;

    uint32_t tcpi_rcv_ooopack;

    uint32_t tcpi_snd_wnd;          // bytes, scaled
    uint32_t tcpi_rcv_wnd;          // bytes
    uint32_t tcpi_rehash;

    uint16_t tcpi_total_rto;
    uint16_t tcpi_total_rto_recoveries;
    uint32_t tcpi_total_rto_time;   // ms

    uint32_t tcpi_received_ce;      // ECN: fastnet neither sets nor counts ECT/CE
    uint32_t tcpi_delivered_e1_bytes;
    uint32_t tcpi_delivered_e0_bytes;
    uint32_t tcpi_delivered_ce_bytes;
    uint32_t tcpi_received_e1_bytes;
    uint32_t tcpi_received_e0_bytes;
    uint32_t tcpi_received_ce_bytes;
    uint16_t tcpi_accecn_fail_mode;
    uint16_t tcpi_accecn_opt_seen;
};

// Offsets Linux has fixed since the field appeared (checked against the uapi header).
static_assert(offsetof(LinuxTcpInfo, tcpi_rto) == 8);
static_assert(offsetof(LinuxTcpInfo, tcpi_total_retrans) == 100);
static_assert(offsetof(LinuxTcpInfo, tcpi_pacing_rate) == 104);
static_assert(offsetof(LinuxTcpInfo, tcpi_delivery_rate) == 160);
static_assert(offsetof(LinuxTcpInfo, tcpi_bytes_sent) == 200);
static_assert(offsetof(LinuxTcpInfo, tcpi_snd_wnd) == 228);
static_assert(offsetof(LinuxTcpInfo, tcpi_total_rto) == 240);
static_assert(sizeof(LinuxTcpInfo) == 280);

}  // namespace fastnet
