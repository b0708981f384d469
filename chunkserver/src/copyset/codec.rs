//! Encoding of raft messages, log entries and copyset metadata.
//!
//! bincode 2 (standard configuration, the same as `basalt_proto::codec`) with a larger
//! allocation limit than message headers get: an AppendEntries body or a log entry carries
//! chunk data (bounded by `max_payload_entries` times the largest write).

use bincode::config::{Configuration, Limit};
use serde::{de::DeserializeOwned, Serialize};

/// Upper bound on what decoding one raft body may allocate.
pub const MAX_RAFT_BODY: usize = 256 * 1024 * 1024;

type Config =
    Configuration<bincode::config::LittleEndian, bincode::config::Varint, Limit<MAX_RAFT_BODY>>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_RAFT_BODY>()
}

/// Why encoding or decoding failed (rendered: bincode's errors are not `Clone`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct CodecError {
    /// The type being encoded or decoded.
    pub what: &'static str,
    /// bincode's explanation.
    pub reason: String,
}

impl From<CodecError> for std::io::Error {
    fn from(e: CodecError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// Encode a value.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(v, config()).map_err(|e| CodecError {
        what: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Decode a value that must occupy all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let what = std::any::type_name::<T>();
    let (v, used) =
        bincode::serde::decode_from_slice::<T, _>(bytes, config()).map_err(|e| CodecError {
            what,
            reason: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(CodecError {
            what,
            reason: format!("{} trailing bytes", bytes.len() - used),
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        let enc = encode(&(1u64, vec![1u8, 2, 3])).unwrap();
        assert_eq!(decode::<(u64, Vec<u8>)>(&enc).unwrap(), (1, vec![1, 2, 3]));
        let mut longer = enc.clone();
        longer.push(0);
        assert!(decode::<(u64, Vec<u8>)>(&longer).is_err());
        for cut in 0..enc.len() {
            assert!(decode::<(u64, Vec<u8>)>(&enc[..cut]).is_err());
        }
    }
}
