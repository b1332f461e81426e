#!/usr/bin/python3
"""Crafted and blind-attack segments against a fastnet echo server, sent from the client
namespace on a raw AF_PACKET socket (scapy builds them). Run by badpackets.sh.

Our crafted flows use a spoofed address (--my-ip, not configured on any interface, with a
static neighbour entry on the server side) so the client kernel never sees them as its
own and never answers them with RSTs. Each case checks the answer on the wire (RFC 9293,
RFC 5961) and the server's per-reason counters (fastnet-stat --json, --stat-cmd).
--legit-port: a live kernel connection (legit.py) that gets blind injections too.
Prints one line per case and a summary; exit 1 if any case failed."""
import argparse, json, os, random, select, socket, struct, subprocess, sys, time

from scapy.all import Ether, IP, TCP, Raw, raw  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--iface", required=True)
ap.add_argument("--my-mac", required=True)
ap.add_argument("--srv-mac", required=True)
ap.add_argument("--my-ip", required=True)
ap.add_argument("--cli-ip", required=True, help="the kernel client's address (legit flow)")
ap.add_argument("--srv-ip", required=True)
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--closed-port", type=int, required=True,
                help="a port steered to fastnet with no socket (active-open range)")
ap.add_argument("--stat-cmd", required=True)
ap.add_argument("--legit-port-file", default="")
ap.add_argument("--only", default="")
ap.add_argument("--tx-cli", default="off", choices=["on", "off"],
                help="tx checksum offload of the client veth (the legit kernel client's)")
a = ap.parse_args()

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
sock.bind((a.iface, 0))
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)

F, S, R, P, A = 0x01, 0x02, 0x04, 0x08, 0x10
packets_tried = 0
failures = []
cases = 0
rng = random.Random(793)


def eth():
    return Ether(src=a.my_mac, dst=a.srv_mac)


def send(frame):
    global packets_tried
    packets_tried += 1
    sock.send(frame if isinstance(frame, bytes) else raw(frame))


def drain():
    while select.select([sock], [], [], 0)[0]:
        sock.recvfrom(65536)


def collect(timeout, dst_ip=None, dport=None, stop=None):
    """Server → dst_ip (default: our spoofed address) TCP segments seen within timeout."""
    dst_ip = dst_ip or a.my_ip
    out, end = [], time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        if not select.select([sock], [], [], left)[0]:
            break
        data, addr = sock.recvfrom(65536)
        if addr[2] == PACKET_OUTGOING:
            continue
        p = Ether(data)
        if IP not in p or TCP not in p or p[IP].src != a.srv_ip or p[IP].dst != dst_ip:
            continue
        if dport is not None and p[TCP].dport != dport:
            continue
        out.append(p)
        if stop and stop(out):
            break
    return out


def stats():
    j = json.loads(subprocess.check_output(a.stat_cmd, shell=True))
    d = {k: v for k, v in j.items() if isinstance(v, int)}
    for k, v in j.get("drops", {}).items():
        d["drop_" + k] = v
    return d


def delta(before, after, key):
    return after.get(key, 0) - before.get(key, 0)


def check(cond, what):
    if cond:
        print(f"ok: {what}")
    else:
        print(f"FAIL: {what}")
        failures.append(what)


def flags_of(p):
    return int(p[TCP].flags)


