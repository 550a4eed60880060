//! AF_PACKET and TAP against the Linux kernel, inside private network namespaces this test
//! creates (`jrdrv-<pid>-<tag>`) and deletes on drop, with private addresses 10.99.x.y only.
//! Skipped (with a message) when not root or when `ip` is missing.

use std::net::UdpSocket;
use std::time::Duration;

use joyride_drivers::af_packet::{AfPacket, AfPacketConfig};
use joyride_drivers::csum::ones_complement_sum;
use joyride_drivers::netns::{self, NetNs};
use joyride_drivers::tap::{Tap, TapConfig};
use joyride_drivers::{
    Batch, CsumRequest, MacAddr, Nic, PacketBuf, Pool, PoolConfig, QueueId, RxCsum,
};

fn skip() -> bool {
    match netns::skip_reason() {
        Some(r) => {
            eprintln!("skipping namespace test: {r}");
            true
        }
        None => false,
    }
}

fn pool() -> Pool {
    Pool::new(PoolConfig { count: 256, hugepages: true, mlock: true, ..PoolConfig::default() })
        .unwrap()
}

#[allow(clippy::disallowed_methods)] // a test may nap while the kernel brings a link up
fn nap() {
    std::thread::sleep(Duration::from_millis(10));
}

fn ip4(subnet: u8, host: u8) -> [u8; 4] {
    [10, 99, subnet, host]
}

fn arp_request(mac: MacAddr, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f.resize(60, 0);
    f
}

