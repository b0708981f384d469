//! A minimal `GET /metrics` endpoint serving a prometheus-client registry over plain
//! HTTP/1.0 (one request per connection, no keep-alive, no hyper). For daemons' metrics ports.

use crate::error::TransportError;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request head read; anything longer is answered 431 and closed.
const MAX_REQUEST: usize = 8 * 1024;
/// A client that sends no complete request head within this time is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A running metrics endpoint. Dropping it stops the listener.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Bind `addr` and serve `registry` on `GET /metrics`.
    pub async fn bind(addr: SocketAddr, registry: Arc<Registry>) -> Result<Self, TransportError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| TransportError::io("bind metrics listener", &e))?;
        Ok(Self::serve(listener, registry))
    }

    /// Serve `registry` on an already bound listener.
    pub fn serve(listener: TcpListener, registry: Arc<Registry>) -> Self {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics accept failed");
                        // accept errors (EMFILE...) are transient; back off a little
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let registry = registry.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &registry).await {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                });
            }
        });
        MetricsServer { local_addr, task }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop serving.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    Bad,
}

/// Parse the request line (sans-IO).
fn route(head: &[u8]) -> Route {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Route::Bad;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    if method != "GET" {
        return Route::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or("");
    if path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

async fn handle(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok::<bool, std::io::Error>(true);
            }
            if buf.len() >= MAX_REQUEST {
                return Ok(false);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(false);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let (status, body, ctype) = match complete {
        Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(false)) if buf.len() >= MAX_REQUEST => (
            "431 Request Header Fields Too Large",
            String::new(),
            "text/plain",
        ),
        Ok(Ok(false)) => return Ok(()),
        Ok(Ok(true)) => match route(&buf) {
            Route::Metrics => {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, registry) {
                    Ok(()) => (
                        "200 OK",
                        body,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                    Err(_) => ("500 Internal Server Error", String::new(), "text/plain"),
                }
            }
            Route::NotFound => ("404 Not Found", "not found\n".into(), "text/plain"),
            Route::MethodNotAllowed => {
                ("405 Method Not Allowed", "only GET\n".into(), "text/plain")
            }
            Route::Bad => ("400 Bad Request", "bad request\n".into(), "text/plain"),
        },
    };
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.0\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.0\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"\xff\xfe garbage\r\n\r\n"), Route::Bad);
        assert_eq!(route(b"GET\r\n\r\n"), Route::Bad);
    }

    async fn fetch(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_registry() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut reg = Registry::default();
            let c: Counter = Counter::default();
            reg.register("answers", "test counter", c.clone());
            c.inc_by(42);
            let srv = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), Arc::new(reg))
                .await
                .unwrap();
            let out = fetch(srv.local_addr(), b"GET /metrics HTTP/1.0\r\n\r\n").await;
            assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
            assert!(out.contains("answers_total 42"), "{out}");
            let out = fetch(srv.local_addr(), b"GET /nope HTTP/1.0\r\n\r\n").await;
            assert!(out.starts_with("HTTP/1.0 404"), "{out}");
            let big = vec![b'a'; MAX_REQUEST];
            let out = fetch(srv.local_addr(), &big).await;
            assert!(out.starts_with("HTTP/1.0 431"), "{out}");
        })
        .await
        .unwrap();
    }
}
