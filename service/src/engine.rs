//! The engine: one NIC queue, one IPv4 [`Host`], one [`TcpStack`], and the loop that joins
//! them (DESIGN.md §1):
//!
//! ```text
//!   nic.rx_burst ─► host.handle_frame ─► Inbound::Tcp ─► TcpRepr::parse (checksum) ─► tcp
//!                                      └► UDP queued on its socket, ARP/ICMP answered
//!   tcp.poll_transmit ─► host.send_ipv4 ─► host.poll_transmit ─► pool buffer ─► nic.tx_burst
//!   idle: spin a little, then poll(2) on the NIC's wait fd (or sleep) until the next timer
//! ```
//!
//! The idle wait never sleeps while the engine has *pending work*: work that the next loop pass
//! makes progress on without waiting for anything — TCP segments looped back to our own address
//! and frames the host queued (delivered or handed to the NIC by the next [`Engine::poll`]), and
//! UDP datagrams that an app sent to our own address after the last poll (queued on the
//! receiving socket; the layer above moves them to their reader in its next pass). Timers, in contrast, are waited for; a timer that stays due
//! without progress is guarded by a 1 ms wait (see [`Engine::idle_wait`]).
//!
//! TCP to our own address (or 127/8) never reaches the NIC: the host refuses it
//! ([`joyride_ip::host::RouteError::Local`]) and the engine loops the segment back itself.
//! [`Engine::poll`] is sans-clock like the layers below it (time is an argument); only
//! [`Engine::idle_wait`] blocks, using the [`Clock`].

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;

use joyride_base::{Duration, Instant};
use joyride_drivers::{sys, Batch, Nic, NicError, PacketBuf, Pool, QueueCounters, QueueId, RxCsum};
use joyride_ip::ethernet::EthernetAddress;
use joyride_ip::host::{
    ConfigError, Counters as HostCounters, Host, HostConfig, Inbound, Interface,
};
use joyride_ip::host::{SendError, UdpError, UdpHandle};
use joyride_ip::ipv4::IpProtocol;
use joyride_ip::tcp::{TcpPacket, TcpRepr};
use joyride_ip::{Checksum, Error as WireError};
use joyride_tcp::{TcpConfig, TcpStack};

use crate::clock::Clock;

/// How an [`Engine`] is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Our IPv4 address.
    pub addr: Ipv4Addr,
    /// Prefix length of the on-link network.
    pub prefix_len: u8,
    /// Default gateway (on-link), if any.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU; `None`: the NIC's. Never above the NIC's.
    pub mtu: Option<u16>,
    /// IPv4/ARP/ICMP/UDP tunables.
    pub host: HostConfig,
    /// TCP tunables (the MSS is lowered to fit the MTU).
    pub tcp: TcpConfig,
    /// Key for ISNs and SYN cookies.
    pub tcp_secret: [u8; 16],
    /// Frames per receive burst.
    pub burst: usize,
    /// Frames waiting for the NIC beyond which new frames are dropped (and counted).
    pub tx_backlog: usize,
    /// Busy-poll this long after the last useful work before sleeping.
    pub spin: Duration,
    /// Longest single sleep (bounds how late a signal or an outside condition is noticed).
    pub max_sleep: Duration,
    /// Sleep granule when the NIC has no wait fd (it must be polled).
    pub poll_sleep: Duration,
}

impl EngineConfig {
    /// Defaults for `addr/prefix_len`: Linux-like TCP and host settings, bursts of 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Self {
        EngineConfig {
            addr,
            prefix_len,
            gateway: None,
            mtu: None,
            host: HostConfig { tx_slots: 2048, ..HostConfig::default() },
            tcp: TcpConfig::linux(),
            tcp_secret: *b"joyride-engine!!",
            burst: 32,
            tx_backlog: 4096,
            spin: Duration::from_micros(200),
            max_sleep: Duration::from_millis(100),
            poll_sleep: Duration::from_micros(250),
        }
    }
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The interface configuration is invalid.
    #[error("interface configuration: {0}")]
    Config(#[from] ConfigError),
    /// The NIC's MTU is not usable for IPv4.
    #[error("NIC MTU {0} is not usable")]
    Mtu(u32),
}

