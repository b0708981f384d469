//! Facts about the machine and the source tree, recorded with every result.

use serde::Serialize;
use std::process::Command;

/// The machine a run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    /// Online CPUs.
    pub nproc: usize,
    /// `uname -r`-style kernel release.
    pub kernel: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// 1-minute load average when the run started (others' load skews results).
    pub loadavg_1m: Option<f64>,
}

impl HostFacts {
    /// Gather what can be read; unknown facts are `"unknown"`.
    pub fn gather() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        HostFacts {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            loadavg_1m: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok()),
        }
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// `git rev-parse HEAD` of the working directory's repository, or else of the source tree
/// this binary was built from, when git and a repository are there.
pub fn git_revision() -> Option<String> {
    rev_parse(None).or_else(|| rev_parse(Some(env!("CARGO_MANIFEST_DIR"))))
}

fn rev_parse(dir: Option<&str>) -> Option<String> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.args(["-C", d]);
    }
    let out = cmd
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!rev.is_empty()).then_some(rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_taken_from_the_first_model_name_line() {
        let info = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU @ 2.0GHz\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(info).as_deref(), Some("Example CPU @ 2.0GHz"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn host_facts_are_plausible() {
        let h = HostFacts::gather();
        assert!(h.nproc >= 1);
        assert!(!h.kernel.is_empty());
    }
}