class Conn:
    """A TCP conversation scripted by hand from the spoofed address."""

    def __init__(self, mss=1460, win=65535, sport=None):
        self.sport = sport or rng.randrange(20000, 30000)
        self.iss = rng.randrange(1 << 32)
        self.snd_nxt = self.iss
        self.rcv_nxt = None
        self.srv_iss = None
        self.mss = mss
        self.win = win
        self.echo = {}   # seq → payload

    def seg(self, flags, seq=None, ack=None, payload=b"", win=None, opts=None):
        t = TCP(sport=self.sport, dport=a.port, flags=flags,
                seq=(self.snd_nxt if seq is None else seq) & 0xffffffff,
                ack=(self.rcv_nxt or 0) if ack is None else ack & 0xffffffff,
                window=self.win if win is None else win, options=opts or [])
        p = eth() / IP(src=a.my_ip, dst=a.srv_ip) / t
        if payload:
            p = p / Raw(payload)
        return p

    def mine(self, p):
        return p[TCP].dport == self.sport

    def wait(self, timeout, pred):
        got = collect(timeout, dport=self.sport, stop=lambda ps: any(pred(x) for x in ps))
        for p in got:
            self.note(p)
        return [p for p in got if pred(p)], got

    def note(self, p):
        pl = bytes(p[TCP].payload)
        if pl:
            self.echo[p[TCP].seq] = pl

    def connect(self):
        drain()
        send(self.seg(S, seq=self.iss, ack=0, opts=[("MSS", self.mss)]))
        self.snd_nxt = self.iss + 1
        sa, _ = self.wait(3, lambda p: flags_of(p) & (S | A) == (S | A))
        if not sa:
            return False
        self.srv_iss = sa[0][TCP].seq
        self.rcv_nxt = (self.srv_iss + 1) & 0xffffffff
        send(self.seg(A))
        return True

    def send_data(self, data, win=None):
        send(self.seg(P | A, payload=data, win=win))
        self.snd_nxt = (self.snd_nxt + len(data)) & 0xffffffff

    def read(self, n, timeout=5, win=None):
        """Reads n echoed bytes in order, ACKing as they come; returns (bytes, max seg)."""
        buf, maxseg, end = b"", 0, time.monotonic() + timeout
        while len(buf) < n and time.monotonic() < end:
            for p in collect(0.2, dport=self.sport):
                self.note(p)
                pl = bytes(p[TCP].payload)
                maxseg = max(maxseg, len(pl))
            while self.rcv_nxt in self.echo:
                pl = self.echo.pop(self.rcv_nxt)
                buf += pl
                self.rcv_nxt = (self.rcv_nxt + len(pl)) & 0xffffffff
            # Drop stale retransmissions left behind.
            for k in list(self.echo):
                if ((k - self.rcv_nxt) & 0xffffffff) > (1 << 31):
                    del self.echo[k]
            send(self.seg(A, win=win))
        return buf, maxseg

    def alive(self, tag):
        """The connection still echoes a fresh message byte-exact."""
        msg = (f"alive-{tag}-".encode() * 20)[:200]
        self.send_data(msg)
        got, _ = self.read(len(msg), timeout=4)
        return got == msg

    def reset(self):
        send(self.seg(R | A))


def malformed_frame(kind, sport):
    """Raw frames the checked parsers must refuse. Returns (bytes, expected reason or None
    when the XDP program hands the frame to the kernel)."""
    ip = IP(src=a.my_ip, dst=a.srv_ip)
    syn = TCP(sport=sport, dport=a.port, flags="S", seq=rng.randrange(1 << 32), window=1024)
    if kind == "bad_tcp_checksum":
        return raw(eth() / ip / TCP(sport=sport, dport=a.port, flags="S", seq=1, chksum=0xdead)), "bad_checksum"
    if kind == "bad_ip_checksum":
        return raw(eth() / IP(src=a.my_ip, dst=a.srv_ip, chksum=0xbeef) / syn), "bad_checksum"
    if kind == "ip_length_beyond_frame":
        b = bytearray(raw(eth() / ip / syn))
        # Total length says 200 bytes; the frame holds 40 (checksum made to match).
        p = IP(raw(ip / syn))
        p.len = 200
        p.chksum = None
        return bytes(b[:14]) + raw(IP(raw(p)))[:40], "malformed"
    if kind == "tcp_header_truncated":
        return raw(eth() / ip / syn)[:14 + 20 + 10], None
    if kind == "data_offset_15":
        t = TCP(sport=sport, dport=a.port, flags="S", seq=5, dataofs=15)
        return raw(eth() / ip / t), "malformed"
    if kind == "data_offset_3":
        t = TCP(sport=sport, dport=a.port, flags="S", seq=5, dataofs=3)
        return raw(eth() / ip / t), None
    if kind == "option_overruns_header":
        # MSS option claiming 8 bytes inside a 4-byte options area.
        t = TCP(sport=sport, dport=a.port, flags="S", seq=5, dataofs=6, options=[])
        hdr = bytearray(raw(t))[:20] + b"\x02\x08\x05\xb4"
        pkt = eth() / IP(src=a.my_ip, dst=a.srv_ip, proto=6) / Raw(bytes(hdr))
        b = bytearray(raw(pkt))
        return fix_tcp_checksum(b), "malformed"
    if kind == "option_length_zero":
        t = TCP(sport=sport, dport=a.port, flags="S", seq=5, dataofs=6, options=[])
        hdr = bytearray(raw(t))[:20] + b"\x08\x00\x00\x00"
        hdr[12] = 6 << 4
        pkt = eth() / IP(src=a.my_ip, dst=a.srv_ip, proto=6) / Raw(bytes(hdr))
        return fix_tcp_checksum(bytearray(raw(pkt))), "malformed"
    raise ValueError(kind)


