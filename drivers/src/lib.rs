//! # joyride-drivers — the NIC contract, packet-buffer pools and the software backends
//!
//! Layer: above `joyride-base`, below the service (DESIGN.md §2). The VFIO drivers (virtio-net,
//! ixgbe/igb, mlx5) implement the same [`Nic`] trait as the software backends here.
//!
//! ## The contract
//! A [`Nic`] has one or more receive and transmit queues ([`QueueId`]); an engine core owns a
//! queue pair and calls, in its loop:
//! - [`Nic::rx_burst`]`(q, &mut batch)`: appends up to `batch.remaining()` received frames and
//!   returns how many;
//! - [`Nic::tx_burst`]`(q, &mut batch)`: takes frames from the *front* of the batch, returns how
//!   many it accepted; what it did not accept stays in the batch, in order, with the caller;
//! - when idle, polls [`Nic::wait_fd`] (if `Some`) with `poll(2)` instead of spinning, between
//!   [`Nic::prepare_wait`] (which may refuse: frames arrived) and [`Nic::end_wait`];
//! - off the fast path: [`Nic::capabilities`] (MTU, MAC, offloads, queue counts), [`Nic::link`],
//!   [`Nic::counters`] / [`Nic::queue_counters`].
//!
//! Checksum offload is data carried by each buffer: [`RxCsum`] says what the receive side knows,
//! [`CsumRequest`] asks the transmit side to fill a checksum in (the virtio/Linux
//! `CHECKSUM_PARTIAL` convention, the one every NIC family here can express).
//!
//! ## Packet buffers
//! A [`Pool`] maps one region at start (2 MiB huge pages when reserved, else ordinary pages,
//! `mlock`ed best-effort so that it can be DMA-mapped) and cuts it into fixed-size buffers (2 KiB
//! by default, 128 bytes of headroom). The free list is a stack of indices: `alloc` pops,
//! dropping a [`PacketBuf`] pushes. No allocation, no lock, no per-packet reference count; a pool
//! is single-threaded (neither `Send` nor `Sync`): one per engine core. A pool handle may be
//! dropped while its buffers are still out; the memory goes when the last of them does. Each
//! buffer has a device address ([`Iova`]) once the VFIO layer has mapped the pool
//! ([`Pool::set_iova_base`]); software backends never need it. [`Batch`] is a fixed-capacity list
//! of buffers allocated once.
//!
//! ## Backends
//! - [`af_packet::AfPacket`]: an existing interface through a packet socket with a TPACKET_V3
//!   block ring for receive and a TPACKET_V3 frame ring for transmit (one `send` kick per burst),
//!   `PACKET_QDISC_BYPASS`, `PACKET_IGNORE_OUTGOING`. Frames are copied between the rings (kernel
//!   memory) and pool buffers: one copy each way.
//! - [`tap::Tap`]: a TAP device with the virtio-net header (checksum offload both ways); one
//!   `readv`/`writev` per frame straight into/out of the pool buffer (no extra copy) — TAP has no
//!   batched interface, so this is the one backend with a syscall per packet.
//! - [`shm::ShmWire`]: two engines in different processes joined through a shared file holding
//!   two single-producer/single-consumer rings; no kernel on the data path.
//! - [`loopback::Loopback`]: frames sent come back as received (tests).
//! - [`fault::FaultNic`]: wraps any `Nic` with seeded drop/duplicate/reorder/corrupt.
//!
//! ## unsafe
//! `#![deny(unsafe_code)]` here; only `mmap` (mappings and shared-memory accessors),
//! `pool_raw` (slot index → slice) and [`sys`] (syscalls) may use it, each block with a
//! `// SAFETY:` comment. Nothing else touches raw memory.
#![deny(unsafe_code)]

pub mod af_packet;
pub mod buffer;
pub mod csum;
pub mod fault;
pub mod loopback;
#[allow(unsafe_code)]
mod mmap;
pub mod netns;
#[allow(unsafe_code)]
mod pool_raw;
pub mod shm;
#[allow(unsafe_code)]
pub mod sys;
pub mod tap;

pub use buffer::{
    Batch, CsumRequest, Iova, PacketBuf, PhysAddr, Pool, PoolConfig, PoolError, RxCsum,
};

use std::os::fd::RawFd;

