//! Arbitrary region contents and commands against the service side of `joyride-ipc` (with a
//! client attached to the same region). The input is a program of small operations: scribble
//! bytes anywhere, push raw or well-formed command entries, set ring indices to anything,
//! consume completions, and run the service (drain, answer, move data, publish readiness) and
//! the client (send, recv, poll). Nothing may panic; the service's own invariants must hold:
//! every request it hands out names an owned socket and stays within its rings, its byte
//! accounting stays within the ring sizes, and once poisoned it stays poisoned.
#![no_main]

use joyride_ipc::{
    ClientRegion, Command, Completion, Domain, Errno, Payload, Protocol, Readiness, RegionConfig,
    Request, RequestId, SendFlags, ServiceError, ServiceRegion, SockAddr, SockType, SocketIndex,
};
use libfuzzer_sys::fuzz_target;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;

const CFG: RegionConfig =
    RegionConfig { sockets: 4, cmd_entries: 8, cmp_entries: 8, rx_buf: 256, tx_buf: 256 };

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.byte()?, self.byte()?, self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn command(inp: &mut Input<'_>) -> Option<Command> {
    let kind = inp.byte()?;
    let sock = SocketIndex(u32::from(inp.byte()? % 6));
    let v = u32::from(inp.u16()?);
    let addr = SockAddr::V4 { addr: [10, 0, 0, inp.byte()?], port: v as u16 };
    Some(match kind % 8 {
        0 => Command::Socket { domain: Domain::Inet, ty: SockType::Stream, proto: Protocol::Tcp },
        1 => Command::Send { sock, len: v % 300, flags: SendFlags::empty(), dest: None },
        2 => Command::RecvWindow { sock, consumed: v % 300 },
        3 => Command::Close { sock },
        4 => Command::Connect { sock, addr },
        5 => Command::Listen { sock, backlog: v },
        6 => Command::Stat { sock },
        _ => Command::Send { sock, len: v % 64, flags: SendFlags::MORE, dest: Some(addr) },
    })
}

fn push_entry(svc: &ServiceRegion, entry: &[u8; 64]) {
    let r = svc.region();
    let off = svc.layout().cmd_ring_off;
    let Some(head) = r.atomic_u32(off) else { return };
    let h = head.load(Ordering::Relaxed);
    r.write(off + 128 + (h as usize % CFG.cmd_entries as usize) * 64, entry);
    head.store(h.wrapping_add(1), Ordering::Release);
}

fn serve(svc: &mut ServiceRegion, was_poisoned: &mut bool) {
    for _ in 0..16 {
        match svc.next_command() {
            Ok(None) => break,
            Ok(Some(Request { id, command })) => {
                assert!(!*was_poisoned, "a poisoned region never yields commands");
                if let Some(s) = command.socket() {
                    assert!(svc.is_owned(s), "validated commands name owned sockets");
                }
                let result = match command {
                    Command::Socket { .. } => {
                        svc.alloc_socket().map(|s| u64::from(s.0)).ok_or(Errno::INVAL)
                    }
                    Command::Close { sock } => {
                        svc.free_socket(sock);
                        Ok(0)
                    }
                    _ => Ok(0),
                };
                if !command.is_posted() {
                    let _ = svc.complete(Completion { id, result, payload: Payload::None });
                }
            }
            Err(ServiceError::Invalid { .. }) => assert!(!*was_poisoned),
            Err(ServiceError::Poisoned(_)) => {
                *was_poisoned = true;
                assert!(svc.poisoned().is_some());
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut svc) = ServiceRegion::create(CFG) else { return };
    let Ok((a, b)) = UnixStream::pair() else { return };
    if svc.send_handshake(a.as_fd()).is_err() {
        return;
    }
    let Ok(mut cli) = ClientRegion::receive(b.as_fd()) else { return };
    let len = svc.region().len();
    let mut poisoned = false;
    let mut inp = Input(data);
    let mut scratch = [0u8; 512];
    while let Some(op) = inp.byte() {
        match op % 12 {
            0 => {
                let Some(off) = inp.u16() else { break };
                let n = usize::from(inp.byte().unwrap_or(0) % 65);
                let bytes = inp.bytes(n).to_vec();
                let off = usize::from(off) % len;
                svc.region().write(off.min(len - bytes.len()), &bytes);
            }
            1 => {
                let mut e = [0u8; 64];
                let raw = inp.bytes(64);
                e[..raw.len()].copy_from_slice(raw);
                push_entry(&svc, &e);
            }
            2 => {
                let Some(c) = command(&mut inp) else { break };
                push_entry(&svc, &c.encode(RequestId(u64::from(op))));
            }
            3 => {
                let Some(v) = inp.u32() else { break };
                let which = [svc.layout().cmd_ring_off, svc.layout().cmp_ring_off + 64]
                    [usize::from(op & 1)];
                if let Some(w) = svc.region().atomic_u32(which) {
                    w.store(v, Ordering::Release);
                }
            }
            4 => {
                // An honest app consuming every completion.
                let off = svc.layout().cmp_ring_off;
                let r = svc.region();
                if let (Some(h), Some(t)) = (r.atomic_u32(off), r.atomic_u32(off + 64)) {
                    t.store(h.load(Ordering::Acquire), Ordering::Release);
                }
            }
            5 | 6 => serve(&mut svc, &mut poisoned),
            7 => {
                let s = SocketIndex(u32::from(inp.byte().unwrap_or(0) % 6));
                let n = usize::from(inp.byte().unwrap_or(0)) * 2;
                let took = svc.tx_take(s, &mut scratch[..n]);
                assert!(took <= n);
                let wrote = svc.rx_write(s, &scratch[..n]);
                assert!(wrote <= n);
                svc.set_readiness(s, Readiness::READABLE.union(Readiness::WRITABLE));
            }
            8 => {
                svc.flush();
                if svc.prepare_sleep() {
                    svc.end_sleep();
                }
            }
            9 => {
                let s = SocketIndex(u32::from(inp.byte().unwrap_or(0) % 6));
                let n = usize::from(inp.byte().unwrap_or(0));
                let _ = cli.send(s, &scratch[..n], SendFlags::empty());
                let _ = cli.recv(s, &mut scratch[..n]);
                let _ = cli.readiness(s);
                let _ = cli.tx_space(s);
                let _ = cli.rx_available(s);
            }
            10 => {
                for _ in 0..4 {
                    if !matches!(cli.poll_completion(), Ok(Some(_))) {
                        break;
                    }
                }
            }
            _ => {
                let Some(c) = command(&mut inp) else { break };
                let _ = cli.submit(&c);
            }
        }
        for i in 0..CFG.sockets + 2 {
            let s = SocketIndex(i);
            assert!(svc.tx_pending(s) <= u64::from(CFG.tx_buf));
            assert!(svc.rx_space(s) <= u64::from(CFG.rx_buf));
            if !svc.is_owned(s) {
                assert_eq!((svc.tx_pending(s), svc.rx_space(s)), (0, 0));
            }
        }
        if poisoned {
            assert!(matches!(svc.next_command(), Err(ServiceError::Poisoned(_))));
        }
    }
});
