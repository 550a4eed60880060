#!/usr/bin/env bash
# Driver cost per packet (issue 9 "Benchmarks"): instructions per packet for rx and tx bursts of
# 32, counted by callgrind, for joyride-ixgbe on its 82599 and 82576 models and joyride-virtio
# on its fake device, in one run. See ixgbe/README.md "Driver cost per packet".
#
# Each workload is an #[ignore]d test (callgrind_{rx,tx}_*) doing 1,000 bursts of 32 60-byte
# frames through `&mut dyn Nic`. Callgrind collects only inside `<_ as Nic>::rx_burst` (or
# tx_burst): --toggle-collect. From that total we subtract the inclusive cost of the device
# model's register accesses reached from inside the burst (`<FakeBar as Mmio>::write/read`:
# the model's register file and, on a tail write, its DMA engine), read with
# `callgrind_annotate --inclusive=yes`. What is left is the driver's own work: ring reads and
# writes, shadow bookkeeping, pool alloc/free, counters, the bounds-checked BAR accessor.
#
# Usage: ixgbe/callgrind.sh [OUTDIR]   (default: target/callgrind); needs valgrind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${CARGO_TARGET_DIR:-$root/target}/callgrind}
mkdir -p "$out"
cd "$root"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 2; }
# The unit-test binaries, optimized (profile.release: opt-level 3, debug = 1 for symbols).
bins=$(cargo test --release -p joyride-ixgbe -p joyride-virtio --lib --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for l in sys.stdin:
    j = json.loads(l)
    if j.get("reason") == "compiler-artifact" and j.get("executable"):
        print(j["target"]["name"], j["executable"])')
bin_of() { awk -v n="$1" '$1 == n { print $2 }' <<<"$bins"; }
ixgbe=$(bin_of joyride_ixgbe)
virtio=$(bin_of joyride_virtio)
batches=1000
packets=$((batches * 32))
printf '%-12s %-3s %12s %12s %12s %10s %10s\n' driver dir "burst Ir" "model Ir" "driver Ir" "Ir/packet" "check"
run() { # name bin test dir
  local name=$1 bin=$2 test=$3 dir=$4 f="$out/$1-$4.callgrind"
  valgrind --tool=callgrind --callgrind-out-file="$f" \
    --toggle-collect="*as joyride_drivers::Nic>::${dir}_burst" \
    "$bin" --ignored --exact "tests::$test" --test-threads=1 >/dev/null 2>"$f.log"
  # --threshold=100: list every function (the default 99% cut also changes the inclusive sums).
  callgrind_annotate --inclusive=yes --threshold=100 "$f" >"$f.txt" 2>/dev/null
  # "PROGRAM TOTALS": everything inside the burst calls. callgrind_annotate lists a function
  # once per source file its code came from (inlining; the same file may even appear under an
  # absolute and a relative path); the entry of the function's own file carries its inclusive
  # total, the largest of them. Only the function table is read, not the annotated source.
  local total model
  total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' "$f.txt")
  model=$(awk '/Auto-annotated source/ { exit }
    $3 != "=>" && /FakeBar as joyride_vfio::bar::Mmio>::(write|read)( |$)/ {
      gsub(",", "", $1); fn = /::write/ ? "w" : "r"; if ($1 + 0 > m[fn]) m[fn] = $1 + 0 }
    END { print m["w"] + m["r"] }' "$f.txt")
  local drv=$((total - model))
  # Cross-check without callgrind_annotate: a second run whose collection is also toggled off
  # inside the model's register accesses (toggles nest), so its total is the driver alone.
  valgrind --tool=callgrind --callgrind-out-file="$f.check" \
    --toggle-collect="*as joyride_drivers::Nic>::${dir}_burst" \
    --toggle-collect="*FakeBar as joyride_vfio::bar::Mmio>::write" \
    --toggle-collect="*FakeBar as joyride_vfio::bar::Mmio>::read" \
    "$bin" --ignored --exact "tests::$test" --test-threads=1 >/dev/null 2>"$f.check.log"
  local check
  check=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$f.check.log")
  printf '%-12s %-3s %12d %12d %12d %10.1f %10.1f\n' "$name" "$dir" "$total" "$model" "$drv" \
    "$(echo "$drv / $packets" | bc -l)" "$(echo "$check / $packets" | bc -l)"
}
for d in rx tx; do
  run ixgbe-82599 "$ixgbe" "callgrind_${d}_x82599" $d
  run ixgbe-82576 "$ixgbe" "callgrind_${d}_i82576" $d
  run virtio-net "$virtio" "callgrind_${d}_virtio" $d
done
echo "($packets packets per row; Ir/packet = (burst - model) / packets; check = the same from"
echo " a run with collection also toggled off inside the model; callgrind output in $out)"
