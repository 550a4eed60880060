//! Opening a NIC backend from a [`BackendSpec`], with errors a person can act on, and the
//! fault-injecting wrapper whose statistics stay readable after the NIC is boxed.
//!
//! PCI NICs (`vfio:BDF[,bind]`) are opened through VFIO, their vendor/device ID is read from
//! config space, and [`PCI_DRIVERS`] picks the Joyride driver that brings them up.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use joyride_drivers::af_packet::{AfPacket, AfPacketConfig};
use joyride_drivers::fault::{FaultNic, FaultStats};
use joyride_drivers::shm::{ShmError, ShmWire};
use joyride_drivers::tap::{Tap, TapConfig};
use joyride_drivers::{
    Batch, Capabilities, LinkState, Nic, NicError, Pool, PoolConfig, QueueCounters, QueueId,
};
use joyride_ixgbe::{IntelConfig, IntelNic};
use joyride_mlx5::Mlx5Config;
use joyride_vfio::bind::{self, BindError};
use joyride_vfio::{Device, IovaSpace, RealSys, Sys, VfioError};
use joyride_virtio::{VirtioNet, VirtioNetConfig};

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
    /// Binding the device to vfio-pci, or checking that it is bound, failed.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Opening the device through VFIO failed.
    #[error("vfio {bdf}: {err}")]
    Vfio {
        /// The PCI address.
        bdf: String,
        /// Why.
        err: VfioError,
    },
    /// No Joyride driver handles this PCI device.
    #[error("unsupported device {vendor:04x}:{device:04x} at {bdf} (supported: {supported})")]
    UnsupportedDevice {
        /// The PCI address.
        bdf: String,
        /// PCI vendor ID.
        vendor: u16,
        /// PCI device ID.
        device: u16,
        /// What is supported, in words.
        supported: String,
    },
    /// The driver could not bring the device up.
    #[error("{driver} on {bdf}: {err}")]
    Driver {
        /// The PCI address.
        bdf: String,
        /// The driver.
        driver: &'static str,
        /// Why.
        err: DriverError,
    },
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

/// A driver's bring-up error, type-erased (each driver crate has its own error type).
pub type DriverError = Box<dyn std::error::Error + Send + Sync>;

/// A Joyride driver for PCI NICs: the IDs it drives and its constructor.
#[derive(Debug)]
pub struct PciDriver {
    /// What it drives, in words (`virtio-net`).
    pub model: &'static str,
    /// The driver (its crate).
    pub driver: &'static str,
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device IDs.
    pub devices: &'static [u16],
    /// Brings the opened device up with receive buffers from the pool.
    pub open: fn(Device, Pool) -> Result<Box<dyn Nic>, DriverError>,
}

/// The PCI NICs Joyride drives, by vendor and device ID: one line per driver.
pub static PCI_DRIVERS: &[PciDriver] = &[
    // Modern (virtio 1.x) virtio-net; the transitional 1af4:1000 cannot sit behind an IOMMU.
    PciDriver {
        model: "virtio-net",
        driver: "joyride_virtio",
        vendor: 0x1af4,
        devices: &[0x1041],
        open: |d, p| Ok(Box::new(VirtioNet::new(d, p, VirtioNetConfig::default())?)),
    },
    // Intel 82599 (X520 family, 82599 datasheet §9.3.3.2): validated only on a register model.
    PciDriver {
        model: "Intel 82599",
        driver: "joyride_ixgbe",
        vendor: 0x8086,
        devices: &[
            0x10f7, 0x1514, 0x10f8, 0x10f9, 0x10fb, 0x1529, 0x151c, 0x152a, 0x1507, 0x154d, 0x1557,
            0x1558, 0x154a,
        ],
        open: |d, p| Ok(Box::new(IntelNic::open(d, p, IntelConfig::default())?)),
    },
    // Intel 82576 (igb): tested in tinyvm on QEMU's igb model.
    PciDriver {
        model: "Intel 82576",
        driver: "joyride_ixgbe",
        vendor: 0x8086,
        devices: &[0x10c9, 0x10e6, 0x10e7, 0x10e8, 0x150a, 0x1518, 0x150d, 0x1526],
        open: |d, p| Ok(Box::new(IntelNic::open(d, p, IntelConfig::default())?)),
    },
    // NVIDIA ConnectX-4/5/6 (mlx5): validated only against the fake HCA.
    PciDriver {
        model: "ConnectX-4/5/6",
        driver: "joyride_mlx5",
        vendor: 0x15b3,
        devices: &[0x1013, 0x1015, 0x1017, 0x1019, 0x101b, 0x101d],
        open: |d, p| Ok(Box::new(joyride_mlx5::open(d, p, Mlx5Config::default())?)),
    },
];

/// The driver for PCI device `vendor:device`, or an [`BackendError::UnsupportedDevice`] listing
/// what is supported.
pub fn select_pci_driver(
    bdf: &str,
    vendor: u16,
    device: u16,
) -> Result<&'static PciDriver, BackendError> {
    PCI_DRIVERS.iter().find(|d| d.vendor == vendor && d.devices.contains(&device)).ok_or_else(
        || {
            let supported: Vec<String> = PCI_DRIVERS
                .iter()
                .map(|d| {
                    let ids: Vec<String> = d.devices.iter().map(|id| format!("{id:04x}")).collect();
                    format!("{} {:04x}:{}", d.model, d.vendor, ids.join("|"))
                })
                .collect();
            BackendError::UnsupportedDevice {
                bdf: bdf.to_string(),
                vendor,
                device,
                supported: supported.join("; "),
            }
        },
    )
}