def fix_tcp_checksum(b):
    ihl = (b[14] & 0x0f) * 4
    tcp = bytearray(b[14 + ihl:])
    tcp[12] = (tcp[12] & 0x0f) | (6 << 4) if (tcp[12] >> 4) < 6 else tcp[12]
    tcp[16:18] = b"\0\0"
    src, dst = b[26:30], b[30:34]
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    data = pseudo + tcp + (b"\0" if len(tcp) % 2 else b"")
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    tcp[16:18] = struct.pack("!H", ~s & 0xffff)
    return bytes(b[:14 + ihl]) + bytes(tcp)


def with_tcp_csum(frame, kind):
    """The frame's bytes with its TCP checksum field set to "pseudo": the pseudo-header
    sum (addresses, protocol, TCP length) folded and not complemented, what a Linux
    sender with tx checksum offload leaves on a veth (CHECKSUM_PARTIAL); or to a wrong
    value near it: "pseudo+1", "complemented", "no_length" (the sum without the length)."""
    b = bytearray(raw(frame) if not isinstance(frame, (bytes, bytearray)) else frame)
    ihl = (b[14] & 0x0f) * 4
    tcp_len = struct.unpack("!H", bytes(b[16:18]))[0] - ihl

    def fold(x):
        while x >> 16:
            x = (x & 0xffff) + (x >> 16)
        return x
    base = sum(struct.unpack("!HHHH", bytes(b[26:34]))) + 6
    pseudo = fold(base + tcp_len)
    value = {"pseudo": pseudo, "pseudo+1": fold(pseudo + 1), "complemented": ~pseudo & 0xffff,
             "no_length": fold(base)}[kind]
    b[14 + ihl + 16:14 + ihl + 18] = struct.pack("!H", value)
    return bytes(b)


class PartialConn(Conn):
    """A scripted conversation whose every segment carries the pseudo-header sum."""

    def seg(self, *args, **kw):
        return with_tcp_csum(super().seg(*args, **kw), "pseudo")


def want(name):
    return not a.only or name in a.only.split(",")


