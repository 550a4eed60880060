//! The hardware self-test behind `joyride-nic-selftest`: bring-up, link, a MAC-loopback
//! transfer and the counters, with the register values read at each step, as one report a user
//! with an X520 (or an 82576) can paste into a bug report.
//!
//! [`run`] takes an opened [`Device`], so the same code runs against the crate's register-level
//! model in the unit tests and against a real card through VFIO in the binary; the binary adds
//! only the VFIO precondition checks and the command line.

use std::fmt;

use joyride_drivers::{LinkState, Nic, Pool, QueueCounters};
use joyride_vfio::Device;

use crate::nic::{bring_up_sleep, Regs};
use crate::regs::{common, x82576, x82599};
use crate::{HwStats, IntelConfig, IntelError, IntelNic, Personality, SelfTest};

/// One register as read from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegValue {
    /// Its datasheet name.
    pub name: &'static str,
    /// Offset in BAR 0.
    pub offset: u64,
    /// The value, or `None` if the read failed.
    pub value: Option<u32>,
}

/// The registers a bring-up report shows, per personality. None of them is clear-on-read, so
/// reading them changes nothing on the device.
fn report_registers(p: Personality) -> Vec<(&'static str, u64)> {
    let q = |base: u64, name: &'static str, off: u64| (name, base + off);
    match p {
        Personality::X82599 => {
            let (rx, tx) = (x82599::RX_QUEUE_BASE, x82599::TX_QUEUE_BASE);
            vec![
                ("CTRL", x82599::CTRL),
                ("STATUS", x82599::STATUS),
                ("CTRL_EXT", x82599::CTRL_EXT),
                ("EEC", x82599::EEC),
                ("AUTOC", x82599::AUTOC),
                ("LINKS", x82599::LINKS),
                ("HLREG0", x82599::HLREG0),
                ("RDRXCTL", x82599::RDRXCTL),
                ("FCTRL", x82599::FCTRL),
                ("RXCSUM", x82599::RXCSUM),
                ("MRQC", common::MRQC),
                ("RXCTRL", x82599::RXCTRL),
                ("DMATXCTL", x82599::DMATXCTL),
                ("RTTDCS", x82599::RTTDCS),
                ("RAL0", x82599::RAL0),
                ("RAH0", x82599::RAH0),
                q(rx, "SRRCTL0", x82599::SRRCTL_IN_BLOCK),
                q(rx, "RDLEN0", common::DLEN),
                q(rx, "RDH0", common::DH),
                q(rx, "RDT0", common::DT),
                q(rx, "RXDCTL0", common::DCTL),
                q(tx, "TDLEN0", common::DLEN),
                q(tx, "TDH0", common::DH),
                q(tx, "TDT0", common::DT),
                q(tx, "TXDCTL0", common::DCTL),
            ]
        }
        Personality::I82576 => {
            let (rx, tx) = (x82576::RX_QUEUE_BASE, x82576::TX_QUEUE_BASE);
            vec![
                ("CTRL", x82576::CTRL),
                ("STATUS", x82576::STATUS),
                ("CTRL_EXT", x82576::CTRL_EXT),
                ("EEC", x82576::EEC),
                ("MDIC", x82576::MDIC),
                ("RCTL", x82576::RCTL),
                ("TCTL", x82576::TCTL),
                ("RXCSUM", x82576::RXCSUM),
                ("MRQC", common::MRQC),
                ("RAL0", x82576::RAL0),
                ("RAH0", x82576::RAH0),
                q(rx, "SRRCTL0", x82576::SRRCTL_IN_BLOCK),
                q(rx, "RDLEN0", common::DLEN),
                q(rx, "RDH0", common::DH),
                q(rx, "RDT0", common::DT),
                q(rx, "RXDCTL0", common::DCTL),
                q(tx, "TDLEN0", common::DLEN),
                q(tx, "TDH0", common::DH),
                q(tx, "TDT0", common::DT),
                q(tx, "TXDCTL0", common::DCTL),
            ]
        }
    }
}

pub(crate) fn snapshot(r: &Regs, p: Personality) -> Vec<RegValue> {
    report_registers(p)
        .into_iter()
        .map(|(name, offset)| RegValue { name, offset, value: r.r(offset).ok() })
        .collect()
}

/// Reads the report's registers of `dev` without bringing it up (maps BAR 0 on its own; no
/// register is written). Fails if the PCI id is not one this driver knows.
pub fn read_registers(dev: &Device) -> Result<(Personality, Vec<RegValue>), IntelError> {
    let (vendor, device) = dev.pci_ids()?;
    let pers =
        Personality::from_pci(vendor, device).ok_or(IntelError::Unsupported(vendor, device))?;
    let regs = Regs::new(dev.map_bar(0)?);
    Ok((pers, snapshot(&regs, pers)))
}