/// Counters kept by the engine itself (the host and the NIC keep their own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Frames taken from the NIC.
    pub rx_frames: u64,
    /// Frames handed to the NIC.
    pub tx_frames: u64,
    /// TCP segments handed to the TCP stack (from the NIC or looped back).
    pub tcp_rx_segments: u64,
    /// TCP segments the stack emitted.
    pub tcp_tx_segments: u64,
    /// TCP segments dropped for a bad checksum.
    pub tcp_bad_checksum: u64,
    /// TCP segments dropped as malformed (short header, bad options).
    pub tcp_malformed: u64,
    /// TCP segments looped back to our own address.
    pub tcp_looped: u64,
    /// TCP segments the host could not queue (no frame slot or no route).
    pub tcp_tx_dropped: u64,
    /// UDP datagrams queued on sockets.
    pub udp_rx: u64,
    /// ICMP errors received for TCP (not acted upon yet).
    pub icmp_errors_for_tcp: u64,
    /// Frames dropped because no packet buffer was free.
    pub tx_no_buf: u64,
    /// Frames dropped because the transmit backlog was full.
    pub tx_backlog_drops: u64,
    /// NIC errors returned by rx/tx bursts.
    pub nic_errors: u64,
    /// Polls that found a timer already due but made no progress (guarded by a 1 ms wait).
    pub stuck_deadlines: u64,
    /// Polls that did useful work.
    pub busy_polls: u64,
    /// Times the engine went to sleep.
    pub sleeps: u64,
}

/// Which way a captured frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received from the NIC.
    Rx,
    /// Sent to the NIC.
    Tx,
}

/// A hook that sees every frame sent and received (for pcap capture).
pub type CaptureHook = Box<dyn FnMut(Direction, Instant, &[u8])>;

/// A TCP segment looped back to this host.
struct LocalSeg {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    bytes: Vec<u8>,
}

/// The engine of one core: a NIC queue, the IPv4 host and the TCP socket table.
pub struct Engine {
    nic: Box<dyn Nic>,
    queue: QueueId,
    pool: Pool,
    host: Host,
    tcp: TcpStack,
    rx: Batch,
    tx: Batch,
    txq: VecDeque<PacketBuf>,
    tx_backlog: usize,
    local: VecDeque<LocalSeg>,
    local_free: Vec<Vec<u8>>,
    counters: EngineCounters,
    capture: Option<CaptureHook>,
    now: Instant,
    last_work: Instant,
    /// The earliest deadline the layers reported right after the last poll: work that became
    /// due later (an app's send or recv after the poll) is not a stuck timer.
    due_after_poll: Option<Instant>,
    /// The host's `udp_looped` counter at the last poll: a datagram an app sent to our own
    /// address since then is pending work for the next pass.
    udp_looped_at_poll: u64,
    stuck_logged: bool,
    spin: Duration,
    max_sleep: Duration,
    poll_sleep: Duration,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("addr", &self.host.addr())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Low-water mark of free host frame slots at which the TCP output is pushed to the NIC
/// before the stack emits more.
const HOST_LOW_WATER: usize = 64;

impl Engine {
    /// Builds an engine on queue 0 of `nic`; `pool` supplies the transmit buffers (it may be
    /// the pool the NIC receives into). The first gratuitous ARP is queued.
    pub fn new(
        nic: Box<dyn Nic>,
        pool: Pool,
        cfg: EngineConfig,
        now: Instant,
    ) -> Result<Engine, EngineError> {
        let caps = nic.capabilities();
        let nic_mtu = u16::try_from(caps.mtu).map_err(|_| EngineError::Mtu(caps.mtu))?;
        let mtu = cfg.mtu.map_or(nic_mtu, |m| m.min(nic_mtu));
        // The transmit buffers must hold an Ethernet header plus an MTU-sized packet.
        let mtu = mtu.min(u16::try_from(pool.buf_size() - pool.headroom() - 14).unwrap_or(mtu));
        let iface = Interface::new(
            EthernetAddress(caps.mac.0),
            cfg.addr,
            cfg.prefix_len,
            cfg.gateway,
            mtu,
        )?;
        let host = Host::new(now, iface, cfg.host);
        let mut tcp_cfg = cfg.tcp;
        // RFC 9293 §3.7.1: MSS = MTU - IPv4 header - TCP header.
        tcp_cfg.mss = tcp_cfg.mss.min(mtu.saturating_sub(40));
        let mut tcp = TcpStack::new(tcp_cfg, cfg.tcp_secret);
        tcp.set_local_addrs(&[cfg.addr, Ipv4Addr::LOCALHOST]);
        let burst = cfg.burst.max(1);
        Ok(Engine {
            nic,
            queue: QueueId(0),
            pool,
            host,
            tcp,
            rx: Batch::new(burst),
            tx: Batch::new(burst),
            txq: VecDeque::with_capacity(cfg.tx_backlog.max(burst)),
            tx_backlog: cfg.tx_backlog.max(burst),
            local: VecDeque::new(),
            local_free: Vec::new(),
            counters: EngineCounters::default(),
            capture: None,
            now,
            last_work: now,
            due_after_poll: None,
            udp_looped_at_poll: 0,
            stuck_logged: false,
            spin: cfg.spin,
            max_sleep: cfg.max_sleep,
            poll_sleep: cfg.poll_sleep,
        })
    }

