#!/usr/bin/env python3
"""An echo server that starts a child process for every line it receives, as servers do
(subprocess: vfork + exec on Linux), once with a command that exists and once with one
that does not (the child then calls _exit), and echoes the line back afterwards.
Usage: spawner.py PORT
"""
import socket
import subprocess
import sys
import time

ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1])))
ls.listen(8)
print("listening", flush=True)
c, _ = ls.accept()
f = c.makefile("rb")
for line in f:
    subprocess.run(["true"], check=True)
    try:
        subprocess.run(["/nonexistent/fastnet-test-command"])
    except FileNotFoundError:
        pass
    c.sendall(line)
c.close()
# Stay alive for the test to read this process's counters (it is killed then).
time.sleep(60)
