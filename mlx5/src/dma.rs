//! The one `unsafe impl` of this crate: a packet-buffer pool as a DMA target.

use joyride_drivers::Pool;
use joyride_vfio::DmaTarget;

/// A packet-buffer pool as a DMA target.
pub(crate) struct PoolDma(pub(crate) Pool);

// SAFETY: a pool's region is one anonymous mapping made at pool creation, page-aligned, never
// remapped, and unmapped only when the last pool handle *and* the last buffer are gone
// (joyride-drivers `pool_raw`); `PoolDma` holds a handle, so the range stays mapped as long as it
// lives. A buffer the device may write is one the driver holds in its receive shadow, so no Rust
// reference to its bytes exists meanwhile.
unsafe impl DmaTarget for PoolDma {
    fn dma_region(&self) -> (*const u8, usize) {
        self.0.region()
    }
}
