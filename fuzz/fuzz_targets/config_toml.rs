//! Configuration and map files as their daemons parse them: the first byte picks the
//! parser (chunkserver, MDS, client/NBD file, transport section, cluster map), the rest is
//! the file's text. Each parser must refuse with a typed error or return a value that
//! validates; a value that parses writes back to TOML that parses to the same value
//! (`basalt dev-cluster` and `GetTopology` write these files), and applying a cluster map
//! twice changes nothing the second time.
#![no_main]

use basalt_chunkserver::config::ChunkServerConfig;
use basalt_client::ClientFile;
use basalt_mds::config::MdsConfig;
use basalt_mds::topology::clustermap::{diff, ClusterMap};
use basalt_mds::topology::Topology;
use basalt_transport::TransportConfig;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use std::fmt::Debug;

/// `to_toml(parse(to_toml(v))) == to_toml(v)` for a value `parse` accepted. (Compared as
/// text: the client file's free-form `[ucx]` table may hold a NaN, which is not equal to
/// itself.)
fn rewrites<T: Serialize, E: Debug>(v: &T, parse: impl Fn(&str) -> Result<T, E>) {
    let text = toml::to_string(v).expect("a parsed config serializes");
    let back = parse(&text).unwrap_or_else(|e| panic!("re-parse of {text:?} failed: {e:?}"));
    assert_eq!(toml::to_string(&back).expect("serializes"), text);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(c) = ChunkServerConfig::from_toml(text) {
                rewrites(&c, ChunkServerConfig::from_toml);
            }
        }
        1 => {
            if let Ok(c) = MdsConfig::parse(text) {
                rewrites(&c, MdsConfig::parse);
            }
        }
        2 => {
            if let Ok(c) = ClientFile::from_toml(text) {
                rewrites(&c, ClientFile::from_toml);
                let _ = c.client_config();
            }
        }
        3 => {
            let parse = |t: &str| {
                let c: TransportConfig = toml::from_str(t).map_err(|e| e.to_string())?;
                c.validate().map_err(|e| e.to_string())?;
                Ok::<_, String>(c)
            };
            if let Ok(c) = parse(text) {
                let _ = c.limits();
                rewrites(&c, parse);
            }
        }
        _ => {
            let Ok(map) = ClusterMap::parse(text) else {
                return;
            };
            rewrites(&map, ClusterMap::parse);
            let mut topo = Topology::default();
            let d = diff(&map, &topo).expect("a validated map diffs against an empty topology");
            d.apply_to(&mut topo);
            let again = diff(&map, &topo).expect("the same map diffs again");
            assert!(
                again.is_empty(),
                "applying a map twice changed something: {again:?}"
            );
        }
    }
});
