//! Descriptor rings in device-shared memory with a private shadow of posted buffers
//! (DESIGN.md rule 6). The rings live in a [`DmaBuffer`] and are only touched through its
//! bounds-checked volatile accessors. What the driver posted (the buffer and its length) is kept
//! here, in memory the device cannot reach; everything the device writes back (DD, length,
//! status) is checked against it before a buffer is handed on.
//!
//! Ownership: receive descriptors `[next, tail)` belong to the device; the driver writes the
//! tail register once per refill batch. Transmit descriptors `[clean, tail)` are in flight;
//! completed ones are found by their DD bit (every packet's last descriptor has RS set) and
//! reclaimed in one sweep per burst.
//!
//! The module also holds [`PoolDma`], the one `unsafe impl` of this crate.

use std::sync::atomic::{fence, Ordering};

use joyride_drivers::{PacketBuf, Pool};
use joyride_vfio::{DmaBuffer, DmaTarget};

use crate::desc::{
    self, DESC_LEN, RXD_STAT_DD, RXD_STAT_EOP, RXWB_LENGTH, RXWB_RSS_HASH, RXWB_STATERR,
    RX_HDR_ADDR, RX_PKT_ADDR, TXD_STAT_DD, TX_ADDR, TX_CMD_TYPE_LEN, TX_OLINFO_STATUS,
};

/// Barrier: orders the stores of descriptors before the MMIO store of the tail register that
/// hands them to the device (82599 §7.1.9 / §7.2.3: the tail write is the doorbell). On x86
/// stores are not reordered with stores; this keeps the compiler from doing it.
#[inline]
pub(crate) fn wmb_before_tail() {
    fence(Ordering::Release);
}

/// Barrier: orders the load that saw DD set before the loads of the rest of the write-back and
/// of the buffer the device filled (82599 §7.1.6.2: DD is written last).
#[inline]
fn rmb_after_dd() {
    fence(Ordering::Acquire);
}

/// `i + 1` modulo `size` without a division (ring sizes need not be powers of two).
#[inline(always)]
fn next_idx(i: u16, size: u16) -> u16 {
    let n = i + 1;
    if n == size {
        0
    } else {
        n
    }
}

/// `(to - from) mod size` for indices below `size`, without a division.
#[inline(always)]
fn distance(from: u16, to: u16, size: u16) -> u16 {
    if to >= from {
        to - from
    } else {
        to + size - from
    }
}

/// A packet-buffer pool as a DMA target.
pub(crate) struct PoolDma(pub(crate) Pool);

// SAFETY: a pool's region is one anonymous mapping made at pool creation, page-aligned, never
// remapped, and unmapped only when the last pool handle *and* the last buffer are gone
// (joyride-drivers `pool_raw`); `PoolDma` holds a handle, so the range stays mapped as long as it
// lives. Buffers are handed out exclusively: one the device may write is held in a ring's shadow,
// so no Rust reference to it exists meanwhile.
unsafe impl DmaTarget for PoolDma {
    fn dma_region(&self) -> (*const u8, usize) {
        self.0.region()
    }
}

/// One completed receive descriptor, checked against the shadow.
pub(crate) enum RxDone {
    /// A whole frame: the buffer, its length, the status/error word and the RSS hash.
    Frame(PacketBuf, u16, u32, u32),
    /// The write-back is malformed (length 0 or beyond the posted buffer, or no EOP: a frame
    /// split over buffers, which we never configure); the buffer has gone back to its pool.
    Bad,
}

/// A receive ring of `size` advanced descriptors.
pub(crate) struct RxRing {
    mem: DmaBuffer,
    size: u16,
    /// Oldest descriptor owned by the device (next to complete).
    next: u16,
    /// Next descriptor to post; the tail register value.
    tail: u16,
    shadow: Vec<Option<PacketBuf>>,
    /// Bytes the device may write into each buffer (SRRCTL.BSIZEPACKET).
    buf_len: u16,
    /// Write-backs with DD on a descriptor we had not posted.
    pub(crate) unposted_dd: u64,
}