    /// The TCP socket table (the in-process socket API).
    pub fn tcp(&mut self) -> &mut TcpStack {
        &mut self.tcp
    }

    /// The IPv4 host (interface, ARP, UDP sockets).
    pub fn host(&mut self) -> &mut Host {
        &mut self.host
    }

    /// The IPv4 host, read-only.
    pub fn host_ref(&self) -> &Host {
        &self.host
    }

    /// Our IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.host.addr()
    }

    /// The time of the last [`Engine::poll`].
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The NIC.
    pub fn nic(&self) -> &dyn Nic {
        &*self.nic
    }

    /// Engine counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    /// Host (IPv4/ARP/ICMP/UDP) counters.
    pub fn host_counters(&self) -> &HostCounters {
        self.host.counters()
    }

    /// NIC counters summed over queues.
    pub fn nic_counters(&self) -> QueueCounters {
        self.nic.counters()
    }

    /// Installs (or removes) a hook that sees every frame received and sent.
    pub fn set_capture(&mut self, hook: Option<CaptureHook>) {
        self.capture = hook;
    }

    /// Opens a UDP socket bound to `port` on our address (0: an ephemeral port).
    pub fn udp_bind(&mut self, port: u16) -> Result<UdpHandle, UdpError> {
        let h = self.host.udp().open()?;
        let addr = std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
        if let Err(e) = self.host.udp().bind(h, addr) {
            let _ = self.host.udp().close(h);
            return Err(e);
        }
        Ok(h)
    }

    /// `sendto` on a UDP socket at the time of the last poll.
    pub fn udp_send_to(
        &mut self,
        h: UdpHandle,
        dst: std::net::SocketAddrV4,
        data: &[u8],
    ) -> Result<usize, UdpError> {
        self.host.udp_send_to(self.now, h, Some(dst), data)
    }

    /// `recvfrom` on a UDP socket.
    pub fn udp_recv_from(
        &mut self,
        h: UdpHandle,
        buf: &mut [u8],
    ) -> Result<joyride_ip::host::RecvMeta, UdpError> {
        self.host.udp_recv_from(h, buf)
    }

    /// One turn of the loop at `now`: receive a burst, deliver it, run timers, send what the
    /// layers produced. Returns whether anything happened (a frame moved or a segment was
    /// looped back).
    pub fn poll(&mut self, now: Instant) -> bool {
        self.now = now;
        let mut work = self.receive(now) > 0;
        work |= self.deliver_local(now) > 0;
        work |= self.transmit(now) > 0;
        self.due_after_poll = self.timer_at();
        self.udp_looped_at_poll = self.host.counters().udp_looped;
        if work {
            self.counters.busy_polls += 1;
            self.last_work = now;
        }
        work
    }

    /// Records that something outside the engine (an app) did work at `now`, which restarts
    /// the spin budget of [`Engine::idle_wait`].
    pub fn mark_busy(&mut self, now: Instant) {
        self.last_work = now;
    }

