//! No sequence of API calls and inbound segments panics the stack, and every emitted segment
//! is well-formed (RST never carries data, SYN-less segments after the handshake carry ACK).

mod common;

use common::*;
use joyride_ip::tcp::{SackBlock, TcpFlags, TcpOptions, TcpRepr};
use joyride_tcp::{Duration, Shutdown, SockOpt, TcpConfig};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Segment {
        flags: u8,
        seq_off: i32,
        ack_off: i32,
        window: u16,
        len: usize,
        wscale: Option<u8>,
        mss: Option<u16>,
        sack: Option<(i32, i32)>,
        ts: Option<(u32, u32)>,
    },
    Send(usize),
    Recv(usize, bool),
    Shutdown(u8),
    Close,
    Opt(u8),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), -70_000i32..70_000, -70_000i32..70_000, any::<u16>(), 0usize..3000,
              proptest::option::of(0u8..20), proptest::option::of(any::<u16>()),
              proptest::option::of((-5000i32..70_000, -5000i32..70_000)),
              proptest::option::of((any::<u32>(), any::<u32>())))
            .prop_map(|(flags, seq_off, ack_off, window, len, wscale, mss, sack, ts)| Op::Segment { flags, seq_off, ack_off, window, len, wscale, mss, sack, ts }),
        2 => (0usize..70_000).prop_map(Op::Send),
        2 => (0usize..70_000, any::<bool>()).prop_map(|(n, p)| Op::Recv(n, p)),
        1 => (0u8..3).prop_map(Op::Shutdown),
        1 => Just(Op::Close),
        1 => any::<u8>().prop_map(Op::Opt),
        3 => (0u32..5_000).prop_map(Op::Advance),
    ]
}

/// Case count: `JOYRIDE_PROPTEST_CASES` overrides the default (CI runs more).
fn cases(default: u32) -> u32 {
    std::env::var("JOYRIDE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), .. ProptestConfig::default() })]
    #[test]
    fn arbitrary_inputs_never_panic(freebsd in any::<bool>(), ops in proptest::collection::vec(op(), 1..60)) {
        let cfg = if freebsd { TcpConfig::freebsd() } else { TcpConfig::linux() };
        let mut net = Net::new(cfg.clone(), cfg);
        let (c, _l, s) = net.connect_pair();
        // The peer's view of the connection, to aim segments near the live sequence space.
        let last_a = net.log.iter().rev().find(|g| g.src == A).cloned().unwrap();
        let (base_seq, base_ack) = (last_a.seq, last_a.ack);
        let local = net.a.local_addr(c).unwrap();
        let mut buf = vec![0u8; 70_000];
        let data = vec![7u8; 70_000];
        for op in ops {
            let now = net.now;
            match op {
                Op::Segment { flags, seq_off, ack_off, window, len, wscale, mss, sack, ts } => {
                    let mut o = TcpOptions { window_scale: wscale, mss, timestamps: ts, ..Default::default() };
                    if let Some((l, r)) = sack {
                        o.sack_blocks[0] = SackBlock { left: base_seq.wrapping_add(l as u32), right: base_seq.wrapping_add(r as u32) };
                        o.sack_len = 1;
                    }
                    let payload = &data[..len];
                    // Segments from B's side into A (to the connection) and to B's listener.
                    let seg = TcpRepr {
                        src_port: 80,
                        dst_port: local.port(),
                        seq: base_ack.wrapping_add(seq_off as u32),
                        ack: base_seq.wrapping_add(ack_off as u32),
                        flags: TcpFlags::from_bits_truncate(flags),
                        window,
                        urgent: 0,
                        options: o,
                        payload,
                    };
                    net.a.handle_segment(now, B, A, &seg);
                    let to_listener = TcpRepr { src_port: 4000, dst_port: 80, ..seg };
                    net.b.handle_segment(now, A, B, &to_listener);
                }
                Op::Send(n) => { let _ = net.a.send(now, c, &data[..n]); let _ = net.b.send(now, s, &data[..n / 2]); }
                Op::Recv(n, p) => { let _ = net.a.recv(c, &mut buf[..n], p); let _ = net.b.recv(s, &mut buf[..n], p); }
                Op::Shutdown(h) => {
                    let how = [Shutdown::Read, Shutdown::Write, Shutdown::Both][h as usize];
                    let _ = net.a.shutdown(now, c, how);
                }
                Op::Close => { let _ = net.a.close(now, c); }
                Op::Opt(v) => {
                    let _ = net.a.set_option(c, SockOpt::NoDelay(v & 1 == 1));
                    let _ = net.a.set_option(c, SockOpt::Cork(v & 2 == 2));
                    let _ = net.a.set_option(c, SockOpt::KeepAlive(v & 4 == 4));
                    let _ = net.a.set_option(c, SockOpt::RecvBuffer(usize::from(v) * 512));
                }
                Op::Advance(ms) => net.run_for(Duration::from_millis(u64::from(ms))),
            }
            net.run_for(Duration::from_millis(1));
            let _ = net.a.readiness(c);
            let _ = net.a.info(c);
        }
        for g in &net.log {
            if g.flags.contains(TcpFlags::RST) {
                prop_assert!(g.payload.is_empty(), "RST with data");
            }
            prop_assert!(g.payload.len() <= 1460, "segment larger than the MSS");
        }
    }
}
