//! # joyride-virtio — a virtio-net poll-mode driver over VFIO
//!
//! Layer: a NIC driver (DESIGN.md §2): uses `joyride-vfio` for the device, DMA and interrupts and
//! implements the `joyride-drivers` [`Nic`](joyride_drivers::Nic) contract.
//!
//! - Modern virtio 1.x over PCI only (1af4:1041; QEMU `disable-legacy=on`): [`pci`] parses the
//!   vendor capabilities that place the common, notify, ISR and device configuration in the
//!   BARs; every location is checked against its BAR before use.
//! - Feature negotiation: `VERSION_1` and `ACCESS_PLATFORM` are required (behind VFIO the
//!   device must translate our IOVAs through the IOMMU; QEMU `iommu_platform=on`); `MAC`, `MTU`,
//!   `STATUS`, `CSUM`/`GUEST_CSUM` are taken when offered; `MRG_RXBUF`, `EVENT_IDX`,
//!   `INDIRECT_DESC`, packed rings and `MQ`/`CTRL_VQ` are left off (one queue pair, one
//!   2 KiB pool buffer per frame).
//! - Split virtqueues (the private `ring` module) with a shadow of every posted
//!   descriptor; every used id and length the device writes is validated against it, and a used
//!   index that runs ahead of the ring marks the device broken ([`VirtioNet::broken`]).
//! - Data path ([`VirtioNet`]): receive buffers come from the pool (mapped once for DMA, its
//!   IOVA recorded with `Pool::set_iova_base`) and are reposted in batches; transmit prepends the
//!   12-byte virtio-net header into the buffer's headroom (no copy), reclaims completed buffers
//!   in batches at the next burst, and writes one notification per batch at most (none when the
//!   device set `NO_NOTIFY`). Frames from another pool are copied into ours.
//! - Idle: the receive queue's MSI-X vector goes to an eventfd (`Nic::wait_fd`); interrupts
//!   are suppressed while frames keep coming and re-armed when a burst finds the ring empty (NAPI-style).
//!
//! ## unsafe
//! One `unsafe impl` (`DmaTarget` for a pool, in the ring module); everything else is safe code
//! over `joyride-vfio`'s checked register and DMA accessors.
#![deny(unsafe_code)]

mod net;
pub mod pci;
#[allow(unsafe_code)]
mod ring;

#[cfg(test)]
mod fake_dev;
#[cfg(test)]
mod tests;

pub use net::{VirtioNet, VirtioNetConfig, NET_HDR_LEN};

use joyride_vfio::VfioError;

/// Why the driver could not bring the device up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VirtioError {
    /// A VFIO operation failed.
    #[error(transparent)]
    Vfio(#[from] VfioError),
    /// Not a virtio-net device.
    #[error("PCI device {0:04x}:{1:04x} is not a modern virtio-net device (1af4:1041)")]
    NotVirtioNet(u16, u16),
    /// A transitional device: legacy virtio cannot sit behind an IOMMU.
    #[error(
        "transitional virtio-net device (1af4:1000): use a modern one (QEMU disable-legacy=on)"
    )]
    Legacy,
    /// A required capability is missing or malformed.
    #[error("virtio capability missing or malformed: {0}")]
    MissingCap(&'static str),
    /// The device does not offer a feature we require.
    #[error("virtio device lacks feature {0}")]
    MissingFeature(&'static str),
    /// The device misbehaved during bring-up.
    #[error("virtio device: {0}")]
    Device(&'static str),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}
