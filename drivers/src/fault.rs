//! A fault-injecting wrapper around any [`Nic`]: seeded drop, duplicate, reorder and corrupt, on
//! receive and/or transmit — the kernel on these machines has no netem, and the simulator's
//! impaired links only exist inside the simulator.
//!
//! Every frame passing a direction is rolled, in this order: drop (it vanishes), corrupt (one
//! random bit of it flips), duplicate (a copy from the wrapper's pool follows it), reorder (it is
//! held back and released right after the next frame, or at the next idle burst; one frame is
//! held at most). With the same seed, inner behaviour and calls, the outcome is identical.
//! Frames the wrapper has processed but the inner NIC did not yet accept wait in a bounded
//! queue inside the wrapper; `tx_burst` reports frames taken from the caller (dropped ones
//! included). The wrapper keeps one set of state, so wrap one queue per wrapper.

use std::collections::VecDeque;

use joyride_base::{Rng, SplitMix64};

use crate::{
    Batch, Capabilities, LinkState, Nic, NicError, PacketBuf, Pool, QueueCounters, QueueId, RxCsum,
};

/// Probabilities (each in `0.0..=1.0`) for one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultProfile {
    /// Frame silently discarded.
    pub drop: f64,
    /// Frame followed by a copy of itself.
    pub duplicate: f64,
    /// Frame held back behind the next one.
    pub reorder: f64,
    /// One bit of the frame flipped.
    pub corrupt: f64,
}

/// What the wrapper did in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Frames that entered the wrapper.
    pub seen: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Copies made.
    pub duplicated: u64,
    /// Frames held back.
    pub reordered: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
}

/// Both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Receive direction.
    pub rx: FaultCounts,
    /// Transmit direction.
    pub tx: FaultCounts,
}

struct Dir {
    profile: FaultProfile,
    counts: FaultCounts,
    held: Option<PacketBuf>,
    pending: VecDeque<PacketBuf>,
    scratch: Batch,
}

impl Dir {
    fn new(profile: FaultProfile, burst: usize) -> Dir {
        Dir {
            profile,
            counts: FaultCounts::default(),
            held: None,
            pending: VecDeque::with_capacity(2 * burst + 2),
            scratch: Batch::new(burst),
        }
    }

    fn process(&mut self, rng: &mut SplitMix64, pool: &Pool, mut b: PacketBuf) {
        let p = self.profile;
        self.counts.seen += 1;
        if rng.chance(p.drop) {
            self.counts.dropped += 1;
            return;
        }
        if rng.chance(p.corrupt) && !b.is_empty() {
            // A partial checksum (rx `Partial`, or a tx request) would be computed over the
            // corrupted bytes or trusted unchecked: complete it first, then drop any "verified"
            // claim, so that the flipped bit is detectable downstream as on a real wire.
            if b.tx_csum().is_some() || matches!(b.rx_csum(), RxCsum::Partial { .. }) {
                b.complete_partial_csum();
            }
            b.set_rx_csum(RxCsum::Unknown);
            let bit = rng.below(b.len() as u64 * 8) as usize;
            b.data_mut()[bit / 8] ^= 1 << (bit % 8);
            self.counts.corrupted += 1;
        }
        let mut dup = None;
        if rng.chance(p.duplicate) {
            if let Some(mut d) = pool.alloc_copy(b.data()) {
                d.set_rx_csum(b.rx_csum());
                d.set_tx_csum(b.tx_csum());
                dup = Some(d);
                self.counts.duplicated += 1;
            }
        }
        if self.held.is_none() && rng.chance(p.reorder) {
            self.counts.reordered += 1;
            self.held = Some(b);
            self.pending.extend(dup);
            return;
        }
        self.pending.push_back(b);
        self.pending.extend(dup);
        if let Some(h) = self.held.take() {
            self.pending.push_back(h);
        }
    }
}

/// A [`Nic`] wrapped with seeded faults.
pub struct FaultNic<N: Nic> {
    inner: N,
    rng: SplitMix64,
    pool: Pool,
    rx: Dir,
    tx: Dir,
}

impl<N: Nic> std::fmt::Debug for FaultNic<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultNic").field("stats", &self.stats()).finish()
    }
}

