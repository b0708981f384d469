//! The dry run of a cluster map: what [`super::clustermap::diff`] would add, and every
//! difference it would refuse or leave alone, entry by entry, with the ids apply assigns.
//! Pure: nothing is written.

use super::clustermap::{ClusterMap, MapError};
use super::model::Topology;
use basalt_proto::mds::{TopologyChange, TopologyPlan, TopologyPlanEntry};
use std::collections::BTreeMap;

/// One entry of one kind as both sides describe it: id (cluster side only) and fields
/// `(name, value, refused when different)`.
struct Side {
    id: u32,
    fields: Fields,
}

/// Fields of an entry: `(name, value, refused when different)`.
type Fields = Vec<(&'static str, String, bool)>;

/// Entries of one kind: the map's in file order, the cluster's by name.
struct Kind {
    name: &'static str,
    want: Vec<(String, Fields)>,
    have: BTreeMap<String, Side>,
}

fn kinds(map: &ClusterMap, t: &Topology) -> Vec<Kind> {
    let ppool = |id| {
        t.ppools
            .get(&id)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    };
    let zone = |id| t.zones.get(&id).map(|z| z.name.clone()).unwrap_or_default();
    vec![
        Kind {
            name: "physical-pool",
            want: map
                .physical_pool
                .iter()
                .map(|p| (p.name.clone(), vec![]))
                .collect(),
            have: t
                .ppools
                .values()
                .map(|p| {
                    let fields = vec![];
                    (p.name.clone(), Side { id: p.id.0, fields })
                })
                .collect(),
        },
        Kind {
            name: "zone",
            want: map
                .zone
                .iter()
                .map(|z| {
                    let f = vec![("physical-pool", z.physical_pool.clone(), true)];
                    (z.name.clone(), f)
                })
                .collect(),
            have: t
                .zones
                .values()
                .map(|z| {
                    let fields = vec![("physical-pool", ppool(z.pool), true)];
                    (z.name.clone(), Side { id: z.id.0, fields })
                })
                .collect(),
        },
        Kind {
            name: "server",
            want: map
                .server
                .iter()
                .map(|s| (s.name.clone(), vec![("zone", s.zone.clone(), true)]))
                .collect(),
            have: t
                .servers
                .values()
                .map(|s| {
                    let fields = vec![("zone", zone(s.zone), true)];
                    (s.name.clone(), Side { id: s.id.0, fields })
                })
                .collect(),
        },
        Kind {
            name: "logical-pool",
            want: map
                .logical_pool
                .iter()
                .map(|l| {
                    let f = vec![
                        ("physical-pool", l.physical_pool.clone(), true),
                        ("replicas", l.replicas.to_string(), true),
                        (
                            "copysets-per-chunkserver",
                            l.copysets_per_chunkserver.to_string(),
                            false,
                        ),
                        ("scatter-width", l.scatter_width.to_string(), false),
                    ];
                    (l.name.clone(), f)
                })
                .collect(),
            have: t
                .lpools
                .values()
                .map(|l| {
                    let fields = vec![
                        ("physical-pool", ppool(l.physical), true),
                        ("replicas", l.replicas.to_string(), true),
                        (
                            "copysets-per-chunkserver",
                            l.copysets_per_chunkserver.to_string(),
                            false,
                        ),
                        ("scatter-width", l.scatter_width.to_string(), false),
                    ];
                    (l.name.clone(), Side { id: l.id.0, fields })
                })
                .collect(),
        },
    ]
}

/// What applying `map` to `topo` would do. A map that does not validate is an error, as
/// for apply; conflicts are entries (apply would refuse the whole map).
pub fn plan(map: &ClusterMap, topo: &Topology) -> Result<TopologyPlan, MapError> {
    map.validate()?;
    let mut out = TopologyPlan::default();
    for k in kinds(map, topo) {
        // New ids follow the largest existing one, in map order (as `diff` assigns them).
        let first = k.have.values().map(|s| s.id).max().unwrap_or(0) + 1;
        let mut ids = first..;
        for (name, want) in &k.want {
            let entry = |change, id, field| TopologyPlanEntry {
                change,
                kind: k.name.into(),
                name: name.clone(),
                id,
                field,
            };
            let Some(have) = k.have.get(name) else {
                let id = ids.next().unwrap_or(u32::MAX);
                out.entries.push(entry(TopologyChange::Add, id, None));
                continue;
            };
            let mut same = true;
            for ((field, w, refused), (_, h, _)) in want.iter().zip(&have.fields) {
                if w != h {
                    same = false;
                    let change = if *refused {
                        TopologyChange::Conflict
                    } else {
                        TopologyChange::Ignored
                    };
                    let f = Some(((*field).to_string(), h.clone(), w.clone()));
                    out.entries.push(entry(change, have.id, f));
                }
            }
            if same {
                out.unchanged += 1;
            }
        }
        for (name, have) in &k.have {
            if !k.want.iter().any(|(n, _)| n == name) {
                out.entries.push(TopologyPlanEntry {
                    change: TopologyChange::Kept,
                    kind: k.name.into(),
                    name: name.clone(),
                    id: have.id,
                    field: None,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::clustermap::diff;

    const MAP: &str = r#"
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

    fn applied() -> Topology {
        let mut t = Topology::default();
        diff(&ClusterMap::parse(MAP).unwrap(), &t)
            .unwrap()
            .apply_to(&mut t);
        t
    }

    fn changes(p: &TopologyPlan, c: TopologyChange) -> Vec<(String, String, u32)> {
        p.entries
            .iter()
            .filter(|e| e.change == c)
            .map(|e| (e.kind.clone(), e.name.clone(), e.id))
            .collect()
    }

    #[test]
    fn an_empty_cluster_gets_everything_with_the_ids_apply_assigns() {
        let map = ClusterMap::parse(MAP).unwrap();
        let t = Topology::default();
        let p = plan(&map, &t).unwrap();
        assert_eq!(p.unchanged, 0);
        assert_eq!(changes(&p, TopologyChange::Add).len(), 8);
        let d = diff(&map, &t).unwrap();
        for s in &d.servers {
            assert!(changes(&p, TopologyChange::Add).contains(&(
                "server".into(),
                s.name.clone(),
                s.id.0
            )));
        }
    }

    #[test]
    fn an_applied_map_changes_nothing() {
        let p = plan(&ClusterMap::parse(MAP).unwrap(), &applied()).unwrap();
        assert!(p.entries.is_empty(), "{p:?}");
        assert_eq!(p.unchanged, 8);
    }

    #[test]
    fn additions_conflicts_ignored_and_kept_are_told_apart() {
        let t = applied();
        let text = MAP
            .replace(
                "name = \"h1\"\nzone = \"z1\"",
                "name = \"h1\"\nzone = \"z2\"",
            )
            .replace(
                "name = \"h3\"\nzone = \"z3\"\n",
                "name = \"h4\"\nzone = \"z3\"\n",
            )
            .replace("replicas = 3", "replicas = 3\nscatter-width = 2");
        let map = ClusterMap::parse(&text).unwrap();
        let p = plan(&map, &t).unwrap();
        assert_eq!(
            changes(&p, TopologyChange::Add),
            vec![("server".into(), "h4".into(), 4)]
        );
        assert_eq!(
            changes(&p, TopologyChange::Conflict),
            vec![("server".into(), "h1".into(), 1)]
        );
        let conflict = p
            .entries
            .iter()
            .find(|e| e.change == TopologyChange::Conflict)
            .unwrap();
        assert_eq!(
            conflict.field,
            Some(("zone".into(), "z1".into(), "z2".into()))
        );
        assert_eq!(
            changes(&p, TopologyChange::Kept),
            vec![("server".into(), "h3".into(), 3)]
        );
        assert_eq!(
            changes(&p, TopologyChange::Ignored),
            vec![("logical-pool".into(), "blocks".into(), 1)]
        );
        // Apply refuses what the plan calls a conflict.
        assert!(matches!(
            diff(&map, &t),
            Err(MapError::Conflict { kind: "server", .. })
        ));
        // Nothing was changed by planning.
        assert_eq!(t, applied());
    }

    #[test]
    fn an_invalid_map_is_refused() {
        let map: ClusterMap =
            toml::from_str(&MAP.replace("zone = \"z3\"", "zone = \"z9\"")).unwrap();
        assert!(matches!(
            plan(&map, &Topology::default()),
            Err(MapError::UnknownParent { .. })
        ));
    }
}
