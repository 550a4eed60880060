//! Handing a PCI device to `vfio-pci` and back, through sysfs (plain file writes, no `unsafe`).
//!
//! The kernel's interface (`Documentation/ABI/testing/sysfs-bus-pci`):
//! - `/sys/bus/pci/devices/BDF/driver_override`: the only driver that may bind the device
//!   (writing `"\n"` clears it);
//! - `/sys/bus/pci/devices/BDF/driver/unbind`: detach it from its current driver;
//! - `/sys/bus/pci/drivers_probe`: bind it to the first driver that accepts it (with the
//!   override set, `vfio-pci`);
//! - `/sys/bus/pci/devices/BDF/iommu_group`: a link whose basename is the group number, whose
//!   character device `/dev/vfio/GROUP` VFIO opens.
//!
//! Every failure is a [`BindError`] that says what is missing in words a person can act on.
//! [`Sysfs`] takes its roots as parameters so the logic is unit-tested against a directory tree
//! that mimics sysfs; [`bind_to_vfio`], [`unbind`] and [`restore`] use the real `/sys` and `/dev`.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

/// The driver this module binds devices to.
pub const VFIO_PCI: &str = "vfio-pci";

/// Why binding, unbinding or checking a device failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The text is not a PCI address.
    #[error("invalid PCI address {0:?}: expected DOMAIN:BUS:DEVICE.FUNCTION, e.g. 0000:00:03.0")]
    BadAddress(String),
    /// No such device in sysfs.
    #[error("no PCI device {0} (see lspci -D for the addresses)")]
    NoDevice(String),
    /// The device has no IOMMU group: the IOMMU is off.
    #[error("{0}: no IOMMU group: is the IOMMU enabled (intel_iommu=on)?")]
    NoIommuGroup(String),
    /// `/sys/bus/pci/drivers/vfio-pci` is missing.
    #[error("vfio-pci module not loaded: modprobe vfio-pci")]
    NoVfioPci,
    /// `/dev/vfio/vfio` (or the group's node) is missing.
    #[error("/dev/vfio missing ({0}): load the vfio modules (modprobe vfio-pci) and mount devtmpfs on /dev")]
    NoDevVfio(String),
    /// Another process holds the device's VFIO group, or the kernel refused with `EBUSY`.
    #[error("device {bdf} busy: {why}")]
    Busy {
        /// The device.
        bdf: String,
        /// Who holds it.
        why: String,
    },
    /// Not allowed to write a sysfs file.
    #[error("permission denied writing {0}: binding devices needs root")]
    Permission(String),
    /// The device is (still) bound to another driver, or to none.
    #[error("{bdf} is bound to {}, not vfio-pci{hint}", driver.as_deref().unwrap_or("no driver"))]
    NotBound {
        /// The device.
        bdf: String,
        /// Its driver now.
        driver: Option<String>,
        /// What to do about it (empty, or starting with `: `).
        hint: &'static str,
    },
    /// Another I/O error on a sysfs or device file.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        err: io::Error,
    },
}

/// What [`Sysfs::bind_to_vfio`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The device's address, normalized (`0000:00:03.0`).
    pub bdf: String,
    /// Its IOMMU group (`/dev/vfio/GROUP`).
    pub group: u32,
    /// The driver it was bound to before (`Some("vfio-pci")` if nothing had to be done).
    pub previous: Option<String>,
}

impl Bound {
    /// Whether the device was already bound to vfio-pci.
    pub fn was_bound(&self) -> bool {
        self.previous.as_deref() == Some(VFIO_PCI)
    }
}

