//! # joyride-tinyvm — the QEMU harness
//!
//! `tinyvm/run.sh` prepares a guest (Debian kernel from apt, uncompressed `vmlinux`, the vfio
//! and virtio modules, a busybox initramfs with the static test binary), boots it under TCG
//! with two virtio-net NICs on one QEMU hub, and reads the verdict from the serial console.
//! The in-guest tests are the `tinyvm-guest` binary (`src/bin/tinyvm-guest.rs`): the virtio
//! PMD over VFIO on 0000:00:03.0 against the guest kernel's own stack on 0000:00:04.0.
//!
//! This library holds the small helpers the binary shares with its unit tests.
#![forbid(unsafe_code)]

pub mod guest;

use std::io;
use std::path::Path;

/// Binds PCI device `bdf` to `vfio-pci` through sysfs (`driver_override`, unbind, probe):
/// [`joyride_vfio::bind::bind_to_vfio`], with its error as an `io::Error`.
pub fn bind_vfio(bdf: &str) -> io::Result<()> {
    joyride_vfio::bind::bind_to_vfio(bdf).map(|_| ()).map_err(io::Error::other)
}

/// The network interface the kernel created for PCI device `bdf` (virtio: under `virtioN/net`).
pub fn netdev_of(bdf: &str) -> Option<String> {
    let dev = Path::new("/sys/bus/pci/devices").join(bdf);
    for e in std::fs::read_dir(&dev).ok()?.flatten() {
        let net = e.path().join("net");
        let net = if net.is_dir() { net } else { continue };
        if let Some(n) = std::fs::read_dir(net).ok()?.flatten().next() {
            return n.file_name().into_string().ok();
        }
    }
    let net = dev.join("net");
    std::fs::read_dir(net).ok()?.flatten().next()?.file_name().into_string().ok()
}

/// The NIC's `(rx_packets, tx_packets)` from the `nic:` line of `joyrided`'s counter report
/// (printed on exit and on SIGUSR1).
pub fn nic_packets_from_report(report: &str) -> Option<(u64, u64)> {
    let line = report.lines().rev().find(|l| l.starts_with("nic: "))?;
    let get = |k: &str| {
        line.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok())
    };
    Some((get("rx_packets=")?, get("tx_packets=")?))
}

/// A counter of `/sys/class/net/IF/statistics/NAME`.
pub fn if_stat(ifname: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The ICMPv4 echo request payload (RFC 792): type 8, code 0, checksum, identifier, sequence.
pub fn icmp_echo_request(ident: u16, seq: u16, data: &[u8], out: &mut [u8]) {
    out[0] = 8;
    out[1] = 0;
    out[2..4].fill(0);
    out[4..6].copy_from_slice(&ident.to_be_bytes());
    out[6..8].copy_from_slice(&seq.to_be_bytes());
    out[8..8 + data.len()].copy_from_slice(data);
    let c = !joyride_drivers::csum::ones_complement_sum(0, &out[..8 + data.len()]);
    out[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Whether `frame` is an ICMPv4 echo reply (Ethernet II, IPv4) from `src` with `ident`.
pub fn is_echo_reply(frame: &[u8], src: [u8; 4], ident: u16) -> bool {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let icmp = 14 + ihl;
    frame[14 + 9] == 1
        && frame[26..30] == src
        && frame.len() >= icmp + 8
        && frame[icmp] == 0
        && frame[icmp + 4..icmp + 6] == ident.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nic_counters_from_a_joyrided_report() {
        let r = "engine: polls=9\nhost: Counters { .. }\nnic: rx_packets=1200 rx_bytes=9 \
                 rx_drops=0 rx_errors=0 tx_packets=1187 tx_bytes=7 tx_drops=0 tx_errors=0\n";
        assert_eq!(nic_packets_from_report(r), Some((1200, 1187)));
        assert_eq!(nic_packets_from_report("nic: rx_packets=1"), None);
        assert_eq!(nic_packets_from_report("joyrided: ready"), None);
    }

    #[test]
    fn echo_request_checksum_verifies() {
        let mut b = [0u8; 16];
        icmp_echo_request(0x1234, 7, b"abcdefgh", &mut b);
        assert_eq!(joyride_drivers::csum::ones_complement_sum(0, &b), 0xffff);
        let mut f = vec![0u8; 14 + 20];
        f[12] = 8;
        f[14] = 0x45;
        f[23] = 1;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        let mut reply = b;
        reply[0] = 0;
        f.extend_from_slice(&reply);
        assert!(is_echo_reply(&f, [10, 0, 0, 1], 0x1234));
        assert!(!is_echo_reply(&f, [10, 0, 0, 2], 0x1234));
        assert!(!is_echo_reply(&f, [10, 0, 0, 1], 0x1235));
        assert!(!is_echo_reply(&f[..40], [10, 0, 0, 1], 0x1234));
    }
}
