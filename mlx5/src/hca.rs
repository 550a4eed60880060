//! Bring-up in PRM order, teardown in reverse, and the [`Nic`] data path.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use joyride_drivers::{
    Batch, Capabilities, LinkState, MacAddr, Nic, NicError, Offloads, PacketBuf, Pool,
    QueueCounters, QueueId, RxCsum,
};
use joyride_vfio::{Bar, Container, Device, DmaBuffer, DmaMapping};

use crate::cmdq::{CmdQueue, FwInfo};
use crate::cmds::{self, cap, CapType, Cmd, PageKind, TirDispatch, WqSpec};
use crate::dma::PoolDma;
use crate::error::{CmdError, Mlx5Error};
use crate::prm::{op, HCA_PAGE};
use crate::queues::{cs, parse_cqe, uar, Cq, Cqe, Eq, Event, Rq, Sq, TxOpts};

/// How to bring the HCA up.
#[derive(Clone, Copy, Debug)]
pub struct Mlx5Config {
    /// Queue pairs (receive queues spread by RSS; one transmit queue each). 1..=64.
    pub queues: u16,
    /// log2 of send WQEBBs per SQ.
    pub log_sq_size: u8,
    /// log2 of receive WQEs per RQ.
    pub log_rq_size: u8,
    /// Iterations any poll loop (initializing bit, command completion) may spin.
    pub poll_budget: u32,
    /// Use checksum offloads when the HCA has them.
    pub offloads: bool,
}

impl Default for Mlx5Config {
    fn default() -> Self {
        Mlx5Config {
            queues: 1,
            log_sq_size: 8,
            log_rq_size: 8,
            poll_budget: 50_000_000,
            offloads: true,
        }
    }
}

/// Ethernet + VLAN header bytes inlined into every send WQE (PRM: `min_wqe_inline_mode` L2).
const INLINE_L2: u16 = 18;
/// Pages given per MANAGE_PAGES command (fits the mailbox area).
const PAGES_PER_CMD: usize = 1024;
/// Events the EQ subscribes to: page requests.
const EQ_EVENTS: u64 = 1 << cmds::EVENT_PAGE_REQUEST;

/// Pages given to the HCA (PRM §"Pages": the driver gives memory; the HCA gives it back).
#[derive(Default)]
struct Pages {
    chunks: Vec<DmaBuffer>,
    given: BTreeSet<u64>,
}

/// Control-path state behind a `RefCell` so that `&self` queries (link) can run commands.
struct Ctrl {
    cmdq: CmdQueue,
    pages: Pages,
    eq: Option<Eq>,
    container: Container,
    log: Vec<CmdRecord>,
}

/// One firmware command the driver issued and how it ended (for [`Mlx5::command_records`] and
/// bug reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdRecord {
    /// The opcode.
    pub opcode: u16,
    /// `Ok`, or the delivery status / output status and syndrome the HCA returned.
    pub result: Result<(), CmdError>,
}

impl std::fmt::Display for CmdRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = crate::prm::op::name(self.opcode);
        match &self.result {
            Ok(()) => write!(f, "0x{:03x} {name:<26} ok", self.opcode),
            Err(e) => write!(f, "0x{:03x} {name:<26} ERROR {e}", self.opcode),
        }
    }
}

/// A failed bring-up: the error, plus what a bug report needs (the firmware revision if the
/// initialization segment was read, and every command issued, including the cleanup).
#[derive(Clone, Debug)]
pub struct BringUpFailure {
    /// Why bring-up stopped.
    pub error: Mlx5Error,
    /// Firmware and command interface revisions, when the init segment was read.
    pub fw: Option<FwInfo>,
    /// Every command issued, in order, with its outcome.
    pub log: Vec<CmdRecord>,
}

impl Ctrl {
    fn run(&mut self, c: Cmd) -> Result<Vec<u8>, CmdError> {
        let r = self.cmdq.exec(&c.input, c.out_len);
        self.log
            .push(CmdRecord { opcode: c.opcode(), result: r.as_ref().map(|_| ()).map_err(|e| *e) });
        r
    }

