//! Cluster map files for `topology apply|show` (sans-IO): the MDS's cluster-map schema
//! (`docs/mds.md`; TOML on the wire) read from TOML or YAML, and the diff against the map
//! the MDS has, for `--dry-run`.
//!
//! The MDS stays the authority: it validates the whole map again on apply. The checks here
//! (names unique, parents defined, the changes the MDS refuses) exist so that `--dry-run`
//! can say what would happen without changing anything.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A physical pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PoolEntry {
    /// Name.
    pub name: String,
}

/// A zone (failure domain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ZoneEntry {
    /// Name.
    pub name: String,
    /// Physical pool name.
    pub physical_pool: String,
}

/// A server (host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerEntry {
    /// Name.
    pub name: String,
    /// Zone name.
    pub zone: String,
}

fn default_copysets() -> u32 {
    100
}

/// A logical pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogicalPoolEntry {
    /// Name.
    pub name: String,
    /// Physical pool name.
    pub physical_pool: String,
    /// Replicas per copyset.
    pub replicas: u8,
    /// Copysets per chunkserver.
    #[serde(default = "default_copysets")]
    pub copysets_per_chunkserver: u32,
    /// Scatter width (0: as wide as the pool allows).
    #[serde(default)]
    pub scatter_width: u32,
}

/// A cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClusterMap {
    /// Physical pools.
    #[serde(default)]
    pub physical_pool: Vec<PoolEntry>,
    /// Zones.
    #[serde(default)]
    pub zone: Vec<ZoneEntry>,
    /// Servers.
    #[serde(default)]
    pub server: Vec<ServerEntry>,
    /// Logical pools.
    #[serde(default)]
    pub logical_pool: Vec<LogicalPoolEntry>,
}

/// The syntax of a map file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// TOML (the MDS's own format).
    Toml,
    /// YAML with the same keys.
    Yaml,
}

impl Syntax {
    /// From a file name: `.yaml`/`.yml` is YAML, anything else TOML.
    pub fn of_path(path: &std::path::Path) -> Syntax {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => {
                Syntax::Yaml
            }
            _ => Syntax::Toml,
        }
    }
}

/// Entry kinds, as the map's keys name them.
pub const KINDS: [&str; 4] = ["physical-pool", "zone", "server", "logical-pool"];

impl ClusterMap {
    /// Parse text of `syntax` and check it (see [`ClusterMap::check`]).
    pub fn parse(text: &str, syntax: Syntax) -> Result<Self, String> {
        let map: ClusterMap = match syntax {
            Syntax::Toml => toml::from_str(text).map_err(|e| e.to_string())?,
            // An empty YAML document is an empty map.
            Syntax::Yaml if text.trim().is_empty() => ClusterMap::default(),
            Syntax::Yaml => serde_norway::from_str(text).map_err(|e| e.to_string())?,
        };
        map.check()?;
        Ok(map)
    }

    /// TOML text, as `ApplyTopology` carries it.
    pub fn to_toml(&self) -> String {
        // Strings, integers and arrays of tables always serialise.
        toml::to_string(self).unwrap_or_default()
    }

    /// Names unique per kind and non-empty; every parent defined in the map.
    pub fn check(&self) -> Result<(), String> {
        let names = self.names();
        for (kind, list) in KINDS.iter().zip(&names) {
            let mut seen = BTreeSet::new();
            for n in list {
                if n.is_empty() {
                    return Err(format!("{kind}: empty name"));
                }
                if !seen.insert(n) {
                    return Err(format!("duplicate {kind} {n:?}"));
                }
            }
        }
        let has = |i: usize, n: &str| names[i].iter().any(|x| x == n);
        let missing = |kind: &str, name: &str, pk: &str, p: &str| {
            format!("{kind} {name:?} refers to {pk} {p:?}, which the map does not define")
        };
        for z in &self.zone {
            if !has(0, &z.physical_pool) {
                return Err(missing("zone", &z.name, KINDS[0], &z.physical_pool));
            }
        }
        for s in &self.server {
            if !has(1, &s.zone) {
                return Err(missing("server", &s.name, KINDS[1], &s.zone));
            }
        }
        for l in &self.logical_pool {
            if !has(0, &l.physical_pool) {
                return Err(missing("logical-pool", &l.name, KINDS[0], &l.physical_pool));
            }
        }
        Ok(())
    }

    fn names(&self) -> [Vec<String>; 4] {
        [
            self.physical_pool.iter().map(|e| e.name.clone()).collect(),
            self.zone.iter().map(|e| e.name.clone()).collect(),
            self.server.iter().map(|e| e.name.clone()).collect(),
            self.logical_pool.iter().map(|e| e.name.clone()).collect(),
        ]
    }

