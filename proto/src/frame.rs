//! The fixed frame header.
//!
//! Layout (little-endian, 40 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `BSLT` (`0x544c5342` read as LE u32) |
//! | 4 | 2 | protocol version |
//! | 6 | 1 | kind ([`FrameKind`]) |
//! | 7 | 1 | flags ([`FrameFlags`]) |
//! | 8 | 2 | method ([`crate::Method`] number) |
//! | 10 | 2 | reserved, must be 0 |
//! | 12 | 4 | encoded header length |
//! | 16 | 4 | payload length |
//! | 20 | 8 | correlation id (0 for one-way messages) |
//! | 28 | 8 | group id (0 when the frame belongs to no raft group) |
//! | 36 | 4 | CRC32C of bytes 0..36 |
//!
//! The encoded header (`header_len` bytes) and the payload (`payload_len` bytes) follow.
//! Both lengths are checked against [`Limits`] before a single byte of either is read or
//! allocated, so a hostile length field cannot make a reader allocate gigabytes.

use crate::error::ProtoError;
use crate::ids::GroupId;

/// Bytes in the fixed frame header.
pub const FRAME_HEADER_LEN: usize = 40;
/// `BSLT` as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"BSLT");
/// The protocol version this build speaks. Bump on any wire change.
pub const PROTOCOL_VERSION: u16 = 2;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A request that expects one response with the same correlation id.
    Request = 1,
    /// The response to a request.
    Response = 2,
    /// A message that expects no response.
    OneWay = 3,
}

impl FrameKind {
    fn from_u8(v: u8) -> Result<Self, ProtoError> {
        match v {
            1 => Ok(Self::Request),
            2 => Ok(Self::Response),
            3 => Ok(Self::OneWay),
            kind => Err(ProtoError::UnknownKind { kind }),
        }
    }
}

bitflags::bitflags! {
    /// Per-frame flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FrameFlags: u8 {
        /// A response whose encoded header is a [`crate::method::RemoteError`] instead of
        /// the method's reply type: the request was not handled (no such method, bad
        /// request header, handler gone).
        const ERROR = 0b0000_0001;
    }
}

/// Decoding limits. Anything larger is refused before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded header accepted.
    pub max_header_len: u32,
    /// Largest payload accepted.
    pub max_payload_len: u32,
}

impl Limits {
    /// Default: 4 MiB of encoded header (raft batches of metadata), 80 MiB of payload
    /// (a whole 16 MiB chunk with room for a raft batch of several).
    pub const DEFAULT: Limits = Limits {
        max_header_len: 4 * 1024 * 1024,
        max_payload_len: 80 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The decoded fixed header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Protocol version of the sender.
    pub version: u16,
    /// Request, response or one-way.
    pub kind: FrameKind,
    /// Flags.
    pub flags: FrameFlags,
    /// Method number.
    pub method: u16,
    /// Length of the encoded header that follows.
    pub header_len: u32,
    /// Length of the payload after the encoded header.
    pub payload_len: u32,
    /// Correlation id tying a response to its request.
    pub correlation_id: u64,
    /// Raft group this frame belongs to ([`GroupId::NONE`] if none).
    pub group: GroupId,
}

impl FrameHeader {
    /// A header for this build's protocol version.
    pub fn new(kind: FrameKind, method: u16, correlation_id: u64, group: GroupId) -> Self {
        FrameHeader {
            version: PROTOCOL_VERSION,
            kind,
            flags: FrameFlags::empty(),
            method,
            header_len: 0,
            payload_len: 0,
            correlation_id,
            group,
        }
    }

    /// Total bytes of the frame on the wire, fixed header included.
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + self.header_len as u64 + self.payload_len as u64
    }

