//! AF_PACKET backend: an existing interface through one packet socket with memory-mapped rings.
//!
//! - Receive: a TPACKET_V2 ring of fixed frames (Documentation/networking/packet_mmap.rst). The
//!   kernel hands each frame over on its own (`TP_STATUS_USER` in the frame's header) and wakes a
//!   `poll(2)` on the socket; we copy the frame into a pool buffer and give the slot back
//!   (`TP_STATUS_KERNEL`). Not TPACKET_V3: V3 hands over whole blocks, only when full or when the
//!   block timer (at least 1 ms) retires them, so a lone frame (a request, a reply) waited up to
//!   1 ms and request/response traffic ran on a 1 ms cadence (`service/tests/sockperf.rs`: p50
//!   ≈ 520 µs; ≈ 150 µs with V2 and the engine's idle fixes, `bench/README.md`). A busy engine
//!   reads the ring without syscalls either way.
//! - Transmit: a TPACKET_V2 frame ring. We copy each buffer into a free frame, mark it
//!   `TP_STATUS_SEND_REQUEST`, and kick once per burst with a zero-length `send`. With
//!   `PACKET_QDISC_BYPASS` the kernel hands frames straight to the driver.
//! - `PACKET_IGNORE_OUTGOING`: our own transmissions do not come back on receive.
//!
//! The rings are the kernel's memory, so each frame is copied once each way (ring ↔ buffer).
//! Everything the kernel writes into the ring is bounds-checked before use.
//! Checksums: `TP_STATUS_CSUM_VALID` becomes [`RxCsum::Verified`]; `TP_STATUS_CSUMNOTREADY`
//! (a locally generated frame, e.g. from the other end of a veth, whose L4 checksum is still the
//! pseudo-header sum) becomes [`RxCsum::Partial`] after locating the field. Transmit checksum
//! requests are completed in software (the ring has no offload descriptor).

use std::cell::Cell;
use std::mem::offset_of;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;

use crate::mmap::MmapRegion;
use crate::{
    csum, sys, Batch, Capabilities, LinkState, MacAddr, Nic, NicError, Offloads, Pool,
    QueueCounters, QueueId, RxCsum,
};

const TPACKET_V2: libc::c_int = 1;
const ETH_P_ALL: u16 = 0x0003;

// Frame header (struct tpacket2_hdr).
const F_STATUS: usize = offset_of!(libc::tpacket2_hdr, tp_status);
const F_LEN: usize = offset_of!(libc::tpacket2_hdr, tp_len);
const F_SNAPLEN: usize = offset_of!(libc::tpacket2_hdr, tp_snaplen);
const F_MAC: usize = offset_of!(libc::tpacket2_hdr, tp_mac);
const F_HDR_LEN: usize = std::mem::size_of::<libc::tpacket2_hdr>();
/// Where transmit data starts in a frame: TPACKET2_HDRLEN - sizeof(sockaddr_ll), i.e. the header
/// rounded up to TPACKET_ALIGNMENT (net/packet/af_packet.c, tpacket_parse_header).
const TX_DATA: usize = (F_HDR_LEN + 15) & !15;
/// Where the kernel puts a received Ethernet header: the network header at
/// TPACKET_ALIGN(TPACKET2_HDRLEN + 16), the 14-byte MAC header before it (tpacket_rcv).
const RX_NET: usize = (F_HDR_LEN + 20 + 16 + 15) & !15;
const _: () = assert!(F_HDR_LEN == 32 && TX_DATA == 32 && F_STATUS == 0 && RX_NET == 80);

/// How to open an [`AfPacket`].
#[derive(Clone, Debug)]
pub struct AfPacketConfig {
    /// Interface name (in the calling thread's network namespace).
    pub ifname: String,
    /// Put the interface into promiscuous mode (undone when the socket closes).
    pub promiscuous: bool,
    /// Receive frames (slots of one frame each; rounded up to whole 64 KiB blocks).
    pub rx_frame_count: u32,
    /// Transmit frames (rounded up to whole 64 KiB blocks).
    pub tx_frame_count: u32,
    /// `PACKET_QDISC_BYPASS`.
    pub qdisc_bypass: bool,
}

impl AfPacketConfig {
    /// Defaults for `ifname`: 1024 receive frames, 512 transmit frames, qdisc bypass, not
    /// promiscuous.
    pub fn new(ifname: &str) -> Self {
        AfPacketConfig {
            ifname: ifname.to_string(),
            promiscuous: false,
            rx_frame_count: 1024,
            tx_frame_count: 512,
            qdisc_bypass: true,
        }
    }
}

