//! TAP backend: a `/dev/net/tun` device opened with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`,
//! non-blocking. Every frame carries a 12-byte virtio-net header (virtio 1.x §5.1.6,
//! `struct virtio_net_hdr_v1`), read and written with `readv`/`writev` straight into and out of
//! the pool buffer: no copy beyond the kernel's own. TAP has no batched interface, so this
//! backend makes one syscall per frame (reads until `EAGAIN`).
//!
//! Checksums: with `TUNSETOFFLOAD(TUN_F_CSUM)` the kernel may hand us frames whose L4 checksum
//! is not filled in (`VIRTIO_NET_HDR_F_NEEDS_CSUM` → [`RxCsum::Partial`]) or already verified
//! (`VIRTIO_NET_HDR_F_DATA_VALID` → [`RxCsum::Verified`]), sparing the stack a checksum pass.
//! On transmit a [`crate::CsumRequest`] becomes `NEEDS_CSUM` and the kernel completes it.
//! GSO is never enabled, so a frame with a GSO type is malformed and counted as an error.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::{
    sys, Batch, Capabilities, LinkState, MacAddr, Nic, NicError, Offloads, Pool, QueueCounters,
    QueueId, RxCsum,
};

/// Size of `struct virtio_net_hdr_v1` (with `num_buffers`).
pub const VNET_HDR_LEN: usize = 12;
const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_NONE: u8 = 0;
const TUN_F_CSUM: libc::c_uint = 0x01;

/// How to open a [`Tap`].
#[derive(Clone, Debug)]
pub struct TapConfig {
    /// Interface name to create or attach to (e.g. `"jr0"`; `"tap%d"` lets the kernel choose).
    pub name: String,
    /// The MAC this end uses; `None` picks a locally administered one.
    pub mac: Option<MacAddr>,
    /// Let the kernel send frames with partial or pre-verified checksums (`TUN_F_CSUM`).
    pub csum_offload: bool,
}

impl TapConfig {
    /// Defaults for `name`: checksum offload on, generated MAC.
    pub fn new(name: &str) -> Self {
        TapConfig { name: name.to_string(), mac: None, csum_offload: true }
    }
}

/// A TAP device. One queue.
pub struct Tap {
    fd: OwnedFd,
    ctl: OwnedFd,
    name: String,
    mac: MacAddr,
    offload: bool,
    pool: Pool,
    counters: QueueCounters,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("name", &self.name).field("mac", &self.mac).finish()
    }
}

/// The parsed virtio-net header of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Start of the checksummed area.
    pub csum_start: u16,
    /// Checksum field offset from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the first [`VNET_HDR_LEN`] bytes (little-endian: virtio 1.x, and the TAP default
    /// on little-endian hosts).
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
        }
    }

    /// Serialises (GSO fields zero).
    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// What this header says about a received frame of `len` bytes; `None` if it is unusable
    /// (a GSO frame, or checksum offsets outside the frame).
    pub fn rx_csum(&self, len: usize) -> Option<RxCsum> {
        if self.gso_type != GSO_NONE {
            return None;
        }
        if self.flags & F_NEEDS_CSUM != 0 {
            let end = self.csum_start as usize + self.csum_offset as usize + 2;
            return (end <= len)
                .then_some(RxCsum::Partial { start: self.csum_start, offset: self.csum_offset });
        }
        Some(if self.flags & F_DATA_VALID != 0 { RxCsum::Verified } else { RxCsum::Unknown })
    }
}

impl Tap {
    /// Creates or attaches to the TAP interface `cfg.name` in the calling thread's network
    /// namespace; received frames land in buffers from `pool`.
    pub fn open(cfg: &TapConfig, pool: Pool) -> std::io::Result<Tap> {
        let flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        let (fd, name) = sys::tun_open(&cfg.name, flags)?;
        sys::tun_set_vnet_hdr_sz(fd.as_fd(), VNET_HDR_LEN as libc::c_int)?;
        sys::tun_set_offload(fd.as_fd(), if cfg.csum_offload { TUN_F_CSUM } else { 0 })?;
        let ctl = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
        let mac = cfg.mac.unwrap_or_else(|| {
            let h = name.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let h = h.to_be_bytes();
            MacAddr([0x02, 0x4a, h[0], h[1], h[2], h[3]])
        });
        Ok(Tap {
            fd,
            ctl,
            name,
            mac,
            offload: cfg.csum_offload,
            pool,
            counters: QueueCounters::default(),
        })
    }