impl<N: Nic> FaultNic<N> {
    /// Wraps `inner`. Duplicates are copied into buffers from `pool`; `burst` bounds how many
    /// frames the wrapper takes from the inner NIC or the caller at once.
    pub fn new(
        inner: N,
        seed: u64,
        rx: FaultProfile,
        tx: FaultProfile,
        pool: Pool,
        burst: usize,
    ) -> Self {
        let burst = burst.max(1);
        FaultNic {
            inner,
            rng: SplitMix64::new(seed),
            pool,
            rx: Dir::new(rx, burst),
            tx: Dir::new(tx, burst),
        }
    }

    /// What the wrapper has done so far.
    pub fn stats(&self) -> FaultStats {
        FaultStats { rx: self.rx.counts, tx: self.tx.counts }
    }

    /// The wrapped NIC.
    pub fn inner(&self) -> &N {
        &self.inner
    }

    /// The wrapped NIC, mutably.
    pub fn inner_mut(&mut self) -> &mut N {
        &mut self.inner
    }

    /// Frames processed for transmit but not yet accepted by the inner NIC (or held back).
    pub fn tx_backlog(&self) -> usize {
        self.tx.pending.len() + usize::from(self.tx.held.is_some())
    }

    fn flush_tx(&mut self, queue: QueueId) -> Result<(), NicError> {
        while !self.tx.pending.is_empty() {
            while self.tx.scratch.remaining() > 0 {
                let Some(b) = self.tx.pending.pop_front() else { break };
                let _ = self.tx.scratch.push(b);
            }
            let r = self.inner.tx_burst(queue, &mut self.tx.scratch);
            // Whatever the inner NIC left goes back to the front, in order.
            while let Some(b) = self.tx.scratch.pop() {
                self.tx.pending.push_front(b);
            }
            if r? == 0 {
                break;
            }
        }
        Ok(())
    }
}

fn move_out(pending: &mut VecDeque<PacketBuf>, out: &mut Batch) -> usize {
    let mut n = 0;
    while out.remaining() > 0 {
        let Some(b) = pending.pop_front() else { break };
        let _ = out.push(b);
        n += 1;
    }
    n
}

impl<N: Nic> Nic for FaultNic<N> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn link(&self) -> LinkState {
        self.inner.link()
    }

    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        let mut n = move_out(&mut self.rx.pending, out);
        if out.remaining() > 0 && self.rx.pending.is_empty() {
            let got = self.inner.rx_burst(queue, &mut self.rx.scratch)?;
            let mut scratch = std::mem::replace(&mut self.rx.scratch, Batch::new(0));
            for b in scratch.drain() {
                self.rx.process(&mut self.rng, &self.pool, b);
            }
            self.rx.scratch = scratch;
            if got == 0 {
                if let Some(h) = self.rx.held.take() {
                    self.rx.pending.push_back(h);
                }
            }
            n += move_out(&mut self.rx.pending, out);
        }
        Ok(n)
    }

    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        self.flush_tx(queue)?;
        if !self.tx.pending.is_empty() {
            return Ok(0);
        }
        let k = bufs.len().min(self.tx.scratch.capacity());
        for b in bufs.drain_front(k) {
            self.tx.process(&mut self.rng, &self.pool, b);
        }
        if k == 0 {
            if let Some(h) = self.tx.held.take() {
                self.tx.pending.push_back(h);
            }
        }
        self.flush_tx(queue)?;
        Ok(k)
    }

    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        self.inner.queue_counters(queue)
    }

    fn counters(&self) -> QueueCounters {
        self.inner.counters()
    }

    fn wait_fd(&self, queue: QueueId) -> Option<std::os::fd::RawFd> {
        self.inner.wait_fd(queue)
    }

    fn prepare_wait(&mut self, queue: QueueId) -> bool {
        // Frames held back or duplicated here are ready without the inner NIC's fd.
        self.rx.pending.is_empty() && self.rx.held.is_none() && self.inner.prepare_wait(queue)
    }

    fn end_wait(&mut self, queue: QueueId) {
        self.inner.end_wait(queue)
    }
}

#[cfg(test)]
#[path = "fault_tests.rs"]
mod tests;
