//! Per-transport state and frame construction.

use crate::config::TransportOptions;
use crate::error::TransportError;
use crate::fastpath::RawFrame;
use basalt_proto::ids::GroupId;
use basalt_proto::{FrameFlags, FrameHeader, FrameKind, FRAME_HEADER_LEN};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Process-wide state of one transport (options, ids).
pub(crate) struct Endpoint {
    pub(crate) opts: TransportOptions,
    next_conn_id: AtomicU64,
}

impl Endpoint {
    pub(crate) fn new(opts: TransportOptions) -> Result<Arc<Self>, TransportError> {
        Ok(Arc::new(Endpoint {
            opts: opts.validated()?,
            next_conn_id: AtomicU64::new(1),
        }))
    }
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }
    pub(crate) fn version(&self) -> u16 {
        self.opts.protocol_version
    }
}

/// Build a frame with consistent lengths.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_frame(
    version: u16,
    kind: FrameKind,
    method: u16,
    correlation_id: u64,
    group: GroupId,
    flags: FrameFlags,
    head: Bytes,
    payload: Bytes,
) -> Result<RawFrame, TransportError> {
    let mut header = FrameHeader::new(kind, method, correlation_id, group);
    header.version = version;
    header.flags = flags;
    header.header_len = u32::try_from(head.len()).map_err(|_| too_long("header", head.len()))?;
    header.payload_len =
        u32::try_from(payload.len()).map_err(|_| too_long("payload", payload.len()))?;
    Ok(RawFrame {
        header,
        head,
        payload,
    })
}

fn too_long(what: &'static str, len: usize) -> TransportError {
    TransportError::Proto(basalt_proto::ProtoError::Encode {
        what,
        reason: format!("{len} bytes do not fit a frame"),
    })
}

pub(crate) fn wire_len(f: &RawFrame) -> u64 {
    FRAME_HEADER_LEN as u64 + f.head.len() as u64 + f.payload.len() as u64
}