/// Normalizes a PCI address: `DDDD:BB:DD.F` or `BB:DD.F` (domain 0), hexadecimal, to the
/// lower-case `DDDD:BB:DD.F` sysfs uses. Rejects anything else (and so any `/` or `..`).
pub fn normalize_bdf(s: &str) -> Result<String, BindError> {
    let bad = || BindError::BadAddress(s.to_string());
    let parts: Vec<&str> = s.split(':').collect();
    let (dom, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0", *b, *df),
        _ => return Err(bad()),
    };
    let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
    let hex = |t: &str, max_len: usize, max: u32| -> Result<u32, BindError> {
        if t.is_empty() || t.len() > max_len || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u32::from_str_radix(t, 16).ok().filter(|v| *v <= max).ok_or_else(bad)
    };
    // PCI: 16-bit domain (segment), 8-bit bus, 5-bit device, 3-bit function.
    let (dom, bus, dev, func) =
        (hex(dom, 4, 0xffff)?, hex(bus, 2, 0xff)?, hex(dev, 2, 0x1f)?, hex(func, 1, 7)?);
    Ok(format!("{dom:04x}:{bus:02x}:{dev:02x}.{func:x}"))
}

/// The sysfs and `/dev` trees to work on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysfs {
    sys: PathBuf,
    dev: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys", "/dev")
    }
}

fn io_err(path: &Path, err: io::Error) -> BindError {
    BindError::Io { path: path.display().to_string(), err }
}

impl Sysfs {
    /// A tree rooted at `sys` (normally `/sys`) and `dev` (normally `/dev`).
    pub fn new(sys: impl Into<PathBuf>, dev: impl Into<PathBuf>) -> Sysfs {
        Sysfs { sys: sys.into(), dev: dev.into() }
    }

    fn device_dir(&self, bdf: &str) -> PathBuf {
        self.sys.join("bus/pci/devices").join(bdf)
    }

    /// Normalizes `bdf` and checks that the device exists.
    fn device(&self, bdf: &str) -> Result<(String, PathBuf), BindError> {
        let bdf = normalize_bdf(bdf)?;
        let dir = self.device_dir(&bdf);
        if !dir.is_dir() {
            return Err(BindError::NoDevice(bdf));
        }
        Ok((bdf, dir))
    }

