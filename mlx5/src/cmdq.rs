//! The initialization segment and the firmware command queue (PRM §"Initialization Segment",
//! §"Command Queue", §"Command Mailbox", §"HCA Driver Start-up").
//!
//! One command is in flight at a time, in entry 0, completed by polling its ownership bit (no
//! command EQ, no interrupts). Input beyond the 16 inline bytes goes into a chain of 512-byte
//! mailbox blocks; output likewise. The mailbox area is one DMA buffer cut into 1 KiB blocks.
//! Every access to the queue or the mailboxes is a checked volatile access through
//! [`joyride_vfio::DmaMemory`]; the device's answer is copied out and then validated (entry
//! status, mailbox tokens, output status and syndrome) before any field is trusted.

use std::rc::Rc;
use std::sync::atomic::{fence, Ordering};

use joyride_vfio::{Bar, Container, DmaBuffer, DmaMemory};

use crate::error::{CmdError, CmdStatus, DeliveryStatus, Mlx5Error};
use crate::prm::{self, cmd, get32, get_bits, iseg, put32, put64};

/// Mailbox blocks in the mailbox area (input and output of one command share them).
pub const MAILBOX_BLOCKS: usize = 64;

/// Barrier: orders the stores of a command entry and its mailboxes before the store of the
/// ownership bit, and that before the doorbell write (PRM §"Command Queue": "post the command
/// by setting ownership then ring the doorbell").
#[inline]
pub(crate) fn wmb_before_hw_handoff() {
    fence(Ordering::SeqCst);
}

/// Barrier: orders the load that saw the HCA give an entry (or a CQE) back before the loads
/// of what it wrote there.
#[inline]
pub(crate) fn rmb_after_ownership() {
    fence(Ordering::Acquire);
}

/// Reads a big-endian device register.
pub(crate) fn rd_be32(bar: &Bar, off: u64) -> Result<u32, Mlx5Error> {
    Ok(u32::from_be(bar.read32(off)?))
}

/// Writes a big-endian device register.
pub(crate) fn wr_be32(bar: &Bar, off: u64, v: u32) -> Result<(), Mlx5Error> {
    Ok(bar.write32(off, v.to_be())?)
}

/// Copies `bytes` (a multiple of 4 long) into DMA memory at `off` (4-aligned), byte order kept.
pub(crate) fn copy_in(mem: &DmaMemory, off: usize, bytes: &[u8]) {
    for (i, w) in bytes.chunks_exact(4).enumerate() {
        mem.write_u32(off + 4 * i, u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
}

/// Copies `out.len()` (a multiple of 4) bytes out of DMA memory at `off`.
pub(crate) fn copy_out(mem: &DmaMemory, off: usize, out: &mut [u8]) {
    for (i, w) in out.chunks_exact_mut(4).enumerate() {
        w.copy_from_slice(&mem.read_u32(off + 4 * i).to_ne_bytes());
    }
}

/// What the initialization segment says about the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwInfo {
    /// Major, minor, sub-minor firmware revision.
    pub fw_rev: (u16, u16, u16),
    /// Command interface revision.
    pub cmdif_rev: u16,
    /// `log_cmdq_size`: entries in the queue.
    pub log_cmdq_size: u8,
    /// `log_cmdq_stride`: bytes per entry.
    pub log_cmdq_stride: u8,
}

/// The command queue.
pub struct CmdQueue {
    bar: Rc<Bar>,
    queue: DmaBuffer,
    mbox: DmaBuffer,
    token: u8,
    poll_budget: u32,
    /// Commands executed.
    pub(crate) issued: u64,
}

impl std::fmt::Debug for CmdQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmdQueue").field("issued", &self.issued).finish_non_exhaustive()
    }
}

/// Polls the `initializing` bit until it clears (PRM §"HCA Driver Start-up" steps 1 and 4).
fn wait_initializing(bar: &Bar, budget: u32) -> Result<(), Mlx5Error> {
    for i in 0..budget.max(1) {
        if rd_be32(bar, iseg::INITIALIZING)? & iseg::INITIALIZING_BIT == 0 {
            return Ok(());
        }
        backoff(i);
    }
    Err(Mlx5Error::InitTimeout)
}

