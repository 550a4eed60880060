//! Tokens of the packetdrill script language, with comments and `#ifdef` blocks removed.
//!
//! Newlines are tokens: an event ends at the end of its line (the parser skips newlines inside
//! brackets). `//` and `/* */` comments are dropped; `` `...` `` is one [`Token::Command`];
//! `--name=value` at the start of a line is one [`Token::HeaderOption`]; `#ifdef NAME`,
//! `#ifndef NAME`, `#else` and `#endif` lines select text by the defines the caller passes.

use super::ParseError;

/// One token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// End of a line.
    Newline,
    /// End of input.
    Eof,
    /// A number as written: decimal (`12`, `0.25`) or hex (`0x02`).
    Number(String),
    /// A word: letters, digits, `_`, starting with a letter or `_`.
    Ident(String),
    /// A double-quoted string, without the quotes.
    Str(String),
    /// The text between backquotes.
    Command(String),
    /// The text of a `%{ ... }%` code block (packetdrill runs these as Python).
    Code(String),
    /// `--name=value` at line start, without the dashes.
    HeaderOption(String),
    /// `...`
    Ellipsis,
    /// A single-character punctuation mark: `+ - * ~ . , : = | ( ) [ ] { } < >`.
    Punct(char),
}

impl Token {
    /// Whether this is punctuation `c`.
    pub fn is(&self, c: char) -> bool {
        matches!(self, Token::Punct(p) if *p == c)
    }
}

/// A token and the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned {
    /// The token.
    pub token: Token,
    /// 1-based line.
    pub line: usize,
}

/// The lexer: produces tokens on demand, one token of lookahead.
#[derive(Debug)]
pub struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    at_line_start: bool,
    defines: Vec<String>,
    /// One entry per open `#if...`: whether its text is taken.
    cond: Vec<bool>,
    peeked: Option<Spanned>,
}

impl<'a> Lexer<'a> {
    /// A lexer over `src`; `#ifdef NAME` blocks are kept when `NAME` is in `defines`.
    pub fn new(src: &'a str, defines: &[&str]) -> Self {
        Lexer {
            src: src.as_bytes(),
            pos: 0,
            line: 1,
            at_line_start: true,
            defines: defines.iter().map(|s| s.to_string()).collect(),
            cond: Vec::new(),
            peeked: None,
        }
    }

    /// The current line (of the next unread character).
    pub fn line(&self) -> usize {
        self.peeked.as_ref().map_or(self.line, |s| s.line)
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError { line: self.line, msg: msg.into() }
    }

