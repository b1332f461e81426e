#!/usr/bin/env python3
"""Waits that find nothing, on fastnet sockets: epoll_wait, poll, select on a listener,
and a blocking recv on a connection whose peer sends nothing.
  spin_probe.py PEER_IP PEER_PORT          0.5 s waits; prints each wait's CPU and wall time
  spin_probe.py PEER_IP PEER_PORT signal   5 s waits that get SIGUSR1 from another thread
                                           0.1 s in (the handler raises); prints whether the
                                           handler ended the wait and when (a wait that
                                           slept on after the handler ran takes its 5 s)"""
import select
import signal
import socket
import sys
import threading
import time

peer = (sys.argv[1], int(sys.argv[2]))
signals = len(sys.argv) > 3 and sys.argv[3] == "signal"
wait = 5 if signals else 0.5
lst = socket.socket()
lst.bind(("0.0.0.0", 9302 if signals else 9300))
lst.listen()
conn = socket.create_connection(peer, timeout=5)
conn.settimeout(wait)


class Interrupted(Exception):
    pass


def handler(signum, frame):
    raise Interrupted()


signal.signal(signal.SIGUSR1, handler)
main = threading.get_ident()


def measure(name, f):
    t = threading.Timer(0.1, lambda: signal.pthread_kill(main, signal.SIGUSR1)) if signals else None
    c0, w0 = time.process_time(), time.monotonic()
    if t:
        t.start()
    got = 0
    try:
        f()
    except Interrupted:
        got = 1
    except socket.timeout:
        pass
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    if t:
        t.join()
        print("%s interrupted=%d wall=%.3f" % (name, got, wall), flush=True)
    else:
        print("%s cpu=%.3f wall=%.3f" % (name, cpu, wall), flush=True)


ep = select.epoll()
ep.register(lst.fileno(), select.EPOLLIN)
measure("epoll", lambda: ep.poll(wait))
pl = select.poll()
pl.register(lst.fileno(), select.POLLIN)
measure("poll", lambda: pl.poll(wait * 1000))
measure("select", lambda: select.select([lst], [], [], wait))
measure("recv", lambda: conn.recv(10))