    /// Gives `n` pages (PRM §"MANAGE_PAGES": op_mod 1, `pas` list of 4 KiB pages).
    fn give_pages(&mut self, n: usize) -> Result<(), Mlx5Error> {
        if n == 0 {
            return Ok(());
        }
        let chunk = self.container.alloc_dma(n * HCA_PAGE, false)?;
        let addrs: Vec<u64> = (0..n).map(|i| chunk.iova() + (i * HCA_PAGE) as u64).collect();
        self.chunks_push(chunk);
        for part in addrs.chunks(PAGES_PER_CMD) {
            self.run(cmds::manage_pages_give(part))?;
            self.pages.given.extend(part.iter().copied());
        }
        Ok(())
    }

    fn chunks_push(&mut self, c: DmaBuffer) {
        self.pages.chunks.push(c);
    }

    /// QUERY_PAGES then MANAGE_PAGES for what it asked.
    fn satisfy(&mut self, kind: PageKind) -> Result<(), Mlx5Error> {
        let out = self.run(cmds::query_pages(kind))?;
        let n = cmds::parse_query_pages(&out)?;
        self.give_pages(n.max(0) as usize)
    }

    /// Takes back up to `n` pages; returns how many came back. Pages we never gave are a
    /// device error.
    fn take_pages(&mut self, n: usize) -> Result<usize, Mlx5Error> {
        let mut back = 0;
        while back < n {
            let ask = (n - back).min(PAGES_PER_CMD) as u32;
            let out = self.run(cmds::manage_pages_take(ask))?;
            let pages = cmds::parse_manage_pages_take(&out, ask)?;
            if pages.is_empty() {
                break;
            }
            for p in &pages {
                if !self.pages.given.remove(p) {
                    return Err(CmdError::BadOutput {
                        opcode: op::MANAGE_PAGES,
                        what: "returned a page it was never given",
                    }
                    .into());
                }
            }
            back += pages.len();
        }
        Ok(back)
    }

    /// Services page-request events (PRM §"Page Request Event").
    fn poll_events(&mut self) -> Result<usize, Mlx5Error> {
        let mut n = 0;
        while let Some(ev) = self.eq.as_mut().and_then(|e| e.poll()) {
            n += 1;
            if let Event::PageRequest(p) = ev {
                if p > 0 {
                    self.give_pages(p as usize)?;
                } else if p < 0 {
                    self.take_pages(p.unsigned_abs() as usize)?;
                }
            }
        }
        Ok(n)
    }
}

/// Object numbers to destroy at teardown, in creation order.
#[derive(Default, Debug)]
struct Objects {
    uar: Option<u32>,
    eq: Option<u8>,
    pd: Option<u32>,
    td: Option<u32>,
    tis: Option<u32>,
    rqt: Option<u32>,
    tir: Option<u32>,
    table: Option<u32>,
    group: Option<u32>,
    entries: Vec<u32>,
}

struct Pair {
    sq: Sq,
    scq: Cq,
    rq: Rq,
    rcq: Cq,
    counters: QueueCounters,
    sq_created: bool,
    rq_created: bool,
}

/// What the HCA offers, as read at bring-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HcaInfo {
    /// Firmware and command interface revisions.
    pub fw: FwInfo,
    /// The ISSI in use.
    pub issi: u16,
    /// Checksum offloads.
    pub csum: bool,
    /// log2 of the largest LSO message (0: none).
    pub max_lso_log: u8,
    /// The reserved lkey WQE data segments use.
    pub resd_lkey: u32,
    /// The vport MTU (Ethernet frame bytes).
    pub vport_mtu: u16,
}

/// A ConnectX-4/5/6 driven from user space through VFIO.
pub struct Mlx5 {
    ctrl: RefCell<Ctrl>,
    bar: Rc<Bar>,
    uar_off: u64,
    pairs: Vec<Pair>,
    objs: Objects,
    pool: Pool,
    mac: MacAddr,
    mtu: u32,
    info: HcaInfo,
    offloads: bool,
    broken: Option<&'static str>,
    torn_down: bool,
    bursts: u32,
    _pool_map: DmaMapping,
    dev: Device,
}

impl std::fmt::Debug for Mlx5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mlx5")
            .field("dev", &self.dev)
            .field("info", &self.info)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

