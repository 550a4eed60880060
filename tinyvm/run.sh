#!/usr/bin/env bash
# tinyvm: boots a small QEMU guest (TCG, q35 + intel-iommu) with two virtio-net NICs on one hub:
# 0000:00:03.0 is bound to vfio-pci and driven by Joyride's virtio PMD from user space,
# 0000:00:04.0 stays with the guest kernel as the Linux peer. Runs the in-guest test binary
# (tinyvm/src/bin/tinyvm-guest.rs; its last test runs the host's /usr/bin/curl, copied in with
# the libraries ldd lists, under `joyride run`) and exits non-zero unless it reports
# "N passed, 0 failed".
#
# Usage: tinyvm/run.sh [--prepare-only] [-- guest-test-args...]
# Installs (apt, idempotent, one `apt-get update`): qemu-system-x86 busybox-static kmod cpio
# xz-utils, and curl if there is none. Downloads (apt-get download, never installed) the
# current linux-image-amd64 ABI package and caches vmlinux + the needed modules in
# ${JOYRIDE_TINYVM_CACHE:-~/.cache/joyride-tinyvm}.
set -euo pipefail
start=$SECONDS
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${JOYRIDE_TINYVM_CACHE:-$HOME/.cache/joyride-tinyvm}
timeout_s=${TINYVM_TIMEOUT:-240}
prepare_only=0
guest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare-only) prepare_only=1 ;;
    --) shift; guest_args=("$@"); break ;;
    *) echo "tinyvm: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
log() { printf 'tinyvm [%3ss] %s\n' "$((SECONDS - start))" "$*"; }

