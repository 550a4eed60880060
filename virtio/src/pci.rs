//! Virtio over PCI, modern interface (virtio 1.2 §4.1): the IDs, the vendor capabilities that
//! locate each configuration structure in a BAR, the common configuration layout, status bits
//! and the virtio-net feature bits this driver knows.

use joyride_vfio::{pci, Device};

use crate::VirtioError;

/// Red Hat / virtio vendor ID.
pub const VENDOR_ID: u16 = 0x1af4;
/// virtio 1.2 §4.1.2.1: modern device IDs are 0x1040 + device type; network is type 1.
pub const DEVICE_ID_NET_MODERN: u16 = 0x1041;
/// The transitional (legacy-capable) network device ID.
pub const DEVICE_ID_NET_TRANSITIONAL: u16 = 0x1000;

/// virtio 1.2 §4.1.4: `cfg_type` values of `struct virtio_pci_cap`.
pub mod cfg_type {
    /// Common configuration.
    pub const COMMON: u8 = 1;
    /// Notifications.
    pub const NOTIFY: u8 = 2;
    /// ISR status.
    pub const ISR: u8 = 3;
    /// Device-specific configuration.
    pub const DEVICE: u8 = 4;
}

/// virtio 1.2 §4.1.4.3: offsets in `struct virtio_pci_common_cfg`.
pub mod common {
    /// `device_feature_select` (le32).
    pub const DEVICE_FEATURE_SELECT: u64 = 0;
    /// `device_feature` (le32).
    pub const DEVICE_FEATURE: u64 = 4;
    /// `driver_feature_select` (le32).
    pub const DRIVER_FEATURE_SELECT: u64 = 8;
    /// `driver_feature` (le32).
    pub const DRIVER_FEATURE: u64 = 12;
    /// `config_msix_vector` (le16).
    pub const CONFIG_MSIX_VECTOR: u64 = 16;
    /// `num_queues` (le16).
    pub const NUM_QUEUES: u64 = 18;
    /// `device_status` (u8).
    pub const DEVICE_STATUS: u64 = 20;
    /// `config_generation` (u8).
    pub const CONFIG_GENERATION: u64 = 21;
    /// `queue_select` (le16).
    pub const QUEUE_SELECT: u64 = 22;
    /// `queue_size` (le16).
    pub const QUEUE_SIZE: u64 = 24;
    /// `queue_msix_vector` (le16).
    pub const QUEUE_MSIX_VECTOR: u64 = 26;
    /// `queue_enable` (le16).
    pub const QUEUE_ENABLE: u64 = 28;
    /// `queue_notify_off` (le16).
    pub const QUEUE_NOTIFY_OFF: u64 = 30;
    /// `queue_desc` (le64).
    pub const QUEUE_DESC: u64 = 32;
    /// `queue_driver` (le64): the available ring.
    pub const QUEUE_DRIVER: u64 = 40;
    /// `queue_device` (le64): the used ring.
    pub const QUEUE_DEVICE: u64 = 48;
    /// Length of the structure up to `queue_device` inclusive.
    pub const LEN: u64 = 56;
    /// virtio 1.2 §4.1.5.1.2: "no MSI-X vector".
    pub const NO_VECTOR: u16 = 0xffff;
}

/// virtio 1.2 §2.1: device status bits.
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up.
    pub const FAILED: u8 = 128;
}