# --------------------------------------------------------------------- bad packets
def case_partial_csum():
    """On a veth fastnet accepts the pseudo-header sum in place of the TCP checksum (and
    counts it, rx_csum_partial); any other wrong value is still a counted drop."""
    global cases
    cases += 1
    before = stats()
    c = PartialConn()
    ok = c.connect() and c.alive("partial")
    after = stats()
    dp = delta(before, after, "rx_csum_partial")
    check(ok, "a conversation whose segments carry only the pseudo-header sum: "
              "handshake and echo byte-exact")
    check(dp >= 3, f"pseudo-header sums counted as rx_csum_partial (+{dp})")
    c.reset()
    # The RST carries the pseudo-header sum too, and the engines publish counters after
    # the fact: wait until the count has moved and then stood still for 0.3 s before
    # the windows below, which expect it not to move.
    end = time.monotonic() + 3
    last, still = None, 0.0
    while time.monotonic() < end:
        now = delta(after, stats(), "rx_csum_partial")
        if now == last and now >= 1:
            still += 0.05
            if still >= 0.3:
                break
        else:
            last, still = now, 0.0
        time.sleep(0.05)
    n = 10
    for kind in ["pseudo+1", "complemented", "no_length"]:
        cases += 1
        drain()
        before = stats()
        for i in range(n):
            syn = TCP(sport=33000 + i, dport=a.port, flags="S", seq=rng.randrange(1 << 32))
            send(with_tcp_csum(eth() / IP(src=a.my_ip, dst=a.srv_ip) / syn, kind))
        answers = collect(0.5)
        after = stats()
        d = delta(before, after, "drop_bad_checksum")
        check(not answers, f"SYN with the {kind} sum x{n}: no answer ({len(answers)} seen)")
        check(d >= n, f"SYN with the {kind} sum x{n}: counted as drop_bad_checksum (+{d})")
        if a.tx_cli == "off":
            # Nothing else sends partial sums: the counter must not move.
            dp = delta(before, after, "rx_csum_partial")
            check(dp == 0, f"SYN with the {kind} sum x{n}: not counted as partial (+{dp})")


def case_malformed():
    global cases
    kinds = ["bad_tcp_checksum", "bad_ip_checksum", "ip_length_beyond_frame",
             "tcp_header_truncated", "data_offset_15", "data_offset_3",
             "option_overruns_header", "option_length_zero"]
    n = 25
    for kind in kinds:
        cases += 1
        drain()
        before = stats()
        expect = None
        for i in range(n):
            frame, expect = malformed_frame(kind, 31000 + i)
            send(frame)
        answers = collect(0.5)
        after = stats()
        check(not answers, f"{kind} x{n}: no answer from fastnet ({len(answers)} seen)")
        if expect:
            d = delta(before, after, "drop_" + expect)
            check(d >= n, f"{kind} x{n}: counted as drop_{expect} (+{d})")
        else:
            # (Other drop reasons may move meanwhile: the legitimate stream runs.)
            d = delta(before, after, "drop_malformed") + delta(before, after, "drop_bad_checksum")
            check(d == 0, f"{kind} x{n}: not for the engine (the XDP program passes it to "
                          f"the kernel, which drops it; engine malformed/bad_checksum +{d})")


def case_syn_fin_rst():
    global cases
    cases += 1
    drain()
    before = stats()
    c = Conn()
    send(c.seg(S | F, seq=c.iss, ack=0))
    got = collect(1.0, dport=c.sport)
    after = stats()
    synack = [p for p in got if flags_of(p) & (S | A) == (S | A)]
    if synack:
        # RFC 9293 3.10.7.2: in LISTEN, a FIN is not processed; the SYN may be answered.
        check(synack[0][TCP].ack == (c.iss + 1) & 0xffffffff,
              "SYN+FIN: answered as a plain SYN (the FIN not acknowledged)")
        send(c.seg(R, seq=c.iss + 1))
    else:
        d = sum(delta(before, after, k) for k in after if k.startswith("drop_"))
        check(d >= 1, f"SYN+FIN: dropped and counted (+{d} drops)")
    cases += 1
    drain()
    before = stats()
    c = Conn()
    for i in range(5):
        send(c.seg(S | R, seq=c.iss + i, ack=0))
    got = collect(0.7, dport=c.sport)
    after = stats()
    d = sum(delta(before, after, k) for k in after if k.startswith("drop_"))
    check(not got, f"SYN+RST x5: no answer (RFC 9293: a RST in LISTEN is ignored; {len(got)} seen)")
    check(d >= 5, f"SYN+RST x5: counted as drops (+{d})")