    /// The driver `bdf` is bound to (`None`: no driver).
    pub fn driver(&self, bdf: &str) -> Result<Option<String>, BindError> {
        let (_, dir) = self.device(bdf)?;
        let link = dir.join("driver");
        match std::fs::read_link(&link) {
            Ok(t) => Ok(t.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&link, e)),
        }
    }

    /// The `(vendor, device)` IDs sysfs reports for `bdf`.
    pub fn ids(&self, bdf: &str) -> Result<(u16, u16), BindError> {
        let (_, dir) = self.device(bdf)?;
        let read = |name: &str| -> Result<u16, BindError> {
            let p = dir.join(name);
            let t = std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))?;
            u16::from_str_radix(t.trim().trim_start_matches("0x"), 16).map_err(|_| BindError::Io {
                path: p.display().to_string(),
                err: io::Error::new(io::ErrorKind::InvalidData, format!("not an ID: {t:?}")),
            })
        };
        Ok((read("vendor")?, read("device")?))
    }

    /// The IOMMU group of `bdf` (the basename of its `iommu_group` link).
    pub fn iommu_group(&self, bdf: &str) -> Result<u32, BindError> {
        let (bdf, dir) = self.device(bdf)?;
        std::fs::read_link(dir.join("iommu_group"))
            .ok()
            .and_then(|t| t.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()))
            .ok_or(BindError::NoIommuGroup(bdf))
    }

    fn group_node(&self, group: u32) -> PathBuf {
        self.dev.join("vfio").join(group.to_string())
    }

    fn write(&self, path: &Path, bdf: &str, text: &str) -> Result<(), BindError> {
        std::fs::write(path, text).map_err(|e| match e.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => BindError::Permission(path.display().to_string()),
            Some(libc::EBUSY) => BindError::Busy {
                bdf: bdf.to_string(),
                why: format!("the kernel refused {} (EBUSY)", path.display()),
            },
            _ => io_err(path, e),
        })
    }

    /// Fails with [`BindError::Busy`] when another process has the device's VFIO group open
    /// (VFIO lets one process open a group at a time: a second open gets `EBUSY`). Unbinding
    /// vfio-pci while the group is open would block in the kernel until that process lets go.
    fn check_not_busy(&self, bdf: &str, group: u32) -> Result<(), BindError> {
        let node = self.group_node(group);
        match OpenOptions::new().read(true).write(true).open(&node) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(BindError::Busy {
                bdf: bdf.to_string(),
                why: format!("{} is open in another process (a running joyrided?)", node.display()),
            }),
            // Missing or not openable by us: the unbind itself will say more.
            Err(_) => Ok(()),
        }
    }

    /// Checks that `bdf` is ready for [`crate::Device::open`]: it exists, has an IOMMU group,
    /// is bound to vfio-pci and its group node exists. Returns the group.
    pub fn check_vfio(&self, bdf: &str) -> Result<u32, BindError> {
        let (bdf, _) = self.device(bdf)?;
        let group = self.iommu_group(&bdf)?;
        let driver = self.driver(&bdf)?;
        if driver.as_deref() != Some(VFIO_PCI) {
            return Err(BindError::NotBound {
                bdf,
                driver,
                hint:
                    ": bind it first (`joyrided vfio-bind BDF`, or the backend spec vfio:BDF,bind)",
            });
        }
        let node = self.group_node(group);
        if !node.exists() {
            return Err(BindError::NoDevVfio(node.display().to_string()));
        }
        Ok(group)
    }

    /// Binds `bdf` to vfio-pci: sets `driver_override`, unbinds it from its current driver and
    /// asks the kernel to probe it again. A device already on vfio-pci is left alone.
    pub fn bind_to_vfio(&self, bdf: &str) -> Result<Bound, BindError> {
        let (bdf, dir) = self.device(bdf)?;
        let group = self.iommu_group(&bdf)?;
        if !self.sys.join("bus/pci/drivers").join(VFIO_PCI).is_dir() {
            return Err(BindError::NoVfioPci);
        }
        let container = self.dev.join("vfio/vfio");
        if !container.exists() {
            return Err(BindError::NoDevVfio(container.display().to_string()));
        }
        let previous = self.driver(&bdf)?;
        if previous.as_deref() != Some(VFIO_PCI) {
            self.write(&dir.join("driver_override"), &bdf, VFIO_PCI)?;
            if previous.is_some() {
                self.write(&dir.join("driver/unbind"), &bdf, &bdf)?;
            }
            self.write(&self.sys.join("bus/pci/drivers_probe"), &bdf, &bdf)?;
            let now = self.driver(&bdf)?;
            if now.as_deref() != Some(VFIO_PCI) {
                return Err(BindError::NotBound {
                    bdf,
                    driver: now,
                    hint: " after drivers_probe (see dmesg)",
                });
            }
        }
        let node = self.group_node(group);
        if !node.exists() {
            return Err(BindError::NoDevVfio(node.display().to_string()));
        }
        Ok(Bound { bdf, group, previous })
    }

    /// Detaches `bdf` from its driver, leaving `driver_override` as it is (so a device bound
    /// with [`Sysfs::bind_to_vfio`] stays driverless until [`Sysfs::restore`] or a probe).
    /// Returns the driver it was bound to. Refuses with [`BindError::Busy`] while another
    /// process has the device open through VFIO.
    pub fn unbind(&self, bdf: &str) -> Result<Option<String>, BindError> {
        let (bdf, dir) = self.device(bdf)?;
        let driver = self.driver(&bdf)?;
        if driver.as_deref() == Some(VFIO_PCI) {
            if let Ok(group) = self.iommu_group(&bdf) {
                self.check_not_busy(&bdf, group)?;
            }
        }
        if driver.is_some() {
            self.write(&dir.join("driver/unbind"), &bdf, &bdf)?;
        }
        Ok(driver)
    }

    /// Gives `bdf` back to the kernel: unbinds it (from vfio-pci, or whatever holds it), clears
    /// `driver_override` and probes it, so its ordinary kernel driver takes it again. Returns
    /// the driver it is bound to afterwards (`None` if no driver wanted it).
    pub fn restore(&self, bdf: &str) -> Result<Option<String>, BindError> {
        let (bdf, dir) = self.device(bdf)?;
        self.unbind(&bdf)?;
        // sysfs-bus-pci: writing an empty string (a lone newline) clears the override.
        self.write(&dir.join("driver_override"), &bdf, "\n")?;
        self.write(&self.sys.join("bus/pci/drivers_probe"), &bdf, &bdf)?;
        self.driver(&bdf)
    }
}

