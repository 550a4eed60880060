//! Device registers. [`MmioRegion`] (an `mmap`ed BAR) is the one place in Joyride where
//! volatile reads and writes of device memory happen; [`Bar`] is the checked accessor drivers
//! use: every 8/16/32/64-bit access is bounds- and alignment-checked against the BAR length
//! before it reaches the [`Mmio`] implementation (the real BAR, or a register-level device
//! model in tests).

use std::ptr::NonNull;

use crate::error::VfioError;

/// Width of a register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 8 bits.
    W8 = 1,
    /// 16 bits.
    W16 = 2,
    /// 32 bits.
    W32 = 4,
    /// 64 bits.
    W64 = 8,
}

impl Width {
    /// Bytes.
    pub fn bytes(self) -> u64 {
        self as u64
    }
}

/// A window of device registers. Callers ([`Bar`]) guarantee `off + width <= len()` and natural
/// alignment; implementations may rely on it.
pub trait Mmio: Send {
    /// Length in bytes.
    fn len(&self) -> u64;
    /// Whether the window is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads a register (zero-extended).
    fn read(&self, off: u64, w: Width) -> u64;
    /// Writes a register (truncated to the width).
    fn write(&self, off: u64, w: Width, v: u64);
}

/// An `mmap`ed device region; `munmap` on drop.
#[derive(Debug)]
pub struct MmioRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: device registers are not tied to a thread; the region only hands out volatile
// accesses, never references.
unsafe impl Send for MmioRegion {}

impl MmioRegion {
    /// Takes ownership of a mapping.
    ///
    /// # Safety
    /// `ptr` must be the start of a live `mmap` of `len` bytes that nothing else owns or unmaps.
    pub(crate) unsafe fn from_raw(ptr: *mut u8, len: usize) -> MmioRegion {
        MmioRegion { ptr: NonNull::new(ptr).expect("mmap returned null"), len }
    }
}

impl Mmio for MmioRegion {
    fn len(&self) -> u64 {
        self.len as u64
    }

    fn read(&self, off: u64, w: Width) -> u64 {
        assert!(
            off + w.bytes() <= self.len as u64 && off.is_multiple_of(w.bytes()),
            "checked by Bar"
        );
        let p = self.ptr.as_ptr().wrapping_add(off as usize);
        // SAFETY (each arm): in bounds and naturally aligned (asserted; the base is
        // page-aligned); device memory is read only through volatile accesses of the register's
        // own width.
        match w {
            // SAFETY: see above.
            Width::W8 => unsafe { p.read_volatile() }.into(),
            // SAFETY: see above.
            Width::W16 => unsafe { p.cast::<u16>().read_volatile() }.into(),
            // SAFETY: see above.
            Width::W32 => unsafe { p.cast::<u32>().read_volatile() }.into(),
            // SAFETY: see above.
            Width::W64 => unsafe { p.cast::<u64>().read_volatile() },
        }
    }

    fn write(&self, off: u64, w: Width, v: u64) {
        assert!(
            off + w.bytes() <= self.len as u64 && off.is_multiple_of(w.bytes()),
            "checked by Bar"
        );
        let p = self.ptr.as_ptr().wrapping_add(off as usize);
        // SAFETY (each arm): as for `read`; registers are written only through volatile
        // accesses.
        match w {
            // SAFETY: see above.
            Width::W8 => unsafe { p.write_volatile(v as u8) },
            // SAFETY: see above.
            Width::W16 => unsafe { p.cast::<u16>().write_volatile(v as u16) },
            // SAFETY: see above.
            Width::W32 => unsafe { p.cast::<u32>().write_volatile(v as u32) },
            // SAFETY: see above.
            Width::W64 => unsafe { p.cast::<u64>().write_volatile(v) },
        }
    }
}

impl Drop for MmioRegion {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; no reference into it exists (accesses are volatile copies).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A PCI BAR (or any register window) with checked accessors.
pub struct Bar {
    index: u8,
    regs: Box<dyn Mmio>,
}

impl std::fmt::Debug for Bar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bar").field("index", &self.index).field("len", &self.len()).finish()
    }
}