/// Whether `(vendor, device)` is a ConnectX this driver is for; its marketing name.
pub fn supported(vendor: u16, device: u16) -> Option<&'static str> {
    (vendor == crate::prm::VENDOR_MELLANOX)
        .then(|| crate::prm::DEVICE_IDS.iter().find(|d| d.0 == device).map(|d| d.1))
        .flatten()
}

impl Mlx5 {
    /// Brings the HCA up (the whole PRM §"HCA Driver Start-up" sequence, then the Ethernet
    /// objects) with receive buffers from `pool`, which it maps for DMA.
    pub fn bring_up(dev: Device, pool: Pool, cfg: Mlx5Config) -> Result<Mlx5, Mlx5Error> {
        Self::try_bring_up(dev, pool, cfg).map_err(|f| f.error)
    }

    /// [`Mlx5::bring_up`], but a failure keeps the firmware revision and the command log.
    pub fn try_bring_up(dev: Device, pool: Pool, cfg: Mlx5Config) -> Result<Mlx5, BringUpFailure> {
        let bare = |error: Mlx5Error| BringUpFailure { error, fw: None, log: Vec::new() };
        let (vendor, device) = dev.pci_ids().map_err(|e| bare(e.into()))?;
        if supported(vendor, device).is_none() {
            return Err(bare(Mlx5Error::NotConnectX(vendor, device)));
        }
        if cfg.queues == 0 || cfg.queues > 64 {
            return Err(bare(Mlx5Error::Config("queues must be 1..=64")));
        }
        if !(6..=15).contains(&cfg.log_sq_size) || !(6..=15).contains(&cfg.log_rq_size) {
            return Err(bare(Mlx5Error::Config("log ring sizes must be 6..=15")));
        }
        dev.enable_bus_master().map_err(|e| bare(e.into()))?;
        let bar = Rc::new(dev.map_bar(0).map_err(|e| bare(e.into()))?);
        let container = dev.container().clone();
        let (cmdq, fw) = CmdQueue::init(bar.clone(), &container, cfg.poll_budget).map_err(bare)?;
        // Map the pool before any object exists, so that this failure leaves nothing behind.
        let pool_map = container.map_dma(PoolDma(pool.clone())).map_err(|e| BringUpFailure {
            error: e.into(),
            fw: Some(fw),
            log: Vec::new(),
        })?;
        let mut c = Ctrl { cmdq, pages: Pages::default(), eq: None, container, log: Vec::new() };
        let mut objs = Objects::default();
        let mut pairs = Vec::new();
        let r = Self::bring_up_steps(&mut c, &mut objs, &mut pairs, fw, &cfg);
        let (info, mac, uar_page) = match r {
            Ok(v) => v,
            Err(e) => {
                // Best effort: leave the HCA disabled and take our pages back.
                let _ = c.run(cmds::teardown_hca());
                let n = c.pages.given.len();
                let _ = c.take_pages(n);
                let _ = c.run(cmds::disable_hca());
                let _ = dev.disable_bus_master();
                return Err(BringUpFailure { error: e, fw: Some(fw), log: c.log });
            }
        };
        pool.set_iova_base(Some(joyride_drivers::Iova(pool_map.iova())));
        let mtu = u32::from(info.vport_mtu.saturating_sub(22)).clamp(68, 1500);
        let mut nic = Mlx5 {
            ctrl: RefCell::new(c),
            bar,
            uar_off: u64::from(uar_page) * uar::PAGE,
            pairs,
            objs,
            pool,
            mac: MacAddr(mac),
            mtu,
            info,
            offloads: cfg.offloads && info.csum,
            broken: None,
            torn_down: false,
            bursts: 0,
            _pool_map: pool_map,
            dev,
        };
        for q in 0..nic.pairs.len() {
            nic.refill(q);
        }
        Ok(nic)
    }

