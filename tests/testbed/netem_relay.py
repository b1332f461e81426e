#!/usr/bin/python3
"""Link impairment in user space, for kernels built without sch_netem.

testbed.sh starts it in the bed's middle namespace, between the server's and the
client's veth: every frame that arrives on one side leaves on the other after the
configured delay/jitter/loss/duplication/reordering/corruption/rate, with the same
meaning as tc-netem's arguments. The configuration of each direction is a file;
SIGHUP re-reads both and the applied generation is written to the ack file, which is
how tb_netem knows a change took effect.

usage: netem_relay.py IF_A IF_B CONF_AB CONF_BA ACK_FILE
  CONF_AB impairs frames from IF_A to IF_B (A faces the server: the "server side").
  A conf file holds "<generation>\n<netem args>"; empty args mean a plain wire.
"""
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_IGNORE_OUTGOING = 23   # linux/if_packet.h, kernel >= 4.20
SOL_PACKET = 263              # linux/socket.h (not exported by Python)
DEFAULT_LIMIT = 1000          # tc-netem's default queue limit, in packets


class ConfError(Exception):
    pass


def parse_time(word):
    units = (("usec", 1e-6), ("us", 1e-6), ("msec", 1e-3), ("ms", 1e-3),
             ("sec", 1.0), ("s", 1.0))
    for suffix, scale in units:
        if word.endswith(suffix):
            return float(word[: -len(suffix)]) * scale
    return float(word) * 1e-6   # tc's default unit is microseconds


def parse_percent(word):
    if word.endswith("%"):
        return float(word[:-1]) / 100.0
    return float(word)          # tc accepts a bare fraction too


def parse_rate(word):
    w = word.lower()
    units = (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0),
             ("gbps", 8e9), ("mbps", 8e6), ("kbps", 8e3), ("bps", 8.0))
    for suffix, scale in units:
        if w.endswith(suffix):
            return float(w[: -len(suffix)]) * scale
    return float(w) * 8.0       # bytes per second, as tc reads a bare number


def is_number(word):
    try:
        float(word.rstrip("%"))
        return True
    except ValueError:
        return False


class Correlated:
    """A uniform random value correlated with the previous one (netem's get_crandom)."""

    def __init__(self, rng, corr=0.0):
        self.rng, self.corr, self.last = rng, corr, rng.random()

    def next(self):
        v = self.rng.random()
        if self.corr:
            v = (1.0 - self.corr) * v + self.corr * self.last
        self.last = v
        return v


class Impairment:
    def __init__(self, args, rng):
        self.delay = self.jitter = 0.0
        self.loss = self.dup = self.reorder = self.corrupt = 0.0
        self.rate = 0.0
        self.limit = DEFAULT_LIMIT
        corr = {"delay": 0.0, "loss": 0.0, "dup": 0.0, "reorder": 0.0, "corrupt": 0.0}
        w = args.split()
        i = 0

        def take_opt_numbers(n):
            nonlocal i
            got = []
            while len(got) < n and i < len(w) and is_number(w[i].rstrip("usmec")):
                got.append(w[i])
                i += 1
            return got

        try:
            while i < len(w):
                key = w[i]
                i += 1
                if key == "delay":
                    self.delay = parse_time(w[i]); i += 1
                    rest = take_opt_numbers(2)
                    if rest:
                        self.jitter = parse_time(rest[0])
                    if len(rest) > 1:
                        corr["delay"] = parse_percent(rest[1])
                elif key in ("loss", "drop"):
                    if i < len(w) and w[i] == "random":
                        i += 1
                    if i < len(w) and w[i] in ("state", "gemodel"):
                        raise ConfError("loss %s is not supported" % w[i])
                    self.loss = parse_percent(w[i]); i += 1
                    rest = take_opt_numbers(1)
                    if rest:
                        corr["loss"] = parse_percent(rest[0])
                elif key == "duplicate":
                    self.dup = parse_percent(w[i]); i += 1
                    rest = take_opt_numbers(1)
                    if rest:
                        corr["dup"] = parse_percent(rest[0])
                elif key == "reorder":
                    self.reorder = parse_percent(w[i]); i += 1
                    rest = take_opt_numbers(1)
                    if rest:
                        corr["reorder"] = parse_percent(rest[0])
                elif key == "corrupt":
                    self.corrupt = parse_percent(w[i]); i += 1
                    rest = take_opt_numbers(1)
                    if rest:
                        corr["corrupt"] = parse_percent(rest[0])
                elif key == "rate":
                    self.rate = parse_rate(w[i]); i += 1
                elif key == "limit":
                    self.limit = int(w[i]); i += 1
                elif key == "seed":
                    rng.seed(int(w[i])); i += 1
                elif key == "distribution":
                    i += 1   # jitter is uniform here; accepted for compatibility
                else:
                    raise ConfError("unknown netem argument '%s'" % key)
        except (IndexError, ValueError) as e:
            raise ConfError("cannot parse netem arguments '%s': %s" % (args, e))
        for name, value in (("loss", self.loss), ("duplicate", self.dup),
                            ("reorder", self.reorder), ("corrupt", self.corrupt)):
            if not 0.0 <= value <= 1.0:
                raise ConfError("%s must be within 0%%..100%%" % name)
        self.r_delay = Correlated(rng, corr["delay"])
        self.r_loss = Correlated(rng, corr["loss"])
        self.r_dup = Correlated(rng, corr["dup"])
        self.r_reorder = Correlated(rng, corr["reorder"])
        self.r_corrupt = Correlated(rng, corr["corrupt"])
        self.rng = rng

    def plain(self):
        return not (self.delay or self.jitter or self.loss or self.dup or self.reorder
                    or self.corrupt or self.rate)


