//! The in-guest test binary of the tinyvm harness (run as PID 1's child inside QEMU).
//!
//! 0000:00:03.0 (`--bdf`) is first driven by the guest kernel's virtio-net for the packet-rate
//! baseline, then bound to vfio-pci and driven by Joyride's virtio PMD; 0000:00:04.0
//! (`--peer-bdf`) stays with the kernel as the Linux peer on the same QEMU hub. Prints one line
//! per test, then `N passed, N failed`; exits 1 on any failure.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use joyride_base::Duration;
use joyride_drivers::af_packet::{AfPacket, AfPacketConfig};
use joyride_drivers::{Batch, Nic, Pool, PoolConfig, QueueId};
use joyride_ip::ipv4::IpProtocol;
use joyride_service::apps::{App, AppOutput, AppSpec, ByteStream};
use joyride_service::{clock, Clock, Engine, EngineConfig};
use joyride_tinyvm::{bind_vfio, icmp_echo_request, if_stat, is_echo_reply, netdev_of};
use joyride_vfio::{Device, IovaSpace, RealSys};
use joyride_virtio::{VirtioNet, VirtioNetConfig};
use sha2::{Digest, Sha256};

const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

struct Args {
    bdf: String,
    peer_bdf: String,
    tcp_bytes: u64,
    conns: u32,
    pps_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        bdf: "0000:00:03.0".into(),
        peer_bdf: "0000:00:04.0".into(),
        tcp_bytes: 64 << 20,
        conns: 1000,
        pps_secs: 2,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for kv in v.chunks(2) {
        let (k, val) = (kv[0].as_str(), kv.get(1).cloned().unwrap_or_default());
        match k {
            "--bdf" => a.bdf = val,
            "--peer-bdf" => a.peer_bdf = val,
            "--tcp-bytes" => {
                a.tcp_bytes = joyride_service::apps::parse_bytes(&val).unwrap_or(a.tcp_bytes)
            }
            "--conns" => a.conns = val.parse().unwrap_or(a.conns),
            "--pps-secs" => a.pps_secs = val.parse().unwrap_or(a.pps_secs),
            _ => eprintln!("tinyvm-guest: ignoring {k}"),
        }
    }
    a
}

