#!/usr/bin/env python3
"""Kernel TCP peers for the accelerated interpose tests (run in the client namespace,
never preloaded). Usage: peer.py <bind-ip> <base-port>
  base+1 echo      echoes everything back
  base+2 reset     accepts, then closes with a RST (SO_LINGER 0)
  base+3 silent    accepts and never sends; closes when the client does
  base+4 late      accepts, sends b"late!" 2 s later, then reads until the client closes
  base+5 finreset  accepts, sends its FIN at once and a RST 0.5 s later
Prints "ready" once all of them listen; runs until killed."""
import socket
import struct
import sys
import threading
import time

ip, base = sys.argv[1], int(sys.argv[2])


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(64)
    return s


def echo(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def silent(conn):
    with conn:
        while conn.recv(65536):
            pass


def late(conn):
    with conn:
        time.sleep(2)
        conn.sendall(b"late!")
        while conn.recv(65536):
            pass


def serve(sock, handler):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    conn.close()


def finreset(conn):
    conn.shutdown(socket.SHUT_WR)
    time.sleep(0.5)
    reset(conn)


socks = [(listener(base + 1), echo), (listener(base + 2), reset), (listener(base + 3), silent),
         (listener(base + 4), late), (listener(base + 5), finreset)]
for s, h in socks:
    threading.Thread(target=serve, args=(s, h), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
