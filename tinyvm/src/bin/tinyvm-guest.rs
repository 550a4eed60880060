//! The in-guest test binary of the tinyvm harness (run as PID 1's child inside QEMU).
//!
//! 0000:00:03.0 (`--bdf`) is first driven by the guest kernel's virtio-net for the packet-rate
//! baseline, then bound to vfio-pci and driven by Joyride's virtio PMD; 0000:00:04.0
//! (`--peer-bdf`) stays with the kernel as the Linux peer on the same QEMU hub. Last, the real
//! `joyrided` binary (`--joyrided`, static, in the initramfs) drives the same device with
//! `--backend vfio:BDF,bind` and its echo app, and then with its application socket for the
//! host's unmodified, dynamically linked `curl` under `joyride run` (LD_PRELOAD libjoyride.so),
//! fetching a file from busybox httpd on the peer. Prints one line per test, then
//! `N passed, N failed`; exits 1 on any failure.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use joyride_base::Duration;
use joyride_drivers::af_packet::{AfPacket, AfPacketConfig};
use joyride_drivers::{Batch, Nic, Pool, PoolConfig, QueueId};
use joyride_ip::ipv4::IpProtocol;
use joyride_service::apps::{AppSpec, ByteStream};
use joyride_service::{clock, Clock, Engine, EngineConfig};
use joyride_tinyvm::guest::{drive, field, finished, hex, join, sh, Suite};
use joyride_tinyvm::{
    bind_vfio, icmp_echo_request, if_stat, is_echo_reply, netdev_of, nic_packets_from_report,
};
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
    joyrided: String,
    joyrided_bytes: u64,
    joyride: String,
    curl_bytes: u64,
}