    /// Per kind: name → the fields that matter, as `(field, value)`.
    fn fields(&self) -> [BTreeMap<String, Vec<(&'static str, String)>>; 4] {
        [
            self.physical_pool
                .iter()
                .map(|e| (e.name.clone(), vec![]))
                .collect(),
            self.zone
                .iter()
                .map(|e| {
                    (
                        e.name.clone(),
                        vec![("physical-pool", e.physical_pool.clone())],
                    )
                })
                .collect(),
            self.server
                .iter()
                .map(|e| (e.name.clone(), vec![("zone", e.zone.clone())]))
                .collect(),
            self.logical_pool
                .iter()
                .map(|e| {
                    (
                        e.name.clone(),
                        vec![
                            ("physical-pool", e.physical_pool.clone()),
                            ("replicas", e.replicas.to_string()),
                            (
                                "copysets-per-chunkserver",
                                e.copysets_per_chunkserver.to_string(),
                            ),
                            ("scatter-width", e.scatter_width.to_string()),
                        ],
                    )
                })
                .collect(),
        ]
    }
}

/// Fields whose change the MDS refuses (the others it leaves as they are).
fn refused_field(kind: &str, field: &str) -> bool {
    matches!(
        (kind, field),
        ("zone", "physical-pool")
            | ("server", "zone")
            | ("logical-pool", "physical-pool")
            | ("logical-pool", "replicas")
    )
}

/// What applying a map would do, entry by entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// The entry is new: apply adds it.
    Add,
    /// The entry exists with a different value of a field the MDS will not change: apply
    /// is refused as a whole.
    Conflict,
    /// The entry exists with a different value of a field apply leaves alone.
    Ignored,
    /// The entry exists only in the cluster: apply keeps it (removal is not a map edit).
    Kept,
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    /// What happens.
    pub change: Change,
    /// Entry kind (`zone`, ...).
    pub kind: &'static str,
    /// Entry name.
    pub name: String,
    /// The differing field, for conflicts and ignored differences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// The cluster's value of `field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The file's value of `field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The diff of a map file against the cluster's map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MapDiff {
    /// Entries that differ, in kind order then file order.
    pub entries: Vec<DiffEntry>,
    /// Entries present and equal on both sides.
    pub unchanged: usize,
}

impl MapDiff {
    /// Whether apply would be refused.
    pub fn has_conflicts(&self) -> bool {
        self.entries.iter().any(|e| e.change == Change::Conflict)
    }

    /// Whether apply would add anything.
    pub fn adds(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.change == Change::Add)
            .count()
    }
}

