//! Typed builders and parsers of the firmware commands this driver uses (PRM §"Command
//! Reference"). A builder returns a [`Cmd`]: the input bytes and the output length the PRM
//! gives for it. A parser takes the output the command queue returned (status already checked)
//! and validates every value it extracts: the device is not trusted.

use crate::error::CmdError;
use crate::prm::{get32, get64, get_bits, op, put32, put64, put_bits};

/// One command: its input and the length of its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    /// Input bytes (opcode in the first word).
    pub input: Vec<u8>,
    /// Output length in bytes.
    pub out_len: usize,
}

impl Cmd {
    /// The opcode.
    pub fn opcode(&self) -> u16 {
        get_bits(&self.input, 0, 31, 16) as u16
    }
}

/// PRM §"Command Reference": every input starts with `opcode` (31:16) | `uid` (15:0) and
/// `op_mod` (15:0) in the second word.
fn hdr(opcode: u16, op_mod: u16, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    put32(&mut b, 0x00, u32::from(opcode) << 16);
    put32(&mut b, 0x04, u32::from(op_mod));
    b
}

fn cmd(input: Vec<u8>, out_len: usize) -> Cmd {
    Cmd { input, out_len }
}

/// A 24-bit object number from word `off` of an output (PRM: object numbers are 24 bits).
fn id24(out: &[u8], off: usize) -> u32 {
    get_bits(out, off, 23, 0)
}

fn need(out: &[u8], len: usize, opcode: u16) -> Result<(), CmdError> {
    if out.len() < len {
        return Err(CmdError::BadOutput { opcode, what: "output shorter than the PRM layout" });
    }
    Ok(())
}

// ---- HCA life cycle (PRM §"HCA Driver Start-up", §"HCA Driver Teardown") ----

/// ENABLE_HCA (0x104), PRM Table "ENABLE_HCA Input Structure": `function_id` 0 (ourselves).
pub fn enable_hca() -> Cmd {
    cmd(hdr(op::ENABLE_HCA, 0, 0x10), 0x10)
}

/// DISABLE_HCA (0x105).
pub fn disable_hca() -> Cmd {
    cmd(hdr(op::DISABLE_HCA, 0, 0x10), 0x10)
}

/// QUERY_ISSI (0x10a): output has `current_issi` (0x08, 15:0) and the `supported_issi` bit
/// mask whose last word (0x6c) holds ISSIs 0..31.
pub fn query_issi() -> Cmd {
    cmd(hdr(op::QUERY_ISSI, 0, 0x10), 0x70)
}

/// QUERY_ISSI output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Issi {
    /// The interface step sequence ID in force.
    pub current: u16,
    /// Bit *i*: ISSI *i* supported.
    pub supported: u32,
}

/// Parses QUERY_ISSI.
pub fn parse_query_issi(out: &[u8]) -> Result<Issi, CmdError> {
    need(out, 0x70, op::QUERY_ISSI)?;
    Ok(Issi { current: get_bits(out, 0x08, 15, 0) as u16, supported: get32(out, 0x6c) })
}

/// SET_ISSI (0x10b): `current_issi` at 0x08 (15:0).
pub fn set_issi(issi: u16) -> Cmd {
    let mut b = hdr(op::SET_ISSI, 0, 0x10);
    put_bits(&mut b, 0x08, 15, 0, issi.into());
    cmd(b, 0x10)
}

/// Which pages QUERY_PAGES asks about (its `op_mod`, PRM Table "QUERY_PAGES Input Structure").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// Pages needed before INIT_HCA can start.
    Boot = 1,
    /// Pages needed by INIT_HCA.
    Init = 2,
    /// Pages needed for normal operation.
    Regular = 3,
}

/// QUERY_PAGES (0x107).
pub fn query_pages(kind: PageKind) -> Cmd {
    cmd(hdr(op::QUERY_PAGES, kind as u16, 0x10), 0x10)
}

/// Parses QUERY_PAGES: `num_pages` (0x0c) is signed — negative means the HCA has pages to
/// give back. Values beyond ±1 Mi pages (4 GiB) are rejected as implausible.
pub fn parse_query_pages(out: &[u8]) -> Result<i32, CmdError> {
    need(out, 0x10, op::QUERY_PAGES)?;
    let n = get32(out, 0x0c) as i32;
    if n.unsigned_abs() > 1 << 20 {
        return Err(CmdError::BadOutput { opcode: op::QUERY_PAGES, what: "num_pages implausible" });
    }
    Ok(n)
}

