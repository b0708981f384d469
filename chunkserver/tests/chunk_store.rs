//! The chunk store on a real formatted data dir (small chunks to keep it quick).

use basalt_chunkserver::backend::spdk::SpdkOptions;
use basalt_chunkserver::backend::{BackendChoice, BackendFactory};
use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::chunk_header::{ChunkHeader, HEADER_SIZE};
use basalt_chunkserver::datadir::{DataDir, FormatOptions};
use basalt_chunkserver::poller::{PollerOptions, Pollers};
use basalt_chunkserver::store::{FileChunkStore, StoreOptions};
use basalt_chunkserver::ChunkServerError;
use basalt_proto::ids::{ChunkId, GroupId};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const CHUNK: u64 = 1 << 20;

fn format(root: &Path, pool: u64) -> DataDir {
    let opts = FormatOptions {
        pool_size: pool,
        wal_segments: 2,
        chunk_size: CHUNK,
        wal_segment_size: 1 << 20,
    };
    DataDir::format(root, &opts, &mut |_| {}).unwrap()
}

fn open(root: &Path, choice: BackendChoice, opts: StoreOptions) -> FileChunkStore {
    let factory = BackendFactory::probe(choice, &SpdkOptions::default()).unwrap();
    let pollers = Arc::new(Pollers::start(PollerOptions::default(), &factory).unwrap());
    FileChunkStore::open(DataDir::open(root, None).unwrap(), pollers, opts).unwrap()
}

fn pat(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect::<Vec<_>>()
        .into()
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("timed out")
}

const G: GroupId = GroupId(0x1_0000_0002);

#[tokio::test]
async fn create_on_first_write_and_zeros_elsewhere() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        format(dir.path(), 3);
        for choice in [BackendChoice::Sync, BackendChoice::Auto] {
            let s = open(dir.path(), choice, StoreOptions::default());
            let c = ChunkId(11 + choice as u64);
            assert_eq!(s.read(G, c, 0, 4096).await.unwrap(), None);
            s.write(G, c, 8192, pat(4096, 1)).await.unwrap();
            assert!(s.list(G).unwrap().contains(&c));
            assert_eq!(
                s.read(G, c, 8192, 4096).await.unwrap().unwrap(),
                pat(4096, 1)
            );
            let z = s.read(G, c, 0, 8192).await.unwrap().unwrap();
            assert!(z.iter().all(|&b| b == 0));
            let z = s.read(G, c, CHUNK - 4096, 4096).await.unwrap().unwrap();
            assert!(z.iter().all(|&b| b == 0));
            // header page names the chunk
            let page = std::fs::read(dir.path().join(format!("chunks/{}/{}", G.0, c.0))).unwrap();
            let h = ChunkHeader::decode(&page[..HEADER_SIZE]).unwrap();
            assert_eq!((h.group, h.chunk), (G, c));
        }
    })
    .await
}

#[tokio::test]
async fn sizes_and_512_byte_io_with_both_units() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        format(dir.path(), 2);
        // io_unit 4096 forces the read-modify-write path for 512-byte I/O.
        for (i, unit) in [None, Some(4096)].into_iter().enumerate() {
            let s = open(
                dir.path(),
                BackendChoice::Auto,
                StoreOptions {
                    direct_io: true,
                    io_unit: unit,
                },
            );
            assert!(s.direct_io());
            if unit.is_some() {
                assert_eq!(s.io_unit(), 4096);
            }
            let c = ChunkId(100 + i as u64);
            s.write(G, c, 0, pat(1 << 20, 3)).await.unwrap();
            s.write(G, c, 512, pat(512, 4)).await.unwrap();
            s.write(G, c, 4096 * 3 + 1536, pat(3072, 5)).await.unwrap();
            s.write(G, c, 4096 * 3, pat(512, 6)).await.unwrap();
            let mut expect = pat(1 << 20, 3).to_vec();
            expect[512..1024].copy_from_slice(&pat(512, 4));
            expect[4096 * 3 + 1536..4096 * 4 + 512].copy_from_slice(&pat(3072, 5));
            expect[4096 * 3..4096 * 3 + 512].copy_from_slice(&pat(512, 6));
            assert_eq!(
                s.read(G, c, 0, 1 << 20).await.unwrap().unwrap(),
                &expect[..]
            );
            assert_eq!(
                s.read(G, c, 512, 512).await.unwrap().unwrap(),
                &expect[512..1024]
            );
            assert_eq!(
                s.read(G, c, 4096 * 3 + 512, 4096).await.unwrap().unwrap(),
                &expect[4096 * 3 + 512..4096 * 4 + 512]
            );
            // concurrent 512-byte writes inside one 4 KiB block must not lose each other
            let writes = (0..8u64).map(|k| s.write(G, c, 65536 + k * 512, pat(512, 40 + k as u8)));
            for r in futures::future::join_all(writes).await {
                r.unwrap();
            }
            for k in 0..8u64 {
                assert_eq!(
                    s.read(G, c, 65536 + k * 512, 512).await.unwrap().unwrap(),
                    pat(512, 40 + k as u8)
                );
            }
            s.delete(G, c).await.unwrap();
        }
    })
    .await
}