    #[allow(clippy::type_complexity)]
    fn bring_up_steps(
        c: &mut Ctrl,
        o: &mut Objects,
        pairs: &mut Vec<Pair>,
        fw: FwInfo,
        cfg: &Mlx5Config,
    ) -> Result<(HcaInfo, [u8; 6], u32), Mlx5Error> {
        // PRM §"HCA Driver Start-up", in order.
        c.run(cmds::enable_hca())?;
        let issi = cmds::parse_query_issi(&c.run(cmds::query_issi())?)?;
        // ISSI 1 is what the SQ/RQ/TIR object model needs (PRM §"ISSI").
        if issi.supported & (1 << 1) == 0 {
            return Err(Mlx5Error::Unsupported("firmware lacks ISSI 1 (update the firmware)"));
        }
        c.run(cmds::set_issi(1))?;
        c.satisfy(PageKind::Boot)?;
        let mut general =
            cmds::parse_query_hca_cap(&c.run(cmds::query_hca_cap(CapType::General, true))?)?;
        cap::set(&mut general, cap::CMDIF_CHECKSUM, 0);
        cap::set(&mut general, cap::LOG_UAR_PAGE_SZ, 0);
        c.run(cmds::set_hca_cap(CapType::General, &general))?;
        let eth =
            cmds::parse_query_hca_cap(&c.run(cmds::query_hca_cap(CapType::EthOffload, true))?)?;
        c.satisfy(PageKind::Init)?;
        c.run(cmds::init_hca())?;
        c.satisfy(PageKind::Regular)?;
        let max_cq = cap::get(&general, cap::LOG_MAX_CQ_SZ) as u8;
        if cfg.log_sq_size.max(cfg.log_rq_size) > max_cq {
            return Err(Mlx5Error::Unsupported("rings larger than the HCA's largest CQ"));
        }
        let rss_log = cap::get(&eth, cap::ETH_RSS_IND_TBL);
        if usize::from(cfg.queues) > 1usize << rss_log {
            return Err(Mlx5Error::Unsupported("more queues than the RSS table holds"));
        }
        let lkey = cmds::parse_special_contexts(&c.run(cmds::query_special_contexts())?)?;

        // Ethernet objects (PRM §"Ethernet": UAR, EQ, PD, TD, vport, CQs, TIS, SQs, RQs, RQT,
        // TIR, flow steering).
        let uar_n = cmds::parse_object(&c.run(cmds::alloc_uar())?, op::ALLOC_UAR)?;
        o.uar = Some(uar_n);
        let eq = Eq::new(&c.container, 6)?;
        let (base, pages) = eq.addrs();
        let out = c.run(cmds::create_eq(uar_n, eq.log_size(), base, pages, EQ_EVENTS))?;
        let eqn = cmds::parse_create_eq(&out)?;
        o.eq = Some(eqn);
        let mut eq = eq;
        eq.eqn = eqn;
        c.eq = Some(eq);
        let pd = cmds::parse_object(&c.run(cmds::alloc_pd())?, op::ALLOC_PD)?;
        o.pd = Some(pd);
        let td = cmds::parse_object(
            &c.run(cmds::alloc_transport_domain())?,
            op::ALLOC_TRANSPORT_DOMAIN,
        )?;
        o.td = Some(td);
        let vport = cmds::parse_nic_vport_context(&c.run(cmds::query_nic_vport_context())?)?;
        let tis = cmds::parse_object(&c.run(cmds::create_tis(td))?, op::CREATE_TIS)?;
        o.tis = Some(tis);
        let inline_mode = vport.min_inline_mode.max(1); // at least L2 (we inline 18 bytes)
        for _ in 0..cfg.queues {
            let mut scq = Cq::new(&c.container, cfg.log_sq_size)?;
            let mut rcq = Cq::new(&c.container, cfg.log_rq_size)?;
            for cq in [&mut scq, &mut rcq] {
                let (b, p, d) = cq.addrs();
                let out = c.run(cmds::create_cq(uar_n, cq.log_size(), eqn, b, p, d))?;
                cq.cqn = cmds::parse_object(&out, op::CREATE_CQ)?;
            }
            let mut sq = Sq::new(&c.container, cfg.log_sq_size)?;
            let mut rq = Rq::new(&c.container, cfg.log_rq_size)?;
            sq.lkey = lkey;
            rq.lkey = lkey;
            pairs.push(Pair {
                sq,
                scq,
                rq,
                rcq,
                counters: QueueCounters::default(),
                sq_created: false,
                rq_created: false,
            });
            let p = pairs.last_mut().ok_or(Mlx5Error::Config("queue"))?;
            let (b, n, d) = p.sq.addrs();
            let spec = WqSpec {
                pd,
                uar: uar_n,
                dbr: d,
                log_stride: 6,
                log_size: cfg.log_sq_size,
                base: b,
                pages: n,
            };
            let out = c.run(cmds::create_sq(p.scq.cqn, tis, inline_mode, &spec))?;
            p.sq.sqn = cmds::parse_object(&out, op::CREATE_SQ)?;
            p.sq_created = true;
            c.run(cmds::modify_queue(op::MODIFY_SQ, p.sq.sqn, cmds::state::RST, cmds::state::RDY))?;
            let (b, n, d) = p.rq.addrs();
            let spec = WqSpec {
                pd,
                uar: uar_n,
                dbr: d,
                log_stride: 4,
                log_size: cfg.log_rq_size,
                base: b,
                pages: n,
            };
            let out = c.run(cmds::create_rq(p.rcq.cqn, &spec))?;
            p.rq.rqn = cmds::parse_object(&out, op::CREATE_RQ)?;
            p.rq_created = true;
            c.run(cmds::modify_queue(op::MODIFY_RQ, p.rq.rqn, cmds::state::RST, cmds::state::RDY))?;
        }
        let rqns: Vec<u32> = pairs.iter().map(|p| p.rq.rqn).collect();
        let rqt = cmds::parse_object(&c.run(cmds::create_rqt(&rqns))?, op::CREATE_RQT)?;
        o.rqt = Some(rqt);
        let disp =
            if rqns.len() > 1 { TirDispatch::Rss(rqt) } else { TirDispatch::Direct(rqns[0]) };
        let tir = cmds::parse_object(&c.run(cmds::create_tir(td, disp))?, op::CREATE_TIR)?;
        o.tir = Some(tir);
        let table = cmds::parse_object(&c.run(cmds::create_flow_table(1))?, op::CREATE_FLOW_TABLE)?;
        o.table = Some(table);
        let group = cmds::parse_object(
            &c.run(cmds::create_flow_group_dmac(table, 0, 1))?,
            op::CREATE_FLOW_GROUP,
        )?;
        o.group = Some(group);
        // Our MAC and broadcast (ARP) to the TIR.
        for (i, mac) in [vport.mac, [0xff; 6]].into_iter().enumerate() {
            c.run(cmds::set_flow_entry(table, group, i as u32, mac, tir))?;
            o.entries.push(i as u32);
        }
        c.run(cmds::set_flow_table_root(table))?;
        let info = HcaInfo {
            fw,
            issi: 1,
            csum: cap::get(&eth, cap::ETH_CSUM) == 1,
            max_lso_log: cap::get(&eth, cap::ETH_MAX_LSO) as u8,
            resd_lkey: lkey,
            vport_mtu: vport.mtu,
        };
        Ok((info, vport.mac, uar_n))
    }

