#!/usr/bin/env python3
"""Accepts one connection, sends a file with sendall(), closes and exits at once.

The kernel would deliver every byte after the process is gone; so must fastnet.
Usage: tail_sender.py PORT FILE exit|_exit
"""
import os
import socket
import sys

port, path, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(4)
print("listening", flush=True)
c, _ = ls.accept()
c.sendall(data)
c.close()
ls.close()
print("sent %d, exiting with %s" % (len(data), how), flush=True)
if how == "_exit":
    os._exit(0)
sys.exit(0)
