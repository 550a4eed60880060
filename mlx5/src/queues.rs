//! Send, receive, completion and event queues in DMA memory (PRM §"Work Queues", §"Send
//! Queue", §"Receive Queue", §"Completion Queues", §"Event Queues", §"Doorbell Record").
//!
//! Each ring is one [`DmaBuffer`]: the entries in whole 4 KiB pages (the `pas` list the
//! device gets), then one page holding the doorbell record. The rings are never Rust
//! references: entries are written and read by checked volatile accesses. What the driver
//! posted is remembered in a shadow (buffer, length, WQEBB count) in process memory; every CQE
//! field the device writes back (owner, opcode, WQE counter, byte count) is checked against it
//! before anything is trusted.

use std::sync::atomic::{fence, Ordering};

use joyride_drivers::PacketBuf;
use joyride_vfio::{Bar, Container, DmaBuffer, DmaMemory, VfioError};

use crate::cmdq::{copy_out, rmb_after_ownership};
use crate::prm::{get32, get_bits, put32, put64, put_bits, wq, HCA_PAGE};

/// Barrier: orders the stores of WQEs (or receive scatter entries) before the store of the
/// doorbell record that publishes them (PRM §"Doorbell Record": "the doorbell record must be
/// updated after the WQE is written").
#[inline]
fn wmb_wqe_before_dbr() {
    fence(Ordering::Release);
}

/// Barrier: orders the doorbell record store before the UAR doorbell write (the HCA may fetch
/// the record when the doorbell rings), and the CQ consumer index after the CQE reads.
#[inline]
fn wmb_dbr_before_doorbell() {
    fence(Ordering::SeqCst);
}

/// UAR page offsets (PRM §"User Access Region", Table "UAR Page Format").
pub mod uar {
    /// The first BlueFlame register / send doorbell: the first 8 bytes of the control segment.
    pub const SEND_DOORBELL: u64 = 0x800;
    /// EQ doorbell without re-arming: `eqn` (31:24) | consumer index (23:0).
    pub const EQ_DOORBELL: u64 = 0x48;
    /// Size of a UAR page.
    pub const PAGE: u64 = 4096;
}

/// Send WQE opcodes (PRM Table "Send WQE Opcodes").
pub mod opcode {
    /// No operation (a completion only).
    pub const NOP: u8 = 0x00;
    /// Send.
    pub const SEND: u8 = 0x0a;
    /// Large send offload.
    pub const LSO: u8 = 0x0e;
}

/// Ethernet segment `cs_flags` (PRM Table "Ethernet Segment Format").
pub mod cs {
    /// Compute the L3 (IPv4 header) checksum.
    pub const L3: u8 = 1 << 6;
    /// Compute the L4 (TCP/UDP) checksum.
    pub const L4: u8 = 1 << 7;
}

/// CQE opcodes (PRM Table "CQE Opcodes", the `opcode` nibble of `op_own`).
pub mod cqe_op {
    /// Requester (send) completion.
    pub const REQ: u8 = 0x0;
    /// Responder send (receive) completion.
    pub const RESP_SEND: u8 = 0x2;
    /// Requester error.
    pub const REQ_ERR: u8 = 0xd;
    /// Responder error.
    pub const RESP_ERR: u8 = 0xe;
    /// Invalid: the entry was never written.
    pub const INVALID: u8 = 0xf;
}

/// Offsets in a 64-byte CQE (PRM Table "Completion Queue Entry Format").
pub mod cqe {
    /// `l4_ok` (bit 2), `l3_ok` (bit 1), `l2_ok` (bit 0) of byte 0x1c.
    pub const FLAGS_WORD: usize = 0x1c;
    /// `rx_hash_result`.
    pub const RSS_HASH: usize = 0x0c;
    /// `byte_cnt`.
    pub const BYTE_CNT: usize = 0x2c;
    /// Error CQE: `vendor_err_synd` (15:8) | `syndrome` (7:0) of this word.
    pub const ERR_SYNDROME: usize = 0x34;
    /// `sop_drop_qpn`: the SQ/RQ number (23:0).
    pub const QPN: usize = 0x38;
    /// `wqe_counter` (31:16) | `signature` (15:8) | `op_own` (7:0).
    pub const TAIL: usize = 0x3c;
}

