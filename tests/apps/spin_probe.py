#!/usr/bin/env python3
"""Waits that find nothing, on fastnet sockets: epoll_wait, poll, select for 0.5 s on a
listener, and a blocking recv with a 0.5 s timeout on a connection whose peer sends
nothing. Prints, per wait, the CPU time and the wall time it took.
usage: spin_probe.py PEER_IP PEER_PORT"""
import select
import socket
import sys
import time

peer = (sys.argv[1], int(sys.argv[2]))
lst = socket.socket()
lst.bind(("0.0.0.0", 9300))
lst.listen()
conn = socket.create_connection(peer, timeout=5)
conn.settimeout(0.5)


def measure(name, f):
    c0, w0 = time.process_time(), time.monotonic()
    f()
    print("%s cpu=%.3f wall=%.3f" % (name, time.process_time() - c0, time.monotonic() - w0), flush=True)


ep = select.epoll()
ep.register(lst.fileno(), select.EPOLLIN)
measure("epoll", lambda: ep.poll(0.5))
pl = select.poll()
pl.register(lst.fileno(), select.POLLIN)
measure("poll", lambda: pl.poll(500))
measure("select", lambda: select.select([lst], [], [], 0.5))


def recv():
    try:
        conn.recv(10)
    except socket.timeout:
        pass


measure("recv", recv)
