//! The receive path: Ethernet → ARP or IPv4 (→ reassembly) → ICMP, UDP or up to TCP.

use core::net::SocketAddrV4;

use joyride_base::Instant;

use super::icmp::{error_allowed, TokenBucket};
use super::iface::{is_unicast, Interface};
use super::output::{DontFragment, Ipv4Send, Output};
use super::reasm::{ReasmDrop, ReasmResult, Reassembler};
use super::udp::{Delivery, UdpError, UdpHandle, UdpSockets};
use super::{Counters, Host, HostConfig};
use crate::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use crate::icmpv4::{DstUnreachableCode, Icmpv4Packet, Icmpv4Repr, TimeExceededCode};
use crate::ipv4::{Ecn, IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::udp::{UdpPacket, UdpRepr};
use crate::{Checksum, Error, Ipv4Addr};

/// Most payload bytes an ICMP error quotes: RFC 1812 §4.3.2.3 "as much of the original
/// datagram as possible without the length of the ICMP datagram exceeding 576 bytes" —
/// 576 − 20 (IPv4) − 8 (ICMP) − 20 (quoted header).
pub(crate) const QUOTE_MAX: usize = 528;

/// Why a frame was dropped; each reason is one counter in [`Counters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than a header or a length field says.
    Truncated,
    /// IPv4 version field not 4.
    BadVersion,
    /// IPv4 IHL below 5.
    BadHeaderLen,
    /// An inconsistent length field.
    BadLength,
    /// IPv4, UDP or ICMP checksum wrong.
    BadChecksum,
    /// Malformed options or message.
    Malformed,
    /// A protocol variant the host does not handle.
    Unsupported,
    /// Not addressed to this host.
    NotForUs,
    /// An impossible source address.
    Martian,
    /// ARP claiming our address from another MAC.
    ArpSpoof,
    /// A fragment the reassembler refused.
    Fragment(ReasmDrop),
    /// UDP to a closed port.
    UdpNoPort,
    /// UDP to a socket whose queue is full.
    UdpQueueFull,
    /// An IP protocol the host does not speak.
    UnknownProtocol,
    /// Valid, deliberately ignored.
    Ignored,
}

impl From<Error> for DropReason {
    fn from(e: Error) -> Self {
        match e {
            Error::Truncated => DropReason::Truncated,
            Error::BadLength => DropReason::BadLength,
            Error::BadVersion => DropReason::BadVersion,
            Error::BadHeaderLen => DropReason::BadHeaderLen,
            Error::BadChecksum => DropReason::BadChecksum,
            Error::Malformed => DropReason::Malformed,
            Error::Unsupported => DropReason::Unsupported,
        }
    }
}

/// An ICMP error received about a datagram this host sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError<'a> {
    /// The router or host that sent it.
    pub from: Ipv4Addr,
    /// The message: [`Icmpv4Repr::DstUnreachable`] or [`Icmpv4Repr::TimeExceeded`], with the
    /// quoted header and payload bytes (for TCP: the ports and sequence number).
    pub message: Icmpv4Repr<'a>,
}

/// What [`Host::handle_frame`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A TCP segment for the TCP layer (IPv4 header removed, reassembled if it was
    /// fragmented, checksum not yet verified).
    Tcp {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address (ours).
        dst: Ipv4Addr,
        /// The ECN field (RFC 3168 §6.1.1: TCP reads CE from it).
        ecn: Ecn,
        /// The segment.
        payload: &'a [u8],
    },
    /// A UDP datagram queued on this socket.
    Udp(UdpHandle),
    /// An ICMP error for the transport layers (UDP sockets have already taken theirs).
    IcmpError(IcmpError<'a>),
    /// Handled inside the host (ARP, echo, a fragment held).
    Handled,
    /// Dropped.
    Dropped(DropReason),
}

/// The host's parts the receive path uses, borrowed apart from the reassembler so that a
/// reassembled datagram can be read while the rest of the host acts on it.
struct Ctx<'h> {
    iface: &'h Interface,
    out: &'h mut Output,
    udp: &'h mut UdpSockets,
    counters: &'h mut Counters,
    bucket: &'h mut TokenBucket,
    config: &'h HostConfig,
    last_defend: &'h mut Option<Instant>,
}

