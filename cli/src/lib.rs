//! `basalt`: the operator CLI (noun–verb: `basalt volume create`, `basalt dev-cluster up`).
//!
//! - [`commands`]: the clap command tree, one module per noun,
//! - [`size`]: sizes with units (`10GiB`),
//! - [`output`]: plain and JSON output,
//! - [`error`]: errors and the documented exit codes (`docs/cli.md`).
//!
//! `dev-cluster` uses `basalt-testkit` (a developer tool, not an operator command); no
//! other command does.

pub mod commands;
pub mod error;
pub mod output;
pub mod size;
#[cfg(test)]
mod snapshot;
