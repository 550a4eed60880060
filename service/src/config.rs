//! The service's configuration: backend, fault and address specs as `joyrided` takes them on
//! the command line, and the TOML file with the same fields.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use joyride_drivers::fault::FaultProfile;
use serde::Deserialize;

/// Why a spec was rejected (the message names the offending text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {text:?}: {why}")]
pub struct SpecError {
    what: &'static str,
    text: String,
    why: String,
}

fn spec_err(what: &'static str, text: &str, why: impl Into<String>) -> SpecError {
    SpecError { what, text: text.to_string(), why: why.into() }
}

/// Which NIC backend to drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendSpec {
    /// `af-packet:IFACE`: an existing interface through a packet socket.
    AfPacket(String),
    /// `tap:NAME`: a TAP device (created if missing).
    Tap(String),
    /// `shm:PATH[,create]`: one end of a shared-memory wire; `create` makes the file.
    Shm {
        /// The wire file (usually under /dev/shm).
        path: PathBuf,
        /// Create the wire (the other end opens it).
        create: bool,
    },
    /// `vfio:BDF[,bind]`: a PCI NIC driven from user space through VFIO by the Joyride driver
    /// its vendor/device ID selects ([`crate::backend::PCI_DRIVERS`]); `bind` first hands the
    /// device to vfio-pci.
    Vfio {
        /// The PCI address, normalized (`0000:00:03.0`).
        bdf: String,
        /// Bind the device to vfio-pci before opening it.
        bind: bool,
    },
}

/// What `--backend` accepts (for error messages and help).
pub const BACKEND_FORMS: &str =
    "af-packet:IFACE | tap:NAME | shm:PATH[,create] | vfio:BDF[,bind] (e.g. vfio:0000:00:03.0)";

impl FromStr for BackendSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let err = |why: &str| spec_err("backend", s, why);
        let (kind, arg) =
            s.split_once(':').ok_or_else(|| err(&format!("expected {BACKEND_FORMS}")))?;
        if arg.is_empty() {
            return Err(err("missing argument after ':'"));
        }
        match kind {
            "af-packet" | "af_packet" => Ok(BackendSpec::AfPacket(arg.to_string())),
            "tap" => Ok(BackendSpec::Tap(arg.to_string())),
            "shm" => {
                let (path, create) = match arg.rsplit_once(',') {
                    Some((p, "create")) => (p, true),
                    Some((_, other)) => {
                        return Err(err(&format!("unknown shm option {other:?} (only `create`)")))
                    }
                    None => (arg, false),
                };
                Ok(BackendSpec::Shm { path: PathBuf::from(path), create })
            }
            "vfio" => {
                let (addr, bind) = match arg.split_once(',') {
                    Some((a, "bind")) => (a, true),
                    Some((_, other)) => {
                        return Err(err(&format!("unknown vfio option {other:?} (only `bind`)")))
                    }
                    None => (arg, false),
                };
                let bdf =
                    joyride_vfio::bind::normalize_bdf(addr).map_err(|e| err(&e.to_string()))?;
                Ok(BackendSpec::Vfio { bdf, bind })
            }
            other => Err(err(&format!("unknown backend {other:?} (expected {BACKEND_FORMS})"))),
        }
    }
}

impl fmt::Display for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendSpec::AfPacket(i) => write!(f, "af-packet:{i}"),
            BackendSpec::Tap(n) => write!(f, "tap:{n}"),
            BackendSpec::Shm { path, create } => {
                write!(f, "shm:{}{}", path.display(), if *create { ",create" } else { "" })
            }
            BackendSpec::Vfio { bdf, bind } => {
                write!(f, "vfio:{bdf}{}", if *bind { ",bind" } else { "" })
            }
        }
    }
}

/// `ADDR/PREFIX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpCidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl FromStr for IpCidr {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (a, p) =
            s.split_once('/').ok_or_else(|| spec_err("address", s, "expected ADDR/PREFIX"))?;
        let addr = a.parse().map_err(|_| spec_err("address", s, "bad IPv4 address"))?;
        let prefix_len = p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| spec_err("address", s, "prefix length must be 0..=32"))?;
        Ok(IpCidr { addr, prefix_len })
    }
}

/// Which directions a fault profile applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FaultDir {
    /// Receive and transmit.
    #[default]
    Both,
    /// Receive only.
    Rx,
    /// Transmit only.
    Tx,
}

/// `loss=P,dup=P,reorder=P,corrupt=P,seed=N[,dir=both|rx|tx]`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct FaultSpec {
    /// The probabilities.
    pub profile: FaultProfile,
    /// The seed.
    pub seed: u64,
    /// Directions.
    pub dir: FaultDir,
}

impl FaultSpec {
    /// The (receive, transmit) profiles.
    pub fn profiles(&self) -> (FaultProfile, FaultProfile) {
        let none = FaultProfile::default();
        match self.dir {
            FaultDir::Both => (self.profile, self.profile),
            FaultDir::Rx => (self.profile, none),
            FaultDir::Tx => (none, self.profile),
        }
    }
}

impl FromStr for FaultSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut f = FaultSpec { seed: 1, ..Default::default() };
        for kv in s.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| spec_err("fault", s, format!("{kv:?} is not KEY=VALUE")))?;
            let p = || {
                v.parse::<f64>().ok().filter(|p| (0.0..=1.0).contains(p)).ok_or_else(|| {
                    spec_err("fault", s, format!("{k} must be a probability in 0..=1"))
                })
            };
            match k {
                "loss" | "drop" => f.profile.drop = p()?,
                "dup" | "duplicate" => f.profile.duplicate = p()?,
                "reorder" => f.profile.reorder = p()?,
                "corrupt" => f.profile.corrupt = p()?,
                "seed" => f.seed = v.parse().map_err(|_| spec_err("fault", s, "bad seed"))?,
                "dir" => {
                    f.dir = match v {
                        "both" => FaultDir::Both,
                        "rx" => FaultDir::Rx,
                        "tx" => FaultDir::Tx,
                        _ => return Err(spec_err("fault", s, "dir must be both, rx or tx")),
                    }
                }
                _ => return Err(spec_err("fault", s, format!("unknown key {k:?}"))),
            }
        }
        Ok(f)
    }
}

