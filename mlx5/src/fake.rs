//! **A model, not a device**: a software fake of a ConnectX HCA for unit tests, written from
//! the same reading of the PRM as the driver. It models the initialization segment (with an
//! `initializing` bit that stays set for a few reads), consumes commands from the command queue
//! memory by DMA through the fake IOMMU (mailbox chains, tokens, block numbers), answers them
//! as the PRM describes — including error statuses and syndromes for bad input and out-of-order
//! commands — owns the pages it asks for, and runs the Ethernet data path: it reads send WQEs
//! when the UAR doorbell rings, produces CQEs with owner phases, steers injected frames through
//! the flow table, TIR and RQT (Toeplitz RSS) into receive WQEs.
//!
//! Every address the driver hands the model is dereferenced through [`FakeIommu`], so a driver
//! bug that passes an unmapped address shows up as a test failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use joyride_vfio::fake::{FakeDevice, FakeIommu, FakeSys};
use joyride_vfio::{Device, IovaSpace, Mmio, Width};

use crate::cmds::{self, cap, EQ_CQ_CTX, EQ_CQ_PAS, FT_PARAM, OBJ_CTX};
use crate::error::{CmdStatus, DeliveryStatus};
use crate::prm::{self, cmd, get32, get64, get_bits, iseg, op, put32, put64, put_bits, HCA_PAGE};
use crate::queues::{cqe, cqe_op, cs, opcode, uar};

/// PCI address of the fake device.
pub const BDF: &str = "0000:5e:00.0";
/// BAR 0 length: the initialization segment page and 63 UAR pages.
pub const BAR_LEN: u64 = 64 * 4096;

/// Syndromes the model returns (the real ones are firmware-internal numbers).
pub mod syndrome {
    /// A command before ENABLE_HCA, or a resource command before INIT_HCA.
    pub const NOT_ENABLED: u32 = 0x5e1f_0001;
    /// SET_HCA_CAP after INIT_HCA.
    pub const CAP_AFTER_INIT: u32 = 0x5e1f_0002;
    /// An ISSI the model does not support.
    pub const BAD_ISSI: u32 = 0x5e1f_0003;
    /// INIT_HCA without the boot and init pages.
    pub const NO_PAGES: u32 = 0x5e1f_0004;
    /// A page address that is unaligned, unmapped or given twice.
    pub const BAD_PAGE: u32 = 0x5e1f_0005;
    /// A referenced object does not exist.
    pub const NO_SUCH_OBJECT: u32 = 0x5e1f_0006;
    /// A size beyond the capabilities, or too few pages for it.
    pub const BAD_SIZE: u32 = 0x5e1f_0007;
    /// Input shorter than the layout.
    pub const SHORT_INPUT: u32 = 0x5e1f_0008;
    /// Unknown opcode.
    pub const BAD_OPCODE: u32 = 0x5e1f_0009;
    /// A wrong state transition.
    pub const BAD_STATE: u32 = 0x5e1f_000a;
    /// Something the model does not implement (capability bits, match criteria).
    pub const UNSUPPORTED: u32 = 0x5e1f_000b;
    /// Injected by a test.
    pub const INJECTED: u32 = 0x5e1f_00ff;
}

#[derive(Clone, Debug, Default)]
struct Ring {
    pages: Vec<u64>,
    log_size: u8,
    dbr: u64,
}

impl Ring {
    fn addr(&self, byte: usize) -> u64 {
        self.pages[byte / HCA_PAGE] + (byte % HCA_PAGE) as u64
    }
}

#[derive(Clone, Debug, Default)]
struct FCq {
    ring: Ring,
    pi: u32,
}

#[derive(Clone, Debug, Default)]
struct FWq {
    ring: Ring,
    cqn: u32,
    state: u32,
    cc: u16,
}

#[derive(Clone, Debug)]
struct FTir {
    rqt: Option<u32>,
    rqn: u32,
    toeplitz: bool,
    key: [u8; 40],
}

/// What a transmitted WQE asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxRecord {
    /// WQE opcode.
    pub opcode: u8,
    /// `cs_flags`.
    pub cs_flags: u8,
    /// LSO mss (0 otherwise).
    pub mss: u16,
    /// Inline header bytes.
    pub inline: u16,
    /// The SQ.
    pub sqn: u32,
}

/// The model's state; tests read and poke it through [`FakeHca::m`].
pub struct Model {
    iommu: Arc<FakeIommu>,
    /// Reads of `initializing` that still return 1.
    pub init_reads: u32,
    cmdq: Option<u64>,
    /// Reported `log_cmdq_size`.
    pub log_cmdq_size: u8,
    /// Reported command interface revision.
    pub cmdif_rev: u16,
    enabled: bool,
    issi: u16,
    init_done: bool,
    torn_down: bool,
    /// Pages the HCA asks for in each phase: boot, init, regular.
    pub page_needs: [u32; 3],
    /// Pages it holds.
    pub owned: BTreeSet<u64>,
    general: Vec<u8>,
    eth: Vec<u8>,
    next_id: u32,
    uars: BTreeSet<u32>,
    pds: BTreeSet<u32>,
    tds: BTreeSet<u32>,
    tises: BTreeSet<u32>,
    eqs: BTreeMap<u32, FCq>,
    cqs: BTreeMap<u32, FCq>,
    sqs: BTreeMap<u32, FWq>,
    rqs: BTreeMap<u32, FWq>,
    rqts: BTreeMap<u32, Vec<u32>>,
    tirs: BTreeMap<u32, FTir>,
    tables: BTreeMap<u32, u8>,
    groups: BTreeMap<u32, (u32, u32, u32)>,
    entries: BTreeMap<(u32, u32), ([u8; 6], u32)>,
    root: Option<u32>,
    /// `(opcode, status byte)` of every command, in order.
    pub log: Vec<(u16, u8)>,
    /// Frames the HCA transmitted.
    pub sent: Vec<Vec<u8>>,
    /// Per transmitted WQE: what it asked for.
    pub tx_records: Vec<TxRecord>,
    /// Deliver transmitted frames back to the receive side.
    pub loopback: bool,
    /// Whether the link is up.
    pub link_up: bool,
    /// The permanent MAC.
    pub mac: [u8; 6],
    /// The vport MTU.
    pub vport_mtu: u16,
    /// The reserved lkey.
    pub resd_lkey: u32,
    /// Fail the next command with this opcode: `(opcode, status, syndrome)`.
    pub fail_next: Option<(u16, CmdStatus, u32)>,
    /// Corrupt the next command's delivery (entry status) with this.
    pub fail_delivery: Option<DeliveryStatus>,
    /// Frames dropped: no receive WQE posted.
    pub rx_no_wqe: u32,
    /// Frames dropped: no steering entry matched.
    pub rx_unmatched: u32,
    /// Frames each RQ received (by RQ number).
    pub rx_per_rq: BTreeMap<u32, u32>,
    /// CQEs dropped because the CQ was full.
    pub cq_overruns: u32,
    /// UAR send doorbells rung.
    pub doorbells: u32,
}

