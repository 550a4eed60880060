#!/usr/bin/env bash
# Bulk TCP throughput, same machine, same run:
#   1. Linux ↔ Linux over a veth pair (two namespaces), kernel defaults (TSO/GSO on);
#   2. Linux ↔ Linux over a veth with TSO/GSO off (the link the Joyride runs use);
#   3. Linux → Joyride and Joyride → Linux over a veth (joyrided on AF_PACKET);
#   4. Joyride → Joyride over the shared-memory wire (two joyrided processes).
# Prints Gb/s for each and the Joyride/Linux ratios. Needs root, iproute2, python3, ethtool
# (falls back to `ip link set … gso_max_segs 1`); uses iperf3 for an extra line when installed.
#
#   sudo bench/peer-throughput.sh            # MIB=1024 by default
#   MIB=256 JOYRIDED=target/release/joyrided bench/peer-throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MIB=${MIB:-1024}
TAG=jrbench$$
if [[ $(id -u) -ne 0 ]]; then echo "needs root (network namespaces, AF_PACKET)" >&2; exit 1; fi
command -v ip >/dev/null || { echo "needs iproute2 (ip)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 1; }
if [[ -z "${JOYRIDED:-}" ]]; then
  cargo build --release -q -p joyride-service --bin joyrided
  JOYRIDED=target/release/joyrided
fi
TMP=$(mktemp -d)
NSS=()
cleanup() {
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
  rm -f "/dev/shm/$TAG-wire"
}
trap cleanup EXIT

# pair NAME_A NAME_B IF_A IF_B: two namespaces joined by a veth, IPv6 off.
pair() {
  ip netns add "$1"; ip netns add "$2"; NSS+=("$1" "$2")
  ip link add "$3" netns "$1" type veth peer name "$4" netns "$2"
  for ns in "$1" "$2"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  done
}

# nogso NS IF: no TSO/GSO on IF (ethtool; else gso_max_segs 1, which slows Linux a lot).
NOGSO_HOW=ethtool
nogso() {
  if ip netns exec "$1" ethtool -K "$2" tso off gso off >/dev/null 2>&1; then :; else
    NOGSO_HOW="gso_max_segs 1"; ip -n "$1" link set "$2" gso_max_segs 1
  fi
}

SEND=$TMP/send.py
RECV=$TMP/recv.py
cat >"$SEND" <<'EOF'
import socket, sys, time, os
host, port, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = os.urandom(1 << 20)
for i in range(100):
    try:
        s = socket.create_connection((host, port), timeout=30); break
    except OSError:
        time.sleep(0.1)
t = time.time()
for i in range(mib):
    s.sendall(block)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
dt = time.time() - t
print("gbps=%.3f secs=%.3f" % (mib * 8 * 1048576 / dt / 1e9, dt), flush=True)
EOF
cat >"$RECV" <<'EOF'
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("listening", flush=True)
c, _ = s.accept(); n = 0; t = time.time()
buf = bytearray(1 << 20)
while True:
    k = c.recv_into(buf)
    if not k:
        break
    n += k
dt = time.time() - t
c.close()
print("gbps=%.3f secs=%.3f bytes=%d" % (n * 8 / dt / 1e9, dt, n), flush=True)
EOF
gbps() { grep -o 'gbps=[0-9.]*' | head -1 | cut -d= -f2; }
wait_listening() { for _ in $(seq 200); do grep -q listening "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# --- Linux <-> Linux ---
pair "$TAG-a" "$TAG-b" "${TAG}a" "${TAG}b"
ip -n "$TAG-a" addr add 10.95.1.1/24 dev "${TAG}a"; ip -n "$TAG-a" link set "${TAG}a" up
ip -n "$TAG-b" addr add 10.95.1.2/24 dev "${TAG}b"; ip -n "$TAG-b" link set "${TAG}b" up
linux_pair() {
  ip netns exec "$TAG-b" python3 "$RECV" 10.95.1.2 5201 >"$TMP/ll.out" &
  wait_listening "$TMP/ll.out"
  ip netns exec "$TAG-a" python3 "$SEND" 10.95.1.2 5201 "$MIB" | gbps
  wait
}
LL=$(linux_pair)
IPERF=""
if command -v iperf3 >/dev/null; then
  ip netns exec "$TAG-b" iperf3 -s -1 -B 10.95.1.2 >/dev/null &
  sleep 0.5
  IPERF=$(ip netns exec "$TAG-a" iperf3 -c 10.95.1.2 -n "${MIB}M" -f g | awk '/receiver/ {print $(NF-2)}')
  wait
fi
# The link the Joyride runs use: Linux segments TCP itself (AF_PACKET takes frames as the veth
# carries them, so no GSO super-frames).
nogso "$TAG-a" "${TAG}a"; nogso "$TAG-b" "${TAG}b"
LL1=$(linux_pair)

# --- Linux <-> Joyride over veth (AF_PACKET) ---
pair "$TAG-j" "$TAG-l" "${TAG}j" "${TAG}l"
ip -n "$TAG-j" link set "${TAG}j" up
ip -n "$TAG-l" addr add 10.95.2.1/24 dev "${TAG}l"
nogso "$TAG-l" "${TAG}l"
ip -n "$TAG-l" link set "${TAG}l" up
ip netns exec "$TAG-j" "$JOYRIDED" --backend "af-packet:${TAG}j" --ip 10.95.2.2/24 \
  --app sink:5001 --exit-when-done >"$TMP/lj.out" 2>"$TMP/lj.err" &
sleep 0.5
LJ_SENDER=$(ip netns exec "$TAG-l" python3 "$SEND" 10.95.2.2 5001 "$MIB" | gbps)
wait
LJ=$(grep '^sink:' "$TMP/lj.out" | gbps)
ip netns exec "$TAG-l" python3 "$RECV" 10.95.2.1 5002 >"$TMP/jl.out" &
wait_listening "$TMP/jl.out"
ip netns exec "$TAG-j" "$JOYRIDED" --backend "af-packet:${TAG}j" --ip 10.95.2.2/24 \
  --app "source:10.95.2.1:5002:${MIB}M" --exit-when-done >"$TMP/jl.src" 2>"$TMP/jl.err"
wait
JL=$(grep gbps "$TMP/jl.out" | gbps)

# --- Joyride <-> Joyride over the shm wire ---
"$JOYRIDED" --backend "shm:/dev/shm/$TAG-wire,create" --ip 10.95.3.1/24 --app sink:5001 \
  --exit-when-done >"$TMP/jj.out" 2>"$TMP/jj.err" &
sleep 0.3
"$JOYRIDED" --backend "shm:/dev/shm/$TAG-wire" --ip 10.95.3.2/24 \
  --app "source:10.95.3.1:5001:${MIB}M" --exit-when-done >"$TMP/jj.src" 2>"$TMP/jj.src.err"
wait
JJ=$(grep '^sink:' "$TMP/jj.out" | gbps)
JJ_SECS=$(grep -o 'secs=[0-9.]*' "$TMP/jj.out" | cut -d= -f2)
JJ_FRAMES=$(grep -o 'engine: rx_frames=[0-9]*' "$TMP/jj.err" | cut -d= -f2)
JJ_MPPS=$(python3 -c "print('%.3f' % ($JJ_FRAMES / $JJ_SECS / 1e6))")

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
echo "machine: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "transfer: $MIB MiB per run, one TCP stream, MSS 1448"
printf '%-44s %8s Gb/s\n' "Linux -> Linux, veth (TSO/GSO on), python" "$LL"
[[ -n "$IPERF" ]] && printf '%-44s %8s Gb/s\n' "Linux -> Linux, veth (TSO/GSO on), iperf3" "$IPERF"
printf '%-44s %8s Gb/s\n' "Linux -> Linux, veth, TSO/GSO off" "$LL1"
printf '%-44s %8s Gb/s (sender: %s)\n' "Linux -> Joyride (AF_PACKET)" "$LJ" "$LJ_SENDER"
printf '%-44s %8s Gb/s\n' "Joyride -> Linux (AF_PACKET)" "$JL"
printf '%-44s %8s Gb/s, %s Mpps rx at the sink\n' "Joyride -> Joyride (shm wire)" "$JJ" "$JJ_MPPS"
echo "TSO/GSO off via: $NOGSO_HOW"
echo "ratio Linux->Joyride / Linux->Linux(no GSO): $(ratio "$LJ" "$LL1")"
echo "ratio Joyride->Linux / Linux->Linux(no GSO): $(ratio "$JL" "$LL1")"
echo "ratio Linux->Joyride / Linux->Linux(TSO):   $(ratio "$LJ" "$LL")"
