//! A real, single-node etcd process for tests.
//!
//! [`EtcdProcess::start`] picks two free loopback ports (never 2379/2380), creates a temp
//! data dir, starts `etcd` and waits (with a deadline) until `/health` answers. The process
//! is stopped by pid: [`EtcdProcess::kill`] sends SIGKILL, [`EtcdProcess::stop`] SIGTERM
//! then SIGKILL after a grace period; [`EtcdProcess::restart`] starts it again on the same
//! data dir and ports. Dropping the handle kills the process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for etcd to report healthy.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// Grace period between SIGTERM and SIGKILL in [`EtcdProcess::stop`].
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Attempts with fresh ports when the chosen ones were taken in the meantime.
const START_ATTEMPTS: usize = 3;

/// Errors of the etcd test harness.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The `etcd` binary could not be spawned (not installed, not executable).
    #[error("cannot spawn etcd: {0}")]
    Spawn(#[source] std::io::Error),
    /// A temp dir or a free port could not be obtained.
    #[error("test environment: {0}")]
    Env(#[source] std::io::Error),
    /// etcd did not become healthy before the deadline (its stderr tail is attached).
    #[error("etcd on port {port} not healthy after {waited:?}: {log_tail}")]
    NotHealthy {
        /// Client port.
        port: u16,
        /// Time waited.
        waited: Duration,
        /// Last lines of the etcd log.
        log_tail: String,
    },
    /// etcd exited while starting.
    #[error("etcd exited during start with {status}: {log_tail}")]
    Exited {
        /// Exit status.
        status: std::process::ExitStatus,
        /// Last lines of the etcd log.
        log_tail: String,
    },
    /// Operation needs a running process but it is stopped.
    #[error("etcd is not running")]
    NotRunning,
}

/// A running (or stopped, restartable) etcd.
#[derive(Debug)]
pub struct EtcdProcess {
    name: String,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

fn free_port() -> Result<u16, EtcdError> {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").map_err(EtcdError::Env)?;
        let port = l.local_addr().map_err(EtcdError::Env)?.port();
        if port != 2379 && port != 2380 {
            return Ok(port);
        }
    }
}

/// Whether the etcd with client port `port` on loopback answers `GET /health` with
/// `"health":"true"`.
pub fn health_check(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let req =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

impl EtcdProcess {
    /// Start a fresh etcd on free loopback ports with a temp data dir; waits until healthy.
    pub fn start() -> Result<Self, EtcdError> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("basalt-etcd-")
                .tempdir()
                .map_err(EtcdError::Env)?;
            let client_port = free_port()?;
            let mut peer_port = free_port()?;
            while peer_port == client_port {
                peer_port = free_port()?;
            }
            let mut me = EtcdProcess {
                name: format!("basalt-test-{client_port}"),
                dir,
                client_port,
                peer_port,
                child: None,
            };
            match me.spawn_and_wait() {
                Ok(()) => return Ok(me),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), EtcdError> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(EtcdError::Env)?;
        let log2 = log.try_clone().map_err(EtcdError::Env)?;
        let child = Command::new("etcd")
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("{}={}", self.name, peer))
            .arg("--initial-cluster-state")
            .arg("new")
            // Short election/heartbeat so a single node is up fast.
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(EtcdError::Spawn)?;
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(EtcdError::Exited {
                        status,
                        log_tail: self.log_tail(),
                    });
                }
            }
            if self.healthy() {
                return Ok(());
            }
            if t0.elapsed() > START_DEADLINE {
                self.kill();
                return Err(EtcdError::NotHealthy {
                    port: self.client_port,
                    waited: t0.elapsed(),
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `GET /health` answers `"health":"true"`.
    pub fn healthy(&self) -> bool {
        health_check(self.client_port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Client endpoint, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The data dir (kept across restarts, removed on drop).
    pub fn data_path(&self) -> &Path {
        self.dir.path()
    }

    /// Pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL the process (by pid) and reap it. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, wait up to a grace period, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet (so it cannot
        // have been recycled), and a valid signal number.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Start again on the same data dir and ports (after [`kill`](Self::kill) or
    /// [`stop`](Self::stop)); waits until healthy.
    pub fn restart(&mut self) -> Result<(), EtcdError> {
        self.kill();
        // The old process is reaped; its ports are free again (SO_REUSEADDR in etcd).
        let t0 = Instant::now();
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) if t0.elapsed() > START_DEADLINE => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_same_data_dir() {
        let mut etcd = EtcdProcess::start().expect("start etcd");
        assert!(etcd.healthy());
        assert_ne!(etcd.client_port(), 2379);
        let pid = etcd.pid().expect("running");
        assert!(etcd.data_path().join("data").exists());
        etcd.kill();
        assert!(!etcd.is_running());
        assert!(!etcd.healthy());
        etcd.restart().expect("restart");
        assert!(etcd.healthy());
        assert_ne!(etcd.pid(), Some(pid));
        etcd.stop();
        assert!(!etcd.healthy());
    }

    #[test]
    fn two_instances_get_distinct_ports() {
        let a = EtcdProcess::start().expect("start a");
        let b = EtcdProcess::start().expect("start b");
        assert_ne!(a.endpoint(), b.endpoint());
        assert!(a.healthy() && b.healthy());
    }
}
