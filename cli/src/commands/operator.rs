//! `basalt operator ls`: the operators the MDS has queued for copyset leaders (leader
//! transfers, peer additions, removals and changes), from the scheduler or an administrator.

use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::ids::copyset_name;
use crate::output::{json, table, Format};
use basalt_proto::heartbeat::{Operator, OperatorKind};
use basalt_proto::ids::GroupId;
use basalt_proto::mds::{CopysetInfo, GetCopysets, ListOperators, OperatorState};
use serde::Serialize;
use std::time::{Duration, Instant};

/// `operator` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// List pending operators with their age.
    Ls,
}

/// An operator as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorDoc {
    /// `POOL.COPYSET`.
    pub copyset: String,
    /// Raw group id.
    pub group: u64,
    /// Epoch it was computed against.
    pub epoch: u64,
    /// transfer-leader, add-peer, remove-peer or change-peer.
    pub kind: &'static str,
    /// New leader (transfer-leader).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
    /// Joining peer (add-peer, change-peer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<u32>,
    /// Leaving peer (remove-peer, change-peer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove: Option<u32>,
    /// Milliseconds since it was issued (`operator ls` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
}

impl OperatorDoc {
    /// From an operator, with its age when known.
    pub fn new(op: &Operator, age_ms: Option<u64>) -> Self {
        let (kind, to, add, remove) = match op.kind {
            OperatorKind::TransferLeader(t) => ("transfer-leader", Some(t.0), None, None),
            OperatorKind::AddPeer(p) => ("add-peer", None, Some(p.id.0), None),
            OperatorKind::RemovePeer(p) => ("remove-peer", None, None, Some(p.0)),
            OperatorKind::ChangePeer { remove, add } => {
                ("change-peer", None, Some(add.id.0), Some(remove.0))
            }
        };
        OperatorDoc {
            copyset: copyset_name(op.group),
            group: op.group.0,
            epoch: op.epoch.0,
            kind,
            to,
            add,
            remove,
            age_ms,
        }
    }

    /// What it does, for people.
    pub fn what(&self) -> String {
        match (self.to, self.add, self.remove) {
            (Some(t), ..) => format!("leader to cs{t}"),
            (None, Some(a), Some(r)) => format!("replace cs{r} with cs{a}"),
            (None, Some(a), None) => format!("add cs{a}"),
            (None, None, Some(r)) => format!("remove cs{r}"),
            (None, None, None) => String::new(),
        }
    }
}

/// Print operators.
pub fn print_operators(ctx: &mut Ctx<'_>, ops: &[OperatorState]) -> Result<(), CliError> {
    let docs: Vec<OperatorDoc> = ops
        .iter()
        .map(|o| OperatorDoc::new(&o.op, Some(o.age_ms)))
        .collect();
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, &docs)?);
    }
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            vec![
                d.copyset.clone(),
                d.epoch.to_string(),
                d.kind.into(),
                d.what(),
                format!("{:.1}s", d.age_ms.unwrap_or(0) as f64 / 1000.0),
            ]
        })
        .collect();
    Ok(table(
        ctx.out,
        &["COPYSET", "EPOCH", "KIND", "WHAT", "AGE"],
        &rows,
    )?)
}

/// Print one queued operator (what `leader transfer` and `peer remove` answer).
pub fn print_queued(ctx: &mut Ctx<'_>, op: &Operator) -> Result<(), CliError> {
    let d = OperatorDoc::new(op, None);
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, &d)?);
    }
    Ok(table(
        ctx.out,
        &["QUEUED", "COPYSET", "EPOCH", "WHAT"],
        &[vec![
            d.kind.into(),
            d.copyset.clone(),
            d.epoch.to_string(),
            d.what(),
        ]],
    )?)
}

/// `--wait` for a queued operator.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WaitArgs {
    /// Wait until the MDS sees the change done (leaders report it in their heartbeats).
    #[arg(long)]
    pub wait: bool,
    /// Seconds `--wait` may take.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
}

/// Poll the MDS's placement of `group` until `done` holds, at most `secs` seconds.
pub async fn wait_until(
    admin: &Admin,
    group: GroupId,
    secs: u64,
    what: &'static str,
    done: impl Fn(&CopysetInfo) -> bool,
) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let info = admin
            .call(&GetCopysets {
                groups: vec![group],
            })
            .await?;
        if info.first().is_some_and(&done) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CliError::WaitTimeout { group, what, secs });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Run an `operator` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Ls => {
            let ops = block_on(async { Admin::new(&file)?.call(&ListOperators {}).await })?;
            print_operators(ctx, &ops)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_ctx;
    use basalt_proto::ids::{ChunkServerId, CopysetId, Epoch, GroupId, LogicalPoolId};
    use basalt_proto::status::PeerAddr;

    #[test]
    fn operators_render_as_the_snapshots() {
        let g = |n| GroupId::of(LogicalPoolId(1), CopysetId(n));
        let p4 = PeerAddr {
            id: ChunkServerId(4),
            addr: "127.0.0.1:6804".parse().unwrap(),
        };
        let ops: Vec<OperatorState> = [
            OperatorKind::TransferLeader(ChunkServerId(2)),
            OperatorKind::AddPeer(p4),
            OperatorKind::RemovePeer(ChunkServerId(3)),
            OperatorKind::ChangePeer {
                remove: ChunkServerId(3),
                add: p4,
            },
        ]
        .into_iter()
        .enumerate()
        .map(|(i, kind)| OperatorState {
            op: Operator {
                group: g(i as u32 + 1),
                epoch: Epoch(2),
                kind,
            },
            age_ms: 1500 * i as u64,
        })
        .collect();
        let text = test_ctx(Format::Plain, |ctx| print_queued(ctx, &ops[0].op));
        assert_eq!(
            text,
            "QUEUED           COPYSET  EPOCH  WHAT\ntransfer-leader  1.1      2      leader to cs2\n"
        );
        for (format, name) in [
            (Format::Plain, "operator-ls.txt"),
            (Format::Json, "operator-ls.json"),
        ] {
            let text = test_ctx(format, |ctx| print_operators(ctx, &ops));
            crate::snapshot::assert_snapshot(name, &text);
        }
    }
}
