//! A TCP echo server (answers `Echo`), for manual tests and benchmarks.
//!
//! `cargo run -p basalt-transport --example echo_server -- [LISTEN_ADDR] [METRICS_ADDR]`
//! prints `listening on ADDR` and serves until killed.

use basalt_proto::hello::{Identity, Role};
use basalt_transport::metrics_http::MetricsServer;
use basalt_transport::{Router, TcpTransport, TransportMetrics, TransportOptions};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let metrics_addr: Option<SocketAddr> = args.next().map(|a| a.parse()).transpose()?;
    let metrics = TransportMetrics::new();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let identity = Identity {
        role: Role::Tool,
        chunkserver: None,
        name: format!("echo-server:{}", std::process::id()),
        cluster: String::new(),
    };
    let transport = TcpTransport::new(TransportOptions::new(identity).metrics(metrics))?;
    let server = transport.serve(listen, Router::new().echo()).await?;
    println!("listening on {}", server.local_addr());
    let _http = match metrics_addr {
        Some(a) => {
            let h = MetricsServer::bind(a, Arc::new(registry)).await?;
            println!("metrics on http://{}/metrics", h.local_addr());
            Some(h)
        }
        None => None,
    };
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