# --- 1. host packages ---------------------------------------------------------------------
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
pkgs=(qemu-system-x86 busybox-static kmod cpio xz-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || apt_update_once() { log "apt-get update"; sudo apt-get update -qq; apt_updated=1; }
  apt_update_once
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. guest kernel (cached by version) ----------------------------------------------------
resolve_kernel() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
kpkg=$(resolve_kernel || true)
if [ -z "$kpkg" ]; then
  apt_update_once
  kpkg=$(resolve_kernel)
fi
kver=${kpkg#linux-image-}
kdir=$cache/$kver
mods=(vfio vfio_iommu_type1 vfio-pci virtio_pci virtio_net)
if [ ! -s "$kdir/vmlinux" ] || [ ! -s "$kdir/modules.order" ]; then
  log "preparing kernel $kver"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  (cd "$scratch" && apt-get download -q "$kpkg" >/dev/null 2>&1) || {
    apt_update_once
    (cd "$scratch" && apt-get download -q "$kpkg" >/dev/null)
  }
  dpkg -x "$scratch"/*.deb "$scratch/x"
  vmlinuz=$(ls "$scratch"/x/boot/vmlinuz-*)
  # The kernel tree's extract-vmlinux approach: find the xz stream's magic, decompress from it.
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1 || true)
  [ -n "$off" ] || { echo "tinyvm: no xz stream in $vmlinuz" >&2; exit 1; }
  mkdir -p "$kdir.tmp"
  tail -c +"$((off + 1))" "$vmlinuz" | xz -dc 2>/dev/null >"$kdir.tmp/vmlinux" || true
  head -c 4 "$kdir.tmp/vmlinux" | grep -q ELF || { echo "tinyvm: no ELF vmlinux in $vmlinuz" >&2; exit 1; }
  # modprobe --show-depends against the package's modules (depmod builds the modules.dep the
  # package leaves to its postinst) gives the load order.
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

# --- 3. static test binary and initramfs ------------------------------------------------------
log "building the static guest test binary and joyrided"
(cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' cargo build -q --release \
  --target x86_64-unknown-linux-gnu -p joyride-tinyvm --bin tinyvm-guest \
  -p joyride-service --bin joyrided --bin joyride)
# libjoyride.so is a cdylib: built for the host target (dynamically linked against the host's
# glibc, which goes into the initramfs with curl below).
log "building libjoyride.so"
(cd "$root" && cargo build -q --release -p joyride-posix)
libjoyride=${CARGO_TARGET_DIR:-$root/target}/release/libjoyride.so
bin=${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-gnu/release/tinyvm-guest
joyrided=${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-gnu/release/joyrided
joyride_cli=${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-gnu/release/joyride
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
# The real service binary, for the in-guest `joyrided --backend vfio:BDF` test (debug info
# stripped: the initramfs lives in the guest's 384 MiB), and the `joyride` CLI beside it.
objcopy --strip-debug "$joyrided" "$ird/bin/joyrided" 2>/dev/null || cp "$joyrided" "$ird/bin/joyrided"
objcopy --strip-debug "$joyride_cli" "$ird/bin/joyride" 2>/dev/null || cp "$joyride_cli" "$ird/bin/joyride"
# The in-guest `joyride run -- curl` test: the host's unmodified, dynamically linked curl, every
# library ldd lists for it and for libjoyride.so, and the dynamic loader, at the same paths.
curl_bin=$(command -v curl || true)
if [ -z "$curl_bin" ]; then
  apt_update_once
  log "installing curl"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null
  curl_bin=$(command -v curl)
fi
mkdir -p "$ird/usr/bin" "$ird/lib/joyride"
cp -L "$curl_bin" "$ird/usr/bin/curl"
objcopy --strip-debug "$libjoyride" "$ird/lib/joyride/libjoyride.so" 2>/dev/null ||
  cp "$libjoyride" "$ird/lib/joyride/libjoyride.so"
libs=$( (ldd "$curl_bin"; ldd "$libjoyride") |
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
for lib in $libs; do
  mkdir -p "$ird$(dirname "$lib")"
  cp -L "$lib" "$ird$lib"
done
printf '%s\n' "${guest_args[@]}" >"$ird/etc/guest-args"
cp "$root/tinyvm/init.sh" "$ird/init"
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"

# --- 4. boot ----------------------------------------------------------------------------------
log "booting QEMU (TCG, timeout ${timeout_s}s)"
serial=$work/serial.log
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -machine q35 -m 384 \
  -nographic -no-reboot -monitor none -serial "file:$serial" \
  -kernel "$kdir/vmlinux" -initrd "$work/initramfs.cpio" \
  -append "console=ttyS0 intel_iommu=on panic=-1 quiet" \
  -device intel-iommu,intremap=on \
  -netdev hubport,id=jr,hubid=0 -netdev hubport,id=peer,hubid=0 \
  -device virtio-net-pci,netdev=jr,disable-legacy=on,iommu_platform=on,addr=0x3,mac=52:54:00:12:34:02,romfile= \
  -device virtio-net-pci,netdev=peer,disable-legacy=on,iommu_platform=on,addr=0x4,mac=52:54:00:12:34:01,romfile= \
  </dev/null >"$work/qemu.out" 2>&1
qrc=$?
set -e
cat "$serial"
[ -s "$work/qemu.out" ] && sed 's/^/qemu: /' "$work/qemu.out"
[ -n "${TINYVM_KEEP_LOG:-}" ] && cp "$serial" "$TINYVM_KEEP_LOG"
# The serial console ends lines with CR LF.
summary=$(tr -d '\r' <"$serial" | grep -aE '^[0-9]+ passed, [0-9]+ failed$' | tail -1 || true)
marker=$(tr -d '\r' <"$serial" | grep -aE '^TINYVM-EXIT rc=[0-9]+$' | tail -1 || true)
log "qemu rc=$qrc; ${summary:-no summary}; ${marker:-no exit marker}; total $((SECONDS - start)) s"
if [ "$qrc" = 124 ]; then echo "tinyvm: QEMU timed out" >&2; exit 1; fi
case "$summary" in
  *" 0 failed") ;;
  *) echo "tinyvm: FAILED" >&2; exit 1 ;;
esac
[ "$marker" = "TINYVM-EXIT rc=0" ] || { echo "tinyvm: guest test exited non-zero" >&2; exit 1; }
log "PASSED"
