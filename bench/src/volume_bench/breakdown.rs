//! `volume --breakdown`: where one I/O's time goes.
//!
//! The chunkservers' Prometheus endpoints are read just before and just after each
//! case's measured pass; the difference of each histogram's `_sum` and `_count` is the
//! mean over exactly the I/Os of that pass: the whole handler
//! (`basalt_chunkserver_request_seconds`) and its stages
//! (`basalt_chunkserver_stage_seconds`: admission, the copyset's part — lease check and
//! chunk store read, or raft replication until applied —, the read's CRC32C). The
//! client's mean minus the handler's is what lies outside the handler: the RPC both ways
//! (framing, sockets, both sides' schedulers) and the client library. [`lines`] prints
//! them next to the floors measured in the same invocation (raw disk, raw TCP RTT and
//! Basalt's in-process RPC round trip).
//!
//! Parsing and the arithmetic are pure; [`scrape`] is the only I/O.

use crate::error::BenchError;
use crate::report::Measurement;
use basalt_testkit::cluster::plan::Kind;
use basalt_testkit::DevCluster;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Bound on one scrape (connect, write, read).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest metrics page read.
const MAX_PAGE: u64 = 4 << 20;

/// Handler latency histogram of the chunk service.
pub const REQUEST: &str = "basalt_chunkserver_request_seconds";
/// Per-stage histogram of the chunk service's data handlers.
pub const STAGE: &str = "basalt_chunkserver_stage_seconds";
/// WAL fdatasync counter.
pub const WAL_FSYNCS: &str = "basalt_chunkserver_wal_fsyncs";
/// WAL record counter.
pub const WAL_RECORDS: &str = "basalt_chunkserver_wal_records";

/// The stages each operation reports, in handler order.
pub fn stages_of(op: &str) -> &'static [&'static str] {
    match op {
        "read" => &["admit", "copyset", "crc"],
        "write" => &["admit", "copyset"],
        _ => &[],
    }
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with its `_sum`/`_count`/`_total` suffix).
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// Parse the Prometheus text exposition format: comments and lines that do not parse
/// are skipped (a newer daemon's extra syntax must not break the bench).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        // Label values here never hold quotes; an escaped one would end the value early
        // and the line be skipped below, which is harmless.
        let (value, after) = after.split_once('"')?;
        out.push((key.trim_start_matches(',').to_string(), value.to_string()));
        rest = after.trim_start_matches(',');
    }
    Some(out)
}

/// Every chunkserver's samples at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    samples: Vec<Sample>,
}

impl Snapshot {
    /// A snapshot of these samples (tests; several endpoints' samples concatenated).
    pub fn from_samples(samples: Vec<Sample>) -> Self {
        Snapshot { samples }
    }

    /// Sum over every endpoint of the series `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// A counter, exposed as `name_total` (or `name` by older encoders).
    pub fn counter(&self, name: &str) -> f64 {
        self.sum(&format!("{name}_total"), &[]) + self.sum(name, &[])
    }
}

