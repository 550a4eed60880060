//! The host side of IPv4, sans-IO: interface and routing, ARP, IPv4 input and output with
//! reassembly and fragmentation, ICMP echo and errors, and UDP sockets.
//!
//! [`Host`] is the one entry point. The service feeds it frames and time, and drains frames:
//!
//! ```text
//!   NIC rx ──► host.handle_frame(now, frame) ──► Inbound::Tcp { src, dst, payload }
//!                                               │        └─► TcpRepr::parse → tcp.handle_segment
//!                                               ├─► UDP queued on a socket (host.udp_recv_from)
//!                                               └─► ARP / ICMP answered inside the host
//!   tcp.poll_transmit(|src, dst, seg| host.send_ipv4(now, dst, Tcp, seg.buffer_len(), |b| emit))
//!   NIC tx ◄── host.poll_transmit(now, &mut |frame| nic.send(frame))
//!   sleep until min(host.poll_at(), tcp.poll_at())
//! ```
//!
//! `joyride-ip` does not know `joyride-tcp` (which depends on it): TCP segments go up as
//! borrowed bytes in [`Inbound::Tcp`] and come down through [`Host::send_ipv4`], whose closure
//! writes the segment (and its checksum, over [`Host::addr`] and the destination) in place.
//!
//! Memory is allocated when the host is created — the frame pool, the ARP table, the
//! reassembly buffers, the UDP table — and when a UDP socket is opened (its receive queue).
//! Nothing a peer sends makes the host allocate: full tables evict or drop, and count.
//! Malformed input is dropped and counted in [`Counters`], never a panic.
//!
//! ## Deviations from MAY/SHOULD (the exceptions ledger)
//! - RFC 826 lets any ARP packet targeted at us create an entry; here only requests do (an
//!   unsolicited reply only updates an existing entry), as Linux with `arp_accept = 0`.
//! - RFC 1122 §3.2.1.3 source checks: datagrams from our own address are dropped as martians
//!   (Linux does the same).
//! - ICMP errors quote the offending header rebuilt without options (its fields unchanged).
//! - Echo requests to a broadcast address are ignored (Linux `icmp_echo_ignore_broadcasts`,
//!   RFC 1122 §3.2.2.6 MAY).

mod arp_cache;
mod icmp;
mod iface;
mod input;
mod output;
mod pool;
mod reasm;
mod udp;

use alloc::vec::Vec;
use core::net::SocketAddrV4;

use joyride_base::{Duration, Instant};

pub use arp_cache::{ArpCache, ArpConfig, ArpEvent, Lookup};
pub use icmp::{error_allowed, TokenBucket};
pub use iface::{is_unicast, multicast_mac, ConfigError, Interface, NextHop, RouteError, MIN_MTU};
pub use input::{DropReason, IcmpError, Inbound};
pub use output::{DontFragment, Ipv4Send, SendError};
pub use reasm::{ReasmConfig, ReasmDrop, ReasmResult, Reassembler, MAX_DATAGRAM_PAYLOAD};
pub use udp::{
    Delivery, RecvMeta, UdpConfig, UdpError, UdpHandle, UdpSockets, MAX_PAYLOAD as UDP_MAX_PAYLOAD,
};

use crate::ethernet::EthernetAddress;
use crate::ipv4::IpProtocol;
use crate::udp::{UdpPacket, UdpRepr};
use crate::{Checksum, Ipv4Addr};
use output::Output;

/// Everything a [`Host`] can be tuned with; [`HostConfig::default`] follows Linux.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// ARP table limits and timers.
    pub arp: ArpConfig,
    /// Reassembly limits.
    pub reasm: ReasmConfig,
    /// UDP socket table limits.
    pub udp: UdpConfig,
    /// Frames the transmit pool holds (each MTU + 14 bytes), queued and parked together.
    pub tx_slots: usize,
    /// Most frames parked for ARP resolution, over all neighbours.
    pub arp_pending_total: usize,
    /// ICMP errors per second (0: unlimited) and burst (Linux `icmp_msgs_per_sec` and
    /// `icmp_msgs_burst`).
    pub icmp_rate: (u32, u32),
    /// Whether received IPv4/UDP checksums are verified here or were by the NIC.
    pub rx_checksum: Checksum,
    /// Whether IPv4/UDP checksums are computed here or left to the NIC.
    pub tx_checksum: Checksum,
    /// TTL of the datagrams the host originates (Linux `ip_default_ttl`).
    pub ttl: u8,
    /// Gratuitous ARP announcements sent at start, and their spacing (RFC 5227 §2.3:
    /// ANNOUNCE_NUM = 2, ANNOUNCE_INTERVAL = 2 s).
    pub announcements: (u8, Duration),
    /// Whether an ARP claiming our address from another MAC is answered with an
    /// announcement, at most once per interval (RFC 5227 §2.4 (b), DEFEND_INTERVAL = 10 s).
    pub defend: Option<Duration>,
    /// Seed for the IPv4 identification start and ephemeral ports (the service passes a
    /// random one).
    pub seed: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            arp: ArpConfig::default(),
            reasm: ReasmConfig::default(),
            udp: UdpConfig::default(),
            tx_slots: 512,
            arp_pending_total: 256,
            icmp_rate: (1000, 50),
            rx_checksum: Checksum::Software,
            tx_checksum: Checksum::Software,
            ttl: 64,
            announcements: (2, Duration::from_secs(2)),
            defend: Some(Duration::from_secs(10)),
            seed: 0x6a6f_7972_6964_6521,
        }
    }
}