/// The TOML configuration file: the same fields as the command line (which overrides it).
///
/// ```toml
/// backend = "af-packet:veth0"     # or "vfio:0000:00:03.0,bind"
/// ip = "10.0.0.2/24"
/// gateway = "10.0.0.1"
/// mtu = 1500
/// pcap = "/tmp/joyride.pcap"
/// fault = "loss=0.01,seed=7"
/// apps = ["echo:7", "udp-echo:7"]
/// exit_when_done = false
/// spin_us = 200
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Backend spec.
    pub backend: Option<String>,
    /// `ADDR/PREFIX`.
    pub ip: Option<String>,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU.
    pub mtu: Option<u16>,
    /// Capture file.
    pub pcap: Option<PathBuf>,
    /// Fault spec.
    pub fault: Option<String>,
    /// Built-in apps.
    #[serde(default)]
    pub apps: Vec<String>,
    /// Exit once every app is done.
    pub exit_when_done: Option<bool>,
    /// Busy-poll budget after work, in microseconds.
    pub spin_us: Option<u64>,
}

impl FileConfig {
    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends() {
        assert_eq!("af-packet:veth0".parse(), Ok(BackendSpec::AfPacket("veth0".into())));
        assert_eq!("tap:jr0".parse(), Ok(BackendSpec::Tap("jr0".into())));
        assert_eq!(
            "shm:/dev/shm/w,create".parse(),
            Ok(BackendSpec::Shm { path: "/dev/shm/w".into(), create: true })
        );
        assert_eq!(
            "shm:/dev/shm/w".parse(),
            Ok(BackendSpec::Shm { path: "/dev/shm/w".into(), create: false })
        );
        for bad in ["veth0", "af-packet:", "shm:/x,bogus", "dpdk:0"] {
            assert!(bad.parse::<BackendSpec>().is_err(), "{bad}");
        }
        let e = "dpdk:0".parse::<BackendSpec>().unwrap_err().to_string();
        assert!(e.contains("unknown backend") && e.contains("vfio:BDF[,bind]"), "{e}");
    }

    #[test]
    fn vfio_backends() {
        let v = |bdf: &str, bind| Ok(BackendSpec::Vfio { bdf: bdf.into(), bind });
        assert_eq!("vfio:0000:00:03.0".parse(), v("0000:00:03.0", false));
        assert_eq!("vfio:0000:00:03.0,bind".parse(), v("0000:00:03.0", true));
        // Short and upper-case forms are normalized to what sysfs uses.
        assert_eq!("vfio:00:1F.7,bind".parse(), v("0000:00:1f.7", true));
        assert_eq!("vfio:0001:3b:00.1".parse(), v("0001:3b:00.1", false));
        for spec in ["vfio:0000:00:03.0", "vfio:0000:3b:00.1,bind"] {
            assert_eq!(spec.parse::<BackendSpec>().unwrap().to_string(), spec, "round trip");
        }
        for (bad, why) in [
            ("vfio:", "missing argument"),
            ("vfio:eth0", "invalid PCI address"),
            ("vfio:0000:00:03", "invalid PCI address"),
            ("vfio:0000:00:20.0", "invalid PCI address"),
            ("vfio:0000:00:03.0/../..", "invalid PCI address"),
            ("vfio:0000:00:03.0,bnid", "unknown vfio option \"bnid\""),
            ("vfio:0000:00:03.0,bind,bind", "unknown vfio option"),
        ] {
            let e = bad.parse::<BackendSpec>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn cidr_and_fault() {
        let c: IpCidr = "10.98.1.2/24".parse().unwrap();
        assert_eq!((c.addr, c.prefix_len), (Ipv4Addr::new(10, 98, 1, 2), 24));
        assert!("10.98.1.2/33".parse::<IpCidr>().is_err());
        assert!("10.98.1.2".parse::<IpCidr>().is_err());
        let f: FaultSpec = "loss=0.05,dup=0.01,seed=9,dir=rx".parse().unwrap();
        assert_eq!(f.profile.drop, 0.05);
        assert_eq!(f.profile.duplicate, 0.01);
        assert_eq!(f.seed, 9);
        let (rx, tx) = f.profiles();
        assert_eq!(rx.drop, 0.05);
        assert_eq!(tx.drop, 0.0);
        assert!("loss=2".parse::<FaultSpec>().is_err());
        assert!("jitter=1".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn toml_file() {
        let c = FileConfig::parse(
            "backend = \"af-packet:veth0\"\nip = \"10.0.0.2/24\"\nmtu = 1400\napps = [\"echo:7\"]\n",
        )
        .unwrap();
        assert_eq!(c.backend.as_deref(), Some("af-packet:veth0"));
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.apps, vec!["echo:7".to_string()]);
        assert!(FileConfig::parse("bogus = 1").is_err());
        let c =
            FileConfig::parse("backend = \"vfio:00:03.0,bind\"\nip = \"10.0.0.2/24\"\n").unwrap();
        assert_eq!(
            c.backend.unwrap().parse(),
            Ok(BackendSpec::Vfio { bdf: "0000:00:03.0".into(), bind: true })
        );
    }
}