/// Mean of histogram `name` with `labels` between two snapshots, in seconds, and how many
/// observations it covers; `None` when nothing was observed.
pub fn mean_between(
    before: &Snapshot,
    after: &Snapshot,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<(f64, f64)> {
    let count =
        after.sum(&format!("{name}_count"), labels) - before.sum(&format!("{name}_count"), labels);
    let sum =
        after.sum(&format!("{name}_sum"), labels) - before.sum(&format!("{name}_sum"), labels);
    (count > 0.0).then(|| (sum / count, count))
}

/// The server-side figures of operation `op` (`read` or `write`) between two snapshots,
/// as `extra` entries of the case's measurement (µs): `server_handler_us`,
/// `server_<stage>_us`, `server_requests`; for writes also `wal_records_per_fsync`.
pub fn server_figures(before: &Snapshot, after: &Snapshot, op: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some((handler, n)) = mean_between(before, after, REQUEST, &[("op", op)]) else {
        return out;
    };
    out.insert("server_handler_us".into(), handler * 1e6);
    out.insert("server_requests".into(), n);
    for stage in stages_of(op) {
        if let Some((m, _)) = mean_between(before, after, STAGE, &[("op", op), ("stage", stage)]) {
            out.insert(format!("server_{stage}_us"), m * 1e6);
        }
    }
    if op == "write" {
        let fsyncs = after.counter(WAL_FSYNCS) - before.counter(WAL_FSYNCS);
        let records = after.counter(WAL_RECORDS) - before.counter(WAL_RECORDS);
        if fsyncs > 0.0 {
            out.insert("wal_records_per_fsync".into(), records / fsyncs);
        }
    }
    out
}

/// The metrics endpoints of a dev cluster's running chunkservers (each writes its bound
/// address to `<state dir>/<name>/metrics-addr`).
pub fn endpoints(state_dir: &Path) -> Result<Vec<SocketAddr>, String> {
    let c = DevCluster::attach(state_dir).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in c.status() {
        if s.kind != Kind::Chunkserver || s.pid.is_none() {
            continue;
        }
        let p = state_dir.join(&s.name).join("metrics-addr");
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let addr = text
            .trim()
            .parse()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        out.push(addr);
    }
    if out.is_empty() {
        return Err(format!("no running chunkserver in {}", state_dir.display()));
    }
    Ok(out)
}

/// `GET /metrics` of one endpoint (HTTP/1.0, bounded in time and size).
pub fn scrape(addr: SocketAddr) -> Result<String, BenchError> {
    let err = |reason: String| BenchError::Scrape { addr, reason };
    let mut s =
        TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).map_err(|e| err(e.to_string()))?;
    s.set_read_timeout(Some(SCRAPE_TIMEOUT))
        .and_then(|_| s.set_write_timeout(Some(SCRAPE_TIMEOUT)))
        .map_err(|e| err(e.to_string()))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: basalt-bench\r\n\r\n")
        .map_err(|e| err(e.to_string()))?;
    let mut page = String::new();
    s.take(MAX_PAGE)
        .read_to_string(&mut page)
        .map_err(|e| err(e.to_string()))?;
    let (head, body) = page
        .split_once("\r\n\r\n")
        .ok_or_else(|| err("no end of the HTTP head".into()))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(err(format!(
            "answered {:?}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_string())
}

/// Samples of every endpoint, concatenated.
pub fn snapshot(addrs: &[SocketAddr]) -> Result<Snapshot, BenchError> {
    let mut samples = Vec::new();
    for &a in addrs {
        samples.extend(parse(&scrape(a)?));
    }
    Ok(Snapshot { samples })
}

/// The floors a QD1 case is compared with (means, µs), from the same invocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Floors {
    /// Raw O_DIRECT 4 KiB random read.
    pub disk_read_us: Option<f64>,
    /// Raw O_DIRECT 4 KiB write + fdatasync.
    pub disk_write_us: Option<f64>,
    /// Raw TCP 4 KiB ping-pong.
    pub rtt_us: Option<f64>,
    /// Basalt RPC 4 KiB echo round trip, client and server in this process.
    pub rpc_us: Option<f64>,
}

fn mean_us(all: &[Measurement], name: &str) -> Option<f64> {
    all.iter()
        .find(|m| m.name == name && m.ops > 0)
        .and_then(|m| m.latency.as_ref())
        .map(|l| l.mean_ns / 1e3)
        .filter(|v| *v > 0.0)
}

impl Floors {
    /// The floors found among `all` (by measurement name).
    pub fn find(
        all: &[Measurement],
        disk_read: &str,
        disk_write: &str,
        rtt: &str,
        rpc: &str,
    ) -> Self {
        Floors {
            disk_read_us: mean_us(all, disk_read),
            disk_write_us: mean_us(all, disk_write),
            rtt_us: mean_us(all, rtt),
            rpc_us: mean_us(all, rpc),
        }
    }
}

fn pct(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.0}%", 100.0 * part / whole)
    } else {
        "-".into()
    }
}

