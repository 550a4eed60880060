//! The driver against the register-level device model (`fake_dev`), DMA through the fake IOMMU.

use joyride_drivers::csum::ones_complement_sum;
use joyride_drivers::{Batch, CsumRequest, Nic, Pool, PoolConfig, QueueId, RxCsum};

use crate::desc::{ERR_82599, RXD_STAT_DD, RXD_STAT_EOP};
use crate::fake_dev::{rx_base, Access, Fake, MAC};
use crate::regs::{common, x82576, x82599};
use crate::{IntelConfig, IntelError, IntelNic, Personality};

const BOTH: [Personality; 2] = [Personality::X82599, Personality::I82576];

fn pool(count: u32) -> Pool {
    Pool::new(PoolConfig { count, hugepages: false, mlock: false, ..PoolConfig::default() })
        .unwrap()
}

fn cfg(queues: u16) -> IntelConfig {
    IntelConfig {
        rx_queues: queues,
        tx_queues: queues,
        ring_size: 64,
        link_wait_ms: 0,
        ..IntelConfig::default()
    }
}

fn open(p: Personality, pl: &Pool, queues: u16) -> (Fake, IntelNic) {
    let fake = Fake::new(p);
    let nic = IntelNic::open(fake.device(), pl.clone(), cfg(queues)).unwrap();
    (fake, nic)
}

/// An IPv4 frame to us carrying TCP (`proto` 6) or UDP (17) from `sport` with a correct
/// checksum, `payload` bytes long.
fn ip_frame(proto: u8, sport: u16, payload: usize) -> Vec<u8> {
    let l4h = if proto == 6 { 20 } else { 8 };
    let mut f = vec![0u8; 14 + 20 + l4h + payload];
    f[0..6].copy_from_slice(&MAC);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[8, 0]);
    let iplen = (20 + l4h + payload) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&iplen.to_be_bytes());
    f[22] = 64;
    f[23] = proto;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    let c = !ones_complement_sum(0, &f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    if proto == 6 {
        f[46] = 5 << 4;
    } else {
        f[38..40].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    }
    for (i, b) in f[34 + l4h..].iter_mut().enumerate() {
        *b = (i * 7 + usize::from(sport)) as u8;
    }
    let field = 34 + if proto == 6 { 16 } else { 6 };
    let s = !ones_complement_sum(pseudo(&f), &f[34..]);
    f[field..field + 2].copy_from_slice(&s.to_be_bytes());
    f
}

/// The pseudo-header sum of an IPv4 frame (not complemented).
fn pseudo(f: &[u8]) -> u16 {
    let l4len = f.len() - 34;
    let mut p = f[26..34].to_vec();
    p.extend_from_slice(&[0, f[23]]);
    p.extend_from_slice(&(l4len as u16).to_be_bytes());
    ones_complement_sum(0, &p)
}

fn writes(log: &[Access]) -> Vec<(u64, u32)> {
    log.iter().filter(|a| a.0 == 'W').map(|a| (a.1, a.2)).collect()
}

fn first(log: &[Access], pred: impl Fn(&Access) -> bool) -> usize {
    log.iter().position(pred).expect("access present")
}

