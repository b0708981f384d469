//! `basalt-fio`: a fio external ioengine ("basalt") for Basalt volumes.
//!
//! fio loads the built `libbasalt_fio.so` with `--ioengine=external:/path/libbasalt_fio.so`.
//! The crate has two halves:
//! - `src/engine.c`, compiled against the installed fio's own headers (build.rs), holds
//!   every access to fio's structs: the `ioengine_ops`, the options table, and the hooks,
//!   which forward to the Rust functions in [`ffi`];
//! - Rust: [`Engine`] (per-job state: an async runtime, ops in flight, a completion
//!   queue) over an [`EngineBackend`] (async read/write/trim/flush on one volume).
//!
//! Backends: [`MemVolume`] (`volume=mem:SIZE`), an in-memory sparse volume that exists to
//! test the engine's ABI plumbing; the Basalt client's volume will be a second
//! [`EngineBackend`] impl chosen in [`backend::open_backend`].
//!
//! Process model: fio forks one process per job after loading the engine and running
//! `setup` in the parent, so nothing here starts a thread before `init` (see docs/fio.md).
//!
//! Licence: GPL-2.0-only (the engine links against fio's GPL headers).

pub mod backend;
pub mod client_backend;
pub mod engine;
pub mod error;
pub mod ffi;
pub mod mem;
pub mod options;
pub mod version;

pub use backend::EngineBackend;
pub use engine::{Completion, Engine, Op};
pub use error::FioError;
pub use mem::MemVolume;
pub use options::{EngineOptions, TransportChoice, VolumeSpec};
