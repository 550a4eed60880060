//! AF_PACKET backend: an existing interface through one packet socket with memory-mapped rings.
//!
//! - Receive: a TPACKET_V3 ring of blocks (Documentation/networking/packet_mmap.rst). The kernel
//!   fills a block with several frames and hands the whole block over (`TP_STATUS_USER`) when it
//!   is full or when `rx_block_timeout_ms` expires; we copy each frame into a pool buffer and give
//!   the block back (`TP_STATUS_KERNEL`) once all its frames are consumed. The timeout bounds the
//!   latency a lone frame can see (1 ms by default): the price of V3's batching.
//! - Transmit: a TPACKET_V3 frame ring (V3 transmit uses fixed frames, like V2). We copy each
//!   buffer into a free frame, mark it `TP_STATUS_SEND_REQUEST`, and kick once per burst with a
//!   zero-length `send`. With `PACKET_QDISC_BYPASS` the kernel hands frames straight to the driver.
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

const TPACKET_V3: libc::c_int = 2;
const ETH_P_ALL: u16 = 0x0003;

// Block descriptor (struct tpacket_block_desc, its hdr.bh1 = struct tpacket_hdr_v1).
const BD_HDR: usize = offset_of!(libc::tpacket_block_desc, hdr);
const BD_STATUS: usize = BD_HDR + offset_of!(libc::tpacket_hdr_v1, block_status);
const BD_NUM_PKTS: usize = BD_HDR + offset_of!(libc::tpacket_hdr_v1, num_pkts);
const BD_FIRST: usize = BD_HDR + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);
// Frame header (struct tpacket3_hdr).
const F_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
const F_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const F_LEN: usize = offset_of!(libc::tpacket3_hdr, tp_len);
const F_STATUS: usize = offset_of!(libc::tpacket3_hdr, tp_status);
const F_MAC: usize = offset_of!(libc::tpacket3_hdr, tp_mac);
const F_HDR_LEN: usize = std::mem::size_of::<libc::tpacket3_hdr>();
/// Where transmit data starts in a frame: TPACKET3_HDRLEN - sizeof(sockaddr_ll), i.e. the header
/// rounded up to TPACKET_ALIGNMENT (net/packet/af_packet.c, tpacket_parse_header).
const TX_DATA: usize = (F_HDR_LEN + 15) & !15;
const _: () = assert!(F_HDR_LEN == 48 && TX_DATA == 48 && BD_STATUS == 8 && F_STATUS == 20);

/// How to open an [`AfPacket`].
#[derive(Clone, Debug)]
pub struct AfPacketConfig {
    /// Interface name (in the calling thread's network namespace).
    pub ifname: String,
    /// Put the interface into promiscuous mode (undone when the socket closes).
    pub promiscuous: bool,
    /// Bytes per receive block (a multiple of the page size, power of two).
    pub rx_block_size: u32,
    /// Receive blocks.
    pub rx_block_count: u32,
    /// Milliseconds after which the kernel hands over a partly filled block.
    pub rx_block_timeout_ms: u32,
    /// Transmit frames (rounded up to whole 64 KiB blocks).
    pub tx_frame_count: u32,
    /// `PACKET_QDISC_BYPASS`.
    pub qdisc_bypass: bool,
}

impl AfPacketConfig {
    /// Defaults for `ifname`: 8 × 256 KiB receive blocks, 1 ms block timeout, 512 transmit
    /// frames, qdisc bypass, not promiscuous.
    pub fn new(ifname: &str) -> Self {
        AfPacketConfig {
            ifname: ifname.to_string(),
            promiscuous: false,
            rx_block_size: 1 << 18,
            rx_block_count: 8,
            rx_block_timeout_ms: 1,
            tx_frame_count: 512,
            qdisc_bypass: true,
        }
    }
}