/// The two lengths we need per ring: bytes of entries (whole pages) and the doorbell page.
fn ring_alloc(container: &Container, entry_bytes: usize) -> Result<(DmaBuffer, usize), VfioError> {
    let pages = entry_bytes.div_ceil(HCA_PAGE);
    let buf = container.alloc_dma((pages + 1) * HCA_PAGE, false)?;
    buf.mem().zero();
    Ok((buf, pages))
}

/// A parsed CQE, every field validated for range; the queue logic checks it against the shadow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cqe {
    /// A send completed up to and including the WQE starting at `wqe_counter`.
    Req {
        /// WQEBB counter of the WQE.
        wqe_counter: u16,
    },
    /// A frame arrived into the receive WQE `wqe_counter`.
    Recv {
        /// Receive WQE counter.
        wqe_counter: u16,
        /// Bytes written.
        byte_cnt: u32,
        /// The HCA verified the L3 and L4 checksums of a TCP or UDP packet.
        csum_ok: bool,
        /// RSS hash.
        hash: u32,
    },
    /// An error completion (requester or responder).
    Error {
        /// The CQE opcode (0xd or 0xe).
        opcode: u8,
        /// WQE counter of the failed WQE.
        wqe_counter: u16,
        /// `syndrome` (PRM Table "CQE Error Syndromes").
        syndrome: u8,
        /// `vendor_err_synd`.
        vendor: u8,
    },
    /// An opcode this driver never asked for.
    Unknown(u8),
}

/// Parses a CQE (PRM Table "Completion Queue Entry Format").
pub fn parse_cqe(b: &[u8; 64]) -> Cqe {
    let tail = get32(b, cqe::TAIL);
    let opcode = (tail >> 4) as u8 & 0xf;
    let wqe_counter = (tail >> 16) as u16;
    match opcode {
        cqe_op::REQ => Cqe::Req { wqe_counter },
        cqe_op::RESP_SEND => {
            let f = get32(b, cqe::FLAGS_WORD);
            let (ok, l4_type) = ((f >> 24) & 0x7, (f >> 20) & 0x7);
            // l3_ok and l4_ok, on a TCP (1, 3, 4) or UDP (2) packet.
            let csum_ok = ok & 0b110 == 0b110 && (1..=4).contains(&l4_type);
            Cqe::Recv {
                wqe_counter,
                byte_cnt: get32(b, cqe::BYTE_CNT),
                csum_ok,
                hash: get32(b, cqe::RSS_HASH),
            }
        }
        cqe_op::REQ_ERR | cqe_op::RESP_ERR => Cqe::Error {
            opcode,
            wqe_counter,
            syndrome: get_bits(b, cqe::ERR_SYNDROME, 7, 0) as u8,
            vendor: get_bits(b, cqe::ERR_SYNDROME, 15, 8) as u8,
        },
        o => Cqe::Unknown(o),
    }
}

/// A completion queue of 64-byte CQEs.
pub struct Cq {
    buf: DmaBuffer,
    pages: usize,
    log_size: u8,
    cc: u32,
    /// The CQ number.
    pub cqn: u32,
}

impl Cq {
    /// Allocates `1 << log_size` CQEs, each marked invalid and owned by the hardware's first
    /// pass (PRM §"Completion Queues": software initializes `op_own` to 0xf1).
    pub fn new(container: &Container, log_size: u8) -> Result<Cq, VfioError> {
        let (buf, pages) = ring_alloc(container, wq::CQE << log_size)?;
        for i in 0..1usize << log_size {
            buf.mem().write_u32(i * wq::CQE + cqe::TAIL, 0xf1u32.to_be());
        }
        Ok(Cq { buf, pages, log_size, cc: 0, cqn: 0 })
    }

    /// Device address of the ring, its page count and the doorbell record's address.
    pub fn addrs(&self) -> (u64, usize, u64) {
        (self.buf.iova(), self.pages, self.buf.iova() + (self.pages * HCA_PAGE) as u64)
    }

    /// log2 of the entries.
    pub fn log_size(&self) -> u8 {
        self.log_size
    }

