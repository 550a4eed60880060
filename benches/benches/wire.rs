//! Parse and emit cost per frame, IPv4 header included: a TCP data segment (timestamps,
//! 1448 bytes of data), a pure TCP ACK, and UDP datagrams of 64 and 1472 bytes. Checksums in
//! software (the worst case; `Checksum::Offloaded` skips the data sum).
//!
//! Run: `cargo bench -p joyride-benches --bench wire`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use joyride_ip::ipv4::{Ecn, IpProtocol, Ipv4Packet, Ipv4Repr};
use joyride_ip::tcp::{TcpFlags, TcpOptions, TcpPacket, TcpRepr};
use joyride_ip::udp::{UdpPacket, UdpRepr};
use joyride_ip::{Checksum, Ipv4Addr};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn ip(protocol: IpProtocol, payload_len: usize) -> Ipv4Repr {
    Ipv4Repr {
        src: SRC,
        dst: DST,
        protocol,
        payload_len,
        ttl: 64,
        dscp: 0,
        ecn: Ecn::NotEct,
        ident: 0x1234,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
}

fn emit_tcp(repr: &TcpRepr<'_>, buf: &mut [u8]) {
    let ip = ip(IpProtocol::Tcp, repr.buffer_len());
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut *buf), Checksum::Software).unwrap();
    let seg = &mut buf[20..ip.total_len()];
    repr.emit(&mut TcpPacket::new_unchecked(seg), SRC, DST, Checksum::Software);
}

fn parse_tcp(frame: &[u8]) -> TcpRepr<'_> {
    let p = Ipv4Packet::new_checked(frame).unwrap();
    let ip = Ipv4Repr::parse(&p, Checksum::Software).unwrap();
    let seg = &frame[20..ip.total_len()];
    TcpRepr::parse(&TcpPacket::new_checked(seg).unwrap(), ip.src, ip.dst, Checksum::Software)
        .unwrap()
}

fn emit_udp(repr: &UdpRepr<'_>, buf: &mut [u8]) {
    let ip = ip(IpProtocol::Udp, repr.buffer_len());
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut *buf), Checksum::Software).unwrap();
    let dgram = &mut buf[20..ip.total_len()];
    repr.emit(&mut UdpPacket::new_unchecked(dgram), SRC, DST, Checksum::Software);
}

fn parse_udp(frame: &[u8]) -> UdpRepr<'_> {
    let p = Ipv4Packet::new_checked(frame).unwrap();
    let ip = Ipv4Repr::parse(&p, Checksum::Software).unwrap();
    let dgram = &frame[20..ip.total_len()];
    UdpRepr::parse(&UdpPacket::new_checked(dgram).unwrap(), ip.src, ip.dst, Checksum::Software)
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let data = vec![0x5au8; 1472];
    let mut g = c.benchmark_group("wire");
    for (name, payload, flags) in [
        ("tcp_data_1448", &data[..1448], TcpFlags::ACK | TcpFlags::PSH),
        ("tcp_ack", &data[..0], TcpFlags::ACK),
    ] {
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 443,
            seq: 0xdead_beef,
            ack: 0x0102_0304,
            flags,
            window: 502,
            urgent: 0,
            options: TcpOptions { timestamps: Some((1, 2)), ..TcpOptions::default() },
            payload,
        };
        let mut frame = vec![0u8; 20 + repr.buffer_len()];
        emit_tcp(&repr, &mut frame);
        assert_eq!(parse_tcp(&frame), repr);
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| parse_tcp(black_box(&frame)).seq)
        });
        let mut out = vec![0u8; frame.len()];
        g.bench_function(BenchmarkId::new("emit", name), |b| {
            b.iter(|| {
                emit_tcp(black_box(&repr), &mut out);
                black_box(&mut out);
            })
        });
        // The TCP layer alone (no IPv4 header).
        let seg = &frame[20..];
        g.bench_function(BenchmarkId::new("tcp_only_parse", name), |b| {
            b.iter(|| {
                let p = TcpPacket::new_checked(black_box(seg)).unwrap();
                TcpRepr::parse(&p, SRC, DST, Checksum::Software).unwrap().seq
            })
        });
        let mut out = vec![0u8; seg.len()];
        g.bench_function(BenchmarkId::new("tcp_only_emit", name), |b| {
            b.iter(|| {
                let mut p = TcpPacket::new_unchecked(&mut out[..]);
                black_box(&repr).emit(&mut p, SRC, DST, Checksum::Software);
                black_box(&mut out);
            })
        });
    }
    for len in [64, 1472] {
        let repr = UdpRepr { src_port: 5353, dst_port: 53, payload: &data[..len] };
        let mut frame = vec![0u8; 20 + repr.buffer_len()];
        emit_udp(&repr, &mut frame);
        assert_eq!(parse_udp(&frame), repr);
        let name = format!("udp_{len}");
        g.bench_function(BenchmarkId::new("parse", &name), |b| {
            b.iter(|| parse_udp(black_box(&frame)).dst_port)
        });
        let mut out = vec![0u8; frame.len()];
        g.bench_function(BenchmarkId::new("emit", &name), |b| {
            b.iter(|| {
                emit_udp(black_box(&repr), &mut out);
                black_box(&mut out);
            })
        });
        // The UDP layer alone (no IPv4 header).
        let dgram = &frame[20..];
        g.bench_function(BenchmarkId::new("udp_only_parse", &name), |b| {
            b.iter(|| {
                let p = UdpPacket::new_checked(black_box(dgram)).unwrap();
                UdpRepr::parse(&p, SRC, DST, Checksum::Software).unwrap().dst_port
            })
        });
        let mut out = vec![0u8; dgram.len()];
        g.bench_function(BenchmarkId::new("udp_only_emit", &name), |b| {
            b.iter(|| {
                let mut p = UdpPacket::new_unchecked(&mut out[..]);
                black_box(&repr).emit(&mut p, SRC, DST, Checksum::Software);
                black_box(&mut out);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
