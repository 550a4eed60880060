//! The driver against the register-level fake device (`fake_dev`), DMA through the fake IOMMU.

use joyride_drivers::{Batch, CsumRequest, Nic, Pool, PoolConfig, QueueId, RxCsum};

use crate::fake_dev::{Fake, QEMU_FEATURES};
use crate::pci::{feature, status};
use crate::{VirtioError, VirtioNet, VirtioNetConfig};

const Q: QueueId = QueueId(0);

fn pool(count: u32) -> Pool {
    Pool::new(PoolConfig { count, hugepages: false, mlock: false, ..PoolConfig::default() })
        .unwrap()
}

fn cfg(queue_size: u16) -> VirtioNetConfig {
    VirtioNetConfig { queue_size, ..VirtioNetConfig::default() }
}

fn frame(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 7 + j) as u8).collect()
}

#[test]
fn bring_up_negotiates_and_enables() {
    let fake = Fake::new(QEMU_FEATURES | feature::NET_MQ, 256, 2);
    let p = pool(512);
    let nic = VirtioNet::new(fake.device(), p.clone(), cfg(64)).unwrap();
    let m = fake.m();
    let f = m.driver_features;
    assert_eq!(f, nic.features());
    for need in [feature::VERSION_1, feature::ACCESS_PLATFORM, feature::NET_MAC] {
        assert_ne!(f & need, 0, "{need:#x} negotiated");
    }
    for never in [feature::NET_MRG_RXBUF, feature::RING_EVENT_IDX, feature::NET_MQ] {
        assert_eq!(f & never, 0, "{never:#x} declined");
    }
    assert_eq!(m.status & status::DRIVER_OK, status::DRIVER_OK);
    assert_eq!(m.status & status::FEATURES_OK, status::FEATURES_OK);
    assert_eq!((m.queues[0].size, m.queues[1].size), (64, 64));
    assert_eq!((m.queues[0].enable, m.queues[1].enable, m.queues[2].enable), (1, 1, 0));
    assert_eq!(m.queues[0].vector, 0, "receive queue on MSI-X vector 0");
    assert!(m.notifies[0] >= 1, "receive queue kicked after filling");
    drop(m);
    let caps = nic.capabilities();
    assert_eq!(caps.mac.0, [0x52, 0x54, 0, 0x12, 0x34, 0x02]);
    assert_eq!(caps.mtu, 1500);
    assert!(!caps.offloads.tx_checksum && !caps.offloads.rx_checksum);
    assert!(nic.link().up);
    assert!(nic.wait_fd(Q).is_some());
    assert_eq!(p.available(), 512 - 64, "receive ring filled from the pool");
    let cfgspace = fake.sys.config_of(crate::fake_dev::BDF).unwrap();
    assert_eq!(cfgspace[4] & 0x6, 0x6, "bus master enabled");
    fake.m().link_up = false;
    assert!(!nic.link().up);
}

#[test]
fn refuses_devices_it_cannot_drive_safely() {
    let p = pool(64);
    let fake = Fake::new(QEMU_FEATURES & !feature::ACCESS_PLATFORM, 64, 1);
    let e = VirtioNet::new(fake.device(), p.clone(), cfg(64)).unwrap_err();
    assert_eq!(e, VirtioError::MissingFeature("ACCESS_PLATFORM (iommu_platform=on)"));
    assert_eq!(fake.m().status & status::FAILED, status::FAILED);
    let fake = Fake::new(QEMU_FEATURES & !feature::VERSION_1, 64, 1);
    assert!(matches!(
        VirtioNet::new(fake.device(), p.clone(), cfg(64)),
        Err(VirtioError::MissingFeature("VERSION_1"))
    ));
    let fake = Fake::new(QEMU_FEATURES, 64, 1);
    assert!(VirtioNet::new(fake.device(), p, cfg(48)).is_err(), "not a power of two");
}

