//! The in-guest test binary for the igb personality of `joyride-ixgbe` (run by
//! `tinyvm/run-igb.sh`): two QEMU igb NICs (82576, 8086:10c9) on one hub, the first bound to
//! vfio-pci and driven by Joyride's Intel PMD, the second left to the guest kernel's igb driver
//! as the Linux peer. Tests: bring-up and link, MAC-loopback self-test, RSS spreading flows over
//! four receive queues, then the virtio suite's traffic tests through the engine — ARP + ping
//! both ways, TCP each way byte-exact, UDP echo with counters, short connections. Prints one line
//! per test, then `N passed, N failed`; exits 1 on any failure.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;

use joyride_drivers::{Batch, Nic, Pool, PoolConfig, QueueId};
use joyride_ip::ipv4::IpProtocol;
use joyride_ixgbe::{IntelConfig, IntelNic};
use joyride_service::apps::{AppSpec, ByteStream};
use joyride_service::{Clock, Engine, EngineConfig};
use joyride_tinyvm::guest::{drive, field, finished, hex, join, sh, Suite};
use joyride_tinyvm::{bind_vfio, icmp_echo_request, is_echo_reply, netdev_of};
use joyride_vfio::{Device, IovaSpace, RealSys};
use sha2::{Digest, Sha256};

const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

struct Args {
    tcp_bytes: u64,
    conns: u32,
}

fn args() -> Args {
    let mut a = Args { tcp_bytes: 64 << 20, conns: 1000 };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for kv in v.chunks(2) {
        let val = kv.get(1).cloned().unwrap_or_default();
        match kv[0].as_str() {
            "--tcp-bytes" => {
                a.tcp_bytes = joyride_service::apps::parse_bytes(&val).unwrap_or(a.tcp_bytes)
            }
            "--conns" => a.conns = val.parse().unwrap_or(a.conns),
            k => eprintln!("tinyvm-igb-guest: ignoring {k}"),
        }
    }
    a
}

/// The igb functions (8086:10c9) in PCI address order.
fn igb_devices() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/bus/pci/devices")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|bdf| {
        let id = |f: &str| {
            std::fs::read_to_string(format!("/sys/bus/pci/devices/{bdf}/{f}")).unwrap_or_default()
        };
        id("vendor").trim() == "0x8086" && id("device").trim() == "0x10c9"
    });
    v.sort();
    v
}

fn open_nic(bdf: &str, pool: &Pool, queues: u16) -> Result<IntelNic, String> {
    let dev =
        Device::open(Arc::new(RealSys), bdf, IovaSpace::default()).map_err(|e| e.to_string())?;
    let cfg = IntelConfig { rx_queues: queues, tx_queues: 1, ..IntelConfig::default() };
    IntelNic::open(dev, pool.clone(), cfg).map_err(|e| e.to_string())
}

