//! Recursive-descent parser from tokens to a [`Script`].
//!
//! Grammar (after google/packetdrill's documented syntax; written from the documentation):
//!
//! ```text
//! script   := (header_option | event | NEWLINE)*
//! event    := time (command | code | packet | syscall) NEWLINE
//! time     := '*' | ['+'] NUM [('~' | '...') ['+'] NUM]
//! packet   := ('<' | '>') ['[' ... ']'] FLAGS (NUM ':' NUM '(' NUM ')' | '...' '(' NUM ')')
//!             ('ack' NUM | 'win' NUM | 'urg' NUM)* ['<' option (',' option)* '>']
//! syscall  := IDENT '(' [expr (',' expr)*] ')' '=' expr [IDENT] ['(' note ')']
//! expr     := primary ('|' primary)*
//! primary  := '...' | ['-'] NUM | IDENT ['(' args ')'] | STRING | '[' args ']' | '{' fields '}'
//! ```

use joyride_ip::tcp::TcpFlags;

use super::ast::*;
use super::lexer::{Lexer, Spanned, Token};
use super::ParseError;

/// Parses a whole script; `#ifdef NAME` blocks are kept when `NAME` is in `defines`.
pub fn parse(src: &str, defines: &[&str]) -> Result<Script, ParseError> {
    let mut p = Parser { lx: Lexer::new(src, defines) };
    p.script()
}

struct Parser<'a> {
    lx: Lexer<'a>,
}

/// Parses a decimal seconds literal (`1`, `0.25`) into microseconds.
fn seconds_to_usecs(text: &str) -> Option<i64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let int: i64 = int.parse().ok()?;
    let mut usecs = int.checked_mul(1_000_000)?;
    let mut scale = 100_000;
    for d in frac.bytes() {
        usecs += i64::from(d - b'0') * scale;
        scale /= 10;
    }
    Some(usecs)
}

/// Parses an integer literal (decimal or `0x` hex).
fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else {
        text.parse().ok()
    }
}

