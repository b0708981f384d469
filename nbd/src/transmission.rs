//! Transmission phase as pure functions: parse and validate a request, encode replies.
//!
//! Validation decides, before any I/O, whether a request runs, gets an error reply (and
//! whether its write payload must be read and discarded first so the stream stays in
//! sync), or closes the connection.

use crate::consts::*;
use crate::error::NbdError;
use crate::handshake::{BlockSizes, Negotiated};

/// Bytes of a request header.
pub const REQUEST_LEN: usize = 28;

/// A request header as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags.
    pub flags: u16,
    /// Command type.
    pub kind: u16,
    /// Client's cookie (handle), echoed in the reply.
    pub cookie: u64,
    /// Byte offset.
    pub offset: u64,
    /// Byte length.
    pub len: u32,
}

/// What a valid request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Read `len` bytes.
    Read {
        /// Offset.
        offset: u64,
        /// Length.
        len: u32,
    },
    /// Write the `len`-byte payload that follows the header.
    Write {
        /// Offset.
        offset: u64,
        /// Length.
        len: u32,
        /// Durable before the reply (Basalt writes always are).
        fua: bool,
    },
    /// Make completed writes durable.
    Flush,
    /// Discard a range.
    Trim {
        /// Offset.
        offset: u64,
        /// Length.
        len: u32,
    },
    /// Zero a range (may punch holes unless `no_hole`).
    WriteZeroes {
        /// Offset.
        offset: u64,
        /// Length.
        len: u32,
        /// Must stay allocated.
        no_hole: bool,
    },
    /// Allocation status of a range.
    BlockStatus {
        /// Offset.
        offset: u64,
        /// Length.
        len: u32,
        /// One extent is enough.
        req_one: bool,
    },
    /// Client is leaving.
    Disconnect,
}

/// The verdict on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it.
    Run(Command),
    /// Reply with this error; first read and drop `discard` payload bytes.
    Reject {
        /// NBD error value.
        errno: u32,
        /// Payload bytes to skip.
        discard: u32,
    },
    /// Close the connection.
    Close(NbdError),
}

/// Parse a request header.
pub fn parse_request(b: &[u8; REQUEST_LEN]) -> Result<Request, NbdError> {
    let magic = u32::from_be_bytes(b[0..4].try_into().expect("4 bytes"));
    if magic != REQUEST_MAGIC {
        return Err(NbdError::BadMagic {
            found: magic as u64,
            expected: REQUEST_MAGIC as u64,
        });
    }
    Ok(Request {
        flags: u16::from_be_bytes(b[4..6].try_into().expect("2 bytes")),
        kind: u16::from_be_bytes(b[6..8].try_into().expect("2 bytes")),
        cookie: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
        offset: u64::from_be_bytes(b[16..24].try_into().expect("8 bytes")),
        len: u32::from_be_bytes(b[24..28].try_into().expect("4 bytes")),
    })
}

/// What validation needs to know about the connection.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    /// Export size.
    pub size: u64,
    /// Export is read-only.
    pub read_only: bool,
    /// Result of the negotiation.
    pub structured: bool,
    /// `base:allocation` selected.
    pub base_allocation: bool,
    /// Advertised block sizes.
    pub block_sizes: BlockSizes,
}

impl Session {
    /// The session for a negotiated export.
    pub fn new(size: u64, read_only: bool, n: &Negotiated, block_sizes: BlockSizes) -> Self {
        Session {
            size,
            read_only,
            structured: n.structured,
            base_allocation: n.base_allocation,
            block_sizes,
        }
    }
}

