//! Fixed-newstyle negotiation as a pure state machine.
//!
//! The I/O shell sends [`greeting`], reads the client flags and hands them to
//! [`Handshake::client_flags`], then for each option reads its 16-byte header
//! ([`parse_option_header`]) and its data (bounded by [`MAX_OPTION_DATA`]) and calls
//! [`Handshake::option`], writing whatever [`Step`] says.

use crate::consts::*;
use crate::error::NbdError;

/// Largest option data we read into memory; larger options are skipped and refused
/// with `ERR_TOO_BIG` (up to [`MAX_SKIPPABLE_OPTION`]) or the connection is closed.
pub const MAX_OPTION_DATA: u32 = 64 * 1024;
/// Largest option data we are willing to read and discard.
pub const MAX_SKIPPABLE_OPTION: u32 = 16 * 1024 * 1024;

/// One export as the handshake describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    /// Name clients ask for.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Refuse writes.
    pub read_only: bool,
    /// Free text for `nbdinfo`.
    pub description: String,
}

/// Block size constraints advertised with `NBD_INFO_BLOCK_SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSizes {
    /// Minimum (and alignment) of every request.
    pub minimum: u32,
    /// Preferred size.
    pub preferred: u32,
    /// Maximum payload of a read or write.
    pub maximum: u32,
}

impl Default for BlockSizes {
    fn default() -> Self {
        BlockSizes {
            minimum: 512,
            preferred: 4096,
            maximum: 32 * 1024 * 1024,
        }
    }
}

/// Server-side settings of a negotiation.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    /// Exports offered. The empty name selects the first.
    pub exports: Vec<ExportInfo>,
    /// Block sizes.
    pub block_sizes: BlockSizes,
    /// Advertise CAN_MULTI_CONN (FLUSH on one connection covers every connection's
    /// completed writes — true for Basalt: a completed write is already durable).
    pub multi_conn: bool,
}

/// What the negotiation ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the chosen export in the config.
    pub export: usize,
    /// Transmission flags sent to the client.
    pub flags: u16,
    /// Structured replies were agreed.
    pub structured: bool,
    /// `base:allocation` was selected (BLOCK_STATUS allowed).
    pub base_allocation: bool,
}

/// What to do after an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes; negotiation continues.
    Reply(Vec<u8>),
    /// Send these bytes and start transmission.
    Go(Vec<u8>, Negotiated),
    /// Send these bytes (maybe none) and close.
    Close(Vec<u8>, NbdError),
}