fn get_be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

type CmdResult = Result<(), (CmdStatus, u32)>;

fn fail<T>(s: CmdStatus, syn: u32) -> Result<T, (CmdStatus, u32)> {
    Err((s, syn))
}

impl Model {
    fn new(iommu: Arc<FakeIommu>) -> Model {
        let mut general = vec![0u8; cmds::CAP_LEN];
        cap::set(&mut general, cap::LOG_MAX_CQ_SZ, 22);
        cap::set(&mut general, cap::LOG_MAX_EQ_SZ, 22);
        cap::set(&mut general, cap::CMDIF_CHECKSUM, 1); // the driver must turn this off
        cap::set(&mut general, cap::LOG_UAR_PAGE_SZ, 0);
        let mut eth = vec![0u8; cmds::CAP_LEN];
        cap::set(&mut eth, cap::ETH_CSUM, 1);
        cap::set(&mut eth, cap::ETH_MAX_LSO, 18);
        cap::set(&mut eth, cap::ETH_INLINE_MODE, 0);
        cap::set(&mut eth, cap::ETH_RSS_IND_TBL, 8);
        Model {
            iommu,
            init_reads: 3,
            cmdq: None,
            log_cmdq_size: 5,
            cmdif_rev: iseg::CMDIF_REV,
            enabled: false,
            issi: 0,
            init_done: false,
            torn_down: false,
            page_needs: [8, 24, 16],
            owned: BTreeSet::new(),
            general,
            eth,
            next_id: 0x10,
            uars: BTreeSet::new(),
            pds: BTreeSet::new(),
            tds: BTreeSet::new(),
            tises: BTreeSet::new(),
            eqs: BTreeMap::new(),
            cqs: BTreeMap::new(),
            sqs: BTreeMap::new(),
            rqs: BTreeMap::new(),
            rqts: BTreeMap::new(),
            tirs: BTreeMap::new(),
            tables: BTreeMap::new(),
            groups: BTreeMap::new(),
            entries: BTreeMap::new(),
            root: None,
            log: Vec::new(),
            sent: Vec::new(),
            tx_records: Vec::new(),
            loopback: false,
            link_up: true,
            mac: [0x0c, 0x42, 0xa1, 0x12, 0x34, 0x56],
            vport_mtu: 1522,
            resd_lkey: 0x100,
            fail_next: None,
            fail_delivery: None,
            rx_no_wqe: 0,
            rx_unmatched: 0,
            rx_per_rq: BTreeMap::new(),
            cq_overruns: 0,
            doorbells: 0,
        }
    }

    /// Whether every object the driver created is gone.
    pub fn no_objects(&self) -> bool {
        self.uars.is_empty()
            && self.pds.is_empty()
            && self.tds.is_empty()
            && self.tises.is_empty()
            && self.eqs.is_empty()
            && self.cqs.is_empty()
            && self.sqs.is_empty()
            && self.rqs.is_empty()
            && self.rqts.is_empty()
            && self.tirs.is_empty()
            && self.tables.is_empty()
            && self.groups.is_empty()
            && self.entries.is_empty()
    }

    /// Sets a field of the general capabilities QUERY_HCA_CAP reports.
    pub fn set_general_cap(&mut self, f: (usize, u32, u32), v: u32) {
        cap::set(&mut self.general, f, v);
    }

    /// Whether the HCA is enabled (between ENABLE_HCA and DISABLE_HCA).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The RQ numbers in creation order.
    pub fn rqns(&self) -> Vec<u32> {
        self.rqs.keys().copied().collect()
    }

    /// The CQ numbers in creation order.
    pub fn cqns(&self) -> Vec<u32> {
        self.cqs.keys().copied().collect()
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn read(&self, iova: u64, len: usize) -> Option<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.iommu.read(iova, &mut b).ok().map(|_| b)
    }

    // ---- The command interface ----

    fn doorbell(&mut self, v: u32) {
        for slot in 0..32 {
            if v & (1 << slot) != 0 {
                self.run_entry(slot);
            }
        }
    }

    fn run_entry(&mut self, slot: u64) {
        let Some(q) = self.cmdq else { return };
        let at = q + slot * cmd::ENTRY_SIZE as u64;
        let Some(e) = self.read(at, cmd::ENTRY_SIZE) else { return };
        let ctrl = get32(&e, cmd::CTRL);
        if ctrl & cmd::OWNER_HW == 0 {
            return;
        }
        let token = (ctrl >> 24) as u8;
        let done = |m: &mut Model, status: u8| {
            let w = (u32::from(token) << 24) | (u32::from(status) << 1);
            let _ = m.iommu.write(at + cmd::CTRL as u64, &w.to_be_bytes());
        };
        if let Some(d) = self.fail_delivery.take() {
            return done(self, d.to_bits());
        }
        if get_bits(&e, cmd::TYPE, 31, 24) != cmd::TYPE_PCIE {
            return done(self, DeliveryStatus::BadType.to_bits());
        }
        let inlen = get32(&e, cmd::INPUT_LENGTH) as usize;
        let outlen = get32(&e, cmd::OUTPUT_LENGTH) as usize;
        let mut input = e[cmd::INPUT_INLINE..cmd::INPUT_INLINE + cmd::INLINE_LEN].to_vec();
        if let Err(d) = self.read_chain(get64(&e, cmd::INPUT_MAILBOX), inlen, token, &mut input) {
            return done(self, d.to_bits());
        }
        input.truncate(inlen);
        let opcode = get_bits(&input, 0, 31, 16) as u16;
        let mut out = vec![0u8; outlen.max(16)];
        let r = match self.fail_next {
            Some((o, s, syn)) if o == opcode => {
                self.fail_next = None;
                Err((s, syn))
            }
            _ => self.dispatch(opcode, &input, &mut out),
        };
        if let Err((s, syn)) = r {
            out.iter_mut().for_each(|b| *b = 0);
            out[0] = s.to_byte();
            put32(&mut out, 4, syn);
        }
        self.log.push((opcode, out[0]));
        let _ = self.iommu.write(at + cmd::OUTPUT_INLINE as u64, &out[..cmd::INLINE_LEN]);
        if outlen > cmd::INLINE_LEN {
            let mut ptr = get64(&e, cmd::OUTPUT_MAILBOX);
            for chunk in out[cmd::INLINE_LEN..outlen].chunks(cmd::MAILBOX_DATA) {
                if ptr == 0 || self.iommu.write(ptr, chunk).is_err() {
                    return done(self, DeliveryStatus::BadOutputPointer.to_bits());
                }
                let Some(blk) = self.read(ptr, cmd::MAILBOX_SIZE) else { return };
                ptr = get64(&blk, cmd::MAILBOX_NEXT);
            }
        }
        done(self, 0);
    }