/// An interface driven through a packet socket with TPACKET_V3 rings. One queue.
pub struct AfPacket {
    fd: OwnedFd,
    ctl: OwnedFd,
    ring: MmapRegion,
    ifname: String,
    mac: MacAddr,
    mtu: u32,
    pool: Pool,
    rx_block_size: usize,
    rx_blocks: u32,
    rx_block: u32,
    rx_left: u32,
    rx_off: usize,
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

fn req3(block_size: u32, block_nr: u32, frame_size: u32, tov: u32) -> libc::tpacket_req3 {
    libc::tpacket_req3 {
        tp_block_size: block_size,
        tp_block_nr: block_nr,
        tp_frame_size: frame_size,
        tp_frame_nr: block_size / frame_size * block_nr,
        tp_retire_blk_tov: tov,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    }
}

impl AfPacket {
    /// Opens `cfg.ifname` (in the calling thread's network namespace); received frames are
    /// copied into buffers from `pool`.
    pub fn open(cfg: &AfPacketConfig, pool: Pool) -> std::io::Result<AfPacket> {
        use std::io::{Error, ErrorKind};
        if !cfg.rx_block_size.is_power_of_two()
            || cfg.rx_block_size < 4096
            || cfg.rx_block_count == 0
        {
            return Err(Error::new(ErrorKind::InvalidInput, "rx ring geometry"));
        }
        let ctl = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
        let ifindex = sys::if_index(ctl.as_fd(), &cfg.ifname)?;
        let mac = MacAddr(sys::if_hwaddr(ctl.as_fd(), &cfg.ifname)?);
        let mtu = sys::if_mtu(ctl.as_fd(), &cfg.ifname)?;
        // Protocol 0 until bound, so nothing queues before the rings exist.
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3)?;
        if cfg.qdisc_bypass {
            sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32)?;
        }
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)?;
        let rx = req3(cfg.rx_block_size, cfg.rx_block_count, 2048, cfg.rx_block_timeout_ms.max(1));
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_RX_RING, &rx)?;
        let tx_frame_size = (TX_DATA + mtu as usize + 18).next_power_of_two().max(2048);
        if tx_frame_size > 1 << 16 {
            return Err(Error::new(ErrorKind::InvalidInput, "MTU too large for the TX ring"));
        }
        let tx_block = (1u32 << 16).max(tx_frame_size as u32);
        let per_block = tx_block / tx_frame_size as u32;
        let tx_blocks = cfg.tx_frame_count.max(1).div_ceil(per_block);
        let tx = req3(tx_block, tx_blocks, tx_frame_size as u32, 0);
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_TX_RING, &tx)?;
        let rx_len = cfg.rx_block_size as usize * cfg.rx_block_count as usize;
        let tx_len = tx_block as usize * tx_blocks as usize;
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
            rx_block_size: cfg.rx_block_size as usize,
            rx_blocks: cfg.rx_block_count,
            rx_block: 0,
            rx_left: 0,
            rx_off: 0,
            tx_base: rx_len,
            tx_frame_size,
            tx_frames: tx_blocks * per_block,
            tx_next: 0,
            counters: QueueCounters::default(),
            kernel_drops: Cell::new(0),
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Gives the current receive block back to the kernel and moves to the next.
    fn release_block(&mut self) {
        let base = self.rx_block as usize * self.rx_block_size;
        // Release: our reads of this block's frames happen before the kernel refills it.
        self.ring.atomic_u32(base + BD_STATUS).store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.rx_block = (self.rx_block + 1) % self.rx_blocks;
        self.rx_left = 0;
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
        let bs = self.rx_block_size;
        let mut n = 0;
        while out.remaining() > 0 {
            let base = self.rx_block as usize * bs;
            if self.rx_left == 0 {
                // Acquire: pairs with the kernel's release of the block (smp_wmb before status).
                let st = self.ring.atomic_u32(base + BD_STATUS).load(Ordering::Acquire);
                if st & libc::TP_STATUS_USER == 0 {
                    break;
                }
                let num = self.ring.read_u32(base + BD_NUM_PKTS);
                let first = self.ring.read_u32(base + BD_FIRST) as usize;
                if num == 0 || first < 48 || first >= bs {
                    if num != 0 {
                        self.counters.rx_errors += 1;
                    }
                    self.release_block();
                    continue;
                }
                self.rx_left = num;
                self.rx_off = first;
            }
            if self.rx_off + F_HDR_LEN > bs {
                self.counters.rx_errors += 1;
                self.release_block();
                continue;
            }
            let p = base + self.rx_off;
            let next = self.ring.read_u32(p + F_NEXT) as usize;
            let snaplen = self.ring.read_u32(p + F_SNAPLEN) as usize;
            let wire_len = self.ring.read_u32(p + F_LEN) as usize;
            let status = self.ring.read_u32(p + F_STATUS);
            let mac = self.ring.read_u16(p + F_MAC) as usize;
            if mac + snaplen > bs - self.rx_off || snaplen < wire_len {
                self.counters.rx_errors += 1; // out of the block, or truncated by the ring
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
            self.rx_left -= 1;
            if self.rx_left == 0 {
                self.release_block();
            } else if next == 0 {
                self.counters.rx_errors += 1;
                self.release_block();
            } else {
                self.rx_off += next;
            }
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
            self.ring.write_u32(off + F_NEXT, 0);
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