fn args() -> Args {
    let mut a = Args {
        bdf: "0000:00:03.0".into(),
        peer_bdf: "0000:00:04.0".into(),
        tcp_bytes: 64 << 20,
        conns: 1000,
        pps_secs: 2,
        joyrided: "/bin/joyrided".into(),
        joyrided_bytes: 4 << 20,
        joyride: "/bin/joyride".into(),
        curl_bytes: 2 << 20,
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
            "--joyrided" => a.joyrided = val,
            "--joyrided-bytes" => {
                a.joyrided_bytes =
                    joyride_service::apps::parse_bytes(&val).unwrap_or(a.joyrided_bytes)
            }
            "--joyride" => a.joyride = val,
            "--curl-bytes" => {
                a.curl_bytes = joyride_service::apps::parse_bytes(&val).unwrap_or(a.curl_bytes)
            }
            _ => eprintln!("tinyvm-guest: ignoring {k}"),
        }
    }
    a
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
fn main() {
    let a = args();
    let clock = Clock::new();
    let mut s = Suite::new(Clock::new());
    let peer_if = netdev_of(&a.peer_bdf).unwrap_or_else(|| "eth1".into());
    let jr_if = netdev_of(&a.bdf);
    println!("tinyvm-guest: joyride {} ({:?}), peer {} ({peer_if})", a.bdf, jr_if, a.peer_bdf);
    let setup = s.run("peer interface up", |_| {
        let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
        sh(&format!("ip link set lo up && ip link set {peer_if} up && ip addr add {PEER_IP}/24 dev {peer_if}"))
    });
    if !setup {
        return s.finish();
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
    let Some(mut nic) = nic else { return s.finish() };

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
    // Release the device (reset, unmap, close the VFIO group) for joyrided.
    drop(eng);

    s.run("joyrided --backend vfio:BDF,bind: echo app, vfio-unbind/bind, SIGTERM", |c| {
        joyrided_vfio(&a, &peer_if, c)
    });
    s.run("joyrided vfio errors: kernel-owned device, unsupported PCI ID", |_| joyrided_errors(&a));
    s.run("joyride run -- curl (dynamic, LD_PRELOAD) from busybox httpd on the peer", |c| {
        joyride_run_curl(&a, &peer_if, c)
    });
    s.finish()
}

/// Runs `cmd` to completion with a deadline (busybox has `timeout`, but this keeps the
/// output): (exit code, stdout, stderr).
fn run_bin(bin: &str, args: &[&str]) -> Result<(i32, String, String), String> {
    let o = Command::new(bin).args(args).output().map_err(|e| format!("{bin}: {e}"))?;
    let s = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    Ok((o.status.code().unwrap_or(-1), s(&o.stdout), s(&o.stderr)))
}

fn driver_of(bdf: &str) -> Option<String> {
    let l = std::fs::read_link(format!("/sys/bus/pci/devices/{bdf}/driver")).ok()?;
    Some(l.file_name()?.to_string_lossy().into_owned())
}

/// The real `joyrided` on the device: give it back to the kernel with `joyrided vfio-unbind`,
/// start `joyrided --backend vfio:BDF,bind --app echo` (which binds it again), check that
/// `vfio-unbind` refuses while it runs, echo seeded bytes through it from a kernel socket and
/// compare them, then SIGTERM it: it must exit 0 with counters that match the peer's.
fn joyrided_vfio(a: &Args, peer_if: &str, c: &Clock) -> Result<String, String> {
    let (bin, bdf) = (a.joyrided.as_str(), a.bdf.as_str());
    let (code, out, err) = run_bin(bin, &["vfio-unbind", bdf])?;
    let kdrv = driver_of(bdf);
    if code != 0 || kdrv.is_none() || kdrv.as_deref() == Some("vfio-pci") {
        return Err(format!("vfio-unbind: rc={code} driver={kdrv:?} {out} {err}"));
    }
    let (ptx0, prx0) = (if_stat(peer_if, "tx_packets"), if_stat(peer_if, "rx_packets"));
    let port = 5300;
    let (child, err_h) = start_joyrided(a, &["--app", &format!("echo:{port}")])?;
    let result = (|| -> Result<String, String> {
        if driver_of(bdf).as_deref() != Some("vfio-pci") {
            return Err(format!("`,bind` left the device on {:?}", driver_of(bdf)));
        }
        let (code, _, err) = run_bin(bin, &["vfio-unbind", bdf])?;
        if code == 0 || !err.contains("busy") {
            return Err(format!("vfio-unbind while joyrided runs: rc={code} {err:?}"));
        }
        // Echo: a writer thread streams seeded bytes, this thread reads the echo back.
        let t0 = c.now();
        let st = TcpStream::connect_timeout(
            &SocketAddrV4::new(OUR_IP, port).into(),
            std::time::Duration::from_secs(10),
        )
        .map_err(|e| format!("connect: {e}"))?;
        st.set_read_timeout(Some(std::time::Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let mut w = st.try_clone().map_err(|e| e.to_string())?;
        let total = a.joyrided_bytes;
        let wh = std::thread::spawn(move || -> Result<String, String> {
            let (mut left, mut hash, mut bs, mut buf) =
                (total, Sha256::new(), ByteStream::new(11), vec![0u8; 1 << 16]);
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                bs.fill(&mut buf[..k]);
                hash.update(&buf[..k]);
                w.write_all(&buf[..k]).map_err(|e| e.to_string())?;
                left -= k as u64;
            }
            w.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
            Ok(hex(&hash.finalize()))
        });
        let (mut n, mut hash, mut buf, mut r) = (0u64, Sha256::new(), vec![0u8; 1 << 16], &st);
        loop {
            let k = r.read(&mut buf).map_err(|e| format!("echo read after {n} bytes: {e}"))?;
            if k == 0 {
                break;
            }
            hash.update(&buf[..k]);
            n += k as u64;
        }
        let sent = wh.join().map_err(|_| "writer panicked".to_string())??;
        let got = hex(&hash.finalize());
        let secs = c.now().saturating_duration_since(t0).as_millis() as f64 / 1000.0;
        if n != total || got != sent {
            return Err(format!("echo: {n} of {total} bytes, sha256 {got} (sent {sent})"));
        }
        Ok(format!("{n} bytes echoed byte-exact in {secs:.1} s"))
    })();
    // Let the last frames in flight (the kernel's ACK of joyrided's FIN) land before the
    // signal, so that the counters compare exactly.
    clock::sleep(Duration::from_millis(500));
    // SIGTERM (also on failure, so the device is free), then wait for a clean exit.
    let (status, err) = stop_joyrided(child, err_h, c);
    let tail: String = err.lines().rev().take(6).collect::<Vec<_>>().join(" | ");
    let note = result.map_err(|e| format!("{e}; joyrided stderr: {tail}"))?;
    match status {
        Some(s) if s.code() == Some(0) => {}
        other => return Err(format!("joyrided did not exit 0 on SIGTERM: {other:?}; {tail}")),
    }
    let (jr_rx, jr_tx) =
        nic_packets_from_report(&err).ok_or_else(|| format!("no counters printed: {tail}"))?;
    let (peer_tx, peer_rx) =
        (if_stat(peer_if, "tx_packets") - ptx0, if_stat(peer_if, "rx_packets") - prx0);
    if jr_rx != peer_tx || jr_tx != peer_rx || jr_rx == 0 {
        return Err(format!(
            "counters disagree: joyrided rx={jr_rx} tx={jr_tx}, peer tx={peer_tx} rx={peer_rx}"
        ));
    }
    Ok(format!(
        "vfio-unbind gave it to {}; {note}; vfio-unbind refused while running; exit 0 on \
         SIGTERM; frames joyrided rx={jr_rx}=peer tx, tx={jr_tx}=peer rx",
        kdrv.unwrap_or_default()
    ))
}

/// Starts `joyrided --backend vfio:BDF,bind` with its application socket at `socket` and
/// waits for `joyrided: ready`; returns the child and a thread collecting its stderr.
fn start_joyrided(
    a: &Args,
    extra: &[&str],
) -> Result<(std::process::Child, JoinHandle<String>), String> {
    let bin = a.joyrided.as_str();
    let mut child = Command::new(bin)
        .args(["--backend", &format!("vfio:{},bind", a.bdf), "--ip", &format!("{OUR_IP}/24")])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{bin}: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let mut seen = String::new();
        while let Ok(k) = stdout.read(&mut buf) {
            if k == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..k]));
            let _ = tx.send(seen.clone());
        }
    });
    let err_h = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let ready = rx.recv_timeout(std::time::Duration::from_secs(30));
    match ready {
        Ok(r) if r.contains("joyrided: ready") => Ok((child, err_h)),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_h.join().unwrap_or_default();
            Err(format!("joyrided not ready within 30 s ({other:?}); stderr: {err}"))
        }
    }
}