/// Opens PCI device `bdf` through VFIO (over `sys`), reads its IDs from config space and
/// brings it up with the driver [`select_pci_driver`] picks. The device must already be bound
/// to vfio-pci.
pub fn open_vfio(
    sys: Arc<dyn Sys>,
    bdf: &str,
    pool: Pool,
) -> Result<(Box<dyn Nic>, &'static PciDriver), BackendError> {
    let vfio_err = |err| BackendError::Vfio { bdf: bdf.to_string(), err };
    let dev = Device::open(sys, bdf, IovaSpace::default()).map_err(vfio_err)?;
    let (vendor, device) = dev.pci_ids().map_err(vfio_err)?;
    let drv = select_pci_driver(bdf, vendor, device)?;
    tracing::info!(bdf, vendor, device, driver = drv.driver, "opening PCI NIC");
    let nic = (drv.open)(dev, pool).map_err(|err| BackendError::Driver {
        bdf: bdf.to_string(),
        driver: drv.driver,
        err,
    })?;
    Ok((nic, drv))
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
        BackendSpec::Vfio { bdf, bind } => {
            if *bind {
                let b = bind::bind_to_vfio(bdf)?;
                tracing::info!(
                    bdf = %b.bdf,
                    group = b.group,
                    previous = b.previous.as_deref().unwrap_or("none"),
                    "bound to vfio-pci"
                );
            } else {
                // Say what is wrong in words before VFIO says it in errnos.
                bind::check_vfio(bdf)?;
            }
            open_vfio(Arc::new(RealSys), bdf, pool)?.0
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
    fn prepare_wait(&mut self, queue: QueueId) -> bool {
        self.inner.prepare_wait(queue)
    }
    fn end_wait(&mut self, queue: QueueId) {
        self.inner.end_wait(queue)
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
    fn pci_ids_pick_the_driver() {
        let d = select_pci_driver("0000:00:03.0", 0x1af4, 0x1041).unwrap();
        assert_eq!((d.driver, d.model), ("joyride_virtio", "virtio-net"));
        for (v, dev) in [(0x1af4, 0x1000), (0x8086, 0x100e), (0x8086, 0x10d3), (0x15b3, 0x1003)] {
            assert!(select_pci_driver("x", v, dev).is_err(), "{v:04x}:{dev:04x}");
        }
        let e = select_pci_driver("0000:00:05.0", 0x8086, 0x10d3).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "unsupported device 8086:10d3 at 0000:00:05.0 (supported: virtio-net 1af4:1041; \
                 Intel 82599 8086:10f7|"
            ),
            "{e}"
        );
        assert!(e.contains("ConnectX-4/5/6 15b3:1013|1015|1017|1019|101b|101d)"), "{e}");
        // Every table entry is reachable and no two claim the same ID.
        for (i, a) in PCI_DRIVERS.iter().enumerate() {
            for &id in a.devices {
                let picked = select_pci_driver("x", a.vendor, id).unwrap();
                assert!(std::ptr::eq(picked, &PCI_DRIVERS[i]), "{:04x}:{id:04x}", a.vendor);
            }
        }
    }

    fn fake_pci(vendor: u16, device: u16) -> Arc<joyride_vfio::fake::FakeSys> {
        let mut config = vec![0u8; 256];
        config[0..2].copy_from_slice(&vendor.to_le_bytes());
        config[2..4].copy_from_slice(&device.to_le_bytes());
        Arc::new(joyride_vfio::fake::FakeSys::new(vec![joyride_vfio::fake::FakeDevice {
            bdf: "0000:00:03.0".into(),
            group: 3,
            viable: true,
            config,
            bars: vec![],
            msix: 1,
            resettable: true,
        }]))
    }

    #[test]
    fn open_vfio_reads_ids_from_config_space() {
        let pool = make_pool(1500, 64).unwrap();
        // An Intel e1000e behind VFIO: opened, read, refused by ID.
        let Err(e) = open_vfio(fake_pci(0x8086, 0x10d3), "0000:00:03.0", pool.clone()) else {
            panic!("no driver should take 8086:10d3")
        };
        assert!(e.to_string().starts_with("unsupported device 8086:10d3 at 0000:00:03.0"), "{e}");
        // An 82599 and a ConnectX-5 go to their drivers, which find no BARs on this fake.
        for (vendor, device, driver) in
            [(0x8086, 0x10fb, "joyride_ixgbe"), (0x15b3, 0x1017, "joyride_mlx5")]
        {
            let Err(e) = open_vfio(fake_pci(vendor, device), "0000:00:03.0", pool.clone()) else {
                panic!("{vendor:04x}:{device:04x} came up without BARs")
            };
            assert!(matches!(e, BackendError::Driver { driver: d, .. } if d == driver), "{e}");
        }
        // A virtio-net ID goes to joyride_virtio, which finds no virtio capabilities here.
        let Err(e) = open_vfio(fake_pci(0x1af4, 0x1041), "0000:00:03.0", pool.clone()) else {
            panic!("a device without virtio capabilities came up")
        };
        assert!(matches!(e, BackendError::Driver { driver: "joyride_virtio", .. }), "{e}");
        assert!(e.to_string().contains("virtio capability missing"), "{e}");
        // VFIO errors name the device.
        let Err(e) = open_vfio(fake_pci(0x1af4, 0x1041), "0000:00:09.0", pool) else {
            panic!("opened a device that does not exist")
        };
        assert!(e.to_string().starts_with("vfio 0000:00:09.0: "), "{e}");
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
