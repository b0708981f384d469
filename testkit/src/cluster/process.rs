//! Process supervision by pid: spawn detached (own process group, output to a log file),
//! check liveness, signal, stop with a grace period.
//!
//! Processes are not tied to a Rust object: a dev cluster started by one `basalt` call is
//! stopped by another. A pid is only signalled while its start time still matches the
//! recorded one, so a recycled pid is never hit.

use super::error::{io, ClusterError, Result};
use super::plan::ProcessPlan;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A started process: pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Pid.
    pub pid: u32,
    /// Start time (clock ticks since boot), if `/proc` could be read.
    pub start_ticks: Option<u64>,
}

fn open_log(p: &ProcessPlan) -> Result<std::fs::File> {
    if let Some(dir) = p.log.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)
        .map_err(io("open log", &p.log))
}

fn command(p: &ProcessPlan) -> Result<Command> {
    let log = open_log(p)?;
    let log2 = log.try_clone().map_err(io("clone log handle", &p.log))?;
    let mut cmd = Command::new(&p.program);
    cmd.args(&p.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        // Own process group: a Ctrl-C at the terminal that started the cluster does not
        // reach the daemons, and they outlive the starting process.
        .process_group(0);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    Ok(cmd)
}

/// Start `p` detached. The `Child` handle is dropped: the process is tracked by pid.
pub fn spawn(p: &ProcessPlan) -> Result<Started> {
    let child = command(p)?.spawn().map_err(|source| ClusterError::Spawn {
        name: p.name.clone(),
        program: p.program.clone(),
        source,
    })?;
    let pid = child.id();
    drop(child);
    Ok(Started {
        pid,
        start_ticks: start_ticks(pid),
    })
}

/// Run `p` to completion (a `format` step), bounded by `timeout`.
///
/// The step's stderr comes back through a pipe (and is then appended to its log), so its
/// error is reported even when the log cannot be written — a format that fails because
/// the disk is full would otherwise leave an empty log and an unexplained exit status.
pub fn run_step(p: &ProcessPlan, step: &'static str, timeout: Duration) -> Result<()> {
    let mut cmd = command(p)?;
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ClusterError::Spawn {
        name: p.name.clone(),
        program: p.program.clone(),
        source,
    })?;
    // Drained on a thread: a chatty step must not block on a full pipe.
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut e, &mut buf);
            buf
        })
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("wait", &p.program))? {
            break status;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ClusterError::Timeout {
                what: format!("{} {step}", p.name),
                waited: t0.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err_text = stderr
        .and_then(|h| h.join().ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    // Best effort: the log is where the rest of the process's output lives.
    if let Ok(mut log) = open_log(p) {
        let _ = std::io::Write::write_all(&mut log, err_text.as_bytes());
    }
    if status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = err_text.lines().collect();
    Err(ClusterError::StepFailed {
        name: p.name.clone(),
        step,
        status,
        log_tail: lines[lines.len().saturating_sub(10)..].join("\n"),
    })
}

/// The last `n` lines of `p`'s log.
pub fn log_tail(p: &ProcessPlan, n: usize) -> String {
    let text = std::fs::read_to_string(&p.log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `/proc/PID/stat`: (state char, start time). None when the pid does not exist.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after
    // the last ')'. Then field 3 is the state, field 22 the start time.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Start time of `pid` in clock ticks since boot.
pub fn start_ticks(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

fn to_pid(pid: u32) -> Option<libc::pid_t> {
    libc::pid_t::try_from(pid).ok().filter(|&p| p > 0)
}

/// Reap `pid` if it is an exited child of this process (tests run the daemons as
/// children; the CLI's children are reaped by init once it exits).
fn reap(pid: u32) {
    let Some(p) = to_pid(pid) else { return };
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a single pid and a valid status pointer; for a pid
    // that is not our child it fails with ECHILD and changes nothing.
    unsafe {
        libc::waitpid(p, &mut status, libc::WNOHANG);
    }
}

/// Whether the recorded process still runs (exists, not a zombie, same start time).
/// Exited children of this process are reaped on the way.
pub fn alive(pid: u32, recorded_start: Option<u64>) -> bool {
    match proc_stat(pid) {
        None => false,
        Some(('Z', _)) | Some(('X', _)) => {
            reap(pid);
            false
        }
        Some((_, start)) => recorded_start.is_none_or(|r| r == start),
    }
}

/// Whether the process is stopped (SIGSTOP: state `T`).
pub fn stopped(pid: u32) -> bool {
    matches!(proc_stat(pid), Some(('T', _)))
}

/// Send `sig` to the recorded process if it is still the one we started.
pub fn signal(pid: u32, recorded_start: Option<u64>, sig: libc::c_int) -> bool {
    if !alive(pid, recorded_start) {
        return false;
    }
    let Some(p) = to_pid(pid) else { return false };
    // SAFETY: kill(2) on a pid whose start time we just checked against the recorded one
    // (so it is the process we started), with a valid signal number.
    unsafe { libc::kill(p, sig) == 0 }
}

/// Wait until the process is gone, up to `timeout`. True when it is gone.
pub fn wait_gone(pid: u32, recorded_start: Option<u64>, timeout: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if !alive(pid, recorded_start) {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL and wait (bounded) until gone.
pub fn kill(pid: u32, recorded_start: Option<u64>) -> bool {
    signal(pid, recorded_start, libc::SIGKILL);
    wait_gone(pid, recorded_start, Duration::from_secs(5))
}

/// SIGCONT (a stopped process would not act on SIGTERM), SIGTERM, then SIGKILL after
/// `grace`. True when the process is gone.
pub fn terminate(pid: u32, recorded_start: Option<u64>, grace: Duration) -> bool {
    signal(pid, recorded_start, libc::SIGCONT);
    if !signal(pid, recorded_start, libc::SIGTERM) {
        return !alive(pid, recorded_start);
    }
    if wait_gone(pid, recorded_start, grace) {
        return true;
    }
    kill(pid, recorded_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::{Kind, Ready};

    fn sleeper(dir: &std::path::Path) -> ProcessPlan {
        ProcessPlan {
            name: "sleeper".into(),
            kind: Kind::Mds,
            program: "sleep".into(),
            args: vec!["30".into()],
            log: dir.join("logs/sleeper.log"),
            addr: "127.0.0.1:1".parse().unwrap(),
            ready: Ready::AddrFile {
                path: dir.join("x"),
            },
        }
    }

    #[test]
    fn spawn_stop_cont_terminate_a_real_process() {
        let dir = tempfile::tempdir().unwrap();
        let s = spawn(&sleeper(dir.path())).unwrap();
        assert!(alive(s.pid, s.start_ticks));
        assert!(s.start_ticks.is_some());
        // A different recorded start time means another process: never signalled.
        assert!(!signal(s.pid, s.start_ticks.map(|t| t + 1), libc::SIGKILL));
        assert!(signal(s.pid, s.start_ticks, libc::SIGSTOP));
        let t0 = Instant::now();
        while !stopped(s.pid) {
            assert!(t0.elapsed() < Duration::from_secs(5), "never stopped");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(signal(s.pid, s.start_ticks, libc::SIGCONT));
        assert!(terminate(s.pid, s.start_ticks, Duration::from_secs(5)));
        assert!(!alive(s.pid, s.start_ticks));
        assert!(dir.path().join("logs/sleeper.log").exists());
    }

    #[test]
    fn failing_step_reports_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sleeper(dir.path());
        p.program = "sh".into();
        p.args = vec!["-c".into(), "echo formatting broke >&2; exit 3".into()];
        match run_step(&p, "format", Duration::from_secs(10)) {
            Err(ClusterError::StepFailed { log_tail, .. }) => {
                assert!(log_tail.contains("formatting broke"), "{log_tail}")
            }
            other => panic!("{other:?}"),
        }
        p.args = vec!["-c".into(), "true".into()];
        run_step(&p, "format", Duration::from_secs(10)).unwrap();
        let log = std::fs::read_to_string(dir.path().join("logs/sleeper.log")).unwrap();
        assert!(log.contains("formatting broke"), "{log}");
    }

    /// A full disk: the log takes no bytes (`/dev/full` fails every write with ENOSPC),
    /// yet the step's own error still reaches the caller.
    #[test]
    fn failing_step_is_explained_when_its_log_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sleeper(dir.path());
        p.log = "/dev/full".into();
        p.program = "sh".into();
        p.args = vec!["-c".into(), "echo no space left >&2; exit 1".into()];
        match run_step(&p, "format", Duration::from_secs(10)) {
            Err(ClusterError::StepFailed { log_tail, .. }) => {
                assert!(log_tail.contains("no space left"), "{log_tail}")
            }
            other => panic!("{other:?}"),
        }
    }
}
