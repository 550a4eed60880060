//! Opening a NIC backend from a [`BackendSpec`], with errors a person can act on, and the
//! fault-injecting wrapper whose statistics stay readable after the NIC is boxed.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration as StdDuration;

use joyride_drivers::af_packet::{AfPacket, AfPacketConfig};
use joyride_drivers::fault::{FaultNic, FaultStats};
use joyride_drivers::shm::{ShmError, ShmWire};
use joyride_drivers::tap::{Tap, TapConfig};
use joyride_drivers::{
    Batch, Capabilities, LinkState, Nic, NicError, Pool, PoolConfig, QueueCounters, QueueId,
};

use crate::config::{BackendSpec, FaultSpec};

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The interface does not exist (in this network namespace).
    #[error("interface {0} not found (in this network namespace)")]
    NoInterface(String),
    /// Not privileged enough.
    #[error("need root or {cap} for {backend}")]
    Permission {
        /// The backend.
        backend: &'static str,
        /// The capability it needs.
        cap: &'static str,
    },
    /// `/dev/net/tun` is missing.
    #[error("no /dev/net/tun: the tun module is not loaded")]
    NoTun,
    /// The shared-memory wire could not be opened.
    #[error("shared-memory wire {path}: {err}")]
    Shm {
        /// The file.
        path: String,
        /// Why.
        err: ShmError,
    },
    /// The packet-buffer pool could not be mapped.
    #[error("packet buffer pool: {0}")]
    Pool(String),
    /// Anything else the OS said.
    #[error("{backend} {name}: {err}")]
    Os {
        /// The backend.
        backend: &'static str,
        /// Interface or file.
        name: String,
        /// The error.
        err: io::Error,
    },
}

fn os_error(backend: &'static str, name: &str, e: io::Error) -> BackendError {
    match e.raw_os_error() {
        Some(19) => BackendError::NoInterface(name.to_string()),
        Some(1 | 13) => BackendError::Permission {
            backend,
            cap: if backend == "tap" { "CAP_NET_ADMIN" } else { "CAP_NET_RAW" },
        },
        _ if e.kind() == io::ErrorKind::NotFound && backend == "tap" => BackendError::NoTun,
        _ => BackendError::Os { backend, name: name.to_string(), err: e },
    }
}

/// Packet buffer size for an IP MTU: Ethernet header, headroom, rounded up to 64 bytes.
pub fn buf_size_for_mtu(mtu: u16) -> u32 {
    ((u32::from(mtu) + 14 + 128).div_ceil(64) * 64).max(2048)
}

/// Builds the pool an engine and its NIC share (ordinary pages are fine when no huge pages are
/// reserved).
pub fn make_pool(mtu: u16, count: u32) -> Result<Pool, BackendError> {
    Pool::new(PoolConfig { count, buf_size: buf_size_for_mtu(mtu), ..PoolConfig::default() })
        .map_err(|e| BackendError::Pool(e.to_string()))
}

/// Opens `spec` with buffers from `pool`. `mtu` sizes the shm wire's slots (other backends
/// report the interface's MTU). An shm opener waits up to `wait` for the creator's file.
pub fn open_backend(
    spec: &BackendSpec,
    pool: Pool,
    mtu: u16,
    wait: StdDuration,
) -> Result<Box<dyn Nic>, BackendError> {
    Ok(match spec {
        BackendSpec::AfPacket(ifname) => {
            let cfg = AfPacketConfig::new(ifname);
            Box::new(AfPacket::open(&cfg, pool).map_err(|e| os_error("af-packet", ifname, e))?)
        }
        BackendSpec::Tap(name) => {
            let cfg = TapConfig::new(name);
            Box::new(Tap::open(&cfg, pool).map_err(|e| os_error("tap", name, e))?)
        }
        BackendSpec::Shm { path, create } => {
            let shm_err = |err| BackendError::Shm { path: path.display().to_string(), err };
            if *create {
                let w = ShmWire::create(path, 1024, u32::from(mtu) + 14, pool).map_err(shm_err)?;
                Box::new(w)
            } else {
                let step = StdDuration::from_millis(20);
                let mut tries = wait.as_millis() / step.as_millis() + 1;
                loop {
                    tries -= 1;
                    match ShmWire::open(path, pool.clone()) {
                        Ok(w) => break Box::new(w),
                        // The creator has not made the file yet: retry (at start-up, before
                        // the engine runs).
                        Err(ShmError::Io(e))
                            if e.kind() == io::ErrorKind::NotFound && tries > 0 =>
                        {
                            crate::clock::sleep(step)
                        }
                        Err(e) => return Err(shm_err(e)),
                    }
                }
            }
        }
    })
}

/// A [`FaultNic`] around a boxed NIC that publishes its statistics into a shared cell after
/// every burst, so that they stay readable once the engine owns the NIC.
pub struct ObservedFaults {
    inner: FaultNic<Box<dyn Nic>>,
    stats: Rc<Cell<FaultStats>>,
}

impl std::fmt::Debug for ObservedFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedFaults").field("stats", &self.stats.get()).finish()
    }
}

impl ObservedFaults {
    /// Wraps `nic` with `spec`'s faults; duplicates come from `pool`. Returns the NIC and the
    /// cell its statistics appear in.
    pub fn wrap(
        nic: Box<dyn Nic>,
        spec: &FaultSpec,
        pool: Pool,
        burst: usize,
    ) -> (ObservedFaults, Rc<Cell<FaultStats>>) {
        let (rx, tx) = spec.profiles();
        let stats = Rc::new(Cell::new(FaultStats::default()));
        let inner = FaultNic::new(nic, spec.seed, rx, tx, pool, burst);
        (ObservedFaults { inner, stats: stats.clone() }, stats)
    }
}

impl Nic for ObservedFaults {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn link(&self) -> LinkState {
        self.inner.link()
    }
    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        let r = self.inner.rx_burst(queue, out);
        self.stats.set(self.inner.stats());
        r
    }
    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        let r = self.inner.tx_burst(queue, bufs);
        self.stats.set(self.inner.stats());
        r
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_errors() {
        let e = os_error("af-packet", "veth9", io::Error::from_raw_os_error(19));
        assert_eq!(e.to_string(), "interface veth9 not found (in this network namespace)");
        let e = os_error("af-packet", "veth9", io::Error::from_raw_os_error(1));
        assert_eq!(e.to_string(), "need root or CAP_NET_RAW for af-packet");
        assert_eq!(buf_size_for_mtu(1500), 2048);
        assert_eq!(buf_size_for_mtu(9000), 9152);
    }

    #[test]
    fn shm_opener_gives_up_on_a_missing_file() {
        let pool = make_pool(1500, 64).unwrap();
        let spec = BackendSpec::Shm {
            path: format!("/tmp/joyride-missing-{}", std::process::id()).into(),
            create: false,
        };
        let Err(e) = open_backend(&spec, pool, 1500, StdDuration::from_millis(50)) else {
            panic!("opened a missing wire")
        };
        assert!(e.to_string().contains("shared-memory wire"), "{e}");
    }
}
