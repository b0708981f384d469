//! The portable backend: each request runs to completion at submission with
//! `pread`/`pwrite`/`fdatasync`; `reap` hands the results back.

use super::{check_request, io_error, BackendKind, IoBackend, IoCompletion, IoOp, IoRequest};
use std::collections::VecDeque;
use std::os::unix::fs::FileExt;

/// Synchronous positional I/O.
#[derive(Debug, Default)]
pub struct SyncBackend {
    done: VecDeque<IoCompletion>,
}

impl SyncBackend {
    /// A new instance.
    pub fn new() -> Self {
        Self::default()
    }
}

impl IoBackend for SyncBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sync
    }

    fn submit(&mut self, req: IoRequest) {
        let mut req = match check_request(req) {
            Ok(r) => r,
            Err(c) => return self.done.push_back(c),
        };
        let result = match req.op {
            IoOp::Read => read_full(&req.file, req.buf.as_mut_slice(), req.offset),
            IoOp::Write => req
                .file
                .write_all_at(req.buf.as_slice(), req.offset)
                .map(|()| req.buf.len()),
            IoOp::Sync => req.file.sync_data().map(|()| 0),
        };
        self.done.push_back(IoCompletion {
            user_data: req.user_data,
            result: result.map_err(|e| io_error(req.op, e)),
            buf: req.buf,
        });
    }

    fn reap(&mut self, out: &mut Vec<IoCompletion>, _wait: bool) {
        out.extend(self.done.drain(..));
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }
}

/// Read until `buf` is full or end of file; returns the bytes read.
fn read_full(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