    /// The next CQE if software owns it: the owner bit must equal the pass bit of the consumer
    /// counter and the opcode must not be INVALID. A CQE from the wrong pass is not ready (a
    /// device that writes one is ignored until it writes the right phase). Only the words
    /// [`parse_cqe`] reads are copied (0x08..0x10, 0x18..0x20, 0x28..0x40); the rest is zero.
    pub fn poll(&self) -> Option<[u8; 64]> {
        let slot = (self.cc & ((1 << self.log_size) - 1)) as usize;
        let off = slot * wq::CQE;
        let tail = u32::from_be(self.buf.mem().read_u32(off + cqe::TAIL));
        let owner = tail & 1;
        let phase = (self.cc >> self.log_size) & 1;
        if (tail >> 4) as u8 & 0xf == cqe_op::INVALID || owner != phase {
            return None;
        }
        rmb_after_ownership();
        // Only the words `parse_cqe` reads (hash, flags, byte count, syndrome, qpn + tail):
        // five 8-byte loads instead of sixteen 4-byte ones; the rest stays zero.
        let mut b = [0u8; 64];
        let m = self.buf.mem();
        for at in [0x08, 0x18, 0x28, 0x30, 0x38] {
            copy_word64(m, off, &mut b, at);
        }
        Some(b)
    }

    /// Consumes the CQE [`Cq::poll`] returned.
    pub fn advance(&mut self) {
        self.cc = self.cc.wrapping_add(1);
    }

    /// Publishes the consumer counter in the doorbell record (`update_ci`, 23:0), so the HCA
    /// may reuse the entries.
    pub fn update_ci(&self) {
        wmb_dbr_before_doorbell();
        let off = self.pages * HCA_PAGE;
        self.buf.mem().write_u32(off, (self.cc & 0xff_ffff).to_be());
    }
}

/// One posted send WQE as the driver remembers it.
struct TxSlot {
    buf: Option<PacketBuf>,
    nbb: u16,
}

/// A cyclic send queue of 64-byte WQEBBs.
pub struct Sq {
    buf: DmaBuffer,
    pages: usize,
    log_size: u8,
    /// WQEBB producer counter (16 bits on the wire).
    pc: u16,
    /// WQEBB consumer counter: the first WQEBB not known complete.
    cc: u16,
    shadow: Vec<Option<TxSlot>>,
    last_start: Option<u16>,
    since_ce: u16,
    /// The SQ number.
    pub sqn: u32,
    /// The lkey data segments carry.
    pub lkey: u32,
}

/// How to send one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOpts {
    /// Ethernet segment `cs_flags`.
    pub cs_flags: u8,
    /// LSO: maximum segment size and the bytes of L2+L3+L4 headers (all inlined).
    pub lso: Option<(u16, u16)>,
    /// Bytes inlined into the Ethernet segment when not LSO (PRM: at least the L2 header, 18
    /// bytes with a VLAN tag, when `min_wqe_inline_mode` is L2).
    pub inline: u16,
}

/// Bytes of the WQE build buffer: the largest WQE this driver builds (control + Ethernet + 256
/// inline bytes + one data segment = 304) rounded up to whole 64-byte WQEBBs, so that every
/// WQEBB is copied to the ring straight from it.
pub const MAX_WQE: usize = (16 + 16 + 256 + 16usize).next_multiple_of(64);

/// Copies 8-byte words from `src` (a multiple of 8 long) into DMA memory at `off` (8-aligned),
/// byte order kept: half the checked accesses of `copy_in`, on the per-packet paths.
#[inline]
fn copy_in64(mem: &DmaMemory, off: usize, src: &[u8]) {
    for (i, w) in src.chunks_exact(8).enumerate() {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        mem.write_u64(off + 8 * i, v);
    }
}

/// Copies the 8-byte word at `off + at` of DMA memory into `b[at..at + 8]`, byte order kept.
#[inline]
fn copy_word64(mem: &DmaMemory, off: usize, b: &mut [u8; 64], at: usize) {
    b[at..at + 8].copy_from_slice(&mem.read_u64(off + at).to_ne_bytes());
}