    /// What the HCA reported at bring-up.
    pub fn info(&self) -> HcaInfo {
        self.info
    }

    /// Opcodes of every command issued so far, in order.
    pub fn command_log(&self) -> Vec<u16> {
        self.ctrl.borrow().log.iter().map(|r| r.opcode).collect()
    }

    /// Every command issued so far, in order, with its status and syndrome.
    pub fn command_records(&self) -> Vec<CmdRecord> {
        self.ctrl.borrow().log.clone()
    }

    /// Pages the HCA holds now.
    pub fn pages_given(&self) -> usize {
        self.ctrl.borrow().pages.given.len()
    }

    /// Why the driver stopped trusting the device, if it did.
    pub fn broken(&self) -> Option<&'static str> {
        self.broken
    }

    /// Services pending events (page requests). Called from `link` and every 4096 bursts.
    pub fn poll_events(&self) -> Result<usize, Mlx5Error> {
        let mut c = self.ctrl.borrow_mut();
        let n = c.poll_events()?;
        if n > 0 {
            if let Some(eq) = &c.eq {
                let v = eq.doorbell_value();
                crate::cmdq::wr_be32(&self.bar, self.uar_off + uar::EQ_DOORBELL, v)?;
            }
        }
        Ok(n)
    }

    /// Tears down in reverse order: steering, TIR, RQT, queues, TIS, TD, PD, EQ, UAR, then
    /// TEARDOWN_HCA, MANAGE_PAGES reclaim and DISABLE_HCA (PRM §"HCA Driver Teardown").
    /// Continues past failures and reports the first.
    pub fn teardown(&mut self) -> Result<(), Mlx5Error> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut first: Option<Mlx5Error> = None;
        let mut note = |r: Result<(), Mlx5Error>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        let c = self.ctrl.get_mut();
        let run = |c: &mut Ctrl, cmd: Cmd| c.run(cmd).map(|_| ()).map_err(Mlx5Error::from);
        let o = std::mem::take(&mut self.objs);
        if let Some(t) = o.table {
            for &i in o.entries.iter().rev() {
                note(run(c, cmds::delete_flow_entry(t, i)));
            }
            if let Some(g) = o.group {
                note(run(c, cmds::destroy_flow_group(t, g)));
            }
            note(run(c, cmds::destroy_flow_table(t)));
        }
        if let Some(t) = o.tir {
            note(run(c, cmds::destroy(op::DESTROY_TIR, t)));
        }
        if let Some(t) = o.rqt {
            note(run(c, cmds::destroy(op::DESTROY_RQT, t)));
        }
        for p in self.pairs.iter_mut().rev() {
            if p.rq_created {
                note(run(c, cmds::destroy(op::DESTROY_RQ, p.rq.rqn)));
            }
            if p.sq_created {
                note(run(c, cmds::destroy(op::DESTROY_SQ, p.sq.sqn)));
            }
            note(run(c, cmds::destroy(op::DESTROY_CQ, p.rcq.cqn)));
            note(run(c, cmds::destroy(op::DESTROY_CQ, p.scq.cqn)));
            p.rq.clear();
            p.sq.clear();
        }
        if let Some(t) = o.tis {
            note(run(c, cmds::destroy(op::DESTROY_TIS, t)));
        }
        if let Some(t) = o.td {
            note(run(c, cmds::destroy(op::DEALLOC_TRANSPORT_DOMAIN, t)));
        }
        if let Some(t) = o.pd {
            note(run(c, cmds::destroy(op::DEALLOC_PD, t)));
        }
        if let Some(t) = o.eq {
            note(run(c, cmds::destroy(op::DESTROY_EQ, t.into())));
        }
        if let Some(t) = o.uar {
            note(run(c, cmds::destroy(op::DEALLOC_UAR, t)));
        }
        note(run(c, cmds::teardown_hca()));
        let n = c.pages.given.len();
        note(c.take_pages(n).map(|_| ()));
        if !c.pages.given.is_empty() {
            note(Err(Mlx5Error::Unsupported("HCA kept pages after TEARDOWN_HCA")));
        }
        note(run(c, cmds::disable_hca()));
        note(self.dev.disable_bus_master().map_err(Mlx5Error::from));
        first.map_or(Ok(()), Err)
    }

    fn refill(&mut self, q: usize) {
        let p = &mut self.pairs[q];
        while p.rq.has_room() {
            let Some(mut b) = self.pool.alloc() else { break };
            b.reset();
            let Some(iova) = b.iova() else { break };
            if p.rq.post(b, iova.0).is_err() {
                break;
            }
        }
        p.rq.publish();
    }

    fn queue(&self, q: QueueId) -> Result<usize, NicError> {
        if let Some(w) = self.broken {
            return Err(NicError::Corrupt(w));
        }
        if self.torn_down || usize::from(q.0) >= self.pairs.len() {
            return Err(NicError::BadQueue(q));
        }
        Ok(usize::from(q.0))
    }

    /// Reclaims completed sends of queue `q`.
    fn reclaim_tx(&mut self, q: usize) {
        let p = &mut self.pairs[q];
        let mut seen = false;
        while let Some(raw) = p.scq.poll() {
            p.scq.advance();
            seen = true;
            match parse_cqe(&raw) {
                Cqe::Req { wqe_counter } => {
                    if p.sq.complete(wqe_counter).is_none() {
                        p.counters.tx_errors += 1;
                    }
                }
                Cqe::Error { .. } => {
                    // PRM §"Error Handling": the SQ moved to the error state; recovery
                    // (ERR → RST → RDY) is not implemented, so stop using it.
                    p.counters.tx_errors += 1;
                    self.broken = Some("send queue reported an error completion");
                }
                Cqe::Recv { .. } | Cqe::Unknown(_) => p.counters.tx_errors += 1,
            }
        }
        if seen {
            p.scq.update_ci();
        }
    }

    /// Send options for `b`: the checksum request becomes `cs_flags` when the HCA can do it
    /// (IPv4/IPv6 with TCP/UDP at the offsets the request names), else it is done here.
    fn tx_opts(&self, b: &mut PacketBuf) -> Option<TxOpts> {
        let mut o = TxOpts { inline: INLINE_L2, ..TxOpts::default() };
        if let Some(r) = b.tx_csum() {
            match (self.offloads, l4_of(b.data())) {
                (true, Some((l4_start, proto, v4)))
                    if usize::from(r.start) == l4_start
                        && matches!((proto, r.offset), (6, 16) | (17, 6)) =>
                {
                    o.cs_flags = cs::L4 | if v4 { cs::L3 } else { 0 };
                }
                _ => {
                    if !b.complete_partial_csum() {
                        return None;
                    }
                }
            }
        }
        Some(o)
    }

    /// Sends one TCP segment larger than the MTU with LSO (PRM §"Large Send Offload"): the
    /// headers (Ethernet, IPv4/IPv6, TCP) are inlined, the HCA cuts the payload into `mss`
    /// pieces and fixes lengths, IDs, sequence numbers and checksums.
    pub fn tx_lso(&mut self, queue: QueueId, b: PacketBuf, mss: u16) -> Result<(), NicError> {
        let q = self.queue(queue)?;
        if self.info.max_lso_log == 0 {
            return Err(NicError::Corrupt("HCA has no LSO"));
        }
        let Some((l4, 6, v4)) = l4_of(b.data()) else {
            return Err(NicError::Corrupt("LSO needs a TCP segment"));
        };
        let doff = usize::from(b.data().get(l4 + 12).copied().unwrap_or(0) >> 4) * 4;
        let hdr = l4 + doff;
        if doff < 20 || hdr > b.len() || hdr > 256 || mss == 0 {
            return Err(NicError::Corrupt("LSO headers malformed"));
        }
        self.reclaim_tx(q);
        let Some(iova) = b.iova().filter(|_| self.pool.owns(&b)) else {
            return Err(NicError::Corrupt("LSO buffer must come from the driver's pool"));
        };
        let o = TxOpts {
            cs_flags: cs::L4 | if v4 { cs::L3 } else { 0 },
            lso: Some((mss, hdr as u16)),
            inline: 0,
        };
        let len = b.len() as u64;
        let p = &mut self.pairs[q];
        p.sq.post(b, iova.0, &o).map_err(|_| NicError::Corrupt("send queue full"))?;
        p.sq.ring(&self.bar, self.uar_off).map_err(|_| NicError::Os(libc_eio()))?;
        p.counters.tx_packets += 1;
        p.counters.tx_bytes += len;
        Ok(())
    }
}

