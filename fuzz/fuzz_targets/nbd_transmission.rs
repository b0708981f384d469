//! NBD transmission requests through the sans-IO parser and validator, under every kind of
//! session (structured or not, read-only or not, base:allocation or not, either sector
//! size, any export size), and the reply encoders for what they accept. Checks what the
//! server shell relies on: a request that runs stays inside the export and within the
//! block-size maximum, and a rejected write says how much payload to skip.
#![no_main]

use basalt_nbd::consts::cmd;
use basalt_nbd::handshake::{BlockSizes, Negotiated};
use basalt_nbd::transmission::{
    error_reply, parse_request, structured_read_header, validate, Command, Session, Verdict,
    REQUEST_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let (params, rest) = data.split_at(9);
    // mode: high bits are session flags, the low 4 bits shrink the export size
    let mode = params[8];
    let size = u64::from_le_bytes(params[0..8].try_into().unwrap()) >> (4 * (mode & 0x0f));
    let block_sizes = BlockSizes {
        minimum: if mode & 0x40 != 0 { 4096 } else { 512 },
        ..BlockSizes::default()
    };
    let negotiated = Negotiated {
        export: 0,
        flags: 0,
        structured: mode & 0x80 != 0,
        base_allocation: mode & 0x20 != 0,
    };
    let session = Session::new(size, mode & 0x10 != 0, &negotiated, block_sizes);
    for chunk in rest.chunks_exact(REQUEST_LEN) {
        let req = match parse_request(chunk.try_into().unwrap()) {
            Ok(r) => r,
            Err(_) => continue,
        };
        match validate(&req, &session) {
            Verdict::Run(c) => {
                let range = match c {
                    Command::Read { offset, len }
                    | Command::Write { offset, len, .. }
                    | Command::Trim { offset, len }
                    | Command::WriteZeroes { offset, len, .. }
                    | Command::BlockStatus { offset, len, .. } => Some((offset, len)),
                    Command::Flush | Command::Disconnect => None,
                };
                if let Some((offset, len)) = range {
                    let end = offset.checked_add(len as u64).expect("range overflows");
                    assert!(end <= session.size, "range past the export end");
                    assert!(len > 0);
                }
                if let Command::Write { len, .. } = c {
                    assert!(!session.read_only, "write on a read-only export");
                    assert!(len <= block_sizes.maximum);
                }
                if let Command::Read { offset, len } = c {
                    let h = structured_read_header(req.cookie, offset, len);
                    assert_eq!(h.len(), 28);
                }
            }
            Verdict::Reject { errno, discard } => {
                let expect = if req.kind == cmd::WRITE { req.len } else { 0 };
                assert_eq!(discard, expect, "stream would lose sync");
                let is_data = matches!(req.kind, cmd::READ | cmd::BLOCK_STATUS);
                let _ = error_reply(req.cookie, is_data, session.structured, errno);
            }
            Verdict::Close(_) => {}
        }
    }
});
