//! Bounded encoding of message structs (the frame's "encoded header").
//!
//! bincode 2 with its standard configuration (little-endian, varint integers) and a hard
//! allocation limit, so a length prefix inside a message cannot make the decoder reserve
//! more than [`MAX_DECODE_ALLOC`] bytes however it lies. The frame's own `header_len` is
//! already checked against [`crate::Limits`] before we get here.

use crate::error::ProtoError;
use bincode::config::{Configuration, Limit};
use serde::{de::DeserializeOwned, Serialize};

/// Upper bound on what decoding one message may allocate (matches the largest header).
pub const MAX_DECODE_ALLOC: usize = 4 * 1024 * 1024;

type Config =
    Configuration<bincode::config::LittleEndian, bincode::config::Varint, Limit<MAX_DECODE_ALLOC>>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_DECODE_ALLOC>()
}

/// Encode a message.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    bincode::serde::encode_to_vec(msg, config()).map_err(|e| ProtoError::Encode {
        what: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Decode a message that must occupy all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    let what = std::any::type_name::<T>();
    let (msg, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config()).map_err(|e| {
        ProtoError::Decode {
            what,
            reason: e.to_string(),
        }
    })?;
    if used != bytes.len() {
        return Err(ProtoError::TrailingBytes {
            what,
            extra: bytes.len() - used,
        });
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        a: u64,
        b: Vec<u8>,
        c: String,
    }

    #[test]
    fn round_trip_and_trailing_bytes() {
        let s = Sample {
            a: 300,
            b: vec![1, 2, 3],
            c: "x".into(),
        };
        let mut bytes = encode(&s).unwrap();
        assert_eq!(decode::<Sample>(&bytes).unwrap(), s);
        bytes.push(0);
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(ProtoError::TrailingBytes { extra: 1, .. })
        ));
    }

    #[test]
    fn lying_length_prefix_does_not_allocate() {
        // a: varint 1, b: length prefix u64::MAX (0xff marker + 8 bytes), then nothing.
        let mut bytes = vec![1u8, 0xff];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode::<Sample>(&bytes).unwrap_err();
        assert!(matches!(err, ProtoError::Decode { .. }), "{err:?}");
    }

    #[test]
    fn truncated_message_is_an_error() {
        let bytes = encode(&Sample {
            a: 1,
            b: vec![9; 100],
            c: "hello".into(),
        })
        .unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<Sample>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
