//! Errors of the wire codec.

/// Everything that can go wrong while decoding or encoding a frame or a message.
///
/// Decoding never panics and never allocates from an unchecked length field; every
/// failure ends up here with the offending values as fields.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// Fewer bytes were supplied than the fixed frame header needs.
    #[error("frame header truncated: have {have} bytes, need {need}")]
    Truncated {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The first four bytes are not Basalt's magic (the peer speaks something else).
    #[error("bad frame magic {found:#010x}")]
    BadMagic {
        /// The magic found on the wire.
        found: u32,
    },
    /// The header checksum does not match its bytes (corruption or garbage).
    #[error("frame header checksum mismatch: computed {computed:#010x}, carried {carried:#010x}")]
    BadChecksum {
        /// Checksum computed over the received bytes.
        computed: u32,
        /// Checksum the frame carried.
        carried: u32,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// Our protocol version.
        ours: u16,
        /// The peer's protocol version.
        theirs: u16,
    },
    /// The frame kind byte is not one we know.
    #[error("unknown frame kind {kind}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// Flag bits we do not understand are set.
    #[error("unknown frame flags {flags:#04x}")]
    UnknownFlags {
        /// The flags byte.
        flags: u8,
    },
    /// The reserved header bytes are not zero (a sender from a future protocol, or garbage
    /// that happens to carry a valid checksum).
    #[error("reserved frame header bytes are {value:#06x}, must be 0")]
    ReservedNotZero {
        /// The reserved field as found.
        value: u16,
    },
    /// The encoded header is longer than the configured limit.
    #[error("encoded header too long: {len} bytes > limit {limit}")]
    HeaderTooLong {
        /// Length announced by the frame.
        len: u32,
        /// Limit in force.
        limit: u32,
    },
    /// The payload is longer than the configured limit.
    #[error("payload too long: {len} bytes > limit {limit}")]
    PayloadTooLong {
        /// Length announced by the frame.
        len: u32,
        /// Limit in force.
        limit: u32,
    },
    /// The method number is not in the method table.
    #[error("unknown method {method}")]
    UnknownMethod {
        /// The method number.
        method: u16,
    },
    /// The encoded header could not be decoded as the expected message type.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// The message type being decoded.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// The encoded header had bytes left over after the message (framing bug or garbage).
    #[error("trailing bytes after {what}: {extra}")]
    TrailingBytes {
        /// The message type decoded.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A message could not be encoded (it exceeds the limits).
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// The message type being encoded.
        what: &'static str,
        /// The encoder's explanation.
        reason: String,
    },
}