/// Feature bits (virtio 1.2 §5.1.3 for the network device, §6 for reserved bits).
pub mod feature {
    /// Device handles packets with partial checksum (transmit offload).
    pub const NET_CSUM: u64 = 1 << 0;
    /// Driver handles packets with partial checksum (receive offload).
    pub const NET_GUEST_CSUM: u64 = 1 << 1;
    /// Device reports its maximum MTU.
    pub const NET_MTU: u64 = 1 << 3;
    /// Device has a MAC address.
    pub const NET_MAC: u64 = 1 << 5;
    /// Driver can merge receive buffers (not used: one buffer per frame).
    pub const NET_MRG_RXBUF: u64 = 1 << 15;
    /// Configuration status field (link up) is available.
    pub const NET_STATUS: u64 = 1 << 16;
    /// Control virtqueue.
    pub const NET_CTRL_VQ: u64 = 1 << 17;
    /// Multiqueue with automatic receive steering.
    pub const NET_MQ: u64 = 1 << 22;
    /// Indirect descriptors (not used).
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// Event-index notification suppression (not used).
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// Compliance with virtio 1.x (required: no legacy).
    pub const VERSION_1: u64 = 1 << 32;
    /// The device accesses memory through the platform IOMMU (required behind VFIO).
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
    /// Packed virtqueues (not used: split rings).
    pub const RING_PACKED: u64 = 1 << 34;
}

/// virtio 1.2 §5.1.4: offsets in the network device configuration.
pub mod net_cfg {
    /// `mac[6]`.
    pub const MAC: u64 = 0;
    /// `status` (le16); bit 0 is `VIRTIO_NET_S_LINK_UP`.
    pub const STATUS: u64 = 6;
    /// `max_virtqueue_pairs` (le16).
    pub const MAX_VIRTQUEUE_PAIRS: u64 = 8;
    /// `mtu` (le16).
    pub const MTU: u64 = 10;
    /// `VIRTIO_NET_S_LINK_UP`.
    pub const S_LINK_UP: u16 = 1;
}

/// Where one configuration structure lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapLocation {
    /// BAR number (0–5).
    pub bar: u8,
    /// Offset in the BAR.
    pub offset: u32,
    /// Length in bytes.
    pub length: u32,
}

/// The virtio capabilities of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioCaps {
    /// Common configuration.
    pub common: CapLocation,
    /// Notification area.
    pub notify: CapLocation,
    /// `notify_off_multiplier`.
    pub notify_multiplier: u32,
    /// ISR status (unused with MSI-X, recorded for completeness).
    pub isr: Option<CapLocation>,
    /// Device configuration.
    pub device: Option<CapLocation>,
}

/// Reads the capability list and picks the first capability of each type (virtio 1.2
/// §4.1.4.1: "the driver SHOULD use the first instance it can"). Every field comes from the
/// device, so each is range-checked; BAR bounds are checked when the BARs are mapped.
pub fn parse_caps(dev: &Device) -> Result<VirtioCaps, VirtioError> {
    let (mut common, mut notify, mut isr, mut device, mut mult) = (None, None, None, None, 0);
    for (id, off) in dev.capabilities()? {
        if id != pci::CAP_ID_VENDOR {
            continue;
        }
        let off = u16::from(off);
        let cap_len = dev.config_read8(off + 2)?;
        if cap_len < 16 {
            continue;
        }
        let kind = dev.config_read8(off + 3)?;
        let bar = dev.config_read8(off + 4)?;
        if bar > 5 {
            continue; // §4.1.4.1: reserved BAR values are ignored
        }
        let loc = CapLocation {
            bar,
            offset: dev.config_read32(off + 8)?,
            length: dev.config_read32(off + 12)?,
        };
        match kind {
            cfg_type::COMMON if common.is_none() => common = Some(loc),
            cfg_type::NOTIFY if notify.is_none() && cap_len >= 20 => {
                notify = Some(loc);
                mult = dev.config_read32(off + 16)?;
            }
            cfg_type::ISR if isr.is_none() => isr = Some(loc),
            cfg_type::DEVICE if device.is_none() => device = Some(loc),
            _ => {}
        }
    }
    let common = common.ok_or(VirtioError::MissingCap("common configuration"))?;
    let notify = notify.ok_or(VirtioError::MissingCap("notification"))?;
    if u64::from(common.length) < common::LEN {
        return Err(VirtioError::MissingCap("common configuration (too short)"));
    }
    Ok(VirtioCaps { common, notify, notify_multiplier: mult, isr, device })
}