/// An interface driven through a packet socket with TPACKET_V2 rings. One queue.
pub struct AfPacket {
    fd: OwnedFd,
    ctl: OwnedFd,
    ring: MmapRegion,
    ifname: String,
    mac: MacAddr,
    mtu: u32,
    pool: Pool,
    rx_frame_size: usize,
    rx_frames: u32,
    rx_next: u32,
    tx_base: usize,
    tx_frame_size: usize,
    tx_frames: u32,
    tx_next: u32,
    counters: QueueCounters,
    kernel_drops: Cell<u64>,
}

impl std::fmt::Debug for AfPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacket").field("ifname", &self.ifname).field("mac", &self.mac).finish()
    }
}

/// A ring of at least `frames` frames of `frame_size` bytes (a power of two) in blocks of
/// 64 KiB, or of one frame when frames are larger. Returns the request and the frame count.
fn ring(frame_size: usize, frames: u32) -> (libc::tpacket_req, u32) {
    let block = (1u32 << 16).max(frame_size as u32);
    let per_block = block / frame_size as u32;
    let blocks = frames.max(1).div_ceil(per_block);
    let req = libc::tpacket_req {
        tp_block_size: block,
        tp_block_nr: blocks,
        tp_frame_size: frame_size as u32,
        tp_frame_nr: blocks * per_block,
    };
    (req, blocks * per_block)
}

