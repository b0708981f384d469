//! `basalt`: the operator CLI (noun–verb: `basalt volume create`, `basalt dev-cluster up`).
//!
//! - [`commands`]: the clap command tree, one module per noun,
//! - [`admin`]: connections to the MDS group and to chunkservers for one call,
//! - [`cluster_map`]: cluster map files (TOML, YAML) and their diff for `topology apply`,
//! - [`ids`]: copyset, chunkserver and pool ids as people type them,
//! - [`replicas`]: judging a copyset from its replicas' answers,
//! - [`size`]: sizes with units (`10GiB`),
//! - [`output`]: plain and JSON output,
//! - [`error`]: errors and the documented exit codes (`docs/cli.md`).
//!
//! `dev-cluster` uses `basalt-testkit` (a developer tool, not an operator command); no
//! other command does.

pub mod admin;
pub mod cluster_map;
pub mod commands;
pub mod error;
pub mod ids;
pub mod output;
pub mod replicas;
pub mod size;
#[cfg(test)]
mod snapshot;
