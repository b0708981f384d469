//! `basalt topology show|apply`: the cluster map (physical pools, zones, servers, logical
//! pools). `apply` is idempotent and only adds; `--dry-run` asks the MDS what apply would
//! do (`ApplyTopologyDryRun`: additions with the ids they would get, conflicts, ignored
//! differences, entries kept) and changes nothing.

use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::cluster_map::{ClusterMap, Syntax};
use crate::error::CliError;
use crate::output::{json, table, Format};
use basalt_proto::mds::{
    ApplyTopology, ApplyTopologyDryRun, GetTopology, TopologyChange, TopologyChanges, TopologyPlan,
};
use serde::Serialize;
use std::path::PathBuf;

/// `topology` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Print the cluster map (TOML; `--format json` for JSON). Applying it changes nothing.
    Show,
    /// Add what a cluster map file has and the cluster lacks. Idempotent; entries missing
    /// from the file are kept; moving an entry (a server to another zone, ...) is refused
    /// and then nothing changes.
    Apply(ApplyArgs),
}

/// `apply` arguments.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The map: TOML, or YAML with the same keys when the name ends in .yaml or .yml.
    pub file: PathBuf,
    /// Syntax of FILE, overriding its extension.
    #[arg(long, value_enum)]
    pub syntax: Option<SyntaxArg>,
    /// Ask the MDS what would change (add, conflict, ignored, kept) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--syntax`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyntaxArg {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
}

/// Read and check a map file.
pub fn read_map(args: &ApplyArgs) -> Result<ClusterMap, CliError> {
    let bad = |reason: String| CliError::BadFile {
        path: args.file.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&args.file).map_err(|e| bad(e.to_string()))?;
    let syntax = match args.syntax {
        Some(SyntaxArg::Toml) => Syntax::Toml,
        Some(SyntaxArg::Yaml) => Syntax::Yaml,
        None => Syntax::of_path(&args.file),
    };
    ClusterMap::parse(&text, syntax).map_err(bad)
}

fn change_name(c: TopologyChange) -> &'static str {
    match c {
        TopologyChange::Add => "add",
        TopologyChange::Conflict => "conflict",
        TopologyChange::Ignored => "ignored",
        TopologyChange::Kept => "kept",
    }
}

/// One entry of a dry run as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanEntryDoc {
    /// add, conflict, ignored or kept.
    pub change: &'static str,
    /// Entry kind (`zone`, ...).
    pub kind: String,
    /// Entry name.
    pub name: String,
    /// Its id: the existing one, or the one apply would assign.
    pub id: u32,
    /// The differing field, for conflicts and ignored differences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The cluster's value of `field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The file's value of `field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A dry run as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanDoc {
    /// Entries that differ, in kind order then file order.
    pub entries: Vec<PlanEntryDoc>,
    /// Entries present and equal on both sides.
    pub unchanged: u32,
}

impl PlanDoc {
    /// From the MDS's answer.
    pub fn new(p: &TopologyPlan) -> Self {
        PlanDoc {
            entries: p
                .entries
                .iter()
                .map(|e| {
                    let (field, cluster, file) = match &e.field {
                        Some((f, c, w)) => (Some(f.clone()), Some(c.clone()), Some(w.clone())),
                        None => (None, None, None),
                    };
                    PlanEntryDoc {
                        change: change_name(e.change),
                        kind: e.kind.clone(),
                        name: e.name.clone(),
                        id: e.id,
                        field,
                        cluster,
                        file,
                    }
                })
                .collect(),
            unchanged: p.unchanged,
        }
    }

    /// Entries apply would refuse.
    pub fn conflicts(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.change == "conflict")
            .count()
    }
}

/// Print a dry run.
pub fn print_plan(ctx: &mut Ctx<'_>, d: &PlanDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    let rows: Vec<Vec<String>> = d
        .entries
        .iter()
        .map(|e| {
            let detail = match (e.change, &e.field, &e.cluster, &e.file) {
                ("conflict", Some(f), Some(c), Some(w)) => {
                    format!("{f}: cluster {c}, file {w} (apply is refused)")
                }
                ("ignored", Some(f), Some(c), Some(w)) => {
                    format!("{f}: cluster {c}, file {w} (left as it is)")
                }
                ("kept", ..) => "only in the cluster (apply never removes)".into(),
                _ => "-".into(),
            };
            vec![
                e.change.into(),
                e.kind.clone(),
                e.name.clone(),
                e.id.to_string(),
                detail,
            ]
        })
        .collect();
    table(ctx.out, &["CHANGE", "KIND", "NAME", "ID", "DETAIL"], &rows)?;
    let adds = d.entries.iter().filter(|e| e.change == "add").count();
    (ctx.progress)(&format!(
        "dry run: {adds} to add, {} unchanged; nothing was changed",
        d.unchanged
    ));
    Ok(())
}