#[inline]
fn backoff(i: u32) {
    if i % 1024 == 1023 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

impl CmdQueue {
    /// PRM §"HCA Driver Start-up": waits for the firmware, checks the command interface
    /// revision, reads the queue geometry, hands the HCA the queue's address and waits for the
    /// `initializing` bit to clear again. `poll_budget` bounds every poll loop (iterations).
    pub fn init(
        bar: Rc<Bar>,
        container: &Container,
        poll_budget: u32,
    ) -> Result<(CmdQueue, FwInfo), Mlx5Error> {
        wait_initializing(&bar, poll_budget)?;
        let rev = rd_be32(&bar, iseg::FW_REV)?;
        let sub = rd_be32(&bar, iseg::CMDIF_REV_FW_SUB)?;
        let lo = rd_be32(&bar, iseg::CMDQ_ADDR_LO)?;
        let info = FwInfo {
            fw_rev: (rev as u16, (rev >> 16) as u16, sub as u16),
            cmdif_rev: (sub >> 16) as u16,
            log_cmdq_size: ((lo >> 4) & 0xf) as u8,
            log_cmdq_stride: (lo & 0xf) as u8,
        };
        if info.cmdif_rev != iseg::CMDIF_REV {
            return Err(Mlx5Error::CmdIfRev(info.cmdif_rev));
        }
        // PRM: "log_cmdq_stride" must describe 64-byte entries; the queue fits in one page.
        if 1usize << info.log_cmdq_stride != cmd::ENTRY_SIZE {
            return Err(Mlx5Error::CmdQueue("entry stride is not 64 bytes"));
        }
        if (cmd::ENTRY_SIZE << info.log_cmdq_size) > prm::HCA_PAGE {
            return Err(Mlx5Error::CmdQueue("queue larger than a page"));
        }
        let queue = container.alloc_dma(prm::HCA_PAGE, false)?;
        let mbox = container.alloc_dma(MAILBOX_BLOCKS * cmd::MAILBOX_STRIDE, false)?;
        let addr = queue.iova();
        // The address is 4 KiB aligned: its low 12 bits carry nic_interface (full driver = 0).
        wr_be32(&bar, iseg::CMDQ_ADDR_HI, (addr >> 32) as u32)?;
        wr_be32(
            &bar,
            iseg::CMDQ_ADDR_LO,
            (addr as u32 & !0xfff) | (iseg::NIC_IFC_FULL_DRIVER << 8),
        )?;
        wait_initializing(&bar, poll_budget)?;
        Ok((CmdQueue { bar, queue, mbox, token: 0, poll_budget, issued: 0 }, info))
    }

    /// The BAR (the UAR pages live in it too).
    pub fn bar(&self) -> &Rc<Bar> {
        &self.bar
    }

    fn next_token(&mut self) -> u8 {
        self.token = self.token.wrapping_add(1);
        if self.token == 0 {
            self.token = 1;
        }
        self.token
    }

    /// Writes a mailbox chain of `blocks` blocks starting at block `first`, filled from
    /// `data` (zero-padded); returns the device address of the first block (0 if none).
    fn write_chain(&self, first: usize, blocks: usize, data: &[u8], token: u8) -> u64 {
        let m = self.mbox.mem();
        for b in 0..blocks {
            let off = (first + b) * cmd::MAILBOX_STRIDE;
            let mut blk = [0u8; cmd::MAILBOX_SIZE];
            let start = b * cmd::MAILBOX_DATA;
            if start < data.len() {
                let end = (start + cmd::MAILBOX_DATA).min(data.len());
                blk[..end - start].copy_from_slice(&data[start..end]);
            }
            let next = if b + 1 < blocks {
                self.mbox.iova() + ((first + b + 1) * cmd::MAILBOX_STRIDE) as u64
            } else {
                0
            };
            put64(&mut blk, cmd::MAILBOX_NEXT, next);
            put32(&mut blk, cmd::MAILBOX_BLOCK_NUMBER, b as u32);
            put32(&mut blk, cmd::MAILBOX_CTRL, u32::from(token) << 16);
            copy_in(m, off, &blk);
        }
        if blocks == 0 {
            0
        } else {
            self.mbox.iova() + (first * cmd::MAILBOX_STRIDE) as u64
        }
    }

    /// Executes one command: `input` (its first word carries the opcode) and an output of
    /// `out_len` bytes (a multiple of 4, at least 16). Returns the output once its status is
    /// OK; every failure is a typed [`CmdError`].
    pub fn exec(&mut self, input: &[u8], out_len: usize) -> Result<Vec<u8>, CmdError> {
        let opcode = get_bits(input, 0, 31, 16) as u16;
        debug_assert!(input.len().is_multiple_of(4) && out_len.is_multiple_of(4) && out_len >= 16);
        let blocks = |len: usize| len.saturating_sub(cmd::INLINE_LEN).div_ceil(cmd::MAILBOX_DATA);
        let (in_blocks, out_blocks) = (blocks(input.len()), blocks(out_len));
        if in_blocks + out_blocks > MAILBOX_BLOCKS {
            return Err(CmdError::TooLarge { opcode, len: input.len().max(out_len) });
        }
        let token = self.next_token();
        let in_ptr =
            self.write_chain(0, in_blocks, input.get(cmd::INLINE_LEN..).unwrap_or(&[]), token);
        let out_ptr = self.write_chain(in_blocks, out_blocks, &[], token);

        // PRM Table "Command Queue Entry Layout".
        let mut e = [0u8; cmd::ENTRY_SIZE];
        put32(&mut e, cmd::TYPE, cmd::TYPE_PCIE << 24);
        put32(&mut e, cmd::INPUT_LENGTH, input.len() as u32);
        put64(&mut e, cmd::INPUT_MAILBOX, in_ptr);
        let inline = input.len().min(cmd::INLINE_LEN);
        e[cmd::INPUT_INLINE..cmd::INPUT_INLINE + inline].copy_from_slice(&input[..inline]);
        put64(&mut e, cmd::OUTPUT_MAILBOX, out_ptr);
        put32(&mut e, cmd::OUTPUT_LENGTH, out_len as u32);
        let q = self.queue.mem();
        copy_in(q, 0, &e[..cmd::CTRL]);
        wmb_before_hw_handoff();
        // Signature left 0: command checksums are optional (cmdif_checksum = 0 in SET_HCA_CAP).
        q.write_u32(cmd::CTRL, ((u32::from(token) << 24) | cmd::OWNER_HW).to_be());
        wmb_before_hw_handoff();
        wr_be32(&self.bar, iseg::CMD_DOORBELL, 1 << 0)
            .map_err(|_| CmdError::Delivery { opcode, status: DeliveryStatus::Internal })?;
        self.issued += 1;

        let mut done = false;
        let mut ctrl = 0;
        for i in 0..self.poll_budget.max(1) {
            ctrl = u32::from_be(q.read_u32(cmd::CTRL));
            if ctrl & cmd::OWNER_HW == 0 {
                done = true;
                break;
            }
            backoff(i);
        }
        if !done {
            return Err(CmdError::Timeout { opcode });
        }
        rmb_after_ownership();
        let delivery = ((ctrl >> 1) & 0x7f) as u8;
        if delivery != cmd::DELIVERY_OK {
            return Err(CmdError::Delivery { opcode, status: DeliveryStatus::from_bits(delivery) });
        }
        let mut out = vec![0u8; out_len.max(cmd::INLINE_LEN)];
        copy_out(q, cmd::OUTPUT_INLINE, &mut out[..cmd::INLINE_LEN]);
        let m = self.mbox.mem();
        for b in 0..out_blocks {
            let off = (in_blocks + b) * cmd::MAILBOX_STRIDE;
            let mut ctl = [0u8; 4];
            copy_out(m, off + cmd::MAILBOX_CTRL, &mut ctl);
            if get_bits(&ctl, 0, 23, 16) as u8 != token {
                return Err(CmdError::BadOutput { opcode, what: "output mailbox token mismatch" });
            }
            let start = cmd::INLINE_LEN + b * cmd::MAILBOX_DATA;
            let end = (start + cmd::MAILBOX_DATA).min(out_len);
            copy_out(m, off, &mut out[start..end]);
        }
        out.truncate(out_len);
        let status = out[prm::out::STATUS];
        if status != 0 {
            return Err(CmdError::Failed {
                opcode,
                status: CmdStatus::from_byte(status),
                syndrome: get32(&out, prm::out::SYNDROME),
            });
        }
        Ok(out)
    }
}