    fn read_chain(
        &self,
        mut ptr: u64,
        inlen: usize,
        token: u8,
        input: &mut Vec<u8>,
    ) -> Result<(), DeliveryStatus> {
        let mut block = 0;
        while input.len() < inlen {
            if ptr == 0 || !ptr.is_multiple_of(1024) {
                return Err(DeliveryStatus::BadInputPointer);
            }
            let blk = self.read(ptr, cmd::MAILBOX_SIZE).ok_or(DeliveryStatus::BadInputPointer)?;
            if get32(&blk, cmd::MAILBOX_BLOCK_NUMBER) != block {
                return Err(DeliveryStatus::BadBlockNumber);
            }
            if get_bits(&blk, cmd::MAILBOX_CTRL, 23, 16) as u8 != token {
                return Err(DeliveryStatus::Token);
            }
            input.extend_from_slice(&blk[..cmd::MAILBOX_DATA]);
            ptr = get64(&blk, cmd::MAILBOX_NEXT);
            block += 1;
        }
        Ok(())
    }

    fn dispatch(&mut self, opcode: u16, i: &[u8], out: &mut [u8]) -> CmdResult {
        use CmdStatus::*;
        let op_mod = get_bits(i, 4, 15, 0);
        let need_in =
            |n: usize| if i.len() < n { fail(BadInputLen, syndrome::SHORT_INPUT) } else { Ok(()) };
        if out.len() < 16 {
            return fail(BadOutputLen, syndrome::SHORT_INPUT);
        }
        if op::name(opcode) == "unknown" {
            return fail(BadOp, syndrome::BAD_OPCODE);
        }
        if opcode != op::ENABLE_HCA && !self.enabled {
            return fail(BadSysState, syndrome::NOT_ENABLED);
        }
        let pre_init = matches!(
            opcode,
            op::ENABLE_HCA
                | op::DISABLE_HCA
                | op::QUERY_ISSI
                | op::SET_ISSI
                | op::QUERY_PAGES
                | op::MANAGE_PAGES
                | op::QUERY_HCA_CAP
                | op::SET_HCA_CAP
                | op::INIT_HCA
        );
        if !pre_init && !self.init_done {
            return fail(BadSysState, syndrome::NOT_ENABLED);
        }
        let obj = |s: &BTreeSet<u32>, id: u32| {
            if s.contains(&id) {
                Ok(())
            } else {
                fail(BadResource, syndrome::NO_SUCH_OBJECT)
            }
        };
        match opcode {
            op::ENABLE_HCA => {
                self.enabled = true;
            }
            op::DISABLE_HCA => {
                self.enabled = false;
            }
            op::QUERY_ISSI => {
                if out.len() < 0x70 {
                    return fail(BadOutputLen, syndrome::SHORT_INPUT);
                }
                put_bits(out, 0x08, 15, 0, self.issi.into());
                put32(out, 0x6c, 0b11);
            }
            op::SET_ISSI => {
                let v = get_bits(i, 0x08, 15, 0);
                if v > 1 {
                    return fail(BadParam, syndrome::BAD_ISSI);
                }
                self.issi = v as u16;
            }
            op::QUERY_PAGES => {
                let upto = match op_mod {
                    1 => 1,
                    2 => 2,
                    3 => 3,
                    _ => return fail(BadParam, syndrome::UNSUPPORTED),
                };
                let total: u32 = self.page_needs[..upto].iter().sum();
                let n = total.saturating_sub(self.owned.len() as u32);
                put32(out, 0x0c, n);
            }
            op::MANAGE_PAGES => self.manage_pages(op_mod, i, out)?,
            op::QUERY_HCA_CAP => {
                if out.len() < 0x10 + cmds::CAP_LEN {
                    return fail(BadOutputLen, syndrome::SHORT_INPUT);
                }
                let c = match op_mod >> 1 {
                    0 => &self.general,
                    1 => &self.eth,
                    _ => return fail(BadParam, syndrome::UNSUPPORTED),
                };
                out[0x10..0x10 + cmds::CAP_LEN].copy_from_slice(c);
            }
            op::SET_HCA_CAP => {
                need_in(0x10 + cmds::CAP_LEN)?;
                if self.init_done {
                    return fail(BadSysState, syndrome::CAP_AFTER_INIT);
                }
                if op_mod >> 1 != 0 {
                    return fail(BadParam, syndrome::UNSUPPORTED);
                }
                let c = &i[0x10..0x10 + cmds::CAP_LEN];
                // The model computes no signatures and has 4 KiB UAR pages only.
                if cap::get(c, cap::CMDIF_CHECKSUM) != 0 || cap::get(c, cap::LOG_UAR_PAGE_SZ) != 0 {
                    return fail(BadParam, syndrome::UNSUPPORTED);
                }
                self.general = c.to_vec();
            }
            op::INIT_HCA => {
                if self.issi != 1 {
                    return fail(BadSysState, syndrome::BAD_ISSI);
                }
                if (self.owned.len() as u32) < self.page_needs[0] + self.page_needs[1] {
                    return fail(NoResources, syndrome::NO_PAGES);
                }
                self.init_done = true;
            }
            op::TEARDOWN_HCA => {
                self.init_done = false;
                self.torn_down = true;
            }
            op::QUERY_SPECIAL_CONTEXTS => put32(out, 0x0c, self.resd_lkey),
            op::ALLOC_UAR | op::ALLOC_PD | op::ALLOC_TRANSPORT_DOMAIN => {
                let id = self.id();
                let set = match opcode {
                    op::ALLOC_UAR => {
                        let id = (self.uars.len() as u32) + 1;
                        if u64::from(id) * uar::PAGE >= BAR_LEN {
                            return fail(NoResources, syndrome::BAD_SIZE);
                        }
                        self.uars.insert(id);
                        put32(out, 0x08, id);
                        return Ok(());
                    }
                    op::ALLOC_PD => &mut self.pds,
                    _ => &mut self.tds,
                };
                set.insert(id);
                put32(out, 0x08, id);
            }
            op::DEALLOC_UAR => self.remove(i, |m| &mut m.uars)?,
            op::DEALLOC_PD => self.remove(i, |m| &mut m.pds)?,
            op::DEALLOC_TRANSPORT_DOMAIN => self.remove(i, |m| &mut m.tds)?,
            op::DESTROY_TIS => self.remove(i, |m| &mut m.tises)?,
            op::QUERY_NIC_VPORT_CONTEXT => {
                if out.len() < 0x110 {
                    return fail(BadOutputLen, syndrome::SHORT_INPUT);
                }
                let v =
                    cmds::VportContext { mac: self.mac, mtu: self.vport_mtu, min_inline_mode: 1 };
                cmds::emit_nic_vport_context(out, &v);
            }
            op::QUERY_VPORT_STATE => put32(out, 0x0c, if self.link_up { 0x11 } else { 0x10 }),
            op::CREATE_EQ | op::CREATE_CQ => {
                need_in(EQ_CQ_PAS)?;
                let c = EQ_CQ_CTX;
                obj(&self.uars, get_bits(i, c + 0x0c, 23, 0))?;
                let log = get_bits(i, c + 0x0c, 28, 24) as u8;
                let max = cap::get(
                    &self.general,
                    if opcode == op::CREATE_EQ { cap::LOG_MAX_EQ_SZ } else { cap::LOG_MAX_CQ_SZ },
                );
                if u32::from(log) > max {
                    return fail(BadParam, syndrome::BAD_SIZE);
                }
                let pages = self.pas(i, EQ_CQ_PAS, prm::wq::CQE << log)?;
                let mut ring = Ring { pages, log_size: log, dbr: 0 };
                if opcode == op::CREATE_EQ {
                    let id = self.eqs.len() as u32 + 1;
                    self.eqs.insert(id, FCq { ring, pi: 0 });
                    put32(out, 0x08, id);
                } else {
                    let eqn = get_bits(i, c + 0x14, 7, 0);
                    if !self.eqs.contains_key(&eqn) {
                        return fail(BadParam, syndrome::NO_SUCH_OBJECT);
                    }
                    ring.dbr = get64(i, c + 0x38);
                    if !ring.dbr.is_multiple_of(8) || self.read(ring.dbr, 8).is_none() {
                        return fail(BadParam, syndrome::BAD_PAGE);
                    }
                    let id = self.id();
                    self.cqs.insert(id, FCq { ring, pi: 0 });
                    put32(out, 0x08, id);
                }
            }
            op::DESTROY_EQ => {
                let id = get_bits(i, 0x08, 23, 0);
                self.eqs.remove(&id).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
            }
            op::DESTROY_CQ => {
                let id = get_bits(i, 0x08, 23, 0);
                if self.sqs.values().chain(self.rqs.values()).any(|w| w.cqn == id) {
                    return fail(ResourceBusy, syndrome::BAD_STATE);
                }
                self.cqs.remove(&id).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
            }
            op::CREATE_TIS => {
                need_in(OBJ_CTX + 0xa0)?;
                obj(&self.tds, get_bits(i, OBJ_CTX + 0x24, 23, 0))?;
                let id = self.id();
                self.tises.insert(id);
                put32(out, 0x08, id);
            }
            op::CREATE_SQ | op::CREATE_RQ => {
                let c = OBJ_CTX;
                let w = c + cmds::CTX_WQ;
                need_in(w + prm::wq::WQ_PAS)?;
                let cqn = get_bits(i, c + 0x08, 23, 0);
                if !self.cqs.contains_key(&cqn) {
                    return fail(BadParam, syndrome::NO_SUCH_OBJECT);
                }
                obj(&self.pds, get_bits(i, w + 0x08, 23, 0))?;
                let stride = get_bits(i, w + 0x20, 19, 16);
                let log = get_bits(i, w + 0x20, 4, 0) as u8;
                if opcode == op::CREATE_SQ {
                    obj(&self.tises, get_bits(i, c + 0x2c, 23, 0))?;
                    obj(&self.uars, get_bits(i, w + 0x0c, 23, 0))?;
                }
                let want = if opcode == op::CREATE_SQ { 6 } else { 4 };
                if get_bits(i, w, 31, 28) != 1 || stride != want || get_bits(i, c, 31, 31) != 1 {
                    return fail(BadParam, syndrome::UNSUPPORTED);
                }
                let pages = self.pas(i, w + prm::wq::WQ_PAS, (1 << stride) << log)?;
                let ring = Ring { pages, log_size: log, dbr: get64(i, w + 0x10) };
                let id = self.id();
                let q = FWq { ring, cqn, state: cmds::state::RST, cc: 0 };
                if opcode == op::CREATE_SQ {
                    self.sqs.insert(id, q)
                } else {
                    self.rqs.insert(id, q)
                };
                put32(out, 0x08, id);
            }
            op::MODIFY_SQ | op::MODIFY_RQ => {
                need_in(OBJ_CTX + 4)?;
                let id = get_bits(i, 0x08, 23, 0);
                let from = get_bits(i, 0x08, 31, 28);
                let to = get_bits(i, OBJ_CTX, 23, 20);
                let qs = if opcode == op::MODIFY_SQ { &mut self.sqs } else { &mut self.rqs };
                let q = qs.get_mut(&id).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
                use cmds::state::*;
                let ok = q.state == from
                    && matches!((from, to), (RST, RDY) | (RDY, ERR) | (ERR, RST) | (RDY, RST));
                if !ok {
                    return fail(BadResState, syndrome::BAD_STATE);
                }
                q.state = to;
            }
            op::DESTROY_SQ | op::DESTROY_RQ => {
                let id = get_bits(i, 0x08, 23, 0);
                let qs = if opcode == op::DESTROY_SQ { &mut self.sqs } else { &mut self.rqs };
                qs.remove(&id).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
            }
            op::CREATE_RQT => {
                need_in(OBJ_CTX + cmds::RQT_LIST)?;
                let n = get_bits(i, OBJ_CTX + 0x18, 15, 0) as usize;
                let max = 1usize << cap::get(&self.eth, cap::ETH_RSS_IND_TBL);
                if n == 0 || n > max || get_bits(i, OBJ_CTX + 0x14, 15, 0) as usize != n {
                    return fail(BadParam, syndrome::BAD_SIZE);
                }
                need_in(OBJ_CTX + cmds::RQT_LIST + 4 * n)?;
                let list: Vec<u32> =
                    (0..n).map(|k| get_bits(i, OBJ_CTX + cmds::RQT_LIST + 4 * k, 23, 0)).collect();
                if list.iter().any(|r| !self.rqs.contains_key(r)) {
                    return fail(BadParam, syndrome::NO_SUCH_OBJECT);
                }
                let id = self.id();
                self.rqts.insert(id, list);
                put32(out, 0x08, id);
            }
            op::DESTROY_RQT => {
                let id = get_bits(i, 0x08, 23, 0);
                if self.tirs.values().any(|t| t.rqt == Some(id)) {
                    return fail(ResourceBusy, syndrome::BAD_STATE);
                }
                self.rqts.remove(&id).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
            }
            op::CREATE_TIR => {
                need_in(OBJ_CTX + 0xf0)?;
                let c = OBJ_CTX;
                obj(&self.tds, get_bits(i, c + 0x24, 23, 0))?;
                let tir = if get_bits(i, c + 0x04, 31, 28) == 1 {
                    let rqt = get_bits(i, c + 0x20, 23, 0);
                    if !self.rqts.contains_key(&rqt) {
                        return fail(BadParam, syndrome::NO_SUCH_OBJECT);
                    }
                    let mut key = [0u8; 40];
                    key.copy_from_slice(&i[c + 0x28..c + 0x50]);
                    FTir {
                        rqt: Some(rqt),
                        rqn: 0,
                        toeplitz: get_bits(i, c + 0x24, 31, 28) == 2,
                        key,
                    }
                } else {
                    let rqn = get_bits(i, c + 0x1c, 23, 0);
                    if !self.rqs.contains_key(&rqn) {
                        return fail(BadParam, syndrome::NO_SUCH_OBJECT);
                    }
                    FTir { rqt: None, rqn, toeplitz: false, key: [0; 40] }
                };
                let id = self.id();
                self.tirs.insert(id, tir);
                put32(out, 0x08, id);
            }
            op::DESTROY_TIR => {
                let id = get_bits(i, 0x08, 23, 0);
                if self.entries.values().any(|e| e.1 == id) {
                    return fail(ResourceBusy, syndrome::BAD_STATE);
                }
                self.tirs.remove(&id).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
            }
            op::CREATE_FLOW_TABLE => {
                need_in(0x40)?;
                if get_bits(i, 0x10, 31, 24) != cmds::FT_NIC_RX {
                    return fail(BadParam, syndrome::UNSUPPORTED);
                }
                let log = get_bits(i, 0x18, 7, 0) as u8;
                if log > 16 {
                    return fail(BadParam, syndrome::BAD_SIZE);
                }
                let id = self.id();
                self.tables.insert(id, log);
                put32(out, 0x08, id);
            }
            op::CREATE_FLOW_GROUP => {
                need_in(FT_PARAM + cmds::MATCH_PARAM_LEN)?;
                let t = get_bits(i, 0x14, 23, 0);
                let log = *self.tables.get(&t).ok_or((BadParam, syndrome::NO_SUCH_OBJECT))?;
                let (s, e) = (get32(i, 0x1c), get32(i, 0x24));
                if s > e || e >= 1 << log {
                    return fail(BadParam, syndrome::BAD_SIZE);
                }
                if get_bits(i, 0x3c, 7, 0) != 1 || cmds::get_dmac(i, FT_PARAM) != [0xff; 6] {
                    return fail(BadParam, syndrome::UNSUPPORTED);
                }
                let id = self.id();
                self.groups.insert(id, (t, s, e));
                put32(out, 0x08, id);
            }
            op::SET_FLOW_TABLE_ENTRY => {
                need_in(FT_PARAM + cmds::FC_DESTS + 8)?;
                let t = get_bits(i, 0x14, 23, 0);
                let idx = get32(i, 0x20);
                let fc = FT_PARAM;
                let g = get32(i, fc + 0x04);
                match self.groups.get(&g) {
                    Some(&(gt, s, e)) if gt == t && (s..=e).contains(&idx) => {}
                    _ => return fail(BadParam, syndrome::NO_SUCH_OBJECT),
                }
                let tir = get_bits(i, fc + cmds::FC_DESTS, 23, 0);
                if get_bits(i, fc + 0x0c, 15, 0) != cmds::ACTION_FWD_DEST
                    || get_bits(i, fc + 0x10, 23, 0) != 1
                    || get_bits(i, fc + cmds::FC_DESTS, 31, 24) != cmds::DEST_TIR
                    || !self.tirs.contains_key(&tir)
                {
                    return fail(BadParam, syndrome::UNSUPPORTED);
                }
                let mac = cmds::get_dmac(i, fc + cmds::FC_MATCH_VALUE);
                self.entries.insert((t, idx), (mac, tir));
            }
            op::SET_FLOW_TABLE_ROOT => {
                let t = get_bits(i, 0x14, 23, 0);
                if !self.tables.contains_key(&t) {
                    return fail(BadParam, syndrome::NO_SUCH_OBJECT);
                }
                self.root = Some(t);
            }
            op::DELETE_FLOW_TABLE_ENTRY => {
                let k = (get_bits(i, 0x14, 23, 0), get32(i, 0x20));
                self.entries.remove(&k).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
            }
            op::DESTROY_FLOW_GROUP => {
                let g = get32(i, 0x18);
                self.groups.remove(&g).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
            }
            op::DESTROY_FLOW_TABLE => {
                let t = get_bits(i, 0x14, 23, 0);
                if self.groups.values().any(|g| g.0 == t) {
                    return fail(ResourceBusy, syndrome::BAD_STATE);
                }
                self.tables.remove(&t).ok_or((BadResource, syndrome::NO_SUCH_OBJECT))?;
                if self.root == Some(t) {
                    self.root = None;
                }
            }
            _ => return fail(BadOp, syndrome::BAD_OPCODE),
        }
        Ok(())
    }

