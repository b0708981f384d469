//! Writes the committed seed corpora of the fuzz targets in `fuzz/`: small valid inputs of
//! each format, so the fuzzers start past magics and checksums. Rerun after a format
//! change; review the diff of `fuzz/corpus/`.
//!
//! Usage: `cargo run --manifest-path fuzz/seed-gen/Cargo.toml -- fuzz/corpus`
//!
//! The formats outside `basalt-proto` (NBD, WAL records, chunk headers, the data-dir meta)
//! are written here from their documented layouts rather than through their crates, which
//! keeps this tool light; a seed that drifts from its format only makes the fuzzer start
//! further out, it cannot hide a bug.

mod configs;
mod disk;
mod frames;
mod handshake;
mod messages;
mod nbd;

use std::path::{Path, PathBuf};

type Seeds = Vec<(&'static str, Vec<u8>)>;
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn write(root: &Path, target: &str, seeds: Seeds) -> Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("{target}: {} seeds", seeds.len());
    Ok(())
}

fn main() -> Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let etc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc");
    write(&root, "frame_decoder", frames::seeds()?)?;
    write(&root, "messages", messages::seeds()?)?;
    write(&root, "hello_handshake", handshake::seeds()?)?;
    write(&root, "nbd_server", nbd::server_seeds())?;
    write(&root, "nbd_transmission", nbd::transmission_seeds())?;
    write(&root, "wal_segment", disk::wal_seeds())?;
    write(&root, "chunk_header", disk::chunk_header_seeds())?;
    write(&root, "datadir_meta", disk::meta_seeds())?;
    write(&root, "raft_bodies", disk::raft_seeds())?;
    write(&root, "config_toml", configs::seeds(&etc)?)?;
    Ok(())
}
