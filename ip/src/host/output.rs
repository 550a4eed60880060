//! The transmit path: IPv4 header, fragmentation, next-hop resolution and the frame queue.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use joyride_base::Instant;

use super::arp_cache::{ArpCache, Learned, Lookup};
use super::iface::{Interface, NextHop, RouteError};
use super::pool::{FramePool, SlotId, SlotList};
use super::Counters;
use crate::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::ethernet::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, HEADER_LEN as ETH_LEN,
};
use crate::ipv4::{Ecn, IpProtocol, Ipv4Packet, Ipv4Repr, HEADER_LEN as IP_LEN};
use crate::{Checksum, Ipv4Addr};

/// How the Don't Fragment bit is chosen (Linux `IP_MTU_DISCOVER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DontFragment {
    /// Set DF when the datagram fits the MTU, fragment it (without DF) otherwise
    /// (`IP_PMTUDISC_WANT`, Linux's default).
    #[default]
    Want,
    /// Always set DF; a datagram larger than the MTU is refused ([`SendError::TooBig`]),
    /// as TCP wants for path MTU discovery (RFC 1191 §3).
    Do,
    /// Never set DF; fragment when needed (`IP_PMTUDISC_DONT`).
    Dont,
}

/// Header fields of a datagram to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Send {
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Time to live (RFC 1122 §3.2.1.7: a fixed default, 64 as Linux).
    pub ttl: u8,
    /// DSCP (RFC 2474).
    pub dscp: u8,
    /// ECN codepoint (RFC 3168).
    pub ecn: Ecn,
    /// DF policy.
    pub dont_frag: DontFragment,
}

impl Ipv4Send {
    /// Defaults for `protocol`: TTL 64, no DSCP/ECN, [`DontFragment::Want`].
    pub const fn new(protocol: IpProtocol) -> Ipv4Send {
        Ipv4Send { protocol, ttl: 64, dscp: 0, ecn: Ecn::NotEct, dont_frag: DontFragment::Want }
    }
}

/// Why a datagram was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendError {
    /// No route ([`RouteError`]).
    Route(RouteError),
    /// Longer than 65515 payload bytes, or than the MTU with [`DontFragment::Do`]
    /// (`EMSGSIZE`, errno 90).
    TooBig {
        /// The interface MTU.
        mtu: u16,
    },
    /// The frame pool has no room for all of the datagram's frames right now (`ENOBUFS`,
    /// errno 105; a socket layer reports `EAGAIN`).
    NoBufs,
}

impl SendError {
    /// The Linux errno (`include/uapi/asm-generic/errno.h`).
    pub const fn errno(self) -> i32 {
        match self {
            SendError::Route(r) => r.errno(),
            SendError::TooBig { .. } => 90,
            SendError::NoBufs => 105,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Route(r) => write!(f, "{r}"),
            SendError::TooBig { mtu } => write!(f, "datagram too big (MTU {mtu})"),
            SendError::NoBufs => f.write_str("no transmit buffer"),
        }
    }
}

impl core::error::Error for SendError {}

impl From<RouteError> for SendError {
    fn from(r: RouteError) -> Self {
        SendError::Route(r)
    }
}

/// The transmit side of a host: frame pool, queue to the NIC, ARP table.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) pool: FramePool,
    pub(crate) tx: SlotList,
    pub(crate) arp: ArpCache,
    /// Where a datagram that needs fragmenting is built whole first (65535 bytes).
    scratch: Vec<u8>,
    ident: u16,
    checksum: Checksum,
    /// Most frames parked for ARP over all neighbours, so that they cannot starve the pool.
    pending_cap: usize,
}

/// The largest fragment payload for `mtu`: what fits after a 20-byte header, rounded down to
/// a multiple of 8 (RFC 791 §3.2: fragment offsets count 8-octet units).
pub(crate) const fn frag_payload(mtu: u16) -> usize {
    (mtu as usize - IP_LEN) & !7
}

impl Output {
    pub(crate) fn new(
        iface: &Interface,
        slots: usize,
        pending_cap: usize,
        arp: ArpCache,
        ident_seed: u16,
        checksum: Checksum,
    ) -> Output {
        Output {
            pool: FramePool::new(slots, ETH_LEN + usize::from(iface.mtu())),
            tx: SlotList::default(),
            arp,
            scratch: vec![0; crate::ipv4::MAX_PACKET_LEN],
            ident: ident_seed,
            checksum,
            pending_cap,
        }
    }