/// MANAGE_PAGES `op_mod` (PRM Table "MANAGE_PAGES Input Structure").
pub mod manage {
    /// The driver could not allocate what was asked.
    pub const ALLOC_FAIL: u16 = 0;
    /// The driver gives pages (`pas` lists them).
    pub const GIVE: u16 = 1;
    /// The driver asks for pages back.
    pub const TAKE: u16 = 2;
}

/// MANAGE_PAGES (0x108) giving `pages` (device addresses, 4 KiB aligned): `input_num_entries`
/// at 0x0c, the `pas` array from 0x10.
pub fn manage_pages_give(pages: &[u64]) -> Cmd {
    let mut b = hdr(op::MANAGE_PAGES, manage::GIVE, 0x10 + 8 * pages.len());
    put32(&mut b, 0x0c, pages.len() as u32);
    for (i, &p) in pages.iter().enumerate() {
        put64(&mut b, 0x10 + 8 * i, p);
    }
    cmd(b, 0x10)
}

/// MANAGE_PAGES asking for up to `n` pages back; the output lists them.
pub fn manage_pages_take(n: u32) -> Cmd {
    let mut b = hdr(op::MANAGE_PAGES, manage::TAKE, 0x10);
    put32(&mut b, 0x0c, n);
    cmd(b, 0x10 + 8 * n as usize)
}

/// Parses a MANAGE_PAGES take: `output_num_entries` (0x08) must not exceed what was asked,
/// and each address must be 4 KiB aligned.
pub fn parse_manage_pages_take(out: &[u8], asked: u32) -> Result<Vec<u64>, CmdError> {
    let bad = |what| CmdError::BadOutput { opcode: op::MANAGE_PAGES, what };
    need(out, 0x10, op::MANAGE_PAGES)?;
    let n = get32(out, 0x08);
    if n > asked || out.len() < 0x10 + 8 * n as usize {
        return Err(bad("more pages returned than asked for"));
    }
    let pages: Vec<u64> = (0..n as usize).map(|i| get64(out, 0x10 + 8 * i)).collect();
    if pages.iter().any(|p| p % crate::prm::HCA_PAGE as u64 != 0) {
        return Err(bad("returned page not 4 KiB aligned"));
    }
    Ok(pages)
}

/// Capability types (`op_mod` bits 15:1 of QUERY_HCA_CAP / SET_HCA_CAP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapType {
    /// General device capabilities (PRM Table "HCA Capabilities Layout").
    General = 0,
    /// Ethernet offloads (PRM Table "Per Protocol Networking Offload Capabilities").
    EthOffload = 1,
}

/// Size of a capability structure.
pub const CAP_LEN: usize = 0x1000;

/// QUERY_HCA_CAP (0x100): `op_mod` = type << 1 | 1 for current values (0 for maxima).
pub fn query_hca_cap(t: CapType, current: bool) -> Cmd {
    cmd(hdr(op::QUERY_HCA_CAP, ((t as u16) << 1) | u16::from(current), 0x10), 0x10 + CAP_LEN)
}

/// The capability structure from a QUERY_HCA_CAP output.
pub fn parse_query_hca_cap(out: &[u8]) -> Result<Vec<u8>, CmdError> {
    need(out, 0x10 + CAP_LEN, op::QUERY_HCA_CAP)?;
    Ok(out[0x10..0x10 + CAP_LEN].to_vec())
}

/// SET_HCA_CAP (0x109) with a whole capability structure at 0x10.
pub fn set_hca_cap(t: CapType, cap: &[u8]) -> Cmd {
    let mut b = hdr(op::SET_HCA_CAP, (t as u16) << 1, 0x10 + CAP_LEN);
    let n = cap.len().min(CAP_LEN);
    b[0x10..0x10 + n].copy_from_slice(&cap[..n]);
    cmd(b, 0x10)
}