def case_closed_port():
    global cases
    cases += 1
    drain()
    before = stats()
    n = 10
    for i in range(n):
        t = TCP(sport=32000 + i, dport=a.closed_port, flags="PA", seq=1000 + i, ack=777 + i)
        send(eth() / IP(src=a.my_ip, dst=a.srv_ip) / t / Raw(b"x" * 50))
    got = collect(1.0)
    after = stats()
    rsts = [p for p in got if flags_of(p) & R and p[TCP].seq == 777 + p[TCP].dport - 32000]
    check(len(rsts) == n, f"data to a closed port x{n}: RST <SEQ=SEG.ACK> each ({len(rsts)})")
    # A port fastnet does not serve is the kernel's: the XDP program passes it and the
    # kernel answers. If the engine got them, each must be counted as drop_no_socket.
    d = delta(before, after, "drop_no_socket")
    check(d >= n or d == 0, f"data to a closed port x{n}: answered by "
                            f"{'the engine' if d else 'the kernel'} (engine drop_no_socket +{d})")
    # An ACK to the listening port for no connection (a failed SYN cookie): RST too.
    cases += 1
    before = stats()
    c = Conn()
    send(c.seg(A, seq=c.iss, ack=12345))
    got = collect(1.0, dport=c.sport)
    after = stats()
    check(any(flags_of(p) & R and p[TCP].seq == 12345 for p in got),
          "stray ACK to the listener: RST <SEQ=SEG.ACK>")
    check(delta(before, after, "drop_no_socket") >= 1, "stray ACK to the listener: counted")


def case_window_and_ack():
    global cases
    c = Conn()
    if not c.connect():
        check(False, "handshake for the window cases")
        return
    check(c.alive("start"), "scripted connection echoes")
    # Far outside the receive window: RFC 9293 3.10.7.4 — drop, answer with an ACK.
    cases += 1
    before = stats()
    n = 5
    for i in range(n):
        send(c.seg(P | A, seq=c.snd_nxt + (1 << 30) + i * 1000, payload=b"Z" * 100))
    got = collect(1.0, dport=c.sport)
    after = stats()
    acks = [p for p in got if flags_of(p) & A and p[TCP].ack == c.rcv_nxt - 0 or
            (flags_of(p) & A and p[TCP].ack == c.snd_nxt)]
    check(len(acks) >= 1, f"segments far outside the window x{n}: ACKed ({len(acks)} ACKs)")
    d = delta(before, after, "drop_out_of_window")
    check(d >= n, f"segments far outside the window x{n}: counted as drop_out_of_window (+{d})")
    check(c.alive("oow"), "connection survives out-of-window segments")
    # ACK of data never sent: RFC 9293 3.10.7.4 (ESTABLISHED) — send an ACK, drop it.
    cases += 1
    before = stats()
    for i in range(n):
        send(c.seg(P | A, ack=c.rcv_nxt + 100000 + i, payload=b"U" * 30))
    got = collect(1.0, dport=c.sport)
    after = stats()
    echoed = b"".join(bytes(p[TCP].payload) for p in got)
    check(b"U" not in echoed, f"ACK of unsent data x{n}: its data not accepted")
    check(any(flags_of(p) & A for p in got), f"ACK of unsent data x{n}: answered with an ACK")
    # RFC 5961 5.2: an ACK beyond SND.NXT is dropped with a (challenge) ACK.
    d = sum(delta(before, after, k) for k in after if k.startswith("drop_"))
    dch = delta(before, after, "challenge_acks")
    check(d + dch >= n, f"ACK of unsent data x{n}: counted (challenge_acks +{dch}, drops +{d})")
    check(c.alive("unsent"), "connection survives ACKs of unsent data")
    c.echo.clear()
    c.reset()


def case_tiny_mss():
    global cases
    cases += 1
    c = Conn(mss=64)
    if not c.connect():
        check(False, "tiny MSS: handshake with MSS 64")
        return
    msg = bytes(rng.randrange(256) for _ in range(3000))
    for off in range(0, len(msg), 64):
        c.send_data(msg[off:off + 64])
    got, maxseg = c.read(len(msg), timeout=8)
    check(got == msg, f"tiny MSS 64: 3000 bytes echoed byte-exact ({len(got)})")
    check(0 < maxseg <= 64, f"tiny MSS 64: the largest segment fastnet sent carried {maxseg} bytes")
    c.reset()


