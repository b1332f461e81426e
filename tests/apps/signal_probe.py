#!/usr/bin/env python3
"""A signal during a wait on fastnet sockets ends the wait with EINTR: epoll_wait, poll,
select on a listener and a blocking recv (5 s timeout each) get SIGUSR1 from another
thread 0.1 s into the wait; the handler raises. Prints, per wait, the wall time until
the handler's exception reached the caller (a wait that slept on after the handler ran
takes its whole 5 s).
usage: signal_probe.py PEER_IP PEER_PORT"""
import select
import signal
import socket
import sys
import threading
import time

peer = (sys.argv[1], int(sys.argv[2]))
lst = socket.socket()
lst.bind(("0.0.0.0", 9302))
lst.listen()
conn = socket.create_connection(peer, timeout=5)


class Interrupted(Exception):
    pass


def handler(signum, frame):
    raise Interrupted()


signal.signal(signal.SIGUSR1, handler)
main = threading.get_ident()


def measure(name, f):
    t = threading.Timer(0.1, lambda: signal.pthread_kill(main, signal.SIGUSR1))
    w0 = time.monotonic()
    t.start()
    got = 0
    try:
        f()
    except Interrupted:
        got = 1
    wall = time.monotonic() - w0
    t.join()
    print("%s interrupted=%d wall=%.3f" % (name, got, wall), flush=True)


ep = select.epoll()
ep.register(lst.fileno(), select.EPOLLIN)
measure("epoll", lambda: ep.poll(5))
pl = select.poll()
pl.register(lst.fileno(), select.POLLIN)
measure("poll", lambda: pl.poll(5000))
measure("select", lambda: select.select([lst], [], [], 5))
measure("recv", lambda: conn.recv(10))
