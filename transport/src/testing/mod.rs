//! Test support (feature `testing`): a fake fast-path provider with fault switches and the
//! conformance suite every backend runs.

pub mod conformance;
mod fake_fastpath;

pub use fake_fastpath::FakeFastPath;
