//! Cluster map files (TOML): parse, validate, and diff against the current topology.
//!
//! ```toml
//! [[physical-pool]]
//! name = "pool1"
//!
//! [[zone]]
//! name = "zone1"
//! physical-pool = "pool1"
//!
//! [[server]]
//! name = "host1"
//! zone = "zone1"
//!
//! [[logical-pool]]
//! name = "blocks"
//! physical-pool = "pool1"
//! replicas = 3
//! copysets-per-chunkserver = 100
//! scatter-width = 0   # 0: as wide as the pool allows
//! ```
//!
//! [`diff`] lists what must be added; applying the same map twice yields no change. Entries
//! missing from the map are kept (removal is an explicit operation), and an entry that
//! would move (a zone to another pool, a server to another zone) or change a logical
//! pool's shape is refused.

use super::model::{LogicalPool, PhysicalPool, Server, Topology, Zone};
use basalt_proto::ids::{LogicalPoolId, PhysicalPoolId, ServerId, ZoneId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a cluster map is refused. Every variant names the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The file is not valid TOML for the schema (unknown field, wrong type, ...).
    #[error("cannot parse cluster map: {0}")]
    Parse(String),
    /// Two entries of one kind share a name.
    #[error("duplicate {kind} {name:?}")]
    Duplicate {
        /// Entry kind.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// An entry refers to a parent that is not defined.
    #[error("{kind} {name:?} refers to unknown {parent_kind} {parent:?}")]
    UnknownParent {
        /// Entry kind.
        kind: &'static str,
        /// Entry name.
        name: String,
        /// Kind of the parent.
        parent_kind: &'static str,
        /// The missing parent's name.
        parent: String,
    },
    /// A logical pool asks for more replicas than its physical pool has zones (or 0).
    #[error("logical pool {name:?}: {replicas} replicas but physical pool has {zones} zones")]
    TooFewZones {
        /// Logical pool.
        name: String,
        /// Replicas asked.
        replicas: u8,
        /// Zones available.
        zones: usize,
    },
    /// A field value is out of range (empty name, zero copysets, ...).
    #[error("{kind} {name:?}: {reason}")]
    Invalid {
        /// Entry kind.
        kind: &'static str,
        /// Entry name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The map would move or reshape an existing entry.
    #[error("{kind} {name:?} exists with a different {field}; changing it is not supported")]
    Conflict {
        /// Entry kind.
        kind: &'static str,
        /// Entry name.
        name: String,
        /// The field that differs.
        field: &'static str,
    },
}

/// A physical pool entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PoolEntry {
    /// Name.
    pub name: String,
}

/// A zone entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ZoneEntry {
    /// Name.
    pub name: String,
    /// Physical pool name.
    pub physical_pool: String,
}

/// A server entry.
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

/// A logical pool entry.
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
    /// Minimum scatter width: each chunkserver must share copysets with at least this
    /// many others, capped by what its copysets and the other zones allow; a placement
    /// that falls short is refused (see `placement::place_checked`). 0: no minimum
    /// (placement spreads peers as widely as it can either way).
    #[serde(default)]
    pub scatter_width: u32,
}

/// A parsed cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
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

fn unique<'a>(kind: &'static str, names: impl Iterator<Item = &'a str>) -> Result<(), MapError> {
    let mut seen = BTreeSet::new();
    for n in names {
        if n.is_empty() || n.len() > 128 {
            return Err(MapError::Invalid {
                kind,
                name: n.into(),
                reason: "name must be 1..=128 bytes",
            });
        }
        if !seen.insert(n) {
            return Err(MapError::Duplicate {
                kind,
                name: n.into(),
            });
        }
    }
    Ok(())
}

impl ClusterMap {
    /// Parse and validate TOML text.
    pub fn parse(text: &str) -> Result<Self, MapError> {
        let map: ClusterMap = toml::from_str(text).map_err(|e| MapError::Parse(e.to_string()))?;
        map.validate()?;
        Ok(map)
    }