/// What [`run`] does.
#[derive(Clone, Copy, Debug)]
pub struct SelftestOptions {
    /// Loopback frames to send (60 to 1,459 bytes each).
    pub frames: u32,
    /// How long to wait for the link after bring-up.
    pub link_timeout_ms: u32,
    /// Descriptors per ring.
    pub ring_size: u16,
}

impl Default for SelftestOptions {
    fn default() -> Self {
        SelftestOptions { frames: 1000, link_timeout_ms: 10_000, ring_size: 512 }
    }
}

/// Registers read at one step of the test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Which step (`before bring-up`, `after bring-up`, `after link wait`, `after loopback`).
    pub name: &'static str,
    /// What was read.
    pub registers: Vec<RegValue>,
}

/// One pass/fail check of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub what: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// The numbers behind it.
    pub detail: String,
}

/// Everything [`run`] found, printable as a bug-report block ([`fmt::Display`]).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// PCI address.
    pub bdf: String,
    /// PCI vendor and device id.
    pub pci_id: Option<(u16, u16)>,
    /// Which personality drove it.
    pub personality: Option<Personality>,
    /// MAC address from RAL0/RAH0.
    pub mac: Option<[u8; 6]>,
    /// Link after the wait.
    pub link: LinkState,
    /// How long the link took to come up (`None`: it did not within the timeout).
    pub link_up_after_ms: Option<u32>,
    /// Register values read at each step.
    pub steps: Vec<Step>,
    /// The loopback transfer.
    pub loopback: Option<SelfTest>,
    /// The driver's counters (queue 0) after the test.
    pub driver: QueueCounters,
    /// The device's statistics registers since bring-up.
    pub hw: HwStats,
    /// Pass/fail checks, in order.
    pub checks: Vec<Check>,
    /// The error that stopped the test, if any.
    pub error: Option<String>,
}