    fn remove(&mut self, i: &[u8], set: impl Fn(&mut Model) -> &mut BTreeSet<u32>) -> CmdResult {
        let id = get_bits(i, 0x08, 23, 0);
        if set(self).remove(&id) {
            Ok(())
        } else {
            fail(CmdStatus::BadResource, syndrome::NO_SUCH_OBJECT)
        }
    }

    /// The `pas` list at `at`: enough 4 KiB pages for `bytes`, each mapped.
    fn pas(&self, i: &[u8], at: usize, bytes: usize) -> Result<Vec<u64>, (CmdStatus, u32)> {
        let n = bytes.div_ceil(HCA_PAGE);
        if i.len() < at + 8 * n {
            return fail(CmdStatus::BadParam, syndrome::BAD_SIZE);
        }
        let pages: Vec<u64> = (0..n).map(|k| get64(i, at + 8 * k)).collect();
        if pages.iter().any(|&p| p % HCA_PAGE as u64 != 0 || self.read(p, HCA_PAGE).is_none()) {
            return fail(CmdStatus::BadParam, syndrome::BAD_PAGE);
        }
        Ok(pages)
    }

    fn manage_pages(&mut self, op_mod: u32, i: &[u8], out: &mut [u8]) -> CmdResult {
        use CmdStatus::*;
        let n = get32(i, 0x0c) as usize;
        match op_mod as u16 {
            cmds::manage::GIVE => {
                if i.len() < 0x10 + 8 * n {
                    return fail(BadInputLen, syndrome::SHORT_INPUT);
                }
                let pages: Vec<u64> = (0..n).map(|k| get64(i, 0x10 + 8 * k)).collect();
                for &p in &pages {
                    if p % HCA_PAGE as u64 != 0
                        || self.owned.contains(&p)
                        || self.read(p, 8).is_none()
                        || self.read(p + HCA_PAGE as u64 - 8, 8).is_none()
                    {
                        return fail(BadParam, syndrome::BAD_PAGE);
                    }
                }
                self.owned.extend(pages);
            }
            cmds::manage::TAKE => {
                // The model gives back pages beyond what it needs, and everything once torn down.
                let keep =
                    if self.init_done { self.page_needs.iter().sum::<u32>() as usize } else { 0 };
                let spare = self.owned.len().saturating_sub(keep);
                let k = n.min(spare).min((out.len() - 0x10) / 8);
                let back: Vec<u64> = self.owned.iter().rev().take(k).copied().collect();
                for (j, p) in back.iter().enumerate() {
                    self.owned.remove(p);
                    put64(out, 0x10 + 8 * j, *p);
                }
                put32(out, 0x08, k as u32);
            }
            _ => return fail(BadParam, syndrome::UNSUPPORTED),
        }
        Ok(())
    }