fn main() {
    let a = args();
    let clock = Clock::new();
    let mut s = Suite::new(Clock::new());
    let devs = igb_devices();
    println!("tinyvm-igb-guest: igb functions {devs:?}");
    if devs.len() < 2 {
        s.run("two igb functions", |_| Err(format!("found {}", devs.len())));
        return s.finish();
    }
    let (bdf, peer_bdf) = (devs[0].clone(), devs[1].clone());
    let peer_if = netdev_of(&peer_bdf).unwrap_or_else(|| "eth1".into());
    if !s.run("peer interface up (kernel igb)", |_| {
        let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
        sh(&format!(
            "ip link set lo up && ip link set {peer_if} up && ip addr add {PEER_IP}/24 dev {peer_if}"
        ))
    }) {
        return s.finish();
    }
    let pool = Pool::new(PoolConfig { count: 4096, ..PoolConfig::default() }).expect("packet pool");

    let mut ok = s.run("bind to vfio-pci, bring up the igb PMD, link", |c| {
        bind_vfio(&bdf).map_err(|e| format!("bind {bdf}: {e}"))?;
        let t0 = c.now();
        let nic = open_nic(&bdf, &pool, 1)?;
        let ms = c.now().saturating_duration_since(t0).as_millis();
        let l = nic.link();
        if !l.up {
            return Err(format!("link down after bring-up ({ms} ms)"));
        }
        Ok(format!(
            "{:?} mac={} link={:?} Mb/s, bring-up {ms} ms",
            nic.personality(),
            nic.capabilities().mac,
            l.speed_mbps
        ))
    });

    ok &= s.run("MAC-loopback self-test (RCTL.LBM)", |_| {
        let mut nic = open_nic(&bdf, &pool, 1)?;
        let t = nic.loopback_selftest(200).map_err(|e| e.to_string())?;
        if t.received != t.sent || t.corrupted != 0 {
            return Err(format!("{t:?}"));
        }
        Ok(format!("{}/{} back byte-exact, hw {:?}", t.received, t.sent, t.hw))
    });

    s.run("RSS spreads flows over 4 receive queues", |_| {
        let mut nic = open_nic(&bdf, &pool, 4)?;
        let mac = nic.capabilities().mac;
        // busybox `ip` has no `neigh add`: a static ARP entry instead.
        sh(&format!("arp -i {peer_if} -s {OUR_IP} {mac}"))?;
        let srcs: Vec<Ipv4Addr> = (0..16).map(|i| Ipv4Addr::new(10, 0, 0, 100 + i)).collect();
        for ip in &srcs {
            sh(&format!("ip addr add {ip}/32 dev {peer_if}"))?;
        }
        let mut per_q = [0u64; 4];
        for ip in &srcs {
            let u = UdpSocket::bind(SocketAddrV4::new(*ip, 0)).map_err(|e| e.to_string())?;
            for _ in 0..4 {
                u.send_to(b"rss", SocketAddrV4::new(OUR_IP, 9)).map_err(|e| e.to_string())?;
            }
        }
        let mut b = Batch::new(32);
        for _ in 0..200 {
            for (q, n) in per_q.iter_mut().enumerate() {
                b.clear();
                *n += nic.rx_burst(QueueId(q as u16), &mut b).map_err(|e| e.to_string())? as u64;
            }
            if per_q.iter().sum::<u64>() >= 64 {
                break;
            }
            #[allow(clippy::disallowed_methods)] // test harness pacing, not protocol code
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for ip in &srcs {
            let _ = sh(&format!("ip addr del {ip}/32 dev {peer_if}"));
        }
        let _ = sh(&format!("arp -i {peer_if} -d {OUR_IP}"));
        let used = per_q.iter().filter(|&&n| n > 0).count();
        if per_q.iter().sum::<u64>() < 64 || used < 2 {
            return Err(format!("per-queue frames {per_q:?}"));
        }
        Ok(format!("16 flows x 4 frames, per queue {per_q:?}"))
    });
    if !ok {
        return s.finish();
    }

    let nic = match open_nic(&bdf, &pool, 1) {
        Ok(n) => n,
        Err(e) => {
            s.run("reopen", |_| Err(e));
            return s.finish();
        }
    };
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

    s.run("UDP echo (kernel client, Joyride server)", |c| {
        let mut apps = vec![AppSpec::UdpEcho { port: 7 }.start(&mut eng)?];
        drive(&mut eng, c, &mut apps, 1, |_, _| false).ok();
        let mut h = Some(std::thread::spawn(move || -> Result<usize, String> {
            let u = UdpSocket::bind(SocketAddrV4::new(PEER_IP, 0)).map_err(|e| e.to_string())?;
            u.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
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
        let e = eng.nic_counters();
        if e.rx_errors != 0 {
            return Err(format!("receive errors: {e:?}"));
        }
        Ok(format!("{n} sizes echoed"))
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
    println!("tinyvm-igb-guest: nic counters {:?}", eng.nic_counters());
    println!("tinyvm-igb-guest: engine {:?}", eng.counters());
    s.finish()
}