impl AfPacket {
    /// Opens `cfg.ifname` (in the calling thread's network namespace); received frames are
    /// copied into buffers from `pool`.
    pub fn open(cfg: &AfPacketConfig, pool: Pool) -> std::io::Result<AfPacket> {
        use std::io::{Error, ErrorKind};
        let ctl = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
        let ifindex = sys::if_index(ctl.as_fd(), &cfg.ifname)?;
        let mac = MacAddr(sys::if_hwaddr(ctl.as_fd(), &cfg.ifname)?);
        let mtu = sys::if_mtu(ctl.as_fd(), &cfg.ifname)?;
        // Protocol 0 until bound, so nothing queues before the rings exist.
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V2)?;
        if cfg.qdisc_bypass {
            sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32)?;
        }
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)?;
        // Room for the header, the MAC header and an MTU-sized packet (plus a VLAN tag).
        let rx_frame_size = (RX_NET + mtu as usize + 4).next_power_of_two().max(2048);
        let tx_frame_size = (TX_DATA + mtu as usize + 18).next_power_of_two().max(2048);
        if tx_frame_size.max(rx_frame_size) > 1 << 17 {
            return Err(Error::new(ErrorKind::InvalidInput, "MTU too large for the rings"));
        }
        let (rx, rx_frames) = ring(rx_frame_size, cfg.rx_frame_count);
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_RX_RING, &rx)?;
        let (tx, tx_frames) = ring(tx_frame_size, cfg.tx_frame_count);
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_TX_RING, &tx)?;
        let rx_len = rx.tp_block_size as usize * rx.tp_block_nr as usize;
        let tx_len = tx.tp_block_size as usize * tx.tp_block_nr as usize;
        // One mapping: the RX ring, then the TX ring (packet_mmap.rst).
        let ring = MmapRegion::shared(fd.as_fd(), rx_len + tx_len, true)?;
        sys::bind_packet(fd.as_fd(), ifindex, ETH_P_ALL)?;
        if cfg.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex as i32,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        }
        Ok(AfPacket {
            fd,
            ctl,
            ring,
            ifname: cfg.ifname.clone(),
            mac,
            mtu,
            pool,
            rx_frame_size,
            rx_frames,
            rx_next: 0,
            tx_base: rx_len,
            tx_frame_size,
            tx_frames,
            tx_next: 0,
            counters: QueueCounters::default(),
            kernel_drops: Cell::new(0),
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    fn rx_frame_off(&self, i: u32) -> usize {
        // Blocks are whole multiples of the frame size, so frames are contiguous.
        i as usize * self.rx_frame_size
    }

    fn tx_frame_off(&self, i: u32) -> usize {
        // Blocks are whole multiples of the frame size, so frames are contiguous.
        self.tx_base + i as usize * self.tx_frame_size
    }
}

fn check_queue(q: QueueId) -> Result<(), NicError> {
    if q.0 == 0 {
        Ok(())
    } else {
        Err(NicError::BadQueue(q))
    }
}

impl Nic for AfPacket {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mtu: self.mtu,
            mac: self.mac,
            rx_queues: 1,
            tx_queues: 1,
            offloads: Offloads { rx_checksum: true, tx_checksum: false, tso: false, rss: false },
        }
    }

    fn link(&self) -> LinkState {
        let flags = sys::if_flags(self.ctl.as_fd(), &self.ifname).unwrap_or(0);
        let up = flags & libc::IFF_UP as u32 != 0 && flags & libc::IFF_RUNNING as u32 != 0;
        LinkState { up, speed_mbps: None }
    }

    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        check_queue(queue)?;
        let fs = self.rx_frame_size;
        let mut n = 0;
        while out.remaining() > 0 {
            let p = self.rx_frame_off(self.rx_next);
            // Acquire: pairs with the kernel's release of the frame (smp_wmb before status).
            let status = self.ring.atomic_u32(p + F_STATUS).load(Ordering::Acquire);
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            let snaplen = self.ring.read_u32(p + F_SNAPLEN) as usize;
            let wire_len = self.ring.read_u32(p + F_LEN) as usize;
            let mac = self.ring.read_u16(p + F_MAC) as usize;
            if mac < F_HDR_LEN || mac + snaplen > fs || snaplen < wire_len {
                self.counters.rx_errors += 1; // out of the frame, or truncated by the ring
            } else {
                let Some(mut b) = self.pool.alloc() else {
                    break; // no buffer: keep the frame for the next burst
                };
                if snaplen > b.capacity() {
                    self.counters.rx_errors += 1;
                } else {
                    self.ring.read_bytes(p + mac, &mut b.spare_mut()[..snaplen]);
                    b.set_len(snaplen);
                    if status & libc::TP_STATUS_CSUM_VALID != 0 {
                        b.set_rx_csum(RxCsum::Verified);
                    } else if status & libc::TP_STATUS_CSUMNOTREADY != 0 {
                        if let Some((start, offset)) = csum::locate_l4(b.data()) {
                            b.set_rx_csum(RxCsum::Partial { start, offset });
                        }
                    }
                    self.counters.rx_packets += 1;
                    self.counters.rx_bytes += snaplen as u64;
                    let _ = out.push(b);
                    n += 1;
                }
            }
            // Release: our reads of this frame happen before the kernel refills it.
            self.ring.atomic_u32(p + F_STATUS).store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.rx_next = (self.rx_next + 1) % self.rx_frames;
        }
        Ok(n)
    }

    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        check_queue(queue)?;
        // Count the free frames ahead; they stay ours until we mark them.
        let mut free = 0;
        while free < bufs.len() && free < self.tx_frames as usize {
            let i = (self.tx_next + free as u32) % self.tx_frames;
            // Acquire: the kernel has finished reading a frame it marked AVAILABLE.
            let st = self.ring.atomic_u32(self.tx_frame_off(i) + F_STATUS).load(Ordering::Acquire);
            if st & (libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING) != 0 {
                break;
            }
            if st & libc::TP_STATUS_WRONG_FORMAT != 0 {
                self.counters.tx_errors += 1;
                self.ring.atomic_u32(self.tx_frame_off(i) + F_STATUS).store(0, Ordering::Relaxed);
            }
            free += 1;
        }
        let max = self.tx_frame_size - TX_DATA;
        let mut marked = 0;
        for mut b in bufs.drain_front(free) {
            if b.len() > max || (b.tx_csum().is_some() && !b.complete_partial_csum()) {
                self.counters.tx_drops += 1;
                continue;
            }
            let off = self.tx_frame_off(self.tx_next);
            self.ring.write_bytes(off + TX_DATA, b.data());
            self.ring.write_u32(off + F_LEN, b.len() as u32);
            self.ring.write_u32(off + F_SNAPLEN, b.len() as u32);
            // Release: the frame bytes above are visible before the kernel sees the request.
            self.ring
                .atomic_u32(off + F_STATUS)
                .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.tx_next = (self.tx_next + 1) % self.tx_frames;
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += b.len() as u64;
            marked += 1;
        }
        if marked > 0 {
            sys::kick_tx(self.fd.as_fd())?;
        }
        Ok(free)
    }

    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        if queue.0 != 0 {
            return None;
        }
        if let Ok(s) = sys::getsockopt_stats(self.fd.as_fd()) {
            // The kernel resets its counters on each read: accumulate.
            self.kernel_drops.set(self.kernel_drops.get() + u64::from(s.tp_drops));
        }
        let mut c = self.counters;
        c.rx_drops += self.kernel_drops.get();
        Some(c)
    }

    fn wait_fd(&self, queue: QueueId) -> Option<RawFd> {
        (queue.0 == 0).then(|| self.fd.as_raw_fd())
    }
}