/// An Ethernet + IPv4 + UDP frame whose UDP checksum field holds only the pseudo-header sum:
/// the NIC (or the backend in software) must finish it, else the kernel drops the datagram.
fn udp_partial(
    src: (MacAddr, [u8; 4], u16),
    dst: (MacAddr, [u8; 4], u16),
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len() as u16;
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0 .0);
    f.extend_from_slice(&src.0 .0);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.1);
    ip.extend_from_slice(&dst.1);
    let c = !ones_complement_sum(0, &ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.2.to_be_bytes());
    f.extend_from_slice(&dst.2.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&pseudo_sum(&f[14..34], udp_len).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn pseudo_sum(ip_hdr: &[u8], l4_len: u16) -> u16 {
    let mut ph = Vec::new();
    ph.extend_from_slice(&ip_hdr[12..20]);
    ph.extend_from_slice(&[0, ip_hdr[9]]);
    ph.extend_from_slice(&l4_len.to_be_bytes());
    ones_complement_sum(0, &ph)
}

/// Receives until `pred` matches, sleeping in poll(2) on the backend's wait fd between bursts.
/// Also asserts PACKET_IGNORE_OUTGOING-like behaviour: nothing received carries `our` source MAC.
fn recv_until<N: Nic>(
    nic: &mut N,
    our: MacAddr,
    mut pred: impl FnMut(&PacketBuf) -> bool,
) -> PacketBuf {
    let mut batch = Batch::new(32);
    for _ in 0..300 {
        nic.rx_burst(QueueId(0), &mut batch).unwrap();
        let mut found = None;
        for b in batch.drain() {
            assert_ne!(&b.data()[6..12], &our.0, "our own transmission came back");
            if found.is_none() && pred(&b) {
                found = Some(b);
            }
        }
        if let Some(b) = found {
            return b;
        }
        if let Some(fd) = nic.wait_fd(QueueId(0)) {
            joyride_drivers::sys::poll_readable(fd, 10).unwrap();
        } else {
            nap();
        }
    }
    panic!("expected frame never arrived");
}

fn send<N: Nic>(nic: &mut N, b: PacketBuf) {
    let mut batch = Batch::new(1);
    batch.push(b).unwrap();
    for _ in 0..100 {
        nic.tx_burst(QueueId(0), &mut batch).unwrap();
        if batch.is_empty() {
            return;
        }
        nap();
    }
    panic!("transmit ring never accepted the frame");
}

/// ARP both ways, a kernel UDP datagram in, a checksum-offloaded UDP datagram out.
fn exercise<N: Nic>(nic: &mut N, ns: &NetNs, kdev: &str, subnet: u8, pool: &Pool) -> RxCsum {
    let mac = nic.capabilities().mac;
    for _ in 0..300 {
        if nic.link().up {
            break;
        }
        nap();
    }
    assert!(nic.link().up, "link never came up");
    let (k_ip, our_ip) = (ip4(subnet, 1), ip4(subnet, 2));

    // 1. We ask, the kernel answers.
    send(nic, pool.alloc_copy(&arp_request(mac, our_ip, k_ip)).unwrap());
    let reply = recv_until(nic, mac, |b| {
        let d = b.data();
        d.len() >= 42 && d[12..14] == [8, 6] && d[20..22] == [0, 2] && d[28..32] == k_ip
    });
    let d = reply.data();
    assert_eq!(&d[0..6], &mac.0, "reply addressed to us");
    assert_eq!(&d[38..42], &our_ip);
    let kmac = MacAddr(d[22..28].try_into().unwrap());
    drop(reply);

    // 2. The kernel sends a datagram to us (it knows our MAC from a permanent neighbour entry).
    let mac_s = mac.to_string();
    let our_s = format!("10.99.{subnet}.2");
    ns.ip(&["neigh", "replace", &our_s, "lladdr", &mac_s, "dev", kdev, "nud", "permanent"])
        .unwrap();
    let ksock = UdpSocket::bind(format!("10.99.{subnet}.1:0")).unwrap();
    ksock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let kport = ksock.local_addr().unwrap().port();
    ksock.send_to(b"hello from the kernel", format!("{our_s}:9999")).unwrap();
    let mut dgram = recv_until(nic, mac, |b| {
        let d = b.data();
        d.len() >= 42 && d[12..14] == [8, 0] && d[23] == 17 && d[36..38] == 9999u16.to_be_bytes()
    });
    let seen = dgram.rx_csum();
    assert!(dgram.complete_partial_csum());
    let d = dgram.data();
    let udp_len = u16::from_be_bytes([d[38], d[39]]);
    assert_eq!(&d[42..], b"hello from the kernel");
    let total = ones_complement_sum(pseudo_sum(&d[14..34], udp_len), &d[34..]);
    assert_eq!(total, 0xffff, "UDP checksum verifies once completed (rx status {seen:?})");
    drop(dgram);

    // 3. We send a datagram with a partial checksum; the kernel only delivers it if the backend
    //    (offload or software) completed the checksum correctly.
    let frame = udp_partial((mac, our_ip, 4000), (kmac, k_ip, kport), b"hello from joyride");
    let mut b = pool.alloc_copy(&frame).unwrap();
    b.set_tx_csum(Some(CsumRequest { start: 34, offset: 6 }));
    send(nic, b);
    let mut buf = [0u8; 64];
    let (n, from) = ksock.recv_from(&mut buf).expect("kernel received our datagram");
    assert_eq!(&buf[..n], b"hello from joyride");
    assert_eq!(from.to_string(), format!("{our_s}:4000"));

    let c = nic.counters();
    assert!(c.tx_packets >= 2 && c.rx_packets >= 2, "{c:?}");
    assert_eq!(c.tx_errors, 0);
    seen
}

#[test]
fn af_packet_on_veth_talks_to_the_kernel() {
    if skip() {
        return;
    }
    let ns = NetNs::create(&format!("jrdrv-{}-afp", std::process::id())).unwrap();
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]).unwrap();
    ns.ip(&["addr", "add", "10.99.1.1/24", "dev", "vb"]).unwrap();
    ns.ip(&["link", "set", "va", "up"]).unwrap();
    ns.ip(&["link", "set", "vb", "up"]).unwrap();
    let seen = ns
        .run_in(|| {
            let pool = pool();
            let mut cfg = AfPacketConfig::new("va");
            cfg.promiscuous = true;
            let mut nic = AfPacket::open(&cfg, pool.clone()).unwrap();
            let seen = exercise(&mut nic, &ns, "vb", 1, &pool);
            let c = nic.capabilities();
            assert_eq!((c.mtu, c.rx_queues, c.tx_queues), (1500, 1, 1));
            seen
        })
        .unwrap();
    eprintln!("af_packet: kernel datagram arrived with {seen:?}");
}

#[test]
fn tap_with_vnet_header_talks_to_the_kernel() {
    if skip() {
        return;
    }
    let ns = NetNs::create(&format!("jrdrv-{}-tap", std::process::id())).unwrap();
    let seen = ns
        .run_in(|| {
            let pool = pool();
            let mut tap = Tap::open(&TapConfig::new("jrtap0"), pool.clone()).unwrap();
            assert_eq!(tap.name(), "jrtap0");
            ns.ip(&["addr", "add", "10.99.2.1/24", "dev", "jrtap0"]).unwrap();
            ns.ip(&["link", "set", "jrtap0", "up"]).unwrap();
            exercise(&mut tap, &ns, "jrtap0", 2, &pool)
        })
        .unwrap();
    eprintln!("tap: kernel datagram arrived with {seen:?}");
    assert!(
        matches!(seen, RxCsum::Partial { start: 34, offset: 6 }),
        "with TUN_F_CSUM the kernel leaves the UDP checksum to us: {seen:?}"
    );
}