    /// Posts a page-request event asking for `n` pages (negative: offering them back).
    pub fn request_pages(&mut self, n: i32) {
        self.page_needs[2] = (self.page_needs[2] as i32 + n).max(0) as u32;
        let Some((_, eq)) = self.eqs.iter_mut().next() else { return };
        let mut e = [0u8; 64];
        put_bits(&mut e, 0, 23, 16, cmds::EVENT_PAGE_REQUEST.into());
        put32(&mut e, 0x24, n as u32);
        let slot = eq.pi & ((1 << eq.ring.log_size) - 1);
        // Owner of pass p is p & 1 (the driver initialized every EQE to 1 = "not yet").
        e[0x3f] = ((eq.pi >> eq.ring.log_size) & 1) as u8;
        let at = eq.ring.addr(slot as usize * 64);
        let _ = self.iommu.write(at, &e);
        eq.pi += 1;
    }
}

impl Model {
    /// Writes a CQE into CQ `cqn` with the owner bit of its pass (or of the wrong pass if
    /// `bad_owner`). The CQE's `op_own` byte is filled in here; `b` holds the rest.
    pub fn push_cqe(&mut self, cqn: u32, mut b: [u8; 64], opcode: u8, bad_owner: bool) {
        let Some(cq) = self.cqs.get_mut(&cqn) else { return };
        let size = 1u32 << cq.ring.log_size;
        let ci = self.iommu.read_u32(cq.ring.dbr).map(u32::from_be).unwrap_or(0) & 0xff_ffff;
        if cq.pi.wrapping_sub(ci) >= size {
            self.cq_overruns += 1;
            return;
        }
        let owner = ((cq.pi >> cq.ring.log_size) & 1) as u8 ^ u8::from(bad_owner);
        b[0x3f] = (opcode << 4) | owner;
        let at = cq.ring.addr((cq.pi & (size - 1)) as usize * 64);
        let _ = self.iommu.write(at, &b);
        if !bad_owner {
            cq.pi += 1;
        }
    }