/// The ICMP errors the host originates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpKind {
    PortUnreachable,
    ProtoUnreachable,
    ReassemblyTimeout,
}

impl Host {
    /// Processes one received Ethernet frame (FCS stripped) at `now`. Never panics; what
    /// happened is returned and counted.
    pub fn handle_frame<'a>(&'a mut self, now: Instant, frame: &'a [u8]) -> Inbound<'a> {
        let Host { iface, out, reasm, udp, counters, icmp_bucket, config, last_defend, .. } = self;
        counters.rx_frames += 1;
        let mut cx = Ctx { iface, out, udp, counters, bucket: icmp_bucket, config, last_defend };
        let r = frame_input(&mut cx, reasm, now, frame);
        count(cx.counters, &r);
        r
    }
}

/// Adds the frame's disposition to its counter.
fn count(c: &mut Counters, r: &Inbound<'_>) {
    let field = match r {
        Inbound::Tcp { .. } | Inbound::Udp(_) | Inbound::IcmpError(_) => &mut c.rx_delivered,
        Inbound::Handled => &mut c.rx_consumed,
        Inbound::Dropped(d) => match d {
            DropReason::Truncated => &mut c.rx_truncated,
            DropReason::BadVersion => &mut c.rx_bad_version,
            DropReason::BadHeaderLen => &mut c.rx_bad_header_len,
            DropReason::BadLength => &mut c.rx_bad_length,
            DropReason::BadChecksum => &mut c.rx_bad_checksum,
            DropReason::Malformed => &mut c.rx_malformed,
            DropReason::Unsupported => &mut c.rx_unsupported,
            DropReason::NotForUs => &mut c.rx_not_for_us,
            DropReason::Martian => &mut c.rx_martian,
            DropReason::ArpSpoof => &mut c.arp_spoof,
            DropReason::Fragment(_) => &mut c.rx_frag_dropped,
            DropReason::UdpNoPort => &mut c.udp_no_port,
            DropReason::UdpQueueFull => &mut c.udp_rcvbuf_errors,
            DropReason::UnknownProtocol => &mut c.rx_unknown_protocol,
            DropReason::Ignored => &mut c.rx_ignored,
        },
    };
    *field += 1;
}

fn frame_input<'a>(
    cx: &mut Ctx<'_>,
    reasm: &'a mut Reassembler,
    now: Instant,
    frame: &'a [u8],
) -> Inbound<'a> {
    let eth = match EthernetFrame::new_checked(frame) {
        Ok(f) => f,
        Err(e) => return Inbound::Dropped(e.into()),
    };
    let repr = match EthernetRepr::parse(&eth) {
        Ok(r) => r,
        Err(e) => return Inbound::Dropped(e.into()),
    };
    // IEEE 802.1Q: a priority-tagged frame (VID 0) belongs to the untagged interface; other
    // VLANs are not ours.
    if repr.vlan.is_some_and(|t| t.vid != 0) {
        return Inbound::Dropped(DropReason::Unsupported);
    }
    let me = cx.iface.mac();
    // Our own frames reflected back by the backend are not input.
    if repr.src == me {
        return Inbound::Dropped(DropReason::NotForUs);
    }
    let l2_broadcast = repr.dst.is_broadcast();
    if repr.dst != me && !l2_broadcast {
        return Inbound::Dropped(DropReason::NotForUs);
    }
    let payload = &frame[eth.header_len()..];
    match repr.ethertype {
        EtherType::Arp => arp_input(cx, now, payload),
        EtherType::Ipv4 => ipv4_input(cx, reasm, now, l2_broadcast, payload),
        _ => Inbound::Dropped(DropReason::Unsupported),
    }
}