fn libc_eio() -> i32 {
    5
}

/// The L4 header offset, protocol and whether IPv4, for an untagged IPv4/IPv6 frame.
fn l4_of(f: &[u8]) -> Option<(usize, u8, bool)> {
    let et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    match et {
        0x0800 => {
            let ihl = usize::from(f.get(14)? & 0xf) * 4;
            (ihl >= 20).then_some((14 + ihl, *f.get(23)?, true))
        }
        0x86dd => Some((54, *f.get(20)?, false)),
        _ => None,
    }
}

impl Nic for Mlx5 {
    fn capabilities(&self) -> Capabilities {
        let n = self.pairs.len() as u16;
        Capabilities {
            mtu: self.mtu,
            mac: self.mac,
            rx_queues: n,
            tx_queues: n,
            offloads: Offloads {
                rx_checksum: self.offloads,
                tx_checksum: self.offloads,
                tso: false, // LSO is `Mlx5::tx_lso`; the Nic contract has no segment size yet
                rss: n > 1,
            },
        }
    }

    fn link(&self) -> LinkState {
        let _ = self.poll_events();
        let up = self
            .ctrl
            .borrow_mut()
            .run(cmds::query_vport_state())
            .ok()
            .and_then(|o| cmds::parse_vport_state(&o).ok())
            .unwrap_or(false);
        LinkState { up, speed_mbps: None }
    }

    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        let q = self.queue(queue)?;
        self.bursts = self.bursts.wrapping_add(1);
        if q == 0 && self.bursts.is_multiple_of(4096) {
            let _ = self.poll_events();
        }
        let offloads = self.offloads;
        let p = &mut self.pairs[q];
        let mut got = 0;
        let mut seen = false;
        while out.remaining() > 0 {
            let Some(raw) = p.rcq.poll() else { break };
            p.rcq.advance();
            seen = true;
            match parse_cqe(&raw) {
                Cqe::Recv { wqe_counter, byte_cnt, csum_ok, .. } => {
                    let Some((mut b, posted)) = p.rq.take(wqe_counter) else {
                        p.counters.rx_errors += 1; // names a WQE that is not next: not trusted
                        continue;
                    };
                    if byte_cnt > posted || byte_cnt < 14 {
                        p.counters.rx_errors += 1;
                        b.reset();
                        let _ = b.iova().map(|i| p.rq.post(b, i.0));
                        continue;
                    }
                    b.set_len(byte_cnt as usize);
                    b.set_rx_csum(if csum_ok && offloads {
                        RxCsum::Verified
                    } else {
                        RxCsum::Unknown
                    });
                    p.counters.rx_packets += 1;
                    p.counters.rx_bytes += u64::from(byte_cnt);
                    let _ = out.push(b); // cannot fail: remaining() > 0
                    got += 1;
                }
                Cqe::Error { wqe_counter, .. } => {
                    p.counters.rx_errors += 1;
                    if let Some((mut b, _)) = p.rq.take(wqe_counter) {
                        b.reset();
                        let _ = b.iova().map(|i| p.rq.post(b, i.0));
                    }
                }
                Cqe::Req { .. } | Cqe::Unknown(_) => p.counters.rx_errors += 1,
            }
        }
        if seen {
            p.rcq.update_ci();
        }
        self.refill(q);
        if self.pairs[q].rq.outstanding() == 0 {
            self.pairs[q].counters.rx_drops += 1; // pool exhausted
        }
        Ok(got)
    }

    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        let q = self.queue(queue)?;
        self.reclaim_tx(q);
        if let Some(w) = self.broken {
            return Err(NicError::Corrupt(w));
        }
        // Every non-LSO WQE is one WQEBB (18 inline bytes + one data segment = 64 bytes).
        let n = bufs.len().min(self.pairs[q].sq.free());
        for mut b in bufs.drain_front(n) {
            if !self.pool.owns(&b) {
                let Some(mut own) = self.pool.alloc() else {
                    self.pairs[q].counters.tx_drops += 1;
                    continue;
                };
                if !own.copy_from(b.data()) {
                    self.pairs[q].counters.tx_drops += 1;
                    continue;
                }
                own.set_tx_csum(b.tx_csum());
                b = own;
            }
            let len = b.len() as u64;
            let (Some(o), Some(iova)) = (self.tx_opts(&mut b), b.iova()) else {
                self.pairs[q].counters.tx_drops += 1;
                continue;
            };
            let p = &mut self.pairs[q];
            if p.sq.post(b, iova.0, &o).is_err() {
                p.counters.tx_drops += 1;
                continue;
            }
            p.counters.tx_packets += 1;
            p.counters.tx_bytes += len;
        }
        let p = &mut self.pairs[q];
        p.sq.ring(&self.bar, self.uar_off).map_err(|_| NicError::Os(libc_eio()))?;
        Ok(n)
    }

    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        self.pairs.get(usize::from(queue.0)).map(|p| p.counters)
    }
}

impl Drop for Mlx5 {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
