# Turns DIR/results.jsonl (one line per run, written by workloads.sh) into the report of
# bench/run.sh: medians per workload/metric/mode, fastnet/kernel ratios against issue 8's
# targets, as DIR/report.md, DIR/report.json and one gnuplot PNG per metric family.
# usage: report.py DIR
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

# (workload, metric, label, unit, better, target ratio or None, chart family)
METRICS = [
    ("nginx", "conn_per_s", "nginx, Connection: close", "conn/s", "high", 1.5, "connections"),
    ("nginx_both", "conn_per_s", "nginx + wrk both preloaded", "conn/s", "high", 3.0, "connections"),
    ("scale", "conn_per_s", "nginx, 2 workers (fork)", "conn/s", "high", 1.5, "connections"),
    ("nginx", "cpu_us_per_conn", "CPU per connection, nginx", "µs (machine)", "low", 0.7, "cpu"),
    ("nginx_both", "cpu_us_per_conn", "CPU per connection, both preloaded", "µs (machine)", "low", None, "cpu"),
    ("redis", "set_per_s", "redis SET, 50 clients", "req/s", "high", 1.5, "redis"),
    ("redis", "get_per_s", "redis GET, 50 clients", "req/s", "high", 1.5, "redis"),
    ("sockperf", "p50_us", "sockperf ping-pong p50", "µs", "low", None, "latency"),
    ("sockperf", "p99_us", "sockperf ping-pong p99", "µs", "low", None, "latency"),
    ("sockperf", "p999_us", "sockperf ping-pong p99.9", "µs", "low", None, "latency"),
    ("sockperf_latency", "p50_us", "sockperf p50, server FASTNET_PROFILE=latency", "µs", "low", 0.7, "latency"),
    ("sockperf_latency", "p99_us", "sockperf p99, server FASTNET_PROFILE=latency", "µs", "low", 0.7, "latency"),
    ("iperf3", "c2s_gbps", "iperf3 client→server", "Gbit/s", "high", 0.8, "bulk"),
    ("iperf3", "s2c_gbps", "iperf3 server→client (-R)", "Gbit/s", "high", 0.8, "bulk"),
    ("memory", "rss_idle_mb", "server RSS before the connections", "MB", "low", None, "memory"),
    ("memory", "rss_mb", "server RSS, 10 000 idle conns", "MB", "low", None, "memory"),
    ("memory", "rss_growth_mb", "server RSS growth for 10 000 conns", "MB", "low", None, "memory"),
    ("memory", "kernel_slab_delta_mb", "kernel slab growth, 10 000 idle conns", "MB (machine)", "low", None, "memory"),
]
FAMILIES = {
    "connections": "Short-lived connections (wrk, Connection: close), conn/s",
    "cpu": "Whole-machine CPU per connection, µs (lower is better)",
    "redis": "redis-benchmark, 50 clients, requests/s",
    "latency": "sockperf TCP ping-pong latency, µs, log scale (lower is better)",
    "bulk": "iperf3, one stream, Gbit/s",
    "memory": "10 000 idle connections, MB (lower is better)",
}


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": model,
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def fmt(v):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    d = sys.argv[1]
    runs = [json.loads(l) for l in open(os.path.join(d, "results.jsonl")) if l.strip()]
    for r in runs:
        m = r.get("metrics", {})
        if isinstance(m.get("rss_mb"), (int, float)) and isinstance(m.get("rss_idle_mb"), (int, float)):
            m["rss_growth_mb"] = round(m["rss_mb"] - m["rss_idle_mb"], 1)
    rounds = int(os.environ.get("BENCH_ROUNDS", "0")) or max((r["round"] for r in runs), default=0)
    rows = []
    for wl, key, label, unit, better, target, fam in METRICS:
        sel = [r for r in runs if r["workload"] == wl]
        if not sel:
            continue
        row = {"workload": wl, "metric": key, "label": label, "unit": unit, "better": better,
               "target_ratio": target, "family": fam}
        for mode in ("kernel", "fastnet"):
            mine = [r for r in sel if r["mode"] == mode]
            vals = [r["metrics"][key] for r in mine if r.get("ok") and key in r["metrics"]]
            row[mode] = {"median": statistics.median(vals) if vals else None, "values": vals,
                         "ok": len([r for r in mine if r.get("ok")]), "runs": len(mine),
                         "errors": sorted({r.get("error", "") for r in mine if not r.get("ok")})}
        k, f = row["kernel"]["median"], row["fastnet"]["median"]
        row["ratio"] = round(f / k, 3) if k and f is not None else None
        if row["ratio"] is None or target is None:
            row["meets_target"] = None
        else:
            row["meets_target"] = row["ratio"] >= target if better == "high" else row["ratio"] <= target
        rows.append(row)

    # The ceiling: raw XSK frames/s against fastnet's frames/s in the nginx workload.
    ceiling = None
    cl = [r for r in runs if r["workload"] == "ceiling"]
    if cl:
        c = cl[-1]
        ceiling = {"ok": bool(c.get("ok")), "error": c.get("error", ""),
                   "reflected_frames_per_s": c["metrics"].get("reflected_frames_per_s"),
                   "reflected_frames_per_s_2xsk": c["metrics"].get("reflected_frames_per_s_2xsk")}
        fr = [r["metrics"]["frames_per_s"] for r in runs
              if r["workload"] == "nginx" and r["mode"] == "fastnet" and r.get("ok") and "frames_per_s" in r["metrics"]]
        ceiling["fastnet_frames_per_s_nginx"] = statistics.median(fr) if fr else None
        ref = ceiling["reflected_frames_per_s"]
        if ref and fr:
            # The reflector counts a frame once (received and sent back); fastnet-stat counts
            # received and sent frames separately.
            ceiling["fraction"] = round(ceiling["fastnet_frames_per_s_nginx"] / ref, 3)
            ceiling["fraction_of_rx_plus_tx"] = round(ceiling["fastnet_frames_per_s_nginx"] / (2 * ref), 3)

    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    mach = machine()
    loads = [r.get("loadavg") for r in runs if isinstance(r.get("loadavg"), (int, float))]
    settings = {"rounds": rounds, "duration_s": int(os.environ.get("BENCH_DURATION", "0")) or None,
                "server_cpu": 1, "client_cpu": 0, "veth_gro": None}
    try:
        with open(os.path.join(d, "peer.json")) as f:
            settings["veth_gro"] = json.load(f).get("gro")
    except (OSError, ValueError):
        pass
    report = {"date": date, "machine": mach, "settings": settings,
              "loadavg_min": min(loads) if loads else None, "loadavg_max": max(loads) if loads else None,
              "summary": rows, "ceiling": ceiling, "runs": runs}
    with open(os.path.join(d, "report.json"), "w") as f:
        json.dump(report, f, indent=1)

    md = []
    md.append(f"Run {date} on {mach['nproc']} CPUs ({mach['cpu']}), Linux {mach['kernel']}; "
              f"{rounds} rounds of kernel then fastnet, {settings['duration_s']} s per run, server on "
              f"CPU 1, client on CPU 0; 1-minute load average at run starts {fmt(report['loadavg_min'])}–"
              f"{fmt(report['loadavg_max'])} (shared machine). GRO on both veth ends (the kernel "
              f"peer, and the server in kernel runs): {settings['veth_gro'] or 'unknown'}.")
    md.append("")
    md.append("| workload | unit | kernel (median) | fastnet (median) | fastnet/kernel | target | ok runs k/f |")
    md.append("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        k, f = r["kernel"], r["fastnet"]
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        if r["target_ratio"] is None:
            tgt = ""
        else:
            tgt = ("≥ " if r["better"] == "high" else "≤ ") + f"{r['target_ratio']}×"
            if r["meets_target"] is True:
                tgt += " met"
            elif r["meets_target"] is False:
                tgt += " **missed**"
        fv = fmt(f["median"]) if f["median"] is not None else "**failed**"
        kv = fmt(k["median"]) if k["median"] is not None else "**failed**"
        md.append(f"| {r['label']} | {r['unit']} | {kv} | {fv} | {ratio} | {tgt} | "
                  f"{k['ok']}/{k['runs']}, {f['ok']}/{f['runs']} |")
    if ceiling:
        if ceiling["ok"]:
            fr = ceiling.get("fastnet_frames_per_s_nginx")
            md.append(f"| raw AF_XDP reflector (1 XSK, 64 B) | frames/s | "
                      f"{fmt(ceiling['reflected_frames_per_s'])} | fastnet in nginx: {fmt(fr)} (rx+tx) | "
                      f"{('%.2f' % ceiling['fraction']) if ceiling.get('fraction') is not None else '—'} of the ceiling | ≥ 0.7 "
                      f"{'met' if ceiling.get('fraction') is not None and ceiling['fraction'] >= 0.7 else '**missed**' if ceiling.get('fraction') is not None else ''} | |")
        else:
            md.append(f"| raw AF_XDP reflector | frames/s | **failed** | | | | |")
    md.append("")
    fails = []
    for r in rows:
        for mode in ("kernel", "fastnet"):
            for e in r[mode]["errors"]:
                line = f"- {r['workload']} / {mode}: {e}"
                if e and line not in fails:
                    fails.append(line)
    if ceiling and not ceiling["ok"]:
        fails.append(f"- ceiling: {ceiling['error']}")
    if fails:
        md.append("Failed or aborted runs (not counted in the medians):")
        md.append("")
        md.extend(fails)
        md.append("")
    if ceiling and ceiling["ok"] and ceiling.get("fraction") is not None:
        md.append(f"The reflector counts a frame once (received and sent back: "
                  f"{fmt(ceiling['reflected_frames_per_s'])}/s with 1 XSK, "
                  f"{fmt(ceiling.get('reflected_frames_per_s_2xsk'))}/s with 2); fastnet's frames/s are "
                  f"fastnet-stat frames_rx + frames_tx over the run, so against rx + tx of the reflector "
                  f"the fraction is {ceiling['fraction_of_rx_plus_tx']:.2f}.")
        md.append("")

    # Where the CPU went (harness/cpu_split.py, last round of each workload).
    cpu = []
    try:
        with open(os.path.join(d, "cpu.jsonl")) as f:
            cpu = [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        pass
    report["cpu"] = cpu
    if cpu:
        md.append("Where the CPU went: a 2 s system-wide `perf` sample (cpu-clock) 2.5 s into the "
                  "last round's run. The server CPU's samples by where they fell (application "
                  "with libc; libfastnet.so; the kernel's AF_XDP and XDP code; the rest of its "
                  "network code; any other kernel code: system call entry, scheduler, "
                  "interrupts, paging; idle), and the client CPU's busy share (the load "
                  "generator and the kernel peer's stack), in % of each CPU's samples.")
        md.append("")
        md.append("| workload | mode | app | fastnet | AF_XDP/XDP | kernel net | kernel other | idle | client CPU busy | biggest in kernel other |")
        md.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for c in cpu:
            v = [fmt(c.get("server_" + b)) for b in ("app", "fastnet", "af_xdp", "net", "kernel", "idle")]
            top = ", ".join(f"{k} {fmt(p)}" for k, p in c.get("server_kernel_top", []))
            md.append(f"| {c['workload']} | {c['mode']} | " + " | ".join(v) +
                      f" | {fmt(c.get('client_busy'))} | {top} |")
        md.append("")

    charts = []
    if shutil.which("gnuplot"):
        for fam, title in FAMILIES.items():
            frs = [r for r in rows if r["family"] == fam]
            if not frs:
                continue
            dat = os.path.join(d, f"{fam}.dat")
            with open(dat, "w") as f:
                for r in frs:
                    k, fa = r["kernel"]["median"], r["fastnet"]["median"]
                    lab = r["label"].replace('"', "'")
                    if fa is None:
                        lab += " (fastnet failed)"
                    f.write(f"\"{lab}\" {k if k is not None else '?'} {fa if fa is not None else '?'}\n")
            png = os.path.join(d, f"{fam}.png")
            yaxis = "set logscale y; set yrange [1:*]" if fam == "latency" else "set yrange [0:*]"
            gp = f"""set terminal pngcairo size 960,460 font ",10"
set output "{png}"
set title "{title}"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing "?"
{yaxis}
set grid ytics
set key top right
set xtics noenhanced
set xtics scale 0 rotate by 15 right
set bmargin 7
set lmargin 26
set rmargin 4
plot "{dat}" using 2:xtic(1) title "kernel" lc rgb "#7f7f7f", "" using 3 title "fastnet" lc rgb "#1f77b4"
"""
            res = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True)
            if res.returncode == 0 and os.path.exists(png):
                charts.append(os.path.basename(png))
            else:
                print(f"report: gnuplot failed for {fam}: {res.stderr.strip()}", file=sys.stderr)
    report["charts"] = charts
    with open(os.path.join(d, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    md.append("Charts: " + (", ".join(charts) if charts else "none (gnuplot missing)"))
    with open(os.path.join(d, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")


main()
