//! Seeds of `config_toml`: a parser byte (0 chunkserver, 1 MDS, 2 client file, 3 transport
//! section, 4 cluster map) and a file's text — the example files under `etc/`, a client
//! file as `basalt dev-cluster` writes it, and a small cluster map.

use crate::{Result, Seeds};
use std::path::Path;

const CLIENT: &str = r#"mds = ["127.0.0.1:6700", "127.0.0.2:6700", "127.0.0.3:6700"]
owner = "basalt"
sector = 512
max-inflight = 256

[transport]
call-timeout-ms = 30000
fast-path = "off"
"#;

const CLUSTER_MAP: &str = r#"[[physical-pool]]
name = "pool1"

[[zone]]
name = "zone1"
physical-pool = "pool1"

[[zone]]
name = "zone2"
physical-pool = "pool1"

[[zone]]
name = "zone3"
physical-pool = "pool1"

[[server]]
name = "host1"
zone = "zone1"

[[server]]
name = "host2"
zone = "zone2"

[[server]]
name = "host3"
zone = "zone3"

[[logical-pool]]
name = "blocks"
physical-pool = "pool1"
replicas = 3
copysets-per-chunkserver = 100
scatter-width = 0
"#;

fn seed(which: u8, text: &str) -> Vec<u8> {
    let mut v = vec![which];
    v.extend_from_slice(text.as_bytes());
    v
}

/// One seed per parser.
pub fn seeds(etc: &Path) -> Result<Seeds> {
    let read = |name: &str| std::fs::read_to_string(etc.join(name));
    Ok(vec![
        ("chunkserver", seed(0, &read("chunkserver.toml")?)),
        ("mds", seed(1, &read("mds.toml")?)),
        ("client", seed(2, CLIENT)),
        ("transport", seed(3, &read("transport.example.toml")?)),
        ("cluster-map", seed(4, CLUSTER_MAP)),
    ])
}