#[test]
fn x82599_bring_up_follows_the_datasheet_order() {
    let pl = pool(256);
    let (fake, nic) = open(Personality::X82599, &pl, 1);
    assert_eq!(nic.personality(), Personality::X82599);
    let m = fake.m();
    let log = &m.log;
    let w = |off: u64, bits: u32| first(log, |a| a.0 == 'W' && a.1 == off && a.2 & bits == bits);
    let eimc = w(x82599::EIMC, x82599::EIMC_ALL);
    let mdis = w(x82599::CTRL, x82599::CTRL_MASTER_DISABLE);
    let rst = w(x82599::CTRL, x82599::CTRL_RST | x82599::CTRL_LRST);
    let ard = first(log, |a| a.0 == 'R' && a.1 == x82599::EEC && a.2 & x82599::EEC_ARD != 0);
    let dmai =
        first(log, |a| a.0 == 'R' && a.1 == x82599::RDRXCTL && a.2 & x82599::RDRXCTL_DMAIDONE != 0);
    let autoc = w(x82599::AUTOC, x82599::AUTOC_AN_RESTART);
    let srrctl =
        w(x82599::RX_QUEUE_BASE + x82599::SRRCTL_IN_BLOCK, common::SRRCTL_DESCTYPE_ADV_ONEBUF);
    let rxdctl = w(x82599::RX_QUEUE_BASE + common::DCTL, common::DCTL_ENABLE);
    let rdt = first(log, |a| a.0 == 'W' && a.1 == x82599::RX_QUEUE_BASE + common::DT && a.2 > 0);
    let rxen = w(x82599::RXCTRL, x82599::RXCTRL_RXEN);
    let arbdis = w(x82599::RTTDCS, x82599::RTTDCS_ARBDIS);
    let mtqc = first(log, |a| a.0 == 'W' && a.1 == x82599::MTQC);
    let te = w(x82599::DMATXCTL, x82599::DMATXCTL_TE);
    let txdctl = w(x82599::TX_QUEUE_BASE + common::DCTL, common::DCTL_ENABLE);
    let order =
        [eimc, mdis, rst, ard, dmai, autoc, srrctl, rxdctl, rdt, rxen, arbdis, mtqc, te, txdctl];
    assert!(order.windows(2).all(|p| p[0] < p[1]), "datasheet order violated: {order:?}");
    // ARBDIS is cleared again after MTQC.
    assert!(log[mtqc..te]
        .iter()
        .any(|a| a.0 == 'W' && a.1 == x82599::RTTDCS && a.2 & x82599::RTTDCS_ARBDIS == 0));
    // Ring base and length reached the device before the queue was enabled.
    let bal = first(log, |a| a.0 == 'W' && a.1 == x82599::RX_QUEUE_BASE + common::DBAL);
    let len =
        first(log, |a| a.0 == 'W' && a.1 == x82599::RX_QUEUE_BASE + common::DLEN && a.2 == 64 * 16);
    assert!(bal < rxdctl && len < rxdctl);
    assert_eq!(m.resets, 1);
    // CRC stripping agrees in HLREG0 and RDRXCTL (§8.2.3.8.8).
    assert_ne!(m.reg_value(x82599::HLREG0) & x82599::HLREG0_RXCRCSTRP, 0);
    assert_ne!(m.reg_value(x82599::RDRXCTL) & x82599::RDRXCTL_CRCSTRIP, 0);
    assert_eq!(m.reg_value(common::MRQC), 0, "one queue: no RSS");
    drop(m);
    assert!(nic.link().up);
    assert_eq!(nic.link().speed_mbps, Some(10_000));
    assert_eq!(nic.capabilities().mac.0, MAC, "MAC from RAL/RAH");
    assert_eq!(pl.available(), 256 - 63, "receive ring filled (one slot stays empty)");
}

#[test]
fn igb_bring_up_restarts_autoneg_through_mdic() {
    let pl = pool(256);
    let (fake, nic) = open(Personality::I82576, &pl, 1);
    let m = fake.m();
    let log = &m.log;
    let rst = first(log, |a| a.0 == 'W' && a.1 == x82576::CTRL && a.2 & x82576::CTRL_RST != 0);
    let slu = first(log, |a| {
        a.0 == 'W'
            && a.1 == x82576::CTRL
            && a.2 & x82576::CTRL_SLU != 0
            && a.2 & x82576::CTRL_LRST == 0
    });
    let mdic = first(log, |a| a.0 == 'W' && a.1 == x82576::MDIC);
    let rxdctl = first(log, |a| a.0 == 'W' && a.1 == x82576::RX_QUEUE_BASE + common::DCTL);
    let rcen = first(log, |a| a.0 == 'W' && a.1 == x82576::RCTL && a.2 & x82576::RCTL_EN != 0);
    let txdctl = first(log, |a| a.0 == 'W' && a.1 == x82576::TX_QUEUE_BASE + common::DCTL);
    let tcen = first(log, |a| a.0 == 'W' && a.1 == x82576::TCTL && a.2 & x82576::TCTL_EN != 0);
    assert!([rst, slu, mdic, rxdctl, rcen, txdctl, tcen].windows(2).all(|p| p[0] < p[1]));
    let v = log[mdic].2;
    assert_eq!(v & 0xffff, 0x1340, "AN enable + restart, 1000FD");
    assert_eq!((v >> 16) & 0x1f, 0, "PHY register 0");
    assert_eq!((v >> 21) & 0x1f, 1, "PHY address 1");
    assert_eq!(v & (3 << 26), x82576::MDIC_OP_WRITE);
    assert_eq!(m.phy_ctrl, 0x1340);
    drop(m);
    let l = nic.link();
    assert!(l.up && l.speed_mbps == Some(1000));
}