    /// When [`Engine::poll`] next has work to do (`None`: only input can wake it):
    /// [`Instant::ZERO`] while there is pending work ([`Engine::has_pending_work`]) or frames
    /// wait for the NIC, else the earliest timer of the layers.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.has_pending_work() {
            return Some(Instant::ZERO);
        }
        self.timer_at()
    }

    /// Whether the next loop pass has work it can do at once, without waiting for input or a
    /// timer: TCP segments looped back to our own address or frames the host queued (an app's
    /// UDP send, an ARP reply), which the next [`Engine::poll`] delivers or hands to the NIC
    /// in full, or UDP datagrams an app sent to our own address since the last poll (queued
    /// on the receiving socket, whose reader may have been served before in this pass).
    /// [`Engine::idle_wait`] never sleeps while this holds.
    pub fn has_pending_work(&self) -> bool {
        !self.local.is_empty()
            || self.host.tx_queued() > 0
            || self.host.counters().udp_looped != self.udp_looped_at_poll
    }

    /// The earliest deadline of the layers' timers, or [`Instant::ZERO`] while frames wait
    /// for the NIC to take them.
    fn timer_at(&self) -> Option<Instant> {
        if !self.txq.is_empty() {
            return Some(Instant::ZERO);
        }
        [self.host.poll_at(), self.tcp.poll_at()].into_iter().flatten().min()
    }

    /// Waits until there may be work: returns at once while there is pending work
    /// ([`Engine::has_pending_work`]) and within the spin budget after the last work, then
    /// blocks in `ppoll(2)` on the NIC's wait fd (or sleeps a granule when it has none) until the
    /// next timer, `also_at`, or at most `max_sleep`.
    ///
    /// A deadline already in the past that the last poll made no progress on (a timer that
    /// keeps reporting itself due) is pushed 1 ms out, counted in
    /// [`EngineCounters::stuck_deadlines`] and logged once.
    pub fn idle_wait(&mut self, clock: &Clock, also_at: Option<Instant>) {
        self.idle_wait_with(clock, also_at, &[]);
    }

    /// Whether [`Engine::idle_wait`] at `now` would sleep (no pending work, and the spin budget
    /// since the last work is spent), so that callers can prepare their own wake-up sources
    /// first.
    pub fn will_sleep(&self, now: Instant) -> bool {
        !self.has_pending_work() && now.saturating_duration_since(self.last_work) >= self.spin
    }

    /// [`Engine::idle_wait`] that also wakes when any of `extra` becomes readable or hangs up
    /// (applications' command doorbells and connections, listening sockets).
    pub fn idle_wait_with(
        &mut self,
        clock: &Clock,
        also_at: Option<Instant>,
        extra: &[std::os::fd::BorrowedFd<'_>],
    ) {
        let now = clock.now();
        if !self.will_sleep(now) {
            return;
        }
        let mut deadline = now + self.max_sleep;
        for t in [self.timer_at(), also_at].into_iter().flatten() {
            deadline = deadline.min(t);
        }
        if deadline <= now {
            if deadline > self.now || self.due_after_poll.is_none_or(|t| t > self.now) {
                // It came due after the last poll (a timer expired, or an app's send/recv
                // queued work): poll now.
                return;
            }
            // It was already due when the last poll ended, and that poll made no progress.
            self.counters.stuck_deadlines += 1;
            if !self.stuck_logged {
                self.stuck_logged = true;
                let states: Vec<&str> = self.tcp.connections().map(|c| c.state.name()).collect();
                tracing::warn!(
                    deadline = ?deadline,
                    tcp = ?self.tcp.poll_at(),
                    host = ?self.host.poll_at(),
                    txq = self.txq.len(),
                    connections = ?states,
                    "a timer stays due without progress; waiting 1 ms (logged once)"
                );
            }
            deadline = now + Duration::from_millis(1);
        }
        let mut wait = deadline.saturating_duration_since(now);
        let nic_fd = self.nic.wait_fd(self.queue);
        // Arm the NIC's wake-up; frames that arrived meanwhile are polled instead.
        if nic_fd.is_some() && !self.nic.prepare_wait(self.queue) {
            return;
        }
        self.counters.sleeps += 1;
        use std::os::fd::AsRawFd;
        let mut fds: Vec<std::os::fd::RawFd> = extra.iter().map(|f| f.as_raw_fd()).collect();
        match nic_fd {
            Some(fd) => fds.push(fd),
            None => wait = wait.min(self.poll_sleep),
        }
        if fds.is_empty() {
            clock.sleep(wait);
        } else {
            // A timespec, not whole milliseconds: a 250 µs granule stays 250 µs. EINTR (a
            // signal) simply ends the wait.
            let _ = sys::poll_readable_many(&fds, wait);
        }
        if nic_fd.is_some() {
            self.nic.end_wait(self.queue);
        }
    }

    fn capture(&mut self, dir: Direction, now: Instant, frame: &[u8]) {
        if let Some(h) = self.capture.as_mut() {
            h(dir, now, frame);
        }
    }

    /// Receives one burst and hands every frame up. Returns the frames received.
    fn receive(&mut self, now: Instant) -> usize {
        let n = match self.nic.rx_burst(self.queue, &mut self.rx) {
            Ok(n) => n,
            Err(e) => {
                self.counters.nic_errors += 1;
                tracing::debug!(error = %e, "rx_burst failed");
                0
            }
        };
        let mut batch = std::mem::replace(&mut self.rx, Batch::new(0));
        for mut buf in batch.drain() {
            self.counters.rx_frames += 1;
            let mut csum = Checksum::Software;
            match buf.rx_csum() {
                RxCsum::Verified => csum = Checksum::Offloaded,
                // A frame that never crossed a wire (veth/TAP peer on this host): a TCP field
                // holding only the pseudo-header sum is trusted; anything else is completed so
                // that the host's software check (UDP) passes.
                RxCsum::Partial { offset: 16, .. } if self.capture.is_none() => {
                    csum = Checksum::Offloaded
                }
                RxCsum::Partial { .. } => {
                    if buf.complete_partial_csum() {
                        csum = Checksum::Offloaded;
                    }
                }
                RxCsum::Unknown => {}
            }
            if self.capture.is_some() {
                self.capture(Direction::Rx, now, buf.data());
            }
            // Offload status describes the frame; a reassembled datagram is checked in full.
            if is_fragment(buf.data()) {
                csum = Checksum::Software;
            }
            let Engine { host, tcp, counters, .. } = self;
            match host.handle_frame(now, buf.data()) {
                Inbound::Tcp { src, dst, payload, .. } => {
                    deliver_tcp(tcp, counters, now, src, dst, payload, csum);
                }
                Inbound::Udp(_) => counters.udp_rx += 1,
                Inbound::IcmpError(e) => {
                    counters.icmp_errors_for_tcp += 1;
                    tracing::debug!(from = %e.from, "ICMP error received");
                }
                Inbound::Handled => {}
                Inbound::Dropped(reason) => tracing::trace!(?reason, "frame dropped"),
            }
        }
        self.rx = batch;
        n
    }

    /// Hands looped-back segments (queued before this poll) to the stack.
    fn deliver_local(&mut self, now: Instant) -> usize {
        let n = self.local.len();
        for _ in 0..n {
            let Some(seg) = self.local.pop_front() else { break };
            self.counters.tcp_looped += 1;
            deliver_tcp(
                &mut self.tcp,
                &mut self.counters,
                now,
                seg.src,
                seg.dst,
                &seg.bytes,
                Checksum::Offloaded,
            );
            self.local_free.push(seg.bytes);
        }
        n
    }

    /// Runs the TCP and host output and pushes frames to the NIC. Returns frames sent.
    fn transmit(&mut self, now: Instant) -> usize {
        let before = self.counters.tx_frames;
        let Engine {
            nic,
            queue,
            pool,
            host,
            tcp,
            tx,
            txq,
            tx_backlog,
            local,
            local_free,
            counters,
            capture,
            ..
        } = self;
        let me = host.addr();
        let mut out = Out { nic, queue: *queue, pool, tx, txq, cap: *tx_backlog, capture };
        tcp.poll_transmit(now, &mut |src, dst, seg| {
            counters.tcp_tx_segments += 1;
            if dst == me || dst.is_loopback() {
                let mut bytes = local_free.pop().unwrap_or_default();
                bytes.clear();
                bytes.resize(seg.buffer_len(), 0);
                seg.emit(
                    &mut TcpPacket::new_unchecked(&mut bytes[..]),
                    src,
                    dst,
                    Checksum::Offloaded,
                );
                local.push_back(LocalSeg { src, dst, bytes });
                return;
            }
            let r = host.send_ipv4(now, dst, IpProtocol::Tcp, seg.buffer_len(), |b| {
                seg.emit(&mut TcpPacket::new_unchecked(b), src, dst, Checksum::Software)
            });
            if let Err(e) = r {
                counters.tcp_tx_dropped += 1;
                if !matches!(e, SendError::NoBufs) {
                    tracing::debug!(%dst, error = ?e, "TCP segment not sent");
                }
            }
            if host.tx_free() < HOST_LOW_WATER {
                out.drain_host(host, counters, now);
            }
        });
        out.drain_host(host, counters, now);
        out.flush(counters);
        (self.counters.tx_frames - before) as usize
    }

    /// Sends whatever is queued (host frames, backlog) without receiving; for shutdown paths.
    pub fn flush(&mut self, now: Instant) {
        self.now = now;
        self.transmit(now);
    }
}

