//! `basalt topology show|apply`: the cluster map (physical pools, zones, servers, logical
//! pools). `apply` is idempotent and only adds; `--dry-run` shows the diff and changes
//! nothing.

use super::pool::cluster_map;
use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::cluster_map::{diff, Change, ClusterMap, MapDiff, Syntax};
use crate::error::CliError;
use crate::output::{json, table, Format};
use basalt_proto::mds::{ApplyTopology, GetTopology, TopologyChanges};
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
    /// Show what would change (add, conflict, ignored, kept) and change nothing.
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

fn change_name(c: Change) -> &'static str {
    match c {
        Change::Add => "add",
        Change::Conflict => "conflict",
        Change::Ignored => "ignored",
        Change::Kept => "kept",
    }
}

/// Print a dry-run diff.
pub fn print_diff(ctx: &mut Ctx<'_>, d: &MapDiff) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    let rows: Vec<Vec<String>> = d
        .entries
        .iter()
        .map(|e| {
            let detail = match (e.change, e.field, &e.cluster, &e.file) {
                (Change::Conflict, Some(f), Some(c), Some(w)) => {
                    format!("{f}: cluster {c}, file {w} (apply is refused)")
                }
                (Change::Ignored, Some(f), Some(c), Some(w)) => {
                    format!("{f}: cluster {c}, file {w} (left as it is)")
                }
                (Change::Kept, ..) => "only in the cluster (apply never removes)".into(),
                _ => "-".into(),
            };
            vec![
                change_name(e.change).into(),
                e.kind.into(),
                e.name.clone(),
                detail,
            ]
        })
        .collect();
    table(ctx.out, &["CHANGE", "KIND", "NAME", "DETAIL"], &rows)?;
    (ctx.progress)(&format!(
        "dry run: {} to add, {} unchanged; nothing was changed",
        d.adds(),
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
                let d = block_on(async {
                    let admin = Admin::new(&file)?;
                    Ok(diff(&want, &cluster_map(&admin).await?))
                })?;
                print_diff(ctx, &d)?;
                let conflicts = d
                    .entries
                    .iter()
                    .filter(|e| e.change == Change::Conflict)
                    .count();
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
    use crate::cluster_map::{ServerEntry, ZoneEntry};
    use crate::commands::test_ctx;

    #[test]
    fn diff_and_changes_render_as_the_snapshots() {
        let cluster = ClusterMap::parse(
            "[[physical-pool]]\nname = \"pool-1\"\n[[zone]]\nname = \"zone-1\"\nphysical-pool = \"pool-1\"\n\
             [[server]]\nname = \"host-1\"\nzone = \"zone-1\"\n",
            Syntax::Toml,
        )
        .unwrap();
        let mut file = cluster.clone();
        file.zone.push(ZoneEntry {
            name: "zone-2".into(),
            physical_pool: "pool-1".into(),
        });
        file.server = vec![ServerEntry {
            name: "host-2".into(),
            zone: "zone-2".into(),
        }];
        let mut conflicting = file.clone();
        conflicting.server.push(ServerEntry {
            name: "host-1".into(),
            zone: "zone-2".into(),
        });
        let d = diff(&conflicting, &cluster);
        for (format, name) in [
            (Format::Plain, "topology-dry-run.txt"),
            (Format::Json, "topology-dry-run.json"),
        ] {
            let text = test_ctx(format, |ctx| print_diff(ctx, &d));
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