/// [`Sysfs::bind_to_vfio`] on the real `/sys` and `/dev`.
pub fn bind_to_vfio(bdf: &str) -> Result<Bound, BindError> {
    Sysfs::default().bind_to_vfio(bdf)
}

/// [`Sysfs::unbind`] on the real `/sys` and `/dev`.
pub fn unbind(bdf: &str) -> Result<Option<String>, BindError> {
    Sysfs::default().unbind(bdf)
}

/// [`Sysfs::restore`] on the real `/sys` and `/dev`.
pub fn restore(bdf: &str) -> Result<Option<String>, BindError> {
    Sysfs::default().restore(bdf)
}

/// [`Sysfs::check_vfio`] on the real `/sys` and `/dev`.
pub fn check_vfio(bdf: &str) -> Result<u32, BindError> {
    Sysfs::default().check_vfio(bdf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const BDF: &str = "0000:00:03.0";

    /// A directory tree shaped like sysfs + /dev for one device on `driver`, in group 5.
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str, driver: Option<&str>) -> Tree {
            let root = std::env::temp_dir().join(format!(
                "joyride-bind-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            let t = Tree(root);
            let dev = t.dev_dir();
            for d in [
                "sys/bus/pci/drivers/vfio-pci",
                "sys/bus/pci/drivers/virtio-pci",
                "sys/kernel/iommu_groups/5",
                "dev/vfio",
            ] {
                std::fs::create_dir_all(t.0.join(d)).unwrap();
            }
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::write(dev.join("vendor"), "0x1af4\n").unwrap();
            std::fs::write(dev.join("device"), "0x1041\n").unwrap();
            std::fs::write(dev.join("driver_override"), "(null)\n").unwrap();
            symlink(t.0.join("sys/kernel/iommu_groups/5"), dev.join("iommu_group")).unwrap();
            if let Some(d) = driver {
                t.set_driver(d);
            }
            std::fs::write(t.0.join("dev/vfio/vfio"), "").unwrap();
            std::fs::write(t.0.join("dev/vfio/5"), "").unwrap();
            t
        }
        fn sysfs(&self) -> Sysfs {
            Sysfs::new(self.0.join("sys"), self.0.join("dev"))
        }
        fn dev_dir(&self) -> PathBuf {
            self.0.join("sys/bus/pci/devices").join(BDF)
        }
        fn set_driver(&self, d: &str) {
            let link = self.dev_dir().join("driver");
            let _ = std::fs::remove_file(&link);
            symlink(self.0.join("sys/bus/pci/drivers").join(d), link).unwrap();
        }
        fn read(&self, rel: &str) -> String {
            std::fs::read_to_string(self.0.join(rel)).unwrap_or_default()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(normalize_bdf("0000:00:03.0").unwrap(), "0000:00:03.0");
        assert_eq!(normalize_bdf("00:1F.7").unwrap(), "0000:00:1f.7");
        assert_eq!(normalize_bdf("1:a:3.1").unwrap(), "0001:0a:03.1");
        for bad in [
            "",
            "00:03",
            "0000:00:20.0",
            "0000:00:03.8",
            "0000:100:03.0",
            "../x:00:03.0",
            "0000:00:03.0/..",
            "a:b:c:d.0",
            "0000:00:03.+1",
        ] {
            let e = normalize_bdf(bad).unwrap_err();
            assert!(matches!(e, BindError::BadAddress(_)), "{bad}: {e}");
        }
        assert!(normalize_bdf("zz").unwrap_err().to_string().contains("e.g. 0000:00:03.0"));
    }

    #[test]
    fn reads_driver_group_and_ids() {
        let t = Tree::new("read", Some("virtio-pci"));
        let s = t.sysfs();
        assert_eq!(s.driver(BDF).unwrap().as_deref(), Some("virtio-pci"));
        assert_eq!(s.iommu_group("00:03.0").unwrap(), 5);
        assert_eq!(s.ids(BDF).unwrap(), (0x1af4, 0x1041));
        let e = s.check_vfio(BDF).unwrap_err().to_string();
        assert!(e.contains("bound to virtio-pci, not vfio-pci") && e.contains("vfio-bind"), "{e}");
        t.set_driver("vfio-pci");
        assert_eq!(s.check_vfio(BDF).unwrap(), 5);
        std::fs::remove_file(t.0.join("dev/vfio/5")).unwrap();
        assert!(matches!(s.check_vfio(BDF), Err(BindError::NoDevVfio(_))));
    }

    #[test]
    fn bind_writes_override_unbind_and_probe_in_order() {
        let t = Tree::new("bind", Some("virtio-pci"));
        // The fake tree does not react to the writes, so the device "stays" on virtio-pci:
        // bind must notice that the probe did not take.
        let e = t.sysfs().bind_to_vfio(BDF).unwrap_err();
        assert!(
            matches!(&e, BindError::NotBound { driver: Some(d), .. } if d == "virtio-pci"),
            "{e}"
        );
        let dev = format!("sys/bus/pci/devices/{BDF}");
        assert_eq!(t.read(&format!("{dev}/driver_override")), "vfio-pci");
        assert_eq!(t.read("sys/bus/pci/drivers/virtio-pci/unbind"), BDF);
        assert_eq!(t.read("sys/bus/pci/drivers_probe"), BDF);
    }

    #[test]
    fn bind_of_a_bound_device_does_nothing() {
        let t = Tree::new("bound", Some("vfio-pci"));
        let b = t.sysfs().bind_to_vfio("00:03.0").unwrap();
        assert_eq!(b, Bound { bdf: BDF.into(), group: 5, previous: Some("vfio-pci".into()) });
        assert!(b.was_bound());
        assert_eq!(t.read("sys/bus/pci/drivers_probe"), "", "no probe needed");
        assert_eq!(t.read(&format!("sys/bus/pci/devices/{BDF}/driver_override")), "(null)\n");
    }

    #[test]
    fn bind_says_what_is_missing() {
        let t = Tree::new("missing", Some("virtio-pci"));
        let s = t.sysfs();
        let e = s.bind_to_vfio("0000:00:04.0").unwrap_err().to_string();
        assert_eq!(e, "no PCI device 0000:00:04.0 (see lspci -D for the addresses)");

        std::fs::remove_dir(t.0.join("sys/bus/pci/drivers/vfio-pci")).unwrap();
        let e = s.bind_to_vfio(BDF).unwrap_err().to_string();
        assert_eq!(e, "vfio-pci module not loaded: modprobe vfio-pci");
        std::fs::create_dir(t.0.join("sys/bus/pci/drivers/vfio-pci")).unwrap();

        std::fs::remove_file(t.0.join("dev/vfio/vfio")).unwrap();
        let e = s.bind_to_vfio(BDF).unwrap_err().to_string();
        assert!(e.starts_with("/dev/vfio missing"), "{e}");

        std::fs::remove_file(t.dev_dir().join("iommu_group")).unwrap();
        let e = s.bind_to_vfio(BDF).unwrap_err().to_string();
        assert_eq!(e, "0000:00:03.0: no IOMMU group: is the IOMMU enabled (intel_iommu=on)?");
        // Nothing was written on the way to any of these errors.
        assert_eq!(t.read("sys/bus/pci/drivers_probe"), "");
    }

    #[test]
    fn restore_unbinds_clears_the_override_and_probes() {
        let t = Tree::new("restore", Some("vfio-pci"));
        let s = t.sysfs();
        // The group node is a plain file here, so it opens: not busy.
        assert_eq!(s.restore(BDF).unwrap().as_deref(), Some("vfio-pci"));
        assert_eq!(t.read("sys/bus/pci/drivers/vfio-pci/unbind"), BDF);
        assert_eq!(t.read(&format!("sys/bus/pci/devices/{BDF}/driver_override")), "\n");
        assert_eq!(t.read("sys/bus/pci/drivers_probe"), BDF);

        let t = Tree::new("unbind-none", None);
        assert_eq!(t.sysfs().unbind(BDF).unwrap(), None);
        assert_eq!(t.read("sys/bus/pci/drivers/vfio-pci/unbind"), "");
    }
}