/// The printed breakdown of one volume measurement that has server figures (its `extra`
/// from [`server_figures`]); empty when it has none.
pub fn lines(m: &Measurement, op: &str, floors: &Floors) -> Vec<String> {
    let (Some(client), Some(&handler)) = (
        m.latency.as_ref().map(|l| l.mean_ns / 1e3),
        m.extra.get("server_handler_us"),
    ) else {
        return Vec::new();
    };
    let mut out = vec![format!("  {} (means, µs):", m.name)];
    out.push(format!(
        "    client (issue → completion)      {client:>8.1}  100%"
    ));
    out.push(format!(
        "    chunkserver handler              {handler:>8.1}  {}",
        pct(handler, client)
    ));
    let mut staged = 0.0;
    for stage in stages_of(op) {
        if let Some(&v) = m.extra.get(&format!("server_{stage}_us")) {
            staged += v;
            let what = match (op, *stage) {
                ("read", "copyset") => "copyset (lease check + chunk store read)",
                ("write", "copyset") => "copyset (raft replication + apply)",
                ("read", "crc") => "crc32c of the data",
                _ => "admission (checks, in-flight limit, epoch)",
            };
            out.push(format!("      {what:<40} {v:>8.1}  {}", pct(v, client)));
        }
    }
    out.push(format!(
        "      {:<40} {:>8.1}  {}",
        "rest of the handler",
        handler - staged,
        pct(handler - staged, client)
    ));
    let outside = client - handler;
    out.push(format!(
        "    outside the handler              {outside:>8.1}  {}   (RPC both ways, both schedulers, client library)",
        pct(outside, client)
    ));
    if let Some(r) = m.extra.get("wal_records_per_fsync") {
        out.push(format!(
            "    WAL records per fdatasync (all chunkservers) {r:.2}"
        ));
    }
    let mut fl = Vec::new();
    let disk = if op == "read" {
        floors.disk_read_us.map(|d| ("raw O_DIRECT 4K read", d))
    } else {
        floors.disk_write_us.map(|d| ("raw 4K write+fdatasync", d))
    };
    if let Some((what, d)) = disk {
        fl.push(format!("{what} {d:.1}"));
        if let Some(&c) = m.extra.get("server_copyset_us") {
            fl.push(format!("copyset − disk {:.1}", c - d));
        }
    }
    if let Some(rtt) = floors.rtt_us {
        fl.push(format!("raw TCP 4K RTT {rtt:.1}"));
        fl.push(format!("outside − RTT {:.1}", outside - rtt));
    }
    if let Some(rpc) = floors.rpc_us {
        fl.push(format!("Basalt RPC 4K RTT in-process {rpc:.1}"));
        fl.push(format!("outside − RPC {:.1}", outside - rpc));
    }
    if !fl.is_empty() {
        out.push(format!("    floors: {}", fl.join("; ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::LatencySummary;
    use crate::report::Kind as MKind;

    const PAGE: &str = r#"# HELP basalt_chunkserver_request_seconds Chunk service request latency by operation.
# TYPE basalt_chunkserver_request_seconds histogram
basalt_chunkserver_request_seconds_sum{op="read"} 0.5
basalt_chunkserver_request_seconds_count{op="read"} 1000
basalt_chunkserver_request_seconds_bucket{le="0.00001",op="read"} 0
basalt_chunkserver_stage_seconds_sum{op="read",stage="copyset"} 0.3
basalt_chunkserver_stage_seconds_count{op="read",stage="copyset"} 1000
basalt_chunkserver_wal_fsyncs_total 10
basalt_chunkserver_wal_records_total 40
garbage line without a value x
# EOF
"#;

    #[test]
    fn parses_names_labels_and_values_and_skips_the_rest() {
        let s = parse(PAGE);
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].name, "basalt_chunkserver_request_seconds_sum");
        assert_eq!(s[0].labels, vec![("op".into(), "read".into())]);
        assert_eq!(s[0].value, 0.5);
        assert_eq!(s[2].labels.len(), 2);
        assert_eq!(s[3].labels[1], ("stage".into(), "copyset".into()));
        assert_eq!(s[5].labels, vec![]);
    }

    fn snap(sum: f64, count: f64, stage_sum: f64, fsyncs: f64, records: f64) -> Snapshot {
        let page = format!(
            "{REQUEST}_sum{{op=\"read\"}} {sum}\n{REQUEST}_count{{op=\"read\"}} {count}\n\
             {REQUEST}_sum{{op=\"write\"}} {sum}\n{REQUEST}_count{{op=\"write\"}} {count}\n\
             {STAGE}_sum{{op=\"read\",stage=\"copyset\"}} {stage_sum}\n\
             {STAGE}_count{{op=\"read\",stage=\"copyset\"}} {count}\n\
             {WAL_FSYNCS}_total {fsyncs}\n{WAL_RECORDS}_total {records}\n"
        );
        // Two chunkservers with the same figures: sums add up.
        let mut s = parse(&page);
        s.extend(parse(&page));
        Snapshot::from_samples(s)
    }

    #[test]
    fn means_cover_only_the_interval_between_snapshots() {
        let before = snap(1.0, 1000.0, 0.5, 10.0, 10.0);
        let after = snap(1.2, 1100.0, 0.6, 20.0, 50.0);
        let (m, n) = mean_between(&before, &after, REQUEST, &[("op", "read")]).unwrap();
        assert_eq!(n, 200.0);
        assert!((m - 0.002).abs() < 1e-12, "{m}");
        let f = server_figures(&before, &after, "read");
        assert!((f["server_handler_us"] - 2000.0).abs() < 1e-6);
        assert!((f["server_copyset_us"] - 1000.0).abs() < 1e-6);
        assert!(!f.contains_key("server_crc_us"), "nothing observed");
        assert!(!f.contains_key("wal_records_per_fsync"));
        let w = server_figures(&before, &after, "write");
        assert!((w["wal_records_per_fsync"] - 4.0).abs() < 1e-12);
        assert!(server_figures(&before, &before, "read").is_empty());
    }

    #[test]
    fn lines_split_the_client_mean() {
        let mut m = Measurement::new("volume/randread/4KiB/qd1", "s", "b", MKind::Latency, 4096);
        m.ops = 10;
        m.latency = Some(LatencySummary {
            samples: 10,
            mean_ns: 400_000.0,
            p50_ns: 400_000.0,
            p90_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            percentiles: Vec::new(),
        });
        m.extra.insert("server_handler_us".into(), 150.0);
        m.extra.insert("server_copyset_us".into(), 120.0);
        let floors = Floors {
            disk_read_us: Some(100.0),
            rtt_us: Some(40.0),
            ..Floors::default()
        };
        let text = lines(&m, "read", &floors).join("\n");
        assert!(text.contains("outside the handler"), "{text}");
        assert!(text.contains("250.0"), "outside = 400 - 150: {text}");
        assert!(text.contains("copyset − disk 20.0"), "{text}");
        assert!(text.contains("outside − RTT 210.0"), "{text}");
        let mut bare = m.clone();
        bare.extra.clear();
        assert!(lines(&bare, "read", &floors).is_empty());
    }

    #[test]
    fn scraping_nothing_listening_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(matches!(scrape(addr), Err(BenchError::Scrape { .. })));
    }
}
