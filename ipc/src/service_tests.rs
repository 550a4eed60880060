//! Service/client tests in one process: hand-over, commands, data, validation, poisoning,
//! and a hostile writer scribbling over the whole region while the service drains.

use super::*;
use crate::client::{ClientError, ClientRegion, WaitPolicy, Wake};
use crate::wire::{Domain, Protocol, SendFlags, SockAddr, SockType};
use joyride_base::{Rng, SplitMix64};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn small() -> RegionConfig {
    RegionConfig { sockets: 4, cmd_entries: 8, cmp_entries: 8, rx_buf: 256, tx_buf: 256 }
}

fn pair(cfg: RegionConfig) -> (ServiceRegion, ClientRegion) {
    let svc = ServiceRegion::create(cfg).unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    svc.send_handshake(a.as_fd()).unwrap();
    let cli = ClientRegion::receive(b.as_fd()).unwrap();
    (svc, cli)
}

const TCP: Command =
    Command::Socket { domain: Domain::Inet, ty: SockType::Stream, proto: Protocol::Tcp };

/// A tiny "engine": answers Socket with a fresh slot, Close by freeing, the rest with 0.
fn serve_one(svc: &mut ServiceRegion) -> Option<Result<Request, ServiceError>> {
    let r = svc.next_command().transpose()?;
    if let Ok(req) = r {
        let result = match req.command {
            Command::Socket { .. } => {
                svc.alloc_socket().map(|s| u64::from(s.0)).ok_or(Errno::INVAL)
            }
            Command::Close { sock } => {
                svc.free_socket(sock);
                Ok(0)
            }
            _ => Ok(0),
        };
        if !req.command.is_posted() {
            svc.complete(Completion { id: req.id, result, payload: Payload::None }).unwrap();
        }
    }
    svc.flush();
    Some(r)
}

#[test]
fn handshake_and_socket_call() {
    let (mut svc, mut cli) = pair(small());
    assert_eq!(cli.layout(), svc.layout());
    let id = cli.submit(&TCP).unwrap();
    let req = serve_one(&mut svc).unwrap().unwrap();
    assert_eq!(req, Request { id, command: TCP });
    let c = cli.poll_completion().unwrap().unwrap();
    assert_eq!((c.id, c.result), (id, Ok(0)));
    assert!(svc.is_owned(SocketIndex(0)));
    assert_eq!(svc.stats().commands, 1);
}

#[test]
fn handshake_rejects_garbage() {
    let (a, b) = UnixStream::pair().unwrap();
    crate::shm::send_fds(a.as_fd(), &[0u8; 16], &[]).unwrap();
    assert_eq!(ClientRegion::receive(b.as_fd()).unwrap_err(), ClientError::BadHandshake);
}

#[test]
fn data_moves_both_ways_with_wrap() {
    let (mut svc, mut cli) = pair(small());
    cli.submit(&TCP).unwrap();
    serve_one(&mut svc).unwrap().unwrap();
    cli.poll_completion().unwrap().unwrap();
    let s = SocketIndex(0);
    let mut rng = SplitMix64::new(1);
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    let (mut rx_sent, mut rx_got) = (Vec::new(), Vec::new());
    for round in 0..200 {
        // app → service
        let chunk: Vec<u8> = (0..rng.below(300)).map(|_| rng.next_u32() as u8).collect();
        let n = cli.send(s, &chunk, SendFlags::empty()).unwrap();
        assert!(n <= 256);
        sent.extend_from_slice(&chunk[..n]);
        while let Some(r) = serve_one(&mut svc) {
            r.unwrap();
        }
        let mut buf = [0u8; 100];
        let k = svc.tx_take(s, &mut buf);
        got.extend_from_slice(&buf[..k]);
        // service → app
        let chunk: Vec<u8> =
            (0..rng.below(200)).map(|_| round as u8 ^ rng.next_u32() as u8).collect();
        let n = svc.rx_write(s, &chunk);
        assert!(n <= 256);
        rx_sent.extend_from_slice(&chunk[..n]);
        let mut buf = [0u8; 150];
        let k = cli.recv(s, &mut buf).unwrap();
        rx_got.extend_from_slice(&buf[..k]);
        while let Some(r) = serve_one(&mut svc) {
            r.unwrap();
        }
    }
    let mut buf = [0u8; 256];
    loop {
        let k = svc.tx_take(s, &mut buf);
        if k == 0 {
            break;
        }
        got.extend_from_slice(&buf[..k]);
    }
    assert_eq!(got, sent);
    assert!(rx_got.len() > 1000);
    assert_eq!(&rx_sent[..rx_got.len()], &rx_got[..]);
    assert_eq!(cli.tx_space(s).unwrap(), 256);
}

