#!/usr/bin/env bash
# The demo: install what is missing, build, then run fastnet's main job on the built-in
# test bed — an unmodified nginx, first on the kernel, then with LD_PRELOAD=libfastnet.so,
# each driven by wrk from the client namespace — and print both results side by side,
# with the proof that the second run was served by fastnet (its counters, and no kernel
# socket for the flows). The bed is torn down on every exit path.
#   DEMO_SECONDS (default 5): length of each wrk run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "demo: needs root (network namespaces, XDP); run it as root: bash scripts/demo.sh" >&2
    exit 1
fi
bash scripts/bootstrap.sh
bash scripts/build.sh >/dev/null
export FASTNET_BUILD=$PWD/${BUILD_DIR:-build}
export DEMO_SECONDS=${DEMO_SECONDS:-5}

exec tests/testbed/with-testbed.sh -- bash -c '
set -euo pipefail
source "$TB_LIB"
work=$(mktemp -d /tmp/fastnet-demo.XXXXXX)
nginx_pid=""
stop_nginx() {
    if [[ -n $nginx_pid ]]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
    nginx_pid=""
}
trap "stop_nginx; rm -rf $work" EXIT
mkdir -p "$work/tmp"
# One process, one worker: the same configuration for both runs.
cat > "$work/nginx.conf" <<EOF
master_process off;
daemon off;
worker_processes 1;
error_log $work/error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
    server {
        listen $TB_IP_SRV:8080 backlog=4096;
        location / { return 200 "hello from nginx\n"; }
    }
}
EOF

start_nginx() {   # start_nginx PORT [env assignments...]
    port=$1; shift
    sed "s/listen [0-9.:]*/listen $TB_IP_SRV:$port/" "$work/nginx.conf" > "$work/nginx-$port.conf"
    # ip netns exec, env and taskset all exec: $! is nginx itself.
    ip netns exec "$TB_NS_SRV" env "$@" taskset -c 1 nginx -c "$work/nginx-$port.conf" \
        -e "$work/error.log" 2> "$work/nginx.err" &
    nginx_pid=$!
    tb_wait_listen srv "$port" || { cat "$work/nginx.err" "$work/error.log" >&2; exit 1; }
}
# wrk in the client namespace on the other CPU; prints requests/s.
run_wrk() {   # run_wrk label [wrk args...]
    local label=$1; shift
    tb_cli taskset -c 0 wrk -t1 -c32 -d"${DEMO_SECONDS}s" "$@" "http://$TB_IP_SRV:$port/" > "$work/wrk.out" 2>&1 || true
    local rps errs
    rps=$(awk "/Requests\\/sec/ {print int(\$2)}" "$work/wrk.out")
    errs=$(awk "/Socket errors|Non-2xx/ {print}" "$work/wrk.out" | tr -s " " | paste -sd ";" -)
    echo "${rps:-0}" > "$work/$label"
    if [[ -n $errs ]]; then echo "   ($label: $errs)"; fi
}

echo
echo "== test bed $TB_PREFIX: server $TB_IP_SRV ($TB_NS_SRV), client $TB_IP_CLI ($TB_NS_CLI)"
echo "== nginx on the kernel: wrk ${DEMO_SECONDS}s, 32 connections"
start_nginx 8080
run_wrk kernel_close -H "Connection: close"
run_wrk kernel_keep
stop_nginx

echo "== the same nginx with LD_PRELOAD=libfastnet.so"
# A port of its own: TIME-WAIT sockets of the kernel run stay on 8080 for a minute.
start_nginx 8081 LD_PRELOAD="$FASTNET_BUILD/interpose/libfastnet.so" FASTNET_STRICT=1
run_wrk fastnet_close -H "Connection: close"
run_wrk fastnet_keep
# Proof while nginx still runs: fastnet served the flows, the kernel had none of them.
"$FASTNET_BUILD/interpose/fastnet-stat" "$nginx_pid" > "$work/stat.txt" 2>&1 || true
accepted=$("$FASTNET_BUILD/interpose/fastnet-stat" --json "$nginx_pid" 2>/dev/null |
           python3 -c "import json, sys; print(json.load(sys.stdin)[\"conn_accepted\"])" 2>/dev/null || echo 0)
tb_cli taskset -c 0 wrk -t1 -c8 -d2s "http://$TB_IP_SRV:$port/" > /dev/null 2>&1 &
wrk_pid=$!
sleep 1
kflows=$(tb_srv ss -tanH "( sport = :$port )" | grep -vc LISTEN || true)
wait "$wrk_pid" || true
stop_nginx

ratio() { awk -v a="$1" -v b="$2" "BEGIN { if (b > 0) printf \"%.2fx\", a / b; else print \"-\" }"; }
echo
printf "   %-34s %12s %12s %8s\n" "workload" "kernel" "fastnet" "ratio"
printf "   %-34s %12s %12s %8s\n" "HTTP, Connection: close (conn/s)" "$(cat $work/kernel_close)" "$(cat $work/fastnet_close)" \
    "$(ratio "$(cat $work/fastnet_close)" "$(cat $work/kernel_close)")"
printf "   %-34s %12s %12s %8s\n" "HTTP, keep-alive (requests/s)" "$(cat $work/kernel_keep)" "$(cat $work/fastnet_keep)" \
    "$(ratio "$(cat $work/fastnet_keep)" "$(cat $work/kernel_keep)")"
echo
echo "== proof that fastnet served the second run"
sed "s/^/   /" "$work/stat.txt" | head -20
echo "   kernel TCP sockets for port $port in the server namespace during fastnet load: $kflows"
if [[ $kflows -ne 0 || -z $accepted || $accepted -eq 0 ]]; then
    echo "== FAILED: the fastnet run was not accelerated"; exit 1
fi
echo "== ok; tearing the bed down"
'