    /// Check names, references and replica counts.
    pub fn validate(&self) -> Result<(), MapError> {
        unique(
            "physical pool",
            self.physical_pool.iter().map(|p| p.name.as_str()),
        )?;
        unique("zone", self.zone.iter().map(|p| p.name.as_str()))?;
        unique("server", self.server.iter().map(|p| p.name.as_str()))?;
        unique(
            "logical pool",
            self.logical_pool.iter().map(|p| p.name.as_str()),
        )?;
        let pools: BTreeSet<&str> = self.physical_pool.iter().map(|p| p.name.as_str()).collect();
        let mut zones_per_pool: BTreeMap<&str, usize> = BTreeMap::new();
        for z in &self.zone {
            if !pools.contains(z.physical_pool.as_str()) {
                return Err(MapError::UnknownParent {
                    kind: "zone",
                    name: z.name.clone(),
                    parent_kind: "physical pool",
                    parent: z.physical_pool.clone(),
                });
            }
            *zones_per_pool.entry(&z.physical_pool).or_default() += 1;
        }
        let zones: BTreeSet<&str> = self.zone.iter().map(|z| z.name.as_str()).collect();
        for s in &self.server {
            if !zones.contains(s.zone.as_str()) {
                return Err(MapError::UnknownParent {
                    kind: "server",
                    name: s.name.clone(),
                    parent_kind: "zone",
                    parent: s.zone.clone(),
                });
            }
        }
        for l in &self.logical_pool {
            if !pools.contains(l.physical_pool.as_str()) {
                return Err(MapError::UnknownParent {
                    kind: "logical pool",
                    name: l.name.clone(),
                    parent_kind: "physical pool",
                    parent: l.physical_pool.clone(),
                });
            }
            let zones = zones_per_pool
                .get(l.physical_pool.as_str())
                .copied()
                .unwrap_or(0);
            if l.replicas == 0 || usize::from(l.replicas) > zones {
                return Err(MapError::TooFewZones {
                    name: l.name.clone(),
                    replicas: l.replicas,
                    zones,
                });
            }
            if l.copysets_per_chunkserver == 0 || l.copysets_per_chunkserver > 10_000 {
                return Err(MapError::Invalid {
                    kind: "logical pool",
                    name: l.name.clone(),
                    reason: "copysets-per-chunkserver must be 1..=10000",
                });
            }
        }
        Ok(())
    }
}

/// What applying a map adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologyDiff {
    /// New physical pools.
    pub ppools: Vec<PhysicalPool>,
    /// New zones.
    pub zones: Vec<Zone>,
    /// New servers.
    pub servers: Vec<Server>,
    /// New logical pools.
    pub lpools: Vec<LogicalPool>,
}

impl TopologyDiff {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ppools.is_empty()
            && self.zones.is_empty()
            && self.servers.is_empty()
            && self.lpools.is_empty()
    }

    /// Apply to an in-memory topology.
    pub fn apply_to(&self, t: &mut Topology) {
        for p in &self.ppools {
            t.ppools.insert(p.id, p.clone());
        }
        for z in &self.zones {
            t.zones.insert(z.id, z.clone());
        }
        for s in &self.servers {
            t.servers.insert(s.id, s.clone());
        }
        for l in &self.lpools {
            t.lpools.insert(l.id, l.clone());
        }
    }
}

fn next<K: Copy + Ord, V>(m: &BTreeMap<K, V>, f: impl Fn(&K) -> u32) -> u32 {
    m.keys().next_back().map_or(1, |k| f(k) + 1)
}