/// Decide what to do with a request.
pub fn validate(req: &Request, s: &Session) -> Verdict {
    let payload = if req.kind == cmd::WRITE { req.len } else { 0 };
    if payload > s.block_sizes.maximum {
        return Verdict::Close(NbdError::PayloadTooLarge {
            len: payload,
            max: s.block_sizes.maximum,
        });
    }
    let reject = |errno| Verdict::Reject {
        errno,
        discard: payload,
    };
    let known_flags = cmd_flags::FUA
        | cmd_flags::NO_HOLE
        | cmd_flags::DF
        | cmd_flags::REQ_ONE
        | cmd_flags::FAST_ZERO;
    if req.flags & !known_flags != 0 {
        return reject(errno::EINVAL);
    }
    if req.flags & cmd_flags::DF != 0 && !s.structured {
        return reject(errno::EINVAL);
    }
    let range_ok = |check_align: bool| -> Result<(), u32> {
        let min = s.block_sizes.minimum as u64;
        if req.len == 0 || (check_align && (req.offset % min != 0 || req.len as u64 % min != 0)) {
            return Err(errno::EINVAL);
        }
        match req.offset.checked_add(req.len as u64) {
            Some(end) if end <= s.size => Ok(()),
            _ if req.kind == cmd::WRITE
                || req.kind == cmd::WRITE_ZEROES
                || req.kind == cmd::TRIM =>
            {
                Err(errno::ENOSPC)
            }
            _ => Err(errno::EINVAL),
        }
    };
    let writes = matches!(req.kind, cmd::WRITE | cmd::TRIM | cmd::WRITE_ZEROES);
    if writes && s.read_only {
        return reject(errno::EPERM);
    }
    let fua = req.flags & cmd_flags::FUA != 0;
    let cmd = match req.kind {
        cmd::READ => Command::Read {
            offset: req.offset,
            len: req.len,
        },
        cmd::WRITE => Command::Write {
            offset: req.offset,
            len: req.len,
            fua,
        },
        cmd::DISC => return Verdict::Run(Command::Disconnect),
        cmd::FLUSH => return Verdict::Run(Command::Flush),
        cmd::TRIM => Command::Trim {
            offset: req.offset,
            len: req.len,
        },
        cmd::WRITE_ZEROES => {
            if req.flags & cmd_flags::FAST_ZERO != 0 {
                return reject(errno::ENOTSUP);
            }
            Command::WriteZeroes {
                offset: req.offset,
                len: req.len,
                no_hole: req.flags & cmd_flags::NO_HOLE != 0,
            }
        }
        cmd::BLOCK_STATUS => {
            if !s.base_allocation {
                return reject(errno::EINVAL);
            }
            Command::BlockStatus {
                offset: req.offset,
                len: req.len,
                req_one: req.flags & cmd_flags::REQ_ONE != 0,
            }
        }
        _ => return reject(errno::EINVAL),
    };
    // Only data-moving commands must honour the minimum block size; TRIM, WRITE_ZEROES and
    // BLOCK_STATUS ranges are clipped to it by the executor instead.
    let aligned = matches!(req.kind, cmd::READ | cmd::WRITE);
    match range_ok(aligned) {
        Ok(()) => Verdict::Run(cmd),
        Err(e) => reject(e),
    }
}

/// A simple reply header (data follows for a successful simple-mode READ).
pub fn simple_reply(cookie: u64, error: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&error.to_be_bytes());
    b[8..16].copy_from_slice(&cookie.to_be_bytes());
    b
}

fn chunk_header(cookie: u64, flags: u16, kind: u16, len: u32) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[0..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    b[4..6].copy_from_slice(&flags.to_be_bytes());
    b[6..8].copy_from_slice(&kind.to_be_bytes());
    b[8..16].copy_from_slice(&cookie.to_be_bytes());
    b[16..20].copy_from_slice(&len.to_be_bytes());
    b
}

/// Header of a one-chunk structured READ reply (`OFFSET_DATA`, done); `len` data bytes follow.
pub fn structured_read_header(cookie: u64, offset: u64, len: u32) -> [u8; 28] {
    let mut b = [0u8; 28];
    b[0..20].copy_from_slice(&chunk_header(
        cookie,
        chunk::FLAG_DONE,
        chunk::OFFSET_DATA,
        8 + len,
    ));
    b[20..28].copy_from_slice(&offset.to_be_bytes());
    b
}