def case_zero_window():
    global cases
    cases += 1
    c = Conn()
    if not c.connect():
        check(False, "zero window: handshake")
        return
    msg = b"W" * 2000
    c.send_data(msg[:1000], win=0)
    c.send_data(msg[1000:], win=0)
    c.win = 0
    # The echo cannot go out: the server must probe (RFC 9293 3.8.6.1) and we answer
    # each probe with our still-zero window, as a stuck receiver does.
    probes, t_end = [], time.monotonic() + 7
    while time.monotonic() < t_end:
        for p in collect(0.3, dport=c.sport):
            if flags_of(p) & R:
                probes.append(("RST", p))
                continue
            pl = bytes(p[TCP].payload)
            if len(pl) <= 1 and (p[TCP].seq != c.rcv_nxt or pl):
                probes.append(("probe", p))
            elif len(pl) > 1:
                probes.append(("data-into-zero-window", p))
            send(c.seg(A, win=0))
    nprobe = sum(1 for k, _ in probes if k == "probe")
    bad = [k for k, _ in probes if k != "probe"]
    check(nprobe >= 2, f"zero window held 7 s: {nprobe} persist probes")
    check(not bad, f"zero window: no data beyond the window and no reset ({bad[:3]})")
    c.win = 65535
    c.echo.clear()
    got, _ = c.read(len(msg), timeout=5, win=65535)
    # A probe may have carried the first byte already: it is at rcv_nxt in any case.
    check(got == msg, f"zero window reopened: 2000 bytes echoed byte-exact ({len(got)})")
    c.reset()


# --------------------------------------------------------------------- RFC 5961
def case_blind_scripted():
    global cases
    c = Conn()
    if not c.connect() or not c.alive("blind-start"):
        check(False, "blind attacks: scripted connection")
        return
    n = 5
    for name, mk, expect_challenge in [
        ("RST in window, not exact", lambda i: c.seg(R, seq=c.snd_nxt + 100 + i), True),
        ("RST out of window", lambda i: c.seg(R, seq=c.snd_nxt + (1 << 31) + i), False),
        ("SYN in ESTABLISHED", lambda i: c.seg(S, seq=c.snd_nxt + 10 + i, ack=0), True),
        ("SYN in ESTABLISHED at an old seq", lambda i: c.seg(S, seq=c.snd_nxt - 5000 - i, ack=0), True),
    ]:
        cases += 1
        drain()
        before = stats()
        for i in range(n):
            send(mk(i))
        got = collect(1.0, dport=c.sport)
        after = stats()
        challenges = [p for p in got if flags_of(p) & (A | R | S) == A and p[TCP].ack == c.rcv_nxt
                      or flags_of(p) & (A | R | S) == A and p[TCP].ack == c.snd_nxt]
        resets = [p for p in got if flags_of(p) & R]
        check(not resets, f"{name} x{n}: no RST from fastnet")
        if expect_challenge:
            # RFC 5961 4.2 answers any SYN with an ACK; RFC 9293's sequence check comes
            # first and answers an out-of-window one with the same ACK, counted as such.
            # Challenge ACKs go out one per segment; the out-of-window ACKs of segments
            # that arrive in one receive batch are one ACK (Linux rate-limits them too).
            dch = delta(before, after, "challenge_acks")
            doow = delta(before, after, "drop_out_of_window")
            check(len(challenges) >= max(dch, 1) and dch + doow >= n,
                  f"{name} x{n}: challenge ACKs ({len(challenges)} on the wire, "
                  f"challenge_acks +{dch}, drop_out_of_window +{doow})")
        else:
            check(not got, f"{name} x{n}: silently dropped ({len(got)} answers)")
            dr = sum(delta(before, after, k) for k in after if k.startswith("drop_"))
            check(dr >= n, f"{name} x{n}: counted as drops (+{dr})")
        check(c.alive(name.replace(" ", "-")), f"{name}: connection survives, echo intact")
    # Data inside the window whose ACK acknowledges nothing plausible (RFC 5961 5.2).
    cases += 1
    before = stats()
    send(c.seg(P | A, ack=c.rcv_nxt - (1 << 30), payload=b"INJECTED" * 10))
    got = collect(1.0, dport=c.sport)
    after = stats()
    check(b"INJECTED" not in b"".join(bytes(p[TCP].payload) for p in got),
          "data with an ACK far in the past (RFC 5961 5.2): not accepted")
    c.echo.clear()
    check(c.alive("badack"), "connection survives data with a bad ACK")
    # The exact RST does reset (RFC 5961 3.2: SEG.SEQ == RCV.NXT).
    cases += 1
    before = stats()
    send(c.seg(R))
    time.sleep(0.3)
    after = stats()
    check(delta(before, after, "conn_reset") >= 1, "RST at exactly RCV.NXT resets the connection")
    send(c.seg(P | A, payload=b"after reset"))
    got = collect(1.0, dport=c.sport)
    check(any(flags_of(p) & R for p in got), "data after the reset is answered with a RST")


