//! A multi-process Basalt cluster on loopback: etcd, MDSs and chunkservers as real,
//! detached processes, tracked by pid in a state file so that separate invocations of
//! `basalt dev-cluster` (and tests) can inspect, fault and stop them.
//!
//! - [`spec`]: what the cluster is made of ([`ClusterSpec`]),
//! - [`plan`]: spec → files and processes (pure, unit-tested),
//! - [`state`]: the state file (`cluster.toml`),
//! - [`process`]: spawn detached, signal by pid, stop with a grace period,
//! - [`ports`], [`binaries`], [`wait`]: free ports, binary lookup, bounded waits and probes.
//!
//! [`DevCluster::up`] returns a handle that stops every process when dropped (tests);
//! [`DevCluster::detach`] keeps them running (the CLI), and [`DevCluster::attach`] picks
//! a running cluster up again from its state dir.
//!
//! Unless the spec says otherwise, `up` writes a fresh cluster secret (`cluster.secret`)
//! that every daemon and client config names, so connections authenticate as in a
//! cluster made by `basalt cluster init`; [`DevCluster::secret`] gives it to probes.

pub mod binaries;
pub mod error;
pub mod plan;
pub mod ports;
pub mod process;
pub mod spec;
pub mod state;
pub mod wait;

pub use error::ClusterError;
pub use spec::{ChunkserverIds, ChunkserverNet, ClusterSpec, NetworkLayout};

use basalt_transport::ClusterSecret;
use error::{io, Result};
use plan::{Kind, Ports, ProcessPlan, Ready};
use serde::Serialize;
use state::{ProcessRecord, StateFile};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Grace between SIGTERM and SIGKILL when stopping a process.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Bound of one chunkserver `format`.
const FORMAT_TIMEOUT: Duration = Duration::from_secs(120);
/// Poll interval of readiness waits.
const POLL: Duration = Duration::from_millis(50);

/// Liveness of one recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// Running.
    Running,
    /// Stopped with SIGSTOP.
    Stopped,
    /// Not running (killed, exited, or stopped by `down`).
    Dead,
}

/// One line of [`DevCluster::status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProcessStatus {
    /// Name (`etcd`, `mds-1`, `cs-2`).
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Recorded pid.
    pub pid: Option<u32>,
    /// Liveness.
    pub state: Liveness,
    /// Service address.
    pub addr: SocketAddr,
    /// Log file.
    pub log: PathBuf,
}

/// Progress messages of long operations (`up`): the CLI prints them on stderr.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// A running dev cluster.
#[derive(Debug)]
pub struct DevCluster {
    state_dir: PathBuf,
    state: StateFile,
    stop_on_drop: bool,
    ready_timeout: Duration,
    secret: Option<ClusterSecret>,
}

/// Entries `up` creates in a state dir (removed by the next `up`).
fn is_ours(name: &str) -> bool {
    matches!(
        name,
        "cluster.toml"
            | "cluster.toml.tmp"
            | "cluster-map.toml"
            | "client.toml"
            | "logs"
            | plan::ADMIN_KEY
            | plan::ADMIN_VERIFIER
            | plan::CLUSTER_SECRET
    ) || name == "etcd"
        || name.starts_with("etcd-")
        || name.starts_with("mds-")
        || name.starts_with("cs-")
}

/// A fresh admin credential: `admin.key` (0600) for the client config, `admin.verifier`
/// for the MDS configs. The dev cluster thus enforces volume access control like a
/// cluster made by `basalt cluster init`.
fn write_admin_credential(dir: &Path) -> Result<()> {
    let key = basalt_proto::credential::OwnerKey::from_bytes(rand::random());
    let verifier = key.verifier(rand::random());
    let kp = dir.join(plan::ADMIN_KEY);
    basalt_client::config_file::write_key(&kp, &key)
        .map_err(|e| io("write", &kp)(std::io::Error::other(e.to_string())))?;
    let vp = dir.join(plan::ADMIN_VERIFIER);
    std::fs::write(&vp, verifier.to_text()).map_err(io("write", &vp))
}

/// A fresh cluster secret in `dir` (0600, the file form `basalt cluster init` writes).
fn write_cluster_secret(dir: &Path) -> Result<ClusterSecret> {
    let secret = ClusterSecret::generate();
    let path = dir.join(plan::CLUSTER_SECRET);
    secret
        .write_new(&path)
        .map_err(|e| io("write", &path)(std::io::Error::other(e.to_string())))?;
    Ok(secret)
}

/// The cluster secret of the cluster in `dir`, if it has one.
fn load_cluster_secret(dir: &Path) -> Result<Option<ClusterSecret>> {
    let path = dir.join(plan::CLUSTER_SECRET);
    if !path.exists() {
        return Ok(None);
    }
    ClusterSecret::load(&path)
        .map(Some)
        .map_err(|e| io("read", &path)(std::io::Error::other(e.to_string())))
}

