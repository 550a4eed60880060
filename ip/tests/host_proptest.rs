//! Properties of `Host::handle_frame`: no input panics, every frame is counted exactly once,
//! and nothing grows past its bound.

mod host_util;

use host_util::*;
use joyride_ip::arp::{ArpOperation, ArpPacket, ArpRepr};
use joyride_ip::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use joyride_ip::host::{Host, HostConfig, ReasmConfig};
use joyride_ip::icmpv4::Icmpv4Repr;
use joyride_ip::ipv4::IpProtocol;
use joyride_ip::udp::{UdpPacket, UdpRepr};
use joyride_ip::Checksum;
use proptest::prelude::*;

fn small_host() -> Host {
    let cfg = HostConfig {
        reasm: ReasmConfig { slots: 4, ..ReasmConfig::default() },
        tx_slots: 64,
        ..HostConfig::default()
    };
    host(MAC_A, IP_A, cfg)
}

/// Valid frames of each kind the host handles, to be mutated.
fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut arp = vec![0u8; 42];
    EthernetRepr {
        src: MAC_PEER,
        dst: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
        vlan: None,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut arp[..]))
    .unwrap();
    ArpRepr {
        operation: ArpOperation::Request,
        source_hw: MAC_PEER,
        source_ip: IP_PEER,
        target_hw: EthernetAddress([0; 6]),
        target_ip: IP_A,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut arp[14..]))
    .unwrap();
    v.push(arp);
    let echo = icmp_bytes(&Icmpv4Repr::EchoRequest { ident: 1, seq_no: 2, data: &[9; 3000] });
    let ip = ip_repr(IP_PEER, IP_A, IpProtocol::Icmp, 3);
    for (r, p) in fragment(&ip, &echo, 1480) {
        v.push(ipv4_frame(MAC_PEER, MAC_A, &r, &p));
    }
    v.push(ipv4_frame(MAC_PEER, MAC_A, &ip, &echo[..100]));
    let u = UdpRepr { src_port: 1, dst_port: 2, payload: b"hello" };
    let mut udp = vec![0u8; u.buffer_len()];
    u.emit(&mut UdpPacket::new_unchecked(&mut udp[..]), IP_PEER, IP_A, Checksum::Software);
    v.push(ipv4_frame(MAC_PEER, MAC_A, &ip_repr(IP_PEER, IP_A, IpProtocol::Udp, 4), &udp));
    v.push(ipv4_frame(MAC_PEER, MAC_A, &ip_repr(IP_PEER, IP_A, IpProtocol::Tcp, 5), &[0; 20]));
    v
}

fn check_bounds(h: &Host) {
    assert_accounted(h);
    assert!(h.reassembler().in_progress() <= 4);
    assert!(h.tx_queued() <= h.tx_capacity());
    assert!(h.arp().len() <= h.config().arp.capacity);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1600), 1..20)) {
        let mut h = small_host();
        for (i, f) in frames.iter().enumerate() {
            let _ = h.handle_frame(ms(i as u64), f);
        }
        drain(&mut h, ms(100));
        prop_assert_eq!(h.counters().rx_frames, frames.len() as u64);
        check_bounds(&h);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        edits in prop::collection::vec((0usize..8, any::<prop::sample::Index>(), any::<u8>(), 0usize..3), 1..40),
        times in prop::collection::vec(0u64..100_000, 40),
    ) {
        let seeds = seeds();
        let mut h = small_host();
        let mut t = 0u64;
        for (k, (which, at, byte, mode)) in edits.iter().enumerate() {
            let mut f = seeds[*which % seeds.len()].clone();
            let i = at.index(f.len());
            match mode {
                0 => f[i] = *byte,
                1 => f.truncate(i),
                _ => f[i] ^= 1 << (byte % 8),
            }
            t += times[k % times.len()];
            let _ = h.handle_frame(ms(t), &f);
            if k % 5 == 0 {
                drain(&mut h, ms(t));
            }
            check_bounds(&h);
        }
        drain(&mut h, ms(t + 60_000));
        prop_assert_eq!(h.reassembler().in_progress(), 0);
        check_bounds(&h);
    }
}