def case_blind_legit():
    """Injections into the live kernel connection of legit.py, using sequence numbers
    sniffed from it (an on-path view is the worst case of a blind attacker)."""
    global cases
    if not a.legit_port_file:
        return
    lport = int(open(a.legit_port_file).read())
    injected = 0
    end = time.monotonic() + 6
    while time.monotonic() < end:
        seen = None
        t_end = time.monotonic() + 1
        while time.monotonic() < t_end and not seen:
            if not select.select([sock], [], [], 0.2)[0]:
                continue
            data, addr = sock.recvfrom(65536)
            p = Ether(data)
            if (IP in p and TCP in p and p[IP].src == a.cli_ip and p[TCP].sport == lport
                    and len(p[TCP].payload) > 0):
                seen = p
        if not seen:
            break
        seq, ack, ln = seen[TCP].seq, seen[TCP].ack, len(seen[TCP].payload)
        base = eth() / IP(src=a.cli_ip, dst=a.srv_ip)
        tcp = lambda fl, s, ak, pl=b"": base / TCP(sport=lport, dport=a.port, flags=fl,
                                                   seq=s & 0xffffffff, ack=ak & 0xffffffff,
                                                   window=502) / (Raw(pl) if pl else b"")
        for pkt in [tcp("R", seq + ln + 3000, 0),          # in window, not exact
                    tcp("R", seq + (1 << 31), 0),          # out of window
                    tcp("S", seq + ln + 100, 0),           # SYN in ESTABLISHED
                    tcp("PA", seq + (1 << 30), ack, b"X" * 100),            # far out of window
                    tcp("PA", seq + ln, ack - (1 << 30), b"Y" * 100)]:      # bad ACK
            send(pkt)
            injected += 1
    cases += 1
    check(injected >= 20, f"blind injections into the live kernel connection: {injected}")


start = stats()
if want("malformed"):
    case_malformed()
if want("partial"):
    case_partial_csum()
if want("flags"):
    case_syn_fin_rst()
if want("closed"):
    case_closed_port()
if want("window"):
    case_window_and_ack()
if want("mss"):
    case_tiny_mss()
if want("zerowin"):
    case_zero_window()
if want("blind"):
    case_blind_scripted()
if want("legit"):
    case_blind_legit()

if a.tx_cli == "on" and a.legit_port_file:
    # The legitimate kernel client keeps tx checksum offload: its segments are partial.
    cases += 1
    dp = delta(start, stats(), "rx_csum_partial")
    check(dp >= 100, f"the kernel client's segments (offload on) counted as rx_csum_partial (+{dp})")

print(f"attacks: cases={cases} packets_tried={packets_tried} failed_checks={len(failures)}")
sys.exit(1 if failures else 0)
