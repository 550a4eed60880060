//! What both in-guest test binaries (virtio and igb) share: a shell runner, the pass/fail
//! suite that prints the `N passed, N failed` line `run.sh` reads, and the loop that drives an
//! [`Engine`] with built-in apps until a condition holds.

use std::process::Command;
use std::thread::JoinHandle;

use joyride_base::Duration;
use joyride_service::apps::{App, AppOutput};
use joyride_service::{Clock, Engine};

/// Runs `cmd` with `/bin/sh -c`; its stdout, or an error with its stderr.
pub fn sh(cmd: &str) -> Result<String, String> {
    let o =
        Command::new("/bin/sh").arg("-c").arg(cmd).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !o.status.success() {
        return Err(format!("`{cmd}` failed: {}", String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Named checks, each printed as `ok`/`FAIL` with its time, counted for [`Suite::finish`].
pub struct Suite {
    /// The clock every check measures with.
    pub clock: Clock,
    passed: u32,
    failed: u32,
}

impl Suite {
    /// An empty suite.
    pub fn new(clock: Clock) -> Self {
        Suite { clock, passed: 0, failed: 0 }
    }

    /// Runs one check; `Ok(note)` passes, `Err(why)` fails. Returns whether it passed.
    pub fn run(&mut self, name: &str, f: impl FnOnce(&Clock) -> Result<String, String>) -> bool {
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

    /// Prints `N passed, N failed` and exits (status 1 if anything failed).
    pub fn finish(&self) {
        println!("{} passed, {} failed", self.passed, self.failed);
        std::process::exit(if self.failed == 0 { 0 } else { 1 });
    }
}

/// Polls `eng` and `apps` until `done` holds, an app fails, or `secs` pass; sleeps in the
/// engine's idle wait in between.
pub fn drive(
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

/// Whether the kernel-side thread (if any) has finished.
pub fn finished<T>(h: &Option<JoinHandle<T>>) -> bool {
    h.as_ref().is_none_or(|h| h.is_finished())
}

/// Joins the kernel-side thread and returns its result.
pub fn join<T>(h: Option<JoinHandle<Result<T, String>>>) -> Result<T, String> {
    h.ok_or("no thread")?.join().map_err(|_| "kernel-side thread panicked".to_string())?
}

/// The value of the `key` word (`key` includes its `=`) in an app's output line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// Lower-case hex of a digest.
pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