/// Print what apply added.
pub fn print_changes(ctx: &mut Ctx<'_>, c: &TopologyChanges) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, c)?);
    }
    let mut rows = Vec::new();
    for (kind, names) in [
        ("physical-pool", &c.physical_pools),
        ("zone", &c.zones),
        ("server", &c.servers),
        ("logical-pool", &c.logical_pools),
    ] {
        rows.extend(names.iter().map(|n| vec![kind.to_string(), n.clone()]));
    }
    if rows.is_empty() {
        (ctx.progress)("nothing to add: the cluster already has every entry of the map");
    }
    Ok(table(ctx.out, &["ADDED", "NAME"], &rows)?)
}

/// Run a `topology` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    // A bad file is reported before touching the network.
    let want = match &args.verb {
        Verb::Apply(a) => Some(read_map(a)?),
        Verb::Show => None,
    };
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Show => {
            let text = block_on(async {
                let admin = Admin::new(&file)?;
                Ok(admin.call(&GetTopology {}).await?.toml)
            })?;
            match ctx.format {
                Format::Plain => Ok(write!(ctx.out, "{text}")?),
                Format::Json => {
                    let map = ClusterMap::parse(&text, Syntax::Toml)
                        .map_err(|reason| CliError::BadAnswer { reason })?;
                    Ok(json(ctx.out, &map)?)
                }
            }
        }
        Verb::Apply(a) => {
            let want = want.unwrap_or_default();
            if a.dry_run {
                let plan = block_on(async {
                    let admin = Admin::new(&file)?;
                    admin
                        .call(&ApplyTopologyDryRun {
                            toml: want.to_toml(),
                        })
                        .await
                })?;
                let d = PlanDoc::new(&plan);
                print_plan(ctx, &d)?;
                let conflicts = d.conflicts();
                if conflicts > 0 {
                    return Err(CliError::MapConflicts { conflicts });
                }
                return Ok(());
            }
            let changes = block_on(async {
                let admin = Admin::new(&file)?;
                admin
                    .call(&ApplyTopology {
                        toml: want.to_toml(),
                    })
                    .await
            })?;
            print_changes(ctx, &changes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_ctx;

    #[test]
    fn plan_and_changes_render_as_the_snapshots() {
        use basalt_proto::mds::TopologyPlanEntry;
        let entry = |change, kind: &str, name: &str, id, field: Option<(&str, &str, &str)>| {
            TopologyPlanEntry {
                change,
                kind: kind.into(),
                name: name.into(),
                id,
                field: field.map(|(f, c, w)| (f.into(), c.into(), w.into())),
            }
        };
        let plan = TopologyPlan {
            entries: vec![
                entry(TopologyChange::Add, "zone", "zone-2", 2, None),
                entry(TopologyChange::Add, "server", "host-2", 2, None),
                entry(
                    TopologyChange::Conflict,
                    "server",
                    "host-1",
                    1,
                    Some(("zone", "zone-1", "zone-2")),
                ),
                entry(
                    TopologyChange::Ignored,
                    "logical-pool",
                    "blocks",
                    1,
                    Some(("scatter-width", "0", "2")),
                ),
                entry(TopologyChange::Kept, "server", "host-3", 3, None),
            ],
            unchanged: 2,
        };
        let d = PlanDoc::new(&plan);
        assert_eq!(d.conflicts(), 1);
        for (format, name) in [
            (Format::Plain, "topology-dry-run.txt"),
            (Format::Json, "topology-dry-run.json"),
        ] {
            let text = test_ctx(format, |ctx| print_plan(ctx, &d));
            crate::snapshot::assert_snapshot(name, &text);
        }
        let changes = TopologyChanges {
            zones: vec!["zone-2".into()],
            servers: vec!["host-2".into()],
            ..Default::default()
        };
        let text = test_ctx(Format::Plain, |ctx| print_changes(ctx, &changes));
        assert_eq!(text, "ADDED   NAME\nzone    zone-2\nserver  host-2\n");
    }

    #[test]
    fn map_files_are_read_by_extension_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("map.yaml");
        std::fs::write(&yaml, "physical-pool: [{ name: p }]\n").unwrap();
        let mut a = ApplyArgs {
            file: yaml.clone(),
            syntax: None,
            dry_run: true,
        };
        assert_eq!(read_map(&a).unwrap().physical_pool[0].name, "p");
        a.syntax = Some(SyntaxArg::Toml);
        let e = read_map(&a).unwrap_err();
        assert!(e.to_string().contains("map.yaml"), "{e}");
        assert_eq!(e.exit_code(), 1);
        a.file = dir.path().join("missing.toml");
        assert!(matches!(read_map(&a), Err(CliError::BadFile { .. })));
    }
}
