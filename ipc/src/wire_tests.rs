//! Encoding tests: property round trips, canonical re-encoding, rejection of garbage.

use super::*;
use proptest::prelude::*;

pub(crate) fn addr() -> impl Strategy<Value = SockAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(addr, port)| SockAddr::V4 { addr, port }),
        (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(addr, port, flowinfo, scope_id)| SockAddr::V6 { addr, port, flowinfo, scope_id }
        ),
    ]
}

fn opt() -> impl Strategy<Value = SockOpt> {
    (
        prop_oneof![
            Just(OptLevel::Socket),
            Just(OptLevel::Ip),
            Just(OptLevel::Tcp),
            Just(OptLevel::Ipv6)
        ],
        any::<u32>(),
    )
        .prop_map(|(level, name)| SockOpt { level, name })
}

fn value() -> impl Strategy<Value = OptValue> {
    proptest::collection::vec(any::<u8>(), 0..=OPT_MAX).prop_map(|v| OptValue::new(&v).unwrap())
}

pub(crate) fn command() -> impl Strategy<Value = Command> {
    let s = (0u32..u32::MAX).prop_map(SocketIndex);
    prop_oneof![
        (
            prop_oneof![Just(Domain::Inet), Just(Domain::Inet6)],
            prop_oneof![Just(SockType::Stream), Just(SockType::Dgram)],
            prop_oneof![Just(Protocol::Default), Just(Protocol::Tcp), Just(Protocol::Udp)]
        )
            .prop_map(|(domain, ty, proto)| Command::Socket { domain, ty, proto }),
        (s.clone(), addr()).prop_map(|(sock, addr)| Command::Bind { sock, addr }),
        (s.clone(), 0..=i32::MAX as u32)
            .prop_map(|(sock, backlog)| Command::Listen { sock, backlog }),
        s.clone().prop_map(|sock| Command::Accept { sock }),
        (s.clone(), addr()).prop_map(|(sock, addr)| Command::Connect { sock, addr }),
        (s.clone(), any::<u32>(), 0u32..4, proptest::option::of(addr())).prop_map(
            |(sock, len, f, dest)| Command::Send {
                sock,
                len,
                flags: SendFlags::from_bits(f).unwrap(),
                dest
            }
        ),
        (s.clone(), any::<u32>())
            .prop_map(|(sock, consumed)| Command::RecvWindow { sock, consumed }),
        (s.clone(), prop_oneof![Just(Shutdown::Read), Just(Shutdown::Write), Just(Shutdown::Both)])
            .prop_map(|(sock, how)| Command::Shutdown { sock, how }),
        s.clone().prop_map(|sock| Command::Close { sock }),
        (s.clone(), opt(), value()).prop_map(|(sock, opt, value)| Command::SetOpt {
            sock,
            opt,
            value
        }),
        (s.clone(), opt(), 0u8..=OPT_MAX as u8).prop_map(|(sock, opt, max_len)| Command::GetOpt {
            sock,
            opt,
            max_len
        }),
        s.clone().prop_map(|sock| Command::GetSockName { sock }),
        s.clone().prop_map(|sock| Command::GetPeerName { sock }),
        s.prop_map(|sock| Command::Stat { sock }),
        Just(Command::Fork),
        any::<u64>().prop_map(|ticket| Command::Join { ticket }),
        any::<u32>().prop_map(|slot| Command::Inherit { slot }),
    ]
}

pub(crate) fn completion() -> impl Strategy<Value = Completion> {
    let result = prop_oneof![
        (0..=i64::MAX as u64).prop_map(Ok),
        (1i32..=4095).prop_map(|e| Err(Errno::new(e).unwrap())),
    ];
    let payload = prop_oneof![
        Just(Payload::None),
        addr().prop_map(Payload::Addr),
        value().prop_map(Payload::Opt),
        any::<[u32; 4]>().prop_map(|[state, rx_queued, tx_queued, retransmits]| Payload::Stat(
            SocketStat { state, rx_queued, tx_queued, retransmits }
        )),
    ];
    (any::<u64>(), result, payload).prop_map(|(id, result, payload)| Completion {
        id: RequestId(id),
        result,
        payload,
    })
}

proptest! {
    #[test]
    fn command_round_trip(c in command(), id in any::<u64>()) {
        let e = c.encode(RequestId(id));
        prop_assert_eq!(Command::decode(&e), Ok((RequestId(id), c)));
    }

    #[test]
    fn completion_round_trip(c in completion()) {
        prop_assert_eq!(Completion::decode(&c.encode()), Ok(c));
    }

    /// Random bytes never panic; whatever decodes is canonical (re-encodes to the same bytes).
    #[test]
    fn random_command_bytes(b in any::<[u8; 64]>()) {
        if let Ok((id, c)) = Command::decode(&b) {
            prop_assert_eq!(c.encode(id), b);
        }
        if let Ok(c) = Completion::decode(&b) {
            prop_assert_eq!(c.encode(), b);
        }
    }

    /// Flipping one byte of a valid entry either fails or yields a canonical different entry.
    #[test]
    fn mutated_command_bytes(c in command(), i in 0usize..64, x in 1u8..=255) {
        let mut e = c.encode(RequestId(1));
        e[i] ^= x;
        if let Ok((id, d)) = Command::decode(&e) {
            prop_assert_eq!(d.encode(id), e);
        }
    }
}