fn arp_input(cx: &mut Ctx<'_>, now: Instant, bytes: &[u8]) -> Inbound<'static> {
    let a = match ArpPacket::new_checked(bytes).and_then(|p| ArpRepr::parse(&p)) {
        Ok(a) => a,
        Err(e) => return Inbound::Dropped(e.into()),
    };
    match a.operation {
        ArpOperation::Request => cx.counters.arp_requests_rx += 1,
        ArpOperation::Reply => cx.counters.arp_replies_rx += 1,
        ArpOperation::Unknown(_) => return Inbound::Dropped(DropReason::Unsupported),
    }
    // RFC 1812 §3.3.2 (and Linux): a group MAC is never a host's hardware address.
    if a.source_hw.is_multicast() {
        return Inbound::Dropped(DropReason::Malformed);
    }
    let me = cx.iface.addr();
    if a.source_ip == me {
        // RFC 5227 §2.4: another host claims our address. Never learn it; defend with an
        // announcement at most once per DEFEND_INTERVAL (§2.4 (b)).
        if let Some(interval) = cx.config.defend {
            if cx.last_defend.is_none_or(|t| now >= t + interval) {
                *cx.last_defend = Some(now);
                cx.out.send_announcement(cx.iface, cx.counters);
                cx.counters.arp_defends_tx += 1;
            }
        }
        return Inbound::Dropped(DropReason::ArpSpoof);
    }
    let for_me = a.target_ip == me;
    let is_request = a.operation == ArpOperation::Request;
    let learnable = is_unicast(a.source_ip)
        && !cx.iface.is_broadcast(a.source_ip)
        && cx.iface.is_on_link(a.source_ip);
    let mut merged = false;
    if learnable {
        // RFC 826 "Packet Reception": update an entry for the sender if there is one (the
        // merge flag); add one if we are the target (here: of a request, see the ledger).
        merged = cx.out.learn(now, cx.counters, a.source_ip, a.source_hw, for_me && is_request);
    }
    if for_me && is_request {
        // RFC 826: swap the sender and target fields, put our addresses in the sender
        // fields, set the opcode to reply and send it to the requester's hardware address.
        // An RFC 5227 probe (sender 0.0.0.0) gets the same answer: that is our defence.
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            source_hw: cx.iface.mac(),
            source_ip: me,
            target_hw: a.source_hw,
            target_ip: a.source_ip,
        };
        cx.out.send_arp(cx.iface, cx.counters, a.source_hw, &reply);
        return Inbound::Handled;
    }
    if merged || for_me {
        Inbound::Handled
    } else {
        Inbound::Dropped(DropReason::NotForUs)
    }
}

fn ipv4_input<'a>(
    cx: &mut Ctx<'_>,
    reasm: &'a mut Reassembler,
    now: Instant,
    l2_broadcast: bool,
    bytes: &'a [u8],
) -> Inbound<'a> {
    let packet = match Ipv4Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return Inbound::Dropped(e.into()),
    };
    let ip = match Ipv4Repr::parse(&packet, cx.config.rx_checksum) {
        Ok(r) => r,
        Err(e) => return Inbound::Dropped(e.into()),
    };
    // RFC 1122 §3.2.1.3 / RFC 1812 §5.3.7: a source that is not a single host is dropped.
    if !is_unicast(ip.src) || cx.iface.is_broadcast(ip.src) || ip.src == cx.iface.addr() {
        return Inbound::Dropped(DropReason::Martian);
    }
    if !cx.iface.accepts(ip.dst) {
        return Inbound::Dropped(DropReason::NotForUs);
    }
    // RFC 1122 §3.3.6: a datagram received as a link-layer broadcast with a unicast IP
    // destination SHOULD be discarded.
    if l2_broadcast && ip.dst == cx.iface.addr() {
        return Inbound::Dropped(DropReason::NotForUs);
    }
    let payload = &bytes[packet.header_len()..usize::from(packet.total_len())];
    if !ip.is_fragment() {
        return l4_input(cx, now, l2_broadcast, ip, payload);
    }
    cx.counters.fragments_rx += 1;
    let mut evicted = false;
    let result = reasm.add(now, &ip, payload, &mut evicted);
    cx.counters.reasm_evicted += u64::from(evicted);
    match result {
        ReasmResult::Held => Inbound::Handled,
        ReasmResult::Dropped(d) => {
            match d {
                ReasmDrop::Overlap => cx.counters.reasm_overlaps += 1,
                ReasmDrop::Duplicate => cx.counters.reasm_duplicates += 1,
                _ => {}
            }
            Inbound::Dropped(DropReason::Fragment(d))
        }
        ReasmResult::Complete(i) => {
            cx.counters.reassembled += 1;
            let reasm: &'a Reassembler = reasm;
            match reasm.datagram(i) {
                Some((whole, data)) => l4_input(cx, now, l2_broadcast, whole, data),
                None => Inbound::Dropped(DropReason::Malformed),
            }
        }
    }
}

