//! # joyride-vfio — user-space device access through Linux VFIO
//!
//! Layer: the OS edge for the NIC drivers (DESIGN.md §2); depends on `libc` only.
//!
//! - [`Container`], [`Group`], [`Device`]: the three VFIO objects; [`Device::open`] does the
//!   whole dance (container → API version → type1v2 → group viable → attach → set IOMMU →
//!   device fd) and says in words what is missing ([`VfioError::NoVfio`],
//!   [`VfioError::NoIommuGroup`], [`VfioError::GroupNotViable`], [`VfioError::NoType1v2`]).
//! - DMA: [`Container::map_dma`] maps any [`DmaTarget`] (e.g. a packet-buffer pool) at an IOVA
//!   from Joyride's own [`IovaAllocator`] (the guest IOMMU takes 39-bit IOVAs; process virtual
//!   addresses are never used as IOVAs) and returns an RAII [`DmaMapping`];
//!   [`Container::alloc_dma`] gives pinned (huge-page when reserved) ring memory,
//!   [`DmaBuffer`], whose [`DmaMemory`] accessors are bounds-checked volatile reads and writes —
//!   device-shared memory is never a Rust reference.
//! - Registers: [`Device::map_bar`] gives a [`Bar`] whose 8/16/32/64-bit accessors check bounds
//!   and alignment; [`bar::MmioRegion`] is the only place volatile MMIO happens.
//! - PCI config space, capability walk, bus mastering, `VFIO_DEVICE_RESET`, and MSI-X vectors
//!   routed to eventfds ([`Device::enable_msix`]) for an interrupt-driven idle mode.
//! - [`bind`]: handing a device to `vfio-pci` and back through sysfs
//!   ([`bind::bind_to_vfio`], [`bind::unbind`], [`bind::restore`], [`bind::check_vfio`]), with
//!   errors that name what is missing (IOMMU off, vfio-pci not loaded, `/dev/vfio` absent,
//!   device held by another process).
//!
//! ## Why our own ioctls and not `vfio-ioctls`
//! The dozen ioctls fit in one module ([`sys`]) of a few hundred lines with pinned structure
//! sizes. The `vfio-ioctls` crate is built for VMMs: it pulls rust-vmm's memory and
//! `kvm-bindings` crates, has no BAR-mmap helper and no fake for unit tests, and maps guest
//! memory regions rather than arbitrary buffers. Owning the edge lets us put every syscall
//! behind the object-safe [`Sys`] trait so that the drivers above are unit-tested against
//! `fake::FakeSys` (feature `fake`) (a model of VFIO plus an IOMMU that faults on unmapped IOVAs) on machines
//! without VFIO, which is every development and CI machine of this project.
//!
//! ## unsafe
//! `#![deny(unsafe_code)]` except in [`sys`] (ioctls, `mmap` of regions, eventfds), [`bar`]
//! (volatile MMIO) and [`dma`] (DMA memory); each block has a `// SAFETY:` comment.
//!
//! ## Not here yet
//! No-IOMMU mode (`VFIO_NOIOMMU_IOMMU`): Debian kernels lack `CONFIG_VFIO_NOIOMMU`, so it could
//! not be tested; the IOMMU path is the only one.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod bar;
pub mod bind;
mod device;
#[allow(unsafe_code)]
pub mod dma;
mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod iova;
#[allow(unsafe_code)]
pub mod sys;

pub use bar::{Bar, Mmio, Width};
pub use device::{pci, Container, Device, EventFd, Group, IovaSpace};
pub use dma::{DmaBuffer, DmaMapping, DmaMemory, DmaTarget};
pub use error::VfioError;
pub use iova::IovaAllocator;
pub use sys::{RealSys, Sys};

#[cfg(test)]
mod tests;