#[test]
fn transmit_batches_are_byte_exact_with_one_notify_and_reclaim() {
    let fake = Fake::new(QEMU_FEATURES, 256, 1);
    let p = pool(256);
    let mut nic = VirtioNet::new(fake.device(), p.clone(), cfg(32)).unwrap();
    let base_avail = p.available();
    let kicks0 = fake.m().notifies[1];
    let mut b = Batch::new(64);
    for i in 0..20 {
        b.push(p.alloc_copy(&frame(i, 60 + i as usize * 50)).unwrap()).unwrap();
    }
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 20);
    assert!(b.is_empty());
    {
        let m = fake.m();
        assert_eq!(m.notifies[1] - kicks0, 1, "one notification per batch");
        assert_eq!(m.sent.len(), 20);
        for (i, f) in m.sent.iter().enumerate() {
            assert_eq!(f, &frame(i as u32, 60 + i * 50), "frame {i} byte-exact");
        }
        assert!(m.sent_hdrs.iter().all(|h| h == &[0; 12]), "no offload requested");
    }
    assert_eq!(p.available(), base_avail - 20, "held until reclaimed");
    // Backpressure: a 32-entry ring takes 32, the rest stays with the caller in order.
    fake.m().consume_tx = false;
    for i in 0..40 {
        b.push(p.alloc_copy(&frame(100 + i, 64)).unwrap()).unwrap();
    }
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 32, "20 reclaimed, then 32 posted");
    assert_eq!(p.available(), base_avail - 40, "the first 20 came back; 32 posted + 8 waiting");
    assert_eq!(b.len(), 8);
    assert_eq!(b.as_slice()[0].data(), &frame(132, 64)[..]);
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 0, "ring full");
    fake.m().consume_tx();
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 8);
    let c = nic.counters();
    assert_eq!(c.tx_packets, 60);
    assert_eq!(c.tx_bytes, (0..20).map(|i| 60 + i * 50).sum::<u64>() + 40 * 64);
}

#[test]
fn transmit_from_a_foreign_pool_is_copied_and_checksum_requests_completed() {
    let fake = Fake::new(QEMU_FEATURES, 64, 1);
    let p = pool(128);
    let mut nic = VirtioNet::new(fake.device(), p.clone(), cfg(16)).unwrap();
    let other = pool(4);
    // A UDP/IPv4 frame with a checksum request (the device has no CSUM: done in software).
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x09, 0, 12, 0, 0]);
    f.extend_from_slice(b"ping");
    let mut buf = other.alloc_copy(&f).unwrap();
    buf.set_tx_csum(Some(CsumRequest { start: 34, offset: 6 }));
    let mut b = Batch::new(4);
    b.push(buf).unwrap();
    assert_eq!(nic.tx_burst(Q, &mut b).unwrap(), 1);
    assert_eq!(other.available(), 4, "the foreign buffer went back at once");
    let m = fake.m();
    let sent = &m.sent[0];
    assert_eq!(&sent[..40], &f[..40]);
    assert_ne!(&sent[40..42], &[0, 0], "checksum filled in");
    assert_eq!(&sent[42..], b"ping");
}

#[test]
fn receive_is_byte_exact_and_buffers_are_reposted() {
    let fake = Fake::new(QEMU_FEATURES | feature::NET_GUEST_CSUM, 64, 1);
    let p = pool(256);
    let mut nic = VirtioNet::new(fake.device(), p.clone(), cfg(32)).unwrap();
    let mut hdr = [0u8; 12];
    for i in 0..10u32 {
        hdr[0] = match i % 3 {
            0 => 0,
            1 => 2, // DATA_VALID
            _ => 1, // NEEDS_CSUM at 34+6
        };
        hdr[6..8].copy_from_slice(&34u16.to_le_bytes());
        hdr[8..10].copy_from_slice(&6u16.to_le_bytes());
        assert!(fake.m().inject(hdr, &frame(i, 60 + 100 * i as usize)));
    }
    let mut out = Batch::new(4);
    let mut got = Vec::new();
    while got.len() < 10 {
        let n = nic.rx_burst(Q, &mut out).unwrap();
        assert!(n > 0 && n <= 4);
        got.extend(out.drain());
    }
    for (i, b) in got.iter().enumerate() {
        assert_eq!(b.data(), &frame(i as u32, 60 + 100 * i)[..], "frame {i}");
        let want = match i % 3 {
            0 => RxCsum::Unknown,
            1 => RxCsum::Verified,
            _ => RxCsum::Partial { start: 34, offset: 6 },
        };
        assert_eq!(b.rx_csum(), want);
    }
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 0);
    let c = nic.counters();
    assert_eq!(c.rx_packets, 10);
    assert_eq!(c.rx_bytes, (0..10).map(|i| 60 + 100 * i).sum::<u64>());
    drop(got);
    assert_eq!(p.available(), 256 - 32, "ring refilled to 32, the rest back in the pool");
    // The ring keeps going past its size (index wrap-around of the free-running indices).
    for round in 0..5u32 {
        for i in 0..30 {
            assert!(fake.m().inject([0; 12], &frame(round * 100 + i, 64)));
        }
        let mut n = 0;
        while n < 30 {
            n += nic.rx_burst(Q, &mut out).unwrap();
            for b in out.drain() {
                assert_eq!(b.len(), 64);
            }
        }
    }
}

