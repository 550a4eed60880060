#!/usr/bin/env bash
# Request/response applications on Joyride vs the kernel, same machine, same run (issue 7):
#   redis-server + redis-benchmark (SET and GET, 50 connections) and nginx (1 worker) + wrk
#   (50 connections, requests/s and p50/p99 latency), each with
#   joyride: both ends under `joyride run` on ONE joyrided (the client connects to the
#            service's own address: the engine's local path, no NIC);
#   kernel:  both ends on Linux's stack, two namespaces joined by a veth (as shipped).
# CPU cost per request: the machine's busy CPU time (all of /proc/stat's non-idle fields, every
# process and softirq included, the spinning service too) during the measurement / requests.
# (`perf stat` cycle counters are "not supported" on these VMs; CPU time is what there is.)
#
#   sudo bench/app-throughput.sh                 # SECS=5 per wrk run, N=100000 redis requests
#   sudo BIN=target/release bench/app-throughput.sh
#   sudo PLOT=bench/app-throughput.png bench/app-throughput.sh   # also a bar chart (gnuplot)
#   sudo STACKS=joyride bench/app-throughput.sh                  # one side only (profiling)
#
# Pinning (C0, C1 = the first two CPUs of CPUS): the server on C0, the client on C1; joyrided
# on C0 beside the server (on 2 cores the service's busy-poll has to share a core with someone;
# JD_CPU=1 puts it beside the client instead). Prints a table, the Joyride/kernel ratios, and
# results as CSV lines ("csv,…") for plotting.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-5}
N=${N:-100000}
TAG=jrtp$$
[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces, AF_PACKET)" >&2; exit 1; }
for t in ip redis-server redis-benchmark nginx wrk taskset python3; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install -y $t)" >&2; exit 1; }
done
if [[ -z "${BIN:-}" ]]; then
  cargo build --release -q -p joyride-service -p joyride-posix
  BIN=target/release
fi
JOYRIDED=$BIN/joyrided
JOYRIDE=$BIN/joyride
export JOYRIDE_LIB=$(realpath "$BIN/libjoyride.so")
unset JOYRIDE_FALLBACK
CPUS=${CPUS:-$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')}
C0=$(cut -d, -f1 <<<"$CPUS")
C1=$(cut -d, -f2 <<<"$CPUS")
[[ -n $C1 && $C1 != "$C0" ]] || { echo "needs two CPUs (CPUS=$CPUS)" >&2; exit 1; }
JD=$C0
[[ ${JD_CPU:-0} == 1 ]] && JD=$C1

TMP=$(mktemp -d /tmp/jrtp.XXXXXX)
chmod 755 "$TMP"
NSS=()
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f $TMP/nginx.pid ]] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null
  sleep 0.2
  for ns in "${NSS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

# Busy jiffies (user nice system irq softirq steal) of the whole machine.
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
HZ=$(getconf CLK_TCK)

ns() { ip netns add "$1"; ip -n "$1" link set lo up; NSS+=("$1"); }
# The kernel pair: server namespace $TAG-s (10.99.1.1), client namespace $TAG-c (10.99.1.2).
ns "$TAG-s"; ns "$TAG-c"
ip link add "${TAG}s" netns "$TAG-s" type veth peer name "${TAG}c" netns "$TAG-c"
ip -n "$TAG-s" addr add 10.99.1.1/24 dev "${TAG}s"; ip -n "$TAG-s" link set "${TAG}s" up
ip -n "$TAG-c" addr add 10.99.1.2/24 dev "${TAG}c"; ip -n "$TAG-c" link set "${TAG}c" up
# Joyride: joyrided on a veth in $TAG-j (10.99.2.1); its peer namespace only answers ARP.
ns "$TAG-j"; ns "$TAG-p"
ip link add "${TAG}j" netns "$TAG-j" type veth peer name "${TAG}p" netns "$TAG-p"
ip -n "$TAG-j" link set "${TAG}j" up
ip -n "$TAG-p" addr add 10.99.2.2/24 dev "${TAG}p"; ip -n "$TAG-p" link set "${TAG}p" up
ip netns exec "$TAG-j" taskset -c "$JD" "$JOYRIDED" ${JOYRIDED_ARGS:-} --backend "af-packet:${TAG}j" \
  --ip 10.99.2.1/24 --socket "$TMP/j.sock" >"$TMP/joyrided.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "serving applications" "$TMP/joyrided.log" && break; sleep 0.1; done
grep -q "serving applications" "$TMP/joyrided.log" || { cat "$TMP/joyrided.log"; exit 1; }

# srv/cli STACK CMD…: run pinned on the chosen stack.
srv() {
  local s=$1; shift
  if [[ $s == kernel ]]; then ip netns exec "$TAG-s" taskset -c "$C0" "$@"
  else ip netns exec "$TAG-j" taskset -c "$C0" "$JOYRIDE" run --socket "$TMP/j.sock" -- "$@"; fi
}
cli() {
  local s=$1; shift
  if [[ $s == kernel ]]; then ip netns exec "$TAG-c" taskset -c "$C1" "$@"
  else ip netns exec "$TAG-j" taskset -c "$C1" "$JOYRIDE" run --socket "$TMP/j.sock" -- "$@"; fi
}
addr() { [[ $1 == kernel ]] && echo 10.99.1.1 || echo 10.99.2.1; }
wait_port() { # STACK PORT
  for _ in $(seq 100); do
    if [[ $1 == kernel ]]; then
      ip netns exec "$TAG-c" bash -c "exec 3<>/dev/tcp/10.99.1.1/$2" 2>/dev/null && return 0
    else
      "$JOYRIDE" stat --socket "$TMP/j.sock" | grep -q "LISTEN .*:$2 " && return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on $1:$2" >&2; return 1
}

