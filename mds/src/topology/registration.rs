//! Chunkserver registration: a new disk gets a new id and a random token; a known disk
//! (same server + disk uuid) keeps its id and token; a claimed id needs its token.

use super::model::{ChunkServer, OnlineState, Topology};
use basalt_proto::ids::ChunkServerId;
use basalt_proto::mds::RegisterChunkServer;
use basalt_proto::status::MdsError;
use rand::Rng;

/// The registration decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The record to store (new or updated address/stats).
    pub chunkserver: ChunkServer,
    /// A new id was assigned.
    pub new: bool,
}

/// A fresh 128-bit token, hex.
pub fn new_token(rng: &mut impl Rng) -> String {
    format!("{:032x}", rng.gen::<u128>())
}

/// Decide a registration. `now_ms` marks the chunkserver as just seen.
pub fn register(
    topo: &Topology,
    req: &RegisterChunkServer,
    now_ms: u64,
    rng: &mut impl Rng,
) -> Result<Registration, MdsError> {
    let server = topo
        .servers
        .values()
        .find(|s| s.name == req.server)
        .ok_or_else(|| MdsError::InvalidTopology {
            reason: format!("unknown server {:?}", req.server),
        })?;
    if req.disk_uuid.is_empty() || req.disk_uuid.len() > 128 {
        return Err(MdsError::InvalidTopology {
            reason: "disk uuid must be 1..=128 bytes".into(),
        });
    }
    let refresh = |cs: &ChunkServer| ChunkServer {
        addr: req.addr,
        disk: req.disk,
        last_seen_ms: now_ms,
        state: OnlineState::Online,
        ..cs.clone()
    };
    if let Some((id, token)) = &req.existing {
        let cs = topo
            .chunkservers
            .get(id)
            .ok_or(MdsError::UnknownChunkServer { id: *id })?;
        if &cs.token != token || cs.disk_uuid != req.disk_uuid || cs.server != server.id {
            return Err(MdsError::TokenMismatch { id: *id });
        }
        return Ok(Registration {
            chunkserver: refresh(cs),
            new: false,
        });
    }
    if let Some(cs) = topo
        .chunkservers
        .values()
        .find(|c| c.server == server.id && c.disk_uuid == req.disk_uuid)
    {
        // The data dir lost its id file but the disk is known: same identity.
        return Ok(Registration {
            chunkserver: refresh(cs),
            new: false,
        });
    }
    let id = ChunkServerId(topo.chunkservers.keys().next_back().map_or(1, |k| k.0 + 1));
    Ok(Registration {
        chunkserver: ChunkServer {
            id,
            server: server.id,
            disk_uuid: req.disk_uuid.clone(),
            token: new_token(rng),
            addr: req.addr,
            disk: req.disk,
            last_seen_ms: now_ms,
            state: OnlineState::Online,
        },
        new: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::clustermap::{diff, ClusterMap};
    use basalt_proto::heartbeat::DiskStats;
    use rand::SeedableRng;

    fn topo() -> Topology {
        let map = ClusterMap::parse(
            "[[physical-pool]]\nname='p'\n[[zone]]\nname='z'\nphysical-pool='p'\n[[server]]\nname='h1'\nzone='z'\n[[server]]\nname='h2'\nzone='z'\n",
        )
        .unwrap();
        let mut t = Topology::default();
        diff(&map, &t).unwrap().apply_to(&mut t);
        t
    }

    fn req(
        server: &str,
        disk: &str,
        existing: Option<(ChunkServerId, String)>,
    ) -> RegisterChunkServer {
        RegisterChunkServer {
            server: server.into(),
            disk_uuid: disk.into(),
            addr: "127.0.0.1:9000".parse().unwrap(),
            existing,
            disk: DiskStats::default(),
        }
    }

    #[test]
    fn new_disk_new_id_known_disk_same_id() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut t = topo();
        let a = register(&t, &req("h1", "d1", None), 5, &mut rng).unwrap();
        assert!(a.new);
        assert_eq!(a.chunkserver.id, ChunkServerId(1));
        assert_eq!(a.chunkserver.token.len(), 32);
        t.chunkservers
            .insert(a.chunkserver.id, a.chunkserver.clone());
        let b = register(&t, &req("h1", "d2", None), 5, &mut rng).unwrap();
        assert_eq!(b.chunkserver.id, ChunkServerId(2));
        assert_ne!(a.chunkserver.token, b.chunkserver.token);
        t.chunkservers
            .insert(b.chunkserver.id, b.chunkserver.clone());
        // Same disk again, without its id file: same id and token.
        let again = register(&t, &req("h1", "d1", None), 9, &mut rng).unwrap();
        assert!(!again.new);
        assert_eq!(again.chunkserver.id, a.chunkserver.id);
        assert_eq!(again.chunkserver.token, a.chunkserver.token);
        assert_eq!(again.chunkserver.last_seen_ms, 9);
        // With its id and token.
        let ok = register(
            &t,
            &req(
                "h1",
                "d1",
                Some((a.chunkserver.id, a.chunkserver.token.clone())),
            ),
            9,
            &mut rng,
        );
        assert_eq!(ok.unwrap().chunkserver.id, a.chunkserver.id);
        // Same disk uuid on another server is another disk.
        let other = register(&t, &req("h2", "d1", None), 9, &mut rng).unwrap();
        assert!(other.new);
    }

    #[test]
    fn wrong_token_unknown_id_and_unknown_server_refused() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut t = topo();
        let a = register(&t, &req("h1", "d1", None), 0, &mut rng).unwrap();
        t.chunkservers
            .insert(a.chunkserver.id, a.chunkserver.clone());
        assert_eq!(
            register(
                &t,
                &req("h1", "d1", Some((a.chunkserver.id, "bad".into()))),
                0,
                &mut rng
            )
            .unwrap_err(),
            MdsError::TokenMismatch {
                id: a.chunkserver.id
            }
        );
        assert_eq!(
            register(
                &t,
                &req("h1", "d1", Some((ChunkServerId(77), "x".into()))),
                0,
                &mut rng
            )
            .unwrap_err(),
            MdsError::UnknownChunkServer {
                id: ChunkServerId(77)
            }
        );
        // Right token, but presented for another disk.
        assert_eq!(
            register(
                &t,
                &req(
                    "h1",
                    "d9",
                    Some((a.chunkserver.id, a.chunkserver.token.clone()))
                ),
                0,
                &mut rng
            )
            .unwrap_err(),
            MdsError::TokenMismatch {
                id: a.chunkserver.id
            }
        );
        assert!(matches!(
            register(&t, &req("nohost", "d1", None), 0, &mut rng).unwrap_err(),
            MdsError::InvalidTopology { .. }
        ));
        assert!(matches!(
            register(&t, &req("h1", "", None), 0, &mut rng).unwrap_err(),
            MdsError::InvalidTopology { .. }
        ));
    }
}
