//! Copyset placement for a new logical pool.
//!
//! Greedy and deterministic for a given seed: copyset after copyset, replica after
//! replica, pick among chunkservers of zones not yet used by this copyset the one with
//! (1) the fewest copysets so far — keeps counts within about one of the mean — then
//! (2) the fewest already-shared copysets with the members chosen so far — spreads
//! each chunkserver's peers, which raises its scatter width (distinct peers it shares a
//! copyset with, i.e. how many disks help rebuild it) — then a seeded random tie-break.

use crate::topology::{CopysetRecord, OnlineState, Topology};
use basalt_proto::ids::{ChunkServerId, CopysetId, GroupId, LogicalPoolId, ZoneId};
use basalt_proto::status::MdsError;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The inputs of a pool's placement, stored before its first copyset is written.
///
/// [`place`] is deterministic for its inputs, so an MDS that crashed (or was deposed)
/// half-way through writing a pool's copysets lets its successor recompute exactly the
/// same copysets and write the missing ones, instead of leaving the pool partial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementPlan {
    /// Tie-break seed.
    pub seed: u64,
    /// Chunkservers placed on, with their zones (frozen at the first attempt).
    pub members: Vec<(ChunkServerId, ZoneId)>,
    /// Copysets the placement yields (complete when the pool has this many).
    pub copysets: u32,
}

impl PlacementPlan {
    /// The placement request this plan stands for.
    pub fn request(
        &self,
        pool: LogicalPoolId,
        replicas: u8,
        per_chunkserver: u32,
    ) -> PlacementRequest {
        PlacementRequest {
            pool,
            replicas: usize::from(replicas),
            copysets_per_chunkserver: per_chunkserver,
            members: self.members.clone(),
            first_copyset: 1,
            seed: self.seed,
        }
    }
}

/// Whether new copysets may be placed on `c`: online and not being drained.
pub fn placeable(topo: &Topology, c: ChunkServerId) -> bool {
    topo.chunkservers
        .get(&c)
        .is_some_and(|x| x.state == OnlineState::Online)
        && !topo.is_draining(c)
}

/// Logical pools whose copysets should be created now: those with an unfinished plan
/// (resume, whatever the chunkservers' state), and those with neither plan nor copysets
/// once at least `min_online` of their placeable (online, not draining) chunkservers
/// span `replicas` zones. A pool with copysets but no plan was placed before plans
/// existed and counts as complete.
pub fn pools_to_place(
    topo: &Topology,
    plans: &BTreeMap<LogicalPoolId, PlacementPlan>,
    min_online: usize,
) -> Vec<LogicalPoolId> {
    let mut out = Vec::new();
    for (id, lp) in &topo.lpools {
        let have = topo.copysets_of(*id).count();
        match plans.get(id) {
            Some(p) => {
                if have < p.copysets as usize {
                    out.push(*id);
                }
            }
            None if have > 0 => {}
            None => {
                let online: Vec<_> = topo
                    .chunkservers_in(lp.physical)
                    .into_iter()
                    .filter(|c| placeable(topo, *c))
                    .collect();
                let zones: BTreeSet<_> = online.iter().filter_map(|c| topo.zone_of(*c)).collect();
                if online.len() >= min_online && zones.len() >= usize::from(lp.replicas) {
                    out.push(*id);
                }
            }
        }
    }
    out
}

/// What to place.
#[derive(Debug, Clone)]
pub struct PlacementRequest {
    /// Logical pool.
    pub pool: LogicalPoolId,
    /// Replicas per copyset (one per zone).
    pub replicas: usize,
    /// Copysets per chunkserver; the pool gets `ceil(n * this / replicas)` copysets.
    pub copysets_per_chunkserver: u32,
    /// Chunkservers to place on, with their zones.
    pub members: Vec<(ChunkServerId, ZoneId)>,
    /// Id of the first copyset.
    pub first_copyset: u32,
    /// Tie-break seed.
    pub seed: u64,
}