#[test]
fn hostile_used_entries_are_counted_not_trusted() {
    let fake = Fake::new(QEMU_FEATURES, 64, 1);
    let p = pool(128);
    let mut nic = VirtioNet::new(fake.device(), p.clone(), cfg(16)).unwrap();
    let mut out = Batch::new(16);
    // An id out of range, an id never posted twice, a length beyond the buffer, a runt.
    fake.m().push_used(0, 999, 64);
    assert!(fake.m().inject([0; 12], &frame(1, 64)));
    let id = fake.m().queues[0].last_avail - 1;
    fake.m().push_used(0, u32::from(id), 64); // the same id again: not outstanding any more
    fake.m().push_used(0, 3, 100_000);
    fake.m().push_used(0, 4, 5);
    let n = nic.rx_burst(Q, &mut out).unwrap();
    assert_eq!(n, 1, "only the genuine frame is delivered");
    assert_eq!(out.as_slice()[0].data(), &frame(1, 64)[..]);
    assert_eq!(nic.counters().rx_errors, 4);
    assert!(nic.broken().is_none());
    // A used index far ahead of the ring: the device is broken from then on.
    let idx = fake.m().queues[0].used_idx;
    fake.m().set_used_idx(0, idx.wrapping_add(17));
    out.clear();
    assert!(nic.rx_burst(Q, &mut out).is_err());
    assert!(nic.broken().is_some());
    assert!(nic.tx_burst(Q, &mut out).is_err());
    assert!(nic.rx_burst(QueueId(1), &mut out).is_err());
}

#[test]
fn receive_interrupts_are_armed_only_when_idle() {
    let fake = Fake::new(QEMU_FEATURES, 64, 1);
    let p = pool(128);
    let mut nic = VirtioNet::new(fake.device(), p, cfg(16)).unwrap();
    let mut out = Batch::new(16);
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 0);
    assert!(fake.m().inject([0; 12], &frame(0, 64)));
    assert_eq!(fake.m().interrupts, 1, "armed while idle");
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 1);
    assert!(fake.m().inject([0; 12], &frame(1, 64)));
    assert_eq!(fake.m().interrupts, 1, "suppressed while busy");
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 1);
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 0);
    assert!(fake.m().inject([0; 12], &frame(2, 64)));
    assert_eq!(fake.m().interrupts, 2, "re-armed after an empty burst");
    assert_eq!(nic.rx_burst(Q, &mut out).unwrap(), 1);
}

#[test]
fn drop_resets_the_device_and_unmaps_everything() {
    let fake = Fake::new(QEMU_FEATURES, 64, 1);
    let p = pool(128);
    let iommu = fake.sys.iommu();
    let nic = VirtioNet::new(fake.device(), p.clone(), cfg(16)).unwrap();
    assert_eq!(iommu.mappings(), 3, "pool + two rings");
    drop(nic);
    assert_eq!(fake.m().status, 0, "reset");
    assert_eq!(iommu.mappings(), 0);
    assert_eq!(p.available(), 128, "posted buffers returned");
    let cfgspace = fake.sys.config_of(crate::fake_dev::BDF).unwrap();
    assert_eq!(cfgspace[4] & 0x4, 0, "bus master off");
}

// Driver cost per packet under callgrind (`ixgbe/callgrind.sh` runs these next to the Intel
// driver's; figures in ixgbe/README.md). `CG_BATCHES` bursts of 32 through `&mut dyn Nic`;
// the script subtracts the model's work behind `FakeBar` from `rx_burst`/`tx_burst`.
const CG_BATCHES: usize = 1000;

#[test]
#[ignore = "callgrind workload: ixgbe/callgrind.sh"]
fn callgrind_rx_virtio() {
    let fake = Fake::new(QEMU_FEATURES, 256, 0);
    let p = pool(2048);
    let mut nic = VirtioNet::new(fake.device(), p.clone(), cfg(256)).unwrap();
    let nic: &mut dyn Nic = std::hint::black_box(&mut nic);
    let f = frame(1, 60);
    let mut b = Batch::new(32);
    let mut got = 0;
    for _ in 0..CG_BATCHES {
        for _ in 0..32 {
            assert!(fake.m().inject([0; 12], &f));
        }
        got += nic.rx_burst(Q, &mut b).unwrap();
        b.clear();
    }
    assert_eq!(got, 32 * CG_BATCHES);
}

#[test]
#[ignore = "callgrind workload: ixgbe/callgrind.sh"]
fn callgrind_tx_virtio() {
    let fake = Fake::new(QEMU_FEATURES, 256, 0);
    let p = pool(2048);
    let mut nic = VirtioNet::new(fake.device(), p.clone(), cfg(256)).unwrap();
    let nic: &mut dyn Nic = std::hint::black_box(&mut nic);
    let f = frame(1, 60);
    let mut b = Batch::new(32);
    let mut sent = 0;
    for _ in 0..CG_BATCHES {
        for _ in 0..32 {
            b.push(p.alloc_copy(&f).unwrap()).unwrap();
        }
        sent += nic.tx_burst(Q, &mut b).unwrap();
        assert!(b.is_empty());
        let mut m = fake.m();
        m.sent.clear();
        m.sent_hdrs.clear();
    }
    assert_eq!(sent, 32 * CG_BATCHES);
}