#[tokio::test]
async fn bad_ranges_are_rejected() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        format(dir.path(), 1);
        let s = open(dir.path(), BackendChoice::Sync, StoreOptions::default());
        for (off, len) in [
            (100u64, 512usize),
            (0, 100),
            (CHUNK - 512, 1024),
            (CHUNK, 512),
        ] {
            let e = s.write(G, ChunkId(1), off, pat(len, 0)).await.unwrap_err();
            assert!(
                matches!(e, ChunkServerError::BadRange { .. }),
                "{off}/{len}: {e}"
            );
        }
        assert!(matches!(
            s.read(G, ChunkId(1), 0, 0).await.unwrap_err(),
            ChunkServerError::BadRange { .. }
        ));
        assert_eq!(s.free_chunks(), 1, "a rejected write must not take a chunk");
    })
    .await
}

#[tokio::test]
async fn delete_returns_file_to_pool_zeroed_and_exhaustion_is_nospace() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        format(dir.path(), 2);
        let s = open(dir.path(), BackendChoice::Auto, StoreOptions::default());
        assert_eq!(s.free_chunks(), 2);
        s.write(G, ChunkId(1), 0, pat(4096, 9)).await.unwrap();
        s.write(G, ChunkId(2), 0, pat(4096, 9)).await.unwrap();
        assert_eq!(s.free_chunks(), 0);
        let e = s.write(G, ChunkId(3), 0, pat(4096, 9)).await.unwrap_err();
        assert!(
            matches!(e, ChunkServerError::NoSpace { pool: "chunk" }),
            "{e}"
        );
        s.delete(G, ChunkId(1)).await.unwrap();
        s.delete(G, ChunkId(1)).await.unwrap(); // missing: still fine
        assert_eq!(s.free_chunks(), 1);
        assert_eq!(s.read(G, ChunkId(1), 0, 4096).await.unwrap(), None);
        // the recycled file comes back zeroed
        s.write(G, ChunkId(3), 8192, pat(4096, 1)).await.unwrap();
        let z = s.read(G, ChunkId(3), 0, 4096).await.unwrap().unwrap();
        assert!(z.iter().all(|&b| b == 0));
        s.remove_group(G).await.unwrap();
        assert_eq!(s.free_chunks(), 2);
        assert!(s.list(G).unwrap().is_empty());
        assert!(!dir.path().join(format!("chunks/{}", G.0)).exists());
    })
    .await
}

#[tokio::test]
async fn restart_keeps_data() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        format(dir.path(), 3);
        {
            let s = open(dir.path(), BackendChoice::Auto, StoreOptions::default());
            s.write(G, ChunkId(5), 4096, pat(8192, 2)).await.unwrap();
            s.write(GroupId(9), ChunkId(6), 0, pat(512, 3))
                .await
                .unwrap();
            s.sync_group(G).await.unwrap();
            s.sync_group(GroupId(9)).await.unwrap();
        }
        let s = open(dir.path(), BackendChoice::Sync, StoreOptions::default());
        assert_eq!(s.list(G).unwrap(), vec![ChunkId(5)]);
        assert_eq!(s.free_chunks(), 1);
        assert_eq!(
            s.read(G, ChunkId(5), 4096, 8192).await.unwrap().unwrap(),
            pat(8192, 2)
        );
        assert_eq!(
            s.read(GroupId(9), ChunkId(6), 0, 512)
                .await
                .unwrap()
                .unwrap(),
            pat(512, 3)
        );
    })
    .await
}

#[tokio::test]
async fn reservations_count_chunks_that_writes_in_flight_will_create() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        format(dir.path(), 3);
        let s = open(dir.path(), BackendChoice::Sync, StoreOptions::default());
        s.write(G, ChunkId(1), 0, pat(4096, 1)).await.unwrap();
        // Two free files left: two new chunks can be reserved, a third cannot.
        let a = s.reserve_chunk(G, ChunkId(2)).unwrap();
        let a2 = s.reserve_chunk(G, ChunkId(2)).unwrap(); // same chunk: no extra file
        let b = s.reserve_chunk(G, ChunkId(3)).unwrap();
        assert!(matches!(
            s.reserve_chunk(G, ChunkId(4)),
            Err(ChunkServerError::NoSpace { pool: "chunk" })
        ));
        // Existing chunks need no file.
        drop(s.reserve_chunk(G, ChunkId(1)).unwrap());
        drop(a);
        assert!(
            s.reserve_chunk(G, ChunkId(4)).is_err(),
            "chunk 2 still held once"
        );
        drop(a2);
        let c = s.reserve_chunk(G, ChunkId(4)).unwrap();
        // Writes consume the pool; with it empty, only existing chunks can be written.
        s.write(G, ChunkId(3), 0, pat(4096, 3)).await.unwrap();
        s.write(G, ChunkId(4), 0, pat(4096, 4)).await.unwrap();
        drop((b, c));
        assert_eq!(s.free_chunks(), 0);
        assert!(matches!(
            s.reserve_chunk(G, ChunkId(5)),
            Err(ChunkServerError::NoSpace { .. })
        ));
        assert!(matches!(
            s.write(G, ChunkId(5), 0, pat(4096, 5)).await,
            Err(ChunkServerError::NoSpace { .. })
        ));
        s.write(G, ChunkId(1), 4096, pat(4096, 6)).await.unwrap();
        assert_eq!(
            s.read(G, ChunkId(1), 0, 8192).await.unwrap().unwrap(),
            [pat(4096, 1), pat(4096, 6)].concat()
        );
        assert!(!s.fence().is_tripped(), "no space is not a disk error");
    })
    .await
}