    fn cur(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn at(&self, off: usize) -> Option<u8> {
        self.src.get(self.pos + off).copied()
    }

    fn active(&self) -> bool {
        self.cond.iter().all(|&c| c)
    }

    /// The rest of the current line (not including the newline); consumes it.
    fn rest_of_line(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.cur() {
            if c == b'\n' {
                break;
            }
            self.pos += 1;
        }
        let src: &'a [u8] = self.src;
        std::str::from_utf8(&src[start..self.pos]).unwrap_or("")
    }

    /// Handles a `#` directive line (cursor on `#`).
    fn directive(&mut self) -> Result<(), ParseError> {
        let text = self.rest_of_line().trim();
        let mut words = text[1..].split_whitespace();
        let word = words.next().unwrap_or("");
        let arg = words.next();
        match (word, arg) {
            ("ifdef", Some(name)) => {
                let on = self.defines.iter().any(|d| d == name);
                self.cond.push(on);
            }
            ("ifndef", Some(name)) => {
                let on = !self.defines.iter().any(|d| d == name);
                self.cond.push(on);
            }
            ("else", _) => match self.cond.last_mut() {
                Some(c) => *c = !*c,
                None => return Err(self.err("#else without #ifdef")),
            },
            ("endif", _) => {
                if self.cond.pop().is_none() {
                    return Err(self.err("#endif without #ifdef"));
                }
            }
            _ => return Err(self.err(format!("unknown directive `{text}`"))),
        }
        Ok(())
    }

    /// Skips blanks, comments and inactive lines; stops at a newline or a token start.
    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match self.cur() {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'#') if self.at_line_start => self.directive()?,
                Some(b'/') if self.at(1) == Some(b'/') => {
                    self.rest_of_line();
                }
                Some(b'/') if self.at(1) == Some(b'*') => {
                    let start_line = self.line;
                    self.pos += 2;
                    loop {
                        match self.cur() {
                            None => {
                                return Err(ParseError {
                                    line: start_line,
                                    msg: "unterminated /* comment".into(),
                                })
                            }
                            Some(b'*') if self.at(1) == Some(b'/') => {
                                self.pos += 2;
                                break;
                            }
                            Some(b'\n') => {
                                self.line += 1;
                                self.pos += 1;
                            }
                            Some(_) => self.pos += 1,
                        }
                    }
                }
                Some(b'\n') if !self.active() => {
                    self.pos += 1;
                    self.line += 1;
                    self.at_line_start = true;
                }
                Some(_) if !self.active() => {
                    // Inside a false #ifdef: drop the line, but a directive still counts.
                    if self.at_line_start {
                        let save = self.pos;
                        while matches!(self.cur(), Some(b' ' | b'\t')) {
                            self.pos += 1;
                        }
                        if self.cur() == Some(b'#') {
                            continue;
                        }
                        self.pos = save;
                    }
                    self.rest_of_line();
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token without consuming it.
    pub fn peek(&mut self) -> Result<&Token, ParseError> {
        if self.peeked.is_none() {
            let t = self.lex()?;
            self.peeked = Some(t);
        }
        Ok(self.peeked.as_ref().map(|s| &s.token).unwrap_or(&Token::Eof))
    }

    /// The next token.
    pub fn next_token(&mut self) -> Result<Spanned, ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    /// After a `(` has been consumed: the raw text up to the matching `)`, which is consumed.
    /// Used for the free-text note after a system call's result.
    pub fn raw_until_rparen(&mut self) -> Result<String, ParseError> {
        debug_assert!(self.peeked.is_none());
        let start = self.pos;
        let mut depth = 1;
        while let Some(c) = self.cur() {
            match c {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                        self.pos += 1;
                        return Ok(text);
                    }
                }
                b'\n' => return Err(self.err("unterminated `(` note")),
                _ => {}
            }
            self.pos += 1;
        }
        Err(self.err("unterminated `(` note"))
    }

