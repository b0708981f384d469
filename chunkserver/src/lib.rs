//! See the crate description; implementation in progress.