/// Fields of the capability structures the driver reads or sets, as `(word offset, hi, lo)`.
pub mod cap {
    /// General: `log_max_cq_sz`.
    pub const LOG_MAX_CQ_SZ: (usize, u32, u32) = (0x18, 23, 16);
    /// General: `log_max_eq_sz`.
    pub const LOG_MAX_EQ_SZ: (usize, u32, u32) = (0x1c, 31, 24);
    /// General: `cmdif_checksum` (0: the driver does not compute command signatures).
    pub const CMDIF_CHECKSUM: (usize, u32, u32) = (0x6c, 15, 14);
    /// General: `log_uar_page_sz` (0: 4 KiB UAR pages).
    pub const LOG_UAR_PAGE_SZ: (usize, u32, u32) = (0x90, 15, 0);
    /// Ethernet: `csum_cap` (checksum offloads).
    pub const ETH_CSUM: (usize, u32, u32) = (0x00, 31, 31);
    /// Ethernet: `max_lso_cap` (log2 of the largest LSO message; 0: no LSO).
    pub const ETH_MAX_LSO: (usize, u32, u32) = (0x00, 20, 16);
    /// Ethernet: `wqe_inline_mode` (0: L2 headers inline; 1: per vport context; 2: none).
    pub const ETH_INLINE_MODE: (usize, u32, u32) = (0x00, 13, 12);
    /// Ethernet: `rss_ind_tbl_cap` (log2 of the largest RQ table).
    pub const ETH_RSS_IND_TBL: (usize, u32, u32) = (0x00, 11, 8);

    /// Reads a field.
    pub fn get(cap: &[u8], f: (usize, u32, u32)) -> u32 {
        crate::prm::get_bits(cap, f.0, f.1, f.2)
    }

    /// Writes a field.
    pub fn set(cap: &mut [u8], f: (usize, u32, u32), v: u32) {
        crate::prm::put_bits(cap, f.0, f.1, f.2, v)
    }
}

/// INIT_HCA (0x102).
pub fn init_hca() -> Cmd {
    cmd(hdr(op::INIT_HCA, 0, 0x10), 0x10)
}

/// TEARDOWN_HCA (0x103), `profile` 0 = graceful close (0x08, 15:0).
pub fn teardown_hca() -> Cmd {
    cmd(hdr(op::TEARDOWN_HCA, 0, 0x10), 0x10)
}

// ---- Resources (PRM §"Resource Allocation") ----

/// ALLOC_UAR (0x802): output `uar` at 0x08.
pub fn alloc_uar() -> Cmd {
    cmd(hdr(op::ALLOC_UAR, 0, 0x10), 0x10)
}

/// ALLOC_PD (0x800): output `pd` at 0x08.
pub fn alloc_pd() -> Cmd {
    cmd(hdr(op::ALLOC_PD, 0, 0x10), 0x10)
}

/// ALLOC_TRANSPORT_DOMAIN (0x816): output `transport_domain` at 0x08.
pub fn alloc_transport_domain() -> Cmd {
    cmd(hdr(op::ALLOC_TRANSPORT_DOMAIN, 0, 0x10), 0x10)
}

/// The 24-bit object number every ALLOC_* / CREATE_* output carries at 0x08.
pub fn parse_object(out: &[u8], opcode: u16) -> Result<u32, CmdError> {
    need(out, 0x10, opcode)?;
    Ok(id24(out, 0x08))
}

/// QUERY_SPECIAL_CONTEXTS (0x203): `resd_lkey` at 0x0c, the key that lets WQE data segments
/// name bus addresses directly (behind VFIO: our IOVAs).
pub fn query_special_contexts() -> Cmd {
    cmd(hdr(op::QUERY_SPECIAL_CONTEXTS, 0, 0x10), 0x20)
}

/// Parses QUERY_SPECIAL_CONTEXTS: the reserved lkey.
pub fn parse_special_contexts(out: &[u8]) -> Result<u32, CmdError> {
    need(out, 0x10, op::QUERY_SPECIAL_CONTEXTS)?;
    Ok(get32(out, 0x0c))
}

/// Destroys / deallocates an object named by a 24-bit number at 0x08 (DEALLOC_PD, DEALLOC_UAR,
/// DEALLOC_TRANSPORT_DOMAIN, DESTROY_EQ/CQ/TIS/SQ/RQ/RQT/TIR).
pub fn destroy(opcode: u16, id: u32) -> Cmd {
    let mut b = hdr(opcode, 0, 0x10);
    put_bits(&mut b, 0x08, 23, 0, id);
    cmd(b, 0x10)
}

