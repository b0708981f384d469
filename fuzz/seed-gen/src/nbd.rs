//! Seeds of `nbd_server` (a client's byte stream: flags, options, requests) and
//! `nbd_transmission` (9 session bytes, then 28-byte requests). Numbers from the NBD
//! protocol (`nbd/src/consts.rs`).

use crate::Seeds;

const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const C_FIXED_NEWSTYLE_NO_ZEROES: u32 = 0b11;
const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_SET_META_CONTEXT: u32 = 10;
const INFO_NAME: u16 = 1;
const INFO_BLOCK_SIZE: u16 = 3;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_BLOCK_STATUS: u16 = 7;
const FLAG_FUA: u16 = 1;

fn option(out: &mut Vec<u8>, opt: u32, data: &[u8]) {
    out.extend_from_slice(&IHAVEOPT.to_be_bytes());
    out.extend_from_slice(&opt.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

fn name_and_infos(name: &str, infos: &[u16]) -> Vec<u8> {
    let mut d = (name.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(name.as_bytes());
    d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
    for i in infos {
        d.extend_from_slice(&i.to_be_bytes());
    }
    d
}

fn request(out: &mut Vec<u8>, flags: u16, kind: u16, cookie: u64, offset: u64, len: u32) {
    out.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&cookie.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
}

/// A little of everything a client does after the handshake.
/// Write payloads follow their requests when `payloads`.
fn requests(out: &mut Vec<u8>, payloads: bool) {
    request(out, 0, CMD_WRITE, 1, 4096, 512);
    if payloads {
        out.extend_from_slice(&[0xab; 512]);
    }
    request(out, FLAG_FUA, CMD_WRITE, 2, 0, 512);
    if payloads {
        out.extend_from_slice(&[0xcd; 512]);
    }
    request(out, 0, CMD_READ, 3, 0, 8192);
    request(out, 0, CMD_FLUSH, 4, 0, 0);
    request(out, 0, CMD_TRIM, 5, 4096, 4096);
    request(out, 0, CMD_WRITE_ZEROES, 6, 0, 1024);
    request(out, 0, CMD_BLOCK_STATUS, 7, 0, 65536);
    request(out, 0, CMD_READ, 8, 1 << 40, 512);
    request(out, 0, CMD_DISC, 9, 0, 0);
}

/// Client streams: GO with structured replies and meta context, EXPORT_NAME, LIST+INFO,
/// ABORT.
pub fn server_seeds() -> Seeds {
    let mut go = C_FIXED_NEWSTYLE_NO_ZEROES.to_be_bytes().to_vec();
    option(&mut go, OPT_STRUCTURED_REPLY, &[]);
    let mut meta = name_and_infos("vol", &[]);
    meta.truncate(7); // name only
    meta.extend_from_slice(&1u32.to_be_bytes());
    meta.extend_from_slice(&15u32.to_be_bytes());
    meta.extend_from_slice(b"base:allocation");
    option(&mut go, OPT_SET_META_CONTEXT, &meta);
    option(
        &mut go,
        OPT_GO,
        &name_and_infos("vol", &[INFO_NAME, INFO_BLOCK_SIZE]),
    );
    requests(&mut go, true);

    let mut old = 1u32.to_be_bytes().to_vec();
    option(&mut old, OPT_EXPORT_NAME, b"vol");
    requests(&mut old, true);

    let mut list = C_FIXED_NEWSTYLE_NO_ZEROES.to_be_bytes().to_vec();
    option(&mut list, OPT_LIST, &[]);
    option(&mut list, OPT_INFO, &name_and_infos("ro", &[INFO_NAME]));
    option(&mut list, OPT_GO, &name_and_infos("ro", &[]));
    request(&mut list, 0, CMD_WRITE, 1, 0, 512);
    list.extend_from_slice(&[1; 512]);
    request(&mut list, 0, CMD_READ, 2, 0, 512);

    let mut abort = C_FIXED_NEWSTYLE_NO_ZEROES.to_be_bytes().to_vec();
    option(&mut abort, 99, b"unknown option");
    option(&mut abort, OPT_ABORT, &[]);

    vec![
        ("go-structured", go),
        ("export-name", old),
        ("list-info-go-ro", list),
        ("abort", abort),
    ]
}

/// Sessions of each kind with the same requests (session byte: 0x80 structured, 0x40
/// 4 KiB sectors, 0x20 base:allocation, 0x10 read-only).
pub fn transmission_seeds() -> Seeds {
    let mut out = Vec::new();
    for (name, mode) in [
        ("simple", 0u8),
        ("structured-meta", 0xa0),
        ("read-only-4k", 0x50),
    ] {
        let mut v = (1u64 << 30).to_le_bytes().to_vec();
        v.push(mode);
        requests(&mut v, false);
        out.push((name, v));
    }
    out
}
