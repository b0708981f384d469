//! The chunkserver's side of the MDS: registration at start-up ([`register`]), periodic
//! heartbeats ([`heartbeat`]) and the operators and stray deletions the MDS asks for in
//! its replies ([`operators`]), over a leader-following client ([`client`]).
//!
//! Only used when `server.mds-addrs` is set; an unmanaged chunkserver (tests, manual
//! clusters) has its id configured and its copysets created by `CreateCopyset` requests.

pub mod client;
pub mod heartbeat;
pub mod operators;
pub mod register;

use heartbeat::HeartbeatParams;
use operators::Executor;

/// The running heartbeat loop and operator tasks.
pub struct MdsLink {
    exec: Executor,
    task: tokio::task::JoinHandle<()>,
}

impl MdsLink {
    /// Start heartbeats (the executor in `p` runs the operators).
    pub fn start(p: HeartbeatParams) -> Self {
        let exec = p.exec.clone();
        MdsLink {
            exec,
            task: tokio::spawn(heartbeat::run(p)),
        }
    }

    /// Stop heartbeats and abort operators in flight (before the copysets shut down).
    pub fn shutdown(self) {
        self.task.abort();
        self.exec.shutdown();
    }
}

/// This host's name (the default server name presented at registration).
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostname_is_known() {
        let h = super::hostname().expect("host name");
        assert!(!h.contains('\0'));
    }
}
