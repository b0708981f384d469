//! The administrative connection of one CLI call: the active MDS (through
//! [`basalt_client::mds_client::MdsClient`], which follows the leader), every configured MDS
//! individually (who is active), and chunkservers directly (copyset status).

use crate::commands::Ctx;
use crate::error::CliError;
use basalt_client::config_file::parse_addrs;
use basalt_client::mds_client::{MdsCallError, MdsClient};
use basalt_client::ClientFile;
use basalt_proto::chunk::{CopysetStatus, CopysetStatusOk};
use basalt_proto::credential::{AuthOp, OwnerKey};
use basalt_proto::hello::Role;
use basalt_proto::ids::GroupId;
use basalt_proto::mds::{Credential, GetMdsLeader, MdsLeader};
use basalt_proto::status::{ChunkError, MdsError};
use basalt_proto::Rpc;
use basalt_transport::{ConnectionPool, TcpTransport};
use bytes::Bytes;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long one direct call (one MDS, one chunkserver) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections of one CLI call.
pub struct Admin {
    pool: Arc<ConnectionPool<TcpTransport>>,
    mds: MdsClient<TcpTransport>,
    addrs: Vec<SocketAddr>,
    /// The configured owner (or `admin`) and its key, when a key file is configured.
    principal: Option<(String, OwnerKey)>,
}

/// Why a direct call to one process failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ProbeError {
    /// No answer within [`PROBE_TIMEOUT`] or the connection failed.
    Unreachable,
    /// The process answered with an error.
    Refused {
        /// Its error, rendered.
        error: String,
    },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Unreachable => f.write_str("unreachable"),
            ProbeError::Refused { error } => f.write_str(error),
        }
    }
}

/// Load the client file; `--mds` overrides it and `$BASALT_MDS`.
pub fn client_file(ctx: &Ctx<'_>) -> Result<ClientFile, CliError> {
    let mut f = ClientFile::load(ctx.client_config.as_deref())?;
    if let Some(list) = &ctx.mds {
        f.mds = parse_addrs(list).map_err(|e| CliError::Usage {
            arg: "--mds",
            reason: e.to_string(),
        })?;
    }
    Ok(f)
}

/// Run `fut` to completion on a fresh current-thread runtime.
pub fn block_on<T>(fut: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(fut)
}

impl Admin {
    /// Connections as `file` configures them (call inside the runtime; nothing is dialled
    /// until the first call).
    pub fn new(file: &ClientFile) -> Result<Self, CliError> {
        let cfg = file.client_config()?;
        let transport = file.transport(Role::Cli, &format!("basalt-cli-{}", std::process::id()))?;
        let pool = Arc::new(ConnectionPool::new(transport));
        Ok(Admin {
            mds: MdsClient::new(
                pool.clone(),
                cfg.mds.clone(),
                cfg.mds_call_timeout,
                cfg.mds_retry_for,
            ),
            pool,
            principal: cfg.key.clone().map(|k| (cfg.owner.clone(), k)),
            addrs: cfg.mds,
        })
    }

    /// Call the active MDS with a credential for `op` from the configured owner's key
    /// (none without a key file).
    pub async fn call_authed<R, X>(
        &self,
        op: &AuthOp<'_>,
        make: impl Fn(Option<Credential>) -> R,
    ) -> Result<X, CliError>
    where
        R: Rpc<Reply = Result<X, MdsError>>,
    {
        let who = self.principal.as_ref().map(|(o, k)| (o.as_str(), k));
        self.mds
            .call_authed(who, op, make)
            .await
            .map_err(|e| self.call_error(e))
    }

    fn call_error(&self, e: MdsCallError) -> CliError {
        match e {
            MdsCallError::Unavailable => CliError::Unreachable {
                addrs: self
                    .addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            },
            e => e.into(),
        }
    }

    /// The configured MDS addresses.
    pub fn mds_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Call the active MDS.
    pub async fn call<R, X>(&self, req: &R) -> Result<X, CliError>
    where
        R: Rpc<Reply = Result<X, MdsError>>,
    {
        self.mds.call(req).await.map_err(|e| self.call_error(e))
    }

    async fn probe<R: Rpc>(&self, addr: SocketAddr, req: &R) -> Option<R::Reply> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.pool.call(&addr, req, Bytes::new())).await {
            Ok(Ok((reply, _))) => Some(reply),
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "call failed");
                self.pool.invalidate(&addr);
                None
            }
            Err(_) => {
                self.pool.invalidate(&addr);
                None
            }
        }
    }

    /// One call to the chunkserver at `addr`, bounded by `timeout` (`None`: no answer).
    pub async fn call_chunkserver<R: Rpc>(
        &self,
        addr: SocketAddr,
        req: &R,
        timeout: Duration,
    ) -> Option<R::Reply> {
        match tokio::time::timeout(timeout, self.pool.call(&addr, req, Bytes::new())).await {
            Ok(Ok((reply, _))) => Some(reply),
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "call failed");
                self.pool.invalidate(&addr);
                None
            }
            Err(_) => {
                self.pool.invalidate(&addr);
                None
            }
        }
    }

    /// Ask one MDS who is active (`None`: it did not answer).
    pub async fn mds_leader(&self, addr: SocketAddr) -> Option<MdsLeader> {
        self.probe(addr, &GetMdsLeader {}).await
    }

    /// Ask one chunkserver for its replica of `group`.
    pub async fn copyset_status(
        &self,
        addr: SocketAddr,
        group: GroupId,
    ) -> Result<CopysetStatusOk, ProbeError> {
        match self.probe(addr, &CopysetStatus { group }).await {
            None => Err(ProbeError::Unreachable),
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(ProbeError::Refused {
                error: chunk_error(&e),
            }),
        }
    }
}

fn chunk_error(e: &ChunkError) -> String {
    match e {
        ChunkError::CopysetNotFound { .. } => "no replica here".into(),
        e => e.to_string(),
    }
}