    fn uar_write(&mut self, off: u64, v: u64) {
        if off % uar::PAGE != uar::SEND_DOORBELL {
            return; // EQ/CQ doorbells: nothing to model
        }
        self.doorbells += 1;
        let ctrl = v.to_ne_bytes();
        let sqn = get32(&ctrl, 4) >> 8;
        self.run_sq(sqn);
    }

    /// Executes every WQE the SQ's doorbell record publishes.
    fn run_sq(&mut self, sqn: u32) {
        let Some(sq) = self.sqs.get(&sqn).cloned() else { return };
        if sq.state != cmds::state::RDY {
            return;
        }
        let pc = self.iommu.read_u32(sq.ring.dbr + 4).map(u32::from_be).unwrap_or(0) as u16;
        let size = 1u16 << sq.ring.log_size;
        let mut cc = sq.cc;
        while cc != pc {
            let wqe = |k: u16| {
                self.read(sq.ring.addr(usize::from((cc.wrapping_add(k)) & (size - 1)) * 64), 64)
            };
            let Some(first) = wqe(0) else { break };
            let ds = get_bits(&first, 4, 5, 0) as usize;
            let nbb = (ds * 16).div_ceil(64).max(1) as u16;
            let mut w = Vec::new();
            for k in 0..nbb {
                w.extend(wqe(k).unwrap_or_default());
            }
            let op = get_bits(&w, 0, 7, 0) as u8;
            let idx = get_bits(&w, 0, 23, 8) as u16;
            let ce = get_bits(&w, 8, 3, 2) == 2;
            let mut err = (idx != cc).then_some(0x02u8); // local QP operation error
            let mut frame = Vec::new();
            let (mut csf, mut mss, mut inl) = (0, 0, 0);
            if err.is_none() && (op == opcode::SEND || op == opcode::LSO) && ds >= 2 {
                let e = 16;
                csf = w[e + 4];
                mss = get_be16(&w, e + 6);
                inl = get_be16(&w, e + 0x0c);
                let inl_end = e + 0x0e + usize::from(inl);
                if inl_end > ds * 16 {
                    err = Some(0x01); // local length error
                } else {
                    frame.extend_from_slice(&w[e + 0x0e..inl_end]);
                    let mut d = inl_end.next_multiple_of(16).max(32);
                    while d + 16 <= ds * 16 {
                        let (len, lkey, addr) = (get32(&w, d), get32(&w, d + 4), get64(&w, d + 8));
                        if lkey != self.resd_lkey {
                            err = Some(0x04); // local protection error
                            break;
                        }
                        match self.read(addr, len as usize) {
                            Some(b) => frame.extend(b),
                            None => {
                                err = Some(0x04);
                                break;
                            }
                        }
                        d += 16;
                    }
                }
            } else if err.is_none() && op != opcode::NOP {
                err = Some(0x02);
            }
            if let Some(s) = err {
                let mut c = [0u8; 64];
                put32(&mut c, cqe::ERR_SYNDROME, u32::from(s));
                put32(&mut c, cqe::QPN, sqn);
                put32(&mut c, cqe::TAIL, u32::from(cc) << 16);
                self.push_cqe(sq.cqn, c, cqe_op::REQ_ERR, false);
                if let Some(q) = self.sqs.get_mut(&sqn) {
                    q.state = cmds::state::ERR;
                    q.cc = cc.wrapping_add(nbb);
                }
                return;
            }
            if op != opcode::NOP {
                self.tx_records.push(TxRecord { opcode: op, cs_flags: csf, mss, inline: inl, sqn });
                let frames = if op == opcode::LSO {
                    segment(&frame, inl.into(), mss.into())
                } else {
                    vec![frame]
                };
                for mut f in frames {
                    fill_checksums(&mut f, csf);
                    if self.loopback {
                        self.inject(&f);
                    }
                    self.sent.push(f);
                }
            }
            if ce {
                let mut c = [0u8; 64];
                put32(&mut c, cqe::QPN, sqn);
                put32(&mut c, cqe::TAIL, u32::from(cc) << 16);
                self.push_cqe(sq.cqn, c, cqe_op::REQ, false);
            }
            cc = cc.wrapping_add(nbb);
        }
        if let Some(q) = self.sqs.get_mut(&sqn) {
            q.cc = cc;
        }
    }

