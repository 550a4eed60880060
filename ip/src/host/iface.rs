//! The interface configuration and the routing decision of a single-homed host.
//!
//! A host with one interface has two routes (RFC 1122 §3.3.1.1): destinations inside the
//! interface's prefix are on-link and resolved with ARP directly; everything else goes to the
//! default gateway, when there is one. Without a gateway an off-link destination has no route
//! ([`RouteError::NoRoute`], `ENETUNREACH` at the socket edge).

use core::fmt;

use crate::ethernet::EthernetAddress;
use crate::Ipv4Addr;

/// The smallest MTU an IPv4 interface may have: RFC 791 §3.2 "Every internet module must be
/// able to forward a datagram of 68 octets without further fragmentation".
pub const MIN_MTU: u16 = 68;

/// Why an [`Interface`] was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigError {
    /// The prefix length is above 32.
    BadPrefix,
    /// The MTU is below [`MIN_MTU`].
    BadMtu,
    /// The address is unspecified, loopback, multicast, broadcast, or the network or broadcast
    /// address of its own prefix.
    BadAddress,
    /// The gateway is not inside the interface's prefix, or is the interface's own address.
    GatewayNotOnLink,
    /// The MAC address is a group (multicast/broadcast) address.
    BadMac,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::BadPrefix => "prefix length above 32",
            ConfigError::BadMtu => "MTU below 68",
            ConfigError::BadAddress => "address not usable as a host address",
            ConfigError::GatewayNotOnLink => "gateway not on the interface's prefix",
            ConfigError::BadMac => "MAC address is a group address",
        })
    }
}

impl core::error::Error for ConfigError {}

/// Why a destination cannot be sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteError {
    /// Off-link and no default gateway (`ENETUNREACH`, errno 101).
    NoRoute,
    /// The destination is 0.0.0.0, a loopback address, or this host's own address: nothing
    /// to put on the wire (the service loops such traffic back itself).
    Local,
}

impl RouteError {
    /// The Linux errno (`include/uapi/asm-generic/errno.h`): `ENETUNREACH` (101) for
    /// [`RouteError::NoRoute`], `EINVAL` (22) for [`RouteError::Local`].
    pub const fn errno(self) -> i32 {
        match self {
            RouteError::NoRoute => 101,
            RouteError::Local => 22,
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteError::NoRoute => "no route to network",
            RouteError::Local => "local or unspecified destination",
        })
    }
}

impl core::error::Error for RouteError {}

/// Where a datagram for a destination goes on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// A unicast neighbour whose MAC ARP resolves: the destination itself (on-link) or the
    /// gateway.
    Neighbor(Ipv4Addr),
    /// The limited or this subnet's broadcast address: the Ethernet broadcast MAC.
    Broadcast,
    /// An IPv4 multicast group, sent to its mapped MAC (RFC 1112 §6.4).
    Multicast(EthernetAddress),
}

/// One Ethernet interface with one IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interface {
    mac: EthernetAddress,
    addr: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
    mtu: u16,
}

impl Interface {
    /// Validates and builds an interface: `addr/prefix_len` on `mac`, an optional default
    /// gateway (which must be on-link, RFC 1122 §3.3.1.1), and the IP MTU (the largest IPv4
    /// packet, header included, one Ethernet frame carries: 1500 on plain Ethernet).
    pub fn new(
        mac: EthernetAddress,
        addr: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
        mtu: u16,
    ) -> Result<Interface, ConfigError> {
        if prefix_len > 32 {
            return Err(ConfigError::BadPrefix);
        }
        if mtu < MIN_MTU {
            return Err(ConfigError::BadMtu);
        }
        if mac.is_multicast() {
            return Err(ConfigError::BadMac);
        }
        let iface = Interface { mac, addr, prefix_len, gateway, mtu };
        // RFC 1122 §3.2.1.3: 0.0.0.0, 127/8, class D/E and the broadcast addresses are not
        // host addresses.
        if !is_unicast(addr) || iface.is_subnet_broadcast(addr) || iface.is_network_addr(addr) {
            return Err(ConfigError::BadAddress);
        }
        if let Some(gw) = gateway {
            if gw == addr
                || !iface.is_on_link(gw)
                || !is_unicast(gw)
                || iface.is_subnet_broadcast(gw)
            {
                return Err(ConfigError::GatewayNotOnLink);
            }
        }
        Ok(iface)
    }

    /// The interface's MAC address.
    pub const fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// The interface's IPv4 address.
    pub const fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The default gateway.
    pub const fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    /// The IP MTU in bytes (header included).
    pub const fn mtu(&self) -> u16 {
        self.mtu
    }

