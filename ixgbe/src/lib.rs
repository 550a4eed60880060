//! # joyride-ixgbe — Intel poll-mode drivers over VFIO: 82599 (ixgbe) and 82576 (igb)
//!
//! Layer: a NIC driver (DESIGN.md §2): uses `joyride-vfio` for the device, DMA and registers
//! and implements the `joyride-drivers` [`Nic`](joyride_drivers::Nic) contract.
//!
//! The 82599 and the 82576 share the "advanced" receive and transmit descriptors bit for bit
//! and the same per-queue register block layout at different bases, so there is **one** ring
//! implementation (`ring`, `desc`) and two *personalities* ([`Personality`]) that differ in global
//! reset, link bring-up, filter/enable registers and a few descriptor error bits:
//!
//! - **82599** (`x82599`): master disable, `CTRL.RST`, `EEC.ARD` and `RDRXCTL.DMAIDONE`, link
//!   through `AUTOC`/`LINKS`, receive and transmit init in the datasheet's order (§4.6.3–§4.6.8),
//!   RSS (`RSSRK`, `RETA`, `MRQC`), checksum offload, statistics registers.
//!   **Validated only against the register model, never on hardware.** QEMU has no 82599
//!   model; this personality is tested against a register-level *model* of the 82599 written
//!   from the datasheet (the crate's `fake_dev` test module: registers, a reset state machine
//!   and a DMA engine), not against a real X520. A user with an X520 validates it with the
//!   `joyride-nic-selftest BDF` command (bring-up, link, MAC-loopback transfer through
//!   [`IntelNic::loopback_selftest`], counters, teardown; [`selftest`]), which prints a report
//!   to paste into an issue.
//! - **82576 / igb** (`igb`): `CTRL.RST`, PHY auto-negotiation restart through `MDIC`, link
//!   from `STATUS`, the same rings, RSS and checksum offload. Tested in QEMU (`-device igb`,
//!   QEMU ≥ 8) by `tinyvm/run.sh --nic igb`, and against the same device model.
//!
//! [`IntelNic::open`] picks the personality from the PCI id.
//!
//! ## Data path
//! Receive buffers come from the pool (mapped once for DMA); each ring keeps a private shadow of
//! what it posted, and every write-back (DD, length, EOP, errors) is validated against it —
//! malformed ones are dropped and counted (`rx_errors`, [`IntelNic::unposted_writebacks`]).
//! Receive reclaims completed descriptors and refills in batches with one tail write per batch;
//! transmit reclaims completed packets by their DD bits once per burst and writes the tail once
//! per burst. Checksum requests ([`joyride_drivers::CsumRequest`]) become a context descriptor
//! (written only when it changes); TSO context descriptors are built and unit-tested
//! ([`desc::TxContext::for_tso`]) but not used yet (a `PacketBuf` holds one 2 KiB frame).
//!
//! ## unsafe
//! One `unsafe impl` (`DmaTarget` for a pool, in the ring module); everything else is safe code
//! over `joyride-vfio`'s checked register and DMA accessors.
#![deny(unsafe_code)]

pub mod desc;
mod igb;
mod nic;
pub mod regs;
#[allow(unsafe_code)]
mod ring;
pub mod selftest;
mod x82599;

#[cfg(test)]
mod fake_dev;
#[cfg(test)]
mod tests;

pub use nic::{HwStats, IntelConfig, IntelNic, Personality, SelfTest};

use joyride_vfio::VfioError;

/// Intel's PCI vendor id.
pub const VENDOR_INTEL: u16 = 0x8086;

/// Why the driver could not bring the device up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntelError {
    /// A VFIO operation failed.
    #[error(transparent)]
    Vfio(#[from] VfioError),
    /// Not a device this crate drives.
    #[error("PCI device {0:04x}:{1:04x} is not an 82599 or 82576 this driver knows")]
    Unsupported(u16, u16),
    /// The device did not reach a state in time.
    #[error("device timed out waiting for {0}")]
    Timeout(&'static str),
    /// The device misbehaved.
    #[error("device: {0}")]
    Device(&'static str),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}