#[test]
fn unsupported_devices_and_configs_are_refused() {
    let pl = pool(64);
    let fake = Fake::new(Personality::I82576);
    let e = IntelNic::open(fake.device(), pl.clone(), IntelConfig { ring_size: 60, ..cfg(1) });
    assert!(matches!(e, Err(IntelError::Config(_))));
    let e = IntelNic::open(fake.device(), pl.clone(), cfg(9));
    assert!(matches!(e, Err(IntelError::Config(_))), "82576 has 8 RSS queues");
    assert_eq!(Personality::from_pci(0x8086, 0x10fb), Some(Personality::X82599));
    assert_eq!(Personality::from_pci(0x8086, 0x10c9), Some(Personality::I82576));
    assert_eq!(Personality::from_pci(0x8086, 0x10d3), None, "e1000e");
    assert_eq!(Personality::from_pci(0x15b3, 0x10fb), None);
    let small = Pool::new(PoolConfig {
        count: 64,
        buf_size: 1024,
        headroom: 128,
        hugepages: false,
        mlock: false,
    })
    .unwrap();
    let e = IntelNic::open(fake.device(), small, cfg(1));
    assert!(matches!(e, Err(IntelError::Config(_))), "1 KiB buffers cannot hold a frame");
}

#[test]
fn tx_and_rx_round_trip_byte_exact_with_batched_tails() {
    for p in BOTH {
        let pl = pool(512);
        let (fake, mut nic) = open(p, &pl, 1);
        let q = QueueId(0);
        let tdt = rx_base(p) - rx_base(p)
            + match p {
                Personality::X82599 => x82599::TX_QUEUE_BASE,
                Personality::I82576 => x82576::TX_QUEUE_BASE,
            }
            + common::DT;
        let frames: Vec<Vec<u8>> =
            (0..100).map(|i| ip_frame(17, 1000 + i, (i as usize * 13) % 1400)).collect();
        let before = writes(&fake.m().log).iter().filter(|w| w.0 == tdt).count();
        let mut sent = 0;
        for chunk in frames.chunks(20) {
            let mut b = Batch::new(32);
            for f in chunk {
                b.push(pl.alloc_copy(f).unwrap()).unwrap();
            }
            sent += nic.tx_burst(q, &mut b).unwrap();
            assert!(b.is_empty());
        }
        assert_eq!(sent, 100);
        let m = fake.m();
        let tails = writes(&m.log).iter().filter(|w| w.0 == tdt).count() - before;
        assert_eq!(tails, 5, "{p:?}: one tail write per burst");
        assert_eq!(m.sent.len(), 100);
        for (s, f) in m.sent.iter().zip(&frames) {
            assert_eq!(&s.frame, f, "{p:?}: transmitted byte-exact");
            assert!(!s.txsm && s.queue == 0);
        }
        drop(m);
        // Reclaim: the next burst returns completed buffers to the pool.
        let avail = pl.available();
        nic.tx_burst(q, &mut Batch::new(1)).unwrap();
        assert!(avail < 512 - 63);
        assert_eq!(pl.available(), 512 - 63, "{p:?}: every completed buffer reclaimed");

        // Receive: 100 frames in bursts of 32.
        let rdt = rx_base(p) + common::DT;
        let rdt_before = writes(&fake.m().log).iter().filter(|w| w.0 == rdt).count();
        let mut got = Vec::new();
        let mut b = Batch::new(32);
        for chunk in frames.chunks(25) {
            for f in chunk {
                assert!(fake.m().inject(f), "{p:?}: descriptor available");
            }
            let want = got.len() + chunk.len();
            while got.len() < want {
                b.clear();
                let n = nic.rx_burst(q, &mut b).unwrap();
                assert!(n > 0);
                got.extend(b.iter().map(|x| (x.data().to_vec(), x.rx_csum())));
            }
        }
        assert_eq!(got.len(), 100);
        for ((g, cs), f) in got.iter().zip(&frames) {
            assert_eq!(g, f, "{p:?}: received byte-exact");
            assert_eq!(*cs, RxCsum::Verified, "{p:?}: UDP checksum verified by the device");
        }
        let refills = writes(&fake.m().log).iter().filter(|w| w.0 == rdt).count() - rdt_before;
        assert!(refills <= 5, "{p:?}: {refills} receive tail writes for 100 frames");
        let c = nic.counters();
        assert_eq!((c.rx_packets, c.tx_packets, c.rx_errors), (100, 100, 0));
        let hw = nic.hw_stats().unwrap();
        assert_eq!(
            (hw.rx_good_packets, hw.tx_good_packets),
            (100, 100),
            "{p:?}: statistics registers"
        );
    }
}

