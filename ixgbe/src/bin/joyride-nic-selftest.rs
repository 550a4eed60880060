//! `joyride-nic-selftest`: validates Joyride's Intel driver on a real 82599 (X520) or 82576
//! over VFIO and prints a report for a bug report. See `--help`.

use std::process::ExitCode;
use std::sync::Arc;

use joyride_drivers::{Pool, PoolConfig};
use joyride_ixgbe::selftest::{self, SelftestOptions};
use joyride_ixgbe::Personality;
use joyride_vfio::bind::{self, BindError, Sysfs};
use joyride_vfio::{Device, IovaSpace, RealSys, VfioError};

const HELP: &str = "\
joyride-nic-selftest — check Joyride's user-space driver on your Intel 82599 (X520) or 82576

Joyride's 82599 support has so far been validated only against a register-level model of the
datasheet, never on a real card. If you have one, this command tells us whether it works:
it brings the card up from user space through VFIO, waits for the link, sends frames through
the MAC's internal loopback and checks that each comes back byte-exact, compares the card's
own statistics registers, tears the card down again, and prints a report block. Please paste
the block into an issue whether it says PASS or FAIL.

USAGE:
    joyride-nic-selftest [OPTIONS] BDF

BDF is the card's PCI address as `lspci -D` shows it (0000:03:00.0; 03:00.0 also works).

OPTIONS:
    --bind                 bind the device to vfio-pci first and give it back to its kernel
                           driver (ixgbe/igb) afterwards (needs root)
    --frames N             loopback frames to send (default 1000)
    --link-timeout-ms MS   how long to wait for the link (default 10000; 0 = do not require a
                           link: the MAC loopback itself needs no cable)
    --ring-size N          descriptors per ring, a multiple of 8 in 64..=4096 (default 512)
    -h, --help             this text

BEFORE YOU RUN IT:
    1. The IOMMU must be on: boot with intel_iommu=on (or amd_iommu=on); check that
       /sys/bus/pci/devices/BDF/iommu_group exists.
    2. modprobe vfio-pci
    3. The port must not carry traffic you need: the test takes it away from the kernel.
       Either pass --bind, or bind it yourself:
         echo vfio-pci > /sys/bus/pci/devices/BDF/driver_override
         echo BDF > /sys/bus/pci/devices/BDF/driver/unbind
         echo BDF > /sys/bus/pci/drivers_probe
    4. Run as root, or give your user /dev/vfio/GROUP and a memlock limit of a few MiB
       (ulimit -l): the packet buffers and rings are pinned for DMA.

EXIT STATUS:
    0 PASS, 1 FAIL (the report says which check), 2 the test could not start (the message says
    what is missing).
";

#[derive(Debug)]
struct Args {
    bdf: String,
    bind: bool,
    opts: SelftestOptions,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut bdf = None;
    let mut bind = false;
    let mut opts = SelftestOptions::default();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: not a number: {v:?}"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--bind" => bind = true,
            "--frames" => {
                opts.frames = u32::try_from(num("--frames")?).map_err(|_| "--frames: too big")?
            }
            "--link-timeout-ms" => {
                opts.link_timeout_ms = u32::try_from(num("--link-timeout-ms")?)
                    .map_err(|_| "--link-timeout-ms: too big")?
            }
            "--ring-size" => {
                opts.ring_size =
                    u16::try_from(num("--ring-size")?).map_err(|_| "--ring-size: too big")?
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if bdf.is_none() => bdf = Some(s.to_string()),
            s => return Err(format!("unexpected argument {s:?} (one BDF only)")),
        }
    }
    let bdf = bdf.ok_or("missing the PCI address (BDF) of the card")?;
    let bdf = bind::normalize_bdf(&bdf).map_err(|e| e.to_string())?;
    if opts.frames == 0 {
        return Err("--frames must be at least 1".into());
    }
    Ok(Some(Args { bdf, bind, opts }))
}

/// The VFIO preconditions, checked one by one so that the message names the first one missing.
fn preconditions(a: &Args) -> Result<(), String> {
    let sysfs = Sysfs::default();
    let (vendor, device) = sysfs.ids(&a.bdf).map_err(|e| e.to_string())?;
    let Some(pers) = Personality::from_pci(vendor, device) else {
        return Err(format!(
            "{}: PCI id {vendor:04x}:{device:04x} is not an 82599 or 82576 this driver knows",
            a.bdf
        ));
    };
    eprintln!("selftest: {} is {vendor:04x}:{device:04x} ({pers:?})", a.bdf);
    if !std::path::Path::new("/dev/vfio/vfio").exists() {
        return Err(VfioError::NoVfio.to_string());
    }
    if a.bind {
        let b = bind::bind_to_vfio(&a.bdf).map_err(|e| e.to_string())?;
        eprintln!(
            "selftest: bound to vfio-pci (IOMMU group {}, was {})",
            b.group,
            b.previous.as_deref().unwrap_or("unbound")
        );
    }
    match bind::check_vfio(&a.bdf) {
        Ok(group) => {
            eprintln!("selftest: VFIO ready (IOMMU group {group}, /dev/vfio/{group})");
            Ok(())
        }
        Err(e @ BindError::NotBound { .. }) => {
            Err(format!("{e}\n(or run this command with --bind; see --help)"))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("joyride-nic-selftest: {e}\n(see --help)");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = preconditions(&args) {
        eprintln!("joyride-nic-selftest: {e}");
        return ExitCode::from(2);
    }
    let pool = match Pool::new(PoolConfig { count: 4096, ..PoolConfig::default() }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("joyride-nic-selftest: packet buffers: {e}");
            return ExitCode::from(2);
        }
    };
    if !pool.is_locked() {
        eprintln!(
            "selftest: warning: packet buffers not mlocked (raise `ulimit -l`); VFIO pins them \
             anyway, but mapping may fail with errno 12"
        );
    }
    let dev = match Device::open(Arc::new(RealSys), &args.bdf, IovaSpace::default()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("joyride-nic-selftest: opening {} through VFIO: {e}", args.bdf);
            return ExitCode::from(2);
        }
    };
    let report =
        selftest::run(dev, pool, &args.opts, &mut |step| eprintln!("selftest: {step} ..."));
    if args.bind {
        match bind::restore(&args.bdf) {
            Ok(d) => eprintln!(
                "selftest: device given back to {}",
                d.as_deref().unwrap_or("no driver (none claimed it)")
            ),
            Err(e) => eprintln!("selftest: could not give the device back: {e}"),
        }
    }
    println!("{report}");
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Option<Args>, String> {
        parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a =
            p(&["03:00.0", "--frames", "50", "--link-timeout-ms", "0", "--bind"]).unwrap().unwrap();
        assert_eq!(a.bdf, "0000:03:00.0");
        assert!(a.bind);
        assert_eq!((a.opts.frames, a.opts.link_timeout_ms), (50, 0));
        assert!(p(&["--help"]).unwrap().is_none());
        assert!(p(&[]).unwrap_err().contains("missing the PCI address"));
        assert!(p(&["zz:00.0"]).unwrap_err().contains("invalid PCI address"));
        assert!(p(&["03:00.0", "--frames"]).unwrap_err().contains("needs a value"));
        assert!(p(&["03:00.0", "--frames", "0"]).is_err());
        assert!(p(&["03:00.0", "--nope"]).unwrap_err().contains("unknown option"));
        assert!(HELP.contains("validated only against a register-level model"));
    }
}
