//! The syntax tree of a packetdrill-format script.

use joyride_ip::tcp::TcpFlags;

/// A whole script: header options and events in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    /// `--name=value` header lines (`value` is `None` for a bare `--name`).
    pub options: Vec<(String, Option<String>)>,
    /// The events, in file order.
    pub events: Vec<Event>,
}

impl Script {
    /// The value of header option `--name=value`, if given.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }
}

/// One line of the script: when, and what.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// 1-based line where the event starts.
    pub line: usize,
    /// When it happens.
    pub time: TimeSpec,
    /// What happens.
    pub kind: EventKind,
}

/// A point (or window) in script time, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    /// `*`: any time (only meaningful for outbound packets).
    Any,
    /// `0.1`, `+0.1`, `0.1~0.2`, `+0.1~+0.2`, `0.1...0.2` (a blocking call that starts at the
    /// first and returns at the second).
    At {
        /// `+`: relative to the previous event.
        relative: bool,
        /// The (start) time in microseconds.
        usecs: i64,
        /// The end of a window, if one is given.
        end: Option<TimeEnd>,
    },
}

/// The end of a time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEnd {
    /// `+` before the end time: relative to the previous event, like the start.
    pub relative: bool,
    /// The end, in microseconds.
    pub usecs: i64,
    /// `...` (a blocking system call's return) rather than `~` (a tolerance window).
    pub blocking: bool,
}

/// What an event does.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// A system call and its expected result.
    Syscall(Syscall),
    /// A TCP segment injected (`<`) or expected (`>`).
    Packet(PacketSpec),
    /// A backquoted shell command.
    Command(String),
    /// A `%{ ... }%` code block (Python in packetdrill), as text.
    Code(String),
}

/// `name(args) = result [ERRNO] [(note)]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Syscall {
    /// The call's name (`socket`, `recv`, ...).
    pub name: String,
    /// Its arguments.
    pub args: Vec<Expr>,
    /// The expected return value (usually an integer, `-1` on error).
    pub result: Expr,
    /// The expected errno name when the call fails (`EINPROGRESS`).
    pub errno: Option<String>,
    /// The free text in parentheses after the result, if any.
    pub note: Option<String>,
}

/// An argument or result expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `...`: anything / don't care.
    Ellipsis,
    /// An integer (`1024`, `-1`, `0x02`).
    Int(i64),
    /// A symbolic constant (`SOCK_STREAM`, `ECONNRESET`).
    Symbol(String),
    /// A quoted string.
    Str(String),
    /// `A | B | C`.
    Or(Vec<Expr>),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{a=1, b=2}` or `{1, 2}`: fields with optional names.
    Struct(Vec<(Option<String>, Expr)>),
    /// `name(args)`, e.g. `htons(8080)`.
    Call(String, Vec<Expr>),
}

impl Expr {
    /// The integer value, if this is an integer literal.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Expr::Int(v) => Some(*v),
            _ => None,
        }
    }
}

/// Direction of a packet line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `<`: the script injects it into the stack.
    Inbound,
    /// `>`: the stack must send it.
    Outbound,
}

/// `start:end(len)`: relative sequence numbers of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqSpec {
    /// First sequence number.
    pub start: u32,
    /// One past the last data byte.
    pub end: u32,
    /// Payload length.
    pub len: u32,
}

/// A TCP segment as the script writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct PacketSpec {
    /// `<` or `>`.
    pub direction: Direction,
    /// Control bits (`.` is ACK).
    pub flags: TcpFlags,
    /// Sequence numbers; `None` for `...(len)` (not checked), with the length in `any_len`.
    pub seq: Option<SeqSpec>,
    /// Payload length when `seq` is `...`.
    pub any_len: u32,
    /// `ack N`.
    pub ack: Option<u32>,
    /// `win N`.
    pub win: Option<u32>,
    /// `urg N`.
    pub urg: Option<u32>,
    /// `<...>` options in order, `None` when no option list is written.
    pub options: Option<Vec<TcpOptionSpec>>,
}

impl PacketSpec {
    /// Payload length of the segment.
    pub fn payload_len(&self) -> u32 {
        self.seq.map_or(self.any_len, |s| s.len)
    }
}

/// One TCP option in a `<...>` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOptionSpec {
    /// `eol`.
    Eol,
    /// `nop`.
    Nop,
    /// `mss N`.
    Mss(u16),
    /// `wscale N`.
    WindowScale(u8),
    /// `sackOK`.
    SackPermitted,
    /// `sack a:b c:d ...` (relative sequence numbers).
    Sack(Vec<(u32, u32)>),
    /// `TS val A ecr B`.
    Timestamp {
        /// TSval.
        val: u32,
        /// TSecr.
        ecr: u32,
    },
    /// Any other option word, kept by name (e.g. `md5`, `FO`), with its numeric arguments.
    Other(String, Vec<u64>),
}
