# Appends one benchmark run to results.jsonl. Called by workloads.sh for every run:
#   emit.py FILE WORKLOAD MODE ROUND key=value...   (numbers stay numbers, ok= a boolean)
import json
import sys
import time


def value(v):
    if v in ("true", "false"):
        return v == "true"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def main():
    path, workload, mode, rnd = sys.argv[1:5]
    rec = {"workload": workload, "mode": mode, "round": int(rnd),
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    metrics = {}
    for kv in sys.argv[5:]:
        k, _, v = kv.partition("=")
        if k in ("ok", "loadavg", "error", "proof"):
            rec[k] = value(v) if k != "error" and k != "proof" else v
        elif v != "":
            metrics[k] = value(v)
    rec["metrics"] = metrics
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


main()
