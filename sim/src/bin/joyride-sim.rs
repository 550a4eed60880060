//! `joyride-sim`: two Joyride TCP stacks move data over a simulated, impaired link in virtual
//! time, and the receiver checks every byte. Runs anywhere, no root, no network.

use std::net::SocketAddrV4;
use std::process::ExitCode;

use joyride_base::{Duration, Rng, SplitMix64};
use joyride_sim::net::Pair;
use joyride_sim::LinkConfig;
use joyride_tcp::{CcAlgorithm, TcpConfig};

const HELP: &str = "\
joyride-sim: a TCP transfer between two Joyride stacks over a simulated link (virtual time)

Host A (10.0.0.1) listens on port 80; host B (10.0.0.2) connects and sends --bytes of random
data; A reads it all and the run checks it arrived complete, in order and unchanged. Every
impairment is seeded, so a run replays exactly from --seed.

USAGE: joyride-sim [OPTIONS]

OPTIONS:
  --bytes N        bytes to send B -> A                      [default: 10000000]
  --loss P         packet loss probability, each direction   [default: 0.01]
  --reorder P      reordering probability                    [default: 0]
  --duplicate P    duplication probability                   [default: 0]
  --corrupt P      bit-flip probability (checksums reject)   [default: 0]
  --delay-ms MS    one-way delay                             [default: 10]
  --rate-mbps R    link rate, 0 = unlimited                  [default: 100]
  --cc ALGO        cubic | newreno                           [default: cubic]
  --no-sack        disable SACK on both stacks
  --no-rack        disable RFC 8985 RACK-TLP (loss detection by RFC 6675 DupThresh only)
  --seed S         seed for link impairments and ISNs        [default: 1]
  --pcap FILE      write every packet to FILE (open it in Wireshark)
  -h, --help       this text

EXAMPLE: joyride-sim --loss 0.05 --bytes 10000000 --pcap /tmp/run.pcap";