/// What the host saw and did. Every received frame lands in exactly one of the
/// disposition counters that [`Counters::rx_accounted`] sums; the others are statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // Each field is named for what it counts.
pub struct Counters {
    // --- dispositions: one per received frame ---
    /// Frames handed to [`Host::handle_frame`].
    pub rx_frames: u64,
    /// Frames whose contents went up: TCP segments, UDP datagrams queued, ICMP errors.
    pub rx_delivered: u64,
    /// Frames handled inside the host: ARP, echo requests, fragments held for reassembly.
    pub rx_consumed: u64,
    pub rx_truncated: u64,
    pub rx_bad_version: u64,
    pub rx_bad_header_len: u64,
    pub rx_bad_length: u64,
    pub rx_bad_checksum: u64,
    pub rx_malformed: u64,
    /// Unknown EtherType, 802.3/LLC, VLAN-tagged, non-Ethernet/IPv4 ARP.
    pub rx_unsupported: u64,
    /// Not addressed to us (MAC or IP) or not for any of our addresses.
    pub rx_not_for_us: u64,
    /// Impossible source address (broadcast, multicast, zero, loopback, ours).
    pub rx_martian: u64,
    /// ARP claiming our IPv4 address from another MAC.
    pub arp_spoof: u64,
    /// Fragments not stored (overlap, bad length, too big, duplicate...).
    pub rx_frag_dropped: u64,
    /// UDP to a port nobody listens on.
    pub udp_no_port: u64,
    /// UDP dropped because the socket's queue was full.
    pub udp_rcvbuf_errors: u64,
    /// IP protocol other than ICMP, TCP, UDP.
    pub rx_unknown_protocol: u64,
    /// Valid but deliberately ignored (broadcast echo, TCP to a broadcast).
    pub rx_ignored: u64,
    // --- statistics ---
    pub arp_requests_rx: u64,
    pub arp_replies_rx: u64,
    pub arp_requests_tx: u64,
    pub arp_replies_tx: u64,
    pub arp_announcements_tx: u64,
    pub arp_defends_tx: u64,
    pub arp_learned: u64,
    pub arp_locked: u64,
    pub arp_failed: u64,
    pub arp_expired: u64,
    pub arp_evicted: u64,
    pub arp_queue_dropped: u64,
    pub fragments_rx: u64,
    pub reassembled: u64,
    pub reasm_timeouts: u64,
    pub reasm_overlaps: u64,
    pub reasm_duplicates: u64,
    pub reasm_evicted: u64,
    pub icmp_echo_rx: u64,
    pub icmp_echo_reply_tx: u64,
    pub icmp_errors_rx: u64,
    pub icmp_errors_tx: u64,
    pub icmp_rate_limited: u64,
    pub udp_delivered: u64,
    /// UDP datagrams sent to our own address and queued on a socket here (never on the wire).
    pub udp_looped: u64,
    pub udp_tx: u64,
    pub tcp_delivered: u64,
    pub tx_frames: u64,
    pub tx_datagrams: u64,
    pub tx_fragmented: u64,
    pub tx_fragments: u64,
    pub tx_no_bufs: u64,
    pub tx_no_route: u64,
}

impl Counters {
    /// The sum of the disposition counters: equals `rx_frames` at all times.
    pub fn rx_accounted(&self) -> u64 {
        self.rx_delivered
            + self.rx_consumed
            + self.rx_truncated
            + self.rx_bad_version
            + self.rx_bad_header_len
            + self.rx_bad_length
            + self.rx_bad_checksum
            + self.rx_malformed
            + self.rx_unsupported
            + self.rx_not_for_us
            + self.rx_martian
            + self.arp_spoof
            + self.rx_frag_dropped
            + self.udp_no_port
            + self.udp_rcvbuf_errors
            + self.rx_unknown_protocol
            + self.rx_ignored
    }
}