/// QUERY_NIC_VPORT_CONTEXT (0x754) for our own vport: the context (0x100 bytes) at 0x10.
pub fn query_nic_vport_context() -> Cmd {
    cmd(hdr(op::QUERY_NIC_VPORT_CONTEXT, 0, 0x10), 0x110)
}

/// What the NIC vport context says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VportContext {
    /// `permanent_address`: the MAC (context offset 0xf8, the low 6 bytes of 8).
    pub mac: [u8; 6],
    /// `mtu` (context 0x24, 15:0): the port MTU including the Ethernet header.
    pub mtu: u16,
    /// `min_wqe_inline_mode` (context 0x00, 26:24).
    pub min_inline_mode: u8,
}

/// Offset of the context in the output.
const VPORT_CTX: usize = 0x10;

/// Parses QUERY_NIC_VPORT_CONTEXT; a multicast or all-zero MAC is rejected.
pub fn parse_nic_vport_context(out: &[u8]) -> Result<VportContext, CmdError> {
    need(out, 0x110, op::QUERY_NIC_VPORT_CONTEXT)?;
    let a = VPORT_CTX + 0xf8 + 2;
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&out[a..a + 6]);
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(CmdError::BadOutput {
            opcode: op::QUERY_NIC_VPORT_CONTEXT,
            what: "permanent address is not a unicast MAC",
        });
    }
    Ok(VportContext {
        mac,
        mtu: get_bits(out, VPORT_CTX + 0x24, 15, 0) as u16,
        min_inline_mode: get_bits(out, VPORT_CTX, 26, 24) as u8,
    })
}

/// Writes a NIC vport context into a QUERY_NIC_VPORT_CONTEXT output (the fake HCA answers with
/// it; kept beside the parser so both use one layout).
pub fn emit_nic_vport_context(out: &mut [u8], v: &VportContext) {
    let a = VPORT_CTX + 0xf8 + 2;
    out[a..a + 6].copy_from_slice(&v.mac);
    put_bits(out, VPORT_CTX + 0x24, 15, 0, v.mtu.into());
    put_bits(out, VPORT_CTX, 26, 24, v.min_inline_mode.into());
}

/// QUERY_VPORT_STATE (0x750): `state` (0x0c, 3:0), 1 = up.
pub fn query_vport_state() -> Cmd {
    cmd(hdr(op::QUERY_VPORT_STATE, 0, 0x10), 0x10)
}

/// Parses QUERY_VPORT_STATE: whether the link is up.
pub fn parse_vport_state(out: &[u8]) -> Result<bool, CmdError> {
    need(out, 0x10, op::QUERY_VPORT_STATE)?;
    Ok(get_bits(out, 0x0c, 3, 0) == 1)
}

// ---- Queues (PRM §"Event Queues", §"Completion Queues", §"Send Queue", §"Receive Queue") ----

/// Offset of the `pas` array in CREATE_EQ and CREATE_CQ inputs.
pub const EQ_CQ_PAS: usize = 0x110;
/// Offset of the context in CREATE_EQ / CREATE_CQ inputs.
pub const EQ_CQ_CTX: usize = 0x10;
/// Event type of a page request (PRM Table "Event Types": 0xb).
pub const EVENT_PAGE_REQUEST: u8 = 0x0b;

fn pas_list(b: &mut [u8], at: usize, base: u64, pages: usize) {
    for i in 0..pages {
        put64(b, at + 8 * i, base + (i * crate::prm::HCA_PAGE) as u64);
    }
}

/// CREATE_EQ (0x301), PRM Table "EQ Context Format": `log_eq_size` (0x0c, 28:24), `uar_page`
/// (0x0c, 23:0), `log_page_size` (0x18, 28:24, in 4 KiB units: 0), `event_bitmask` at 0x58.
pub fn create_eq(uar: u32, log_size: u8, base: u64, pages: usize, events: u64) -> Cmd {
    let mut b = hdr(op::CREATE_EQ, 0, EQ_CQ_PAS + 8 * pages);
    put_bits(&mut b, EQ_CQ_CTX + 0x0c, 28, 24, log_size.into());
    put_bits(&mut b, EQ_CQ_CTX + 0x0c, 23, 0, uar);
    put64(&mut b, 0x58, events);
    pas_list(&mut b, EQ_CQ_PAS, base, pages);
    cmd(b, 0x10)
}