/// Builds a send WQE (PRM §"Send WQE Format": control segment, Ethernet segment with inline
/// headers, one memory-pointer data segment). Returns the bytes (a multiple of 16) and `ds`.
pub fn build_send_wqe(
    buf: &mut [u8; MAX_WQE],
    wqe_index: u16,
    sqn: u32,
    lkey: u32,
    frame: &[u8],
    iova: u64,
    o: &TxOpts,
) -> Option<usize> {
    let (op, inline) = match o.lso {
        Some((_, h)) => (opcode::LSO, usize::from(h)),
        None => (opcode::SEND, usize::from(o.inline).min(frame.len())),
    };
    if inline > 256 || inline > frame.len() || inline < 2.min(frame.len()) {
        return None;
    }
    // Zero only the WQEBBs this WQE can occupy (headers + inline + data segment).
    let most = (16 + 0x0e + inline).next_multiple_of(16).max(32) + 16;
    buf[..most.next_multiple_of(64)].fill(0);
    // Ethernet segment at 16: cs_flags (byte 4), mss (6..8), inline_hdr_sz (0x0c..0x0e), the
    // inline headers from 0x0e on, running into the following 16-byte units.
    let e = 16;
    buf[e + 4] = o.cs_flags;
    if let Some((mss, _)) = o.lso {
        buf[e + 6..e + 8].copy_from_slice(&mss.to_be_bytes());
    }
    buf[e + 0x0c..e + 0x0e].copy_from_slice(&(inline as u16).to_be_bytes());
    buf[e + 0x0e..e + 0x0e + inline].copy_from_slice(&frame[..inline]);
    let mut len = (e + 0x0e + inline).next_multiple_of(16).max(32);
    let rest = frame.len() - inline;
    if rest > 0 {
        // Data segment (PRM Table "Memory Pointer Data Segment"): byte_count, lkey, address.
        put32(buf, len, rest as u32);
        put32(buf, len + 4, lkey);
        put64(buf, len + 8, iova + inline as u64);
        len += 16;
    }
    let ds = len / 16;
    // Control segment (PRM Table "Control Segment Format"): opc_mod | wqe_index | opcode;
    // sqn | ds; fm_ce_se (CE set later for the last WQE of a burst).
    put32(buf, 0, (u32::from(wqe_index) << 8) | u32::from(op));
    put32(buf, 4, (sqn << 8) | ds as u32);
    Some(len)
}

/// CE = 2 in `fm_ce_se` (bits 3:2 of control word 2): always generate a CQE.
const CE_ALWAYS: u32 = 2 << 2;

impl Sq {
    /// Allocates `1 << log_size` WQEBBs.
    pub fn new(container: &Container, log_size: u8) -> Result<Sq, VfioError> {
        let (buf, pages) = ring_alloc(container, wq::SEND_WQEBB << log_size)?;
        Ok(Sq {
            buf,
            pages,
            log_size,
            pc: 0,
            cc: 0,
            shadow: (0..1usize << log_size).map(|_| None).collect(),
            last_start: None,
            since_ce: 0,
            sqn: 0,
            lkey: 0,
        })
    }

    /// Device address of the ring, its page count and the doorbell record's address.
    pub fn addrs(&self) -> (u64, usize, u64) {
        (self.buf.iova(), self.pages, self.buf.iova() + (self.pages * HCA_PAGE) as u64)
    }

    fn size(&self) -> u16 {
        1 << self.log_size
    }

    /// Free WQEBBs.
    pub fn free(&self) -> usize {
        usize::from(self.size() - self.pc.wrapping_sub(self.cc))
    }

    /// WQEBBs posted and not yet completed.
    pub fn outstanding(&self) -> usize {
        usize::from(self.pc.wrapping_sub(self.cc))
    }

    /// Writes a send WQE for `b` (already in a DMA-mapped pool) at the producer counter; gives
    /// the buffer back if it does not fit the ring or the options are invalid.
    pub fn post(&mut self, b: PacketBuf, iova: u64, o: &TxOpts) -> Result<(), PacketBuf> {
        let mut w = [0u8; MAX_WQE];
        let Some(len) = build_send_wqe(&mut w, self.pc, self.sqn, self.lkey, b.data(), iova, o)
        else {
            return Err(b);
        };
        let nbb = len.div_ceil(wq::SEND_WQEBB) as u16;
        if usize::from(nbb) > self.free() {
            return Err(b);
        }
        // Force a completion at least every half ring so that the ring cannot fill with
        // WQEs no CQE will ever release.
        self.since_ce += nbb;
        if self.since_ce >= self.size() / 2 {
            let ce = get32(&w, 8) | CE_ALWAYS;
            put32(&mut w, 8, ce);
            self.since_ce = 0;
        }
        let mask = self.size() - 1;
        let m = self.buf.mem();
        for k in 0..usize::from(nbb) {
            // `build_send_wqe` zeroed the tail of the last WQEBB.
            let slot = usize::from(self.pc.wrapping_add(k as u16) & mask);
            copy_in64(m, slot * wq::SEND_WQEBB, &w[k * 64..k * 64 + 64]);
        }
        self.shadow[usize::from(self.pc & mask)] = Some(TxSlot { buf: Some(b), nbb });
        self.last_start = Some(self.pc);
        self.pc = self.pc.wrapping_add(nbb);
        Ok(())
    }

