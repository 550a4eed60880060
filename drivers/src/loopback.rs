//! A NIC whose transmitted frames come back on its receive queue, without copying (tests, and
//! the fault wrapper's own tests). One queue; a bounded ring of `depth` frames.

use std::collections::VecDeque;

use crate::{
    Batch, Capabilities, LinkState, MacAddr, Nic, NicError, Offloads, PacketBuf, QueueCounters,
    QueueId,
};

/// Transmit → receive, in order, up to `depth` frames in flight.
#[derive(Debug)]
pub struct Loopback {
    ring: VecDeque<PacketBuf>,
    depth: usize,
    mtu: u32,
    counters: QueueCounters,
}

impl Loopback {
    /// A loopback holding at most `depth` frames.
    pub fn new(depth: usize, mtu: u32) -> Loopback {
        Loopback {
            ring: VecDeque::with_capacity(depth),
            depth,
            mtu,
            counters: QueueCounters::default(),
        }
    }

    /// Frames waiting to be received.
    pub fn pending(&self) -> usize {
        self.ring.len()
    }
}

fn check(q: QueueId) -> Result<(), NicError> {
    if q.0 == 0 {
        Ok(())
    } else {
        Err(NicError::BadQueue(q))
    }
}

impl Nic for Loopback {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mtu: self.mtu,
            mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
            rx_queues: 1,
            tx_queues: 1,
            offloads: Offloads::default(),
        }
    }

    fn link(&self) -> LinkState {
        LinkState { up: true, speed_mbps: None }
    }

    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        check(queue)?;
        let mut n = 0;
        while out.remaining() > 0 {
            let Some(b) = self.ring.pop_front() else { break };
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += b.len() as u64;
            // Cannot fail: remaining() > 0.
            let _ = out.push(b);
            n += 1;
        }
        Ok(n)
    }

    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        check(queue)?;
        let n = bufs.len().min(self.depth - self.ring.len());
        for b in bufs.drain_front(n) {
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += b.len() as u64;
            self.ring.push_back(b);
        }
        Ok(n)
    }

    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        (queue.0 == 0).then_some(self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pool, PoolConfig};

    #[test]
    fn frames_come_back_in_order_and_backpressure_holds() {
        let pool = Pool::new(PoolConfig {
            count: 16,
            hugepages: false,
            mlock: false,
            ..Default::default()
        })
        .unwrap();
        let mut lo = Loopback::new(3, 1500);
        let mut tx = Batch::new(8);
        for i in 0..5u8 {
            tx.push(pool.alloc_copy(&[i; 60]).unwrap()).unwrap();
        }
        assert_eq!(lo.tx_burst(QueueId(0), &mut tx).unwrap(), 3);
        assert_eq!(tx.len(), 2, "unaccepted frames stay with the caller");
        assert_eq!(tx.as_slice()[0].data()[0], 3);
        let mut rx = Batch::new(2);
        assert_eq!(lo.rx_burst(QueueId(0), &mut rx).unwrap(), 2);
        let got: Vec<u8> = rx.iter().map(|b| b.data()[0]).collect();
        assert_eq!(got, [0, 1]);
        assert_eq!(lo.counters().tx_packets, 3);
        assert_eq!(lo.counters().rx_packets, 2);
        assert!(lo.rx_burst(QueueId(1), &mut rx).is_err());
    }
}
