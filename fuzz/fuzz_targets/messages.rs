//! Every message body of the protocol: the first two bytes pick a method number (any
//! `u16`; unknown numbers try the odd types out), the third whether the body is read as
//! the request or the reply, the rest is the body. The match over [`Method`] is
//! exhaustive, so a method added to the table without a line here does not compile.
//!
//! Asserts: decoding never panics; whatever decodes encodes, and decodes back equal.
#![no_main]

use basalt_proto::chunk::*;
use basalt_proto::codec;
use basalt_proto::heartbeat::Heartbeat;
use basalt_proto::hello::*;
use basalt_proto::mds::*;
use basalt_proto::method::RemoteError;
use basalt_proto::raft::*;
use basalt_proto::{Method, Rpc};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    let Ok(msg) = codec::decode::<T>(bytes) else {
        return;
    };
    let enc = codec::encode(&msg).expect("a decoded message encodes");
    let back: T = codec::decode(&enc).expect("an encoded message decodes");
    assert_eq!(back, msg, "decode(encode(x)) != x");
}

macro_rules! rpc {
    ($t:ty, $reply:expr, $body:expr) => {
        if $reply {
            roundtrip::<<$t as Rpc>::Reply>($body)
        } else {
            roundtrip::<$t>($body)
        }
    };
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let method = u16::from_le_bytes([data[0], data[1]]);
    let reply = data[2] & 1 == 1;
    let b = &data[3..];
    let Some(m) = Method::from_u16(method) else {
        // types with no method of their own: error frames, auth payloads, one-way notices
        match method % 4 {
            0 => roundtrip::<RemoteError>(b),
            1 => roundtrip::<AuthChallenge>(b),
            2 => roundtrip::<AuthAnswer>(b),
            _ => roundtrip::<UcxFallback>(b),
        }
        return;
    };
    match m {
        Method::Hello => rpc!(Hello, reply, b),
        Method::Ping => rpc!(Ping, reply, b),
        Method::Echo => rpc!(Echo, reply, b),
        Method::UcxFallback => roundtrip::<UcxFallback>(b),
        Method::HelloProof => rpc!(HelloProof, reply, b),
        Method::WriteChunk => rpc!(WriteChunk, reply, b),
        Method::ReadChunk => rpc!(ReadChunk, reply, b),
        Method::DeleteChunk => rpc!(DeleteChunk, reply, b),
        Method::GetLeader => rpc!(GetLeader, reply, b),
        Method::ChunkInfo => rpc!(ChunkInfo, reply, b),
        Method::CreateCopyset => rpc!(CreateCopyset, reply, b),
        Method::DeleteCopyset => rpc!(DeleteCopyset, reply, b),
        Method::CopysetStatus => rpc!(CopysetStatus, reply, b),
        Method::AddPeer => rpc!(AddPeer, reply, b),
        Method::RemovePeer => rpc!(RemovePeer, reply, b),
        Method::ChangePeer => rpc!(ChangePeer, reply, b),
        Method::TransferLeader => rpc!(TransferLeader, reply, b),
        Method::ResetPeers => rpc!(ResetPeers, reply, b),
        Method::RaftAppend => rpc!(RaftAppend, reply, b),
        Method::RaftVote => rpc!(RaftVote, reply, b),
        Method::RaftPreVote => rpc!(RaftPreVote, reply, b),
        Method::RaftSnapshot => rpc!(RaftSnapshot, reply, b),
        Method::RaftTransferLeader => rpc!(RaftTransferLeader, reply, b),
        Method::RaftSnapshotChunk => rpc!(RaftSnapshotChunk, reply, b),
        Method::RaftHeartbeatBatch => rpc!(RaftHeartbeatBatch, reply, b),
        Method::RegisterChunkServer => rpc!(RegisterChunkServer, reply, b),
        Method::ChunkServerHeartbeat => rpc!(Heartbeat, reply, b),
        Method::CreateVolume => rpc!(CreateVolume, reply, b),
        Method::OpenVolume => rpc!(OpenVolume, reply, b),
        Method::CloseVolume => rpc!(CloseVolume, reply, b),
        Method::RefreshSession => rpc!(RefreshSession, reply, b),
        Method::StatVolume => rpc!(StatVolume, reply, b),
        Method::ListVolumes => rpc!(ListVolumes, reply, b),
        Method::ExtendVolume => rpc!(ExtendVolume, reply, b),
        Method::RenameVolume => rpc!(RenameVolume, reply, b),
        Method::DeleteVolume => rpc!(DeleteVolume, reply, b),
        Method::GetSegment => rpc!(GetSegment, reply, b),
        Method::GetCopysets => rpc!(GetCopysets, reply, b),
        Method::ClusterStatus => rpc!(ClusterStatus, reply, b),
        Method::ListChunkServers => rpc!(ListChunkServers, reply, b),
        Method::ApplyTopology => rpc!(ApplyTopology, reply, b),
        Method::GetTopology => rpc!(GetTopology, reply, b),
        Method::MdsTransferLeader => rpc!(MdsTransferLeader, reply, b),
        Method::MdsRemovePeer => rpc!(MdsRemovePeer, reply, b),
        Method::ListOperators => rpc!(ListOperators, reply, b),
        Method::GetMdsLeader => rpc!(GetMdsLeader, reply, b),
        Method::ListCopysets => rpc!(ListCopysets, reply, b),
        Method::GetAuthNonce => rpc!(GetAuthNonce, reply, b),
        Method::CreateOwner => rpc!(CreateOwner, reply, b),
        Method::SetOwnerKey => rpc!(SetOwnerKey, reply, b),
        Method::DeleteOwner => rpc!(DeleteOwner, reply, b),
        Method::ListOwners => rpc!(ListOwners, reply, b),
        Method::DrainChunkServer => rpc!(DrainChunkServer, reply, b),
        Method::ListDrains => rpc!(ListDrains, reply, b),
        Method::ListPools => rpc!(ListPools, reply, b),
        Method::ApplyTopologyDryRun => rpc!(ApplyTopologyDryRun, reply, b),
        Method::PurgeVolume => rpc!(PurgeVolume, reply, b),
    }
});