fn sh(cmd: &str) -> Result<String, String> {
    let o =
        Command::new("/bin/sh").arg("-c").arg(cmd).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !o.status.success() {
        return Err(format!("`{cmd}` failed: {}", String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

struct Suite {
    clock: Clock,
    passed: u32,
    failed: u32,
}

impl Suite {
    fn run(&mut self, name: &str, f: impl FnOnce(&Clock) -> Result<String, String>) -> bool {
        let t0 = self.clock.now();
        let r = f(&self.clock);
        let ms = self.clock.now().saturating_duration_since(t0).as_millis();
        match r {
            Ok(note) => {
                self.passed += 1;
                println!("ok   {name} ({ms} ms) {note}");
                true
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name} ({ms} ms): {e}");
                false
            }
        }
    }
}

/// A 60-byte frame to the peer's MAC with a local-experimental EtherType (the peer counts and
/// drops it).
fn blast_frame(dst: [u8; 6], src: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, p) in s.trim().split(':').take(6).enumerate() {
        m[i] = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    m
}

/// Transmits 60-byte frames for `secs` seconds; returns (frames accepted, frames the peer got).
fn blast(
    nic: &mut dyn Nic,
    pool: &Pool,
    clock: &Clock,
    secs: u64,
    frame: &[u8],
    peer_if: &str,
) -> Result<(u64, u64), String> {
    let rx0 = if_stat(peer_if, "rx_packets");
    let mut b = Batch::new(32);
    let (t0, mut sent) = (clock.now(), 0u64);
    let end = t0 + Duration::from_millis(secs * 1000);
    while clock.now() < end {
        while b.remaining() > 0 {
            match pool.alloc_copy(frame) {
                Some(p) => {
                    let _ = b.push(p);
                }
                None => break,
            }
        }
        sent += nic.tx_burst(QueueId(0), &mut b).map_err(|e| e.to_string())? as u64;
    }
    b.clear();
    clock::sleep(Duration::from_millis(200));
    Ok((sent, if_stat(peer_if, "rx_packets") - rx0))
}

fn small_pool(count: u32) -> Pool {
    Pool::new(PoolConfig { count, hugepages: true, mlock: true, ..PoolConfig::default() })
        .expect("pool")
}

/// Drives the engine (and `apps`) until `done` says so or `secs` pass.
fn drive(
    eng: &mut Engine,
    clock: &Clock,
    apps: &mut [Box<dyn App>],
    secs: u64,
    mut done: impl FnMut(&mut Engine, &AppOutput) -> bool,
) -> Result<AppOutput, String> {
    let end = clock.now() + Duration::from_millis(secs * 1000);
    let mut out = AppOutput::default();
    loop {
        let now = clock.now();
        eng.poll(now);
        for a in apps.iter_mut() {
            a.poll(eng, &mut out);
            if let Some(f) = a.failure() {
                return Err(f.to_string());
            }
        }
        if done(eng, &out) {
            return Ok(out);
        }
        if now > end {
            return Err(format!("timed out after {secs} s; output so far {:?}", out.lines));
        }
        let wake = apps.iter().filter_map(|a| a.wake_at()).min();
        eng.idle_wait(clock, Some(wake.unwrap_or(now + Duration::from_millis(5))));
    }
}

fn finished<T>(h: &Option<JoinHandle<T>>) -> bool {
    h.as_ref().is_none_or(|h| h.is_finished())
}

fn join<T>(h: Option<JoinHandle<Result<T, String>>>) -> Result<T, String> {
    h.ok_or("no thread")?.join().map_err(|_| "kernel-side thread panicked".to_string())?
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

fn main() {
    let a = args();
    let clock = Clock::new();
    let mut s = Suite { clock: Clock::new(), passed: 0, failed: 0 };
    let peer_if = netdev_of(&a.peer_bdf).unwrap_or_else(|| "eth1".into());
    let jr_if = netdev_of(&a.bdf);
    println!("tinyvm-guest: joyride {} ({:?}), peer {} ({peer_if})", a.bdf, jr_if, a.peer_bdf);
    let setup = s.run("peer interface up", |_| {
        let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
        sh(&format!("ip link set lo up && ip link set {peer_if} up && ip addr add {PEER_IP}/24 dev {peer_if}"))
    });
    if !setup {
        return finish(&s);
    }
    let peer_mac = parse_mac(
        &std::fs::read_to_string(format!("/sys/class/net/{peer_if}/address")).unwrap_or_default(),
    );

    // Baseline: the kernel's virtio-net driver on the same device, through AF_PACKET.
    let mut kernel_pps = 0.0;
    if let Some(jif) = &jr_if {
        s.run("pps: kernel virtio-net (AF_PACKET TPACKET_V3, 60 B)", |c| {
            sh(&format!("ip link set {jif} up"))?;
            let pool = small_pool(1024);
            let mut nic = AfPacket::open(&AfPacketConfig::new(jif), pool.clone())
                .map_err(|e| e.to_string())?;
            let f = blast_frame(peer_mac, nic.capabilities().mac.0);
            let (sent, got) = blast(&mut nic, &pool, c, a.pps_secs, &f, &peer_if)?;
            kernel_pps = got as f64 / a.pps_secs as f64;
            Ok(format!("sent={sent} peer_rx={got} pps={kernel_pps:.0}"))
        });
    }

    let mut nic: Option<VirtioNet> = None;
    let pool = small_pool(4096);
    s.run("bind to vfio-pci and bring up the virtio PMD", |_| {
        bind_vfio(&a.bdf).map_err(|e| format!("bind: {e}"))?;
        let dev = Device::open(Arc::new(RealSys), &a.bdf, IovaSpace::default())
            .map_err(|e| e.to_string())?;
        let n = VirtioNet::new(dev, pool.clone(), VirtioNetConfig::default())
            .map_err(|e| e.to_string())?;
        let note = format!(
            "features={:#x} mac={} mtu={} link_up={} wait_fd={}",
            n.features(),
            n.capabilities().mac,
            n.capabilities().mtu,
            n.link().up,
            n.wait_fd(QueueId(0)).is_some()
        );
        nic = Some(n);
        Ok(note)
    });
    let Some(mut nic) = nic else { return finish(&s) };

    s.run("pps: Joyride virtio PMD (60 B)", |c| {
        let f = blast_frame(peer_mac, nic.capabilities().mac.0);
        let (sent, got) = blast(&mut nic, &pool, c, a.pps_secs, &f, &peer_if)?;
        let pps = got as f64 / a.pps_secs as f64;
        let ratio = if kernel_pps > 0.0 { pps / kernel_pps } else { 0.0 };
        let bad = nic.counters();
        if got == 0 {
            return Err(format!("peer received nothing (sent {sent}, counters {bad:?})"));
        }
        Ok(format!("sent={sent} peer_rx={got} pps={pps:.0} pmd/kernel={ratio:.2}"))
    });

    let mut eng =
        Engine::new(Box::new(nic), pool.clone(), EngineConfig::new(OUR_IP, 24), clock.now())
            .expect("engine");
    let replies = Rc::new(Cell::new(0u32));
    let r2 = replies.clone();
    eng.set_capture(Some(Box::new(move |dir, _t, f: &[u8]| {
        if dir == joyride_service::engine::Direction::Rx
            && is_echo_reply(f, PEER_IP.octets(), 0x4a52)
        {
            r2.set(r2.get() + 1);
        }
    })));

    s.run("ARP + ping kernel -> Joyride", |c| {
        let mut h = Some(std::thread::spawn(move || sh(&format!("ping -c 3 -W 3 {OUR_IP}"))));
        drive(&mut eng, c, &mut [], 20, |_, _| finished(&h))?;
        let out = join(h.take())?;
        out.contains("3 packets received").then_some("3/3".to_string()).ok_or(out)
    });

    s.run("ping Joyride -> kernel", |c| {
        for seq in 0..3u16 {
            let mut p = [0u8; 8 + 32];
            icmp_echo_request(0x4a52, seq, &[0x5a; 32], &mut p);
            let now = c.now();
            eng.host()
                .send_ipv4(now, PEER_IP, IpProtocol::Icmp, p.len(), |b| b.copy_from_slice(&p))
                .map_err(|e| format!("{e:?}"))?;
            let want = u32::from(seq) + 1;
            drive(&mut eng, c, &mut [], 10, |_, _| replies.get() >= want)?;
        }
        Ok(format!("{} replies", replies.get()))
    });

    let port_base = 5000;
    s.run(&format!("TCP Joyride -> kernel {} bytes", a.tcp_bytes), |c| {
        let l = std::net::TcpListener::bind(SocketAddrV4::new(PEER_IP, port_base))
            .map_err(|e| e.to_string())?;
        let mut h = Some(std::thread::spawn(move || -> Result<(u64, String), String> {
            let (mut st, _) = l.accept().map_err(|e| e.to_string())?;
            let (mut n, mut hash, mut buf) = (0u64, Sha256::new(), vec![0u8; 1 << 16]);
            loop {
                let k = st.read(&mut buf).map_err(|e| e.to_string())?;
                if k == 0 {
                    break;
                }
                hash.update(&buf[..k]);
                n += k as u64;
            }
            Ok((n, hex(&hash.finalize())))
        }));
        let spec = AppSpec::Source {
            peer: SocketAddrV4::new(PEER_IP, port_base),
            bytes: a.tcp_bytes,
            seed: 7,
        };
        let mut apps = vec![spec.start(&mut eng)?];
        let t0 = c.now();
        let out = drive(&mut eng, c, &mut apps, 240, |_, o| !o.lines.is_empty() && finished(&h))?;
        let secs = c.now().saturating_duration_since(t0).as_millis() as f64 / 1000.0;
        let (n, sum) = join(h.take())?;
        let line = &out.lines[0];
        if n != a.tcp_bytes || field(line, "sha256=") != Some(sum.as_str()) {
            return Err(format!("kernel got {n} bytes sha256={sum}; {line}"));
        }
        Ok(format!("byte-exact, {secs:.1} s, {:.1} Mbit/s", n as f64 * 8.0 / secs / 1e6))
    });

    s.run(&format!("TCP kernel -> Joyride {} bytes", a.tcp_bytes), |c| {
        let spec = AppSpec::Sink { port: port_base + 1, conns: 1 };
        let mut apps = vec![spec.start(&mut eng)?];
        let total = a.tcp_bytes;
        let mut h = Some(std::thread::spawn(move || -> Result<String, String> {
            let mut st = TcpStream::connect(SocketAddrV4::new(OUR_IP, port_base + 1))
                .map_err(|e| e.to_string())?;
            let (mut left, mut hash, mut bs, mut buf) =
                (total, Sha256::new(), ByteStream::new(9), vec![0u8; 1 << 16]);
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                bs.fill(&mut buf[..k]);
                hash.update(&buf[..k]);
                st.write_all(&buf[..k]).map_err(|e| e.to_string())?;
                left -= k as u64;
            }
            st.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
            let _ = st.read(&mut buf);
            Ok(hex(&hash.finalize()))
        }));
        let t0 = c.now();
        let out = drive(&mut eng, c, &mut apps, 240, |_, o| !o.lines.is_empty())?;
        let secs = c.now().saturating_duration_since(t0).as_millis() as f64 / 1000.0;
        drive(&mut eng, c, &mut apps, 10, |_, _| finished(&h))?;
        let sum = join(h.take())?;
        let line = &out.lines[0];
        let bytes = field(line, "bytes=").and_then(|b| b.parse::<u64>().ok());
        if bytes != Some(total) || field(line, "sha256=") != Some(sum.as_str()) {
            return Err(format!("sent sha256={sum}; {line}"));
        }
        Ok(format!("byte-exact, {secs:.1} s, {:.1} Mbit/s", total as f64 * 8.0 / secs / 1e6))
    });

    s.run("UDP echo (kernel client, Joyride server) + counters", |c| {
        let mut apps = vec![AppSpec::UdpEcho { port: 7 }.start(&mut eng)?];
        drive(&mut eng, c, &mut apps, 1, |_, _| false).ok();
        let (n0, p0) = (eng.nic_counters(), (if_stat(&peer_if, "tx_packets"), if_stat(&peer_if, "rx_packets")));
        let mut h = Some(std::thread::spawn(move || -> Result<usize, String> {
            let u = UdpSocket::bind(SocketAddrV4::new(PEER_IP, 0)).map_err(|e| e.to_string())?;
            u.set_read_timeout(Some(std::time::Duration::from_secs(2))).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 70_000];
            let sizes = [1usize, 100, 1472, 4000, 20000];
            for &n in &sizes {
                let msg: Vec<u8> = (0..n).map(|i| (i * 13 + n) as u8).collect();
                u.send_to(&msg, SocketAddrV4::new(OUR_IP, 7)).map_err(|e| e.to_string())?;
                let (k, from) = u.recv_from(&mut buf).map_err(|e| format!("size {n}: {e}"))?;
                if buf[..k] != msg[..] || from.port() != 7 {
                    return Err(format!("size {n}: echo differs ({k} bytes from {from})"));
                }
            }
            Ok(sizes.len())
        }));
        drive(&mut eng, c, &mut apps, 30, |_, _| finished(&h))?;
        let n = join(h.take())?;
        drive(&mut eng, c, &mut apps, 1, |_, _| false).ok();
        let (n1, p1) = (eng.nic_counters(), (if_stat(&peer_if, "tx_packets"), if_stat(&peer_if, "rx_packets")));
        let (jr_rx, jr_tx) = (n1.rx_packets - n0.rx_packets, n1.tx_packets - n0.tx_packets);
        let (peer_tx, peer_rx) = (p1.0 - p0.0, p1.1 - p0.1);
        if jr_rx != peer_tx || jr_tx != peer_rx || n1.rx_errors != 0 {
            return Err(format!(
                "counters disagree: joyride rx={jr_rx} tx={jr_tx} errors={}, peer tx={peer_tx} rx={peer_rx}",
                n1.rx_errors
            ));
        }
        Ok(format!("{n} sizes echoed; frames joyride rx={jr_rx}=peer tx, joyride tx={jr_tx}=peer rx"))
    });

    s.run(&format!("{} short TCP connections (kernel client, Joyride echo)", a.conns), |c| {
        let mut apps = vec![AppSpec::Echo { port: port_base + 2 }.start(&mut eng)?];
        let conns = a.conns;
        let mut h = Some(std::thread::spawn(move || -> Result<u32, String> {
            for i in 0..conns {
                let mut st = TcpStream::connect(SocketAddrV4::new(OUR_IP, port_base + 2))
                    .map_err(|e| format!("conn {i}: {e}"))?;
                let msg = format!("hello {i}\n");
                st.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
                st.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
                let mut back = String::new();
                st.read_to_string(&mut back).map_err(|e| format!("conn {i}: {e}"))?;
                if back != msg {
                    return Err(format!("conn {i}: echo {back:?}"));
                }
            }
            Ok(conns)
        }));
        drive(&mut eng, c, &mut apps, 240, |_, _| finished(&h))?;
        let n = join(h.take())?;
        Ok(format!("{n} echoed"))
    });

    s.run("peer link down/up: driver survives, traffic resumes", |c| {
        sh(&format!("ip link set {peer_if} down"))?;
        // Traffic into a dead link: Joyride keeps sending (ARP for a lost peer, pings).
        let mut p = [0u8; 8 + 32];
        icmp_echo_request(0x4a52, 99, &[1; 32], &mut p);
        let now = c.now();
        let _ = eng
            .host()
            .send_ipv4(now, PEER_IP, IpProtocol::Icmp, p.len(), |b| b.copy_from_slice(&p));
        drive(&mut eng, c, &mut [], 1, |_, _| false).ok();
        sh(&format!("ip link set {peer_if} up"))?;
        let mut h = Some(std::thread::spawn(move || sh(&format!("ping -c 2 -W 3 {OUR_IP}"))));
        drive(&mut eng, c, &mut [], 30, |_, _| finished(&h))?;
        let out = join(h.take())?;
        if !out.contains("2 packets received") {
            return Err(out);
        }
        let n = eng.nic_counters();
        if n.rx_errors != 0 || n.tx_errors != 0 {
            return Err(format!("errors after link flap: {n:?}"));
        }
        Ok("ping after up: 2/2".into())
    });
    println!("tinyvm-guest: nic counters {:?}", eng.nic_counters());
    println!("tinyvm-guest: engine {:?}", eng.counters());
    finish(&s)
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn finish(s: &Suite) {
    println!("{} passed, {} failed", s.passed, s.failed);
    std::process::exit(if s.failed == 0 { 0 } else { 1 });
}