fn l4_input<'a>(
    cx: &mut Ctx<'_>,
    now: Instant,
    l2_broadcast: bool,
    ip: Ipv4Repr,
    payload: &'a [u8],
) -> Inbound<'a> {
    let broadcast = l2_broadcast || cx.iface.is_broadcast(ip.dst);
    match ip.protocol {
        // RFC 1122 §4.2.3.10: TCP is unicast only.
        IpProtocol::Tcp if broadcast => Inbound::Dropped(DropReason::Ignored),
        IpProtocol::Tcp => {
            cx.counters.tcp_delivered += 1;
            Inbound::Tcp { src: ip.src, dst: ip.dst, ecn: ip.ecn, payload }
        }
        IpProtocol::Udp => udp_input(cx, now, l2_broadcast, &ip, payload),
        IpProtocol::Icmp => icmp_input(cx, now, broadcast, &ip, payload),
        IpProtocol::Unknown(_) => {
            // RFC 1122 §3.2.2.1: a host SHOULD send protocol unreachable.
            send_icmp_error(cx, now, IcmpKind::ProtoUnreachable, &ip, payload, l2_broadcast);
            Inbound::Dropped(DropReason::UnknownProtocol)
        }
    }
}

fn udp_input<'a>(
    cx: &mut Ctx<'_>,
    now: Instant,
    l2_broadcast: bool,
    ip: &Ipv4Repr,
    payload: &'a [u8],
) -> Inbound<'a> {
    let packet = match UdpPacket::new_checked(payload) {
        Ok(p) => p,
        Err(e) => return Inbound::Dropped(e.into()),
    };
    let u = match UdpRepr::parse(&packet, ip.src, ip.dst, cx.config.rx_checksum) {
        Ok(u) => u,
        Err(e) => return Inbound::Dropped(e.into()),
    };
    let src = SocketAddrV4::new(ip.src, u.src_port);
    let dst = SocketAddrV4::new(ip.dst, u.dst_port);
    match cx.udp.deliver(src, dst, u.payload) {
        Delivery::Queued(h) => {
            cx.counters.udp_delivered += 1;
            Inbound::Udp(h)
        }
        Delivery::QueueFull(_) => Inbound::Dropped(DropReason::UdpQueueFull),
        Delivery::NoSocket => {
            // RFC 1122 §4.1.3.1: a UDP datagram for a port with no listener SHOULD get an
            // ICMP port unreachable (not for broadcasts, §3.2.2).
            send_icmp_error(cx, now, IcmpKind::PortUnreachable, ip, payload, l2_broadcast);
            Inbound::Dropped(DropReason::UdpNoPort)
        }
    }
}

fn icmp_input<'a>(
    cx: &mut Ctx<'_>,
    now: Instant,
    broadcast: bool,
    ip: &Ipv4Repr,
    payload: &'a [u8],
) -> Inbound<'a> {
    let packet = match Icmpv4Packet::new_checked(payload) {
        Ok(p) => p,
        Err(e) => return Inbound::Dropped(e.into()),
    };
    // NICs offload TCP/UDP checksums, not ICMP's: always verified here (RFC 792).
    let message = match Icmpv4Repr::parse(&packet, Checksum::Software) {
        Ok(m) => m,
        // Timestamp, redirect, ...: nothing a host must act on.
        Err(Error::Unsupported) => return Inbound::Dropped(DropReason::Ignored),
        Err(e) => return Inbound::Dropped(e.into()),
    };
    match message {
        Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
            cx.counters.icmp_echo_rx += 1;
            if broadcast {
                return Inbound::Dropped(DropReason::Ignored);
            }
            // RFC 1122 §3.2.2.6: reply with the same identifier, sequence number and data,
            // the source and destination addresses swapped.
            let reply = Icmpv4Repr::EchoReply { ident, seq_no, data };
            // Linux's ICMP socket uses IP_PMTUDISC_DONT: replies go without DF.
            let opts = Ipv4Send {
                ttl: cx.config.ttl,
                dscp: ip.dscp,
                dont_frag: DontFragment::Dont,
                ..Ipv4Send::new(IpProtocol::Icmp)
            };
            let sent = cx.out.send_ipv4(
                cx.iface,
                cx.counters,
                now,
                ip.src,
                &opts,
                reply.buffer_len(),
                |buf| {
                    let _ = reply.emit(&mut Icmpv4Packet::new_unchecked(buf), Checksum::Software);
                },
            );
            if sent.is_ok() {
                cx.counters.icmp_echo_reply_tx += 1;
            }
            Inbound::Handled
        }
        Icmpv4Repr::EchoReply { .. } => Inbound::Handled,
        Icmpv4Repr::DstUnreachable { code, header, data } => {
            cx.counters.icmp_errors_rx += 1;
            let err = match code {
                DstUnreachableCode::PortUnreachable => Some(UdpError::ConnectionRefused),
                DstUnreachableCode::NetUnreachable | DstUnreachableCode::HostUnreachable => {
                    Some(UdpError::HostUnreachable)
                }
                _ => None,
            };
            if let Some(err) = err {
                udp_icmp_error(cx, &header, data, err);
            }
            Inbound::IcmpError(IcmpError { from: ip.src, message })
        }
        Icmpv4Repr::TimeExceeded { .. } => {
            cx.counters.icmp_errors_rx += 1;
            Inbound::IcmpError(IcmpError { from: ip.src, message })
        }
    }
}