#[test]
fn malformed_write_backs_are_rejected_and_counted() {
    for p in BOTH {
        let pl = pool(256);
        let (fake, mut nic) = open(p, &pl, 1);
        let q = QueueId(0);
        let base_avail = pl.available();
        let mut b = Batch::new(32);
        {
            let mut m = fake.m();
            m.forge_rx(0, 0, RXD_STAT_DD | RXD_STAT_EOP, 4000); // longer than the 2 KiB buffer
            m.forge_rx(0, 1, RXD_STAT_DD | RXD_STAT_EOP, 0); // empty
            m.forge_rx(0, 2, RXD_STAT_DD, 100); // no EOP: a frame we never let span buffers
            m.forge_rx(0, 3, RXD_STAT_DD | RXD_STAT_EOP | ERR_82599.frame & 0x0100_0000, 100);
            // CRC error
        }
        let n = nic.rx_burst(q, &mut b).unwrap();
        assert_eq!(n, 0, "{p:?}: nothing malformed is delivered");
        assert_eq!(nic.counters().rx_errors, 4, "{p:?}");
        drop(b);
        // The rejected buffers went back to the pool (the ring refills in batches of 32).
        assert_eq!(pl.available(), base_avail + 4, "{p:?}: no buffer leaked");
    }
}

#[test]
fn dd_on_an_unposted_descriptor_is_counted() {
    // A tiny pool: only 10 buffers can be posted, so descriptors 10.. are never posted.
    let pl = pool(10);
    let (fake, mut nic) = open(Personality::X82599, &pl, 1);
    assert_eq!(pl.available(), 0);
    let mut b = Batch::new(32);
    for i in 0..10 {
        fake.m().forge_rx(0, i, RXD_STAT_DD | RXD_STAT_EOP, 60);
    }
    assert_eq!(nic.rx_burst(QueueId(0), &mut b).unwrap(), 10);
    // The driver cannot refill (its pool is in `b`); next == tail. The device writes DD there.
    fake.m().forge_rx(0, 10, RXD_STAT_DD | RXD_STAT_EOP, 60);
    assert_eq!(nic.rx_burst(QueueId(0), &mut Batch::new(4)).unwrap(), 0);
    assert_eq!(nic.unposted_writebacks(), 1);
    assert!(nic.counters().rx_drops >= 1, "nothing posted is a drop");
}

