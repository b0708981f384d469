//! Idle cost of many copysets: 100 groups × 3 replicas in one process with the default
//! (production) raft timings. Prints the process CPU used while idle; asserts only that
//! no leader changed while idle (no flapping), never a CPU figure.

use basalt_chunkserver::copyset::testing::{MemChunkStore, MemGroupLog, MemNet};
use basalt_chunkserver::copyset::{CopysetConfig, Copysets, CopysetsParams};
use basalt_proto::chunk::RaftRole;
use basalt_proto::ids::{ChunkServerId, CopysetId, GroupId, LogicalPoolId};
use basalt_proto::status::PeerAddr;
use std::time::{Duration, Instant};

const GROUPS: u32 = 100;
const IDLE: Duration = Duration::from_secs(4);

fn addr(id: u64) -> PeerAddr {
    PeerAddr {
        id: ChunkServerId(id as u32),
        addr: format!("127.0.0.1:{}", 7000 + id).parse().unwrap(),
    }
}

/// User + system CPU time of this process, from /proc/self/stat (in USER_HZ = 100 ticks).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Leader and term of every group, as seen from its leader.
fn leaders(regs: &[Copysets], groups: &[GroupId]) -> Option<Vec<(u32, u64)>> {
    groups
        .iter()
        .map(|&g| {
            regs.iter().find_map(|r| {
                let st = r.status(g).ok()?;
                (st.role == RaftRole::Leader).then_some((st.leader?.0, st.term))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_cpu_of_100_groups_on_3_replicas() {
    let net = MemNet::new();
    let mut regs = Vec::new();
    for id in 1..=3u64 {
        let reg = Copysets::open(CopysetsParams {
            local: addr(id),
            log: MemGroupLog::new(),
            store: MemChunkStore::new(),
            net: net.endpoint(id),
            config: CopysetConfig::default(),
        })
        .await
        .unwrap();
        net.register(id, reg.clone());
        regs.push(reg);
    }
    let groups: Vec<GroupId> = (1..=GROUPS)
        .map(|n| GroupId::of(LogicalPoolId(1), CopysetId(n)))
        .collect();
    let peers = [addr(1), addr(2), addr(3)];
    for &g in &groups {
        for r in regs.iter().rev() {
            r.create(g, &peers).await.unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        if let Some(l) = leaders(&regs, &groups) {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "not every group elected a leader"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Let the elections' follow-up traffic settle, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    tokio::time::sleep(IDLE).await;
    let cpu = process_cpu() - cpu0;
    let wall = t0.elapsed();
    let pct = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "idle CPU: {} groups x 3 replicas, heartbeat {} ms: {:.2}% of one core ({:?} CPU in {:?})",
        GROUPS,
        CopysetConfig::default().heartbeat_interval_ms,
        pct,
        cpu,
        wall
    );
    let after = leaders(&regs, &groups).expect("every group still has a leader");
    assert_eq!(before, after, "a leader or term changed while idle");
    for r in &regs {
        r.shutdown().await;
    }
}