    /// A frame arrives from the wire: flow table (destination MAC) → TIR → RQT (Toeplitz) →
    /// RQ → receive WQE → CQE. Returns the RQ number it landed in.
    pub fn inject(&mut self, f: &[u8]) -> Option<u32> {
        let dmac: [u8; 6] = f.get(..6)?.try_into().ok()?;
        let root = self.root?;
        let Some(&(_, tirn)) =
            self.entries.iter().find(|(k, v)| k.0 == root && v.0 == dmac).map(|(_, v)| v)
        else {
            self.rx_unmatched += 1;
            return None;
        };
        let tir = self.tirs.get(&tirn)?.clone();
        let (rqn, hash) = match tir.rqt {
            None => (tir.rqn, 0),
            Some(t) => {
                let list = self.rqts.get(&t)?;
                let h = if tir.toeplitz {
                    rss_input(f).map(|i| toeplitz(&tir.key, &i)).unwrap_or(0)
                } else {
                    0
                };
                (list[h as usize % list.len()], h)
            }
        };
        let rq = self.rqs.get(&rqn)?.clone();
        if rq.state != cmds::state::RDY {
            return None;
        }
        let posted = self.iommu.read_u32(rq.ring.dbr).map(u32::from_be).unwrap_or(0) as u16;
        if posted == rq.cc {
            self.rx_no_wqe += 1;
            return None;
        }
        let size = 1u16 << rq.ring.log_size;
        let seg = self.read(rq.ring.addr(usize::from(rq.cc & (size - 1)) * 16), 16)?;
        let (len, lkey, addr) = (get32(&seg, 0), get32(&seg, 4), get64(&seg, 8));
        let mut c = [0u8; 64];
        put32(&mut c, cqe::QPN, rqn);
        put32(&mut c, cqe::TAIL, u32::from(rq.cc) << 16);
        if f.len() > len as usize || lkey != self.resd_lkey || self.iommu.write(addr, f).is_err() {
            put32(&mut c, cqe::ERR_SYNDROME, 0x01);
            self.push_cqe(rq.cqn, c, cqe_op::RESP_ERR, false);
        } else {
            put32(&mut c, cqe::BYTE_CNT, f.len() as u32);
            put32(&mut c, cqe::RSS_HASH, hash);
            put32(&mut c, cqe::FLAGS_WORD, rx_flags(f));
            self.push_cqe(rq.cqn, c, cqe_op::RESP_SEND, false);
        }
        if let Some(q) = self.rqs.get_mut(&rqn) {
            q.cc = q.cc.wrapping_add(1);
        }
        *self.rx_per_rq.entry(rqn).or_default() += 1;
        Some(rqn)
    }
}

// ---- What the HCA computes: checksums, segmentation, RSS hash ----

fn sum16(b: &[u8], mut acc: u32) -> u32 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// `(l3 start, l4 start, proto, ipv4)` of an untagged IPv4 frame.
fn ipv4(f: &[u8]) -> Option<(usize, usize, u8)> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(f[14] & 0xf) * 4;
    (ihl >= 20 && f.len() >= 14 + ihl).then_some((14, 14 + ihl, f[23]))
}

fn l4_sum(f: &[u8], l3: usize, l4: usize, proto: u8) -> u32 {
    let tot = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]])).min(f.len() - l3);
    let l4len = tot.saturating_sub(l4 - l3);
    let mut s = sum16(&f[l3 + 12..l3 + 20], 0);
    s += u32::from(proto) + l4len as u32;
    sum16(&f[l4..l4 + l4len], s)
}