/// A single-interface IPv4 host, sans-IO.
#[derive(Debug)]
pub struct Host {
    iface: Interface,
    config: HostConfig,
    out: Output,
    reasm: Reassembler,
    udp: UdpSockets,
    icmp_bucket: TokenBucket,
    counters: Counters,
    announce_left: u8,
    announce_at: Instant,
    last_defend: Option<Instant>,
    arp_events: Vec<ArpEvent>,
}

impl Host {
    /// A host on `iface`, all its tables allocated now; the first gratuitous ARP is queued.
    pub fn new(now: Instant, iface: Interface, config: HostConfig) -> Host {
        let arp = ArpCache::new(config.arp);
        let out = Output::new(
            &iface,
            config.tx_slots.max(2),
            config.arp_pending_total,
            arp,
            (config.seed >> 48) as u16,
            config.tx_checksum,
        );
        let udp = UdpSockets::new(config.udp.clone(), iface.addr(), iface.broadcast(), config.seed);
        let (rate, burst) = config.icmp_rate;
        Host {
            iface,
            reasm: Reassembler::new(config.reasm),
            udp,
            icmp_bucket: TokenBucket::new(rate, burst, now),
            counters: Counters::default(),
            announce_left: config.announcements.0,
            announce_at: now,
            last_defend: None,
            arp_events: Vec::with_capacity(config.arp.capacity.max(1)),
            out,
            config,
        }
    }

    /// The interface.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// Our IPv4 address (the source of everything the host sends).
    pub fn addr(&self) -> Ipv4Addr {
        self.iface.addr()
    }

