//! Typed errors of the VFIO layer (DESIGN.md rule 9). Each names what is missing in words a
//! person setting up a machine can act on.

/// Why a VFIO operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VfioError {
    /// `/dev/vfio/vfio` does not exist: the `vfio` module is not loaded (or not in this kernel).
    #[error("/dev/vfio/vfio is missing: load the vfio, vfio_iommu_type1 and vfio-pci modules")]
    NoVfio,
    /// The device has no IOMMU group: the IOMMU is off (`intel_iommu=on` / `amd_iommu=on`).
    #[error("device {0} has no IOMMU group: is the IOMMU enabled (intel_iommu=on)?")]
    NoIommuGroup(String),
    /// The group's character device is missing: the device is not bound to `vfio-pci`.
    #[error("/dev/vfio/{0} is missing: bind the device to vfio-pci first")]
    NoGroupDevice(u32),
    /// Some device of the group is still bound to a host driver.
    #[error("IOMMU group {0} is not viable: unbind every device in it from its host driver")]
    GroupNotViable(u32),
    /// The kernel speaks another VFIO API version.
    #[error("VFIO API version {0} (expected 0)")]
    ApiVersion(i32),
    /// The container lacks the type1v2 IOMMU (vfio_iommu_type1 not loaded, or no IOMMU).
    #[error(
        "no type1v2 IOMMU in the VFIO container: load vfio_iommu_type1 (and enable the IOMMU)"
    )]
    NoType1v2,
    /// A system call failed.
    #[error("{op} failed: errno {errno}")]
    Os {
        /// The operation (ioctl or call name).
        op: &'static str,
        /// `errno`.
        errno: i32,
    },
    /// The device does not have this region, or it cannot be mapped.
    #[error("region {0} is missing or not mappable")]
    BadRegion(u32),
    /// The IOVA space is exhausted (or the request does not fit the IOMMU's address width).
    #[error("IOVA space exhausted ({0} bytes requested)")]
    IovaExhausted(u64),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
}

impl VfioError {
    /// A `VfioError::Os` from the current `errno`.
    pub(crate) fn last_os(op: &'static str) -> VfioError {
        VfioError::Os { op, errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0) }
    }

    /// A `VfioError::Os` from an `io::Error`.
    pub(crate) fn io(op: &'static str, e: &std::io::Error) -> VfioError {
        VfioError::Os { op, errno: e.raw_os_error().unwrap_or(libc::EIO) }
    }
}