/// Compare `file` (what the operator wants) with `cluster` (what the MDS has).
pub fn diff(file: &ClusterMap, cluster: &ClusterMap) -> MapDiff {
    let mut d = MapDiff::default();
    let (want, have) = (file.fields(), cluster.fields());
    let order = file.names();
    for (i, &kind) in KINDS.iter().enumerate() {
        for name in &order[i] {
            let w = &want[i][name];
            let Some(h) = have[i].get(name) else {
                d.entries.push(DiffEntry {
                    change: Change::Add,
                    kind,
                    name: name.clone(),
                    field: None,
                    cluster: None,
                    file: None,
                });
                continue;
            };
            let mut same = true;
            for ((field, fv), (_, hv)) in w.iter().zip(h) {
                if fv != hv {
                    same = false;
                    d.entries.push(DiffEntry {
                        change: if refused_field(kind, field) {
                            Change::Conflict
                        } else {
                            Change::Ignored
                        },
                        kind,
                        name: name.clone(),
                        field: Some(*field),
                        cluster: Some(hv.clone()),
                        file: Some(fv.clone()),
                    });
                }
            }
            if same {
                d.unchanged += 1;
            }
        }
        for name in have[i].keys().filter(|n| !want[i].contains_key(*n)) {
            d.entries.push(DiffEntry {
                change: Change::Kept,
                kind,
                name: name.clone(),
                field: None,
                cluster: None,
                file: None,
            });
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MAP_TOML: &str = r#"
[[physical-pool]]
name = "pool-1"

[[zone]]
name = "zone-1"
physical-pool = "pool-1"

[[zone]]
name = "zone-2"
physical-pool = "pool-1"

[[server]]
name = "host-1"
zone = "zone-1"

[[server]]
name = "host-2"
zone = "zone-2"

[[logical-pool]]
name = "blocks"
physical-pool = "pool-1"
replicas = 2
copysets-per-chunkserver = 10
"#;

    const MAP_YAML: &str = r#"
physical-pool:
  - name: pool-1
zone:
  - { name: zone-1, physical-pool: pool-1 }
  - { name: zone-2, physical-pool: pool-1 }
server:
  - { name: host-1, zone: zone-1 }
  - { name: host-2, zone: zone-2 }
logical-pool:
  - name: blocks
    physical-pool: pool-1
    replicas: 2
    copysets-per-chunkserver: 10
"#;

    #[test]
    fn yaml_and_toml_give_the_same_map_and_toml_round_trips() {
        let t = ClusterMap::parse(MAP_TOML, Syntax::Toml).unwrap();
        let y = ClusterMap::parse(MAP_YAML, Syntax::Yaml).unwrap();
        assert_eq!(t, y);
        assert_eq!(t.logical_pool[0].scatter_width, 0);
        assert_eq!(ClusterMap::parse(&t.to_toml(), Syntax::Toml).unwrap(), t);
        assert_eq!(
            ClusterMap::parse("", Syntax::Yaml).unwrap(),
            ClusterMap::default()
        );
        crate::snapshot::assert_snapshot("topology-map.toml", &t.to_toml());
    }

    #[test]
    fn syntax_follows_the_extension() {
        use std::path::Path;
        assert_eq!(Syntax::of_path(Path::new("m.yaml")), Syntax::Yaml);
        assert_eq!(Syntax::of_path(Path::new("m.YML")), Syntax::Yaml);
        assert_eq!(Syntax::of_path(Path::new("m.toml")), Syntax::Toml);
        assert_eq!(Syntax::of_path(Path::new("map")), Syntax::Toml);
    }

    #[test]
    fn bad_maps_are_refused_with_the_entry_named() {
        let e = ClusterMap::parse(
            "[[zone]]\nname = \"z\"\nphysical-pool = \"p\"\n",
            Syntax::Toml,
        )
        .unwrap_err();
        assert!(e.contains("zone \"z\"") && e.contains("\"p\""), "{e}");
        let e = ClusterMap::parse(
            "[[physical-pool]]\nname = \"p\"\n[[physical-pool]]\nname = \"p\"\n",
            Syntax::Toml,
        )
        .unwrap_err();
        assert!(e.contains("duplicate physical-pool"), "{e}");
        let e = ClusterMap::parse("[[rack]]\nname = \"r\"\n", Syntax::Toml).unwrap_err();
        assert!(e.contains("rack"), "{e}");
        let e = ClusterMap::parse("server: [{ name: h, zone: z, extra: 1 }]", Syntax::Yaml)
            .unwrap_err();
        assert!(e.contains("extra"), "{e}");
        assert!(ClusterMap::parse("zone: 3", Syntax::Yaml).is_err());
        assert!(ClusterMap::parse("[[server]]\nname = \"\"\nzone = \"z\"", Syntax::Toml).is_err());
    }

    #[test]
    fn diff_lists_additions_conflicts_and_kept_entries() {
        let cluster = ClusterMap::parse(MAP_TOML, Syntax::Toml).unwrap();
        let same = diff(&cluster, &cluster);
        assert!(same.entries.is_empty());
        assert_eq!(same.unchanged, 6);
        assert!(!same.has_conflicts());
        assert_eq!(same.adds(), 0);

        let mut file = cluster.clone();
        file.zone.push(ZoneEntry {
            name: "zone-3".into(),
            physical_pool: "pool-1".into(),
        });
        file.server[1].zone = "zone-3".into();
        file.server.remove(0);
        file.logical_pool[0].copysets_per_chunkserver = 20;
        let d = diff(&file, &cluster);
        let got: Vec<(Change, &str, &str, Option<&str>)> = d
            .entries
            .iter()
            .map(|e| (e.change, e.kind, e.name.as_str(), e.field))
            .collect();
        assert_eq!(
            got,
            vec![
                (Change::Add, "zone", "zone-3", None),
                (Change::Conflict, "server", "host-2", Some("zone")),
                (Change::Kept, "server", "host-1", None),
                (
                    Change::Ignored,
                    "logical-pool",
                    "blocks",
                    Some("copysets-per-chunkserver")
                ),
            ]
        );
        assert_eq!(d.entries[1].cluster.as_deref(), Some("zone-2"));
        assert_eq!(d.entries[1].file.as_deref(), Some("zone-3"));
        assert!(d.has_conflicts());
        assert_eq!(d.adds(), 1);
        assert_eq!(d.unchanged, 3);
    }
}
