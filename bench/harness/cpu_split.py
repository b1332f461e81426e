#!/usr/bin/python3
"""Where the CPU went during a short system-wide `perf record -a -e cpu-clock` sample.

usage: cpu_split.py PERF_DATA WORKLOAD MODE SERVER_CPU CLIENT_CPU >> cpu.jsonl

Prints one JSON line: for the server's CPU, the share of its samples in each of
  app        the server program and the libraries it calls (libc included)
  fastnet    libfastnet.so
  af_xdp     kernel code of AF_XDP and XDP (xsk_*, *xdp*, the BPF program)
  net        the rest of the kernel's network code (tcp_, ip_, skb, veth, ...)
  kernel     any other kernel code (system call entry, scheduler, interrupts, paging)
  idle       the idle task
the three biggest symbols of "kernel" (on a paravirtualised guest, time spent with
interrupts off is sampled where they are enabled again: pvm_irq_enable), and, for the
client's CPU (the load generator and the kernel peer's stack), its busy
share. Shares are percentages of that CPU's samples."""
import json
import re
import subprocess
import sys

NET = re.compile(r"^(tcp|inet|ip|ipv4|__ip|raw|sk_|__sk|sock|skb|__skb|kfree_skb|consume_skb|"
                 r"net|__net|napi|__napi|veth|dev_|__dev|neigh|eth_|nf_|validate_xmit|"
                 r"__tcp|__inet|__netif|netif|do_xdp|process_backlog|rps_|gro|__build_skb|"
                 r"csum|__csum|sch_|__qdisc|qdisc|__copy_skb|skb_|build_skb|ep_|__sys_send|"
                 r"__sys_recv|__sys_accept|__sys_connect|__sys_socket|sys_send|sys_recv|udp)")
XDP = re.compile(r"(xsk|xdp|bpf_prog|bpf_redirect|dev_map|__bpf)")


def bucket(comm, dso, sym):
    if comm.startswith("swapper"):
        return "idle"
    if "libfastnet" in dso:
        return "fastnet"
    if dso.startswith("[kernel") or sym.startswith("[k]"):
        name = sym.split("] ", 1)[-1]
        if XDP.search(name):
            return "af_xdp"
        if NET.match(name):
            return "net"
        return "kernel"
    return "app"


def main():
    data, wl, mode, scpu, ccpu = sys.argv[1:6]
    scpu, ccpu = int(scpu), int(ccpu)
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                          "--sort", "cpu,comm,dso,sym", "-F", "sample,cpu,comm,dso,sym", "-t", "|"],
                         capture_output=True, text=True).stdout
    per_cpu = {scpu: {}, ccpu: {}}
    other = {}   # the server CPU's "kernel" bucket by symbol
    for line in out.splitlines():
        if line.startswith("#") or "|" not in line:
            continue
        f = [x.strip() for x in line.split("|")]
        if len(f) < 5 or not f[0].isdigit() or not f[1].isdigit():
            continue
        n, cpu, comm, dso, sym = int(f[0]), int(f[1]), f[2], f[3], "|".join(f[4:])
        if cpu not in per_cpu:
            continue
        b = bucket(comm, dso, sym)
        per_cpu[cpu][b] = per_cpu[cpu].get(b, 0) + n
        if cpu == scpu and b == "kernel":
            name = sym.split("] ", 1)[-1]
            other[name] = other.get(name, 0) + n
    s, c = per_cpu[scpu], per_cpu[ccpu]
    st, ct = sum(s.values()), sum(c.values())
    res = {"workload": wl, "mode": mode, "server_samples": st, "client_samples": ct}
    for b in ("app", "fastnet", "af_xdp", "net", "kernel", "idle"):
        res["server_" + b] = round(100.0 * s.get(b, 0) / st, 1) if st else None
    top = sorted(other.items(), key=lambda kv: -kv[1])[:3]
    res["server_kernel_top"] = [[k, round(100.0 * v / st, 1)] for k, v in top] if st else []
    res["client_busy"] = round(100.0 * (ct - c.get("idle", 0)) / ct, 1) if ct else None
    print(json.dumps(res))


main()
