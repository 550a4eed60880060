//! The 82599 personality: reset, link and the global parts of receive/transmit init, in the
//! order of the 82599 datasheet (331520) §4.6.3 "Initialization Sequence".

use joyride_drivers::LinkState;

use crate::nic::{HwStats, Regs};
use crate::regs::common::RXCSUM_IPPCSE;
use crate::regs::x82599::*;
use crate::IntelError;

/// §4.6.3.1–§4.6.3.2: interrupts off, master disable, global reset, then wait for the EEPROM
/// auto-read and the DMA init to complete.
pub(crate) fn reset(r: &Regs) -> Result<(), IntelError> {
    r.w(EIMC, EIMC_ALL)?; // §4.6.3.1: mask all interrupts
                          // §5.2.5.3.2: disable PCIe mastering and wait until no request is pending.
    r.set(CTRL, CTRL_MASTER_DISABLE)?;
    r.poll(STATUS, STATUS_MASTER_ENABLE, 0, 100, "STATUS.GIO master disable")?;
    // §4.6.3.2: global reset (RST together with LRST), self-clearing; wait >= 1 ms first.
    r.set(CTRL, CTRL_RST | CTRL_LRST)?;
    r.sleep_ms(1);
    r.poll(CTRL, CTRL_RST, 0, 100, "CTRL.RST to clear")?;
    r.sleep_ms(10); // §4.6.3.2: wait at least 10 ms after the reset completes
    r.w(EIMC, EIMC_ALL)?; // §4.6.3.1: again after reset
                          // §4.6.3: wait for EEPROM auto-read done, then for DMA initialization done.
    r.poll(EEC, EEC_ARD, EEC_ARD, 1000, "EEC.ARD (EEPROM auto-read)")?;
    r.poll(RDRXCTL, RDRXCTL_DMAIDONE, RDRXCTL_DMAIDONE, 1000, "RDRXCTL.DMAIDONE")?;
    r.set(CTRL_EXT, CTRL_EXT_DRV_LOAD | CTRL_EXT_NS_DIS)?;
    Ok(())
}

/// §4.6.4 link setup: 10 GbE serial (SFI) link mode, restart auto-negotiation.
pub(crate) fn link_setup(r: &Regs) -> Result<(), IntelError> {
    let autoc = r.r(AUTOC)?;
    r.w(AUTOC, (autoc & !AUTOC_LMS_MASK) | AUTOC_LMS_10G_SERIAL | AUTOC_AN_RESTART)
}

/// §8.2.3.22.20 LINKS.
pub(crate) fn link(r: &Regs) -> LinkState {
    let links = r.r(LINKS).unwrap_or(0);
    let speed = match (links >> LINKS_SPEED_SHIFT) & 3 {
        1 => Some(100),
        2 => Some(1000),
        3 => Some(10_000),
        _ => None,
    };
    LinkState { up: links & LINKS_UP != 0, speed_mbps: speed.filter(|_| links & LINKS_UP != 0) }
}

/// §4.6.7 receive init, global part before the queues: receive off, CRC strip in both places,
/// filters, checksum.
pub(crate) fn rx_global(r: &Regs, promisc: bool, rss: bool) -> Result<(), IntelError> {
    r.clear(RXCTRL, RXCTRL_RXEN)?;
    r.set(HLREG0, HLREG0_RXCRCSTRP | HLREG0_TXCRCEN | HLREG0_TXPADEN)?;
    r.set(RDRXCTL, RDRXCTL_CRCSTRIP | RDRXCTL_RSCACKC | RDRXCTL_FCOE_WRFIX)?;
    let mut f = FCTRL_BAM;
    if promisc {
        f |= FCTRL_UPE | FCTRL_MPE;
    }
    r.set(FCTRL, f)?;
    // §8.2.3.7.5: L4 checksums are always checked; PCSD puts the RSS hash in the write-back.
    let csum = RXCSUM_IPPCSE | if rss { crate::regs::common::RXCSUM_PCSD } else { 0 };
    r.w(RXCSUM, csum)
}

/// §4.6.7 last step: receive on.
pub(crate) fn rx_enable(r: &Regs) -> Result<(), IntelError> {
    r.set(RXCTRL, RXCTRL_RXEN)
}

/// §4.6.8 transmit init, global part before the queues: the DCB arbiter is disabled while the
/// queue layout (MTQC: one pool, no DCB) is set, then transmit DMA is enabled.
pub(crate) fn tx_global(r: &Regs) -> Result<(), IntelError> {
    r.set(RTTDCS, RTTDCS_ARBDIS)?;
    r.w(MTQC, 0)?;
    r.clear(RTTDCS, RTTDCS_ARBDIS)?;
    r.set(DMATXCTL, DMATXCTL_TE)
}

/// §4.6.3 teardown: receive off, mastering off.
pub(crate) fn stop(r: &Regs) -> Result<(), IntelError> {
    r.clear(RXCTRL, RXCTRL_RXEN)?;
    r.set(CTRL, CTRL_MASTER_DISABLE)
}

/// §8.2.3.23: the statistics registers, clear on read; adds them to `s`.
pub(crate) fn read_stats(r: &Regs, s: &mut HwStats) -> Result<(), IntelError> {
    s.rx_good_packets += u64::from(r.r(GPRC)?);
    s.tx_good_packets += u64::from(r.r(GPTC)?);
    s.rx_good_bytes += u64::from(r.r(GORCL)?) | (u64::from(r.r(GORCL + 4)?) << 32);
    s.tx_good_bytes += u64::from(r.r(GOTCL)?) | (u64::from(r.r(GOTCL + 4)?) << 32);
    s.rx_missed += u64::from(r.r(MPC0)?);
    s.crc_errors += u64::from(r.r(CRCERRS)?);
    Ok(())
}

/// Self-test (§3.7.x MAC loopback): HLREG0.LPBK on or off, with AUTOC.FLU forcing the MAC's
/// link up while it is on, so that the loopback needs no cable or link partner.
pub(crate) fn loopback(r: &Regs, on: bool) -> Result<(), IntelError> {
    if on {
        r.set(AUTOC, AUTOC_FLU)?;
        r.set(HLREG0, HLREG0_LPBK)?;
        r.set(FCTRL, FCTRL_UPE | FCTRL_MPE)
    } else {
        r.clear(HLREG0, HLREG0_LPBK)?;
        r.clear(AUTOC, AUTOC_FLU)
    }
}
