//! The driver against the fake HCA model: encodings, bring-up/teardown order, syndromes as
//! typed errors, hostile CQEs, rx/tx round trips, checksums, LSO, RSS, page requests.

use joyride_drivers::{Batch, CsumRequest, Nic, Pool, PoolConfig, QueueId, RxCsum};

use crate::cmds::{self, CapType, PageKind, TirDispatch, WqSpec};
use crate::fake::{syndrome, FakeHca};
use crate::prm::{get32, get64, get_bits, op};
use crate::queues::{build_send_wqe, cqe, cqe_op, cs, parse_cqe, Cqe, TxOpts};
use crate::{CmdError, CmdStatus, DeliveryStatus, Mlx5, Mlx5Config, Mlx5Error};

const Q: QueueId = QueueId(0);

fn pool(count: u32) -> Pool {
    Pool::new(PoolConfig { count, hugepages: false, mlock: false, ..PoolConfig::default() })
        .unwrap()
}

fn cfg(queues: u16) -> Mlx5Config {
    Mlx5Config {
        queues,
        log_sq_size: 6,
        log_rq_size: 6,
        poll_budget: 1000,
        ..Mlx5Config::default()
    }
}

/// An Ethernet/IPv4/TCP frame to `dst` with `payload` bytes, ports varying with `i`, with
/// correct IPv4 and TCP checksums.
fn tcp_frame(dst: [u8; 6], i: u16, payload: usize) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 9, 0x08, 0x00]);
    let tot = (20 + 20 + payload) as u16;
    f.extend_from_slice(&[0x45, 0, (tot >> 8) as u8, tot as u8, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
    f.extend_from_slice(&(40000 + i).to_be_bytes());
    f.extend_from_slice(&80u16.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..payload).map(|k| (k as u16 ^ i) as u8));
    fix_checksums(&mut f);
    f
}