    /// Write the fixed header.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6] = self.kind as u8;
        b[7] = self.flags.bits();
        b[8..10].copy_from_slice(&self.method.to_le_bytes());
        // 10..12 reserved, zero.
        b[12..16].copy_from_slice(&self.header_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.payload_len.to_le_bytes());
        b[20..28].copy_from_slice(&self.correlation_id.to_le_bytes());
        b[28..36].copy_from_slice(&self.group.0.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse and validate a fixed header: magic, checksum, kind, flags, lengths against
    /// `limits`. The version is returned as found; [`FrameHeader::check_version`] decides
    /// whether it is acceptable, so the hello can report a mismatch as such.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, ProtoError> {
        if bytes.len() < FRAME_HEADER_LEN {
            return Err(ProtoError::Truncated {
                have: bytes.len(),
                need: FRAME_HEADER_LEN,
            });
        }
        let b = &bytes[..FRAME_HEADER_LEN];
        let magic = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
        if magic != MAGIC {
            return Err(ProtoError::BadMagic { found: magic });
        }
        let carried = u32::from_le_bytes(b[36..40].try_into().expect("4 bytes"));
        let computed = crc32c::crc32c(&b[0..36]);
        if carried != computed {
            return Err(ProtoError::BadChecksum { computed, carried });
        }
        let version = u16::from_le_bytes(b[4..6].try_into().expect("2 bytes"));
        let kind = FrameKind::from_u8(b[6])?;
        let flags = FrameFlags::from_bits(b[7]).ok_or(ProtoError::UnknownFlags { flags: b[7] })?;
        let method = u16::from_le_bytes(b[8..10].try_into().expect("2 bytes"));
        let reserved = u16::from_le_bytes(b[10..12].try_into().expect("2 bytes"));
        if reserved != 0 {
            return Err(ProtoError::ReservedNotZero { value: reserved });
        }
        let header_len = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes"));
        let payload_len = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"));
        if header_len > limits.max_header_len {
            return Err(ProtoError::HeaderTooLong {
                len: header_len,
                limit: limits.max_header_len,
            });
        }
        if payload_len > limits.max_payload_len {
            return Err(ProtoError::PayloadTooLong {
                len: payload_len,
                limit: limits.max_payload_len,
            });
        }
        Ok(FrameHeader {
            version,
            kind,
            flags,
            method,
            header_len,
            payload_len,
            correlation_id: u64::from_le_bytes(b[20..28].try_into().expect("8 bytes")),
            group: GroupId(u64::from_le_bytes(b[28..36].try_into().expect("8 bytes"))),
        })
    }

    /// Refuse a frame from another protocol version.
    pub fn check_version(&self) -> Result<(), ProtoError> {
        if self.version != PROTOCOL_VERSION {
            return Err(ProtoError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: self.version,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FrameHeader {
        let mut h = FrameHeader::new(
            FrameKind::Request,
            0x0102,
            0x1122_3344_5566_7788,
            GroupId(9),
        );
        h.header_len = 17;
        h.payload_len = 4096;
        h
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let back = FrameHeader::decode(&h.encode(), &Limits::DEFAULT).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.frame_len(), 40 + 17 + 4096);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = sample().encode();
        for i in 0..FRAME_HEADER_LEN * 8 {
            let mut b = bytes;
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                FrameHeader::decode(&b, &Limits::DEFAULT).is_err(),
                "flip of bit {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncated_and_bad_magic() {
        let bytes = sample().encode();
        assert_eq!(
            FrameHeader::decode(&bytes[..39], &Limits::DEFAULT),
            Err(ProtoError::Truncated { have: 39, need: 40 })
        );
        let garbage = [0x47u8; 40]; // "GGGG..." e.g. an HTTP "GET " would look similar
        assert!(matches!(
            FrameHeader::decode(&garbage, &Limits::DEFAULT),
            Err(ProtoError::BadMagic { .. })
        ));
    }

    #[test]
    fn lengths_beyond_limits_are_refused_before_reading() {
        let mut h = sample();
        h.payload_len = u32::MAX;
        let limits = Limits::DEFAULT;
        assert_eq!(
            FrameHeader::decode(&h.encode(), &limits),
            Err(ProtoError::PayloadTooLong {
                len: u32::MAX,
                limit: limits.max_payload_len
            })
        );
        let mut h = sample();
        h.header_len = limits.max_header_len + 1;
        assert!(matches!(
            FrameHeader::decode(&h.encode(), &limits),
            Err(ProtoError::HeaderTooLong { .. })
        ));
    }

    #[test]
    fn version_is_reported_not_hidden() {
        let mut h = sample();
        h.version = 99;
        let back = FrameHeader::decode(&h.encode(), &Limits::DEFAULT).unwrap();
        assert_eq!(
            back.check_version(),
            Err(ProtoError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: 99
            })
        );
    }

    #[test]
    fn reserved_bytes_must_be_zero_even_with_a_valid_checksum() {
        let mut b = sample().encode();
        b[10] = 1;
        let crc = crc32c::crc32c(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            FrameHeader::decode(&b, &Limits::DEFAULT),
            Err(ProtoError::ReservedNotZero { value: 1 })
        );
    }

    #[test]
    fn unknown_kind_and_flags_are_typed_errors() {
        let mut b = sample().encode();
        b[6] = 77;
        let crc = crc32c::crc32c(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            FrameHeader::decode(&b, &Limits::DEFAULT),
            Err(ProtoError::UnknownKind { kind: 77 })
        );
        let mut b = sample().encode();
        b[7] = 0x80;
        let crc = crc32c::crc32c(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            FrameHeader::decode(&b, &Limits::DEFAULT),
            Err(ProtoError::UnknownFlags { flags: 0x80 })
        );
    }
}
