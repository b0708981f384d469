//! Drive an echo server (`echo_server` example, or one started here) and print the call
//! rate and latency percentiles. A smoke tool, not a benchmark harness.
//!
//! `cargo run --release -p basalt-transport --example echo_load -- [ADDR|-] [CALLS] [CONCURRENCY] [PAYLOAD_BYTES]`

use basalt_proto::hello::{Echo, Identity, Role};
use basalt_transport::{Router, TcpTransport, TransportOptions};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use std::net::SocketAddr;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let calls: usize = arg(1, "100000").parse()?;
    let concurrency: usize = arg(2, "64").parse()?;
    let payload = Bytes::from(vec![0x42u8; arg(3, "0").parse()?]);
    let identity = |name: &str| Identity {
        role: Role::Tool,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    };
    let transport = TcpTransport::new(TransportOptions::new(identity("echo-load")))?;
    let mut _server = None;
    let addr: SocketAddr = match arg(0, "-").as_str() {
        "-" => {
            let st = TcpTransport::new(TransportOptions::new(identity("echo-load-server")))?;
            let srv = st
                .serve("127.0.0.1:0".parse()?, Router::new().echo())
                .await?;
            let a = srv.local_addr();
            _server = Some((st, srv));
            a
        }
        a => a.parse()?,
    };
    let conn = transport.connect(addr).await?;
    let mut lat = Vec::with_capacity(calls);
    let start = Instant::now();
    let mut inflight = FuturesUnordered::new();
    let mut issued = 0;
    while issued < calls || !inflight.is_empty() {
        while issued < calls && inflight.len() < concurrency {
            let call = conn.call(
                &Echo {
                    tag: issued as u64,
                    delay_us: 0,
                },
                payload.clone(),
            );
            inflight.push(async move {
                let t = Instant::now();
                call.await.map(|_| t.elapsed())
            });
            issued += 1;
        }
        if let Some(r) = inflight.next().await {
            lat.push(r?);
        }
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{calls} calls, concurrency {concurrency}, payload {} B, path {}: {:.0} calls/s, {:.1} MB/s, p50 {:?}, p99 {:?}",
        payload.len(),
        conn.path(),
        calls as f64 / elapsed.as_secs_f64(),
        (calls * payload.len() * 2) as f64 / elapsed.as_secs_f64() / 1e6,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
