//! Basalt transport (in progress).
pub mod fastpath;