    /// Our MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.iface.mac()
    }

    /// The configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The ARP table (read-only).
    pub fn arp(&self) -> &ArpCache {
        &self.out.arp
    }

    /// The reassembly table (read-only).
    pub fn reassembler(&self) -> &Reassembler {
        &self.reasm
    }

    /// The UDP sockets (bind, connect, close, options).
    pub fn udp(&mut self) -> &mut UdpSockets {
        &mut self.udp
    }

    /// Frames queued for the NIC.
    pub fn tx_queued(&self) -> usize {
        self.out.queued()
    }

    /// Free slots in the frame pool.
    pub fn tx_free(&self) -> usize {
        self.out.pool.free_count()
    }

    /// Slots in the frame pool.
    pub fn tx_capacity(&self) -> usize {
        self.out.pool.capacity()
    }

    /// Sends an IPv4 datagram to `dst` with the defaults for `protocol` (see [`Ipv4Send`]);
    /// `fill` writes the `payload_len`-byte payload in place. For TCP the service writes the
    /// segment with its checksum over [`Self::addr`] and `dst`.
    pub fn send_ipv4(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        let opts = Ipv4Send { ttl: self.config.ttl, ..Ipv4Send::new(protocol) };
        self.send_ipv4_with(now, dst, &opts, payload_len, fill)
    }

    /// [`Self::send_ipv4`] with explicit header fields.
    pub fn send_ipv4_with(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        opts: &Ipv4Send,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        self.out.send_ipv4(&self.iface, &mut self.counters, now, dst, opts, payload_len, fill)
    }

    /// `connect` on a UDP socket: checks the route (`ENETUNREACH`), then sets the peer.
    pub fn udp_connect(&mut self, h: UdpHandle, peer: SocketAddrV4) -> Result<(), UdpError> {
        match self.iface.route(*peer.ip()) {
            Err(RouteError::NoRoute) => return Err(UdpError::NetworkUnreachable),
            Err(RouteError::Local)
                if *peer.ip() != self.iface.addr() && !peer.ip().is_loopback() =>
            {
                return Err(UdpError::InvalidInput)
            }
            _ => {}
        }
        self.udp.connect(h, peer)
    }

    /// `sendto` on a UDP socket (`dst` `None`: the connected peer). Datagrams larger than
    /// the MTU are fragmented. A datagram to our own address or to 127.0.0.0/8 is delivered
    /// locally (from the bound address, else 127.0.0.1 to a loopback address and ours to
    /// ours; to a port without a socket: `ECONNREFUSED` pending on a connected sender, as
    /// Linux); a socket bound to a loopback address cannot send anywhere else (`EINVAL`, as
    /// Linux's routing refuses a loopback source off `lo`). Returns the bytes sent.
    pub fn udp_send_to(
        &mut self,
        now: Instant,
        h: UdpHandle,
        dst: Option<SocketAddrV4>,
        data: &[u8],
    ) -> Result<usize, UdpError> {
        let (src_port, dst) = self.udp.prepare_send(h, dst, data.len())?;
        let me = self.iface.addr();
        let bound = self.udp.bound_ip(h).filter(|ip| !ip.is_unspecified());
        if *dst.ip() == me || dst.ip().is_loopback() {
            let src_ip = match bound {
                Some(ip) => ip,
                None if dst.ip().is_loopback() => Ipv4Addr::LOCALHOST,
                None => me,
            };
            let src = SocketAddrV4::new(src_ip, src_port);
            return match self.udp.deliver(src, dst, data) {
                Delivery::Queued(_) => {
                    self.counters.udp_looped += 1;
                    Ok(data.len())
                }
                Delivery::QueueFull(_) => {
                    self.counters.udp_rcvbuf_errors += 1;
                    Ok(data.len())
                }
                // Linux loops an ICMP port unreachable back: a connected sender gets
                // `ECONNREFUSED` as its pending error (reported by its next call), an
                // unconnected one ignores it; the send itself succeeded.
                Delivery::NoSocket => {
                    self.udp.icmp_error(src_port, dst, UdpError::ConnectionRefused);
                    Ok(data.len())
                }
            };
        }
        if bound.is_some_and(|ip| ip.is_loopback()) {
            return Err(UdpError::InvalidInput);
        }
        let repr = UdpRepr { src_port, dst_port: dst.port(), payload: data };
        let checksum = self.config.tx_checksum;
        let opts = Ipv4Send { ttl: self.config.ttl, ..Ipv4Send::new(IpProtocol::Udp) };
        let dst_ip = *dst.ip();
        let r = self.out.send_ipv4(
            &self.iface,
            &mut self.counters,
            now,
            dst_ip,
            &opts,
            repr.buffer_len(),
            |buf| repr.emit(&mut UdpPacket::new_unchecked(buf), me, dst_ip, checksum),
        );
        match r {
            Ok(()) => {
                self.counters.udp_tx += 1;
                Ok(data.len())
            }
            Err(SendError::Route(RouteError::NoRoute)) => Err(UdpError::NetworkUnreachable),
            Err(SendError::Route(RouteError::Local)) => Err(UdpError::InvalidInput),
            Err(SendError::TooBig { .. }) => Err(UdpError::MessageTooLong),
            Err(SendError::NoBufs) => Err(UdpError::WouldBlock),
        }
    }

    /// `recvfrom` on a UDP socket.
    pub fn udp_recv_from(&mut self, h: UdpHandle, buf: &mut [u8]) -> Result<RecvMeta, UdpError> {
        self.udp.recv_from(h, buf)
    }

    /// Queues an announcement (gratuitous ARP) now, e.g. after the link comes up.
    pub fn announce(&mut self) {
        self.out.send_announcement(&self.iface, &mut self.counters);
    }

    /// Runs the timers due at `now`: ARP retransmissions, expiries and failures, reassembly
    /// timeouts (with ICMP time exceeded), start-up announcements.
    pub fn poll_timers(&mut self, now: Instant) {
        if self.announce_left > 0 && now >= self.announce_at {
            self.announce_left -= 1;
            self.announce_at = now + self.config.announcements.1;
            self.out.send_announcement(&self.iface, &mut self.counters);
        }
        let ttl = self.config.ttl;
        let Host { iface, out, counters, reasm, icmp_bucket, arp_events, .. } = self;
        // Each entry yields at most one event per poll: the preallocated vector never grows.
        arp_events.clear();
        out.arp.poll(now, &mut out.pool, &mut |e| arp_events.push(e));
        for e in arp_events.drain(..) {
            match e {
                ArpEvent::Request { ip, to } => out.send_arp_request(iface, counters, ip, to),
                ArpEvent::Failed { dropped, .. } => {
                    counters.arp_failed += 1;
                    counters.arp_queue_dropped += dropped as u64;
                }
                ArpEvent::Expired { .. } => counters.arp_expired += 1,
            }
        }
        reasm.poll(now, &mut |r, t| {
            counters.reasm_timeouts += 1;
            // RFC 1122 §3.3.2 / RFC 792: time exceeded only when fragment zero arrived.
            if let Some(first) = t.first {
                let quote = r.first_bytes(t.slot, input::QUOTE_MAX);
                input::send_icmp_error_parts(
                    iface,
                    out,
                    counters,
                    icmp_bucket,
                    ttl,
                    now,
                    input::IcmpKind::ReassemblyTimeout,
                    &first,
                    quote,
                    false,
                );
            }
        });
    }

    /// Runs due timers, then hands every queued frame to `emit` (in order).
    pub fn poll_transmit(&mut self, now: Instant, emit: &mut dyn FnMut(&[u8])) {
        self.poll_timers(now);
        self.out.drain(&mut self.counters, emit);
    }

    /// When [`Self::poll_transmit`] next has work: `Some(now-or-earlier)` while frames are
    /// queued, else the earliest timer, `None` when idle.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.out.queued() > 0 {
            return Some(Instant::ZERO);
        }
        let announce = (self.announce_left > 0).then_some(self.announce_at);
        [announce, self.out.arp.poll_at(), self.reasm.poll_at()].into_iter().flatten().min()
    }
}