impl Parser<'_> {
    fn err<T>(&self, line: usize, msg: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { line, msg: msg.into() })
    }

    fn next(&mut self) -> Result<Spanned, ParseError> {
        self.lx.next_token()
    }

    /// The next token, skipping newlines (inside brackets).
    fn next_nl(&mut self) -> Result<Spanned, ParseError> {
        loop {
            let t = self.next()?;
            if t.token != Token::Newline {
                return Ok(t);
            }
        }
    }

    fn peek_nl(&mut self) -> Result<Token, ParseError> {
        while *self.lx.peek()? == Token::Newline {
            self.next()?;
        }
        Ok(self.lx.peek()?.clone())
    }

    fn expect_punct(&mut self, c: char) -> Result<(), ParseError> {
        let t = self.next_nl()?;
        if t.token.is(c) {
            Ok(())
        } else {
            self.err(t.line, format!("expected `{c}`, found {:?}", t.token))
        }
    }

    fn number(&mut self) -> Result<(String, usize), ParseError> {
        let t = self.next_nl()?;
        match t.token {
            Token::Number(n) => Ok((n, t.line)),
            other => self.err(t.line, format!("expected a number, found {other:?}")),
        }
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        let (n, line) = self.number()?;
        match parse_int(&n).and_then(|v| u32::try_from(v).ok()) {
            Some(v) => Ok(v),
            None => self.err(line, format!("`{n}` is not a 32-bit unsigned integer")),
        }
    }

    fn script(&mut self) -> Result<Script, ParseError> {
        let mut script = Script { options: Vec::new(), events: Vec::new() };
        loop {
            let t = self.next()?;
            match t.token {
                Token::Eof => return Ok(script),
                Token::Newline => {}
                Token::HeaderOption(text) => {
                    let (name, value) = match text.split_once('=') {
                        Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
                        None => (text.trim().to_string(), None),
                    };
                    script.options.push((name, value));
                }
                _ => {
                    let time = self.time(t)?;
                    let line = self.lx.line();
                    let kind = self.event_body()?;
                    let end = self.next()?;
                    if !matches!(end.token, Token::Newline | Token::Eof) {
                        return self
                            .err(end.line, format!("unexpected {:?} after event", end.token));
                    }
                    script.events.push(Event { line, time, kind });
                    if end.token == Token::Eof {
                        return Ok(script);
                    }
                }
            }
        }
    }

    /// A time spec, whose first token has been read.
    fn time(&mut self, first: Spanned) -> Result<TimeSpec, ParseError> {
        if first.token.is('*') {
            return Ok(TimeSpec::Any);
        }
        let (relative, num) = match first.token {
            Token::Punct('+') => (true, self.number()?.0),
            Token::Number(n) => (false, n),
            other => return self.err(first.line, format!("expected a time, found {other:?}")),
        };
        let Some(usecs) = seconds_to_usecs(&num) else {
            return self.err(first.line, format!("bad time `{num}`"));
        };
        let blocking = match self.lx.peek()? {
            Token::Punct('~') => false,
            Token::Ellipsis => true,
            _ => return Ok(TimeSpec::At { relative, usecs, end: None }),
        };
        self.next()?;
        let mut end_relative = false;
        if self.lx.peek()?.is('+') {
            self.next()?;
            end_relative = true;
        }
        let (num, line) = self.number()?;
        let Some(end_usecs) = seconds_to_usecs(&num) else {
            return self.err(line, format!("bad time `{num}`"));
        };
        let end = TimeEnd { relative: end_relative, usecs: end_usecs, blocking };
        Ok(TimeSpec::At { relative, usecs, end: Some(end) })
    }

    fn event_body(&mut self) -> Result<EventKind, ParseError> {
        let t = self.next()?;
        match t.token {
            Token::Command(c) => Ok(EventKind::Command(c)),
            Token::Code(c) => Ok(EventKind::Code(c)),
            Token::Punct('<') => Ok(EventKind::Packet(self.packet(Direction::Inbound)?)),
            Token::Punct('>') => Ok(EventKind::Packet(self.packet(Direction::Outbound)?)),
            Token::Ident(name) => Ok(EventKind::Syscall(self.syscall(name, t.line)?)),
            other => self.err(t.line, format!("expected an event, found {other:?}")),
        }
    }

    fn packet(&mut self, direction: Direction) -> Result<PacketSpec, ParseError> {
        let line = self.lx.line();
        // Optional `[...]` annotations (e.g. ECN codepoints): accepted and ignored.
        if self.lx.peek()?.is('[') {
            loop {
                let t = self.next()?;
                if t.token.is(']') {
                    break;
                }
                if matches!(t.token, Token::Newline | Token::Eof) {
                    return self.err(t.line, "unterminated `[`");
                }
            }
        }
        let mut flags = TcpFlags::empty();
        if let Token::Ident(word) = self.lx.peek()?.clone() {
            for ch in word.chars() {
                flags |= match ch {
                    'S' => TcpFlags::SYN,
                    'F' => TcpFlags::FIN,
                    'R' => TcpFlags::RST,
                    'P' => TcpFlags::PSH,
                    'U' => TcpFlags::URG,
                    'E' => TcpFlags::ECE,
                    'W' => TcpFlags::CWR,
                    _ => return self.err(line, format!("unknown TCP flag `{ch}` in `{word}`")),
                };
            }
            self.next()?;
        }
        if self.lx.peek()?.is('.') {
            self.next()?;
            flags |= TcpFlags::ACK;
        }
        if flags.is_empty() {
            return self.err(line, "expected TCP flags (`S`, `.`, `F.`, ...)");
        }
        let (seq, any_len) = if *self.lx.peek()? == Token::Ellipsis {
            self.next()?;
            self.expect_punct('(')?;
            let len = self.u32()?;
            self.expect_punct(')')?;
            (None, len)
        } else {
            let start = self.u32()?;
            self.expect_punct(':')?;
            let end = self.u32()?;
            self.expect_punct('(')?;
            let len = self.u32()?;
            self.expect_punct(')')?;
            if end.wrapping_sub(start) != len {
                return self.err(line, format!("{start}:{end}({len}): length does not match"));
            }
            (Some(SeqSpec { start, end, len }), 0)
        };
        let mut spec = PacketSpec {
            direction,
            flags,
            seq,
            any_len,
            ack: None,
            win: None,
            urg: None,
            options: None,
        };
        loop {
            match self.lx.peek()?.clone() {
                Token::Ident(w) if w == "ack" => {
                    self.next()?;
                    spec.ack = Some(self.u32()?);
                }
                Token::Ident(w) if w == "win" => {
                    self.next()?;
                    spec.win = Some(self.u32()?);
                }
                Token::Ident(w) if w == "urg" => {
                    self.next()?;
                    spec.urg = Some(self.u32()?);
                }
                Token::Punct('<') => {
                    self.next()?;
                    spec.options = Some(self.tcp_options()?);
                }
                _ => return Ok(spec),
            }
        }
    }

    fn tcp_options(&mut self) -> Result<Vec<TcpOptionSpec>, ParseError> {
        let mut out = Vec::new();
        if self.peek_nl()?.is('>') {
            self.next()?;
            return Ok(out);
        }
        loop {
            let t = self.next_nl()?;
            let Token::Ident(name) = t.token else {
                return self.err(t.line, format!("expected a TCP option, found {:?}", t.token));
            };
            let opt = match name.as_str() {
                "eol" => TcpOptionSpec::Eol,
                "nop" => TcpOptionSpec::Nop,
                "sackOK" => TcpOptionSpec::SackPermitted,
                "mss" => {
                    let v = self.u32()?;
                    match u16::try_from(v) {
                        Ok(v) => TcpOptionSpec::Mss(v),
                        Err(_) => return self.err(t.line, "mss out of range"),
                    }
                }
                "wscale" => {
                    let v = self.u32()?;
                    match u8::try_from(v) {
                        Ok(v) => TcpOptionSpec::WindowScale(v),
                        Err(_) => return self.err(t.line, "wscale out of range"),
                    }
                }
                "sack" => {
                    let mut blocks = Vec::new();
                    while matches!(self.peek_nl()?, Token::Number(_)) {
                        let l = self.u32()?;
                        self.expect_punct(':')?;
                        let r = self.u32()?;
                        blocks.push((l, r));
                    }
                    TcpOptionSpec::Sack(blocks)
                }
                "TS" => {
                    let mut val = None;
                    let mut ecr = None;
                    for _ in 0..2 {
                        match self.peek_nl()? {
                            Token::Ident(w) if w == "val" => {
                                self.next()?;
                                val = Some(self.u32()?);
                            }
                            Token::Ident(w) if w == "ecr" => {
                                self.next()?;
                                ecr = Some(self.u32()?);
                            }
                            _ => break,
                        }
                    }
                    match (val, ecr) {
                        (Some(val), Some(ecr)) => TcpOptionSpec::Timestamp { val, ecr },
                        _ => return self.err(t.line, "TS needs `val N ecr N`"),
                    }
                }
                _ => {
                    let mut args = Vec::new();
                    while let Token::Number(n) = self.peek_nl()? {
                        self.next()?;
                        match parse_int(&n).and_then(|v| u64::try_from(v).ok()) {
                            Some(v) => args.push(v),
                            None => return self.err(t.line, format!("bad number `{n}`")),
                        }
                    }
                    TcpOptionSpec::Other(name, args)
                }
            };
            out.push(opt);
            let t = self.next_nl()?;
            match t.token {
                Token::Punct(',') => {}
                Token::Punct('>') => return Ok(out),
                other => return self.err(t.line, format!("expected `,` or `>`, found {other:?}")),
            }
        }
    }

    fn syscall(&mut self, name: String, line: usize) -> Result<Syscall, ParseError> {
        self.expect_punct('(')?;
        let args = self.exprs(')')?;
        let t = self.next()?;
        if !t.token.is('=') {
            return self.err(line, format!("expected `= result` after {name}(...)"));
        }
        let result = self.expr()?;
        let mut errno = None;
        if let Token::Ident(e) = self.lx.peek()?.clone() {
            self.next()?;
            errno = Some(e);
        }
        let mut note = None;
        if self.lx.peek()?.is('(') {
            self.next()?;
            note = Some(self.lx.raw_until_rparen()?);
        }
        Ok(Syscall { name, args, result, errno, note })
    }

    /// Comma-separated expressions up to (and consuming) `close`.
    fn exprs(&mut self, close: char) -> Result<Vec<Expr>, ParseError> {
        let mut out = Vec::new();
        if self.peek_nl()?.is(close) {
            self.next()?;
            return Ok(out);
        }
        loop {
            out.push(self.expr()?);
            let t = self.next_nl()?;
            match t.token {
                Token::Punct(',') => {}
                Token::Punct(c) if c == close => return Ok(out),
                other => {
                    return self.err(t.line, format!("expected `,` or `{close}`, found {other:?}"))
                }
            }
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let first = self.primary()?;
        if !self.lx.peek()?.is('|') {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.lx.peek()?.is('|') {
            self.next()?;
            terms.push(self.primary()?);
        }
        Ok(Expr::Or(terms))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.next_nl()?;
        match t.token {
            Token::Ellipsis => Ok(Expr::Ellipsis),
            Token::Number(n) => match parse_int(&n) {
                Some(v) => Ok(Expr::Int(v)),
                None => self.err(t.line, format!("bad integer `{n}`")),
            },
            Token::Punct('-') => {
                let (n, line) = self.number()?;
                match parse_int(&n) {
                    Some(v) => Ok(Expr::Int(-v)),
                    None => self.err(line, format!("bad integer `-{n}`")),
                }
            }
            Token::Str(s) => Ok(Expr::Str(s)),
            Token::Ident(name) => {
                if self.lx.peek()?.is('(') {
                    self.next()?;
                    let args = self.exprs(')')?;
                    Ok(Expr::Call(name, args))
                } else {
                    Ok(Expr::Symbol(name))
                }
            }
            Token::Punct('[') => Ok(Expr::List(self.exprs(']')?)),
            Token::Punct('{') => {
                let mut fields = Vec::new();
                if self.peek_nl()?.is('}') {
                    self.next()?;
                    return Ok(Expr::Struct(fields));
                }
                loop {
                    let value = self.expr()?;
                    let field = match (&value, self.peek_nl()?.is('=')) {
                        (Expr::Symbol(name), true) => {
                            self.next()?;
                            (Some(name.clone()), self.expr()?)
                        }
                        _ => (None, value),
                    };
                    fields.push(field);
                    let t = self.next_nl()?;
                    match t.token {
                        Token::Punct(',') => {}
                        Token::Punct('}') => return Ok(Expr::Struct(fields)),
                        other => {
                            return self
                                .err(t.line, format!("expected `,` or `}}`, found {other:?}"))
                        }
                    }
                }
            }
            other => self.err(t.line, format!("expected an expression, found {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Event {
        let s = parse(src, &[]).unwrap();
        assert_eq!(s.events.len(), 1, "{s:?}");
        s.events.into_iter().next().unwrap()
    }

    #[test]
    fn header_and_times() {
        let s = parse("--ip_version=ipv4\n--tolerance_usecs=75000\n 0.00 `x`\n+0.25 `y`\n* `z`\n0.1~0.2 `w`\n+1...+2.5 `v`\n", &[])
            .unwrap();
        assert_eq!(s.option("tolerance_usecs"), Some("75000"));
        assert_eq!(s.option("ip_version"), Some("ipv4"));
        let times: Vec<TimeSpec> = s.events.iter().map(|e| e.time).collect();
        assert_eq!(times[0], TimeSpec::At { relative: false, usecs: 0, end: None });
        assert_eq!(times[1], TimeSpec::At { relative: true, usecs: 250_000, end: None });
        assert_eq!(times[2], TimeSpec::Any);
        let end = TimeEnd { relative: false, usecs: 200_000, blocking: false };
        assert_eq!(times[3], TimeSpec::At { relative: false, usecs: 100_000, end: Some(end) });
        let end = TimeEnd { relative: true, usecs: 2_500_000, blocking: true };
        assert_eq!(times[4], TimeSpec::At { relative: true, usecs: 1_000_000, end: Some(end) });
        assert_eq!(s.events[4].line, 7);
    }

    #[test]
    fn syscalls_with_results_errno_and_notes() {
        let e = one("+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n");
        let EventKind::Syscall(c) = e.kind else { panic!() };
        assert_eq!(c.name, "connect");
        assert_eq!(c.args, vec![Expr::Int(3), Expr::Ellipsis, Expr::Ellipsis]);
        assert_eq!(c.result, Expr::Int(-1));
        assert_eq!(c.errno.as_deref(), Some("EINPROGRESS"));
        assert_eq!(c.note.as_deref(), Some("Operation now in progress"));

        let e = one("0 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0x02 (flags O_RDWR)");
        let EventKind::Syscall(c) = e.kind else { panic!() };
        assert_eq!(
            c.args[2],
            Expr::Or(vec![Expr::Symbol("O_RDWR".into()), Expr::Symbol("O_NONBLOCK".into())])
        );
        assert_eq!(c.result, Expr::Int(2));
        assert_eq!(c.errno, None);

        let e = one("0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, [8],\n  {1, htons(80)}, \"s\") = 0\n");
        let EventKind::Syscall(c) = e.kind else { panic!() };
        assert_eq!(
            c.args[3],
            Expr::Struct(vec![
                (Some("onoff".into()), Expr::Int(1)),
                (Some("linger".into()), Expr::Int(0))
            ])
        );
        assert_eq!(c.args[4], Expr::List(vec![Expr::Int(8)]));
        assert_eq!(
            c.args[5],
            Expr::Struct(vec![
                (None, Expr::Int(1)),
                (None, Expr::Call("htons".into(), vec![Expr::Int(80)]))
            ])
        );
        assert_eq!(c.args[6], Expr::Str("s".into()));
    }

    #[test]
    fn packets_with_options() {
        let e = one("+0.00 > S  0:0(0) win 65535 <mss 1460,nop,wscale 6,sackOK,TS val 100 ecr 0,sack 1:2 3:4,eol> // c\n");
        let EventKind::Packet(p) = e.kind else { panic!() };
        assert_eq!(p.direction, Direction::Outbound);
        assert_eq!(p.flags, TcpFlags::SYN);
        assert_eq!(p.seq, Some(SeqSpec { start: 0, end: 0, len: 0 }));
        assert_eq!(p.win, Some(65535));
        assert_eq!(p.ack, None);
        use TcpOptionSpec::*;
        assert_eq!(
            p.options.unwrap(),
            vec![
                Mss(1460),
                Nop,
                WindowScale(6),
                SackPermitted,
                Timestamp { val: 100, ecr: 0 },
                Sack(vec![(1, 2), (3, 4)]),
                Eol
            ]
        );
        let e = one("+0 < F. 1:101(100) ack 2 win 32767");
        let EventKind::Packet(p) = e.kind else { panic!() };
        assert_eq!(p.direction, Direction::Inbound);
        assert_eq!(p.flags, TcpFlags::FIN | TcpFlags::ACK);
        assert_eq!(p.payload_len(), 100);
        assert_eq!(p.ack, Some(2));
        assert_eq!(p.options, None);
        let e = one("+0 > S. ...(0) ack 65537 win 65535 <mss 1460>");
        let EventKind::Packet(p) = e.kind else { panic!() };
        assert_eq!(p.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(p.seq, None);
        let e = one("+0 < SF 1:1(0) win 1");
        let EventKind::Packet(p) = e.kind else { panic!() };
        assert_eq!(p.flags, TcpFlags::SYN | TcpFlags::FIN);
        let e = one("+0 > R 34:34(0) win 0");
        let EventKind::Packet(p) = e.kind else { panic!() };
        assert_eq!(p.flags, TcpFlags::RST);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let err = parse("0 `a`\n+0 < X 1:1(0)\n", &[]).unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse("\n\n0 < . 1:5(3) ack 1\n", &[]).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.msg.contains("length"));
        assert!(parse("0 close(3) = 0 junk junk\n", &[]).is_err());
        assert!(parse("0 close(3\n", &[]).is_err());
        assert!(parse("0 > . 1:1(0) <mss>\n", &[]).is_err());
    }
}