#[test]
fn commands_are_validated_against_service_state() {
    let (mut svc, mut cli) = pair(small());
    // Unknown socket: in range but not owned, then out of range.
    let id = cli.submit(&Command::Accept { sock: SocketIndex(1) }).unwrap();
    let err = serve_one(&mut svc).unwrap().unwrap_err();
    assert_eq!(err, ServiceError::Invalid { id, error: CommandError::SocketNotOwned(1) });
    let c = cli.poll_completion().unwrap().unwrap();
    assert_eq!((c.id, c.result), (id, Err(Errno::BADF)));
    cli.submit(&Command::Close { sock: SocketIndex(4) }).unwrap();
    assert!(matches!(
        serve_one(&mut svc).unwrap(),
        Err(ServiceError::Invalid { error: CommandError::SocketOutOfRange(4), .. })
    ));
    cli.poll_completion().unwrap().unwrap();
    // A Send claiming more than the ring holds; a RecvWindow beyond what was delivered.
    cli.submit(&TCP).unwrap();
    serve_one(&mut svc).unwrap().unwrap();
    cli.poll_completion().unwrap().unwrap();
    let s = SocketIndex(0);
    cli.submit(&Command::Send { sock: s, len: 200, flags: SendFlags::empty(), dest: None })
        .unwrap();
    serve_one(&mut svc).unwrap().unwrap();
    cli.submit(&Command::Send { sock: s, len: 57, flags: SendFlags::empty(), dest: None }).unwrap();
    assert!(matches!(
        serve_one(&mut svc).unwrap(),
        Err(ServiceError::Invalid { error: CommandError::TxOverrun { len: 57, room: 56 }, .. })
    ));
    assert_eq!(svc.tx_pending(s), 200);
    svc.rx_write(s, &[1; 10]);
    cli.submit(&Command::RecvWindow { sock: s, consumed: 11 }).unwrap();
    assert!(matches!(
        serve_one(&mut svc).unwrap(),
        Err(ServiceError::Invalid {
            error: CommandError::RxOverrun { consumed: 11, outstanding: 10 },
            ..
        })
    ));
    assert_eq!(svc.rx_space(s), 246);
    // Raw garbage in a ring slot.
    let r = cli.region();
    let l = *svc.layout();
    let head = r.atomic_u32(l.cmd_ring_off).unwrap().load(Ordering::Relaxed);
    let slot_off = l.cmd_ring_off + 128 + (head as usize & 7) * 64;
    r.write(slot_off, &[0xAB; 64]);
    r.atomic_u32(l.cmd_ring_off).unwrap().store(head + 1, Ordering::Release);
    assert!(matches!(
        serve_one(&mut svc).unwrap(),
        Err(ServiceError::Invalid { error: CommandError::Decode(_), .. })
    ));
    assert_eq!(svc.stats().invalid, 5);
    assert_eq!(svc.poisoned(), None);
}

#[test]
fn service_stops_draining_without_completion_credit() {
    let (mut svc, mut cli) = pair(small());
    for _ in 0..8 {
        cli.submit(&Command::Stat { sock: SocketIndex(9) }).unwrap();
    }
    assert_eq!(cli.submit(&TCP), Err(ClientError::Full));
    for _ in 0..8 {
        assert!(serve_one(&mut svc).unwrap().is_err());
    }
    for _ in 0..8 {
        cli.submit(&TCP).unwrap();
    }
    // The completion ring is full of the 8 error answers: nothing more is taken.
    assert!(serve_one(&mut svc).is_none());
    assert!(svc.prepare_sleep(), "commands queued but none answerable: the service may sleep");
    for _ in 0..3 {
        cli.poll_completion().unwrap().unwrap();
    }
    assert!(svc.cmd_bell.drain(), "freeing completion slots wakes a sleeping service");
    svc.end_sleep();
    for _ in 0..3 {
        serve_one(&mut svc).unwrap().unwrap();
    }
    assert!(serve_one(&mut svc).is_none());
    assert_eq!(svc.stats().dropped_completions, 0);
}

#[test]
fn lying_ring_index_poisons() {
    let (mut svc, cli) = pair(small());
    let off = svc.layout().cmd_ring_off;
    cli.region().atomic_u32(off).unwrap().store(9, Ordering::Release); // 9 entries in an 8-ring
    assert_eq!(svc.next_command(), Err(ServiceError::Poisoned(PoisonReason::CommandRing)));
    assert_eq!(svc.next_command(), Err(ServiceError::Poisoned(PoisonReason::CommandRing)));
    assert_eq!(cli.status(), Err(ClientError::Poisoned));
    assert_eq!(cli.region().atomic_u32(hdr::POISON_REASON).unwrap().load(Ordering::Relaxed), 1);
    assert!(!svc.prepare_sleep() || svc.poisoned().is_some());

    let (mut svc, mut cli) = pair(small());
    let off = svc.layout().cmp_ring_off + 64;
    cli.submit(&TCP).unwrap();
    cli.region().atomic_u32(off).unwrap().store(3, Ordering::Release); // tail ahead of head
    assert_eq!(svc.next_command(), Err(ServiceError::Poisoned(PoisonReason::CompletionRing)));
    assert_eq!(svc.poisoned(), Some(PoisonReason::CompletionRing));
    let id = RequestId(1);
    assert_eq!(
        svc.complete(Completion { id, result: Ok(0), payload: Payload::None }),
        Err(ServiceError::Poisoned(PoisonReason::CompletionRing))
    );
}