fn is_alive(r: &ProcessRecord) -> bool {
    r.pid.is_some_and(|pid| process::alive(pid, r.start_ticks))
}

/// Make `dir` ready for a new cluster: refuse when a recorded process still runs or when
/// it holds files that are not a dev cluster's; remove the previous cluster's files.
fn prepare_state_dir(dir: &Path) -> Result<()> {
    match StateFile::load(dir) {
        Ok(old) => {
            if old.processes.iter().any(is_alive) {
                return Err(ClusterError::AlreadyRunning {
                    state_dir: dir.to_path_buf(),
                });
            }
        }
        Err(ClusterError::NoCluster { .. }) => {}
        Err(e) => return Err(e),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("read dir", dir)(e)),
    };
    let mut ours = Vec::new();
    for e in entries {
        let e = e.map_err(io("read dir", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_ours(&name) {
            return Err(ClusterError::InvalidSpec {
                field: "state-dir",
                reason: format!(
                    "{} holds {name:?}, which is not a dev cluster's; use an empty directory",
                    dir.display()
                ),
            });
        }
        ours.push(e.path());
    }
    for p in ours {
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(io("remove", &p))?;
    }
    Ok(())
}

fn ready_file(p: &ProcessPlan) -> Option<&Path> {
    match &p.ready {
        Ready::AddrFile { path } => Some(path),
        Ready::EtcdHealth { .. } => None,
    }
}

impl DevCluster {
    /// Start a cluster as `spec` says and wait until it serves. On failure every process
    /// started so far is stopped. The handle stops the cluster when dropped unless
    /// [`detach`](Self::detach)ed.
    pub fn up(spec: ClusterSpec) -> Result<Self> {
        Self::up_with_progress(spec, &mut |_| {})
    }

    /// [`up`](Self::up), reporting each step to `progress`.
    pub fn up_with_progress(spec: ClusterSpec, progress: Progress<'_>) -> Result<Self> {
        spec.validate()?;
        let bins = binaries::find()?;
        prepare_state_dir(&spec.state_dir)?;
        let ports = Ports::assign(&spec, &ports::free_ports(Ports::count(&spec))?);
        let p = plan::plan(&spec, &bins, &ports);
        for d in &p.dirs {
            std::fs::create_dir_all(d).map_err(io("create", d))?;
        }
        let state_dir =
            std::fs::canonicalize(&spec.state_dir).map_err(io("resolve", &spec.state_dir))?;
        for (path, text) in &p.files {
            std::fs::write(path, text).map_err(io("write", path))?;
        }
        write_admin_credential(&state_dir)?;
        let secret = if spec.authenticate {
            Some(write_cluster_secret(&state_dir)?)
        } else {
            None
        };
        let state = StateFile {
            mds: p.mds_addrs.clone(),
            etcd: p.etcd_endpoints.clone(),
            client_configs: Vec::new(),
            processes: p
                .processes
                .iter()
                .map(|plan| ProcessRecord {
                    pid: None,
                    start_ticks: None,
                    plan: plan.clone(),
                })
                .collect(),
        };
        state.save(&state_dir)?;
        let mut me = DevCluster {
            state_dir,
            state,
            stop_on_drop: true,
            ready_timeout: spec.ready_timeout,
            secret,
        };
        // On error `me` is dropped here, which stops what was started.
        me.bring_up(&spec, &p.formats, progress)?;
        Ok(me)
    }

    fn bring_up(
        &mut self,
        spec: &ClusterSpec,
        formats: &[ProcessPlan],
        progress: Progress<'_>,
    ) -> Result<()> {
        let names = |k: Kind, s: &StateFile| -> Vec<String> {
            s.processes
                .iter()
                .filter(|r| r.plan.kind == k)
                .map(|r| r.plan.name.clone())
                .collect()
        };
        let etcds = names(Kind::Etcd, &self.state);
        progress(&format!("starting {}", etcds.join(", ")));
        for n in &etcds {
            self.start(n)?;
        }
        for n in &etcds {
            self.wait_ready(n)?;
        }
        let mdss = names(Kind::Mds, &self.state);
        progress(&format!("starting {}", mdss.join(", ")));
        for n in &mdss {
            self.start(n)?;
        }
        for n in &mdss {
            self.wait_ready(n)?;
        }
        progress("waiting for an active MDS");
        let addrs = self.state.mds.clone();
        let secret = self.secret.clone();
        let secret = secret.as_ref();
        let status =
            || wait::active_mds(&addrs, secret).and_then(|a| wait::cluster_status(a, secret));
        wait::poll_until("an active MDS", self.ready_timeout, POLL, || {
            Ok(wait::active_mds(&addrs, secret))
        })?;
        if !formats.is_empty() {
            progress(&format!(
                "formatting {} chunkserver data dirs",
                formats.len()
            ));
        }
        for f in formats {
            process::run_step(f, "format", FORMAT_TIMEOUT)?;
        }
        let css = names(Kind::Chunkserver, &self.state);
        if !css.is_empty() {
            progress(&format!("starting {}", css.join(", ")));
        }
        for n in &css {
            self.start(n)?;
        }
        for n in &css {
            self.wait_ready(n)?;
        }
        if !css.is_empty() && spec.chunkserver_ids == ChunkserverIds::Register {
            let want = u32::try_from(css.len()).unwrap_or(u32::MAX);
            progress("waiting for chunkservers to register");
            wait::poll_until(
                format!("{want} chunkservers online at the MDS"),
                self.ready_timeout,
                POLL * 4,
                || Ok(status().filter(|s| s.chunkservers_online >= want)),
            )?;
            if spec.wait_copysets {
                progress("waiting for every copyset to elect a leader");
                let mut last = None;
                let r = wait::poll_until(
                    "every copyset to have a leader",
                    self.ready_timeout,
                    POLL * 4,
                    || {
                        let s = status();
                        let done = s.as_ref().is_some_and(|s| {
                            s.copysets_healthy + s.copysets_degraded > 0
                                && s.copysets_leaderless == 0
                        });
                        last = s;
                        Ok(done.then_some(()))
                    },
                );
                if let Err(ClusterError::Timeout { waited, .. }) = r {
                    return Err(ClusterError::Timeout {
                        what: format!(
                            "every copyset to have a leader (last MDS status: {})",
                            last.map_or("none".into(), |s| format!(
                                "{} healthy, {} degraded, {} leaderless copysets; {} chunkservers online",
                                s.copysets_healthy,
                                s.copysets_degraded,
                                s.copysets_leaderless,
                                s.chunkservers_online
                            ))
                        ),
                        waited,
                    });
                }
                r?;
            }
        }
        let mut file = basalt_client::ClientFile {
            mds: self.state.mds.clone(),
            owner: basalt_proto::credential::ADMIN.into(),
            key_file: Some(self.state_dir.join(plan::ADMIN_KEY)),
            ..Default::default()
        };
        file.transport.fast_path = spec.fast_path;
        file.transport.auth_secret_file = self.secret_file();
        let mut targets = vec![self.state_dir.join("client.toml")];
        targets.extend(spec.client_config.clone());
        for t in &targets {
            file.save(t)?;
        }
        self.state.client_configs = targets;
        self.state.save(&self.state_dir)?;
        progress("cluster is up");
        Ok(())
    }

    /// Pick up the cluster recorded in `state_dir` (not stopped on drop).
    pub fn attach(state_dir: impl AsRef<Path>) -> Result<Self> {
        let state_dir = state_dir.as_ref().to_path_buf();
        let state = StateFile::load(&state_dir)?;
        let secret = load_cluster_secret(&state_dir)?;
        Ok(DevCluster {
            state_dir,
            state,
            stop_on_drop: false,
            ready_timeout: Duration::from_secs(60),
            secret,
        })
    }

    /// Keep the processes running after this handle is dropped; returns the state dir.
    pub fn detach(mut self) -> PathBuf {
        self.stop_on_drop = false;
        self.state_dir.clone()
    }

    /// The state dir.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The cluster secret every connection authenticates with (None: an
    /// unauthenticated cluster, see [`ClusterSpec::authenticate`]).
    pub fn secret(&self) -> Option<&ClusterSecret> {
        self.secret.as_ref()
    }

    /// The cluster secret file (`cluster.secret` in the state dir), when there is one.
    pub fn secret_file(&self) -> Option<PathBuf> {
        self.secret
            .as_ref()
            .map(|_| self.state_dir.join(plan::CLUSTER_SECRET))
    }

    /// MDS RPC addresses.
    pub fn mds_addrs(&self) -> &[SocketAddr] {
        &self.state.mds
    }

    /// etcd client endpoints.
    pub fn etcd_endpoints(&self) -> &[String] {
        &self.state.etcd
    }

    /// Client configuration files written by `up`.
    pub fn client_configs(&self) -> &[PathBuf] {
        &self.state.client_configs
    }

    /// The recorded process named `name`.
    pub fn process(&self, name: &str) -> Option<&ProcessRecord> {
        self.state.processes.iter().find(|p| p.plan.name == name)
    }

    /// The MDS that answers as active, if any.
    pub fn active_mds(&self) -> Option<SocketAddr> {
        wait::active_mds(&self.state.mds, self.secret.as_ref())
    }

    /// Name of the active MDS process (`mds-N`), if any.
    pub fn active_mds_name(&self) -> Option<String> {
        let addr = self.active_mds()?;
        self.state
            .processes
            .iter()
            .find(|p| p.plan.kind == Kind::Mds && p.plan.addr == addr)
            .map(|p| p.plan.name.clone())
    }

    /// Liveness of every recorded process.
    pub fn status(&self) -> Vec<ProcessStatus> {
        self.state
            .processes
            .iter()
            .map(|r| {
                let state = match r.pid {
                    Some(pid) if process::alive(pid, r.start_ticks) => {
                        if process::stopped(pid) {
                            Liveness::Stopped
                        } else {
                            Liveness::Running
                        }
                    }
                    _ => Liveness::Dead,
                };
                ProcessStatus {
                    name: r.plan.name.clone(),
                    kind: r.plan.kind,
                    pid: r.pid,
                    state,
                    addr: r.plan.addr,
                    log: r.plan.log.clone(),
                }
            })
            .collect()
    }

    fn start(&mut self, name: &str) -> Result<()> {
        let r = self.state.find_mut(name)?;
        if let Some(f) = ready_file(&r.plan) {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", f)(e)),
            }
        }
        let s = process::spawn(&r.plan)?;
        r.pid = Some(s.pid);
        r.start_ticks = s.start_ticks;
        self.state.save(&self.state_dir)
    }

    /// Wait (bounded) until `name` is ready: etcd healthy, or its address file written.
    pub fn wait_ready(&self, name: &str) -> Result<()> {
        let r = self
            .process(name)
            .ok_or_else(|| ClusterError::UnknownProcess {
                name: name.into(),
                known: self.state.names().join(", "),
            })?;
        wait::poll_until(format!("{name} to serve"), self.ready_timeout, POLL, || {
            if !is_alive(r) {
                return Err(ClusterError::Exited {
                    name: name.into(),
                    log_tail: process::log_tail(&r.plan, 10),
                });
            }
            Ok(match &r.plan.ready {
                Ready::EtcdHealth { port } => crate::etcd::health_check(*port).then_some(()),
                Ready::AddrFile { path } => path.exists().then_some(()),
            })
        })
    }

    /// SIGKILL `name` (and wait until it is gone).
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let r = self.state.find_mut(name)?;
        if let Some(pid) = r.pid {
            process::kill(pid, r.start_ticks);
        }
        Ok(())
    }

    /// SIGSTOP `name` (it hangs, as on a stuck host).
    pub fn stop(&mut self, name: &str) -> Result<()> {
        self.signal(name, libc::SIGSTOP)
    }

    /// SIGCONT `name` after [`stop`](Self::stop).
    pub fn cont(&mut self, name: &str) -> Result<()> {
        self.signal(name, libc::SIGCONT)
    }

    fn signal(&mut self, name: &str, sig: libc::c_int) -> Result<()> {
        let r = self.state.find_mut(name)?;
        if let Some(pid) = r.pid {
            process::signal(pid, r.start_ticks, sig);
        }
        Ok(())
    }

    /// Kill `name` if it runs, start it again with the same arguments and data, and wait
    /// until it serves.
    pub fn restart(&mut self, name: &str) -> Result<()> {
        self.kill(name)?;
        self.start(name)?;
        self.wait_ready(name)
    }

    /// Stop every recorded process (chunkservers, then MDSs, then etcd): SIGTERM, SIGKILL
    /// after a grace period. Data and logs stay in the state dir.
    pub fn down(&mut self) -> Result<()> {
        self.down_with_progress(&mut |_| {})
    }

    /// [`down`](Self::down), reporting each process to `progress`.
    pub fn down_with_progress(&mut self, progress: Progress<'_>) -> Result<()> {
        for r in self.state.processes.iter_mut().rev() {
            if let Some(pid) = r.pid {
                if process::alive(pid, r.start_ticks) {
                    progress(&format!("stopping {} (pid {pid})", r.plan.name));
                }
                process::terminate(pid, r.start_ticks, STOP_GRACE);
            }
            r.pid = None;
            r.start_ticks = None;
        }
        self.state.save(&self.state_dir)
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            // Kill outright: a test that failed wants no leftovers, not a clean shutdown.
            for r in self.state.processes.iter().rev() {
                if let Some(pid) = r.pid {
                    process::kill(pid, r.start_ticks);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_dir_with_foreign_files_is_refused_and_ours_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cs-1/chunks")).unwrap();
        std::fs::write(dir.path().join("mds-1.addr"), "x").unwrap();
        prepare_state_dir(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::write(dir.path().join("thesis.tex"), "x").unwrap();
        assert!(matches!(
            prepare_state_dir(dir.path()),
            Err(ClusterError::InvalidSpec {
                field: "state-dir",
                ..
            })
        ));
        assert!(dir.path().join("thesis.tex").exists());
        prepare_state_dir(&dir.path().join("does-not-exist")).unwrap();
    }
}