#[test]
fn rss_programs_reta_and_spreads_flows() {
    for p in BOTH {
        let pl = pool(1024);
        let (fake, mut nic) = open(p, &pl, 4);
        assert!(nic.capabilities().offloads.rss);
        let reta = nic.reta().unwrap();
        assert_eq!(reta.len(), 128);
        assert!(reta.iter().enumerate().all(|(i, &q)| usize::from(q) == i % 4), "{p:?}: RETA");
        let mrqc = fake.m().reg_value(common::MRQC);
        let mrqe = if p == Personality::X82599 { 1 } else { 2 };
        assert_eq!(mrqc & 7, mrqe, "{p:?}: MRQC.MRQE = RSS");
        assert_ne!(mrqc & (1 << 16), 0, "{p:?}: TCP/IPv4 hashed");
        let rxcsum = fake.m().reg_value(x82599::RXCSUM);
        assert_ne!(rxcsum & common::RXCSUM_PCSD, 0, "{p:?}: PCSD for the RSS hash");
        // The key is the documented one: check the model's Toeplitz against a published value
        // (Microsoft RSS verification suite: 66.9.149.187:2794 -> 161.142.100.80:1766, IPv4
        // with TCP ports, hash 0x51ccc178).
        let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(crate::fake_dev::toeplitz(&crate::nic::RSS_KEY, &input), 0x51cc_c178);
        let mut per_q = [0usize; 4];
        for sport in 0..64u16 {
            let f = ip_frame(6, 20000 + sport, 32);
            let (want, _) = fake.m().rss_queue(&f);
            assert!(fake.m().inject(&f));
            let mut b = Batch::new(8);
            let got = (0..4)
                .find(|&q| {
                    b.clear();
                    nic.rx_burst(QueueId(q as u16), &mut b).unwrap() == 1
                })
                .expect("frame delivered on some queue");
            assert_eq!(got, want, "{p:?}: delivered on the queue the hash picked");
            assert_eq!(b.as_slice()[0].data(), &f[..]);
            per_q[got] += 1;
        }
        assert!(per_q.iter().all(|&n| n > 0), "{p:?}: flows spread over every queue: {per_q:?}");
        assert_eq!(nic.counters().rx_packets, 64);
    }
}

#[test]
fn checksum_offload_both_ways() {
    for p in BOTH {
        let pl = pool(256);
        let (fake, mut nic) = open(p, &pl, 1);
        let q = QueueId(0);
        // Transmit: the stack seeds the pseudo-header sum and asks for the rest.
        let mut want = Vec::new();
        let mut b = Batch::new(8);
        for (i, proto) in [6u8, 17, 6].into_iter().enumerate() {
            let f = ip_frame(proto, 7000 + i as u16, 100 + i * 10);
            let field = 34 + if proto == 6 { 16 } else { 6 };
            let mut seeded = f.clone();
            seeded[field..field + 2].copy_from_slice(&pseudo(&f).to_be_bytes());
            let mut pb = pl.alloc_copy(&seeded).unwrap();
            pb.set_tx_csum(Some(CsumRequest { start: 34, offset: field as u16 - 34 }));
            b.push(pb).unwrap();
            want.push(f);
        }
        assert_eq!(nic.tx_burst(q, &mut b).unwrap(), 3);
        let m = fake.m();
        for (s, f) in m.sent.iter().zip(&want) {
            assert!(s.txsm, "{p:?}: offloaded, not done in software");
            assert_eq!(&s.frame, f, "{p:?}: the device's checksum is the right one");
        }
        drop(m);
        // Receive: a good checksum is Verified, a corrupted one is left to software.
        let good = ip_frame(6, 9000, 64);
        let mut bad = good.clone();
        bad[60] ^= 0xff;
        assert!(fake.m().inject(&good) && fake.m().inject(&bad));
        let mut r = Batch::new(8);
        assert_eq!(nic.rx_burst(q, &mut r).unwrap(), 2);
        assert_eq!(r.as_slice()[0].rx_csum(), RxCsum::Verified);
        assert_eq!(r.as_slice()[1].rx_csum(), RxCsum::Unknown, "{p:?}: TCPE");
    }
}

#[test]
fn context_descriptor_written_only_when_it_changes() {
    let pl = pool(256);
    let (fake, mut nic) = open(Personality::X82599, &pl, 1);
    let mut b = Batch::new(16);
    for i in 0..10u16 {
        let f = ip_frame(6, 100 + i, 40);
        let mut pb = pl.alloc_copy(&f).unwrap();
        let mut s = f.clone();
        s[50..52].copy_from_slice(&pseudo(&f).to_be_bytes());
        pb.copy_from(&s);
        pb.set_tx_csum(Some(CsumRequest { start: 34, offset: 16 }));
        b.push(pb).unwrap();
    }
    nic.tx_burst(QueueId(0), &mut b).unwrap();
    let tdh = fake.m().reg_value(x82599::TX_QUEUE_BASE + common::DH);
    assert_eq!(tdh, 11, "one context + ten data descriptors");
    assert_eq!(fake.m().sent.len(), 10);
}

