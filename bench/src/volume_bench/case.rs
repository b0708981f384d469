//! Workload cases of `basalt-bench volume`: `PATTERN:BS:IODEPTH[:JOBS]`, e.g.
//! `randwrite:4K:1`, `randread:4K:32`, `write:1M:4`, `randrw:4K:16:2`.

use crate::error::BenchError;
use crate::units::{fmt_size, parse_size};
use serde::Serialize;

/// Access pattern of a case (fio's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Random writes.
    Randwrite,
    /// Random reads.
    Randread,
    /// Sequential writes.
    Write,
    /// Sequential reads.
    Read,
    /// Random mix of reads and writes (`--rwmix-read` percent reads).
    Randrw,
}

impl Pattern {
    /// Parse fio's pattern name.
    pub fn parse(s: &str) -> Result<Self, BenchError> {
        Ok(match s {
            "randwrite" => Pattern::Randwrite,
            "randread" => Pattern::Randread,
            "write" => Pattern::Write,
            "read" => Pattern::Read,
            "randrw" => Pattern::Randrw,
            _ => {
                return Err(BenchError::BadWorkload {
                    input: s.into(),
                    reason: "pattern must be randwrite, randread, write, read or randrw".into(),
                })
            }
        })
    }

    /// fio's name.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Randwrite => "randwrite",
            Pattern::Randread => "randread",
            Pattern::Write => "write",
            Pattern::Read => "read",
            Pattern::Randrw => "randrw",
        }
    }

    /// Random offsets (else sequential).
    pub fn is_random(self) -> bool {
        matches!(
            self,
            Pattern::Randwrite | Pattern::Randread | Pattern::Randrw
        )
    }

    /// Whether the case reads (and so needs its region written first).
    pub fn reads(self) -> bool {
        matches!(self, Pattern::Randread | Pattern::Read | Pattern::Randrw)
    }
}

/// One measurement of the `volume` subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Case {
    /// Access pattern.
    pub pattern: Pattern,
    /// Bytes per I/O.
    pub bs: u64,
    /// I/Os in flight per job.
    pub iodepth: usize,
    /// Concurrent jobs (each with `iodepth` I/Os in flight; sequential jobs get their own
    /// slice of the region).
    pub jobs: usize,
}

/// Largest I/O the client accepts in one call.
pub const MAX_BS: u64 = 16 << 20;

impl Case {
    /// A checked case.
    pub fn new(pattern: Pattern, bs: u64, iodepth: usize, jobs: usize) -> Result<Self, BenchError> {
        let input = format!("{}:{bs}:{iodepth}:{jobs}", pattern.name());
        let bad = |reason: &str| BenchError::BadWorkload {
            input: input.clone(),
            reason: reason.into(),
        };
        if bs == 0 || bs % 512 != 0 || bs > MAX_BS {
            return Err(bad(
                "block size must be a multiple of 512 B, at most 16 MiB",
            ));
        }
        if iodepth == 0 || iodepth > 1024 {
            return Err(bad("iodepth must be 1..=1024"));
        }
        if jobs == 0 || jobs > 64 {
            return Err(bad("jobs must be 1..=64"));
        }
        Ok(Case {
            pattern,
            bs,
            iodepth,
            jobs,
        })
    }

    /// Parse `PATTERN:BS:IODEPTH[:JOBS]`.
    pub fn parse(s: &str) -> Result<Self, BenchError> {
        let bad = |reason: &str| BenchError::BadWorkload {
            input: s.into(),
            reason: reason.into(),
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(bad(
                "expected PATTERN:BS:IODEPTH[:JOBS], e.g. randread:4K:32",
            ));
        }
        let pattern = Pattern::parse(parts[0])?;
        let bs = parse_size(parts[1]).map_err(|_| bad("bad block size"))?;
        let iodepth = parts[2].parse().map_err(|_| bad("bad iodepth"))?;
        let jobs = match parts.get(3) {
            Some(j) => j.parse().map_err(|_| bad("bad jobs"))?,
            None => 1,
        };
        Case::new(pattern, bs, iodepth, jobs)
    }

    /// I/Os in flight in total.
    pub fn total_depth(&self) -> usize {
        self.iodepth * self.jobs
    }

    /// Measurement name, e.g. `volume/randread/4KiB/qd32x1`.
    pub fn name(&self) -> String {
        format!(
            "volume/{}/{}/qd{}x{}",
            self.pattern.name(),
            fmt_size(self.bs).replace(' ', ""),
            self.iodepth,
            self.jobs
        )
    }

    /// Row label, e.g. `volume randread QD32`.
    pub fn subject(&self) -> String {
        if self.jobs == 1 {
            format!("volume {} QD{}", self.pattern.name(), self.iodepth)
        } else {
            format!(
                "volume {} QD{}×{}",
                self.pattern.name(),
                self.iodepth,
                self.jobs
            )
        }
    }
}

/// Parse a comma-separated case list.
pub fn parse_cases(list: &[String]) -> Result<Vec<Case>, BenchError> {
    let cases: Vec<Case> = list
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Case::parse(s))
        .collect::<Result<_, _>>()?;
    if cases.is_empty() {
        return Err(BenchError::BadWorkload {
            input: list.join(","),
            reason: "no cases".into(),
        });
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_parse_with_optional_jobs() {
        let c = Case::parse("randread:4K:32").unwrap();
        assert_eq!(
            c,
            Case {
                pattern: Pattern::Randread,
                bs: 4096,
                iodepth: 32,
                jobs: 1
            }
        );
        let c = Case::parse("write:1M:4:2").unwrap();
        assert_eq!(
            (c.pattern, c.bs, c.iodepth, c.jobs),
            (Pattern::Write, 1 << 20, 4, 2)
        );
        assert_eq!(c.total_depth(), 8);
        assert_eq!(c.name(), "volume/write/1MiB/qd4x2");
        assert_eq!(c.subject(), "volume write QD4×2");
        assert_eq!(
            Case::parse("randwrite:4K:1").unwrap().subject(),
            "volume randwrite QD1"
        );
    }

    #[test]
    fn bad_cases_are_typed_errors() {
        for bad in [
            "",
            "randwrite",
            "randwrite:4K",
            "randwrite:4K:1:1:1",
            "trim:4K:1",
            "randwrite:4X:1",
            "randwrite:100:1",
            "randwrite:32M:1",
            "randwrite:4K:0",
            "randwrite:4K:x",
            "randwrite:4K:1:0",
        ] {
            assert!(
                matches!(Case::parse(bad), Err(BenchError::BadWorkload { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn case_lists_skip_blanks_and_need_one_case() {
        let list: Vec<String> = ["randwrite:4K:1", " ", "randread:4K:32"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(parse_cases(&list).unwrap().len(), 2);
        assert!(parse_cases(&[]).is_err());
    }

    #[test]
    fn patterns_know_randomness_and_reads() {
        assert!(Pattern::Randrw.is_random() && Pattern::Randrw.reads());
        assert!(!Pattern::Write.is_random() && !Pattern::Write.reads());
        assert!(Pattern::Read.reads() && !Pattern::Randwrite.reads());
        for p in ["randwrite", "randread", "write", "read", "randrw"] {
            assert_eq!(Pattern::parse(p).unwrap().name(), p);
        }
    }
}
