//! The NBD crate's error type.

/// Why a connection is closed (the protocol offers no way to continue).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NbdError {
    /// The client sent an option or request with the wrong magic number.
    #[error("bad magic {found:#x} (expected {expected:#x})")]
    BadMagic {
        /// What arrived.
        found: u64,
        /// What the protocol requires.
        expected: u64,
    },
    /// The client set handshake flags we do not know (the protocol says: close).
    #[error("unknown client flags {flags:#x}")]
    UnknownClientFlags {
        /// The flags.
        flags: u32,
    },
    /// A write whose payload exceeds the maximum block size: the connection is closed
    /// rather than reading an unbounded payload.
    #[error("write payload of {len} bytes exceeds the maximum {max}")]
    PayloadTooLarge {
        /// Announced length.
        len: u32,
        /// Our maximum.
        max: u32,
    },
    /// EXPORT_NAME named an export that does not exist (that option has no error reply).
    #[error("unknown export {name:?}")]
    UnknownExport {
        /// The name asked for.
        name: String,
    },
    /// The client aborted the negotiation.
    #[error("client aborted the negotiation")]
    Aborted,
    /// An option's data is larger than we accept, and too large to skip.
    #[error("option data of {len} bytes is too large")]
    OptionTooLarge {
        /// Announced length.
        len: u32,
    },
    /// Socket error.
    #[error("I/O: {0}")]
    Io(String),
}

impl From<std::io::Error> for NbdError {
    fn from(e: std::io::Error) -> Self {
        NbdError::Io(e.to_string())
    }
}