impl RxRing {
    /// A ring in `mem` (zeroed; at least `size * 16` bytes, `size` a multiple of 8).
    pub(crate) fn new(mem: DmaBuffer, size: u16, buf_len: u16) -> RxRing {
        assert!(
            size >= 8 && size.is_multiple_of(8) && mem.mem().len() >= usize::from(size) * DESC_LEN
        );
        mem.mem().zero();
        RxRing {
            mem,
            size,
            next: 0,
            tail: 0,
            shadow: (0..size).map(|_| None).collect(),
            buf_len,
            unposted_dd: 0,
        }
    }

    /// Device address and byte length (for RDBAL/RDBAH/RDLEN).
    pub(crate) fn base(&self) -> (u64, u32) {
        (self.mem.iova(), u32::from(self.size) * DESC_LEN as u32)
    }

    /// The tail value to publish.
    #[inline]
    pub(crate) fn tail(&self) -> u16 {
        self.tail
    }

    /// Descriptors the device owns.
    #[inline]
    pub(crate) fn posted(&self) -> u16 {
        distance(self.next, self.tail, self.size)
    }

    /// Descriptors that could be posted (one slot always stays empty: head == tail means empty).
    #[inline]
    pub(crate) fn free(&self) -> u16 {
        self.size - 1 - self.posted()
    }

    #[inline]
    fn off(i: u16) -> usize {
        usize::from(i) * DESC_LEN
    }

    /// Posts `buf` (whose data starts at its IOVA and has room for `buf_len` bytes) in read
    /// format; not visible to the device until the tail is written. Gives it back if full.
    #[inline]
    pub(crate) fn post(&mut self, buf: PacketBuf, iova: u64) -> Result<(), PacketBuf> {
        if self.free() == 0 {
            return Err(buf);
        }
        let m = self.mem.mem();
        let o = Self::off(self.tail);
        m.write_u64(o + RX_PKT_ADDR, iova.to_le());
        m.write_u64(o + RX_HDR_ADDR, 0); // clears DD of any stale write-back
        self.shadow[usize::from(self.tail)] = Some(buf);
        self.tail = next_idx(self.tail, self.size);
        Ok(())
    }

    /// The next completed descriptor, if the device has finished one.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<RxDone> {
        let m = self.mem.mem();
        if self.next == self.tail {
            // Nothing posted here: a DD now is the device writing where it was not invited.
            let o = Self::off(self.next);
            if u32::from_le(m.read_u32(o + RXWB_STATERR)) & RXD_STAT_DD != 0 {
                self.unposted_dd += 1;
                m.write_u64(o + RX_HDR_ADDR, 0);
            }
            return None;
        }
        let o = Self::off(self.next);
        let staterr = u32::from_le(m.read_u32(o + RXWB_STATERR));
        if staterr & RXD_STAT_DD == 0 {
            return None;
        }
        rmb_after_dd();
        let len = u16::from_le(m.read_u16(o + RXWB_LENGTH));
        let hash = u32::from_le(m.read_u32(o + RXWB_RSS_HASH));
        let buf = self.shadow[usize::from(self.next)].take().expect("posted slot has a buffer");
        self.next = next_idx(self.next, self.size);
        if len == 0 || len > self.buf_len || staterr & RXD_STAT_EOP == 0 {
            drop(buf);
            return Some(RxDone::Bad);
        }
        Some(RxDone::Frame(buf, len, staterr, hash))
    }

    /// Drops every posted buffer (after the device was stopped).
    pub(crate) fn clear(&mut self) {
        for s in &mut self.shadow {
            s.take();
        }
        self.next = self.tail;
    }
}

enum TxSlot {
    Free,
    /// A context descriptor; its packet's data descriptor follows.
    Ctx,
    /// The packet's (only) data descriptor, with the buffer it reads (held, never read, until
    /// the device reports it done).
    Data(#[allow(dead_code)] PacketBuf),
}

/// A transmit ring of `size` advanced descriptors.
pub(crate) struct TxRing {
    mem: DmaBuffer,
    size: u16,
    /// Oldest in-flight descriptor.
    clean: u16,
    /// Next free descriptor; the tail register value.
    tail: u16,
    shadow: Vec<TxSlot>,
    /// The last context written on this queue (the device keeps it: 82599 §7.2.3.2.3).
    last_ctx: Option<[u32; 4]>,
}

impl TxRing {
    /// A ring in `mem` (zeroed; at least `size * 16` bytes).
    pub(crate) fn new(mem: DmaBuffer, size: u16) -> TxRing {
        assert!(
            size >= 8 && size.is_multiple_of(8) && mem.mem().len() >= usize::from(size) * DESC_LEN
        );
        mem.mem().zero();
        TxRing {
            mem,
            size,
            clean: 0,
            tail: 0,
            shadow: (0..size).map(|_| TxSlot::Free).collect(),
            last_ctx: None,
        }
    }