impl Report {
    /// Whether the test ran to the end and every check held.
    pub fn passed(&self) -> bool {
        self.error.is_none() && !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    fn check(&mut self, what: &'static str, ok: bool, detail: String) {
        self.checks.push(Check { what, ok, detail });
    }
}

/// Brings `dev` up with buffers from `pool`, waits for the link, runs
/// [`IntelNic::loopback_selftest`], reads the counters and tears the device down (drop), saying
/// each step through `progress`. Never panics on a device error: it lands in
/// [`Report::error`].
pub fn run(
    dev: Device,
    pool: Pool,
    opts: &SelftestOptions,
    progress: &mut dyn FnMut(&str),
) -> Report {
    let mut rep = Report { bdf: dev.bdf().to_string(), ..Report::default() };
    if let Err(e) = run_inner(dev, pool, opts, progress, &mut rep) {
        rep.error = Some(e.to_string());
    }
    rep
}

fn run_inner(
    dev: Device,
    pool: Pool,
    opts: &SelftestOptions,
    progress: &mut dyn FnMut(&str),
    rep: &mut Report,
) -> Result<(), IntelError> {
    rep.pci_id = Some(dev.pci_ids()?);
    progress("reading registers before bring-up");
    let (pers, before) = read_registers(&dev)?;
    rep.personality = Some(pers);
    rep.steps.push(Step { name: "before bring-up", registers: before });
    progress("bringing the device up (reset, link setup, rings)");
    let cfg = IntelConfig {
        rx_queues: 1,
        tx_queues: 1,
        ring_size: opts.ring_size,
        offloads: true,
        promiscuous: false,
        link_wait_ms: 0,
    };
    let mut nic = IntelNic::open(dev, pool, cfg)?;
    rep.mac = Some(nic.capabilities().mac.0);
    rep.steps.push(Step { name: "after bring-up", registers: nic.registers() });
    progress("waiting for link");
    let mut waited = 0;
    loop {
        rep.link = nic.link();
        if rep.link.up {
            rep.link_up_after_ms = Some(waited);
            break;
        }
        if waited >= opts.link_timeout_ms {
            break;
        }
        bring_up_sleep(std::time::Duration::from_millis(10));
        waited += 10;
    }
    rep.steps.push(Step { name: "after link wait", registers: nic.registers() });
    let speed = rep.link.speed_mbps.map_or("unknown speed".into(), |s| format!("{s} Mb/s"));
    // The MAC loopback does not need the wire; `link_timeout_ms == 0` says so.
    let link_required = opts.link_timeout_ms > 0;
    rep.check(
        "link up",
        rep.link.up || !link_required,
        match rep.link_up_after_ms {
            Some(ms) => format!("{speed} after {ms} ms"),
            None if !link_required => "not required (--link-timeout-ms 0)".into(),
            None => format!("down after {} ms (cable, SFP+ module, peer?)", opts.link_timeout_ms),
        },
    );
    progress("running the MAC-loopback transfer");
    let t = nic.loopback_selftest(opts.frames)?;
    rep.loopback = Some(t);
    rep.steps.push(Step { name: "after loopback", registers: nic.registers() });
    rep.driver = nic.queue_counters(joyride_drivers::QueueId(0)).unwrap_or_default();
    rep.hw = nic.hw_stats()?;
    rep.check("every frame sent", t.sent == opts.frames, format!("{}/{}", t.sent, opts.frames));
    rep.check(
        "every frame back byte-exact",
        t.received == t.sent && t.corrupted == 0,
        format!("{} received, {} corrupted, of {} sent", t.received, t.corrupted, t.sent),
    );
    rep.check(
        "device counters agree",
        t.hw.tx_good_packets == u64::from(t.sent) && t.hw.rx_good_packets == u64::from(t.received),
        format!(
            "GPTC {} (sent {}), GPRC {} (received {}), MPC {}, CRCERRS {}",
            t.hw.tx_good_packets,
            t.sent,
            t.hw.rx_good_packets,
            t.received,
            t.hw.rx_missed,
            t.hw.crc_errors
        ),
    );
    rep.check(
        "no unposted write-backs or receive errors",
        nic.unposted_writebacks() == 0 && rep.driver.rx_errors == 0,
        format!(
            "{} unposted write-backs, {} rx errors",
            nic.unposted_writebacks(),
            rep.driver.rx_errors
        ),
    );
    progress("tearing down (receive/transmit off, queues disabled, bus mastering off)");
    drop(nic);
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "----- joyride-nic-selftest report (paste this into the issue) -----")?;
        writeln!(f, "tool:        joyride-nic-selftest {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(f, "device:      {}", self.bdf)?;
        match self.pci_id {
            Some((v, d)) => writeln!(f, "pci id:      {v:04x}:{d:04x}")?,
            None => writeln!(f, "pci id:      (not read)")?,
        }
        match self.personality {
            Some(p) => writeln!(f, "personality: {p:?}")?,
            None => writeln!(f, "personality: (none)")?,
        }
        if let Some(m) = self.mac {
            writeln!(f, "mac:         {}", joyride_drivers::MacAddr(m))?;
        }
        let speed = self.link.speed_mbps.map_or("-".into(), |s| format!("{s} Mb/s"));
        writeln!(f, "link:        {} {speed}", if self.link.up { "up" } else { "down" })?;
        if let Some(t) = &self.loopback {
            writeln!(
                f,
                "loopback:    sent {} received {} corrupted {}",
                t.sent, t.received, t.corrupted
            )?;
        }
        let d = &self.driver;
        writeln!(
            f,
            "driver:      rx_packets {} rx_bytes {} rx_drops {} rx_errors {} tx_packets {} \
             tx_bytes {} tx_drops {}",
            d.rx_packets, d.rx_bytes, d.rx_drops, d.rx_errors, d.tx_packets, d.tx_bytes, d.tx_drops
        )?;
        let h = &self.hw;
        writeln!(
            f,
            "hardware:    GPRC {} GPTC {} GORC {} GOTC {} MPC {} CRCERRS {}",
            h.rx_good_packets,
            h.tx_good_packets,
            h.rx_good_bytes,
            h.tx_good_bytes,
            h.rx_missed,
            h.crc_errors
        )?;
        for s in &self.steps {
            writeln!(f, "registers {}:", s.name)?;
            for (i, r) in s.registers.iter().enumerate() {
                let v = r.value.map_or("  (failed)".into(), |v| format!("{v:#010x}"));
                write!(f, "  {:<9}@{:05x} {v}", r.name, r.offset)?;
                if i % 3 == 2 || i + 1 == s.registers.len() {
                    writeln!(f)?;
                }
            }
        }
        for c in &self.checks {
            writeln!(
                f,
                "check:       [{}] {}: {}",
                if c.ok { "PASS" } else { "FAIL" },
                c.what,
                c.detail
            )?;
        }
        if let Some(e) = &self.error {
            writeln!(f, "error:       {e}")?;
        }
        writeln!(f, "result:      {}", if self.passed() { "PASS" } else { "FAIL" })?;
        write!(f, "----- end of report -----")
    }
}