    /// Marks the last posted WQE to generate a CQE, publishes the producer counter in the
    /// doorbell record and rings the UAR doorbell with the first 8 bytes of that WQE's control
    /// segment (PRM §"Send Doorbell"). Nothing happens when nothing was posted.
    pub fn ring(&mut self, bar: &Bar, uar_page: u64) -> Result<(), VfioError> {
        let Some(start) = self.last_start.take() else { return Ok(()) };
        let m = self.buf.mem();
        let off = usize::from(start & (self.size() - 1)) * wq::SEND_WQEBB;
        let w2 = u32::from_be(m.read_u32(off + 8)) | CE_ALWAYS;
        m.write_u32(off + 8, w2.to_be());
        self.since_ce = 0;
        wmb_wqe_before_dbr();
        // Doorbell record word 1: the send counter (PRM §"Doorbell Record").
        m.write_u32(self.pages * HCA_PAGE + 4, u32::from(self.pc).to_be());
        wmb_dbr_before_doorbell();
        let mut ctrl = [0u8; 8];
        copy_out(m, off, &mut ctrl);
        bar.write64(uar_page + uar::SEND_DOORBELL, u64::from_ne_bytes(ctrl))
    }

    /// A requester CQE says the WQE starting at `wqe_counter` (and all before it) completed:
    /// releases their buffers. `None` (nothing released) when the counter does not name the
    /// start of an outstanding WQE.
    pub fn complete(&mut self, wqe_counter: u16) -> Option<usize> {
        let mask = self.size() - 1;
        if wqe_counter.wrapping_sub(self.cc) >= self.pc.wrapping_sub(self.cc) {
            return None;
        }
        // First pass: the counter must land on a WQE start.
        let mut at = self.cc;
        loop {
            let Some(s) = &self.shadow[usize::from(at & mask)] else { return None };
            if at == wqe_counter {
                break;
            }
            at = at.wrapping_add(s.nbb);
            if wqe_counter.wrapping_sub(at) > wqe_counter.wrapping_sub(self.cc) {
                return None; // stepped over it: the counter is inside a multi-WQEBB WQE
            }
        }
        let mut n = 0;
        loop {
            let s = self.shadow[usize::from(self.cc & mask)].take()?;
            let done = self.cc == wqe_counter;
            self.cc = self.cc.wrapping_add(s.nbb);
            drop(s.buf);
            n += 1;
            if done {
                return Some(n);
            }
        }
    }

    /// Drops every outstanding buffer (after the SQ was destroyed).
    pub fn clear(&mut self) {
        for s in &mut self.shadow {
            *s = None;
        }
        self.cc = self.pc;
    }
}

/// A cyclic receive queue of single-scatter-entry WQEs.
pub struct Rq {
    buf: DmaBuffer,
    pages: usize,
    log_size: u8,
    pc: u16,
    cc: u16,
    shadow: Vec<Option<(PacketBuf, u32)>>,
    pending: bool,
    /// The RQ number.
    pub rqn: u32,
    /// The lkey scatter entries carry.
    pub lkey: u32,
}

impl Rq {
    /// Allocates `1 << log_size` 16-byte receive WQEs.
    pub fn new(container: &Container, log_size: u8) -> Result<Rq, VfioError> {
        let (buf, pages) = ring_alloc(container, wq::RECV_WQE << log_size)?;
        Ok(Rq {
            buf,
            pages,
            log_size,
            pc: 0,
            cc: 0,
            shadow: (0..1usize << log_size).map(|_| None).collect(),
            pending: false,
            rqn: 0,
            lkey: 0,
        })
    }

    /// Device address of the ring, its page count and the doorbell record's address.
    pub fn addrs(&self) -> (u64, usize, u64) {
        (self.buf.iova(), self.pages, self.buf.iova() + (self.pages * HCA_PAGE) as u64)
    }

    /// Posted and not yet consumed.
    pub fn outstanding(&self) -> usize {
        usize::from(self.pc.wrapping_sub(self.cc))
    }

    /// Whether the ring has room.
    pub fn has_room(&self) -> bool {
        self.outstanding() < 1 << self.log_size
    }