/// SIGTERMs `child` and waits up to 15 s for it: (exit status, its stderr).
fn stop_joyrided(
    mut child: std::process::Child,
    err_h: JoinHandle<String>,
    c: &Clock,
) -> (Option<std::process::ExitStatus>, String) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let end = c.now() + Duration::from_millis(15_000);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if c.now() < end => clock::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    (status, err_h.join().unwrap_or_default())
}

/// Issue 8's `joyride run -- curl`: busybox httpd on the kernel's peer NIC serves a seeded
/// file; the host's unmodified, dynamically linked curl (copied into the initramfs with its
/// libraries) fetches it under `joyride run` (LD_PRELOAD libjoyride.so) through
/// `joyrided --backend vfio:BDF` and its application socket. The bytes must match, and the
/// frames must have crossed the peer NIC (a curl on the kernel's stack would use loopback).
fn joyride_run_curl(a: &Args, peer_if: &str, c: &Clock) -> Result<String, String> {
    let size = a.curl_bytes as usize;
    std::fs::create_dir_all("/tmp/www").map_err(|e| e.to_string())?;
    std::fs::create_dir_all("/run/joyride").map_err(|e| e.to_string())?;
    let mut body = vec![0u8; size];
    ByteStream::new(13).fill(&mut body);
    std::fs::write("/tmp/www/blob.bin", &body).map_err(|e| e.to_string())?;
    let want = hex(&Sha256::digest(&body));
    drop(body);
    let port = 8080;
    let mut httpd = Command::new("httpd")
        .args(["-f", "-p", &format!("{PEER_IP}:{port}"), "-h", "/tmp/www"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("busybox httpd: {e}"))?;
    let sock = "/run/joyride/joyride.sock";
    let started = start_joyrided(a, &["--socket", sock]);
    let (child, err_h) = match started {
        Ok(x) => x,
        Err(e) => {
            let _ = httpd.kill();
            let _ = httpd.wait();
            return Err(e);
        }
    };
    let (ptx0, prx0) = (if_stat(peer_if, "tx_packets"), if_stat(peer_if, "rx_packets"));
    let t0 = c.now();
    let url = format!("http://{PEER_IP}:{port}/blob.bin");
    let out = Command::new(&a.joyride)
        .args(["run", "--socket", sock, "--", "/usr/bin/curl", "-q", "-sS", "--fail"])
        .args(["--max-time", "60", "-o", "/tmp/curl.bin", &url])
        .env("JOYRIDE_LIB", "/lib/joyride/libjoyride.so")
        .output()
        .map_err(|e| format!("{}: {e}", a.joyride));
    let secs = c.now().saturating_duration_since(t0).as_millis() as f64 / 1000.0;
    clock::sleep(Duration::from_millis(300));
    let (ptx, prx) = (if_stat(peer_if, "tx_packets") - ptx0, if_stat(peer_if, "rx_packets") - prx0);
    let (status, err) = stop_joyrided(child, err_h, c);
    let _ = httpd.kill();
    let _ = httpd.wait();
    let tail: String = err.lines().rev().take(6).collect::<Vec<_>>().join(" | ");
    let out = out?;
    if !out.status.success() {
        return Err(format!(
            "joyride run -- curl: {:?}: {} {}; joyrided: {tail}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let got = std::fs::read("/tmp/curl.bin").map_err(|e| format!("/tmp/curl.bin: {e}"))?;
    let got_sum = hex(&Sha256::digest(&got));
    if got.len() != size || got_sum != want {
        return Err(format!(
            "curl got {} of {size} bytes, sha256 {got_sum} (want {want})",
            got.len()
        ));
    }
    // The file's bytes came in over the peer NIC: at least one frame per 1,460 bytes.
    if (ptx as usize) < size / 1460 || prx == 0 {
        return Err(format!(
            "only {ptx} frames left the peer NIC ({prx} came in) for {size} bytes"
        ));
    }
    if status.and_then(|s| s.code()) != Some(0) {
        return Err(format!("joyrided did not exit 0 on SIGTERM: {status:?}; {tail}"));
    }
    let _ = std::fs::remove_file("/tmp/curl.bin");
    Ok(format!(
        "{size} bytes, sha256 matches, {secs:.1} s; peer NIC tx={ptx} rx={prx} frames; joyrided exit 0"
    ))
}

/// A PCI function no kernel driver holds and that is no bridge or NIC (on q35: the VGA), to
/// show `joyrided` an ID it has no driver for.
fn spare_device() -> Option<(String, String)> {
    let mut devs: Vec<_> = std::fs::read_dir("/sys/bus/pci/devices").ok()?.flatten().collect();
    devs.sort_by_key(|e| e.file_name());
    devs.into_iter().find_map(|e| {
        let p = e.path();
        let rd =
            |n: &str| std::fs::read_to_string(p.join(n)).unwrap_or_default().trim().to_string();
        let class = rd("class");
        let ids = format!(
            "{}:{}",
            rd("vendor").trim_start_matches("0x"),
            rd("device").trim_start_matches("0x")
        );
        let spare = !p.join("driver").exists()
            && p.join("iommu_group").exists()
            && (class.starts_with("0x03") || class.starts_with("0x0c05"));
        spare.then(|| (e.file_name().to_string_lossy().into_owned(), ids))
    })
}

/// `joyrided`'s errors on real sysfs: a device still on its kernel driver, and a device whose
/// PCI ID no Joyride driver takes (bound with `joyrided vfio-bind`, released afterwards).
fn joyrided_errors(a: &Args) -> Result<String, String> {
    let bin = a.joyrided.as_str();
    let ip = "10.0.0.9/24";
    let (code, _, err) = run_bin(bin, &["--backend", &format!("vfio:{}", a.peer_bdf), "--ip", ip])?;
    let want = format!("{} is bound to virtio-pci, not vfio-pci", a.peer_bdf);
    if code != 2 || !err.contains(&want) {
        return Err(format!("kernel-owned device: rc={code} {err:?}"));
    }
    let Some((spare, ids)) = spare_device() else {
        return Ok("kernel-owned device refused; no spare PCI function for the ID check".into());
    };
    let (code, out, err) = run_bin(bin, &["vfio-bind", &spare])?;
    if code != 0 || driver_of(&spare).as_deref() != Some("vfio-pci") {
        return Err(format!("vfio-bind {spare}: rc={code} {out} {err}"));
    }
    let (code, _, err) = run_bin(bin, &["--backend", &format!("vfio:{spare}"), "--ip", ip])?;
    let (ucode, uout, uerr) = run_bin(bin, &["vfio-unbind", &spare])?;
    let want = format!("unsupported device {ids} at {spare} (supported: virtio-net 1af4:1041");
    if code != 2 || !err.contains(&want) {
        return Err(format!("{spare} ({ids}): rc={code} {err:?}"));
    }
    if ucode != 0 || driver_of(&spare).as_deref() == Some("vfio-pci") {
        return Err(format!("vfio-unbind {spare}: rc={ucode} {uout} {uerr}"));
    }
    Ok(format!("kernel-owned device refused; {spare} ({ids}) bound, refused by ID, released"))
}