impl Bar {
    /// Wraps a register window as BAR `index`.
    pub fn new(index: u8, regs: Box<dyn Mmio>) -> Bar {
        Bar { index, regs }
    }

    /// BAR number.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.regs.len()
    }

    /// Whether the BAR is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an access of `w` at `off` is in bounds and naturally aligned.
    pub fn check(&self, off: u64, w: Width) -> Result<(), VfioError> {
        match off.checked_add(w.bytes()) {
            Some(end) if end <= self.len() && off.is_multiple_of(w.bytes()) => Ok(()),
            _ => Err(VfioError::Invalid("register access outside the BAR or misaligned")),
        }
    }

    /// Reads an 8-bit register.
    pub fn read8(&self, off: u64) -> Result<u8, VfioError> {
        self.check(off, Width::W8)?;
        Ok(self.regs.read(off, Width::W8) as u8)
    }

    /// Reads a 16-bit register.
    pub fn read16(&self, off: u64) -> Result<u16, VfioError> {
        self.check(off, Width::W16)?;
        Ok(self.regs.read(off, Width::W16) as u16)
    }

    /// Reads a 32-bit register.
    pub fn read32(&self, off: u64) -> Result<u32, VfioError> {
        self.check(off, Width::W32)?;
        Ok(self.regs.read(off, Width::W32) as u32)
    }

    /// Reads a 64-bit register.
    pub fn read64(&self, off: u64) -> Result<u64, VfioError> {
        self.check(off, Width::W64)?;
        Ok(self.regs.read(off, Width::W64))
    }

    /// Writes an 8-bit register.
    pub fn write8(&self, off: u64, v: u8) -> Result<(), VfioError> {
        self.check(off, Width::W8)?;
        self.regs.write(off, Width::W8, v.into());
        Ok(())
    }

    /// Writes a 16-bit register.
    pub fn write16(&self, off: u64, v: u16) -> Result<(), VfioError> {
        self.check(off, Width::W16)?;
        self.regs.write(off, Width::W16, v.into());
        Ok(())
    }

    /// Writes a 32-bit register.
    pub fn write32(&self, off: u64, v: u32) -> Result<(), VfioError> {
        self.check(off, Width::W32)?;
        self.regs.write(off, Width::W32, v.into());
        Ok(())
    }

    /// Writes a 64-bit register.
    pub fn write64(&self, off: u64, v: u64) -> Result<(), VfioError> {
        self.check(off, Width::W64)?;
        self.regs.write(off, Width::W64, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Regs(Arc<Mutex<Vec<(u64, Width, u64)>>>);
    impl Mmio for Regs {
        fn len(&self) -> u64 {
            64
        }
        fn read(&self, off: u64, _w: Width) -> u64 {
            off
        }
        fn write(&self, off: u64, w: Width, v: u64) {
            self.0.lock().unwrap().push((off, w, v));
        }
    }

    #[test]
    fn accesses_are_bounds_and_alignment_checked() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let bar = Bar::new(4, Box::new(Regs(log.clone())));
        assert_eq!(bar.read32(60).unwrap(), 60);
        assert!(bar.read32(62).is_err(), "misaligned");
        assert!(bar.read64(64).is_err(), "past the end");
        assert!(bar.read8(u64::MAX).is_err(), "overflowing offset");
        bar.write16(2, 0xabcd).unwrap();
        assert!(bar.write64(60, 1).is_err());
        assert_eq!(
            *log.lock().unwrap(),
            vec![(2, Width::W16, 0xabcd)],
            "rejected writes never land"
        );
    }

    #[test]
    fn real_region_roundtrip_on_anonymous_memory() {
        // An anonymous page stands in for a BAR: the volatile accessors must round-trip.
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: `p` is a fresh 4096-byte mapping handed over to the region.
        let bar = Bar::new(0, Box::new(unsafe { MmioRegion::from_raw(p.cast(), 4096) }));
        bar.write64(8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(bar.read32(8).unwrap(), 0x5566_7788);
        assert_eq!(bar.read16(14).unwrap(), 0x1122);
        assert_eq!(bar.read8(15).unwrap(), 0x11);
        bar.write8(4095, 7).unwrap();
        assert_eq!(bar.read8(4095).unwrap(), 7);
        assert!(bar.read8(4096).is_err());
    }
}