/// Hands an ICMP error about a UDP datagram we sent to the connected socket it concerns.
fn udp_icmp_error(cx: &mut Ctx<'_>, header: &Ipv4Repr, data: &[u8], err: UdpError) {
    if header.protocol != IpProtocol::Udp || header.src != cx.iface.addr() || data.len() < 4 {
        return;
    }
    let sport = u16::from_be_bytes([data[0], data[1]]);
    let dport = u16::from_be_bytes([data[2], data[3]]);
    cx.udp.icmp_error(sport, SocketAddrV4::new(header.dst, dport), err);
}

fn send_icmp_error(
    cx: &mut Ctx<'_>,
    now: Instant,
    kind: IcmpKind,
    orig: &Ipv4Repr,
    payload: &[u8],
    l2_broadcast: bool,
) {
    let ttl = cx.config.ttl;
    send_icmp_error_parts(
        cx.iface,
        cx.out,
        cx.counters,
        cx.bucket,
        ttl,
        now,
        kind,
        orig,
        payload,
        l2_broadcast,
    );
}

/// Sends an ICMP error about `orig` (whose payload starts with `payload`) when RFC 1122
/// §3.2.2 allows it and the rate limit (RFC 1812 §4.3.2.8) has a token.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_icmp_error_parts(
    iface: &Interface,
    out: &mut Output,
    counters: &mut Counters,
    bucket: &mut TokenBucket,
    ttl: u8,
    now: Instant,
    kind: IcmpKind,
    orig: &Ipv4Repr,
    payload: &[u8],
    l2_broadcast: bool,
) {
    if !error_allowed(iface, orig, payload, l2_broadcast) {
        return;
    }
    if !bucket.allow(now) {
        counters.icmp_rate_limited += 1;
        return;
    }
    let data = &payload[..payload.len().min(QUOTE_MAX)];
    let header = *orig;
    let message = match kind {
        IcmpKind::PortUnreachable => {
            Icmpv4Repr::DstUnreachable { code: DstUnreachableCode::PortUnreachable, header, data }
        }
        IcmpKind::ProtoUnreachable => {
            Icmpv4Repr::DstUnreachable { code: DstUnreachableCode::ProtoUnreachable, header, data }
        }
        // RFC 792: code 1, "fragment reassembly time exceeded".
        IcmpKind::ReassemblyTimeout => {
            Icmpv4Repr::TimeExceeded { code: TimeExceededCode::FragReassembly, header, data }
        }
    };
    // RFC 1812 §4.3.2.5: ICMP errors carry precedence 6 (internetwork control), DSCP CS6,
    // as Linux sends them.
    let opts = Ipv4Send {
        ttl,
        dscp: 0x30,
        dont_frag: DontFragment::Dont,
        ..Ipv4Send::new(IpProtocol::Icmp)
    };
    let sent = out.send_ipv4(iface, counters, now, orig.src, &opts, message.buffer_len(), |buf| {
        let _ = message.emit(&mut Icmpv4Packet::new_unchecked(buf), Checksum::Software);
    });
    if sent.is_ok() {
        counters.icmp_errors_tx += 1;
    }
}
