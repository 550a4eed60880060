//! Arbitrary bytes as an Ethernet frame, demultiplexed the way the service will: Ethernet
//! (+802.1Q) → ARP or IPv4 → ICMPv4 / UDP / TCP. Every layer is tried in both checksum modes;
//! nothing may panic, and whatever parses must re-emit and re-parse to the same value.
#![no_main]

use joyride_ip::arp::{ArpPacket, ArpRepr};
use joyride_ip::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use joyride_ip::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use joyride_ip::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use joyride_ip::tcp::{TcpPacket, TcpRepr};
use joyride_ip::udp::{UdpPacket, UdpRepr};
use joyride_ip::{Checksum, Ipv4Addr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = EthernetFrame::new_checked(data) else { return };
    let Ok(eth) = EthernetRepr::parse(&frame) else { return };
    match eth.ethertype {
        EtherType::Arp => arp(frame.payload()),
        EtherType::Ipv4 => ipv4(frame.payload()),
        _ => {}
    }
});

fn arp(bytes: &[u8]) {
    let Ok(packet) = ArpPacket::new_checked(bytes) else { return };
    let Ok(repr) = ArpRepr::parse(&packet) else { return };
    let mut buf = vec![0u8; repr.buffer_len()];
    let mut out = ArpPacket::new_unchecked(&mut buf[..]);
    repr.emit(&mut out).unwrap();
    assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()), Ok(repr));
}

fn ipv4(bytes: &[u8]) {
    let Ok(packet) = Ipv4Packet::new_checked(bytes) else { return };
    let _ = Ipv4Repr::parse(&packet, Checksum::Software);
    let Ok(ip) = Ipv4Repr::parse(&packet, Checksum::Offloaded) else { return };
    if ip.is_fragment() {
        return; // reassembly comes first in the service; a fragment is not parsed further
    }
    let (src, dst, payload) = (ip.src, ip.dst, packet.payload());
    match ip.protocol {
        IpProtocol::Icmp => icmp(payload),
        IpProtocol::Udp => udp(payload, src, dst),
        IpProtocol::Tcp => tcp(payload, src, dst),
        _ => {}
    }
}

fn icmp(bytes: &[u8]) {
    let Ok(packet) = Icmpv4Packet::new_checked(bytes) else { return };
    let _ = Icmpv4Repr::parse(&packet, Checksum::Software);
    let Ok(repr) = Icmpv4Repr::parse(&packet, Checksum::Offloaded) else { return };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), Checksum::Software).unwrap();
    let again = Icmpv4Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(Icmpv4Repr::parse(&again, Checksum::Software), Ok(repr));
}

fn udp(bytes: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(packet) = UdpPacket::new_checked(bytes) else { return };
    let _ = UdpRepr::parse(&packet, src, dst, Checksum::Software);
    let Ok(repr) = UdpRepr::parse(&packet, src, dst, Checksum::Offloaded) else { return };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst, Checksum::Software);
    let again = UdpPacket::new_checked(&buf[..]).unwrap();
    assert_eq!(UdpRepr::parse(&again, src, dst, Checksum::Software), Ok(repr));
}

fn tcp(bytes: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(packet) = TcpPacket::new_checked(bytes) else { return };
    for option in packet.options_iter() {
        let _ = option;
    }
    let _ = TcpRepr::parse(&packet, src, dst, Checksum::Software);
    let Ok(repr) = TcpRepr::parse(&packet, src, dst, Checksum::Offloaded) else { return };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, Checksum::Software);
    let again = TcpPacket::new_checked(&buf[..]).unwrap();
    let reparsed = TcpRepr::parse(&again, src, dst, Checksum::Software).unwrap();
    // Emit may drop SACK blocks that do not fit beside the other options; all else survives.
    assert_eq!(reparsed.payload, repr.payload);
    assert_eq!((reparsed.seq, reparsed.ack, reparsed.flags), (repr.seq, repr.ack, repr.flags));
    assert_eq!(reparsed.options.mss, repr.options.mss);
    assert_eq!(reparsed.options.timestamps, repr.options.timestamps);
}