    /// The interface name the kernel gave.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn check_queue(q: QueueId) -> Result<(), NicError> {
    if q.0 == 0 {
        Ok(())
    } else {
        Err(NicError::BadQueue(q))
    }
}

fn would_block(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

impl Nic for Tap {
    fn capabilities(&self) -> Capabilities {
        let mtu = sys::if_mtu(self.ctl.as_fd(), &self.name).unwrap_or(1500);
        Capabilities {
            mtu,
            mac: self.mac,
            rx_queues: 1,
            tx_queues: 1,
            offloads: Offloads {
                rx_checksum: self.offload,
                tx_checksum: true,
                tso: false,
                rss: false,
            },
        }
    }

    fn link(&self) -> LinkState {
        let flags = sys::if_flags(self.ctl.as_fd(), &self.name).unwrap_or(0);
        LinkState { up: flags & libc::IFF_UP as u32 != 0, speed_mbps: None }
    }

    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        check_queue(queue)?;
        let mut n = 0;
        while out.remaining() > 0 {
            let Some(mut b) = self.pool.alloc() else { break };
            let mut hdr = [0u8; VNET_HDR_LEN];
            let got = match sys::readv2(self.fd.as_fd(), &mut hdr, b.spare_mut()) {
                Ok(got) => got,
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e.into()),
            };
            let Some(len) = got.checked_sub(VNET_HDR_LEN) else {
                self.counters.rx_errors += 1;
                continue;
            };
            b.set_len(len.min(b.capacity()));
            match VnetHdr::parse(&hdr).rx_csum(b.len()) {
                Some(c) => b.set_rx_csum(c),
                None => {
                    self.counters.rx_errors += 1;
                    continue;
                }
            }
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += b.len() as u64;
            let _ = out.push(b);
            n += 1;
        }
        Ok(n)
    }

    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        check_queue(queue)?;
        let mut done = 0;
        let mut result = Ok(());
        for b in bufs.as_slice() {
            let hdr = match b.tx_csum() {
                Some(r) => VnetHdr {
                    flags: F_NEEDS_CSUM,
                    gso_type: GSO_NONE,
                    csum_start: r.start,
                    csum_offset: r.offset,
                },
                None => VnetHdr { flags: 0, gso_type: GSO_NONE, csum_start: 0, csum_offset: 0 },
            };
            match sys::writev2(self.fd.as_fd(), &hdr.emit(), b.data()) {
                Ok(_) => {
                    self.counters.tx_packets += 1;
                    self.counters.tx_bytes += b.len() as u64;
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.counters.tx_errors += 1,
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
            done += 1;
        }
        bufs.drain_front(done);
        result.map(|()| done)
    }

    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        (queue.0 == 0).then_some(self.counters)
    }

    fn wait_fd(&self, queue: QueueId) -> Option<RawFd> {
        (queue.0 == 0).then(|| self.fd.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_header_round_trip_and_validation() {
        let h = VnetHdr { flags: F_NEEDS_CSUM, gso_type: 0, csum_start: 34, csum_offset: 6 };
        assert_eq!(VnetHdr::parse(&h.emit()), h);
        assert_eq!(h.rx_csum(42), Some(RxCsum::Partial { start: 34, offset: 6 }));
        assert_eq!(h.rx_csum(41), None, "checksum field beyond the frame");
        let v = VnetHdr { flags: F_DATA_VALID, ..h };
        assert_eq!(v.rx_csum(10), Some(RxCsum::Verified));
        let g = VnetHdr { gso_type: 1, flags: 0, ..h };
        assert_eq!(g.rx_csum(1000), None, "GSO was never negotiated");
        let z = VnetHdr { flags: 0, gso_type: 0, csum_start: 0, csum_offset: 0 };
        assert_eq!(z.rx_csum(60), Some(RxCsum::Unknown));
    }
}