/// Place the copysets of a pool.
pub fn place(req: &PlacementRequest) -> Result<Vec<CopysetRecord>, MdsError> {
    let zones: BTreeSet<ZoneId> = req.members.iter().map(|m| m.1).collect();
    if req.replicas == 0 || zones.len() < req.replicas {
        return Err(MdsError::InvalidTopology {
            reason: format!(
                "logical pool {} needs {} zones with chunkservers, has {}",
                req.pool,
                req.replicas,
                zones.len()
            ),
        });
    }
    let n = (req.members.len() as u64 * u64::from(req.copysets_per_chunkserver))
        .div_ceil(req.replicas as u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(req.seed);
    let mut count: HashMap<ChunkServerId, u32> = HashMap::new();
    let mut pairs: HashMap<(ChunkServerId, ChunkServerId), u32> = HashMap::new();
    let pair = |a: ChunkServerId, b: ChunkServerId| if a < b { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut chosen: Vec<(ChunkServerId, ZoneId)> = Vec::with_capacity(req.replicas);
        for _ in 0..req.replicas {
            let best = req
                .members
                .iter()
                .filter(|(_, z)| !chosen.iter().any(|(_, cz)| cz == z))
                .map(|&(c, z)| {
                    let shared: u32 = chosen
                        .iter()
                        .map(|&(x, _)| pairs.get(&pair(c, x)).copied().unwrap_or(0))
                        .sum();
                    let load = count.get(&c).copied().unwrap_or(0);
                    ((load, shared, rng.gen::<u32>()), c, z)
                })
                .min_by_key(|(k, _, _)| *k);
            let Some((_, c, z)) = best else {
                // Cannot happen: zones.len() >= replicas was checked.
                return Err(MdsError::InvalidTopology {
                    reason: format!("logical pool {}: ran out of zones", req.pool),
                });
            };
            chosen.push((c, z));
        }
        for (a, _) in &chosen {
            *count.entry(*a).or_default() += 1;
            for (b, _) in &chosen {
                if a < b {
                    *pairs.entry(pair(*a, *b)).or_default() += 1;
                }
            }
        }
        let mut peers: Vec<ChunkServerId> = chosen.into_iter().map(|(c, _)| c).collect();
        peers.sort_unstable();
        let id = u32::try_from(u64::from(req.first_copyset) + i).map_err(|_| {
            MdsError::InvalidTopology {
                reason: format!("logical pool {}: copyset ids exhausted", req.pool),
            }
        })?;
        out.push(CopysetRecord {
            group: GroupId::of(req.pool, CopysetId(id)),
            epoch: crate::copyset_sync::INITIAL_EPOCH,
            peers,
            leader: None,
        });
    }
    Ok(out)
}

/// Placements (seeds `seed`, `seed + 1`, ...) [`place_checked`] tries before refusing a
/// pool whose scatter width it cannot reach.
pub const SCATTER_ATTEMPTS: u64 = 8;

/// [`place`], and check the pool's configured minimum scatter width `target` (0: none;
/// the greedy placement spreads peers as widely as it can anyway). Each chunkserver must
/// share copysets with at least `target` others, capped by what it can reach: its
/// copysets' `replicas - 1` peer slots each, and the chunkservers of other zones. Tries
/// [`SCATTER_ATTEMPTS`] seeds; returns the placement with the seed that produced it, or
/// `InvalidTopology` naming the chunkserver that fell short.
pub fn place_checked(
    req: &PlacementRequest,
    target: u32,
) -> Result<(Vec<CopysetRecord>, u64), MdsError> {
    let mut short = None;
    for k in 0..SCATTER_ATTEMPTS {
        let seed = req.seed.wrapping_add(k);
        let out = place(&PlacementRequest {
            seed,
            ..req.clone()
        })?;
        match scatter_shortfall(req, &out, target) {
            None => return Ok((out, seed)),
            Some(s) => short = Some(s),
        }
    }
    let (cs, width, want) = short.unwrap_or_default();
    Err(MdsError::InvalidTopology {
        reason: format!(
            "logical pool {}: scatter width {target} not reached in {SCATTER_ATTEMPTS} \
             placements (chunkserver {cs} shares copysets with {width}, needs {want})",
            req.pool
        ),
    })
}

/// The first member whose scatter width is below its (capped) target, with its width and
/// the target.
fn scatter_shortfall(
    req: &PlacementRequest,
    out: &[CopysetRecord],
    target: u32,
) -> Option<(ChunkServerId, usize, usize)> {
    if target == 0 {
        return None;
    }
    let widths = scatter_widths(out.iter());
    let mut counts: HashMap<ChunkServerId, usize> = HashMap::new();
    for c in out {
        for p in &c.peers {
            *counts.entry(*p).or_default() += 1;
        }
    }
    req.members.iter().find_map(|&(c, z)| {
        let others = req.members.iter().filter(|(_, oz)| *oz != z).count();
        let slots = counts.get(&c).copied().unwrap_or(0) * req.replicas.saturating_sub(1);
        let want = (target as usize).min(others).min(slots);
        let width = widths.get(&c).copied().unwrap_or(0);
        (width < want).then_some((c, width, want))
    })
}

/// Scatter width per chunkserver: distinct other chunkservers it shares a copyset with.
pub fn scatter_widths<'a>(
    copysets: impl Iterator<Item = &'a CopysetRecord>,
) -> BTreeMap<ChunkServerId, usize> {
    let mut peers: BTreeMap<ChunkServerId, BTreeSet<ChunkServerId>> = BTreeMap::new();
    for cs in copysets {
        for a in &cs.peers {
            let e = peers.entry(*a).or_default();
            e.extend(cs.peers.iter().filter(|b| *b != a));
        }
    }
    peers.into_iter().map(|(k, v)| (k, v.len())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(zones: u32, per_zone: u32) -> Vec<(ChunkServerId, ZoneId)> {
        let mut v = Vec::new();
        for z in 0..zones {
            for i in 0..per_zone {
                v.push((ChunkServerId(z * 100 + i + 1), ZoneId(z + 1)));
            }
        }
        v
    }

    fn req(zones: u32, per_zone: u32, per_cs: u32, replicas: usize, seed: u64) -> PlacementRequest {
        PlacementRequest {
            pool: LogicalPoolId(1),
            replicas,
            copysets_per_chunkserver: per_cs,
            members: members(zones, per_zone),
            first_copyset: 1,
            seed,
        }
    }

    fn check(r: &PlacementRequest, out: &[CopysetRecord]) {
        let zone: HashMap<_, _> = r.members.iter().copied().collect();
        let n = r.members.len();
        assert_eq!(
            out.len() as u64,
            (n as u64 * u64::from(r.copysets_per_chunkserver)).div_ceil(r.replicas as u64)
        );
        let mut counts: HashMap<ChunkServerId, i64> = r.members.iter().map(|m| (m.0, 0)).collect();
        for cs in out {
            assert_eq!(cs.peers.len(), r.replicas);
            let zs: BTreeSet<_> = cs.peers.iter().map(|p| zone[p]).collect();
            assert_eq!(zs.len(), r.replicas, "one replica per zone: {cs:?}");
            for p in &cs.peers {
                *counts.get_mut(p).unwrap() += 1;
            }
        }
        let total: i64 = counts.values().sum();
        let mean = total as f64 / n as f64;
        for (c, k) in &counts {
            assert!(
                (*k as f64 - mean).abs() <= 2.0,
                "{c}: {k} copysets, mean {mean}"
            );
        }
    }

    #[test]
    fn hundred_per_chunkserver_three_zones() {
        let r = req(3, 4, 100, 3, 7);
        let out = place(&r).unwrap();
        check(&r, &out);
        let ids: BTreeSet<_> = out.iter().map(|c| c.group).collect();
        assert_eq!(ids.len(), out.len(), "distinct group ids");
        assert_eq!(out[0].group, GroupId::of(LogicalPoolId(1), CopysetId(1)));
        // Every chunkserver shares copysets with every chunkserver of the other zones.
        for (_, w) in scatter_widths(out.iter()) {
            assert_eq!(w, 8);
        }
    }

    #[test]
    fn few_copysets_spread_peers_widely() {
        // 30 chunkservers, 5 copysets each: 10 peer slots per chunkserver, 20 possible peers.
        let r = req(3, 10, 5, 3, 3);
        let out = place(&r).unwrap();
        check(&r, &out);
        let widths = scatter_widths(out.iter());
        let min = widths.values().min().copied().unwrap();
        assert!(min >= 8, "scatter width too low: {widths:?}");
    }

    #[test]
    fn deterministic_for_a_seed() {
        assert_eq!(
            place(&req(3, 3, 10, 3, 5)).unwrap(),
            place(&req(3, 3, 10, 3, 5)).unwrap()
        );
    }

    #[test]
    fn too_few_zones_refused() {
        assert!(matches!(
            place(&req(2, 5, 10, 3, 0)),
            Err(MdsError::InvalidTopology { .. })
        ));
        assert!(matches!(
            place(&req(3, 5, 10, 0, 0)),
            Err(MdsError::InvalidTopology { .. })
        ));
    }

    #[test]
    fn unequal_zones_still_one_replica_per_zone() {
        let mut r = req(3, 2, 20, 3, 1);
        r.members
            .extend((0..5).map(|i| (ChunkServerId(900 + i), ZoneId(4))));
        let out = place(&r).unwrap();
        let zone: HashMap<_, _> = r.members.iter().copied().collect();
        for cs in &out {
            let zs: BTreeSet<_> = cs.peers.iter().map(|p| zone[p]).collect();
            assert_eq!(zs.len(), 3);
        }
    }

    /// One physical pool, zones 1..=3 with one server each, `per_zone` chunkservers per
    /// zone (ids zone*10 + i), a 3-replica logical pool 1.
    fn topo(per_zone: u32) -> Topology {
        use crate::topology::{ChunkServer, LogicalPool, PhysicalPool, Server, Zone};
        use basalt_proto::ids::{PhysicalPoolId, ServerId};
        let mut t = Topology::default();
        let pp = PhysicalPoolId(1);
        t.ppools.insert(
            pp,
            PhysicalPool {
                id: pp,
                name: "p".into(),
            },
        );
        for z in 1..=3 {
            t.zones.insert(
                ZoneId(z),
                Zone {
                    id: ZoneId(z),
                    name: format!("z{z}"),
                    pool: pp,
                },
            );
            t.servers.insert(
                ServerId(z),
                Server {
                    id: ServerId(z),
                    name: format!("h{z}"),
                    zone: ZoneId(z),
                },
            );
            for i in 0..per_zone {
                let id = ChunkServerId(z * 10 + i);
                t.chunkservers.insert(
                    id,
                    ChunkServer {
                        id,
                        server: ServerId(z),
                        disk_uuid: format!("d{id}"),
                        token: String::new(),
                        addr: "127.0.0.1:1".parse().unwrap(),
                        disk: Default::default(),
                        last_seen_ms: 0,
                        state: OnlineState::Online,
                    },
                );
            }
        }
        t.lpools.insert(
            LogicalPoolId(1),
            LogicalPool {
                id: LogicalPoolId(1),
                name: "l".into(),
                physical: pp,
                replicas: 3,
                copysets_per_chunkserver: 3,
                scatter_width: 0,
            },
        );
        t
    }

    #[test]
    fn pools_to_place_cases() {
        let pool = LogicalPoolId(1);
        let mut t = topo(2);
        let mut plans = BTreeMap::new();
        // Empty pool: placed once enough chunkservers are online, over enough zones.
        assert_eq!(pools_to_place(&t, &plans, 6), [pool]);
        assert!(pools_to_place(&t, &plans, 7).is_empty(), "too few online");
        for id in [ChunkServerId(30), ChunkServerId(31)] {
            t.chunkservers.get_mut(&id).unwrap().state = OnlineState::Unstable;
        }
        assert!(
            pools_to_place(&t, &plans, 1).is_empty(),
            "two zones for three replicas"
        );
        // A started plan resumes whatever is online; a finished one is left alone.
        let members: Vec<_> = t
            .chunkservers
            .keys()
            .map(|c| (*c, ZoneId(c.0 / 10)))
            .collect();
        let plan = PlacementPlan {
            seed: 1,
            members,
            copysets: 6,
        };
        let placed = place(&plan.request(pool, 3, 3)).unwrap();
        assert_eq!(placed.len(), 6);
        plans.insert(pool, plan);
        assert_eq!(pools_to_place(&t, &plans, usize::MAX), [pool]);
        for c in &placed[..5] {
            t.copysets.insert(c.group, c.clone());
        }
        assert_eq!(pools_to_place(&t, &plans, 1), [pool], "5 of 6");
        t.copysets.insert(placed[5].group, placed[5].clone());
        assert!(pools_to_place(&t, &plans, 1).is_empty(), "complete");
        // Copysets without a plan (placed before plans existed): complete.
        plans.clear();
        t.copysets.remove(&placed[5].group);
        assert!(pools_to_place(&t, &plans, 1).is_empty());
    }

    #[test]
    fn scatter_width_target() {
        // Zones of 1, 1 and 5 chunkservers, one copyset each (3 in all): chunkserver 1 is
        // in every copyset, so its width is 1 + the distinct zone-3 peers, at most 4.
        let mut r = req(3, 1, 1, 3, 11);
        r.members = vec![(ChunkServerId(1), ZoneId(1)), (ChunkServerId(2), ZoneId(2))];
        r.members
            .extend((3..=7).map(|i| (ChunkServerId(i), ZoneId(3))));
        let (out, seed) = place_checked(&r, 0).unwrap();
        assert_eq!((out.clone(), seed), (place(&r).unwrap(), 11), "0: no check");
        let (out, _) = place_checked(&r, 4).unwrap();
        let widths = scatter_widths(out.iter());
        assert_eq!(widths[&ChunkServerId(1)], 4);
        let zone3: Vec<_> = widths.iter().filter(|(c, _)| c.0 >= 3).collect();
        assert_eq!(zone3.len(), 3, "three distinct zone-3 peers");
        assert!(zone3.iter().all(|(_, w)| **w == 2), "capped by their slots");
        match place_checked(&r, 6) {
            Err(MdsError::InvalidTopology { reason }) => {
                assert!(reason.contains("scatter width 6"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // A target above what any chunkserver can reach is capped, so met.
        let r = req(3, 4, 100, 3, 7);
        let (out, seed) = place_checked(&r, 1000).unwrap();
        assert_eq!(seed, 7);
        assert!(scatter_widths(out.iter()).values().all(|w| *w == 8));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn placement_properties(zones in 3u32..6, per_zone in 1u32..6, per_cs in 1u32..60, seed in any::<u64>()) {
            let r = req(zones, per_zone, per_cs, 3, seed);
            let out = place(&r).unwrap();
            check(&r, &out);
            // Scatter width reaches at least half of what is reachable (balance of counts
            // comes first; the deterministic tests above show full width at realistic sizes).
            let possible = ((zones - 1) * per_zone) as usize;
            for (c, w) in scatter_widths(out.iter()) {
                let slots = out.iter().filter(|cs| cs.peers.contains(&c)).count() * 2;
                let want = possible.min(slots);
                prop_assert!(w * 2 >= want, "{c}: width {w}, possible {possible}, slots {slots}");
            }
        }
    }
}
