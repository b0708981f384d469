//! Cluster map files for `topology apply|show` (sans-IO): the MDS's cluster-map schema
//! (`docs/mds.md`; TOML on the wire) read from TOML or YAML.
//!
//! The MDS is the authority: it validates the whole map on apply, and answers
//! `--dry-run` itself (`ApplyTopologyDryRun`). The checks here (names unique, parents
//! defined) only report a bad file before the cluster is asked.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
}