/// Parses and delivers one TCP segment to the stack.
fn deliver_tcp(
    tcp: &mut TcpStack,
    counters: &mut EngineCounters,
    now: Instant,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: &[u8],
    csum: Checksum,
) {
    let pkt = TcpPacket::new_unchecked(payload);
    match TcpRepr::parse(&pkt, src, dst, csum) {
        Ok(repr) => {
            counters.tcp_rx_segments += 1;
            tcp.handle_segment(now, src, dst, &repr);
        }
        Err(WireError::BadChecksum) => counters.tcp_bad_checksum += 1,
        Err(_) => counters.tcp_malformed += 1,
    }
}

/// Whether an Ethernet/IPv4 frame is a fragment (MF set or a non-zero offset).
fn is_fragment(frame: &[u8]) -> bool {
    frame.len() >= 34
        && frame[12..14] == [0x08, 0x00]
        && u16::from_be_bytes([frame[20], frame[21]]) & 0x3fff != 0
}

/// The transmit side, borrowed apart from the host and the stack.
struct Out<'a> {
    nic: &'a mut Box<dyn Nic>,
    queue: QueueId,
    pool: &'a Pool,
    tx: &'a mut Batch,
    txq: &'a mut VecDeque<PacketBuf>,
    cap: usize,
    capture: &'a mut Option<CaptureHook>,
}

