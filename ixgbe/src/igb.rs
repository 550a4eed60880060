//! The 82576 (igb) personality: reset, PHY auto-negotiation through MDIC, link from STATUS,
//! and the global parts of receive/transmit init (82576 datasheet §4.5 "Initialization").

use joyride_drivers::LinkState;

use crate::nic::{HwStats, Regs};
use crate::regs::common::{RXCSUM_IPPCSE, RXCSUM_PCSD};
use crate::regs::x82576::*;
use crate::IntelError;

/// RCTL.LBM (bits 7:6) = 01b: MAC loopback (self-test).
const RCTL_LBM_MAC: u32 = 1 << 6;

/// §4.5.1–§4.5.3: interrupts off, master disable, software reset, EEPROM auto-read.
pub(crate) fn reset(r: &Regs) -> Result<(), IntelError> {
    r.w(IMC, u32::MAX)?;
    r.w(EIMC, u32::MAX)?;
    // §5.2.3.3: GIO master disable, wait for outstanding requests.
    r.set(CTRL, CTRL_MASTER_DISABLE)?;
    r.poll(STATUS, STATUS_MASTER_ENABLE, 0, 100, "STATUS.GIO master disable")?;
    // §4.3.1.x software reset: CTRL.RST, self-clearing; wait >= 1 ms.
    r.set(CTRL, CTRL_RST)?;
    r.sleep_ms(1);
    r.poll(CTRL, CTRL_RST, 0, 100, "CTRL.RST to clear")?;
    r.w(IMC, u32::MAX)?;
    r.w(EIMC, u32::MAX)?;
    // §8.2.3 EEC.Auto_RD. QEMU's igb model never sets it, and a part without an EEPROM does
    // not either, so a timeout here is not fatal (the MAC then comes from RAL/RAH as set).
    let _ = r.poll(EEC, EEC_AUTO_RD, EEC_AUTO_RD, 10, "EEC.Auto_RD");
    r.set(CTRL_EXT, CTRL_EXT_DRV_LOAD)
}

/// §8.2.4 MDIC: writes PHY register `reg` of the internal PHY (address 1).
fn mdic_write(r: &Regs, reg: u32, v: u16) -> Result<(), IntelError> {
    r.w(MDIC, u32::from(v) | (reg << MDIC_REG_SHIFT) | (1 << MDIC_PHY_SHIFT) | MDIC_OP_WRITE)?;
    r.poll(MDIC, MDIC_READY, MDIC_READY, 100, "MDIC ready")?;
    if r.r(MDIC)? & MDIC_ERROR != 0 {
        return Err(IntelError::Device("MDIC write failed"));
    }
    Ok(())
}

/// §4.5.7 link setup (copper): set link up, clear link reset, restart PHY auto-negotiation
/// (after CTRL.RST the link stays down until it is restarted).
pub(crate) fn link_setup(r: &Regs) -> Result<(), IntelError> {
    let ctrl = r.r(CTRL)?;
    r.w(CTRL, (ctrl | CTRL_SLU) & !CTRL_LRST)?;
    mdic_write(r, 0, PHY_CTRL_AN_RESTART)
}

/// §8.2.2 STATUS.LU and speed.
pub(crate) fn link(r: &Regs) -> LinkState {
    let s = r.r(STATUS).unwrap_or(0);
    let up = s & STATUS_LU != 0;
    let speed = match (s >> STATUS_SPEED_SHIFT) & 3 {
        0 => 10,
        1 => 100,
        _ => 1000,
    };
    LinkState { up, speed_mbps: up.then_some(speed) }
}

/// §4.5.9 receive init, global part before the queues: receiver off, checksum offload.
pub(crate) fn rx_global(r: &Regs, rss: bool) -> Result<(), IntelError> {
    r.clear(RCTL, RCTL_EN)?;
    // RXCSUM: IP and TCP/UDP checksum status in the write-back; PCSD (needed for RSS) puts
    // the RSS hash there instead of the fragment checksum.
    let mut c = RXCSUM_IPOFLD | RXCSUM_TUOFLD | RXCSUM_IPPCSE;
    if rss {
        c |= RXCSUM_PCSD;
    }
    r.w(RXCSUM, c)
}

/// §4.5.9 last step: receiver on, broadcast accepted, CRC stripped.
pub(crate) fn rx_enable(r: &Regs, promisc: bool) -> Result<(), IntelError> {
    let mut v = RCTL_EN | RCTL_BAM | RCTL_SECRC;
    if promisc {
        v |= RCTL_UPE | RCTL_MPE;
    }
    r.w(RCTL, v)
}

/// §4.5.10 transmit init, last step: transmitter on (after the queues are enabled).
pub(crate) fn tx_enable(r: &Regs) -> Result<(), IntelError> {
    r.set(TCTL, TCTL_EN | TCTL_PSP)
}

/// Teardown: receiver and transmitter off, mastering off.
pub(crate) fn stop(r: &Regs) -> Result<(), IntelError> {
    r.clear(RCTL, RCTL_EN)?;
    r.clear(TCTL, TCTL_EN)?;
    r.set(CTRL, CTRL_MASTER_DISABLE)
}

/// §8.19 statistics, clear on read; adds them to `s`.
pub(crate) fn read_stats(r: &Regs, s: &mut HwStats) -> Result<(), IntelError> {
    s.rx_good_packets += u64::from(r.r(GPRC)?);
    s.tx_good_packets += u64::from(r.r(GPTC)?);
    s.rx_good_bytes += u64::from(r.r(GORCL)?) | (u64::from(r.r(GORCL + 4)?) << 32);
    s.tx_good_bytes += u64::from(r.r(GOTCL)?) | (u64::from(r.r(GOTCL + 4)?) << 32);
    s.rx_missed += u64::from(r.r(MPC)?);
    s.crc_errors += u64::from(r.r(CRCERRS)?);
    Ok(())
}

/// Self-test: RCTL.LBM = MAC loopback on or off.
pub(crate) fn loopback(r: &Regs, on: bool) -> Result<(), IntelError> {
    if on {
        r.set(RCTL, RCTL_LBM_MAC | RCTL_UPE | RCTL_MPE)
    } else {
        r.clear(RCTL, RCTL_LBM_MAC)
    }
}