    /// Frames waiting for the NIC.
    pub(crate) fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Builds one Ethernet frame in a fresh slot: header with `dst` (zero when unknown yet) and
    /// `ethertype`, `payload_len` bytes after it left for the caller.
    fn frame(
        &mut self,
        iface: &Interface,
        dst: EthernetAddress,
        ethertype: EtherType,
        payload_len: usize,
    ) -> Option<SlotId> {
        let id = self.pool.alloc(ETH_LEN + payload_len)?;
        let eth = EthernetRepr { src: iface.mac(), dst, ethertype, vlan: None };
        // The slot holds at least the header: emit cannot fail.
        let _ = eth.emit(&mut EthernetFrame::new_unchecked(self.pool.get_mut(id)));
        Some(id)
    }

    /// Queues an ARP packet to `dst_mac`.
    pub(crate) fn send_arp(
        &mut self,
        iface: &Interface,
        counters: &mut Counters,
        dst_mac: EthernetAddress,
        repr: &ArpRepr,
    ) -> bool {
        let Some(id) = self.frame(iface, dst_mac, EtherType::Arp, repr.buffer_len()) else {
            counters.tx_no_bufs += 1;
            return false;
        };
        let _ = repr.emit(&mut ArpPacket::new_unchecked(&mut self.pool.get_mut(id)[ETH_LEN..]));
        self.tx.push_back(&mut self.pool, id);
        match repr.operation {
            ArpOperation::Request => counters.arp_requests_tx += 1,
            _ => counters.arp_replies_tx += 1,
        }
        true
    }