impl Out<'_> {
    /// Moves the host's queued frames into pool buffers on the backlog, then to the NIC.
    fn drain_host(&mut self, host: &mut Host, counters: &mut EngineCounters, now: Instant) {
        let Out { pool, txq, cap, capture, .. } = self;
        host.poll_transmit(now, &mut |frame| {
            if txq.len() >= *cap {
                counters.tx_backlog_drops += 1;
                return;
            }
            let Some(b) = pool.alloc_copy(frame) else {
                counters.tx_no_buf += 1;
                return;
            };
            if let Some(h) = capture.as_mut() {
                h(Direction::Tx, now, frame);
            }
            txq.push_back(b);
        });
        self.flush(counters);
    }

    /// Pushes the backlog to the NIC until it is empty or the NIC stops taking frames.
    fn flush(&mut self, counters: &mut EngineCounters) {
        while !self.txq.is_empty() {
            while self.tx.remaining() > 0 {
                let Some(b) = self.txq.pop_front() else { break };
                let _ = self.tx.push(b);
            }
            let r: Result<usize, NicError> = self.nic.tx_burst(self.queue, self.tx);
            let sent = match r {
                Ok(n) => n,
                Err(e) => {
                    counters.nic_errors += 1;
                    tracing::debug!(error = %e, "tx_burst failed");
                    0
                }
            };
            counters.tx_frames += sent as u64;
            // What the NIC did not take goes back to the front, in order.
            while let Some(b) = self.tx.pop() {
                self.txq.push_front(b);
            }
            if sent == 0 {
                break;
            }
        }
    }
}

impl fmt::Display for EngineCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "engine: rx_frames={} tx_frames={} tcp_rx={} tcp_tx={} tcp_bad_csum={} \
             tcp_malformed={} tcp_looped={} tcp_tx_dropped={} udp_rx={} icmp_err_tcp={} \
             tx_no_buf={} tx_backlog_drops={} nic_errors={} stuck_deadlines={} busy_polls={} \
             sleeps={}",
            self.rx_frames,
            self.tx_frames,
            self.tcp_rx_segments,
            self.tcp_tx_segments,
            self.tcp_bad_checksum,
            self.tcp_malformed,
            self.tcp_looped,
            self.tcp_tx_dropped,
            self.udp_rx,
            self.icmp_errors_for_tcp,
            self.tx_no_buf,
            self.tx_backlog_drops,
            self.nic_errors,
            self.stuck_deadlines,
            self.busy_polls,
            self.sleeps
        )
    }
}

/// A multi-line report of every counter (engine, host, NIC), as printed on SIGUSR1 and exit.
pub fn report(engine: &Engine) -> String {
    let h = engine.host_counters();
    let n = engine.nic_counters();
    format!(
        "{}\nhost: {:?}\nnic: rx_packets={} rx_bytes={} rx_drops={} rx_errors={} tx_packets={} \
         tx_bytes={} tx_drops={} tx_errors={}",
        engine.counters(),
        h,
        n.rx_packets,
        n.rx_bytes,
        n.rx_drops,
        n.rx_errors,
        n.tx_packets,
        n.tx_bytes,
        n.tx_drops,
        n.tx_errors
    )
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