    /// Device address and byte length (for TDBAL/TDBAH/TDLEN).
    pub(crate) fn base(&self) -> (u64, u32) {
        (self.mem.iova(), u32::from(self.size) * DESC_LEN as u32)
    }

    /// The tail value to publish.
    #[inline]
    pub(crate) fn tail(&self) -> u16 {
        self.tail
    }

    #[inline]
    fn in_flight(&self) -> u16 {
        distance(self.clean, self.tail, self.size)
    }

    /// Free descriptors (one always stays empty).
    #[inline]
    pub(crate) fn free(&self) -> u16 {
        self.size - 1 - self.in_flight()
    }

    /// Reclaims every completed packet from the oldest on (their buffers go back to their
    /// pools); returns how many packets completed.
    #[inline]
    pub(crate) fn reclaim(&mut self) -> usize {
        let m = self.mem.mem();
        let mut n = 0;
        while self.clean != self.tail {
            let data = match self.shadow[usize::from(self.clean)] {
                TxSlot::Ctx => next_idx(self.clean, self.size),
                _ => self.clean,
            };
            let sta = u32::from_le(m.read_u32(usize::from(data) * DESC_LEN + TX_OLINFO_STATUS));
            if sta & TXD_STAT_DD == 0 {
                break;
            }
            rmb_after_dd();
            if data != self.clean {
                self.shadow[usize::from(self.clean)] = TxSlot::Free; // the context slot
            }
            self.shadow[usize::from(data)] = TxSlot::Free; // drops the buffer
            self.clean = next_idx(data, self.size);
            n += 1;
        }
        n
    }

    #[inline]
    fn write(&mut self, words: (u64, u32, u32)) {
        let m = self.mem.mem();
        let o = usize::from(self.tail) * DESC_LEN;
        m.write_u64(o + TX_ADDR, words.0.to_le());
        m.write_u32(o + TX_CMD_TYPE_LEN, words.1.to_le());
        m.write_u32(o + TX_OLINFO_STATUS, words.2.to_le());
        self.tail = next_idx(self.tail, self.size);
    }

    /// Posts one packet: a context descriptor first when `ctx` differs from the last one
    /// written, then one data descriptor. Not visible until the tail is written. Gives the
    /// buffer back when there is no room.
    #[inline]
    pub(crate) fn post(
        &mut self,
        buf: PacketBuf,
        iova: u64,
        ctx: Option<&desc::TxContext>,
    ) -> Result<(), PacketBuf> {
        let words = ctx.map(|c| c.encode());
        let need_ctx = words.is_some() && words != self.last_ctx;
        if self.free() < 1 + u16::from(need_ctx) {
            return Err(buf);
        }
        let Ok(len) = u16::try_from(buf.len()) else { return Err(buf) };
        if need_ctx {
            let w = words.expect("checked");
            let m = self.mem.mem();
            let o = usize::from(self.tail) * DESC_LEN;
            for (i, v) in w.iter().enumerate() {
                m.write_u32(o + 4 * i, v.to_le());
            }
            self.shadow[usize::from(self.tail)] = TxSlot::Ctx;
            self.tail = next_idx(self.tail, self.size);
            self.last_ctx = words;
        }
        let slot = usize::from(self.tail);
        self.write(desc::tx_data(iova, len, desc::tx_olinfo(ctx, u32::from(len))));
        self.shadow[slot] = TxSlot::Data(buf);
        Ok(())
    }

    /// Drops every in-flight buffer (after the device was stopped).
    pub(crate) fn clear(&mut self) {
        for s in &mut self.shadow {
            *s = TxSlot::Free;
        }
        self.clean = self.tail;
    }
}
