#!/usr/bin/env bash
# Unmodified applications on Joyride vs the kernel, same machine, same run:
#   sockperf ping-pong latency (p50/p99/p99.9, UDP and TCP; sockperf's latency is RTT/2) and
#   iperf3 TCP throughput (one stream, receiver's rate), for
#   a. both ends under `joyride run` on ONE joyrided (traffic to the service's own IP: the
#      engine's local path — TCP looped back inside the engine, UDP delivered to the socket);
#   b. two joyrided joined by the shared-memory wire (`shm:` backend), one application on each;
#   d. the client under `joyride run` (joyrided on AF_PACKET, a veth, its own namespace), the
#      server on the kernel in the veth's other namespace (TSO/GSO off there);
#   c. both ends on the kernel: two namespaces joined by a veth, TSO/GSO off on both ends (the
#      link Joyride's AF_PACKET runs use), and as shipped (TSO/GSO on).
# Every process is pinned with taskset; the script prints where each one ran (its affinity and
# the CPUs its threads were last seen on, sampled mid-run). Needs root, iproute2, ethtool,
# sockperf, iperf3, python3 and taskset. Builds the release binaries first unless BIN is set.
#
#   sudo bench/app-latency.sh                       # SECS=3 per measurement
#   sudo SECS=2 CPUS=2,3 bench/app-latency.sh       # other cores (the first two of CPUS are used)
#   sudo BIN=target/release bench/app-latency.sh    # use already-built binaries
#
# Pinning (C0, C1 = the two cores of CPUS, default the first two this shell may use):
#   a: joyrided on C0, both applications on C1;
#   b: joyrided A and the server on C0, joyrided B and the client on C1;
#   d: joyrided on C0, the client and the (kernel) server on C1;
#   c: the client on C0, the server on C1 (the kernel's stack runs in their contexts/softirqs).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-3}
TAG=jrlat$$
if [[ $(id -u) -ne 0 ]]; then echo "needs root (network namespaces, AF_PACKET)" >&2; exit 1; fi
for t in ip ethtool sockperf iperf3 python3 taskset ps; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install -y $t)" >&2; exit 1; }
done
if [[ -z "${BIN:-}" ]]; then
  cargo build --release -q -p joyride-service -p joyride-posix
  BIN=target/release
fi
JOYRIDED=$BIN/joyrided
JOYRIDE=$BIN/joyride
export JOYRIDE_LIB=$BIN/libjoyride.so
unset JOYRIDE_FALLBACK
for f in "$JOYRIDED" "$JOYRIDE" "$JOYRIDE_LIB"; do
  [[ -e $f ]] || { echo "missing $f" >&2; exit 1; }
done
CPUS=${CPUS:-$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')}
C0=$(cut -d, -f1 <<<"$CPUS")
C1=$(cut -d, -f2 <<<"$CPUS")
[[ -n $C1 && $C1 != "$C0" ]] || { echo "needs two CPUs (CPUS=$CPUS)" >&2; exit 1; }

TMP=$(mktemp -d)
NSS=()
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
  rm -f "/dev/shm/$TAG-wire"
}
trap cleanup EXIT

# pair NS_A NS_B IF_A IF_B: two namespaces joined by a veth, IPv6 off.
pair() {
  ip netns add "$1"; ip netns add "$2"; NSS+=("$1" "$2")
  ip link add "$3" netns "$1" type veth peer name "$4" netns "$2"
  for ns in "$1" "$2"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  done
}

