//! RFC 8985 RACK-TLP over the in-memory pair: a lost retransmission and a lost tail segment
//! are repaired in round trips, not retransmission timeouts (200 ms minimum); with RACK off
//! the same losses wait for the RTO.

mod common;

use common::*;
use joyride_tcp::{Duration, SocketId, TcpConfig, TcpError};

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 + i / 257) as u8).collect()
}

/// Sends `data` A→B and reads it on B until complete or `limit` passes.
fn pump(net: &mut Net, tx: SocketId, rx: SocketId, data: &[u8], limit: Duration) -> Vec<u8> {
    let (mut sent, mut got, mut buf) = (0, Vec::new(), vec![0u8; 65536]);
    net.run_until(limit, |n| {
        while sent < data.len() {
            match n.a.send(n.now, tx, &data[sent..]) {
                Ok(k) => sent += k,
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        while let Ok(k @ 1..) = n.b.recv(rx, &mut buf, false) {
            got.extend_from_slice(&buf[..k]);
        }
        got.len() == data.len()
    });
    got
}

/// Drops the first `times` transmissions of each `nth` distinct A→B data sequence number.
fn drop_transmissions(nth: &'static [usize], times: usize) -> Filter {
    let (mut seen, mut targets) = (Vec::<u32>::new(), Vec::<(u32, usize)>::new());
    Box::new(move |s: &Seg| {
        if s.src != A || s.payload.is_empty() {
            return Fate::Deliver;
        }
        if !seen.contains(&s.seq) {
            seen.push(s.seq);
            if nth.contains(&seen.len()) {
                targets.push((s.seq, 0));
            }
        }
        match targets.iter_mut().find(|(q, _)| *q == s.seq) {
            Some((_, dropped)) if *dropped < times => {
                *dropped += 1;
                Fate::Drop
            }
            _ => Fate::Deliver,
        }
    })
}

/// The times at which A sent data with sequence number `seq`.
fn transmissions(net: &Net, seq: u32) -> Vec<joyride_tcp::Instant> {
    net.log
        .iter()
        .filter(|s| s.src == A && !s.payload.is_empty() && s.seq == seq)
        .map(|s| s.at)
        .collect()
}

fn config(rack: bool) -> TcpConfig {
    TcpConfig { rack, tlp: rack, ..TcpConfig::linux() }
}

/// The sequence number of the `nth` distinct data segment A sent.
fn nth_seq(net: &Net, nth: usize) -> u32 {
    let mut seen = Vec::new();
    for s in net.log.iter().filter(|s| s.src == A && !s.payload.is_empty()) {
        if !seen.contains(&s.seq) {
            seen.push(s.seq);
        }
    }
    seen[nth - 1]
}

#[test]
fn lost_retransmission_is_repaired_without_a_timeout() {
    for rack in [true, false] {
        let mut net = Net::new(config(rack), config(rack));
        let (c, _l, s) = net.connect_pair();
        net.filter = drop_transmissions(&[3], 2);
        let data = pattern(300_000);
        let got = pump(&mut net, c, s, &data, Duration::from_secs(20));
        assert!(got == data, "rack {rack}: stream intact");
        let times = transmissions(&net, nth_seq(&net, 3));
        assert!(times.len() >= 3, "rack {rack}: original and two retransmissions: {times:?}");
        let gap = times[2] - times[1];
        if rack {
            // RFC 8985 §6.2: a segment sent after the lost retransmission is SACKed, and
            // RACK.rtt + reo_wnd later (RTT 10 ms here) the retransmission is declared lost.
            assert!(gap < Duration::from_millis(60), "RACK: second retransmission after {gap:?}");
        } else {
            // The RTO (200 ms minimum), restarted by the ACKs after the first retransmission.
            assert!(gap >= Duration::from_millis(150), "no RACK: RTO-bound, got {gap:?}");
        }
    }
}

#[test]
fn tail_loss_is_probed_before_the_rto() {
    for rack in [true, false] {
        let mut net = Net::new(config(rack), config(rack));
        let (c, _l, s) = net.connect_pair();
        // Warm up the RTT estimate, then send 10 segments whose last two are lost: no ACK
        // reveals the loss (RFC 8985 §7's tail loss).
        let warm = pattern(20_000);
        assert!(pump(&mut net, c, s, &warm, Duration::from_secs(5)) == warm);
        net.log.clear();
        net.filter = drop_transmissions(&[9, 10], 1);
        let data = pattern(10 * 1448);
        let got = pump(&mut net, c, s, &data, Duration::from_secs(20));
        assert!(got == data, "rack {rack}: stream intact");
        let times = transmissions(&net, nth_seq(&net, 10));
        assert!(times.len() >= 2, "rack {rack}: {times:?}");
        let gap = times[1] - times[0];
        if rack {
            // RFC 8985 §7.2: PTO = 2·SRTT (SRTT ≈ 10 ms), well before the 200 ms RTO; the
            // probe (segment 10 again) is SACKed and RACK then repairs segment 9.
            assert!(gap < Duration::from_millis(100), "TLP: probe after {gap:?}");
            let nine = transmissions(&net, nth_seq(&net, 9));
            assert!(nine.len() == 2 && nine[1] - nine[0] < Duration::from_millis(100), "{nine:?}");
            assert_eq!(net.a.info(c).unwrap().total_retrans, 2, "probe and one repair");
        } else {
            assert!(gap >= Duration::from_millis(200), "no TLP: RTO-bound, got {gap:?}");
        }
    }
}

#[test]
fn rack_is_per_socket() {
    let mut net = Net::linux();
    let s = net.a.socket().unwrap();
    assert_eq!(net.a.rack(s), Ok(true));
    net.a.set_rack(s, false).unwrap();
    assert_eq!(net.a.rack(s), Ok(false));
    assert!(!TcpConfig::freebsd().rack && TcpConfig::linux().rack);
}