    /// Queues a request for `ip`: broadcast, or unicast to `to` (a re-confirmation probe).
    pub(crate) fn send_arp_request(
        &mut self,
        iface: &Interface,
        counters: &mut Counters,
        ip: Ipv4Addr,
        to: Option<EthernetAddress>,
    ) {
        // RFC 826 "Packet Generation": our addresses as sender, the target hardware address
        // unknown (zero).
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            source_hw: iface.mac(),
            source_ip: iface.addr(),
            target_hw: EthernetAddress([0; 6]),
            target_ip: ip,
        };
        self.send_arp(iface, counters, to.unwrap_or(EthernetAddress::BROADCAST), &repr);
    }

    /// Queues an announcement (gratuitous ARP, RFC 5227 §3: a request with sender and target
    /// protocol addresses both ours, broadcast).
    pub(crate) fn send_announcement(&mut self, iface: &Interface, counters: &mut Counters) {
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            source_hw: iface.mac(),
            source_ip: iface.addr(),
            target_hw: EthernetAddress([0; 6]),
            target_ip: iface.addr(),
        };
        if self.send_arp(iface, counters, EthernetAddress::BROADCAST, &repr) {
            counters.arp_announcements_tx += 1;
        }
    }

    /// Fills in the destination MAC of parked frames and moves them to the transmit queue.
    pub(crate) fn release_parked(&mut self, mac: EthernetAddress, mut list: SlotList) {
        while let Some(id) = list.pop_front(&mut self.pool) {
            EthernetFrame::new_unchecked(self.pool.get_mut(id)).set_dst_addr(mac);
            self.tx.push_back(&mut self.pool, id);
        }
    }

    /// Records `ip` at `mac` in the ARP table and releases what waited for it.
    pub(crate) fn learn(
        &mut self,
        now: Instant,
        counters: &mut Counters,
        ip: Ipv4Addr,
        mac: EthernetAddress,
        create: bool,
    ) -> bool {
        match self.arp.learn(now, ip, mac, create, &mut self.pool) {
            Learned::Updated(list) => {
                counters.arp_learned += 1;
                self.release_parked(mac, list);
                true
            }
            Learned::Locked => {
                counters.arp_locked += 1;
                false
            }
            Learned::Absent => false,
        }
    }

    /// Builds and queues an IPv4 datagram to `dst` whose `payload_len`-byte payload `fill`
    /// writes; fragments it when it exceeds the MTU (RFC 791 §3.2) and parks it while ARP
    /// resolves the next hop.
    #[allow(clippy::too_many_arguments)] // The host's parts, borrowed apart, plus the call's.
    pub(crate) fn send_ipv4(
        &mut self,
        iface: &Interface,
        counters: &mut Counters,
        now: Instant,
        dst: Ipv4Addr,
        opts: &Ipv4Send,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        let next = iface.route(dst).inspect_err(|_| counters.tx_no_route += 1)?;
        let mtu = iface.mtu();
        if payload_len > Ipv4Repr::MAX_PAYLOAD_LEN {
            return Err(SendError::TooBig { mtu });
        }
        let fits = IP_LEN + payload_len <= usize::from(mtu);
        if !fits && opts.dont_frag == DontFragment::Do {
            return Err(SendError::TooBig { mtu });
        }
        let piece = frag_payload(mtu);
        let nfrags = if fits { 1 } else { payload_len.div_ceil(piece) };
        let (mac, hop) = match next {
            NextHop::Broadcast => (Some(EthernetAddress::BROADCAST), None),
            NextHop::Multicast(m) => (Some(m), None),
            NextHop::Neighbor(ip) => match self.arp.lookup(now, ip) {
                Lookup::Known(m) => (Some(m), Some(ip)),
                Lookup::Unresolved => (None, Some(ip)),
            },
        };
        // One more slot for the ARP request an unresolved next hop may need.
        let needed = nfrags + usize::from(mac.is_none());
        if self.pool.free_count() < needed {
            counters.tx_no_bufs += 1;
            return Err(SendError::NoBufs);
        }
        // RFC 6864 §4.1: the identification only has to be unique for fragmentable
        // datagrams; one counter for all of them is enough for a host.
        let ident = self.ident;
        self.ident = self.ident.wrapping_add(1);
        let mut header = Ipv4Repr {
            src: iface.addr(),
            dst,
            protocol: opts.protocol,
            payload_len,
            ttl: opts.ttl,
            dscp: opts.dscp,
            ecn: opts.ecn,
            ident,
            dont_frag: fits && opts.dont_frag != DontFragment::Dont,
            more_frags: false,
            frag_offset: 0,
        };
        let eth_dst = mac.unwrap_or(EthernetAddress([0; 6]));
        let mut frames = SlotList::default();
        if fits {
            // Checked above: the pool has a slot and it holds MTU bytes.
            let Some(id) = self.frame(iface, eth_dst, EtherType::Ipv4, IP_LEN + payload_len) else {
                return Err(SendError::NoBufs);
            };
            let buf = &mut self.pool.get_mut(id)[ETH_LEN..];
            let _ = header.emit(&mut Ipv4Packet::new_unchecked(&mut *buf), self.checksum);
            fill(&mut buf[IP_LEN..]);
            frames.push_back(&mut self.pool, id);
        } else {
            fill(&mut self.scratch[..payload_len]);
            counters.tx_fragmented += 1;
            // RFC 791 §3.2 "An Example Fragmentation Procedure": each piece but the last
            // carries a multiple of 8 octets and MF; offsets in 8-octet units.
            let mut off = 0;
            while off < payload_len {
                let len = piece.min(payload_len - off);
                header.payload_len = len;
                header.frag_offset = off as u16;
                header.more_frags = off + len < payload_len;
                let Some(id) = self.frame(iface, eth_dst, EtherType::Ipv4, IP_LEN + len) else {
                    frames.release_all(&mut self.pool);
                    return Err(SendError::NoBufs);
                };
                let buf = &mut self.pool.get_mut(id)[ETH_LEN..];
                let _ = header.emit(&mut Ipv4Packet::new_unchecked(&mut *buf), self.checksum);
                buf[IP_LEN..].copy_from_slice(&self.scratch[off..off + len]);
                frames.push_back(&mut self.pool, id);
                counters.tx_fragments += 1;
                off += len;
            }
        }
        counters.tx_datagrams += 1;
        match (mac, hop) {
            (Some(_), _) | (None, None) => self.tx.append(&mut self.pool, &mut frames),
            (None, Some(ip)) => self.park(iface, counters, now, ip, frames),
        }
        Ok(())
    }

    /// Parks frames for `ip` until ARP resolves it (RFC 1122 §2.3.2.2), within the per
    /// neighbour and total limits; starts the resolution when it is new.
    fn park(
        &mut self,
        iface: &Interface,
        counters: &mut Counters,
        now: Instant,
        ip: Ipv4Addr,
        mut frames: SlotList,
    ) {
        let mut request = false;
        while let Some(id) = frames.pop_front(&mut self.pool) {
            if self.arp.pending() >= self.pending_cap {
                self.pool.release(id);
                counters.arp_queue_dropped += 1;
                continue;
            }
            let q = self.arp.enqueue(now, ip, id, &mut self.pool);
            request |= q.send_request;
            counters.arp_queue_dropped += q.dropped as u64;
            counters.arp_evicted += u64::from(q.evicted);
        }
        if request {
            self.send_arp_request(iface, counters, ip, None);
        }
    }

    /// Hands every queued frame to `emit`, in order, and frees its slot.
    pub(crate) fn drain(&mut self, counters: &mut Counters, emit: &mut dyn FnMut(&[u8])) {
        while let Some(id) = self.tx.pop_front(&mut self.pool) {
            emit(self.pool.get(id));
            counters.tx_frames += 1;
            self.pool.release(id);
        }
    }
}