#[test]
fn shutdown_wakes_and_fails_the_app() {
    let (svc, mut cli) = pair(small());
    drop(svc);
    assert_eq!(cli.status(), Err(ClientError::ShutDown));
    assert_eq!(cli.submit(&TCP), Err(ClientError::ShutDown));
    let w = cli.wait(WaitPolicy { spin: 0 }, None, |_| false);
    assert_eq!(w, Err(ClientError::ShutDown), "no hang once the service is gone");
}

#[test]
fn call_blocks_until_the_service_answers() {
    let (mut svc, mut cli) = pair(small());
    let server = std::thread::spawn(move || {
        let mut served = 0;
        while served < 50 {
            match serve_one(&mut svc) {
                Some(r) => {
                    r.unwrap();
                    served += 1;
                }
                None => {
                    svc.wait(Some(Duration::from_secs(5))).unwrap();
                }
            }
        }
        svc
    });
    for i in 0..50 {
        let c = if i % 2 == 0 { TCP } else { Command::Close { sock: SocketIndex(0) } };
        let r =
            cli.call(&c, WaitPolicy { spin: (i % 3) * 50 }, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(r.result, Ok(0));
    }
    let svc = server.join().unwrap();
    assert_eq!(svc.stats().commands, 50);
    let mut cli2 = cli;
    let w = cli2.wait(WaitPolicy { spin: 0 }, Some(Duration::from_millis(5)), |_| false).unwrap();
    assert_eq!(w, Wake::TimedOut);
    drop(svc);
}

#[test]
fn readiness_publication_wakes_a_sleeping_waiter() {
    let (mut svc, mut cli) = pair(small());
    cli.submit(&TCP).unwrap();
    serve_one(&mut svc).unwrap().unwrap();
    cli.poll_completion().unwrap().unwrap();
    let s = SocketIndex(0);
    let (r0, seq0) = cli.readiness(s).unwrap();
    assert_eq!(r0, Readiness::default());
    let t = std::thread::spawn(move || {
        let w = cli.wait(WaitPolicy { spin: 0 }, Some(Duration::from_secs(10)), |me| {
            me.readiness(s).unwrap().0.contains(Readiness::READABLE)
        });
        (w, cli)
    });
    // Wait until the app says it sleeps, then publish.
    while svc.region().atomic_u32(hdr::APP_WAITING).unwrap().load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    svc.rx_write(s, b"hi");
    svc.set_readiness(s, Readiness::READABLE);
    assert!(svc.flush(), "the app sleeps: the doorbell rings");
    let (w, cli) = t.join().unwrap();
    assert!(matches!(w, Ok(Wake::Ready) | Ok(Wake::Changed)), "{w:?}");
    let (r1, seq1) = cli.readiness(s).unwrap();
    assert!(r1.contains(Readiness::READABLE) && seq1 != seq0);
    assert_eq!(cli.rx_available(s).unwrap(), 2);
    assert!(!svc.flush(), "nothing new to publish");
}

/// A hostile app thread writes random bytes all over the region (ring indices, entries, socket
/// slots, data) while the service drains and serves. The service must not panic, must report
/// errors, and once poisoned must stay poisoned.
#[test]
fn hostile_scribbler_cannot_hurt_the_service() {
    for seed in 0..4u64 {
        let (mut svc, cli) = pair(RegionConfig {
            sockets: 4,
            cmd_entries: 16,
            cmp_entries: 16,
            rx_buf: 256,
            tx_buf: 256,
        });
        let len = svc.region().len();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        // Seeds 0, 1: noise everywhere (ring indices included: poisoning must follow).
        // Seeds 2, 3: noise everywhere but the two app-written ring indices, so the service
        // keeps draining garbage for the whole run (validation, not poisoning, must catch it).
        let protect = seed >= 2;
        let hostile = std::thread::spawn(move || {
            let mut rng = SplitMix64::new(seed);
            let mut writes = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                // Mostly valid-looking traffic (so validation paths run), sometimes pure noise.
                let r = cli.region();
                let l = *cli.layout();
                if protect {
                    // Like an app, wait for room instead of scribbling over queued entries
                    // while the (slower, CPU-starved) service catches up.
                    let head = r.atomic_u32(l.cmd_ring_off).unwrap().load(Ordering::Relaxed);
                    let tail = r.atomic_u32(l.cmd_ring_off + 64).unwrap().load(Ordering::Acquire);
                    if head.wrapping_sub(tail) >= 8 {
                        std::thread::yield_now();
                        continue;
                    }
                }
                let n = 1 + rng.below(64) as usize;
                let off = (rng.below(len as u64) as usize).min(len - n);
                let hits = |at: usize| off < at + 4 && at < off + n;
                if protect
                    && [l.cmd_ring_off, l.cmd_ring_off + 64, l.cmp_ring_off, l.cmp_ring_off + 64]
                        .into_iter()
                        .any(hits)
                {
                    continue; // this phase leaves the ring indices alone
                }
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u32() as u8).collect();
                r.write(off, &bytes);
                if rng.chance(0.5) {
                    let l = *cli.layout();
                    let head = r.atomic_u32(l.cmd_ring_off).unwrap().load(Ordering::Relaxed);
                    let tail = r.atomic_u32(l.cmd_ring_off + 64).unwrap().load(Ordering::Acquire);
                    if protect {
                        // Consume every completion, as an app would.
                        let done = r.atomic_u32(l.cmp_ring_off).unwrap().load(Ordering::Acquire);
                        r.atomic_u32(l.cmp_ring_off + 64).unwrap().store(done, Ordering::Release);
                    }
                    if protect && head.wrapping_sub(tail) >= 16 {
                        continue;
                    }
                    let sock = crate::wire::SocketIndex(rng.below(6) as u32);
                    let c = match rng.below(4) {
                        0 => TCP,
                        1 => Command::Send {
                            sock,
                            len: rng.below(400) as u32,
                            flags: SendFlags::empty(),
                            dest: None,
                        },
                        2 => Command::RecvWindow { sock, consumed: rng.below(300) as u32 },
                        _ => Command::Connect {
                            sock,
                            addr: SockAddr::V4 { addr: [1, 2, 3, 4], port: 5 },
                        },
                    };
                    r.write(
                        l.cmd_ring_off + 128 + (head as usize & 15) * 64,
                        &c.encode(RequestId(writes)),
                    );
                    let jump = if protect || rng.chance(0.999) { 1 } else { rng.next_u32() };
                    r.atomic_u32(l.cmd_ring_off)
                        .unwrap()
                        .store(head.wrapping_add(jump), Ordering::Release);
                }
                writes += 1;
            }
            writes
        });
        let (mut valid, mut invalid, mut poisoned) = (0u64, 0u64, 0u64);
        let mut kinds = Vec::new();
        let mut buf = [0u8; 512];
        for i in 0..20_000_000u32 {
            if valid + invalid >= 3000 {
                break;
            }
            match serve_one(&mut svc) {
                Some(Ok(_)) => valid += 1,
                Some(Err(ServiceError::Invalid { error, .. })) => {
                    if invalid < 5 {
                        kinds.push(error);
                    }
                    invalid += 1
                }
                Some(Err(ServiceError::Poisoned(_))) => {
                    poisoned += 1;
                    break;
                }
                None => {}
            }
            let s = SocketIndex(i % 5);
            svc.tx_take(s, &mut buf);
            svc.rx_write(s, &buf[..(i % 300) as usize]);
            svc.set_readiness(s, Readiness::WRITABLE);
        }
        stop.store(true, Ordering::Relaxed);
        let writes = hostile.join().unwrap();
        assert!(writes > 0);
        assert!(invalid + poisoned > 0, "seed {seed}: garbage must be reported");
        if poisoned > 0 {
            assert!(svc.poisoned().is_some());
            assert!(matches!(svc.next_command(), Err(ServiceError::Poisoned(_))));
            // (The header's status word was written, but the scribbler may have overwritten it
            // since: the app only hurts itself. `lying_ring_index_poisons` checks the word.)
            assert!(svc.owned_sockets().count() <= 4, "sockets can be listed for reclaim");
        }
        if protect {
            assert_eq!(poisoned, 0, "seed {seed}: honest indices never poison");
            assert!(
                valid > 0 && invalid > 0,
                "seed {seed}: {valid} valid, {invalid} invalid {kinds:?}"
            );
        } else {
            assert_eq!(poisoned, 1, "seed {seed}: lying indices poison");
        }
        // Every published position stays within the service's own bounds, whatever the app did.
        for s in 0..4 {
            let s = SocketIndex(s);
            assert!(svc.tx_pending(s) <= 256 && svc.rx_space(s) <= 256);
        }
    }
}