struct Args {
    bytes: usize,
    link: LinkConfig,
    cc: CcAlgorithm,
    sack: bool,
    rack: bool,
    seed: u64,
    pcap: Option<String>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        bytes: 10_000_000,
        link: LinkConfig::ideal(Duration::from_millis(10)),
        cc: CcAlgorithm::Cubic,
        sack: true,
        rack: true,
        seed: 1,
        pcap: None,
    };
    a.link.loss = 0.01;
    a.link.bandwidth_bps = 100_000_000;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value (see --help)"));
        let prob = |v: String| match v.parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
            _ => Err(format!("{flag}: expected a probability between 0 and 1, got {v:?}")),
        };
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: not a number: {v:?}"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--bytes" => a.bytes = num(value()?)? as usize,
            "--loss" => a.link.loss = prob(value()?)?,
            "--reorder" => a.link.reorder = prob(value()?)?,
            "--duplicate" => a.link.duplicate = prob(value()?)?,
            "--corrupt" => a.link.corrupt = prob(value()?)?,
            "--delay-ms" => a.link.delay = Duration::from_millis(num(value()?)?),
            "--rate-mbps" => a.link.bandwidth_bps = num(value()?)?.saturating_mul(1_000_000),
            "--cc" => {
                a.cc = match value()?.as_str() {
                    "cubic" => CcAlgorithm::Cubic,
                    "newreno" => CcAlgorithm::NewReno,
                    other => return Err(format!("--cc: unknown algorithm {other:?}")),
                }
            }
            "--no-sack" => a.sack = false,
            "--no-rack" => a.rack = false,
            "--seed" => a.seed = num(value()?)?,
            "--pcap" => a.pcap = Some(value()?),
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    if a.link.reorder > 0.0 {
        a.link.reorder_delay = a.link.delay / 2;
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("joyride-sim: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("joyride-sim: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let mut config = TcpConfig::linux();
    config.congestion = args.cc;
    config.sack = args.sack;
    config.rack = args.rack;
    config.tlp = args.rack;
    let mut p = Pair::new(config.clone(), config, args.link, args.seed);
    if args.pcap.is_some() {
        p.start_capture();
    }
    let mut rng = SplitMix64::new(args.seed ^ 0x5eed);
    let data: Vec<u8> = (0..args.bytes).map(|_| rng.next_u64() as u8).collect();
    let limit = Duration::from_secs(24 * 3600);

    let listener = p.a.socket().map_err(|e| e.to_string())?;
    p.a.bind(listener, SocketAddrV4::new(p.addr_a, 80)).map_err(|e| e.to_string())?;
    p.a.listen(listener, 16).map_err(|e| e.to_string())?;
    let client = p.b.socket().map_err(|e| e.to_string())?;
    let start = p.now();
    let _ = p.b.connect(start, client, SocketAddrV4::new(p.addr_a, 80));
    let mut server = None;
    p.run_until(|p| p.a.accept(listener).map(|(s, _)| server = Some(s)).is_ok(), limit)
        .map_err(|e| format!("handshake: {e}"))?;
    let server = server.ok_or("no connection accepted")?;

    let (mut sent, mut received) = (0usize, Vec::with_capacity(args.bytes));
    let mut buf = vec![0u8; 64 * 1024];
    #[allow(clippy::disallowed_methods)] // wall time for the report only, never fed to a stack
    let wall = std::time::Instant::now();
    while received.len() < args.bytes {
        let now = p.now();
        if sent < data.len() {
            sent += p.b.send(now, client, &data[sent..]).unwrap_or(0);
        }
        while let Ok(n @ 1..) = p.a.recv(server, &mut buf, false) {
            received.extend_from_slice(&buf[..n]);
        }
        if !p.step(now + limit) {
            return Err(format!(
                "network went idle after {} of {} bytes",
                received.len(),
                args.bytes
            ));
        }
    }
    let elapsed = p.now() - start;
    let info = p.b.info(client).map_err(|e| e.to_string())?;
    let _ = p.b.close(p.now(), client);
    let _ = p.a.close(p.now(), server);
    let _ = p.run_until_idle(Duration::from_secs(600));

    if received != data {
        let at = received.iter().zip(&data).position(|(a, b)| a != b).unwrap_or(0);
        return Err(format!("received bytes differ from sent bytes at offset {at}"));
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let stats = p.stats();
    println!("transferred {} bytes B -> A, byte-exact", args.bytes);
    println!(
        "link: loss {:.1}%, reorder {:.1}%, duplicate {:.1}%, corrupt {:.2}%, delay {} ms, {} Mb/s",
        args.link.loss * 100.0,
        args.link.reorder * 100.0,
        args.link.duplicate * 100.0,
        args.link.corrupt * 100.0,
        args.link.delay.as_millis(),
        args.link.bandwidth_bps / 1_000_000
    );
    println!(
        "virtual time {:.3} s, goodput {:.2} Mb/s; wall time {:.3} s",
        secs,
        args.bytes as f64 * 8.0 / secs / 1e6,
        wall.elapsed().as_secs_f64()
    );
    println!(
        "sender: {:?}{}, srtt {:?}, cwnd {} B, retransmitted segments {}",
        args.cc,
        if args.rack && args.sack { " + RACK-TLP" } else { "" },
        info.srtt,
        info.cwnd,
        info.total_retrans
    );
    println!(
        "packets delivered {}, rejected by checksum {}, a->b {:?}, b->a {:?}",
        stats.delivered,
        stats.rejected,
        p.a_to_b.stats(),
        p.b_to_a.stats()
    );
    if let (Some(path), Some(bytes)) = (&args.pcap, p.capture_bytes()) {
        std::fs::write(path, bytes).map_err(|e| format!("writing {path}: {e}"))?;
        println!("pcap written to {path}");
    }
    Ok(())
}