/// Parses CREATE_EQ: `eq_number` (0x08, 7:0).
pub fn parse_create_eq(out: &[u8]) -> Result<u8, CmdError> {
    need(out, 0x10, op::CREATE_EQ)?;
    Ok(get_bits(out, 0x08, 7, 0) as u8)
}

/// CREATE_CQ (0x400), PRM Table "Completion Queue Context Format": `cqe_sz` 0 (64 bytes),
/// `log_cq_size` (0x0c, 28:24), `uar_page` (0x0c, 23:0), `c_eqn` (0x14, 7:0), `log_page_size`
/// (0x18, 28:24), `dbr_addr` (0x38).
pub fn create_cq(uar: u32, log_size: u8, eqn: u8, base: u64, pages: usize, dbr: u64) -> Cmd {
    let mut b = hdr(op::CREATE_CQ, 0, EQ_CQ_PAS + 8 * pages);
    put_bits(&mut b, EQ_CQ_CTX + 0x0c, 28, 24, log_size.into());
    put_bits(&mut b, EQ_CQ_CTX + 0x0c, 23, 0, uar);
    put_bits(&mut b, EQ_CQ_CTX + 0x14, 7, 0, eqn.into());
    put64(&mut b, EQ_CQ_CTX + 0x38, dbr);
    pas_list(&mut b, EQ_CQ_PAS, base, pages);
    cmd(b, 0x10)
}

/// Offset of the context in the TIS/SQ/RQ/RQT/TIR create and modify inputs.
pub const OBJ_CTX: usize = 0x20;
/// Offset of the WQ structure inside the SQ and RQ contexts.
pub const CTX_WQ: usize = 0x30;

/// CREATE_TIS (0x912), PRM Table "TIS Context Format": `transport_domain` (0x24, 23:0).
pub fn create_tis(td: u32) -> Cmd {
    let mut b = hdr(op::CREATE_TIS, 0, OBJ_CTX + 0xa0);
    put_bits(&mut b, OBJ_CTX + 0x24, 23, 0, td);
    cmd(b, 0x10)
}

/// Where a work queue lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WqSpec {
    /// Protection domain.
    pub pd: u32,
    /// UAR page (send queues ring their doorbell there).
    pub uar: u32,
    /// Device address of the doorbell record.
    pub dbr: u64,
    /// log2 of the entry stride in bytes (6 for send, 4 for receive).
    pub log_stride: u8,
    /// log2 of the number of entries.
    pub log_size: u8,
    /// Device address of the buffer (4 KiB aligned, contiguous).
    pub base: u64,
    /// 4 KiB pages of the buffer.
    pub pages: usize,
}

/// PRM Table "Work Queue Format": `wq_type` (0x00, 31:28) 1 = cyclic, `pd` (0x08), `uar_page`
/// (0x0c), `dbr_addr` (0x10), `log_wq_stride` (0x20, 19:16), `log_wq_pg_sz` (0x20, 12:8; 0 =
/// 4 KiB), `log_wq_sz` (0x20, 4:0), `pas` from 0xc0.
fn put_wq(b: &mut [u8], at: usize, w: &WqSpec) {
    put_bits(b, at, 31, 28, 1);
    put_bits(b, at + 0x08, 23, 0, w.pd);
    put_bits(b, at + 0x0c, 23, 0, w.uar);
    put64(b, at + 0x10, w.dbr);
    put_bits(b, at + 0x20, 19, 16, w.log_stride.into());
    put_bits(b, at + 0x20, 4, 0, w.log_size.into());
    pas_list(b, at + crate::prm::wq::WQ_PAS, w.base, w.pages);
}

/// Queue states (PRM Table "SQ Context Format" / "RQ Context Format" `state`).
pub mod state {
    /// Reset.
    pub const RST: u32 = 0;
    /// Ready.
    pub const RDY: u32 = 1;
    /// Error.
    pub const ERR: u32 = 3;
}

