//! Seeds of `messages`: method number (LE u16), request (0) or reply (1), encoded body.

use crate::{Result, Seeds};
use basalt_proto::chunk::{ReadChunk, ReadChunkOk, WriteChunk};
use basalt_proto::codec;
use basalt_proto::hello::{Hello, HelloRefusal, HelloReply};
use basalt_proto::ids::{ChunkId, Epoch, GroupId, LogicalPoolId, VolumeId};
use basalt_proto::mds::{CreateVolume, GetSegment, OpenVolume, VolumeInfo};
use basalt_proto::method::RemoteError;
use basalt_proto::status::{ChunkError, MdsError};
use basalt_proto::Method;
use serde::Serialize;

fn seed<T: Serialize>(method: u16, reply: bool, body: &T) -> Result<Vec<u8>> {
    let mut v = method.to_le_bytes().to_vec();
    v.push(reply as u8);
    v.extend(codec::encode(body)?);
    Ok(v)
}

/// A few messages of every service.
pub fn seeds() -> Result<Seeds> {
    let hello = crate::handshake::hello(false);
    let volume = VolumeInfo {
        id: VolumeId(3),
        name: "vol".into(),
        size: 1 << 30,
        owner: "basalt".into(),
        pool: LogicalPoolId(1),
        ctime: 1_700_000_000,
    };
    let read = ReadChunk {
        group: GroupId(1 << 32 | 2),
        chunk: ChunkId(5),
        epoch: Epoch(1),
        offset: 0,
        len: 4096,
    };
    let read_ok: std::result::Result<ReadChunkOk, ChunkError> = Ok(ReadChunkOk { crc32c: 7 });
    Ok(vec![
        ("hello", seed::<Hello>(Method::Hello as u16, false, &hello)?),
        (
            "hello-refused",
            seed(
                Method::Hello as u16,
                true,
                &HelloReply::Refused(HelloRefusal::AuthFailed),
            )?,
        ),
        (
            "write-chunk",
            seed(
                Method::WriteChunk as u16,
                false,
                &WriteChunk {
                    group: GroupId(1 << 32 | 2),
                    chunk: ChunkId(5),
                    epoch: Epoch(1),
                    offset: 4096,
                    len: 4096,
                    crc32c: 0xdead_beef,
                    req: basalt_proto::chunk::RequestId {
                        client: 0x1234_5678_9abc_def0,
                        seq: 42,
                        done_below: 40,
                    },
                },
            )?,
        ),
        ("read-chunk", seed(Method::ReadChunk as u16, false, &read)?),
        (
            "read-chunk-ok",
            seed(Method::ReadChunk as u16, true, &read_ok)?,
        ),
        (
            "create-volume",
            seed(
                Method::CreateVolume as u16,
                false,
                &CreateVolume {
                    name: "vol".into(),
                    size: 1 << 30,
                    owner: "basalt".into(),
                    auth: None,
                },
            )?,
        ),
        (
            "create-volume-ok",
            seed::<std::result::Result<VolumeInfo, MdsError>>(
                Method::CreateVolume as u16,
                true,
                &Ok(volume),
            )?,
        ),
        (
            "open-volume",
            seed(
                Method::OpenVolume as u16,
                false,
                &OpenVolume {
                    name: "vol".into(),
                    owner: "basalt".into(),
                    shared: false,
                    client: "fuzz-client".into(),
                    auth: None,
                },
            )?,
        ),
        (
            "get-segment",
            seed(
                Method::GetSegment as u16,
                false,
                &GetSegment {
                    volume: VolumeId(3),
                    session: "s-1".into(),
                    index: 2,
                    allocate: true,
                },
            )?,
        ),
        (
            "remote-error",
            seed(
                0xfff0,
                false,
                &RemoteError::BadRequest {
                    method: 100,
                    reason: "x".into(),
                },
            )?,
        ),
    ])
}
