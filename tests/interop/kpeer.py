#!/usr/bin/env python3
"""The kernel's end of an interop conversation: the same modes as tools/fastnet-peer,
on ordinary kernel sockets. Each connection sends --send's bytes (then shuts down its
write side) while receiving into --recv; --echo returns what arrives; --request B makes
short connections that send B bytes and wait for B bytes back."""
import argparse, socket, struct, sys, threading, time

TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE = 1, 2, 4


def print_tcp_info(sock):
    """The options the kernel negotiated, from TCP_INFO (struct tcp_info's first bytes).
    ss on this kernel/iproute2 pairing does not always print 'ts' and 'sack'."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    opts, wsc = raw[5], raw[6]
    rto, ato, snd_mss, rcv_mss = struct.unpack_from("IIII", raw, 8)
    print("tcp_info ts=%d sack=%d wscale=%d,%d snd_mss=%d rcv_mss=%d" % (
        bool(opts & TCPI_OPT_TIMESTAMPS), bool(opts & TCPI_OPT_SACK),
        wsc & 0xF if opts & TCPI_OPT_WSCALE else -1, wsc >> 4 if opts & TCPI_OPT_WSCALE else -1,
        snd_mss, rcv_mss), flush=True)


def transfer(sock, out_path, in_path, first):
    data = open(out_path, "rb").read() if out_path else b""
    err = []

    def sender():
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=sender)
    t.start()
    sink = open(in_path, "wb") if (in_path and first) else None
    total = 0
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        total += len(chunk)
        if sink:
            sink.write(chunk)
    t.join()
    if sink:
        sink.close()
    if err:
        raise err[0]
    return total


def echo(sock):
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        sock.sendall(chunk)
    sock.shutdown(socket.SHUT_WR)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--connect")
    ap.add_argument("--send")
    ap.add_argument("--recv")
    ap.add_argument("--echo", action="store_true")
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--request", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--info", action="store_true", help="print the negotiated options")
    ap.add_argument("--hold", type=float, default=0,
                    help="seconds to wait after the connection opens (to inspect it)")
    a = ap.parse_args()
    failures = []
    done = [0]
    lock = threading.Lock()

    def run_one(sock, first):
        try:
            sock.settimeout(a.timeout)
            if a.info:
                print_tcp_info(sock)
            time.sleep(a.hold)
            if a.echo:
                echo(sock)
            elif a.request:
                sock.sendall(b"r" * a.request)
                got = 0
                while got < a.request:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        raise OSError("connection closed after %d of %d bytes" % (got, a.request))
                    got += len(chunk)
            else:
                transfer(sock, a.send, a.recv, first)
            with lock:
                done[0] += 1
        except OSError as e:
            with lock:
                failures.append(str(e))
        finally:
            sock.close()

    start = time.monotonic()
    if a.mode == "server":
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", a.port))
        ls.listen(1024)
        print("listening", a.port, flush=True)
        threads = []
        for i in range(a.conns):
            ls.settimeout(a.timeout)
            s, _ = ls.accept()
            t = threading.Thread(target=run_one, args=(s, i == 0))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
    else:
        host, port = a.connect.rsplit(":", 1)
        sem = threading.Semaphore(a.parallel)
        threads = []

        def client(i):
            try:
                s = socket.create_connection((host, int(port)), timeout=a.timeout)
            except OSError as e:
                with lock:
                    failures.append("connect: %s" % e)
                sem.release()
                return
            run_one(s, i == 0)
            sem.release()

        for i in range(a.conns):
            sem.acquire()
            t = threading.Thread(target=client, args=(i,))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
    secs = time.monotonic() - start
    print("%s done=%d failed=%d seconds=%.3f" % (a.mode, done[0], len(failures), secs), flush=True)
    for f in failures[:5]:
        print("failure:", f, file=sys.stderr)
    sys.exit(1 if failures or done[0] != a.conns else 0)


if __name__ == "__main__":
    main()
