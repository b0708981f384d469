//! CPU time of every cluster process (user + system from `/proc`), so that CPU per
//! operation covers the whole I/O path, not only the bench's client side. The pids come
//! from the dev cluster's state dir (`cluster.toml`, as `basalt dev-cluster status`
//! shows them) plus any given with `--pids`.

use crate::cpu::CpuTimes;
use basalt_testkit::cluster::Liveness;
use basalt_testkit::DevCluster;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The dev cluster's default state dir (as the `basalt` CLI computes it).
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("BASALT_DEV_CLUSTER_DIR") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("basalt").join("dev-cluster"))
}

/// Running processes recorded in a dev cluster state dir, as `(name, pid)`.
pub fn dev_cluster_pids(state_dir: &Path) -> Result<Vec<(String, u32)>, String> {
    let c = DevCluster::attach(state_dir).map_err(|e| e.to_string())?;
    Ok(c.status()
        .into_iter()
        .filter(|s| s.state == Liveness::Running)
        .filter_map(|s| Some((s.name, s.pid?)))
        .collect())
}

/// The processes whose CPU time is summed.
#[derive(Debug, Clone, Default)]
pub struct Processes {
    pids: Vec<u32>,
}

impl Processes {
    /// These pids.
    pub fn new(pids: Vec<u32>) -> Self {
        Processes { pids }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.pids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    /// Their CPU time so far. A process that is gone counts as zero (it then also
    /// counts as zero at the end, and its time is lost from the figure).
    pub fn sample(&self) -> Vec<Duration> {
        self.pids
            .iter()
            .map(|&p| CpuTimes::of_pid(p).map(|t| t.own).unwrap_or_default())
            .collect()
    }

    /// CPU time between two samples.
    pub fn since(before: &[Duration], after: &[Duration]) -> Duration {
        before
            .iter()
            .zip(after)
            .map(|(b, a)| a.saturating_sub(*b))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cpu_of_live_processes_and_ignores_gone_ones() {
        let me = std::process::id();
        // A pid above the kernel's maximum never exists.
        let p = Processes::new(vec![me, u32::MAX]);
        assert_eq!(p.len(), 2);
        let before = p.sample();
        assert_eq!(before[1], Duration::ZERO);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        loop {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            if Processes::since(&before, &p.sample()) > Duration::ZERO {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU accounted in 5 s"
            );
        }
    }

    #[test]
    fn a_dir_without_a_cluster_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(dev_cluster_pids(dir.path()).is_err());
    }
}