/// Fills the checksums `cs_flags` asks for (computed from scratch, as the HCA does).
fn fill_checksums(f: &mut [u8], flags: u8) {
    let Some((l3, l4, proto)) = ipv4(f) else { return };
    if flags & cs::L3 != 0 {
        f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
        let c = fold(sum16(&f[l3..l4], 0));
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    let off = match proto {
        6 => 16,
        17 => 6,
        _ => return,
    };
    if flags & cs::L4 != 0 && f.len() >= l4 + off + 2 {
        f[l4 + off..l4 + off + 2].copy_from_slice(&[0, 0]);
        let c = fold(l4_sum(f, l3, l4, proto));
        f[l4 + off..l4 + off + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// The CQE flags word for a received frame: `l4_ok`/`l3_ok`/`l2_ok` (31:24), `l4_hdr_type`
/// (22:20), `l3_hdr_type` (19:18) — the checksums are really verified.
fn rx_flags(f: &[u8]) -> u32 {
    let Some((l3, l4, proto)) = ipv4(f) else { return 1 << 24 };
    let l3_ok = fold(sum16(&f[l3..l4], 0)) == 0;
    let l4_type = match proto {
        6 => 1,
        17 => 2,
        _ => 0,
    };
    let l4_ok = l4_type != 0 && fold(l4_sum(f, l3, l4, proto)) == 0;
    (u32::from(l4_ok) << 26) | (u32::from(l3_ok) << 25) | (1 << 24) | (l4_type << 20) | (2 << 18)
}

/// LSO: cuts an IPv4/TCP frame with `hdr` header bytes into `mss`-byte segments.
fn segment(f: &[u8], hdr: usize, mss: usize) -> Vec<Vec<u8>> {
    let Some((l3, l4, 6)) = ipv4(f) else { return vec![f.to_vec()] };
    if mss == 0 || hdr > f.len() {
        return vec![f.to_vec()];
    }
    let payload = &f[hdr..];
    let seq = u32::from_be_bytes([f[l4 + 4], f[l4 + 5], f[l4 + 6], f[l4 + 7]]);
    let id = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]);
    let chunks: Vec<&[u8]> = payload.chunks(mss).collect();
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut s = f[..hdr].to_vec();
            s.extend_from_slice(c);
            let tot = (s.len() - l3) as u16;
            s[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
            s[l3 + 4..l3 + 6].copy_from_slice(&id.wrapping_add(k as u16).to_be_bytes());
            s[l4 + 4..l4 + 8].copy_from_slice(&seq.wrapping_add((k * mss) as u32).to_be_bytes());
            if k + 1 < n {
                s[l4 + 13] &= !0x09; // FIN and PSH only on the last segment
            }
            s
        })
        .collect()
}

/// The Toeplitz input for IPv4 (+ TCP/UDP ports).
fn rss_input(f: &[u8]) -> Option<Vec<u8>> {
    let (l3, l4, proto) = ipv4(f)?;
    let mut v = f[l3 + 12..l3 + 20].to_vec();
    if (proto == 6 || proto == 17) && f.len() >= l4 + 4 {
        v.extend_from_slice(&f[l4..l4 + 4]);
    }
    Some(v)
}

/// The Toeplitz hash (Microsoft RSS specification).
pub fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut h = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (next, &byte) in (4..).zip(input.iter()) {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                h ^= window;
            }
            let kb = key.get(next).copied().unwrap_or(0);
            window = (window << 1) | u32::from((kb >> bit) & 1);
        }
    }
    h
}

struct FakeBar(Arc<Mutex<Model>>);

impl Mmio for FakeBar {
    fn len(&self) -> u64 {
        BAR_LEN
    }

    fn read(&self, off: u64, _w: Width) -> u64 {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let v: u32 = match off {
            iseg::FW_REV => (22 << 16) | 16,
            iseg::CMDIF_REV_FW_SUB => (u32::from(m.cmdif_rev) << 16) | 1000,
            iseg::CMDQ_ADDR_LO => {
                (m.cmdq.unwrap_or(0) as u32 & !0xfff) | (u32::from(m.log_cmdq_size) << 4) | 6
            }
            iseg::CMDQ_ADDR_HI => (m.cmdq.unwrap_or(0) >> 32) as u32,
            iseg::INITIALIZING if m.init_reads > 0 => {
                m.init_reads -= 1;
                iseg::INITIALIZING_BIT
            }
            _ => 0,
        };
        u64::from(v.to_be())
    }

    fn write(&self, off: u64, w: Width, v: u64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if off >= uar::PAGE {
            if w == Width::W64 {
                m.uar_write(off, v);
            }
            return;
        }
        let v = u32::from_be(v as u32);
        match off {
            iseg::CMDQ_ADDR_HI => m.cmdq = Some(u64::from(v) << 32),
            iseg::CMDQ_ADDR_LO => {
                m.cmdq = Some(m.cmdq.unwrap_or(0) | u64::from(v & !0xfff));
                m.init_reads = 2; // firmware takes a moment to start the command interface
            }
            iseg::CMD_DOORBELL => m.doorbell(v),
            _ => {}
        }
    }
}

/// The fake HCA behind a fake VFIO system.
pub struct FakeHca {
    /// The fake VFIO system (with its IOMMU).
    pub sys: Arc<FakeSys>,
    model: Arc<Mutex<Model>>,
}

impl FakeHca {
    /// A ConnectX-5 (15b3:1017) model.
    pub fn new() -> FakeHca {
        Self::with_id(0x1017)
    }

    /// A model with PCI device ID `device`.
    pub fn with_id(device: u16) -> FakeHca {
        let mut config = vec![0u8; 256];
        config[0..2].copy_from_slice(&prm::VENDOR_MELLANOX.to_le_bytes());
        config[2..4].copy_from_slice(&device.to_le_bytes());
        let placeholder = Arc::new(FakeIommu::default());
        let model = Arc::new(Mutex::new(Model::new(placeholder)));
        let m2 = model.clone();
        let dev = FakeDevice {
            bdf: BDF.into(),
            group: 11,
            viable: true,
            config,
            bars: vec![(
                0,
                BAR_LEN,
                Arc::new(move || Box::new(FakeBar(m2.clone())) as Box<dyn Mmio>),
            )],
            msix: 4,
            resettable: true,
        };
        let sys = Arc::new(FakeSys::new(vec![dev]));
        model.lock().unwrap_or_else(|e| e.into_inner()).iommu = sys.iommu();
        FakeHca { sys, model }
    }

    /// Opens the device through the fake VFIO system.
    pub fn device(&self) -> Device {
        Device::open(self.sys.clone(), BDF, IovaSpace::default()).expect("fake device opens")
    }

    /// The model.
    pub fn m(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for FakeHca {
    fn default() -> Self {
        Self::new()
    }
}