/// The server's first 18 bytes.
pub fn greeting() -> [u8; 18] {
    let mut b = [0u8; 18];
    b[0..8].copy_from_slice(&NBDMAGIC.to_be_bytes());
    b[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    let flags = handshake_flags::FIXED_NEWSTYLE | handshake_flags::NO_ZEROES;
    b[16..18].copy_from_slice(&flags.to_be_bytes());
    b
}

/// Parse an option header: returns (option, data length).
pub fn parse_option_header(b: &[u8; 16]) -> Result<(u32, u32), NbdError> {
    let magic = u64::from_be_bytes(b[0..8].try_into().expect("8 bytes"));
    if magic != IHAVEOPT {
        return Err(NbdError::BadMagic {
            found: magic,
            expected: IHAVEOPT,
        });
    }
    Ok((
        u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
        u32::from_be_bytes(b[12..16].try_into().expect("4 bytes")),
    ))
}

/// Encode one option reply.
pub fn option_reply(option: u32, reply: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(20 + data.len());
    b.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    b.extend_from_slice(&option.to_be_bytes());
    b.extend_from_slice(&reply.to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

/// A little cursor over option data; every read is bounds-checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).ok()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The negotiation state.
#[derive(Debug)]
pub struct Handshake {
    cfg: HandshakeConfig,
    no_zeroes: bool,
    structured: bool,
    base_allocation: bool,
}

impl Handshake {
    /// A negotiation for these exports.
    pub fn new(cfg: HandshakeConfig) -> Self {
        Handshake {
            cfg,
            no_zeroes: false,
            structured: false,
            base_allocation: false,
        }
    }

    /// The client's 4-byte flags.
    pub fn client_flags(&mut self, flags: u32) -> Result<(), NbdError> {
        let known = client_flags::C_FIXED_NEWSTYLE | client_flags::C_NO_ZEROES;
        if flags & !known != 0 {
            return Err(NbdError::UnknownClientFlags { flags });
        }
        self.no_zeroes = flags & client_flags::C_NO_ZEROES != 0;
        Ok(())
    }

    fn find(&self, name: &str) -> Option<usize> {
        if name.is_empty() && !self.cfg.exports.is_empty() {
            return Some(0);
        }
        self.cfg.exports.iter().position(|e| e.name == name)
    }

    fn transmission_flags(&self, export: &ExportInfo) -> u16 {
        let mut f = tflags::HAS_FLAGS
            | tflags::SEND_FLUSH
            | tflags::SEND_FUA
            | tflags::SEND_TRIM
            | tflags::SEND_WRITE_ZEROES;
        if self.structured {
            f |= tflags::SEND_DF;
        }
        if self.cfg.multi_conn {
            f |= tflags::CAN_MULTI_CONN;
        }
        if export.read_only {
            f |= tflags::READ_ONLY;
        }
        f
    }

    fn negotiated(&self, export: usize) -> Negotiated {
        Negotiated {
            export,
            flags: self.transmission_flags(&self.cfg.exports[export]),
            structured: self.structured,
            base_allocation: self.base_allocation,
        }
    }

    /// The reply to an option whose data was too large to read (the shell skipped it).
    pub fn too_big(&self, option: u32) -> Vec<u8> {
        option_reply(option, rep::ERR_TOO_BIG, b"option data too large")
    }

    /// Handle one option.
    pub fn option(&mut self, option: u32, data: &[u8]) -> Step {
        match option {
            opt::EXPORT_NAME => self.export_name(data),
            opt::ABORT => Step::Close(option_reply(option, rep::ACK, &[]), NbdError::Aborted),
            opt::LIST => self.list(data),
            opt::INFO | opt::GO => self.info_or_go(option, data),
            opt::STRUCTURED_REPLY => {
                if !data.is_empty() {
                    return Step::Reply(option_reply(
                        option,
                        rep::ERR_INVALID,
                        b"no data expected",
                    ));
                }
                self.structured = true;
                Step::Reply(option_reply(option, rep::ACK, &[]))
            }
            opt::LIST_META_CONTEXT | opt::SET_META_CONTEXT => self.meta_context(option, data),
            opt::STARTTLS => {
                Step::Reply(option_reply(option, rep::ERR_POLICY, b"TLS is not offered"))
            }
            _ => Step::Reply(option_reply(option, rep::ERR_UNSUP, &[])),
        }
    }

    fn export_name(&mut self, data: &[u8]) -> Step {
        let name = String::from_utf8_lossy(data).into_owned();
        let Some(idx) = self.find(&name) else {
            return Step::Close(Vec::new(), NbdError::UnknownExport { name });
        };
        let export = &self.cfg.exports[idx];
        // EXPORT_NAME predates structured replies; a client that selects this way gets
        // simple replies only.
        self.structured = false;
        self.base_allocation = false;
        let mut b = Vec::with_capacity(10 + 124);
        b.extend_from_slice(&export.size.to_be_bytes());
        b.extend_from_slice(&self.transmission_flags(export).to_be_bytes());
        if !self.no_zeroes {
            b.extend_from_slice(&[0u8; 124]);
        }
        Step::Go(b, self.negotiated(idx))
    }

    fn list(&self, data: &[u8]) -> Step {
        if !data.is_empty() {
            return Step::Reply(option_reply(
                opt::LIST,
                rep::ERR_INVALID,
                b"no data expected",
            ));
        }
        let mut out = Vec::new();
        for e in &self.cfg.exports {
            let mut d = Vec::with_capacity(4 + e.name.len());
            d.extend_from_slice(&(e.name.len() as u32).to_be_bytes());
            d.extend_from_slice(e.name.as_bytes());
            out.extend(option_reply(opt::LIST, rep::SERVER, &d));
        }
        out.extend(option_reply(opt::LIST, rep::ACK, &[]));
        Step::Reply(out)
    }

    fn info_or_go(&mut self, option: u32, data: &[u8]) -> Step {
        let mut c = Cursor(data);
        let parsed = (|| {
            let name = c.string()?;
            let n = c.u16()?;
            let mut infos = Vec::with_capacity(n as usize);
            for _ in 0..n {
                infos.push(c.u16()?);
            }
            c.is_empty().then_some((name, infos))
        })();
        let Some((name, infos)) = parsed else {
            return Step::Reply(option_reply(option, rep::ERR_INVALID, b"malformed INFO/GO"));
        };
        let Some(idx) = self.find(&name) else {
            return Step::Reply(option_reply(option, rep::ERR_UNKNOWN, b"no such export"));
        };
        let export = self.cfg.exports[idx].clone();
        let mut out = Vec::new();
        let mut d = Vec::with_capacity(12);
        d.extend_from_slice(&info::EXPORT.to_be_bytes());
        d.extend_from_slice(&export.size.to_be_bytes());
        d.extend_from_slice(&self.transmission_flags(&export).to_be_bytes());
        out.extend(option_reply(option, rep::INFO, &d));
        for i in infos {
            let d = match i {
                info::NAME => [&info::NAME.to_be_bytes()[..], export.name.as_bytes()].concat(),
                info::DESCRIPTION => [
                    &info::DESCRIPTION.to_be_bytes()[..],
                    export.description.as_bytes(),
                ]
                .concat(),
                info::BLOCK_SIZE => {
                    let bs = self.cfg.block_sizes;
                    let mut d = info::BLOCK_SIZE.to_be_bytes().to_vec();
                    d.extend_from_slice(&bs.minimum.to_be_bytes());
                    d.extend_from_slice(&bs.preferred.to_be_bytes());
                    d.extend_from_slice(&bs.maximum.to_be_bytes());
                    d
                }
                _ => continue, // unknown info requests are ignored, as the spec allows
            };
            out.extend(option_reply(option, rep::INFO, &d));
        }
        out.extend(option_reply(option, rep::ACK, &[]));
        if option == opt::GO {
            Step::Go(out, self.negotiated(idx))
        } else {
            Step::Reply(out)
        }
    }

    fn meta_context(&mut self, option: u32, data: &[u8]) -> Step {
        if !self.structured {
            return Step::Reply(option_reply(
                option,
                rep::ERR_INVALID,
                b"structured replies first",
            ));
        }
        let mut c = Cursor(data);
        let parsed = (|| {
            let name = c.string()?;
            let n = c.u32()?;
            let mut queries = Vec::new();
            for _ in 0..n {
                queries.push(c.string()?);
            }
            c.is_empty().then_some((name, queries))
        })();
        let Some((name, queries)) = parsed else {
            return Step::Reply(option_reply(
                option,
                rep::ERR_INVALID,
                b"malformed meta context",
            ));
        };
        if self.find(&name).is_none() {
            return Step::Reply(option_reply(option, rep::ERR_UNKNOWN, b"no such export"));
        }
        let matches =
            |q: &str| q == BASE_ALLOCATION || (option == opt::LIST_META_CONTEXT && q == "base:");
        let selected = if queries.is_empty() {
            option == opt::LIST_META_CONTEXT
        } else {
            queries.iter().any(|q| matches(q))
        };
        if option == opt::SET_META_CONTEXT {
            self.base_allocation = selected;
        }
        let mut out = Vec::new();
        if selected {
            let mut d = BASE_ALLOCATION_ID.to_be_bytes().to_vec();
            d.extend_from_slice(BASE_ALLOCATION.as_bytes());
            out.extend(option_reply(option, rep::META_CONTEXT, &d));
        }
        out.extend(option_reply(option, rep::ACK, &[]));
        Step::Reply(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs() -> Handshake {
        Handshake::new(HandshakeConfig {
            exports: vec![
                ExportInfo {
                    name: "vol1".into(),
                    size: 1 << 30,
                    read_only: false,
                    description: "basalt volume vol1".into(),
                },
                ExportInfo {
                    name: "ro".into(),
                    size: 4096,
                    read_only: true,
                    description: String::new(),
                },
            ],
            block_sizes: BlockSizes::default(),
            multi_conn: true,
        })
    }

    /// Split a byte stream of option replies into (option, type, data).
    fn replies(mut b: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
        let mut v = vec![];
        while !b.is_empty() {
            assert_eq!(
                u64::from_be_bytes(b[0..8].try_into().unwrap()),
                OPT_REPLY_MAGIC
            );
            let o = u32::from_be_bytes(b[8..12].try_into().unwrap());
            let t = u32::from_be_bytes(b[12..16].try_into().unwrap());
            let l = u32::from_be_bytes(b[16..20].try_into().unwrap()) as usize;
            v.push((o, t, b[20..20 + l].to_vec()));
            b = &b[20 + l..];
        }
        v
    }

    fn go_data(name: &str, infos: &[u16]) -> Vec<u8> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
        for i in infos {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    #[test]
    fn greeting_bytes() {
        let g = greeting();
        assert_eq!(&g[0..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(&g[16..18], &[0, 3]);
    }

    #[test]
    fn extended_headers_then_go_like_qemu() {
        let mut h = hs();
        h.client_flags(3).unwrap();
        let Step::Reply(r) = h.option(opt::EXTENDED_HEADERS, &[]) else {
            panic!()
        };
        assert_eq!(
            replies(&r),
            vec![(opt::EXTENDED_HEADERS, rep::ERR_UNSUP, vec![])]
        );
        let Step::Reply(r) = h.option(opt::STRUCTURED_REPLY, &[]) else {
            panic!()
        };
        assert_eq!(replies(&r)[0].1, rep::ACK);
        let mut q = go_data("vol1", &[]);
        q.truncate(8); // name only
        q.extend_from_slice(&1u32.to_be_bytes());
        q.extend_from_slice(&(BASE_ALLOCATION.len() as u32).to_be_bytes());
        q.extend_from_slice(BASE_ALLOCATION.as_bytes());
        let Step::Reply(r) = h.option(opt::SET_META_CONTEXT, &q) else {
            panic!()
        };
        let r = replies(&r);
        assert_eq!(r[0].1, rep::META_CONTEXT);
        assert_eq!(&r[0].2[0..4], &BASE_ALLOCATION_ID.to_be_bytes());
        assert_eq!(r[1].1, rep::ACK);
        let Step::Go(r, n) = h.option(opt::GO, &go_data("vol1", &[info::BLOCK_SIZE])) else {
            panic!()
        };
        let r = replies(&r);
        assert_eq!(r.len(), 3);
        assert_eq!(&r[0].2[0..2], &info::EXPORT.to_be_bytes());
        assert_eq!(
            u64::from_be_bytes(r[0].2[2..10].try_into().unwrap()),
            1 << 30
        );
        let flags = u16::from_be_bytes(r[0].2[10..12].try_into().unwrap());
        assert_eq!(flags, n.flags);
        assert!(flags & tflags::CAN_MULTI_CONN != 0 && flags & tflags::SEND_DF != 0);
        assert_eq!(&r[1].2[0..2], &info::BLOCK_SIZE.to_be_bytes());
        assert_eq!(u32::from_be_bytes(r[1].2[2..6].try_into().unwrap()), 512);
        assert_eq!(r[2].1, rep::ACK);
        assert!(n.structured && n.base_allocation);
        assert_eq!(n.export, 0);
    }

    #[test]
    fn export_name_fallback_and_unknown_export() {
        let mut h = hs();
        h.client_flags(1).unwrap(); // no NO_ZEROES: 124 zero bytes follow
        let Step::Go(r, n) = h.option(opt::EXPORT_NAME, b"ro") else {
            panic!()
        };
        assert_eq!(r.len(), 8 + 2 + 124);
        assert_eq!(n.export, 1);
        assert!(n.flags & tflags::READ_ONLY != 0);
        let mut h = hs();
        assert!(matches!(
            h.option(opt::EXPORT_NAME, b"nope"),
            Step::Close(ref b, NbdError::UnknownExport { .. }) if b.is_empty()
        ));
    }

    #[test]
    fn list_info_abort_and_errors() {
        let mut h = hs();
        let Step::Reply(r) = h.option(opt::LIST, &[]) else {
            panic!()
        };
        let r = replies(&r);
        assert_eq!(r.len(), 3);
        assert_eq!(&r[0].2[4..], b"vol1");
        let Step::Reply(r) = h.option(opt::INFO, &go_data("missing", &[])) else {
            panic!()
        };
        assert_eq!(replies(&r)[0].1, rep::ERR_UNKNOWN);
        let Step::Reply(r) = h.option(opt::INFO, &go_data("", &[info::DESCRIPTION, 99])) else {
            panic!()
        };
        let r = replies(&r);
        assert_eq!(&r[1].2[2..], b"basalt volume vol1");
        assert_eq!(r.len(), 3, "unknown info type ignored");
        // truncated / overlong GO data
        let mut bad = go_data("vol1", &[info::BLOCK_SIZE]);
        bad.pop();
        let Step::Reply(r) = h.option(opt::GO, &bad) else {
            panic!()
        };
        assert_eq!(replies(&r)[0].1, rep::ERR_INVALID);
        let mut long = go_data("vol1", &[]);
        long.push(0);
        let Step::Reply(r) = h.option(opt::GO, &long) else {
            panic!()
        };
        assert_eq!(replies(&r)[0].1, rep::ERR_INVALID);
        // meta context before structured replies
        let Step::Reply(r) = h.option(opt::SET_META_CONTEXT, &go_data("vol1", &[])) else {
            panic!()
        };
        assert_eq!(replies(&r)[0].1, rep::ERR_INVALID);
        let Step::Reply(r) = h.option(opt::STARTTLS, &[]) else {
            panic!()
        };
        assert_eq!(replies(&r)[0].1, rep::ERR_POLICY);
        assert!(matches!(
            h.option(opt::ABORT, &[]),
            Step::Close(_, NbdError::Aborted)
        ));
        assert!(h.client_flags(0x80).is_err());
    }

    #[test]
    fn option_header_magic_checked() {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        b[8..12].copy_from_slice(&7u32.to_be_bytes());
        b[12..16].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(parse_option_header(&b).unwrap(), (7, 9));
        b[0] ^= 1;
        assert!(matches!(
            parse_option_header(&b),
            Err(NbdError::BadMagic { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_option_data_is_answered_without_panic(option in 0u32..16, data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut h = hs();
            let _ = h.option(opt::STRUCTURED_REPLY, &[]);
            let _ = h.option(option, &data);
        }
    }
}