#[test]
fn garbage_is_rejected_with_the_right_error() {
    let sock = SocketIndex(3);
    let base = Command::Listen { sock, backlog: 5 }.encode(RequestId(9));
    let mut e = base;
    e[8] = 99;
    assert_eq!(Command::decode(&e), Err(DecodeError::BadOpcode(99)));
    let mut e = base;
    e[10] = 1;
    assert_eq!(Command::decode(&e), Err(DecodeError::NonZeroReserved));
    let mut e = base;
    e[63] = 1;
    assert_eq!(Command::decode(&e), Err(DecodeError::NonZeroReserved));
    let mut e = base;
    e[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Command::decode(&e), Err(DecodeError::BadBacklog(u32::MAX)));
    let mut e = base;
    e[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Command::decode(&e), Err(DecodeError::BadSocketField));

    let s = Command::Socket { domain: Domain::Inet, ty: SockType::Stream, proto: Protocol::Tcp };
    let mut e = s.encode(RequestId(1));
    e[16] = 1; // AF_UNIX
    assert_eq!(Command::decode(&e), Err(DecodeError::BadDomain(1)));
    let mut e = s.encode(RequestId(1));
    e[18] = 3; // SOCK_RAW
    assert_eq!(Command::decode(&e), Err(DecodeError::BadType(3)));
    let mut e = s.encode(RequestId(1));
    e[20] = 1; // IPPROTO_ICMP
    assert_eq!(Command::decode(&e), Err(DecodeError::BadProtocol(1)));
    let mut e = s.encode(RequestId(1));
    e[12..16].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(Command::decode(&e), Err(DecodeError::BadSocketField));

    let v4 = SockAddr::V4 { addr: [10, 0, 0, 1], port: 80 };
    let mut e = Command::Connect { sock, addr: v4 }.encode(RequestId(1));
    e[16] = 1; // AF_UNIX
    assert_eq!(Command::decode(&e), Err(DecodeError::BadFamily(1)));
    let mut e = Command::Connect { sock, addr: v4 }.encode(RequestId(1));
    e[16 + 12] = 1; // beyond an IPv4 address
    assert_eq!(Command::decode(&e), Err(DecodeError::NonZeroReserved));

    let mut e =
        Command::Send { sock, len: 5, flags: SendFlags::MORE, dest: None }.encode(RequestId(1));
    e[20] = 0x80;
    assert_eq!(Command::decode(&e), Err(DecodeError::BadFlags(0x80)));
    let mut e =
        Command::Send { sock, len: 5, flags: SendFlags::empty(), dest: None }.encode(RequestId(1));
    e[24] = 2;
    assert_eq!(Command::decode(&e), Err(DecodeError::NonZeroReserved));

    let o = SockOpt { level: OptLevel::Tcp, name: 1 };
    let mut e = Command::GetOpt { sock, opt: o, max_len: 4 }.encode(RequestId(1));
    e[24] = 33;
    assert_eq!(Command::decode(&e), Err(DecodeError::BadOptLen(33)));
    let mut e = Command::GetOpt { sock, opt: o, max_len: 4 }.encode(RequestId(1));
    e[16] = 7;
    assert_eq!(Command::decode(&e), Err(DecodeError::BadOptLevel(7)));
    let v = OptValue::new(&[1, 2]).unwrap();
    let mut e = Command::SetOpt { sock, opt: o, value: v }.encode(RequestId(1));
    e[28 + 5] = 1; // a byte past the value's length
    assert_eq!(Command::decode(&e), Err(DecodeError::NonZeroReserved));
    let mut e = Command::Shutdown { sock, how: Shutdown::Both }.encode(RequestId(1));
    e[16] = 3;
    assert_eq!(Command::decode(&e), Err(DecodeError::BadShutdown(3)));

    let c = Completion { id: RequestId(1), result: Ok(0), payload: Payload::None };
    let mut e = c.encode();
    e[8..16].copy_from_slice(&(-4096i64).to_le_bytes());
    assert_eq!(Completion::decode(&e), Err(DecodeError::BadResult(-4096)));
    e[8..16].copy_from_slice(&i64::MIN.to_le_bytes());
    assert_eq!(Completion::decode(&e), Err(DecodeError::BadResult(i64::MIN)));
    let mut e = c.encode();
    e[16] = 4;
    assert_eq!(Completion::decode(&e), Err(DecodeError::BadOpcode(4)));
    assert!(OptValue::new(&[0; 33]).is_none());
}

#[test]
fn errno_sign_and_range() {
    let c = Completion {
        id: RequestId(2),
        result: Err(Errno::new(libc::EAGAIN).unwrap()),
        payload: Payload::None,
    };
    let e = c.encode();
    assert_eq!(i64::from_le_bytes(e[8..16].try_into().unwrap()), -i64::from(libc::EAGAIN));
    assert!(Errno::new(0).is_none() && Errno::new(4096).is_none() && Errno::new(-1).is_none());
    assert_eq!(
        Readiness::READABLE.union(Readiness::RDHUP).0,
        (libc::EPOLLIN | libc::EPOLLRDHUP) as u32
    );
}