/// CREATE_SQ (0x904), PRM Table "SQ Context Format": `rlky` (0x00, 31) lets the reserved lkey
/// be used, `flush_in_error_en` (28), `min_wqe_inline_mode` (26:24), `cqn` (0x08),
/// `tis_lst_sz` (0x20, 31:16) = 1, `tis_num_0` (0x2c), the WQ at 0x30.
pub fn create_sq(cqn: u32, tisn: u32, inline_mode: u8, wq: &WqSpec) -> Cmd {
    let len = OBJ_CTX + CTX_WQ + crate::prm::wq::WQ_PAS + 8 * wq.pages;
    let mut b = hdr(op::CREATE_SQ, 0, len);
    let c = OBJ_CTX;
    put_bits(&mut b, c, 31, 31, 1);
    put_bits(&mut b, c, 28, 28, 1);
    put_bits(&mut b, c, 26, 24, inline_mode.into());
    put_bits(&mut b, c + 0x08, 23, 0, cqn);
    put_bits(&mut b, c + 0x20, 31, 16, 1);
    put_bits(&mut b, c + 0x2c, 23, 0, tisn);
    put_wq(&mut b, c + CTX_WQ, wq);
    cmd(b, 0x10)
}

/// CREATE_RQ (0x908), PRM Table "RQ Context Format": `rlky` (0x00, 31), `vsd` (28: VLAN
/// stripping off), `mem_rq_type` 0 (inline), `flush_in_error_en` (18), `cqn` (0x08), WQ at 0x30.
pub fn create_rq(cqn: u32, wq: &WqSpec) -> Cmd {
    let len = OBJ_CTX + CTX_WQ + crate::prm::wq::WQ_PAS + 8 * wq.pages;
    let mut b = hdr(op::CREATE_RQ, 0, len);
    let c = OBJ_CTX;
    put_bits(&mut b, c, 31, 31, 1);
    put_bits(&mut b, c, 28, 28, 1);
    put_bits(&mut b, c, 18, 18, 1);
    put_bits(&mut b, c + 0x08, 23, 0, cqn);
    put_wq(&mut b, c + CTX_WQ, wq);
    cmd(b, 0x10)
}

/// MODIFY_SQ (0x905) / MODIFY_RQ (0x909): current state (0x08, 31:28) and number (0x08, 23:0),
/// the new state in the context (`state`, 0x00, 23:20).
pub fn modify_queue(opcode: u16, id: u32, from: u32, to: u32) -> Cmd {
    let mut b = hdr(opcode, 0, OBJ_CTX + CTX_WQ + crate::prm::wq::WQ_PAS);
    put_bits(&mut b, 0x08, 31, 28, from);
    put_bits(&mut b, 0x08, 23, 0, id);
    put_bits(&mut b, OBJ_CTX, 23, 20, to);
    cmd(b, 0x10)
}

/// Offset of the RQ list in the RQT context (PRM Table "RQT Context Format").
pub const RQT_LIST: usize = 0xf0;

/// CREATE_RQT (0x916): `rqt_max_size` (0x14, 15:0), `rqt_actual_size` (0x18, 15:0), `rq_num`
/// list at 0xf0.
pub fn create_rqt(rqns: &[u32]) -> Cmd {
    let mut b = hdr(op::CREATE_RQT, 0, OBJ_CTX + RQT_LIST + 4 * rqns.len());
    put_bits(&mut b, OBJ_CTX + 0x14, 15, 0, rqns.len() as u32);
    put_bits(&mut b, OBJ_CTX + 0x18, 15, 0, rqns.len() as u32);
    for (i, &r) in rqns.iter().enumerate() {
        put_bits(&mut b, OBJ_CTX + RQT_LIST + 4 * i, 23, 0, r);
    }
    cmd(b, 0x10)
}

/// RSS hash fields (PRM Table "RX Hash Field Select": `selected_fields`).
pub mod hash_field {
    /// Source IP.
    pub const SRC_IP: u32 = 1 << 0;
    /// Destination IP.
    pub const DST_IP: u32 = 1 << 1;
    /// L4 source port.
    pub const L4_SPORT: u32 = 1 << 2;
    /// L4 destination port.
    pub const L4_DPORT: u32 = 1 << 3;
}

/// The Toeplitz key (Microsoft's RSS verification key, the one every NIC documents).
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// How a TIR dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TirDispatch {
    /// Everything to one RQ.
    Direct(u32),
    /// Toeplitz hash over IPv4 addresses and TCP ports into an RQ table.
    Rss(u32),
}