fn csum(b: &[u8], mut s: u32) -> u16 {
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn tcp_sum(f: &[u8]) -> u16 {
    let l4 = &f[34..];
    let mut s = 0u32;
    for c in f[26..34].chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    csum(l4, s + 6 + l4.len() as u32)
}

fn fix_checksums(f: &mut [u8]) {
    f[24..26].fill(0);
    let c = csum(&f[14..34], 0);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[50..52].fill(0);
    let c = tcp_sum(f);
    f[50..52].copy_from_slice(&c.to_be_bytes());
}

fn up(fake: &FakeHca, p: &Pool, queues: u16) -> Mlx5 {
    Mlx5::bring_up(fake.device(), p.clone(), cfg(queues)).unwrap()
}

// ---- Golden encodings (PRM tables cited in `cmds`) ----

#[test]
fn command_encodings_are_golden() {
    let c = cmds::enable_hca();
    assert_eq!(c.input, [0x01, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!((c.opcode(), c.out_len), (op::ENABLE_HCA, 0x10));
    assert_eq!(&cmds::set_issi(1).input[..12], &[0x01, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(&cmds::query_pages(PageKind::Init).input[..8], &[0x01, 0x07, 0, 0, 0, 0, 0, 2]);
    let g = cmds::manage_pages_give(&[0x1234_5000, 0xab_0000_1000]);
    assert_eq!(g.input.len(), 0x20);
    assert_eq!(&g.input[..16], &[0x01, 0x08, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    assert_eq!(get64(&g.input, 0x10), 0x1234_5000);
    assert_eq!(&g.input[0x18..0x20], &[0, 0, 0, 0xab, 0, 0, 0x10, 0]);
    let t = cmds::manage_pages_take(3);
    assert_eq!((get_bits(&t.input, 4, 15, 0), get32(&t.input, 0x0c), t.out_len), (2, 3, 0x28));
    let q = cmds::query_hca_cap(CapType::EthOffload, true);
    assert_eq!((&q.input[..8], q.out_len), (&[0x01, 0x00, 0, 0, 0, 0, 0, 3][..], 0x1010));
    assert_eq!(cmds::query_issi().out_len, 0x70);
    assert_eq!(cmds::destroy(op::DESTROY_SQ, 0xabcdef).input[8..12], [0, 0xab, 0xcd, 0xef]);
    assert_eq!(cmds::query_nic_vport_context().out_len, 0x110);

    let cq = cmds::create_cq(7, 10, 1, 0x10_0000, 16, 0x20_0040);
    assert_eq!(cq.opcode(), 0x400);
    assert_eq!(cq.input.len(), 0x110 + 16 * 8);
    assert_eq!(get32(&cq.input, 0x1c), (10 << 24) | 7, "log_cq_size | uar_page");
    assert_eq!(get32(&cq.input, 0x24), 1, "c_eqn");
    assert_eq!(get64(&cq.input, 0x48), 0x20_0040, "dbr_addr");
    assert_eq!(get64(&cq.input, 0x110 + 8 * 15), 0x10_0000 + 15 * 4096, "last pas entry");

    let eq = cmds::create_eq(3, 6, 0x40_0000, 1, 1 << 0x0b);
    assert_eq!((eq.opcode(), get64(&eq.input, 0x58)), (0x301, 0x800));

    let w =
        WqSpec { pd: 5, uar: 3, dbr: 0x9000, log_stride: 6, log_size: 8, base: 0x8_0000, pages: 4 };
    let sq = cmds::create_sq(0x21, 0x22, 1, &w);
    assert_eq!(sq.input.len(), 0x20 + 0x30 + 0xc0 + 32);
    assert_eq!(
        get32(&sq.input, 0x20),
        (1 << 31) | (1 << 28) | (1 << 24),
        "rlky, flush, inline L2, RST"
    );
    assert_eq!(get32(&sq.input, 0x28), 0x21, "cqn");
    assert_eq!(get32(&sq.input, 0x40), 1 << 16, "tis_lst_sz");
    assert_eq!(get32(&sq.input, 0x4c), 0x22, "tis_num_0");
    assert_eq!(get32(&sq.input, 0x50), 1 << 28, "cyclic WQ");
    assert_eq!((get32(&sq.input, 0x58), get32(&sq.input, 0x5c)), (5, 3), "pd, uar");
    assert_eq!(get64(&sq.input, 0x60), 0x9000, "dbr");
    assert_eq!(get32(&sq.input, 0x70), (6 << 16) | 8, "stride, size");
    assert_eq!(get64(&sq.input, 0x110), 0x8_0000, "pas[0]");
    let rq = cmds::create_rq(0x31, &WqSpec { log_stride: 4, ..w });
    assert_eq!(get32(&rq.input, 0x20), (1 << 31) | (1 << 28) | (1 << 18));
    let m = cmds::modify_queue(op::MODIFY_RQ, 0x77, 0, 1);
    assert_eq!((get32(&m.input, 0x08), get32(&m.input, 0x20)), (0x77, 1 << 20));

    let rqt = cmds::create_rqt(&[0x40, 0x41, 0x42]);
    assert_eq!((get32(&rqt.input, 0x34), get32(&rqt.input, 0x38)), (3, 3));
    assert_eq!(get32(&rqt.input, 0x20 + 0xf0 + 8), 0x42);
    let tir = cmds::create_tir(9, TirDispatch::Rss(0x50));
    assert_eq!(get32(&tir.input, 0x24) >> 28, 1, "indirect");
    assert_eq!(get32(&tir.input, 0x40), 0x50, "indirect_table");
    assert_eq!(get32(&tir.input, 0x44), (2 << 28) | 9, "Toeplitz, td");
    assert_eq!(&tir.input[0x48..0x70], &cmds::RSS_KEY);
    assert_eq!(get32(&tir.input, 0x70), 0xf, "src/dst IP + ports");
    let fte = cmds::set_flow_entry(0x60, 0x61, 1, [0x0c, 0x42, 0xa1, 1, 2, 3], 0x62);
    assert_eq!(fte.input.len(), 0x348);
    assert_eq!((get32(&fte.input, 0x14), get32(&fte.input, 0x20)), (0x60, 1));
    assert_eq!((get32(&fte.input, 0x44), get32(&fte.input, 0x4c)), (0x61, 4));
    assert_eq!(&fte.input[0x88..0x8c], &[0x0c, 0x42, 0xa1, 1], "dmac_47_16");
    assert_eq!(&fte.input[0x8c..0x90], &[2, 3, 0, 0], "dmac_15_0");
    assert_eq!(get32(&fte.input, 0x340), (2 << 24) | 0x62, "dest TIR");
}

#[test]
fn parsers_reject_implausible_output() {
    let mut o = vec![0u8; 0x10];
    o[0x0c..0x10].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    assert!(matches!(cmds::parse_query_pages(&o), Err(CmdError::BadOutput { .. })));
    o[0x0c..0x10].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(cmds::parse_query_pages(&o).unwrap(), -5);
    let mut t = vec![0u8; 0x20];
    t[0x08..0x0c].copy_from_slice(&3u32.to_be_bytes());
    assert!(cmds::parse_manage_pages_take(&t, 2).is_err(), "more than asked");
    t[0x08..0x0c].copy_from_slice(&1u32.to_be_bytes());
    t[0x10..0x18].copy_from_slice(&0x1234u64.to_be_bytes());
    assert!(cmds::parse_manage_pages_take(&t, 2).is_err(), "unaligned page");
    let mut v = vec![0u8; 0x110];
    assert!(cmds::parse_nic_vport_context(&v).is_err(), "zero MAC");
    cmds::emit_nic_vport_context(
        &mut v,
        &cmds::VportContext { mac: [1, 2, 3, 4, 5, 6], mtu: 1522, min_inline_mode: 1 },
    );
    assert!(cmds::parse_nic_vport_context(&v).is_err(), "multicast MAC");
    assert!(cmds::parse_query_issi(&[0; 0x20]).is_err(), "short");
}

#[test]
fn send_wqe_layout() {
    let f = tcp_frame([1; 6], 0, 100);
    let mut w = [0u8; crate::queues::MAX_WQE];
    let o = TxOpts { inline: 18, cs_flags: cs::L3 | cs::L4, lso: None };
    let len = build_send_wqe(&mut w, 0x1234, 0xabcd, 0x100, &f, 0x5000, &o).unwrap();
    assert_eq!(len, 64, "one WQEBB: ctrl + eth(2 inline) + 16 inline + data");
    assert_eq!(get32(&w, 0), (0x1234 << 8) | 0x0a, "wqe_index | SEND");
    assert_eq!(get32(&w, 4), (0xabcd << 8) | 4, "sqn | ds");
    assert_eq!(w[16 + 4], 0xc0, "cs_flags");
    assert_eq!(get32(&w, 16 + 0x0c) >> 16, 18, "inline_hdr_sz");
    assert_eq!(&w[16 + 0x0e..16 + 0x0e + 18], &f[..18]);
    assert_eq!((get32(&w, 48), get32(&w, 52)), (f.len() as u32 - 18, 0x100));
    assert_eq!(get64(&w, 56), 0x5000 + 18);
    let lso = TxOpts { lso: Some((1000, 54)), cs_flags: cs::L4, inline: 0 };
    let len = build_send_wqe(&mut w, 1, 2, 3, &f, 0x5000, &lso).unwrap();
    assert_eq!(len, 112, "ctrl + eth + 52 more inline bytes (64) + data");
    assert_eq!(get32(&w, 0) & 0xff, 0x0e, "LSO opcode");
    assert_eq!(u16::from_be_bytes([w[22], w[23]]), 1000, "mss");
    assert_eq!(&w[16 + 0x0e..16 + 0x0e + 54], &f[..54]);
    assert!(build_send_wqe(&mut w, 0, 0, 0, &f, 0, &TxOpts { lso: Some((1, 300)), ..o }).is_none());
    // A runt is inlined whole: no data segment.
    let len = build_send_wqe(&mut w, 0, 0, 0, &f[..14], 0, &o).unwrap();
    assert_eq!((len, get32(&w, 4) & 0x3f), (48, 3), "2 inline bytes in eth, 12 in the next unit");
}

#[test]
fn cqe_parsing() {
    let mut b = [0u8; 64];
    b[cqe::BYTE_CNT..cqe::BYTE_CNT + 4].copy_from_slice(&60u32.to_be_bytes());
    b[cqe::TAIL..cqe::TAIL + 2].copy_from_slice(&7u16.to_be_bytes());
    b[cqe::FLAGS_WORD] = 0b111;
    b[cqe::FLAGS_WORD + 1] = 0x10 | 0x08;
    b[0x3f] = cqe_op::RESP_SEND << 4;
    assert_eq!(parse_cqe(&b), Cqe::Recv { wqe_counter: 7, byte_cnt: 60, csum_ok: true, hash: 0 });
    b[cqe::FLAGS_WORD] = 0b011; // l4 not ok
    assert!(matches!(parse_cqe(&b), Cqe::Recv { csum_ok: false, .. }));
    b[0x3f] = cqe_op::RESP_ERR << 4;
    b[cqe::ERR_SYNDROME + 3] = 0x05;
    b[cqe::ERR_SYNDROME + 2] = 0x77;
    assert_eq!(
        parse_cqe(&b),
        Cqe::Error { opcode: 0xe, wqe_counter: 7, syndrome: 5, vendor: 0x77 }
    );
    b[0x3f] = 0x9 << 4;
    assert_eq!(parse_cqe(&b), Cqe::Unknown(9));
}

// ---- Bring-up and teardown ----

#[test]
fn bring_up_runs_in_prm_order_and_teardown_reverses_it() {
    let fake = FakeHca::new();
    let p = pool(256);
    let mut nic = up(&fake, &p, 2);
    let log = nic.command_log();
    let pos = |o: u16| {
        log.iter().position(|&x| x == o).unwrap_or_else(|| panic!("{} missing", op::name(o)))
    };
    let order = [
        op::ENABLE_HCA,
        op::QUERY_ISSI,
        op::SET_ISSI,
        op::QUERY_PAGES,
        op::MANAGE_PAGES,
        op::QUERY_HCA_CAP,
        op::SET_HCA_CAP,
        op::INIT_HCA,
        op::QUERY_SPECIAL_CONTEXTS,
        op::ALLOC_UAR,
        op::CREATE_EQ,
        op::ALLOC_PD,
        op::ALLOC_TRANSPORT_DOMAIN,
        op::QUERY_NIC_VPORT_CONTEXT,
        op::CREATE_TIS,
        op::CREATE_CQ,
        op::CREATE_SQ,
        op::MODIFY_SQ,
        op::CREATE_RQ,
        op::MODIFY_RQ,
        op::CREATE_RQT,
        op::CREATE_TIR,
        op::CREATE_FLOW_TABLE,
        op::CREATE_FLOW_GROUP,
        op::SET_FLOW_TABLE_ENTRY,
        op::SET_FLOW_TABLE_ROOT,
    ];
    for w in order.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{} before {}", op::name(w[0]), op::name(w[1]));
    }
    assert_eq!(log.iter().filter(|&&o| o == op::CREATE_CQ).count(), 4, "two CQs per queue pair");
    assert_eq!(log.iter().filter(|&&o| o == op::QUERY_PAGES).count(), 3, "boot, init, regular");
    {
        let m = fake.m();
        assert_eq!(m.owned.len(), 8 + 24 + 16, "every page asked for was given");
        assert!(m.log.iter().all(|&(_, s)| s == 0), "no command failed: {:?}", m.log);
    }
    assert_eq!(nic.pages_given(), 48);
    let info = nic.info();
    assert_eq!(info.fw.fw_rev, (16, 22, 1000));
    assert_eq!((info.issi, info.csum, info.resd_lkey, info.max_lso_log), (1, true, 0x100, 18));
    let c = nic.capabilities();
    assert_eq!(c.mac.0, [0x0c, 0x42, 0xa1, 0x12, 0x34, 0x56]);
    assert_eq!((c.mtu, c.rx_queues, c.tx_queues, c.offloads.rss), (1500, 2, 2, true));
    assert!(nic.link().up);
    fake.m().link_up = false;
    assert!(!nic.link().up);
    assert_eq!(p.available(), 256 - 2 * 64, "both receive rings filled");

    let before = nic.command_log().len();
    nic.teardown().unwrap();
    let tail: Vec<u16> = nic.command_log()[before..].to_vec();
    let n = tail.len();
    assert_eq!(&tail[n - 3..], &[op::TEARDOWN_HCA, op::MANAGE_PAGES, op::DISABLE_HCA]);
    assert_eq!(tail[0], op::DELETE_FLOW_TABLE_ENTRY, "steering goes first");
    let m = fake.m();
    assert!(m.no_objects(), "every object destroyed");
    assert!(m.owned.is_empty(), "every page reclaimed");
    assert!(!m.enabled());
    assert!(m.log.iter().all(|&(_, s)| s == 0), "no teardown command failed: {:?}", m.log);
    drop(m);
    assert_eq!(nic.pages_given(), 0);
    assert!(nic.rx_burst(Q, &mut Batch::new(4)).is_err(), "no data path after teardown");
    drop(nic);
    assert_eq!(p.available(), 256, "posted buffers returned");
    assert_eq!(fake.sys.iommu().mappings(), 0, "every DMA mapping gone");
}

#[test]
fn firmware_errors_surface_as_typed_errors_with_syndromes() {
    let fake = FakeHca::new();
    fake.m().fail_next = Some((op::CREATE_SQ, CmdStatus::BadParam, 0xdead_beef));
    let e = Mlx5::bring_up(fake.device(), pool(128), cfg(1)).unwrap_err();
    assert_eq!(
        e,
        Mlx5Error::Cmd(CmdError::Failed {
            opcode: op::CREATE_SQ,
            status: CmdStatus::BadParam,
            syndrome: 0xdead_beef
        })
    );
    assert!(e.to_string().contains("CREATE_SQ") && e.to_string().contains("deadbeef"), "{e}");
    {
        let m = fake.m();
        assert!(!m.enabled(), "a failed bring-up disables the HCA");
        assert!(m.owned.is_empty(), "and takes its pages back");
    }
    // The failure keeps what a bug report needs: firmware revision and every command with its
    // outcome, the refused one with its syndrome, then the cleanup.
    let fake = FakeHca::new();
    fake.m().fail_next = Some((op::CREATE_SQ, CmdStatus::BadParam, 0x1234_5678));
    let f = Mlx5::try_bring_up(fake.device(), pool(128), cfg(1)).unwrap_err();
    assert!(f.fw.is_some());
    let bad: Vec<_> = f.log.iter().filter(|r| r.result.is_err()).collect();
    assert_eq!(bad.len(), 1, "{:?}", f.log);
    assert_eq!(bad[0].opcode, op::CREATE_SQ);
    assert!(bad[0].to_string().contains("CREATE_SQ") && bad[0].to_string().contains("12345678"));
    let ops: Vec<u16> = f.log.iter().map(|r| r.opcode).collect();
    assert_eq!(ops, fake.m().log.iter().map(|&(o, _)| o).collect::<Vec<_>>(), "nothing missed");
    assert_eq!(ops.last(), Some(&op::DISABLE_HCA));
    // A ring larger than the HCA's largest CQ is refused before any queue is created.
    let fake = FakeHca::new();
    fake.m().set_general_cap(crate::cmds::cap::LOG_MAX_CQ_SZ, 6);
    let e = Mlx5::bring_up(fake.device(), pool(64), Mlx5Config { log_rq_size: 7, ..cfg(1) });
    assert!(matches!(e, Err(Mlx5Error::Unsupported(_))), "{e:?}");
    assert!(!fake.m().log.iter().any(|&(o, _)| o == op::CREATE_CQ));
    // A delivery failure (bad token) is its own error.
    let fake = FakeHca::new();
    fake.m().fail_delivery = Some(DeliveryStatus::Token);
    let e = Mlx5::bring_up(fake.device(), pool(64), cfg(1)).unwrap_err();
    assert_eq!(
        e,
        Mlx5Error::Cmd(CmdError::Delivery {
            opcode: op::ENABLE_HCA,
            status: DeliveryStatus::Token
        })
    );
    // Wrong command interface revision, firmware stuck initializing, not a ConnectX.
    let fake = FakeHca::new();
    fake.m().cmdif_rev = 3;
    assert_eq!(Mlx5::bring_up(fake.device(), pool(8), cfg(1)).unwrap_err(), Mlx5Error::CmdIfRev(3));
    let fake = FakeHca::new();
    fake.m().init_reads = u32::MAX;
    assert_eq!(Mlx5::bring_up(fake.device(), pool(8), cfg(1)).unwrap_err(), Mlx5Error::InitTimeout);
    let fake = FakeHca::with_id(0x1003);
    assert_eq!(
        crate::open(fake.device(), pool(8), cfg(1)).unwrap_err(),
        Mlx5Error::NotConnectX(0x15b3, 0x1003)
    );
    for id in [0x1013, 0x1015, 0x1017, 0x1019, 0x101b, 0x101d] {
        assert!(crate::supported(0x15b3, id).is_some());
    }
    assert!(crate::supported(0x8086, 0x1017).is_none());
}

#[test]
fn model_refuses_out_of_order_and_bad_commands() {
    use crate::cmdq::CmdQueue;
    use std::rc::Rc;
    let fake = FakeHca::new();
    let dev = fake.device();
    let bar = Rc::new(dev.map_bar(0).unwrap());
    let (mut q, fw) = CmdQueue::init(bar, dev.container(), 100).unwrap();
    assert_eq!((fw.cmdif_rev, fw.log_cmdq_stride), (5, 6));
    let failed = |r: Result<Vec<u8>, CmdError>| match r {
        Err(CmdError::Failed { status, syndrome, .. }) => (status, syndrome),
        o => panic!("expected a failure, got {o:?}"),
    };
    let c = cmds::init_hca();
    assert_eq!(
        failed(q.exec(&c.input, c.out_len)),
        (CmdStatus::BadSysState, syndrome::NOT_ENABLED)
    );
    let c = cmds::enable_hca();
    q.exec(&c.input, c.out_len).unwrap();
    let c = cmds::set_issi(7);
    assert_eq!(failed(q.exec(&c.input, c.out_len)), (CmdStatus::BadParam, syndrome::BAD_ISSI));
    let c = cmds::set_issi(1);
    q.exec(&c.input, c.out_len).unwrap();
    let c = cmds::init_hca();
    assert_eq!(failed(q.exec(&c.input, c.out_len)), (CmdStatus::NoResources, syndrome::NO_PAGES));
    let c = cmds::manage_pages_give(&[0x7000_0000]);
    assert_eq!(
        failed(q.exec(&c.input, c.out_len)),
        (CmdStatus::BadParam, syndrome::BAD_PAGE),
        "unmapped page"
    );
    let c = cmds::alloc_pd();
    assert_eq!(
        failed(q.exec(&c.input, c.out_len)),
        (CmdStatus::BadSysState, syndrome::NOT_ENABLED)
    );
    let mut bogus = cmds::enable_hca();
    bogus.input[0..2].copy_from_slice(&0x0777u16.to_be_bytes());
    assert_eq!(failed(q.exec(&bogus.input, 16)), (CmdStatus::BadOp, syndrome::BAD_OPCODE));
    // A big output through an 8-block mailbox chain comes back intact.
    let c = cmds::query_hca_cap(CapType::EthOffload, true);
    let cap = cmds::parse_query_hca_cap(&q.exec(&c.input, c.out_len).unwrap()).unwrap();
    assert_eq!(cmds::cap::get(&cap, cmds::cap::ETH_RSS_IND_TBL), 8);
    // A big input (a 2-block chain) too.
    let c = cmds::set_hca_cap(CapType::General, &vec![0u8; 0x1000]);
    q.exec(&c.input, c.out_len).unwrap();
}

// ---- Data path ----

#[test]
fn tx_round_trip_is_byte_exact_with_one_doorbell_and_cqe_per_burst() {
    let fake = FakeHca::new();
    let p = pool(512);
    let mut nic = up(&fake, &p, 1);
    let base = p.available();
    let mut b = Batch::new(128);
    let frames: Vec<Vec<u8>> =
        (0..20).map(|i| tcp_frame([2; 6], i, 10 + 70 * i as usize)).collect();
    for f in &frames {
        b.push(p.alloc_copy(f).unwrap()).unwrap();
    }
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 20);
    {
        let m = fake.m();
        assert_eq!(m.sent, frames, "byte-exact");
        assert_eq!(m.doorbells, 1, "one UAR doorbell per burst");
        assert!(m.tx_records.iter().all(|r| r.inline == 18 && r.cs_flags == 0));
    }
    assert_eq!(p.available(), base - 20, "held until the CQE");
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 0);
    assert_eq!(p.available(), base, "one CQE released the whole burst");
    // Backpressure: a 64-WQEBB ring takes 64; the rest stays, in order.
    let other = pool(128);
    for i in 0..70 {
        b.push(other.alloc_copy(&tcp_frame([2; 6], i, 64)).unwrap()).unwrap();
    }
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 64);
    assert_eq!(b.len(), 6);
    assert_eq!(b.as_slice()[0].data(), &tcp_frame([2; 6], 64, 64)[..]);
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 6, "completions freed the ring");
    let c = nic.counters();
    assert_eq!(c.tx_packets, 90);
    assert_eq!(fake.m().sent.len(), 90);
    assert_eq!(c.tx_errors + c.tx_drops, 0);
}

#[test]
fn tx_checksum_offload_sets_flags_and_hca_fills_them() {
    let fake = FakeHca::new();
    let p = pool(128);
    let mut nic = up(&fake, &p, 1);
    let good = tcp_frame([2; 6], 1, 100);
    let mut f = good.clone();
    f[50..52].copy_from_slice(&[0x12, 0x34]); // a seeded/partial value
    f[24..26].fill(0);
    let mut buf = p.alloc_copy(&f).unwrap();
    buf.set_tx_csum(Some(CsumRequest { start: 34, offset: 16 }));
    let mut b = Batch::new(4);
    b.push(buf).unwrap();
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 1);
    let m = fake.m();
    assert_eq!(m.tx_records[0].cs_flags, cs::L3 | cs::L4);
    assert_eq!(m.sent[0], good, "the HCA computed both checksums");
}

#[test]
fn rx_round_trip_checksum_flags_and_refill() {
    let fake = FakeHca::new();
    let p = pool(512);
    let mut nic = up(&fake, &p, 1);
    let mac = nic.capabilities().mac.0;
    let mut sent = Vec::new();
    for i in 0..40u16 {
        let mut f = tcp_frame(mac, i, 20 + 30 * usize::from(i));
        if i % 4 == 3 {
            f[60] ^= 0xff; // payload corrupted: the L4 checksum fails
        }
        assert!(fake.m().inject(&f).is_some());
        sent.push(f);
    }
    assert!(fake.m().inject(&tcp_frame([0x02, 9, 9, 9, 9, 9], 0, 10)).is_none(), "not our MAC");
    assert_eq!(fake.m().rx_unmatched, 1);
    let mut bcast = tcp_frame([0xff; 6], 0, 10);
    bcast[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(fake.m().inject(&bcast).is_some(), "broadcast is steered to us too");
    let mut out = Batch::new(16);
    let mut got = Vec::new();
    while got.len() < 41 {
        let n = nic.rx_burst(Q, &mut out).unwrap();
        assert!(n > 0 && n <= 16);
        got.extend(out.drain());
    }
    for (i, b) in got.iter().take(40).enumerate() {
        assert_eq!(b.data(), &sent[i][..], "frame {i}");
        let want = if i % 4 == 3 { RxCsum::Unknown } else { RxCsum::Verified };
        assert_eq!(b.rx_csum(), want, "frame {i}");
    }
    assert_eq!(got[40].rx_csum(), RxCsum::Unknown, "ARP: no L4");
    let c = nic.counters();
    assert_eq!((c.rx_packets, c.rx_errors), (41, 0));
    assert_eq!(c.rx_bytes, sent.iter().map(|f| f.len() as u64).sum::<u64>() + bcast.len() as u64);
    drop(got);
    assert_eq!(p.available(), 512 - 64, "ring kept full, the rest back in the pool");
    // Past the ring size several times (counter wrap of owner phases).
    for round in 0..5u16 {
        for i in 0..50 {
            assert!(fake.m().inject(&tcp_frame(mac, round * 100 + i, 64)).is_some());
        }
        let mut n = 0;
        while n < 50 {
            n += nic.rx_burst(Q, &mut out).unwrap();
            out.clear();
        }
    }
    assert_eq!(nic.counters().rx_packets, 41 + 250);
}

#[test]
fn loopback_tx_to_rx_and_lso() {
    let fake = FakeHca::new();
    let p = pool(256);
    let mut nic = up(&fake, &p, 1);
    let mac = nic.capabilities().mac.0;
    fake.m().loopback = true;
    let big = tcp_frame(mac, 7, 1800);
    nic.tx_lso(Q, p.alloc_copy(&big).unwrap(), 700).unwrap();
    let m = fake.m();
    assert_eq!(
        (m.tx_records[0].opcode, m.tx_records[0].mss, m.tx_records[0].inline),
        (0x0e, 700, 54)
    );
    assert_eq!(m.sent.len(), 3, "1800 bytes in 700-byte segments");
    let payload: Vec<u8> = m.sent.iter().flat_map(|s| s[54..].to_vec()).collect();
    assert_eq!(payload, big[54..].to_vec());
    for (k, s) in m.sent.iter().enumerate() {
        assert_eq!(csum(&s[14..34], 0), 0, "IPv4 checksum of segment {k}");
        assert_eq!(tcp_sum(s), 0, "TCP checksum of segment {k}");
        let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
        assert_eq!(seq, 1 + 700 * k as u32);
    }
    drop(m);
    let mut out = Batch::new(8);
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 3, "looped back through steering");
    assert!(out.iter().all(|b| b.rx_csum() == RxCsum::Verified));
}

#[test]
fn rss_spreads_flows_over_queues_by_toeplitz_hash() {
    let fake = FakeHca::new();
    let p = pool(1024);
    let mut nic = up(&fake, &p, 4);
    let mac = nic.capabilities().mac.0;
    let rqns = fake.m().rqns();
    let drain = |nic: &mut Mlx5| -> Vec<usize> {
        (0..4)
            .map(|q| {
                let mut out = Batch::new(64);
                let mut n = 0;
                loop {
                    let k = nic.rx_burst(QueueId(q), &mut out).unwrap();
                    if k == 0 {
                        return n;
                    }
                    n += k;
                    out.clear();
                }
            })
            .collect()
    };
    let mut first = Vec::new();
    let mut delivered = vec![0usize; 4];
    for i in 0..200u16 {
        first.push(fake.m().inject(&tcp_frame(mac, i, 32)).unwrap());
        if i % 20 == 19 {
            drain(&mut nic).iter().enumerate().for_each(|(q, n)| delivered[q] += n);
        }
    }
    for i in 0..200u16 {
        assert_eq!(
            fake.m().inject(&tcp_frame(mac, i, 32)),
            Some(first[usize::from(i)]),
            "flow {i} sticks"
        );
        if i % 20 == 19 {
            drain(&mut nic).iter().enumerate().for_each(|(q, n)| delivered[q] += n);
        }
    }
    let per: Vec<usize> =
        rqns.iter().map(|r| fake.m().rx_per_rq.get(r).copied().unwrap_or(0) as usize).collect();
    assert!(per.iter().all(|&n| n >= 40), "every queue gets a share: {per:?}");
    assert_eq!(delivered, per, "each queue delivers what its RQ received");
    assert_eq!(per.iter().sum::<usize>(), 400);
    // The hash is the Microsoft Toeplitz of the verification suite (66.9.149.187:2794 →
    // 161.142.100.80:1766 hashes to 0x51ccc178).
    let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
    assert_eq!(crate::fake::toeplitz(&cmds::RSS_KEY, &input), 0x51cc_c178);
}

#[test]
fn malformed_cqes_are_rejected_and_counted() {
    let fake = FakeHca::new();
    let p = pool(256);
    let mut nic = up(&fake, &p, 1);
    let mac = nic.capabilities().mac.0;
    let rcq = fake.m().cqns()[1];
    let mut out = Batch::new(16);
    let cqe_with = |counter: u16, bytes: u32| {
        let mut b = [0u8; 64];
        b[cqe::BYTE_CNT..cqe::BYTE_CNT + 4].copy_from_slice(&bytes.to_be_bytes());
        b[cqe::TAIL..cqe::TAIL + 2].copy_from_slice(&counter.to_be_bytes());
        b
    };
    // A CQE of the wrong owner phase is not consumed.
    fake.m().push_cqe(rcq, cqe_with(0, 60), cqe_op::RESP_SEND, true);
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 0);
    assert_eq!(nic.counters().rx_errors, 0);
    // Byte count beyond the posted buffer; a counter that is not the next WQE; an unknown
    // opcode; a requester CQE on a receive CQ; a responder error CQE.
    fake.m().push_cqe(rcq, cqe_with(0, 100_000), cqe_op::RESP_SEND, false);
    fake.m().push_cqe(rcq, cqe_with(40, 60), cqe_op::RESP_SEND, false);
    fake.m().push_cqe(rcq, cqe_with(1, 60), 0x9, false);
    fake.m().push_cqe(rcq, cqe_with(1, 60), cqe_op::REQ, false);
    fake.m().push_cqe(rcq, cqe_with(1, 60), cqe_op::RESP_ERR, false);
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 0);
    assert_eq!(nic.counters().rx_errors, 5);
    assert!(nic.broken().is_none());
    let f = tcp_frame(mac, 3, 64);
    // The model's RQ counter is at 0 while the driver's is at 2: its CQE names WQE 0, which
    // the driver refuses (counted), never handing out a recycled buffer.
    assert!(fake.m().inject(&f).is_some());
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 0);
    assert_eq!(nic.counters().rx_errors, 6);
    assert_eq!(p.available(), 256 - 64, "no buffer lost: recycled ones were reposted");

    // Transmit side: a CQE naming no outstanding WQE is counted; an error CQE stops the queue.
    let scq = fake.m().cqns()[0];
    fake.m().push_cqe(scq, cqe_with(33, 0), cqe_op::REQ, false);
    let mut b = Batch::new(4);
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 0);
    assert_eq!(nic.counters().tx_errors, 1);
    fake.m().push_cqe(scq, cqe_with(0, 0), cqe_op::REQ_ERR, false);
    assert!(nic.tx_burst(Q, &mut b).is_err());
    assert!(nic.broken().is_some());
    assert_eq!(nic.counters().tx_errors, 2);
}

#[test]
fn page_request_events_are_served() {
    let fake = FakeHca::new();
    let p = pool(128);
    let nic = up(&fake, &p, 1);
    assert_eq!(nic.pages_given(), 48);
    fake.m().request_pages(10);
    assert_eq!(nic.poll_events().unwrap(), 1);
    assert_eq!(nic.pages_given(), 58);
    assert_eq!(fake.m().owned.len(), 58);
    fake.m().request_pages(-4);
    assert!(nic.link().up, "link() services events too");
    assert_eq!(nic.pages_given(), 54);
    assert_eq!(fake.m().owned.len(), 54);
    drop(nic);
    assert!(fake.m().owned.is_empty());
}

#[test]
fn bad_configuration_is_refused() {
    let fake = FakeHca::new();
    let p = pool(64);
    for c in [Mlx5Config { queues: 0, ..cfg(1) }, Mlx5Config { log_sq_size: 3, ..cfg(1) }] {
        assert!(matches!(Mlx5::bring_up(fake.device(), p.clone(), c), Err(Mlx5Error::Config(_))));
    }
    let e = Mlx5::bring_up(fake.device(), p, cfg(300 / 2)).unwrap_err();
    assert!(matches!(e, Mlx5Error::Config(_)), "{e}");
}