# wait_for FILE TEXT [SECONDS]: until FILE contains TEXT.
wait_for() {
  local n=$((${3:-20} * 20))
  for _ in $(seq "$n"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

# where LABEL PID: the process's affinity and the CPUs its threads were last on, appended to
# the placement log (sampled while the measurement runs).
WHERE=$TMP/where.txt
where() {
  local aff cpus
  aff=$(taskset -cp "$2" 2>/dev/null | awk -F': ' '{print $2}')
  cpus=$(ps -L -o psr= -p "$2" 2>/dev/null | sort -nu | xargs | tr ' ' ,)
  printf '  %-40s pid %-7s %-22s affinity %-4s ran on cpu %s\n' "$1" "$2" \
    "$(ps -o comm= -p "$2" 2>/dev/null)" "${aff:-?}" "${cpus:-?}" >>"$WHERE"
}

# Measurements fill R[setup.metric].
declare -A R
strip() { sed 's/\x1b\[[0-9;]*m//g'; }
pct() { grep "percentile $2 =" "$1" | awk '{print $NF}'; }

# Runs one sockperf ping-pong and one iperf3 for setup $1.
#   SRV_PFX / CLI_PFX: command prefixes (namespace, taskset, joyride run) for server and client;
#   DST: the server's address; SRV_BIND: what the server binds; EXTRA_WHERE: "label pid ...".
measure() {
  local setup=$1 proto port out srv cli
  for proto in udp tcp; do
    port=$([[ $proto == udp ]] && echo 11111 || echo 11112)
    local flag=()
    [[ $proto == tcp ]] && flag=(--tcp)
    out=$TMP/$setup-$proto
    "${SRV_PFX[@]}" sockperf server "${flag[@]}" -i "$SRV_BIND" \
      -p "$port" >"$out.srv" 2>&1 &
    srv=$!
    PIDS+=("$srv")
    wait_for "$out.srv" "using recvfrom"
    "${CLI_PFX[@]}" sockperf ping-pong "${flag[@]}" -i "$DST" -p "$port" \
      -t "$SECS" >"$out.cli" 2>&1 &
    cli=$!
    if [[ $proto == tcp ]]; then
      sleep 1
      echo " $setup:" >>"$WHERE"
      where "sockperf ping-pong (client)" "$cli"
      where "sockperf server" "$srv"
      for w in "${EXTRA_WHERE[@]}"; do where "${w% *}" "${w##* }"; done
    fi
    if ! wait_bounded "$cli" $((SECS + 20)); then
      echo "$setup $proto: sockperf ping-pong failed:" >&2; cat "$out.cli" >&2; exit 1
    fi
    kill "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
    strip <"$out.cli" >"$out.txt"
    if grep -q ERROR "$out.txt" || ! grep -q ' observations' "$out.txt"; then
      echo "$setup $proto: sockperf did not run cleanly:" >&2; cat "$out.txt" >&2; exit 1
    fi
    R[$setup.$proto.n]=$(grep -o 'Total [0-9]* observations' "$out.txt" | awk '{print $2}')
    R[$setup.$proto.drop]=$(grep -o 'dropped messages = [0-9]*' "$out.txt" | awk '{print $NF}')
    R[$setup.$proto.p50]=$(pct "$out.txt" 50.000)
    R[$setup.$proto.p99]=$(pct "$out.txt" 99.000)
    R[$setup.$proto.p999]=$(pct "$out.txt" 99.900)
  done
  out=$TMP/$setup-iperf
  "${SRV_PFX[@]}" iperf3 -s -4 -1 --forceflush -B "$SRV_BIND" -p 5201 \
    >"$out.srv" 2>&1 &
  srv=$!
  PIDS+=("$srv")
  wait_for "$out.srv" "Server listening"
  "${CLI_PFX[@]}" iperf3 -c "$DST" -p 5201 -t "$SECS" -f m >"$out.cli" 2>&1 &
  cli=$!
  sleep 1
  where "iperf3 -c" "$cli"
  where "iperf3 -s" "$srv"
  if ! wait_bounded "$cli" $((SECS + 20)); then
    echo "$setup: iperf3 failed:" >&2; cat "$out.cli" >&2; exit 1
  fi
  wait_bounded "$srv" 10 || true
  R[$setup.mbit]=$(awk '/receiver/ {for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") print $(i-1)}' "$out.cli")
  [[ -n ${R[$setup.mbit]} ]] || { echo "$setup: no iperf3 summary:" >&2; cat "$out.cli" >&2; exit 1; }
}

# start_joyrided LOG ARGS...: joyrided in the background (prefix in JD_PFX); sets JD_PID.
start_joyrided() {
  local log=$1
  shift
  "${JD_PFX[@]}" "$JOYRIDED" "$@" >"$log" 2>"$log.err" &
  JD_PID=$!
  PIDS+=("$JD_PID")
  wait_for "$log" "joyrided: serving applications"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wait_bounded PID SECONDS: waits for the background job PID; kills it after SECONDS. Returns its
# status (not `timeout CMD`, which would put a forking process under `joyride run`).
wait_bounded() {
  local end=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null && ((SECONDS < end)); do sleep 0.05; done
  if kill -0 "$1" 2>/dev/null; then
    echo "pid $1 still running after $2 s: killed" >&2
    kill "$1" 2>/dev/null || true
  fi
  wait "$1"
}

echo "measuring ${SECS} s per run; cores C0=$C0 C1=$C1" >&2

# --- a. two applications on one joyrided (the engine's local path) ---
pair "$TAG-aj" "$TAG-ax" "${TAG}aj" "${TAG}ax"
ip -n "$TAG-aj" link set "${TAG}aj" up
ip -n "$TAG-ax" link set "${TAG}ax" up
JD_PFX=(ip netns exec "$TAG-aj" taskset -c "$C0")
start_joyrided "$TMP/a.jd" --backend "af-packet:${TAG}aj" --ip 10.94.1.2/24 --socket "$TMP/a.sock"
A_JD=$JD_PID
SRV_PFX=(taskset -c "$C1" "$JOYRIDE" run --socket "$TMP/a.sock" --)
CLI_PFX=(taskset -c "$C1" "$JOYRIDE" run --socket "$TMP/a.sock" --)
DST=10.94.1.2 SRV_BIND=10.94.1.2
EXTRA_WHERE=("joyrided $A_JD")
measure a
# engine_stat SOCKET: the engine counters that explain the latencies.
engine_stat() {
  "$JOYRIDE" stat --socket "$1" | grep '^engine:' |
    grep -o 'tcp_looped=[0-9]*\|stuck_deadlines=[0-9]*\|busy_polls=[0-9]*\|sleeps=[0-9]*' | xargs
}
A_STAT=$(engine_stat "$TMP/a.sock")
stop "$A_JD"

# --- b. two joyrided over the shared-memory wire, one application on each ---
JD_PFX=(taskset -c "$C0")
start_joyrided "$TMP/b1.jd" --backend "shm:/dev/shm/$TAG-wire,create" --ip 10.94.2.1/24 \
  --socket "$TMP/b1.sock"
B_JD1=$JD_PID
JD_PFX=(taskset -c "$C1")
start_joyrided "$TMP/b2.jd" --backend "shm:/dev/shm/$TAG-wire" --ip 10.94.2.2/24 \
  --socket "$TMP/b2.sock"
B_JD2=$JD_PID
SRV_PFX=(taskset -c "$C0" "$JOYRIDE" run --socket "$TMP/b1.sock" --)
CLI_PFX=(taskset -c "$C1" "$JOYRIDE" run --socket "$TMP/b2.sock" --)
DST=10.94.2.1 SRV_BIND=10.94.2.1
EXTRA_WHERE=("joyrided A (server's) $B_JD1" "joyrided B (client's) $B_JD2")
measure b
B_STAT1=$(engine_stat "$TMP/b1.sock")
B_STAT2=$(engine_stat "$TMP/b2.sock")
stop "$B_JD2"
stop "$B_JD1"

# --- d. a client on Joyride (AF_PACKET), the server on the kernel ---
pair "$TAG-dj" "$TAG-dl" "${TAG}dj" "${TAG}dl"
ip -n "$TAG-dj" link set "${TAG}dj" up
ip -n "$TAG-dl" addr add 10.94.4.1/24 dev "${TAG}dl"
ip netns exec "$TAG-dl" ethtool -K "${TAG}dl" tso off gso off >/dev/null
ip -n "$TAG-dl" link set "${TAG}dl" up
JD_PFX=(ip netns exec "$TAG-dj" taskset -c "$C0")
start_joyrided "$TMP/d.jd" --backend "af-packet:${TAG}dj" --ip 10.94.4.2/24 --socket "$TMP/d.sock"
D_JD=$JD_PID
SRV_PFX=(ip netns exec "$TAG-dl" taskset -c "$C1")
CLI_PFX=(taskset -c "$C1" "$JOYRIDE" run --socket "$TMP/d.sock" --)
DST=10.94.4.1 SRV_BIND=10.94.4.1
EXTRA_WHERE=("joyrided $D_JD")
measure d
D_STAT=$(engine_stat "$TMP/d.sock")
stop "$D_JD"

# --- c. the kernel: two namespaces on a veth ---
pair "$TAG-kc" "$TAG-ks" "${TAG}kc" "${TAG}ks"
ip -n "$TAG-kc" addr add 10.94.3.1/24 dev "${TAG}kc"; ip -n "$TAG-kc" link set "${TAG}kc" up
ip -n "$TAG-ks" addr add 10.94.3.2/24 dev "${TAG}ks"; ip -n "$TAG-ks" link set "${TAG}ks" up
SRV_PFX=(ip netns exec "$TAG-ks" taskset -c "$C1")
CLI_PFX=(ip netns exec "$TAG-kc" taskset -c "$C0")
DST=10.94.3.2 SRV_BIND=10.94.3.2
EXTRA_WHERE=()
measure kship
ip netns exec "$TAG-kc" ethtool -K "${TAG}kc" tso off gso off >/dev/null
ip netns exec "$TAG-ks" ethtool -K "${TAG}ks" tso off gso off >/dev/null
measure knogso

# --- report ---
NAMES=(a b d knogso kship)
declare -A LABEL=(
  [a]="a. Joyride<->Joyride, one joyrided"
  [b]="b. Joyride<->Joyride, 2 joyrided, shm"
  [d]="d. Joyride->kernel, AF_PACKET, veth"
  [knogso]="c. kernel<->kernel, veth, TSO/GSO off"
  [kship]="c. kernel<->kernel, veth, as shipped"
)
echo "machine: $(nproc) vCPU, $(lscpu | grep 'Model name' | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "versions: $(sockperf --version 2>&1 | head -1 | xargs), $(iperf3 --version | head -1)"
echo "each: sockperf ping-pong -t $SECS (latency = RTT/2, us), iperf3 -c -t $SECS (one TCP stream)"
echo "placement (affinity and CPUs seen mid-run):"
cat "$WHERE"
printf '\n%-40s %25s %25s %10s\n' "" "UDP p50 / p99 / p99.9" "TCP p50 / p99 / p99.9" "iperf3"
printf '%-40s %25s %25s %10s\n' "setup" "(us)" "(us)" "(Mbit/s)"
three() { printf '%.1f / %.1f / %.1f' "${R[$1.p50]}" "${R[$1.p99]}" "${R[$1.p999]}"; }
for s in "${NAMES[@]}"; do
  printf '%-40s %25s %25s %10s\n' "${LABEL[$s]}" "$(three "$s.udp")" "$(three "$s.tcp")" \
    "${R[$s.mbit]}"
done
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
echo
echo "ratio Joyride / kernel, UDP and TCP p50 / p99 / p99.9, then iperf3 (latency: >1 = Joyride"
echo "slower; iperf3: <1 = Joyride slower); knogso = kernel with TSO/GSO off, kship = as shipped"
for s in a b d; do
  for base in knogso kship; do
    line="${s} / ${base}:"
    for p in udp tcp; do
      line+="  $p $(ratio "${R[$s.$p.p50]}" "${R[$base.$p.p50]}") / $(ratio "${R[$s.$p.p99]}" "${R[$base.$p.p99]}") / $(ratio "${R[$s.$p.p999]}" "${R[$base.$p.p999]}")"
    done
    line+="  iperf3 $(ratio "${R[$s.mbit]}" "${R[$base.mbit]}")"
    echo "$line"
  done
done
echo
echo "observations (UDP/TCP): $(for s in "${NAMES[@]}"; do printf '%s %s/%s  ' "$s" "${R[$s.udp.n]}" "${R[$s.tcp.n]}"; done)"
echo "dropped (UDP/TCP):      $(for s in "${NAMES[@]}"; do printf '%s %s/%s  ' "$s" "${R[$s.udp.drop]}" "${R[$s.tcp.drop]}"; done)"
echo "engine counters after the runs: a: $A_STAT"
echo "  b, joyrided A: $B_STAT1"
echo "  b, joyrided B: $B_STAT2"
echo "  d: $D_STAT"