declare -A R
# wrk's "648.00us" / "1.05ms" / "1.20s" in µs.
us() { awk -v v="$1" 'BEGIN { f = 1; if (v ~ /ms$/) f = 1e3; else if (v ~ /us$/) f = 1; else if (v ~ /s$/) f = 1e6;
  sub(/[a-z]+$/, "", v); printf "%.0f", v * f }'; }
cat >"$TMP/nginx.conf" <<CONF
daemon on;
master_process on;
worker_processes 1;
user root;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nb; proxy_temp_path $TMP/np; fastcgi_temp_path $TMP/nf;
  uwsgi_temp_path $TMP/nu; scgi_temp_path $TMP/ns;
  server { listen 8080; root $TMP/www; }
}
CONF
mkdir -p "$TMP/www"
head -c 612 /dev/zero | tr '\0' x >"$TMP/www/index.html" # nginx's default page size

for stack in ${STACKS:-joyride kernel}; do
  a=$(addr $stack)
  # redis
  srv $stack redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save "" \
    --appendonly no --dir "$TMP" >"$TMP/redis-$stack.log" 2>&1 &
  PIDS+=($!)
  wait_port $stack 6379
  b0=$(busy)
  cli $stack redis-benchmark -h "$a" -p 6379 -n "$N" -c 50 -t set,get -q >"$TMP/rb-$stack.log" 2>&1
  b1=$(busy)
  for op in SET GET; do
    R[$stack.redis_$op]=$(tr '\r' '\n' <"$TMP/rb-$stack.log" | awk -v o="$op:" '$1 == o {print $2}' | tail -n1)
  done
  R[$stack.redis_cpu]=$(awk -v b="$((b1 - b0))" -v hz="$HZ" -v n="$((2 * N))" 'BEGIN {printf "%.1f", b / hz * 1e6 / n}')
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  # nginx
  srv $stack nginx -c "$TMP/nginx.conf" >"$TMP/nginx-$stack.log" 2>&1
  wait_port $stack 8080
  b0=$(busy)
  cli $stack wrk -t1 -c50 -d"${SECS}s" --latency "http://$a:8080/index.html" >"$TMP/wrk-$stack.log" 2>&1
  b1=$(busy)
  R[$stack.nginx_rps]=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk-$stack.log")
  R[$stack.nginx_p50]=$(us "$(awk '$1 == "50%" {print $2}' "$TMP/wrk-$stack.log")")
  R[$stack.nginx_p99]=$(us "$(awk '$1 == "99%" {print $2}' "$TMP/wrk-$stack.log")")
  reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk-$stack.log")
  R[$stack.nginx_cpu]=$(awk -v b="$((b1 - b0))" -v hz="$HZ" -v n="${reqs:-1}" 'BEGIN {printf "%.1f", b / hz * 1e6 / n}')
  if grep -qE "Socket errors|Non-2xx" "$TMP/wrk-$stack.log"; then
    echo "warning ($stack): $(grep -E 'Socket errors|Non-2xx' "$TMP/wrk-$stack.log")" >&2
  fi
  kill "$(cat "$TMP/nginx.pid")"; sleep 0.3; rm -f "$TMP/nginx.pid"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "machine: $(nproc) CPUs, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'); kernel $(uname -r)"
echo "server on CPU $C0, client on CPU $C1, joyrided on CPU $JD; $SECS s per wrk run, $N redis requests per op"
printf '%-34s %12s %12s %10s\n' "" joyride kernel "J/K"
row() { printf '%-34s %12s %12s %10s\n' "$1" "${R[joyride.$2]:--}" "${R[kernel.$2]:--}" "$(ratio "${R[joyride.$2]:-0}" "${R[kernel.$2]:-0}")"; }
row "redis SET req/s" redis_SET
row "redis GET req/s" redis_GET
row "redis CPU µs per request" redis_cpu
row "nginx+wrk req/s" nginx_rps
row "nginx+wrk latency p50 µs" nginx_p50
row "nginx+wrk latency p99 µs" nginx_p99
row "nginx CPU µs per request" nginx_cpu
for k in redis_SET redis_GET nginx_rps redis_cpu nginx_cpu; do
  echo "csv,$k,${R[joyride.$k]:-0},${R[kernel.$k]:-0}"
done
if [[ -n ${PLOT:-} ]] && command -v gnuplot >/dev/null; then
  {
    echo '$d << EOD'
    echo '"redis SET" '"${R[joyride.redis_SET]:-0} ${R[kernel.redis_SET]:-0}"
    echo '"redis GET" '"${R[joyride.redis_GET]:-0} ${R[kernel.redis_GET]:-0}"
    echo '"nginx+wrk" '"${R[joyride.nginx_rps]:-0} ${R[kernel.nginx_rps]:-0}"
    echo 'EOD'
    echo "set terminal pngcairo size 720,420; set output '$PLOT'"
    echo "set title 'requests/s, both ends on one stack ($(nproc) vCPU, same run)'"
    echo 'set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8'
    echo 'set ylabel "requests/s"; set yrange [0:*]; set grid ytics; set key outside bottom center horizontal'
    echo 'plot $d using 2:xtic(1) title "Joyride (one joyrided)", "" using 3 title "Linux kernel (veth)"'
  } | gnuplot && echo "plot: $PLOT"
fi
