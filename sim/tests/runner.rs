//! The conformance runner itself: passing scripts pass, and each kind of difference fails at
//! the right line with the right reason.

use joyride_sim::packetdrill::{run_source, Outcome, RunOptions};

const OPEN: &str = "--tolerance_usecs=10000
 0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0.00 bind(3, ..., ...) = 0
+0.00 listen(3, 1) = 0
+0.00 < S 0:0(0) win 65535 <mss 1460,sackOK,eol,eol>
";

fn run(src: &str) -> Outcome {
    run_source(src, &RunOptions::default())
}

fn fails_at(src: &str, line: usize, why: &str) {
    let o = run(src);
    let f = o.failure.unwrap_or_else(|| panic!("script passed, expected failure `{why}`"));
    assert_eq!(f.line, line, "{}", f.why);
    assert!(f.why.contains(why), "`{}` does not mention `{why}`", f.why);
}

#[test]
fn passive_open_passes() {
    let src = format!(
        "{OPEN}+0.00 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,eol,eol>
+0.01 < . 1:1(0) ack 1 win 65535
+0.00 accept(3, ..., ...) = 4
+0.00 fcntl(4, F_GETFL) = 0x02 (flags O_RDWR)
"
    );
    let o = run(&src);
    assert!(o.passed(), "{:?}", o.failure);
}

#[test]
fn wrong_window_fails_at_its_line() {
    fails_at(&format!("{OPEN}+0.00 > S. 0:0(0) ack 1 win 1234 <mss 1460,sackOK>\n"), 7, "window");
}

#[test]
fn wrong_options_fail() {
    fails_at(&format!("{OPEN}+0.00 > S. 0:0(0) ack 1 win 65535 <mss 1400,sackOK>\n"), 7, "MSS");
    fails_at(&format!("{OPEN}+0.00 > S. 0:0(0) ack 1 win 65535 <mss 1460>\n"), 7, "SACK-permitted");
}

#[test]
fn late_expectation_fails_on_timing() {
    fails_at(&format!("{OPEN}+0.50 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK>\n"), 7, "sent at");
}

#[test]
fn missing_packet_fails() {
    fails_at(
        &format!(
            "{OPEN}+0.00 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK>\n+0.01 > . 1:1(0) ack 1\n"
        ),
        8,
        "sent nothing",
    );
}

#[test]
fn unexpected_packets_fail_unless_lenient() {
    // A segment to a bound but not listening socket draws a RST no line expects.
    let src = " 0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 bind(3, ..., ...) = 0
+0.10 < . 17:20(3) ack 34 win 32767
";
    fails_at(src, 3, "unexpected packet");
    let lenient = RunOptions { lenient_end: true, ..RunOptions::default() };
    assert!(run_source(src, &lenient).passed());
    // ... and the RST is what RFC 9293 §3.10.7.1 says: <SEQ=SEG.ACK><CTL=RST>.
    let with_rst = format!("{src}+0.00 > R 34:34(0) win 0\n");
    let o = run(&with_rst);
    assert!(o.passed(), "{:?}", o.failure);
}

#[test]
fn syscall_results_and_errnos_are_compared() {
    fails_at(" 0.00 close(7) = 0\n", 1, "EBADF");
    assert!(run(" 0.00 close(7) = -1 EBADF (Bad file descriptor)\n").passed());
    fails_at(" 0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4\n", 1, "returned 3");
    fails_at(
        " 0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0\n",
        2,
        "SO_ERROR",
    );
}

#[test]
fn tunables_and_commands_are_reported() {
    let o = run(
        " 0.00 `sysctl -w net.inet.tcp.sack.enable=1`\n+0 `sysctl -w net.inet.tcp.no_such_knob=1`\n+0 `echo hi`\n",
    );
    assert!(o.passed());
    assert_eq!(o.notes.len(), 2, "{:?}", o.notes);
    assert!(o.notes[0].contains("no_such_knob"));
    assert!(o.notes[1].contains("echo"));
}

#[test]
fn parse_errors_fail_with_their_line() {
    fails_at(" 0.00 `a`\n+0 < Q 1:1(0)\n", 2, "parse error");
}