#[test]
fn loopback_selftest_on_the_model() {
    for p in BOTH {
        let pl = pool(512);
        let (_fake, mut nic) = open(p, &pl, 1);
        let t = nic.loopback_selftest(50).unwrap();
        assert_eq!((t.sent, t.received, t.corrupted), (50, 50, 0), "{p:?}");
        assert_eq!((t.hw.tx_good_packets, t.hw.rx_good_packets), (50, 50), "{p:?}");
    }
}

#[test]
fn drop_stops_the_device_and_returns_buffers() {
    for p in BOTH {
        let pl = pool(128);
        let (fake, nic) = open(p, &pl, 2);
        assert!(pl.available() < 128);
        drop(nic);
        assert_eq!(pl.available(), 128, "{p:?}: every posted buffer back");
        let m = fake.m();
        let rx_off = match p {
            Personality::X82599 => m.reg_value(x82599::RXCTRL) & x82599::RXCTRL_RXEN,
            Personality::I82576 => m.reg_value(x82576::RCTL) & x82576::RCTL_EN,
        };
        assert_eq!(rx_off, 0, "{p:?}: receive off");
        assert_eq!(m.reg_value(rx_base(p) + common::DCTL) & common::DCTL_ENABLE, 0);
        drop(m);
        let cfgspace = fake.sys.config_of(crate::fake_dev::BDF).unwrap();
        assert_eq!(cfgspace[4] & 0x4, 0, "{p:?}: bus mastering off");
    }
}

#[test]
fn selftest_report_on_the_model() {
    use crate::selftest::{self, SelftestOptions};
    for p in BOTH {
        let pl = pool(512);
        let fake = Fake::new(p);
        let opts = SelftestOptions { frames: 40, link_timeout_ms: 1000, ring_size: 64 };
        let mut steps = Vec::new();
        let rep =
            selftest::run(fake.device(), pl.clone(), &opts, &mut |s| steps.push(s.to_string()));
        assert!(rep.passed(), "{p:?}: {rep}");
        assert_eq!(rep.personality, Some(p));
        assert_eq!(rep.mac, Some(MAC));
        assert!(rep.link.up);
        let t = rep.loopback.unwrap();
        assert_eq!((t.sent, t.received, t.corrupted), (40, 40, 0));
        assert_eq!((rep.driver.tx_packets, rep.driver.rx_packets), (40, 40));
        assert_eq!((rep.hw.tx_good_packets, rep.hw.rx_good_packets), (40, 40));
        let names: Vec<_> = rep.steps.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["before bring-up", "after bring-up", "after link wait", "after loopback"]
        );
        // The receive queue was disabled before bring-up and enabled after it.
        let rxdctl = |i: usize| {
            rep.steps[i].registers.iter().find(|r| r.name == "RXDCTL0").unwrap().value.unwrap()
        };
        assert_eq!(rxdctl(0) & common::DCTL_ENABLE, 0, "{p:?}");
        assert_ne!(rxdctl(1) & common::DCTL_ENABLE, 0, "{p:?}");
        let text = rep.to_string();
        println!("{text}");
        for want in
            ["result:      PASS", "pci id:      8086:", "RXDCTL0", "GPRC 40", "link:        up"]
        {
            assert!(text.contains(want), "{p:?}: {want:?} missing from\n{text}");
        }
        assert!(steps.iter().any(|s| s.contains("tearing down")));
        // Torn down: every buffer is back and bus mastering is off.
        assert_eq!(pl.available(), 512);
        let cfgspace = fake.sys.config_of(crate::fake_dev::BDF).unwrap();
        assert_eq!(cfgspace[4] & 0x4, 0, "{p:?}: bus mastering off");
        if p == Personality::X82599 {
            let m = fake.m();
            assert_eq!(m.reg_value(x82599::AUTOC) & x82599::AUTOC_FLU, 0, "FLU cleared again");
            assert!(
                m.log
                    .iter()
                    .any(|a| a.0 == 'W' && a.1 == x82599::AUTOC && a.2 & x82599::AUTOC_FLU != 0),
                "FLU forced for the loopback"
            );
        }
    }
}