/// CREATE_TIR (0x900), PRM Table "TIR Context Format": `disp_type` (0x04, 31:28; 0 direct, 1
/// indirect), `inline_rqn` (0x1c), `indirect_table` (0x20, 23:0), `rx_hash_fn` (0x24, 31:28; 2
/// Toeplitz), `transport_domain` (0x24, 23:0), `rx_hash_toeplitz_key` (0x28, 40 bytes),
/// `rx_hash_field_selector_outer` (0x50: `l3_prot_type` 31, `l4_prot_type` 30, fields 29:0).
pub fn create_tir(td: u32, disp: TirDispatch) -> Cmd {
    let mut b = hdr(op::CREATE_TIR, 0, OBJ_CTX + 0xf0);
    let c = OBJ_CTX;
    put_bits(&mut b, c + 0x24, 23, 0, td);
    match disp {
        TirDispatch::Direct(rqn) => put_bits(&mut b, c + 0x1c, 23, 0, rqn),
        TirDispatch::Rss(rqtn) => {
            put_bits(&mut b, c + 0x04, 31, 28, 1);
            put_bits(&mut b, c + 0x20, 23, 0, rqtn);
            put_bits(&mut b, c + 0x24, 31, 28, 2);
            b[c + 0x28..c + 0x50].copy_from_slice(&RSS_KEY);
            use hash_field::*;
            // l3_prot_type 0 = IPv4, l4_prot_type 0 = TCP.
            put_bits(&mut b, c + 0x50, 29, 0, SRC_IP | DST_IP | L4_SPORT | L4_DPORT);
        }
    }
    cmd(b, 0x10)
}

// ---- Flow steering (PRM §"Flow Table") ----

/// `table_type` 0: NIC receive.
pub const FT_NIC_RX: u32 = 0;
/// Offset of `match_criteria` in CREATE_FLOW_GROUP and of the flow context in
/// SET_FLOW_TABLE_ENTRY.
pub const FT_PARAM: usize = 0x40;
/// Size of `fte_match_param`.
pub const MATCH_PARAM_LEN: usize = 0x200;
/// Offsets of the destination MAC in `fte_match_set_lyr_2_4` (outer headers): `dmac_47_16`,
/// `dmac_15_0` (31:16).
pub const MATCH_DMAC_HI: usize = 0x08;
/// See [`MATCH_DMAC_HI`].
pub const MATCH_DMAC_LO: usize = 0x0c;
/// Offset of `match_value` in the flow context.
pub const FC_MATCH_VALUE: usize = 0x40;
/// Offset of the destination list in the flow context.
pub const FC_DESTS: usize = 0x300;
/// Flow context `action` bit: forward to the destinations.
pub const ACTION_FWD_DEST: u32 = 0x4;
/// Destination type TIR.
pub const DEST_TIR: u32 = 2;

/// CREATE_FLOW_TABLE (0x930): `table_type` (0x10, 31:24); flow table context at 0x18: `level`
/// (23:16), `log_size` (7:0).
pub fn create_flow_table(log_size: u8) -> Cmd {
    let mut b = hdr(op::CREATE_FLOW_TABLE, 0, 0x40);
    put_bits(&mut b, 0x10, 31, 24, FT_NIC_RX);
    put_bits(&mut b, 0x18, 7, 0, log_size.into());
    cmd(b, 0x10)
}

fn put_dmac(b: &mut [u8], at: usize, mac: [u8; 6]) {
    put32(b, at + MATCH_DMAC_HI, u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]));
    put_bits(b, at + MATCH_DMAC_LO, 31, 16, u32::from(u16::from_be_bytes([mac[4], mac[5]])));
}

/// The destination MAC a match parameter at `at` holds.
pub fn get_dmac(b: &[u8], at: usize) -> [u8; 6] {
    let hi = get32(b, at + MATCH_DMAC_HI).to_be_bytes();
    let lo = (get_bits(b, at + MATCH_DMAC_LO, 31, 16) as u16).to_be_bytes();
    [hi[0], hi[1], hi[2], hi[3], lo[0], lo[1]]
}

