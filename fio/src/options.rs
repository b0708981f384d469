//! The engine's fio options, parsed from the strings fio stored (pure, no I/O).

use crate::error::FioError;

/// Which transport the client backend uses to reach chunkservers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportChoice {
    /// TCP only.
    Tcp,
    /// UCX (RDMA) with TCP fallback.
    Ucx,
    /// UCX where it beats TCP, else TCP.
    Auto,
}

/// What `volume=` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSpec {
    /// `mem:SIZE`: the in-memory test backend of `SIZE` bytes.
    Mem {
        /// Size in bytes.
        size: u64,
    },
    /// A Basalt volume name (client backend).
    Named(String),
}

/// The parsed engine options of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// MDS addresses (`mds=a:1,b:2`); empty: from the client configuration file or
    /// `$BASALT_MDS`.
    pub mds: Vec<String>,
    /// The volume.
    pub volume: VolumeSpec,
    /// The transport.
    pub transport: TransportChoice,
    /// Spin instead of sleeping in getevents.
    pub busy_poll: bool,
    /// Worker threads of the job's async runtime.
    pub runtime_threads: usize,
}

impl EngineOptions {
    /// Parse the option values as fio stored them (`None` = not given).
    pub fn parse(
        mds: Option<&str>,
        volume: Option<&str>,
        transport: Option<&str>,
        busy_poll: bool,
        runtime_threads: u32,
    ) -> Result<Self, FioError> {
        let volume = match volume.map(str::trim) {
            None | Some("") => return Err(FioError::MissingVolume),
            Some(v) => match v.strip_prefix("mem:") {
                Some(size) => VolumeSpec::Mem {
                    size: parse_size(size).ok_or_else(|| FioError::BadMemSize {
                        spec: v.to_string(),
                    })?,
                },
                None => VolumeSpec::Named(v.to_string()),
            },
        };
        let mds: Vec<String> = match mds.map(str::trim) {
            None | Some("") => Vec::new(),
            Some(list) => {
                let addrs: Vec<String> = list.split(',').map(|a| a.trim().to_string()).collect();
                if addrs.iter().any(String::is_empty) {
                    return Err(FioError::BadMds {
                        list: list.to_string(),
                    });
                }
                addrs
            }
        };
        let transport = match transport.unwrap_or("auto") {
            "tcp" => TransportChoice::Tcp,
            "ucx" => TransportChoice::Ucx,
            "auto" => TransportChoice::Auto,
            other => {
                return Err(FioError::BadTransport {
                    value: other.to_string(),
                })
            }
        };
        Ok(EngineOptions {
            mds,
            volume,
            transport,
            busy_poll,
            runtime_threads: runtime_threads.clamp(1, 64) as usize,
        })
    }
}

/// `123`, `64k`, `64m`, `1g`, `1t` (binary multiples, case-insensitive); `None` for zero,
/// garbage or overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' => (&s[..s.len() - 1], 10),
        b'm' => (&s[..s.len() - 1], 20),
        b'g' => (&s[..s.len() - 1], 30),
        b't' => (&s[..s.len() - 1], 40),
        _ => (&s[..], 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let size = n.checked_mul(1u64 << shift)?;
    (size > 0).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        for bad in ["", "0", "m", "-1", "1.5m", "12q", "99999999999999999999t"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn mem_volume_needs_no_mds() {
        let o = EngineOptions::parse(None, Some("mem:16m"), None, false, 1).unwrap();
        assert_eq!(o.volume, VolumeSpec::Mem { size: 16 << 20 });
        assert_eq!(o.transport, TransportChoice::Auto);
        assert!(o.mds.is_empty());
    }

    #[test]
    fn named_volume_takes_mds_from_the_option_or_the_client_file() {
        let o = EngineOptions::parse(None, Some("vol1"), Some("tcp"), true, 2).unwrap();
        assert!(
            o.mds.is_empty(),
            "resolved later from the client configuration"
        );
        let o = EngineOptions::parse(Some("a:1, b:2"), Some("vol1"), Some("ucx"), true, 2).unwrap();
        assert_eq!(o.mds, vec!["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(o.transport, TransportChoice::Ucx);
        assert!(o.busy_poll);
        assert_eq!(o.runtime_threads, 2);
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert_eq!(
            EngineOptions::parse(None, None, None, false, 1),
            Err(FioError::MissingVolume)
        );
        assert!(matches!(
            EngineOptions::parse(None, Some("mem:lots"), None, false, 1),
            Err(FioError::BadMemSize { .. })
        ));
        assert!(matches!(
            EngineOptions::parse(Some("a:1,,b:2"), Some("v"), None, false, 1),
            Err(FioError::BadMds { .. })
        ));
        assert!(matches!(
            EngineOptions::parse(None, Some("mem:1m"), Some("rdma"), false, 1),
            Err(FioError::BadTransport { .. })
        ));
    }
}
