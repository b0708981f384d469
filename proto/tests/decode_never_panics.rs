//! Property tests: arbitrary bytes never panic the decoders; valid messages round-trip.

use basalt_proto::{chunk::*, codec, heartbeat::Heartbeat, hello::*, mds::*, FrameHeader, Limits};
use proptest::prelude::*;

proptest! {
    #[test]
    fn frame_header_decode_total(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = FrameHeader::decode(&bytes, &Limits::DEFAULT);
    }

    #[test]
    fn message_decoders_total(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode::<Hello>(&bytes);
        let _ = codec::decode::<HelloReply>(&bytes);
        let _ = codec::decode::<WriteChunk>(&bytes);
        let _ = codec::decode::<CreateCopyset>(&bytes);
        let _ = codec::decode::<Heartbeat>(&bytes);
        let _ = codec::decode::<OpenVolume>(&bytes);
        let _ = codec::decode::<Option<SegmentInfo>>(&bytes);
    }

    #[test]
    fn write_chunk_round_trips(group: u64, chunk: u64, epoch: u64, offset: u32, len: u32, crc: u32) {
        use basalt_proto::ids::*;
        let w = WriteChunk { group: GroupId(group), chunk: ChunkId(chunk), epoch: Epoch(epoch), offset, len, crc32c: crc, req: RequestId { client: chunk, seq: epoch, done_below: group } };
        prop_assert_eq!(codec::decode::<WriteChunk>(&codec::encode(&w).unwrap()).unwrap(), w);
    }
}
