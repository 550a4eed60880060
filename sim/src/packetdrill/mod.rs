//! A clean-room interpreter of packetdrill's script language (syntax as documented by
//! google/packetdrill), running scripts in virtual time against Joyride's TCP stack.
//!
//! - [`lexer`] and [`parser`] turn a script into an [`ast::Script`].
//! - [`run`] executes it against a [`joyride_tcp::TcpStack`] in virtual time (semantics and
//!   deliberate differences from packetdrill are listed there).

pub mod ast;
mod consts;
pub mod lexer;
pub mod parser;
pub mod run;
mod syscall;

use std::fmt;

pub use parser::parse;
pub use run::{run_script, run_source, Failure, Outcome, Profile, RunOptions};

/// A script that does not parse: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}