    /// The netmask as a 32-bit value.
    pub const fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }

    /// The netmask as an address (`255.255.255.0` for a /24).
    pub const fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.mask())
    }

    /// Whether `ip` is inside the interface's prefix (on-link).
    pub const fn is_on_link(&self, ip: Ipv4Addr) -> bool {
        (ip.to_bits() & self.mask()) == (self.addr.to_bits() & self.mask())
    }

    /// The subnet's directed broadcast address (RFC 919/922: host part all ones), or `None`
    /// for /31 and /32 prefixes, which have none (RFC 3021 §2.2).
    pub const fn broadcast(&self) -> Option<Ipv4Addr> {
        if self.prefix_len >= 31 {
            None
        } else {
            Some(Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask()))
        }
    }

    /// Whether `ip` is this subnet's directed broadcast address.
    pub fn is_subnet_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.broadcast() == Some(ip)
    }

    /// Whether `ip` is the network address (host part all zeros) of a prefix shorter than 31,
    /// which RFC 1122 §3.2.1.3 forbids as a host or source address.
    fn is_network_addr(&self, ip: Ipv4Addr) -> bool {
        self.prefix_len < 31 && ip.to_bits() & !self.mask() == 0 && self.is_on_link(ip)
    }

    /// Whether `ip` is an address this host accepts datagrams for: its own address, the
    /// limited broadcast 255.255.255.255, or its subnet's broadcast (RFC 1122 §3.3.6). The
    /// host joins no multicast group.
    pub fn accepts(&self, ip: Ipv4Addr) -> bool {
        ip == self.addr || ip == Ipv4Addr::BROADCAST || self.is_subnet_broadcast(ip)
    }

    /// Whether `ip` is a broadcast address as this host sees it (limited or subnet).
    pub fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        ip == Ipv4Addr::BROADCAST || self.is_subnet_broadcast(ip)
    }

    /// Where a datagram for `dst` goes: RFC 1122 §3.3.1.1 — on-link destinations directly,
    /// others to the default gateway; broadcast and multicast need no resolution.
    pub fn route(&self, dst: Ipv4Addr) -> Result<NextHop, RouteError> {
        if dst.is_unspecified() || dst.is_loopback() || dst == self.addr {
            return Err(RouteError::Local);
        }
        if self.is_broadcast(dst) {
            return Ok(NextHop::Broadcast);
        }
        if dst.is_multicast() {
            return Ok(NextHop::Multicast(multicast_mac(dst)));
        }
        if self.is_on_link(dst) {
            return Ok(NextHop::Neighbor(dst));
        }
        match self.gateway {
            Some(gw) => Ok(NextHop::Neighbor(gw)),
            None => Err(RouteError::NoRoute),
        }
    }
}

/// Whether `ip` can be a unicast host address at all (RFC 1122 §3.2.1.3, RFC 1112 §4): not
/// 0.0.0.0/8, not 127/8, not class D (multicast) or E (reserved, incl. 255.255.255.255).
pub fn is_unicast(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    first != 0 && first != 127 && first < 224
}

/// The Ethernet MAC an IPv4 multicast group maps to: RFC 1112 §6.4, `01:00:5e` followed by
/// the low 23 bits of the group address.
pub fn multicast_mac(group: Ipv4Addr) -> EthernetAddress {
    let o = group.octets();
    EthernetAddress([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    fn iface(gw: Option<Ipv4Addr>) -> Interface {
        Interface::new(MAC, Ipv4Addr::new(10, 0, 0, 2), 24, gw, 1500).unwrap()
    }

    #[test]
    fn routes_on_link_gateway_and_none() {
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let with = iface(Some(gw));
        let without = iface(None);
        let peer = Ipv4Addr::new(10, 0, 0, 9);
        let far = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(with.route(peer), Ok(NextHop::Neighbor(peer)));
        assert_eq!(with.route(far), Ok(NextHop::Neighbor(gw)));
        assert_eq!(without.route(far), Err(RouteError::NoRoute));
        assert_eq!(RouteError::NoRoute.errno(), 101);
        assert_eq!(with.route(Ipv4Addr::new(10, 0, 0, 255)), Ok(NextHop::Broadcast));
        assert_eq!(with.route(Ipv4Addr::BROADCAST), Ok(NextHop::Broadcast));
        assert_eq!(with.route(Ipv4Addr::new(10, 0, 0, 2)), Err(RouteError::Local));
        assert_eq!(with.route(Ipv4Addr::new(127, 0, 0, 1)), Err(RouteError::Local));
        assert_eq!(
            with.route(Ipv4Addr::new(224, 0, 0, 251)),
            Ok(NextHop::Multicast(EthernetAddress([1, 0, 0x5e, 0, 0, 251])))
        );
        assert_eq!(multicast_mac(Ipv4Addr::new(239, 255, 1, 2)).0, [1, 0, 0x5e, 0x7f, 1, 2]);
    }

    #[test]
    fn prefixes_and_broadcast() {
        let i = iface(None);
        assert_eq!(i.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(i.broadcast(), Some(Ipv4Addr::new(10, 0, 0, 255)));
        assert!(i.accepts(Ipv4Addr::new(10, 0, 0, 255)) && i.accepts(Ipv4Addr::BROADCAST));
        assert!(!i.accepts(Ipv4Addr::new(10, 0, 0, 3)));
        let p31 = Interface::new(MAC, Ipv4Addr::new(10, 0, 0, 0), 31, None, 1500).unwrap();
        assert_eq!(p31.broadcast(), None);
        assert!(p31.is_on_link(Ipv4Addr::new(10, 0, 0, 1)));
        let p0 = Interface::new(MAC, Ipv4Addr::new(10, 0, 0, 1), 0, None, 1500).unwrap();
        assert!(p0.is_on_link(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn rejects_bad_configs() {
        let a = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(Interface::new(MAC, a, 33, None, 1500), Err(ConfigError::BadPrefix));
        assert_eq!(Interface::new(MAC, a, 24, None, 67), Err(ConfigError::BadMtu));
        assert_eq!(
            Interface::new(EthernetAddress::BROADCAST, a, 24, None, 1500),
            Err(ConfigError::BadMac)
        );
        for bad in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 255),
            Ipv4Addr::new(10, 0, 0, 0),
        ] {
            assert_eq!(Interface::new(MAC, bad, 24, None, 1500), Err(ConfigError::BadAddress));
        }
        for gw in [a, Ipv4Addr::new(10, 0, 1, 1), Ipv4Addr::new(10, 0, 0, 255)] {
            assert_eq!(
                Interface::new(MAC, a, 24, Some(gw), 1500),
                Err(ConfigError::GatewayNotOnLink)
            );
        }
    }
}