class Direction:
    def __init__(self, name, rx, tx, rng):
        self.name, self.rx, self.tx, self.rng = name, rx, tx, rng
        self.imp = Impairment("", rng)
        self.queue = []            # heap of (due, seq, frame)
        self.seq = 0
        self.last_departure = 0.0
        self.stats = {"in": 0, "out": 0, "lost": 0, "dup": 0, "corrupt": 0, "overlimit": 0}

    def send(self, frame):
        try:
            self.tx.send(frame)
            self.stats["out"] += 1
        except OSError:
            pass   # a full device queue drops, as a wire would

    def enqueue(self, frame, now):
        imp = self.imp
        self.stats["in"] += 1
        if imp.plain():
            self.send(frame)
            return
        # netem_enqueue's order: duplicate, loss, corrupt, then time to send.
        copies = 1
        if imp.dup and imp.r_dup.next() < imp.dup:
            copies += 1
            self.stats["dup"] += 1
        if imp.loss and imp.r_loss.next() < imp.loss:
            copies -= 1
            self.stats["lost"] += 1
        if copies == 0:
            return
        if imp.corrupt and imp.r_corrupt.next() < imp.corrupt and len(frame) > 14:
            b = bytearray(frame)
            pos = self.rng.randrange(14, len(b))
            b[pos] ^= 1 << self.rng.randrange(8)
            frame = bytes(b)
            self.stats["corrupt"] += 1
        for _ in range(copies):
            if len(self.queue) >= imp.limit:
                self.stats["overlimit"] += 1
                continue
            if imp.reorder and imp.r_reorder.next() < imp.reorder:
                due = now   # sent ahead of the delayed ones: that is the reordering
            else:
                d = imp.delay
                if imp.jitter:
                    d += (2.0 * imp.r_delay.next() - 1.0) * imp.jitter
                due = now + max(d, 0.0)
            if imp.rate:
                start = max(due, self.last_departure)
                due = start + len(frame) * 8.0 / imp.rate
                self.last_departure = due
            self.seq += 1
            heapq.heappush(self.queue, (due, self.seq, frame))

    def flush(self, now):
        while self.queue and self.queue[0][0] <= now:
            self.send(heapq.heappop(self.queue)[2])

    def next_due(self):
        return self.queue[0][0] if self.queue else None


def open_socket(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((ifname, ETH_P_ALL))
    s.setblocking(False)
    return s


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    if_a, if_b, conf_ab, conf_ba, ack = sys.argv[1:]
    seed = int(os.environ.get("TB_NETEM_SEED", "0")) or random.SystemRandom().randrange(1, 2**31)
    print("netem_relay: %s <-> %s, seed %d" % (if_a, if_b, seed), file=sys.stderr, flush=True)
    sa, sb = open_socket(if_a), open_socket(if_b)
    ab = Direction("a->b", sa, sb, random.Random(seed))
    ba = Direction("b->a", sb, sa, random.Random(seed + 1))
    reload = [True]
    signal.signal(signal.SIGHUP, lambda *_: reload.__setitem__(0, True))
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))

    def apply_conf():
        gens, err = [], ""
        for d, path in ((ab, conf_ab), (ba, conf_ba)):
            try:
                with open(path) as f:
                    gen = f.readline().strip() or "0"
                    args = f.read().strip()
            except FileNotFoundError:
                gen, args = "0", ""
            try:
                d.imp = Impairment(args, d.rng)
            except ConfError as e:
                err = str(e)
            gens.append(gen)
        tmp = ack + ".tmp"
        with open(tmp, "w") as f:
            f.write("%s %s\n%s\n" % (gens[0], gens[1], err))
        os.replace(tmp, ack)

    # Signals wake poll() through this pipe: Python would otherwise resume the poll
    # after running the handler (PEP 475) and a reload or stop would wait for traffic.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    poller = select.poll()
    poller.register(sa, select.POLLIN)
    poller.register(sb, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    by_fd = {sa.fileno(): ab, sb.fileno(): ba}
    while not stop[0]:
        if reload[0]:
            reload[0] = False
            apply_conf()
        now = time.monotonic()
        dues = [t for t in (ab.next_due(), ba.next_due()) if t is not None]
        timeout = None if not dues else max(0.0, min(dues) - now) * 1000.0
        try:
            events = poller.poll(timeout if timeout is None else max(timeout, 0.05))
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd, _ in events:
            if fd == wake_r:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
                continue
            d = by_fd[fd]
            for _ in range(256):
                try:
                    frame = d.rx.recv(65536)
                except BlockingIOError:
                    break
                except OSError as e:
                    # e.g. ENETDOWN while a test flaps a link: keep relaying afterwards.
                    print("netem_relay: %s: recv: %s" % (d.name, e), file=sys.stderr, flush=True)
                    break
                d.enqueue(frame, now)
        ab.flush(now)
        ba.flush(now)
    print("netem_relay: a->b %s, b->a %s" % (ab.stats, ba.stats), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