/// A queue of a NIC (receive and transmit queues are numbered separately, from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QueueId(pub u16);

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Offloads a NIC performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Offloads {
    /// Receive: it may report [`RxCsum::Verified`] / [`RxCsum::Partial`].
    pub rx_checksum: bool,
    /// Transmit: it honours [`PacketBuf::set_tx_csum`] (backends without it complete the
    /// checksum in software, so requesting it is never wrong, only slower).
    pub tx_checksum: bool,
    /// TCP segmentation offload.
    pub tso: bool,
    /// Receive-side scaling over several receive queues.
    pub rss: bool,
}

/// What a NIC is and can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Largest IP packet (Ethernet payload) it carries.
    pub mtu: u32,
    /// Its MAC address (the one the stack should use as source).
    pub mac: MacAddr,
    /// Number of receive queues.
    pub rx_queues: u16,
    /// Number of transmit queues.
    pub tx_queues: u16,
    /// Offloads.
    pub offloads: Offloads,
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LinkState {
    /// Carrier present and interface running.
    pub up: bool,
    /// Speed, when known.
    pub speed_mbps: Option<u32>,
}

/// Counters of one queue (or the sum over queues).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct QueueCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames dropped on receive (ring full, no buffer).
    pub rx_drops: u64,
    /// Malformed or truncated frames on receive.
    pub rx_errors: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames dropped on transmit.
    pub tx_drops: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

impl QueueCounters {
    /// Field-wise sum.
    pub fn add(&mut self, o: &QueueCounters) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_drops += o.rx_drops;
        self.rx_errors += o.rx_errors;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_drops += o.tx_drops;
        self.tx_errors += o.tx_errors;
    }
}

/// Errors of the data path. `Copy`, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NicError {
    /// No such queue.
    #[error("no queue {0:?}")]
    BadQueue(QueueId),
    /// An OS call failed (errno).
    #[error("os error {0}")]
    Os(i32),
    /// The peer (device, kernel or other process) wrote something impossible into shared memory.
    #[error("shared memory corrupted: {0}")]
    Corrupt(&'static str),
}

impl From<std::io::Error> for NicError {
    fn from(e: std::io::Error) -> Self {
        NicError::Os(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// The contract every NIC driver implements (see the crate docs).
pub trait Nic {
    /// MTU, MAC, offloads, queue counts.
    fn capabilities(&self) -> Capabilities;

    /// Current link state (may make a syscall: not for the fast path).
    fn link(&self) -> LinkState;

    /// Appends up to `out.remaining()` received frames from `queue` to `out`; returns how many.
    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError>;

    /// Transmits frames from the front of `bufs` on `queue`; returns how many were accepted
    /// (removed from `bufs`). The rest stay in `bufs`, in order.
    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError>;

    /// Counters of one queue (`None` if there is no such queue).
    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters>;

    /// Counters summed over all queues.
    fn counters(&self) -> QueueCounters {
        let c = self.capabilities();
        let mut sum = QueueCounters::default();
        for q in 0..c.rx_queues.max(c.tx_queues) {
            if let Some(qc) = self.queue_counters(QueueId(q)) {
                sum.add(&qc);
            }
        }
        sum
    }

    /// A file descriptor that becomes readable when `queue` has frames, for interrupt-driven idle
    /// (`poll(2)` on it after finding the queue empty). `None`: the backend must be polled.
    fn wait_fd(&self, _queue: QueueId) -> Option<RawFd> {
        None
    }

    /// Called before sleeping on [`Nic::wait_fd`]: arms whatever makes the fd readable when
    /// frames arrive (a backend whose peer only signals a sleeping receiver) and re-checks
    /// `queue`. Returns false if frames are already waiting (poll instead of sleeping; no
    /// [`Nic::end_wait`] follows). Default: nothing to arm, true.
    fn prepare_wait(&mut self, _queue: QueueId) -> bool {
        true
    }

    /// Ends a wait begun by a successful [`Nic::prepare_wait`] (disarms, drains the fd).
    fn end_wait(&mut self, _queue: QueueId) {}
}

impl<N: Nic + ?Sized> Nic for Box<N> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn link(&self) -> LinkState {
        (**self).link()
    }
    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        (**self).rx_burst(queue, out)
    }
    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        (**self).tx_burst(queue, bufs)
    }
    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        (**self).queue_counters(queue)
    }
    fn counters(&self) -> QueueCounters {
        (**self).counters()
    }
    fn wait_fd(&self, queue: QueueId) -> Option<RawFd> {
        (**self).wait_fd(queue)
    }
    fn prepare_wait(&mut self, queue: QueueId) -> bool {
        (**self).prepare_wait(queue)
    }
    fn end_wait(&mut self, queue: QueueId) {
        (**self).end_wait(queue)
    }
}
