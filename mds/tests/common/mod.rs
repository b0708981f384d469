//! Fixtures shared by the MDS integration tests.

/// A cluster map of one physical pool over three zones (z1..z3), one server per zone
/// (h1..h3), and a 3-replica logical pool `blocks` with `copysets` per chunkserver.
pub fn three_zone_map(copysets: u32) -> String {
    format!(
        r#"
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
copysets-per-chunkserver = {copysets}
"#
    )
}