/// A structured error reply (done).
pub fn structured_error(cookie: u64, error: u32, message: &str) -> Vec<u8> {
    let msg = &message.as_bytes()[..message.len().min(4096)];
    let mut b = chunk_header(cookie, chunk::FLAG_DONE, chunk::ERROR, 6 + msg.len() as u32).to_vec();
    b.extend_from_slice(&error.to_be_bytes());
    b.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    b.extend_from_slice(msg);
    b
}

/// A structured BLOCK_STATUS reply (done) for `base:allocation`: `(length, flags)` extents.
pub fn block_status_reply(cookie: u64, extents: &[(u32, u32)]) -> Vec<u8> {
    let len = 4 + 8 * extents.len() as u32;
    let mut b = chunk_header(cookie, chunk::FLAG_DONE, chunk::BLOCK_STATUS, len).to_vec();
    b.extend_from_slice(&BASE_ALLOCATION_ID.to_be_bytes());
    for (l, f) in extents {
        b.extend_from_slice(&l.to_be_bytes());
        b.extend_from_slice(&f.to_be_bytes());
    }
    b
}

/// The reply header for a finished command: simple, or a structured error for READ and
/// BLOCK_STATUS when structured replies are on (simple replies stay allowed for the
/// other commands).
pub fn error_reply(cookie: u64, kind_is_data: bool, structured: bool, errno: u32) -> Vec<u8> {
    if structured && kind_is_data {
        structured_error(cookie, errno, "")
    } else {
        simple_reply(cookie, errno).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            size: 1 << 20,
            read_only: false,
            structured: true,
            base_allocation: true,
            block_sizes: BlockSizes::default(),
        }
    }

    fn req(kind: u16, flags: u16, offset: u64, len: u32) -> Request {
        Request {
            flags,
            kind,
            cookie: 42,
            offset,
            len,
        }
    }

    fn encode(r: &Request) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&r.flags.to_be_bytes());
        b[6..8].copy_from_slice(&r.kind.to_be_bytes());
        b[8..16].copy_from_slice(&r.cookie.to_be_bytes());
        b[16..24].copy_from_slice(&r.offset.to_be_bytes());
        b[24..28].copy_from_slice(&r.len.to_be_bytes());
        b
    }

    #[test]
    fn parse_round_trip_and_bad_magic() {
        let r = req(cmd::WRITE, cmd_flags::FUA, 4096, 512);
        assert_eq!(parse_request(&encode(&r)).unwrap(), r);
        let mut b = encode(&r);
        b[3] ^= 0xff;
        assert!(matches!(parse_request(&b), Err(NbdError::BadMagic { .. })));
    }

    #[test]
    fn valid_commands_run() {
        let s = session();
        assert_eq!(
            validate(&req(cmd::WRITE, cmd_flags::FUA, 0, 4096), &s),
            Verdict::Run(Command::Write {
                offset: 0,
                len: 4096,
                fua: true
            })
        );
        assert_eq!(
            validate(&req(cmd::FLUSH, 0, 0, 0), &s),
            Verdict::Run(Command::Flush)
        );
        assert_eq!(
            validate(&req(cmd::DISC, 0, 0, 0), &s),
            Verdict::Run(Command::Disconnect)
        );
        assert!(matches!(
            validate(&req(cmd::WRITE_ZEROES, cmd_flags::NO_HOLE, 0, 1 << 20), &s),
            Verdict::Run(Command::WriteZeroes { no_hole: true, .. })
        ));
        assert!(matches!(
            validate(&req(cmd::BLOCK_STATUS, cmd_flags::REQ_ONE, 0, 4096), &s),
            Verdict::Run(Command::BlockStatus { req_one: true, .. })
        ));
    }

    #[test]
    fn malformed_requests_get_the_right_error_and_keep_the_stream_in_sync() {
        let s = session();
        // beyond the export: writes ENOSPC (payload discarded), reads EINVAL
        assert_eq!(
            validate(&req(cmd::WRITE, 0, (1 << 20) - 512, 1024), &s),
            Verdict::Reject {
                errno: errno::ENOSPC,
                discard: 1024
            }
        );
        assert_eq!(
            validate(&req(cmd::READ, 0, u64::MAX - 100, 512), &s),
            Verdict::Reject {
                errno: errno::EINVAL,
                discard: 0
            }
        );
        // misaligned
        assert_eq!(
            validate(&req(cmd::WRITE, 0, 100, 512), &s),
            Verdict::Reject {
                errno: errno::EINVAL,
                discard: 512
            }
        );
        // unknown command and unknown flags
        assert!(matches!(
            validate(&req(99, 0, 0, 512), &s),
            Verdict::Reject {
                errno: errno::EINVAL,
                ..
            }
        ));
        assert!(matches!(
            validate(&req(cmd::READ, 0x100, 0, 512), &s),
            Verdict::Reject {
                errno: errno::EINVAL,
                ..
            }
        ));
        // fast zero unsupported
        assert!(matches!(
            validate(&req(cmd::WRITE_ZEROES, cmd_flags::FAST_ZERO, 0, 512), &s),
            Verdict::Reject {
                errno: errno::ENOTSUP,
                ..
            }
        ));
        // oversized payload closes the connection
        assert!(matches!(
            validate(&req(cmd::WRITE, 0, 0, u32::MAX), &s),
            Verdict::Close(NbdError::PayloadTooLarge { .. })
        ));
        // read-only export
        let ro = Session {
            read_only: true,
            ..s
        };
        assert_eq!(
            validate(&req(cmd::WRITE, 0, 0, 512), &ro),
            Verdict::Reject {
                errno: errno::EPERM,
                discard: 512
            }
        );
        // block status without the context, DF without structured replies
        let plain = Session {
            structured: false,
            base_allocation: false,
            ..s
        };
        assert!(matches!(
            validate(&req(cmd::BLOCK_STATUS, 0, 0, 512), &plain),
            Verdict::Reject { .. }
        ));
        assert!(matches!(
            validate(&req(cmd::READ, cmd_flags::DF, 0, 512), &plain),
            Verdict::Reject { .. }
        ));
        // zero length
        assert!(matches!(
            validate(&req(cmd::READ, 0, 0, 0), &s),
            Verdict::Reject { .. }
        ));
    }

    #[test]
    fn reply_encodings() {
        let r = simple_reply(7, 5);
        assert_eq!(&r[0..4], &SIMPLE_REPLY_MAGIC.to_be_bytes());
        assert_eq!(u32::from_be_bytes(r[4..8].try_into().unwrap()), 5);
        let h = structured_read_header(7, 4096, 512);
        assert_eq!(u32::from_be_bytes(h[16..20].try_into().unwrap()), 520);
        assert_eq!(
            u16::from_be_bytes(h[4..6].try_into().unwrap()),
            chunk::FLAG_DONE
        );
        let bs = block_status_reply(7, &[(4096, 0), (8192, STATE_HOLE | STATE_ZERO)]);
        assert_eq!(bs.len(), 20 + 4 + 16);
        let e = structured_error(7, errno::EIO, "disk");
        assert_eq!(
            u16::from_be_bytes(e[6..8].try_into().unwrap()),
            chunk::ERROR
        );
        assert_eq!(e.len(), 20 + 6 + 4);
        assert_eq!(error_reply(7, false, true, 5).len(), 16);
    }

    proptest::proptest! {
        #[test]
        fn validate_is_total(flags: u16, kind in 0u16..12, offset: u64, len: u32) {
            let v = validate(&req(kind, flags, offset, len), &session());
            if let Verdict::Reject { discard, .. } = v {
                proptest::prop_assert!(discard == 0 || kind == cmd::WRITE);
            }
        }
    }
}
