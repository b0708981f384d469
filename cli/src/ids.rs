//! Ids on the command line and in tables: copysets as `POOL.COPYSET` (`1.5`), chunkservers
//! as `cs3` or `3`, logical pools as `1`.

use basalt_proto::ids::{ChunkServerId, CopysetId, GroupId, LogicalPoolId};

/// A copyset id for people: `POOL.COPYSET`.
pub fn copyset_name(g: GroupId) -> String {
    format!("{}.{}", g.pool().0, g.copyset().0)
}

/// Parse a copyset: `POOL.COPYSET` (`1.5`), or the raw group id (`4294967301`,
/// `group4294967301`) as logs print it.
pub fn parse_copyset(s: &str) -> Result<GroupId, String> {
    let s = s.trim();
    let bad = || {
        format!("{s:?} is not a copyset id: give POOL.COPYSET (e.g. 1.5) as `basalt copyset ls` prints it")
    };
    let g = if let Some((p, c)) = s.split_once('.') {
        let p: u32 = p.parse().map_err(|_| bad())?;
        let c: u32 = c.parse().map_err(|_| bad())?;
        GroupId::of(LogicalPoolId(p), CopysetId(c))
    } else {
        GroupId(
            s.strip_prefix("group")
                .unwrap_or(s)
                .parse()
                .map_err(|_| bad())?,
        )
    };
    if g.pool().0 == 0 {
        return Err(bad());
    }
    Ok(g)
}

/// Parse a chunkserver id: `cs3` or `3`.
pub fn parse_chunkserver(s: &str) -> Result<ChunkServerId, String> {
    let t = s.trim();
    t.strip_prefix("cs")
        .unwrap_or(t)
        .parse()
        .map(ChunkServerId)
        .map_err(|_| {
            format!(
                "{s:?} is not a chunkserver id: give cs3 or 3 as `basalt chunkserver ls` prints it"
            )
        })
}

/// Parse a logical pool id: `1` (or `lpool1`).
pub fn parse_pool(s: &str) -> Result<LogicalPoolId, String> {
    let t = s.trim();
    t.strip_prefix("lpool")
        .unwrap_or(t)
        .parse()
        .map(LogicalPoolId)
        .map_err(|_| format!("{s:?} is not a logical pool id: give the ID `basalt pool ls` prints"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copysets_parse_in_every_printed_form() {
        let g = GroupId::of(LogicalPoolId(1), CopysetId(5));
        assert_eq!(parse_copyset("1.5"), Ok(g));
        assert_eq!(parse_copyset(&g.0.to_string()), Ok(g));
        assert_eq!(parse_copyset(&g.to_string()), Ok(g));
        assert_eq!(parse_copyset(&copyset_name(g)), Ok(g));
        assert_eq!(copyset_name(g), "1.5");
        for bad in [
            "",
            "5",
            "0.5",
            "1.",
            ".5",
            "1.5.6",
            "x",
            "1.-1",
            "1.4294967296",
        ] {
            assert!(parse_copyset(bad).is_err(), "{bad:?}");
        }
        assert!(parse_copyset("5").unwrap_err().contains("POOL.COPYSET"));
    }

    #[test]
    fn chunkservers_and_pools_parse() {
        assert_eq!(parse_chunkserver("cs3"), Ok(ChunkServerId(3)));
        assert_eq!(parse_chunkserver("3"), Ok(ChunkServerId(3)));
        assert!(parse_chunkserver("host-1").is_err());
        assert!(parse_chunkserver("-1").is_err());
        assert_eq!(parse_pool("2"), Ok(LogicalPoolId(2)));
        assert_eq!(parse_pool("lpool2"), Ok(LogicalPoolId(2)));
        assert!(parse_pool("blocks").is_err());
    }
}