/// The additions that bring `topo` up to `map` (validated). Idempotent: a map already
/// applied gives an empty diff. New ids follow the largest existing one.
pub fn diff(map: &ClusterMap, topo: &Topology) -> Result<TopologyDiff, MapError> {
    map.validate()?;
    let mut d = TopologyDiff::default();
    let mut pool_ids: BTreeMap<String, PhysicalPoolId> = topo
        .ppools
        .values()
        .map(|p| (p.name.clone(), p.id))
        .collect();
    let mut next_pool = next(&topo.ppools, |k| k.0);
    for p in &map.physical_pool {
        if !pool_ids.contains_key(&p.name) {
            let id = PhysicalPoolId(next_pool);
            next_pool += 1;
            pool_ids.insert(p.name.clone(), id);
            d.ppools.push(PhysicalPool {
                id,
                name: p.name.clone(),
            });
        }
    }
    let mut zone_ids: BTreeMap<String, ZoneId> = BTreeMap::new();
    for z in topo.zones.values() {
        zone_ids.insert(z.name.clone(), z.id);
    }
    let mut next_zone = next(&topo.zones, |k| k.0);
    for z in &map.zone {
        let pool = pool_ids[&z.physical_pool];
        match topo.zones.values().find(|e| e.name == z.name) {
            Some(e) if e.pool != pool => {
                return Err(MapError::Conflict {
                    kind: "zone",
                    name: z.name.clone(),
                    field: "physical-pool",
                })
            }
            Some(_) => {}
            None => {
                let id = ZoneId(next_zone);
                next_zone += 1;
                zone_ids.insert(z.name.clone(), id);
                d.zones.push(Zone {
                    id,
                    name: z.name.clone(),
                    pool,
                });
            }
        }
    }
    let mut next_server = next(&topo.servers, |k| k.0);
    for s in &map.server {
        let zone = zone_ids[&s.zone];
        match topo.servers.values().find(|e| e.name == s.name) {
            Some(e) if e.zone != zone => {
                return Err(MapError::Conflict {
                    kind: "server",
                    name: s.name.clone(),
                    field: "zone",
                })
            }
            Some(_) => {}
            None => {
                d.servers.push(Server {
                    id: ServerId(next_server),
                    name: s.name.clone(),
                    zone,
                });
                next_server += 1;
            }
        }
    }
    let mut next_lpool = next(&topo.lpools, |k| k.0);
    for l in &map.logical_pool {
        let physical = pool_ids[&l.physical_pool];
        let want = LogicalPool {
            id: LogicalPoolId(next_lpool),
            name: l.name.clone(),
            physical,
            replicas: l.replicas,
            copysets_per_chunkserver: l.copysets_per_chunkserver,
            scatter_width: l.scatter_width,
        };
        match topo.lpools.values().find(|e| e.name == l.name) {
            Some(e) if e.physical != physical => {
                return Err(MapError::Conflict {
                    kind: "logical pool",
                    name: l.name.clone(),
                    field: "physical-pool",
                })
            }
            Some(e) if e.replicas != l.replicas => {
                return Err(MapError::Conflict {
                    kind: "logical pool",
                    name: l.name.clone(),
                    field: "replicas",
                })
            }
            Some(_) => {}
            None => {
                next_lpool += 1;
                d.lpools.push(want);
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MAP: &str = r#"
[[physical-pool]]
name = "p1"
[[zone]]
name = "z1"
physical-pool = "p1"
[[zone]]
name = "z2"
physical-pool = "p1"
[[zone]]
name = "z3"
physical-pool = "p1"
[[server]]
name = "h1"
zone = "z1"
[[server]]
name = "h2"
zone = "z2"
[[server]]
name = "h3"
zone = "z3"
[[logical-pool]]
name = "blocks"
physical-pool = "p1"
replicas = 3
"#;

    #[test]
    fn parses_and_applies_idempotently() {
        let map = ClusterMap::parse(MAP).unwrap();
        assert_eq!(map.logical_pool[0].copysets_per_chunkserver, 100);
        let mut t = Topology::default();
        let d = diff(&map, &t).unwrap();
        assert_eq!(
            (
                d.ppools.len(),
                d.zones.len(),
                d.servers.len(),
                d.lpools.len()
            ),
            (1, 3, 3, 1)
        );
        d.apply_to(&mut t);
        assert!(
            diff(&map, &t).unwrap().is_empty(),
            "second apply is a no-op"
        );
        assert_eq!(t.servers[&ServerId(2)].zone, ZoneId(2));
    }

    #[test]
    fn adding_a_server_later_gets_the_next_id() {
        let map = ClusterMap::parse(MAP).unwrap();
        let mut t = Topology::default();
        diff(&map, &t).unwrap().apply_to(&mut t);
        let bigger = format!("{MAP}\n[[server]]\nname = \"h4\"\nzone = \"z1\"\n");
        let d = diff(&ClusterMap::parse(&bigger).unwrap(), &t).unwrap();
        assert_eq!(d.servers.len(), 1);
        assert_eq!(d.servers[0].id, ServerId(4));
        assert!(d.zones.is_empty());
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let unknown_zone = MAP.replace("zone = \"z3\"", "zone = \"z9\"");
        let e = ClusterMap::parse(&unknown_zone).unwrap_err();
        assert_eq!(
            e,
            MapError::UnknownParent {
                kind: "server",
                name: "h3".into(),
                parent_kind: "zone",
                parent: "z9".into()
            }
        );
        assert!(e.to_string().contains("h3") && e.to_string().contains("z9"));

        let dup = MAP.replace("name = \"h2\"", "name = \"h1\"");
        assert_eq!(
            ClusterMap::parse(&dup).unwrap_err(),
            MapError::Duplicate {
                kind: "server",
                name: "h1".into()
            }
        );

        let too_many = MAP.replace("replicas = 3", "replicas = 4");
        assert!(matches!(
            ClusterMap::parse(&too_many).unwrap_err(),
            MapError::TooFewZones {
                replicas: 4,
                zones: 3,
                ..
            }
        ));

        let bad_pool = MAP.replace(
            "physical-pool = \"p1\"\nreplicas",
            "physical-pool = \"px\"\nreplicas",
        );
        assert!(matches!(
            ClusterMap::parse(&bad_pool).unwrap_err(),
            MapError::UnknownParent {
                kind: "logical pool",
                ..
            }
        ));

        let unknown_field =
            format!("{MAP}\n[[zone]]\nname = \"z4\"\nphysical-pool = \"p1\"\ncolour = 1\n");
        assert!(matches!(
            ClusterMap::parse(&unknown_field).unwrap_err(),
            MapError::Parse(_)
        ));
        assert!(matches!(
            ClusterMap::parse("not toml [[[").unwrap_err(),
            MapError::Parse(_)
        ));
        let zero = MAP.replace("replicas = 3", "replicas = 3\ncopysets-per-chunkserver = 0");
        assert!(matches!(
            ClusterMap::parse(&zero).unwrap_err(),
            MapError::Invalid { .. }
        ));
    }

    #[test]
    fn moving_a_server_is_refused() {
        let map = ClusterMap::parse(MAP).unwrap();
        let mut t = Topology::default();
        diff(&map, &t).unwrap().apply_to(&mut t);
        let moved = MAP.replace(
            "name = \"h1\"\nzone = \"z1\"",
            "name = \"h1\"\nzone = \"z2\"",
        );
        assert_eq!(
            diff(&ClusterMap::parse(&moved).unwrap(), &t).unwrap_err(),
            MapError::Conflict {
                kind: "server",
                name: "h1".into(),
                field: "zone"
            }
        );
    }
}