#[test]
fn selftest_reports_failures() {
    use crate::selftest::{self, SelftestOptions};
    // A device whose transmit never completes: nothing comes back, the report says FAIL.
    let pl = pool(512);
    let fake = Fake::new(Personality::X82599);
    fake.m().auto_tx = false;
    let opts = SelftestOptions { frames: 5, link_timeout_ms: 0, ring_size: 64 };
    let rep = selftest::run(fake.device(), pl, &opts, &mut |_| {});
    assert!(!rep.passed());
    let text = rep.to_string();
    assert!(text.contains("[FAIL] every frame back byte-exact: 0 received"), "{text}");
    assert!(text.contains("result:      FAIL"));
    // An unknown device stops before bring-up, with the reason.
    let rep = selftest::run(
        Fake::new(Personality::I82576).device(),
        pool(64),
        &SelftestOptions { ring_size: 60, ..opts },
        &mut |_| {},
    );
    assert!(!rep.passed());
    assert!(rep.error.unwrap().contains("ring_size"));
}

// Driver cost per packet under callgrind (`ixgbe/callgrind.sh`, README "Driver cost per
// packet"). Each test runs `CG_BATCHES` bursts of 32 in one direction through the driver's
// `Nic` methods behind `&mut dyn Nic` (so they stay separate functions callgrind can count);
// the script collects only inside `rx_burst`/`tx_burst` and subtracts what the model did
// inside them (its register file, behind `FakeBar`), leaving the driver's own instructions.
const CG_BATCHES: usize = 1000;

fn cg_nic(p: Personality, pl: &Pool) -> (Fake, IntelNic) {
    let fake = Fake::new(p);
    let c = IntelConfig { ring_size: 512, ..cfg(1) };
    let nic = IntelNic::open(fake.device(), pl.clone(), c).unwrap();
    (fake, nic)
}

fn cg_rx(p: Personality) {
    let pl = pool(2048);
    let (fake, mut nic) = cg_nic(p, &pl);
    let frame = ip_frame(17, 1000, 18); // 60 bytes, UDP, checksum verified by the model
    let nic: &mut dyn Nic = std::hint::black_box(&mut nic);
    let mut b = Batch::new(32);
    let mut got = 0;
    for _ in 0..CG_BATCHES {
        for _ in 0..32 {
            assert!(fake.m().inject(&frame));
        }
        got += nic.rx_burst(QueueId(0), &mut b).unwrap();
        b.clear();
    }
    assert_eq!(got, 32 * CG_BATCHES);
}

fn cg_tx(p: Personality) {
    let pl = pool(2048);
    let (fake, mut nic) = cg_nic(p, &pl);
    let frame = ip_frame(17, 1000, 18);
    let nic: &mut dyn Nic = std::hint::black_box(&mut nic);
    let mut b = Batch::new(32);
    let mut sent = 0;
    for _ in 0..CG_BATCHES {
        for _ in 0..32 {
            b.push(pl.alloc_copy(&frame).unwrap()).unwrap();
        }
        sent += nic.tx_burst(QueueId(0), &mut b).unwrap();
        assert!(b.is_empty());
        fake.m().sent.clear();
    }
    assert_eq!(sent, 32 * CG_BATCHES);
    assert_eq!(nic.counters().tx_packets, (32 * CG_BATCHES) as u64);
}

#[test]
#[ignore = "callgrind workload: ixgbe/callgrind.sh"]
fn callgrind_rx_x82599() {
    cg_rx(Personality::X82599);
}

#[test]
#[ignore = "callgrind workload: ixgbe/callgrind.sh"]
fn callgrind_tx_x82599() {
    cg_tx(Personality::X82599);
}

#[test]
#[ignore = "callgrind workload: ixgbe/callgrind.sh"]
fn callgrind_rx_i82576() {
    cg_rx(Personality::I82576);
}

#[test]
#[ignore = "callgrind workload: ixgbe/callgrind.sh"]
fn callgrind_tx_i82576() {
    cg_tx(Personality::I82576);
}
