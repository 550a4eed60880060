#!/usr/bin/env bash
# tinyvm (igb): boots a small QEMU guest (TCG, q35 + intel-iommu) with two emulated Intel 82576
# NICs (QEMU `-device igb`, 8086:10c9), each behind its own PCIe root port, on one QEMU hub. The
# first (0000:01:00.0) is bound to vfio-pci and driven by joyride-ixgbe's igb personality from
# user space; the second stays with the guest kernel's igb driver as the Linux peer. Runs the
# in-guest test binary tinyvm/src/bin/tinyvm-igb-guest.rs and exits non-zero unless it reports
# "N passed, 0 failed".
#
# Usage: tinyvm/run-igb.sh [--prepare-only] [-- guest-test-args...]
#   guest args: --tcp-bytes SIZE (default 64M, each way) --conns N (default 1000)
# Needs QEMU >= 8 (`-device igb`). Debian bookworm ships 7.2: if the installed
# qemu-system-x86_64 lacks igb, this adds bookworm-backports on the same Debian mirror as the
# existing apt sources and installs `-t bookworm-backports qemu-system-x86` (10.x).
# Kernel + modules are cached in ${JOYRIDE_TINYVM_CACHE:-~/.cache/joyride-tinyvm}/<kver>-igb.
set -euo pipefail
start=$SECONDS
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${JOYRIDE_TINYVM_CACHE:-$HOME/.cache/joyride-tinyvm}
timeout_s=${TINYVM_TIMEOUT:-300}
prepare_only=0
guest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare-only) prepare_only=1 ;;
    --) shift; guest_args=("$@"); break ;;
    *) echo "tinyvm-igb: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
log() { printf 'tinyvm-igb [%3ss] %s\n' "$((SECONDS - start))" "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then log "apt-get update"; as_root apt-get update -qq; apt_updated=1; fi
}