/// CREATE_FLOW_GROUP (0x933) of entries `start..=end` matching on the whole outer destination
/// MAC: `table_type` (0x10), `table_id` (0x14), `start_flow_index` (0x1c), `end_flow_index`
/// (0x24), `match_criteria_enable` (0x3c, bit 0 = outer headers), criteria at 0x40.
pub fn create_flow_group_dmac(table: u32, start: u32, end: u32) -> Cmd {
    let mut b = hdr(op::CREATE_FLOW_GROUP, 0, FT_PARAM + MATCH_PARAM_LEN);
    put_bits(&mut b, 0x10, 31, 24, FT_NIC_RX);
    put_bits(&mut b, 0x14, 23, 0, table);
    put32(&mut b, 0x1c, start);
    put32(&mut b, 0x24, end);
    put_bits(&mut b, 0x3c, 7, 0, 1);
    put_dmac(&mut b, FT_PARAM, [0xff; 6]);
    cmd(b, 0x10)
}

/// SET_FLOW_TABLE_ENTRY (0x936): entry `index` of `table` in `group` forwarding frames to
/// `mac` to TIR `tirn`. Flow context at 0x40: `group_id` (0x04), `action` (0x0c, 15:0),
/// `destination_list_size` (0x10, 23:0), `match_value` (0x40), destinations (0x300:
/// `destination_type` 31:24, `destination_id` 23:0).
pub fn set_flow_entry(table: u32, group: u32, index: u32, mac: [u8; 6], tirn: u32) -> Cmd {
    let mut b = hdr(op::SET_FLOW_TABLE_ENTRY, 0, FT_PARAM + FC_DESTS + 8);
    put_bits(&mut b, 0x10, 31, 24, FT_NIC_RX);
    put_bits(&mut b, 0x14, 23, 0, table);
    put32(&mut b, 0x20, index);
    let fc = FT_PARAM;
    put32(&mut b, fc + 0x04, group);
    put_bits(&mut b, fc + 0x0c, 15, 0, ACTION_FWD_DEST);
    put_bits(&mut b, fc + 0x10, 23, 0, 1);
    put_dmac(&mut b, fc + FC_MATCH_VALUE, mac);
    put_bits(&mut b, fc + FC_DESTS, 31, 24, DEST_TIR);
    put_bits(&mut b, fc + FC_DESTS, 23, 0, tirn);
    cmd(b, 0x10)
}

/// SET_FLOW_TABLE_ROOT (0x92f): `table_type` (0x10), `table_id` (0x14).
pub fn set_flow_table_root(table: u32) -> Cmd {
    let mut b = hdr(op::SET_FLOW_TABLE_ROOT, 0, 0x40);
    put_bits(&mut b, 0x10, 31, 24, FT_NIC_RX);
    put_bits(&mut b, 0x14, 23, 0, table);
    cmd(b, 0x10)
}

/// DESTROY_FLOW_TABLE (0x931): `table_type` (0x10), `table_id` (0x14).
pub fn destroy_flow_table(table: u32) -> Cmd {
    let mut b = hdr(op::DESTROY_FLOW_TABLE, 0, 0x40);
    put_bits(&mut b, 0x10, 31, 24, FT_NIC_RX);
    put_bits(&mut b, 0x14, 23, 0, table);
    cmd(b, 0x10)
}

/// DESTROY_FLOW_GROUP (0x934): as DESTROY_FLOW_TABLE plus `group_id` (0x18).
pub fn destroy_flow_group(table: u32, group: u32) -> Cmd {
    let mut b = hdr(op::DESTROY_FLOW_GROUP, 0, 0x40);
    put_bits(&mut b, 0x10, 31, 24, FT_NIC_RX);
    put_bits(&mut b, 0x14, 23, 0, table);
    put32(&mut b, 0x18, group);
    cmd(b, 0x10)
}

/// DELETE_FLOW_TABLE_ENTRY (0x938): as DESTROY_FLOW_TABLE plus `flow_index` (0x20).
pub fn delete_flow_entry(table: u32, index: u32) -> Cmd {
    let mut b = hdr(op::DELETE_FLOW_TABLE_ENTRY, 0, 0x40);
    put_bits(&mut b, 0x10, 31, 24, FT_NIC_RX);
    put_bits(&mut b, 0x14, 23, 0, table);
    put32(&mut b, 0x20, index);
    cmd(b, 0x10)
}
