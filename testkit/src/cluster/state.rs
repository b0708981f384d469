//! The state file (`<state dir>/cluster.toml`): what `up` started, so a later `down`,
//! `status` or `kill` (another process, e.g. the next CLI call) acts on exactly those pids.

use super::error::{io, ClusterError, Result};
use super::plan::ProcessPlan;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// File name of the state file in the state dir.
pub const STATE_FILE: &str = "cluster.toml";

/// One started process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProcessRecord {
    /// Its pid while started (None: never started or stopped by `down`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Start time of `pid` in clock ticks since boot (`/proc/PID/stat` field 22): guards
    /// against signalling a recycled pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// How it is (re)started.
    #[serde(flatten)]
    pub plan: ProcessPlan,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StateFile {
    /// MDS RPC addresses.
    pub mds: Vec<SocketAddr>,
    /// etcd client endpoints.
    pub etcd: Vec<String>,
    /// Client configuration files written by `up`.
    pub client_configs: Vec<PathBuf>,
    /// Processes, in start order.
    #[serde(rename = "process")]
    pub processes: Vec<ProcessRecord>,
}

impl StateFile {
    /// Path of the state file in `state_dir`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(STATE_FILE)
    }

    /// Parse the text of a state file.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| ClusterError::BadStateFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The TOML text.
    pub fn to_text(&self) -> String {
        toml::to_string_pretty(self).expect("the state file serialises")
    }

    /// Load from `state_dir`; [`ClusterError::NoCluster`] when there is no state file.
    pub fn load(state_dir: &Path) -> Result<Self> {
        let path = Self::path(state_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ClusterError::NoCluster {
                state_dir: state_dir.to_path_buf(),
            }),
            Err(e) => Err(io("read", path)(e)),
        }
    }

    /// Write atomically (temp file + rename) into `state_dir`.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let path = Self::path(state_dir);
        let tmp = state_dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, self.to_text()).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))
    }

    /// The record named `name`.
    pub fn find_mut(&mut self, name: &str) -> Result<&mut ProcessRecord> {
        let known = self.names().join(", ");
        self.processes
            .iter_mut()
            .find(|p| p.plan.name == name)
            .ok_or_else(|| ClusterError::UnknownProcess {
                name: name.into(),
                known,
            })
    }

    /// Every process name.
    pub fn names(&self) -> Vec<String> {
        self.processes.iter().map(|p| p.plan.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::{plan, Binaries, Ports};
    use crate::cluster::spec::ClusterSpec;

    fn sample() -> StateFile {
        let spec = ClusterSpec::new("/state dir/with \"quotes\"");
        let ports: Vec<u16> = (30_000..30_000 + Ports::count(&spec) as u16).collect();
        let p = plan(
            &spec,
            &Binaries {
                etcd: "etcd".into(),
                mds: "/b/basalt-mds".into(),
                chunkserver: "/b/basalt-chunkserver".into(),
            },
            &Ports::assign(&spec, &ports),
        );
        StateFile {
            mds: p.mds_addrs.clone(),
            etcd: p.etcd_endpoints.clone(),
            client_configs: vec!["/home/u/.config/basalt/client.toml".into()],
            processes: p
                .processes
                .into_iter()
                .enumerate()
                .map(|(i, plan)| ProcessRecord {
                    pid: (i % 2 == 0).then_some(1000 + i as u32),
                    start_ticks: (i % 2 == 0).then_some(5),
                    plan,
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips_through_text_and_disk() {
        let s = sample();
        let text = s.to_text();
        assert!(text.contains("[[process]]"), "{text}");
        assert_eq!(StateFile::parse(&text, Path::new("x")).unwrap(), s);
        let dir = tempfile::tempdir().unwrap();
        s.save(dir.path()).unwrap();
        assert_eq!(StateFile::load(dir.path()).unwrap(), s);
    }

    #[test]
    fn missing_and_bad_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            StateFile::load(dir.path()),
            Err(ClusterError::NoCluster { .. })
        ));
        std::fs::write(StateFile::path(dir.path()), "process = 7").unwrap();
        assert!(matches!(
            StateFile::load(dir.path()),
            Err(ClusterError::BadStateFile { .. })
        ));
    }

    #[test]
    fn find_by_name_lists_known_names_on_a_miss() {
        let mut s = sample();
        assert_eq!(s.find_mut("mds-2").unwrap().plan.name, "mds-2");
        match s.find_mut("mds-9") {
            Err(ClusterError::UnknownProcess { known, .. }) => {
                assert!(known.starts_with("etcd, mds-1"), "{known}")
            }
            other => panic!("{other:?}"),
        }
    }
}
