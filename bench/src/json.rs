//! The JSON report (`--json FILE`). Its schema is versioned: readers check
//! `schema_version` and a change to any field's meaning bumps it.

use crate::error::BenchError;
use crate::host::HostFacts;
use crate::report::Measurement;
use serde::Serialize;
use std::path::Path;

/// Version of the JSON layout below.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `basalt-bench`.
    pub tool: &'static str,
    /// The tool's crate version.
    pub tool_version: &'static str,
    /// The subcommand (`baseline`, `transport`).
    pub command: String,
    /// The subcommand's settings as given (durations in seconds, sizes in bytes).
    pub config: serde_json::Value,
    /// `git rev-parse HEAD` when run inside a checkout.
    pub git_revision: Option<String>,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: u64,
    /// The machine.
    pub host: HostFacts,
    /// What could not be measured, and why.
    pub skipped: Vec<String>,
    /// The figures; ratios refer to baselines by `name`.
    pub measurements: Vec<Measurement>,
}

impl Report {
    /// Write as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), BenchError> {
        let text =
            serde_json::to_string_pretty(self).map_err(|source| BenchError::Json { source })?;
        std::fs::write(path, text + "\n")
            .map_err(BenchError::io(format!("write {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Recorder;
    use crate::report::Kind;
    use std::time::Duration;

    #[test]
    fn report_has_the_versioned_layout() {
        let mut r = Recorder::new().unwrap();
        for us in [10, 20, 30] {
            r.record(Duration::from_micros(us));
        }
        let mut m = Measurement::new("rpc/tcp/64B", "basalt rpc", "tcp", Kind::Latency, 64)
            .with_run(3, Duration::from_secs(1), None);
        m.latency = r.summary();
        let report = Report {
            schema_version: SCHEMA_VERSION,
            tool: "basalt-bench",
            tool_version: env!("CARGO_PKG_VERSION"),
            command: "transport".into(),
            config: serde_json::json!({"duration_s": 1.0}),
            git_revision: None,
            started_unix_s: 0,
            host: HostFacts::gather(),
            skipped: vec![],
            measurements: vec![m],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        report.write(&path).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["config"]["duration_s"], 1.0);
        assert!(v["host"]["nproc"].as_u64().unwrap() >= 1);
        let m = &v["measurements"][0];
        assert_eq!(m["kind"], "latency");
        assert_eq!(m["latency"]["samples"], 3);
        let table = m["latency"]["percentiles"].as_array().unwrap();
        assert_eq!(table.len(), crate::histogram::PERCENTILES.len());
        assert!(table[0]["percentile"].is_number() && table[0]["ns"].is_number());
    }
}