    fn lex(&mut self) -> Result<Spanned, ParseError> {
        self.skip_trivia()?;
        let line = self.line;
        let line_start = self.at_line_start;
        self.at_line_start = false;
        let Some(c) = self.cur() else {
            if !self.cond.is_empty() {
                return Err(self.err("#ifdef without #endif"));
            }
            return Ok(Spanned { token: Token::Eof, line });
        };
        let token = match c {
            b'\n' => {
                self.pos += 1;
                self.line += 1;
                self.at_line_start = true;
                Token::Newline
            }
            b'-' if line_start && self.at(1) == Some(b'-') => {
                self.pos += 2;
                Token::HeaderOption(self.rest_of_line().trim().to_string())
            }
            b'`' => {
                self.pos += 1;
                let start = self.pos;
                loop {
                    match self.cur() {
                        None => return Err(ParseError { line, msg: "unterminated `".into() }),
                        Some(b'`') => break,
                        Some(b'\n') => self.line += 1,
                        Some(_) => {}
                    }
                    self.pos += 1;
                }
                let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                self.pos += 1;
                Token::Command(text)
            }
            b'%' if self.at(1) == Some(b'{') => {
                self.pos += 2;
                let start = self.pos;
                loop {
                    match self.cur() {
                        None => return Err(ParseError { line, msg: "unterminated %{".into() }),
                        Some(b'}') if self.at(1) == Some(b'%') => break,
                        Some(b'\n') => self.line += 1,
                        Some(_) => {}
                    }
                    self.pos += 1;
                }
                let text = String::from_utf8_lossy(&self.src[start..self.pos]).trim().to_string();
                self.pos += 2;
                Token::Code(text)
            }
            b'"' => {
                self.pos += 1;
                let mut s = Vec::new();
                loop {
                    match self.cur() {
                        None | Some(b'\n') => {
                            return Err(ParseError { line, msg: "unterminated string".into() })
                        }
                        Some(b'"') => break,
                        Some(b'\\') => {
                            self.pos += 1;
                            let e = self.cur().ok_or_else(|| self.err("unterminated string"))?;
                            s.push(match e {
                                b'n' => b'\n',
                                b't' => b'\t',
                                b'0' => 0,
                                other => other,
                            });
                        }
                        Some(ch) => s.push(ch),
                    }
                    self.pos += 1;
                }
                self.pos += 1;
                Token::Str(String::from_utf8_lossy(&s).into_owned())
            }
            b'.' if self.at(1) == Some(b'.') && self.at(2) == Some(b'.') => {
                self.pos += 3;
                Token::Ellipsis
            }
            b'0'..=b'9' => {
                let start = self.pos;
                if c == b'0' && matches!(self.at(1), Some(b'x' | b'X')) {
                    self.pos += 2;
                    while self.cur().is_some_and(|c| c.is_ascii_hexdigit()) {
                        self.pos += 1;
                    }
                } else {
                    while self.cur().is_some_and(|c| c.is_ascii_digit()) {
                        self.pos += 1;
                    }
                    if self.cur() == Some(b'.') && self.at(1).is_some_and(|c| c.is_ascii_digit()) {
                        self.pos += 1;
                        while self.cur().is_some_and(|c| c.is_ascii_digit()) {
                            self.pos += 1;
                        }
                    }
                }
                Token::Number(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while self.cur().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    self.pos += 1;
                }
                Token::Ident(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
            }
            b'+' | b'-' | b'*' | b'~' | b'.' | b',' | b':' | b'=' | b'|' | b'(' | b')' | b'['
            | b']' | b'{' | b'}' | b'<' | b'>' | b'/' | b'!' | b'&' => {
                self.pos += 1;
                Token::Punct(c as char)
            }
            other => {
                return Err(ParseError {
                    line,
                    msg: format!("unexpected character {:?}", other as char),
                })
            }
        };
        Ok(Spanned { token, line })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &str, defines: &[&str]) -> Vec<Token> {
        let mut l = Lexer::new(src, defines);
        let mut out = Vec::new();
        loop {
            let t = l.next_token().unwrap().token;
            if t == Token::Eof {
                return out;
            }
            out.push(t);
        }
    }

    #[test]
    fn tokens_comments_and_commands() {
        let toks = all(
            "--tolerance_usecs=100\n+0.10 F. 1:2(1) /* x\n y */ `sysctl -w a=1` // c\n%{ a }%",
            &[],
        );
        use Token::*;
        assert_eq!(
            toks,
            vec![
                HeaderOption("tolerance_usecs=100".into()),
                Newline,
                Punct('+'),
                Number("0.10".into()),
                Ident("F".into()),
                Punct('.'),
                Number("1".into()),
                Punct(':'),
                Number("2".into()),
                Punct('('),
                Number("1".into()),
                Punct(')'),
                Command("sysctl -w a=1".into()),
                Newline,
                Code("a".into()),
            ]
        );
    }

    #[test]
    fn ifdef_selects_by_defines() {
        let src = "a\n#ifdef X\nb\n#ifndef Y\nc\n#endif\n#else\nd\n#endif\ne\n";
        let words = |d: &[&str]| -> Vec<String> {
            all(src, d)
                .into_iter()
                .filter_map(|t| if let Token::Ident(s) = t { Some(s) } else { None })
                .collect()
        };
        assert_eq!(words(&["X"]), ["a", "b", "c", "e"]);
        assert_eq!(words(&["X", "Y"]), ["a", "b", "e"]);
        assert_eq!(words(&[]), ["a", "d", "e"]);
        assert!(Lexer::new("#ifdef X\n", &[]).next_token().is_err());
        assert!(Lexer::new("#endif\n", &[]).next_token().is_err());
    }

    #[test]
    fn ellipsis_hex_and_notes() {
        let mut l = Lexer::new("...(0) 0x1F (Operation (now) in progress)\n", &[]);
        assert_eq!(l.next_token().unwrap().token, Token::Ellipsis);
        for _ in 0..3 {
            l.next_token().unwrap();
        }
        assert_eq!(l.next_token().unwrap().token, Token::Number("0x1F".into()));
        assert!(l.next_token().unwrap().token.is('('));
        assert_eq!(l.raw_until_rparen().unwrap(), "Operation (now) in progress");
        assert_eq!(l.next_token().unwrap().token, Token::Newline);
        assert_eq!(l.line(), 2);
    }
}
