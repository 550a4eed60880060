//! # joyride-mlx5 — a ConnectX-4/5/6 poll-mode driver over VFIO
//!
//! Layer: a NIC driver (DESIGN.md §2): `joyride-vfio` for the device, DMA and registers,
//! `joyride-drivers` for the [`Nic`](joyride_drivers::Nic) contract. No rdma-core, no DPDK, no
//! kernel driver: the driver talks to the card's firmware through the command queue itself,
//! from NVIDIA's public "Ethernet Adapters Programmer's Reference Manual" (PRM).
//!
//! **Status: not validated on hardware.** No ConnectX card and no QEMU model of one exist
//! where this was written; every test runs against `fake::FakeHca` (feature `fake`), a software model of the
//! HCA written from the same reading of the PRM. Layout offsets the model and the driver share
//! can both be wrong in the same way; the README lists which ones are least certain and what a
//! first run on a real card should check.
//!
//! - [`cmdq`]: the initialization segment (firmware revision, `initializing` bit, command queue
//!   address, `nic_interface`) and the command queue: 64-byte entries with inline input/output,
//!   512-byte mailbox chains, tokens, ownership-bit polling, delivery status and command
//!   status/syndrome decoded into [`CmdError`].
//! - [`cmds`]: typed builders and parsers, one per command, each with its PRM opcode.
//! - [`Mlx5::bring_up`]: ENABLE_HCA, QUERY_ISSI/SET_ISSI, QUERY_PAGES/MANAGE_PAGES (boot, init,
//!   regular; pages from DMA memory), QUERY_HCA_CAP/SET_HCA_CAP, INIT_HCA, QUERY_SPECIAL_CONTEXTS,
//!   ALLOC_UAR, CREATE_EQ, ALLOC_PD, ALLOC_TRANSPORT_DOMAIN, QUERY_NIC_VPORT_CONTEXT (MAC),
//!   CREATE_CQ, CREATE_TIS, CREATE_SQ/MODIFY_SQ, CREATE_RQ/MODIFY_RQ (RST→RDY), CREATE_RQT,
//!   CREATE_TIR (Toeplitz RSS over the RQs), a flow table steering our MAC and broadcast to the
//!   TIR; [`Mlx5::teardown`] (also on drop) undoes it in reverse and ends with TEARDOWN_HCA,
//!   MANAGE_PAGES reclaim and DISABLE_HCA.
//! - [`queues`]: send WQEs (control, Ethernet segment with inline headers and checksum flags,
//!   data segment; LSO), receive WQEs (one scatter entry), CQs with owner-phase checks and CQE
//!   parsing, doorbell records and UAR doorbells (BlueFlame is not used), the page-request EQ.
//! - Data path ([`Mlx5`] implements `Nic`): batched rx/tx, one CQE per transmit burst, checksum
//!   offload both ways, RSS over several queue pairs; every CQE is checked against a shadow of
//!   what was posted and malformed ones are dropped and counted.
//! - [`open_vfio`] picks the device by PCI id (15b3:1013/1015/1017/1019/101b/101d) for
//!   `joyrided --backend vfio:BDF`.
//!
//! - `joyride-mlx5-selftest` (a binary of this crate): the command a ConnectX owner runs to
//!   check the driver on a real card (VFIO preconditions, bring-up, link, local-loopback
//!   transfer, counters, teardown) and whose report block (this crate's [`HcaInfo`] and every
//!   command with its status and syndrome, [`Mlx5::command_records`]) a bug report needs.
//!
//! ## unsafe
//! One `unsafe impl` (`DmaTarget` for a packet pool, module `dma`); everything else is safe code
//! over `joyride-vfio`'s checked register and DMA accessors.
#![deny(unsafe_code)]

pub mod cmdq;
pub mod cmds;
#[allow(unsafe_code)]
mod dma;
mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
mod hca;
pub mod prm;
pub mod queues;

#[cfg(test)]
mod tests;

pub use cmdq::FwInfo;
pub use error::{CmdError, CmdStatus, DeliveryStatus, Mlx5Error};
pub use hca::{supported, BringUpFailure, CmdRecord, HcaInfo, Mlx5, Mlx5Config};

use std::sync::Arc;

use joyride_drivers::Pool;
use joyride_vfio::{Device, IovaSpace, RealSys};

/// Opens the PCI device `bdf` through VFIO and brings it up if it is a supported ConnectX
/// (the constructor behind `joyrided --backend vfio:BDF`).
pub fn open_vfio(bdf: &str, pool: Pool, cfg: Mlx5Config) -> Result<Mlx5, Mlx5Error> {
    let dev = Device::open(Arc::new(RealSys), bdf, IovaSpace::default())?;
    open(dev, pool, cfg)
}

/// Brings up an already opened device if its PCI id is a supported ConnectX.
pub fn open(dev: Device, pool: Pool, cfg: Mlx5Config) -> Result<Mlx5, Mlx5Error> {
    let (v, d) = dev.pci_ids()?;
    if supported(v, d).is_none() {
        return Err(Mlx5Error::NotConnectX(v, d));
    }
    Mlx5::bring_up(dev, pool, cfg)
}