# --- 1. host packages -------------------------------------------------------------------------
pkgs=(busybox-static kmod cpio xz-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
has_igb() { command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'; }
if ! has_igb; then
  # The Debian mirror the existing sources use (deb822 URIs: or one-line deb entries).
  mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports from $mirror"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" |
      as_root tee /etc/apt/sources.list.d/joyride-backports.sources >/dev/null
  fi
  apt_updated=0; apt_update_once
  log "installing qemu-system-x86 from bookworm-backports"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
  has_igb || { echo "tinyvm-igb: qemu-system-x86_64 still has no igb device" >&2; exit 1; }
fi
log "$(qemu-system-x86_64 --version | head -1)"

# --- 2. guest kernel (cached by version) --------------------------------------------------------
resolve_kernel() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
kpkg=$(resolve_kernel || true)
if [ -z "$kpkg" ]; then apt_update_once; kpkg=$(resolve_kernel); fi
kver=${kpkg#linux-image-}
kdir=$cache/$kver-igb
mods=(vfio vfio_iommu_type1 vfio-pci igb)
if [ ! -s "$kdir/vmlinux" ] || [ ! -s "$kdir/modules.order" ]; then
  log "preparing kernel $kver"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  (cd "$scratch" && apt-get download -q "$kpkg" >/dev/null 2>&1) || {
    apt_update_once; (cd "$scratch" && apt-get download -q "$kpkg" >/dev/null)
  }
  dpkg -x "$scratch"/*.deb "$scratch/x"
  vmlinuz=$(ls "$scratch"/x/boot/vmlinuz-*)
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1 || true)
  [ -n "$off" ] || { echo "tinyvm-igb: no xz stream in $vmlinuz" >&2; exit 1; }
  mkdir -p "$kdir.tmp"
  tail -c +"$((off + 1))" "$vmlinuz" | xz -dc 2>/dev/null >"$kdir.tmp/vmlinux" || true
  head -c 4 "$kdir.tmp/vmlinux" | grep -q ELF || { echo "tinyvm-igb: no ELF vmlinux" >&2; exit 1; }
  depmod -b "$scratch/x" "$kver"
  : >"$kdir.tmp/modules.order"
  for m in "${mods[@]}"; do
    modprobe -d "$scratch/x" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }' |
      while read -r ko; do
        name=$(basename "$ko"); name=${name%.xz}; name=${name%.zst}
        grep -qx "$name" "$kdir.tmp/modules.order" && continue
        case "$ko" in
          *.xz) xz -dc "$ko" >"$kdir.tmp/$name" ;;
          *.zst) zstd -qdc "$ko" >"$kdir.tmp/$name" ;;
          *) cp "$ko" "$kdir.tmp/$name" ;;
        esac
        echo "$name" >>"$kdir.tmp/modules.order"
      done
  done
  rm -rf "$kdir"; mv "$kdir.tmp" "$kdir"
  rm -rf "$scratch"; trap - EXIT
fi
log "kernel $kver: $(tr '\n' ' ' <"$kdir/modules.order")"
[ "$prepare_only" = 1 ] && exit 0

# --- 3. static test binary and initramfs (tinyvm/init.sh runs /bin/tinyvm-guest) ---------------
log "building the static igb guest test binary"
(cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' cargo build -q --release \
  --target x86_64-unknown-linux-gnu -p joyride-tinyvm --bin tinyvm-igb-guest)
bin=${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-gnu/release/tinyvm-igb-guest
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ird=$work/initramfs
mkdir -p "$ird"/{bin,sbin,proc,sys,dev,tmp,modules,etc}
cp /bin/busybox "$ird/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -sf busybox "$ird/bin/$a"
done
cp "$kdir"/*.ko "$kdir/modules.order" "$ird/modules/"
cp "$bin" "$ird/bin/tinyvm-guest"
printf '%s\n' "${guest_args[@]}" >"$ird/etc/guest-args"
cp "$root/tinyvm/init.sh" "$ird/init"
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"

# --- 4. boot: two igb cards, each on its own PCIe root port -------------------------------------
log "booting QEMU (TCG, timeout ${timeout_s}s)"
serial=$work/serial.log
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -machine q35 -m 512 \
  -nographic -no-reboot -monitor none -serial "file:$serial" \
  -kernel "$kdir/vmlinux" -initrd "$work/initramfs.cpio" \
  -append "console=ttyS0 intel_iommu=on panic=-1 quiet" \
  -device intel-iommu,intremap=on \
  -netdev hubport,id=jr,hubid=0 -netdev hubport,id=peer,hubid=0 \
  -device pcie-root-port,id=rp1,chassis=1,addr=0x3 \
  -device igb,bus=rp1,netdev=jr,mac=52:54:00:12:34:02,romfile= \
  -device pcie-root-port,id=rp2,chassis=2,addr=0x4 \
  -device igb,bus=rp2,netdev=peer,mac=52:54:00:12:34:01,romfile= \
  </dev/null >"$work/qemu.out" 2>&1
qrc=$?
set -e
cat "$serial"
[ -s "$work/qemu.out" ] && sed 's/^/qemu: /' "$work/qemu.out"
[ -n "${TINYVM_KEEP_LOG:-}" ] && cp "$serial" "$TINYVM_KEEP_LOG"
summary=$(tr -d '\r' <"$serial" | grep -aE '^[0-9]+ passed, [0-9]+ failed$' | tail -1 || true)
marker=$(tr -d '\r' <"$serial" | grep -aE '^TINYVM-EXIT rc=[0-9]+$' | tail -1 || true)
log "qemu rc=$qrc; ${summary:-no summary}; ${marker:-no exit marker}; total $((SECONDS - start)) s"
if [ "$qrc" = 124 ]; then echo "tinyvm-igb: QEMU timed out" >&2; exit 1; fi
case "$summary" in
  *" 0 failed") ;;
  *) echo "tinyvm-igb: FAILED" >&2; exit 1 ;;
esac
[ "$marker" = "TINYVM-EXIT rc=0" ] || { echo "tinyvm-igb: guest test exited non-zero" >&2; exit 1; }
log "PASSED"