    /// Posts a receive WQE for `b`'s whole capacity at `iova` (PRM Table "Memory Pointer Data
    /// Segment"); not visible until [`Rq::publish`].
    pub fn post(&mut self, b: PacketBuf, iova: u64) -> Result<(), PacketBuf> {
        if !self.has_room() {
            return Err(b);
        }
        let len = b.capacity() as u32;
        let slot = usize::from(self.pc & ((1 << self.log_size) - 1));
        let mut seg = [0u8; 16];
        put32(&mut seg, 0, len);
        put32(&mut seg, 4, self.lkey);
        put64(&mut seg, 8, iova);
        copy_in64(self.buf.mem(), slot * wq::RECV_WQE, &seg);
        self.shadow[slot] = Some((b, len));
        self.pc = self.pc.wrapping_add(1);
        self.pending = true;
        Ok(())
    }

    /// Publishes posted WQEs: doorbell record word 0, the receive counter (PRM §"Doorbell
    /// Record"). Receive queues need no UAR doorbell.
    pub fn publish(&mut self) {
        if !self.pending {
            return;
        }
        self.pending = false;
        wmb_wqe_before_dbr();
        self.buf.mem().write_u32(self.pages * HCA_PAGE, u32::from(self.pc).to_be());
    }

    /// Takes the buffer a receive CQE names. A cyclic RQ is consumed in order, so the counter
    /// must be the consumer counter; anything else is refused (nothing consumed).
    pub fn take(&mut self, wqe_counter: u16) -> Option<(PacketBuf, u32)> {
        if wqe_counter != self.cc || self.outstanding() == 0 {
            return None;
        }
        let slot = usize::from(self.cc & ((1 << self.log_size) - 1));
        let got = self.shadow[slot].take()?;
        self.cc = self.cc.wrapping_add(1);
        Some(got)
    }

    /// Drops every posted buffer (after the RQ was destroyed).
    pub fn clear(&mut self) {
        for s in &mut self.shadow {
            *s = None;
        }
        self.cc = self.pc;
    }
}

/// An event queue, polled for page requests (PRM §"Event Queues", Table "Event Queue Entry
/// Format": `event_type` byte 1, data from 0x20, `owner` bit 0 of byte 0x3f).
pub struct Eq {
    buf: DmaBuffer,
    pages: usize,
    log_size: u8,
    cc: u32,
    /// The EQ number.
    pub eqn: u8,
}

/// An event the driver acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The HCA asks for `n` more pages (negative: it has pages to give back).
    PageRequest(i32),
    /// Anything else (type).
    Other(u8),
}

impl Eq {
    /// Allocates `1 << log_size` EQEs, owner bits set for the hardware's first pass.
    pub fn new(container: &Container, log_size: u8) -> Result<Eq, VfioError> {
        let (buf, pages) = ring_alloc(container, wq::EQE << log_size)?;
        for i in 0..1usize << log_size {
            buf.mem().write_u32(i * wq::EQE + 0x3c, 1u32.to_be());
        }
        Ok(Eq { buf, pages, log_size, cc: 0, eqn: 0 })
    }

    /// Device address of the ring and its page count.
    pub fn addrs(&self) -> (u64, usize) {
        (self.buf.iova(), self.pages)
    }

    /// log2 of the entries.
    pub fn log_size(&self) -> u8 {
        self.log_size
    }

    /// The next event, if software owns it (consumed).
    pub fn poll(&mut self) -> Option<Event> {
        let off = (self.cc & ((1 << self.log_size) - 1)) as usize * wq::EQE;
        let m = self.buf.mem();
        let owner = u32::from_be(m.read_u32(off + 0x3c)) & 1;
        if owner != (self.cc >> self.log_size) & 1 {
            return None;
        }
        rmb_after_ownership();
        let mut b = [0u8; 64];
        copy_out(m, off, &mut b);
        self.cc = self.cc.wrapping_add(1);
        let t = get_bits(&b, 0, 23, 16) as u8;
        Some(if t == crate::cmds::EVENT_PAGE_REQUEST {
            Event::PageRequest(get32(&b, 0x24) as i32)
        } else {
            Event::Other(t)
        })
    }

    /// The doorbell value that reports the consumer index (`eqn` 31:24, ci 23:0).
    pub fn doorbell_value(&self) -> u32 {
        let mut w = [0u8; 4];
        put_bits(&mut w, 0, 31, 24, self.eqn.into());
        put_bits(&mut w, 0, 23, 0, self.cc & 0xff_ffff);
        get32(&w, 0)
    }
}
