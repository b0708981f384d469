//! [`MetaStore`] on etcd 3.4 through `etcd-client`.

use super::{prefix_end, CmpOp, CmpTarget, KeyValue, MetaStore, Op, Page, Txn, TxnOutcome};
use crate::error::{Error, Result};
use async_trait::async_trait;
use etcd_client::{
    Client, Compare as ECompare, CompareOp as ECmpOp, ConnectOptions, GetOptions, Txn as ETxn,
    TxnOp,
};
use std::time::Duration;

/// Per-request timeout (etcd calls are ~1 ms here; anything near this is an outage).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connect to etcd with the MDS's timeouts.
pub async fn connect(endpoints: &[String]) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    Client::connect(endpoints, Some(opts))
        .await
        .map_err(Error::etcd("connect"))
}

/// Connect for long-lived streams (election observe, lease keepalive): no per-request
/// timeout, because etcd applies the gRPC deadline to a whole stream and would cut it
/// after [`REQUEST_TIMEOUT`]. Dead connections are detected by HTTP/2 keepalive pings
/// instead; callers bound their unary calls themselves.
pub async fn connect_streaming(endpoints: &[String]) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    Client::connect(endpoints, Some(opts))
        .await
        .map_err(Error::etcd("connect"))
}

/// The etcd-backed store. Cheap to clone (the client multiplexes one channel).
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Wrap a connected client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Connect to `endpoints`.
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        Ok(Self::new(connect(endpoints).await?))
    }

    /// The underlying client (for the election).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn kv_of(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    }
}

fn compare_of(c: &super::Compare) -> ECompare {
    let op = match c.op {
        CmpOp::Equal => ECmpOp::Equal,
        CmpOp::NotEqual => ECmpOp::NotEqual,
        CmpOp::Greater => ECmpOp::Greater,
        CmpOp::Less => ECmpOp::Less,
    };
    let key = c.key.clone();
    match &c.target {
        CmpTarget::Version(v) => ECompare::version(key, op, *v),
        CmpTarget::CreateRevision(v) => ECompare::create_revision(key, op, *v),
        CmpTarget::ModRevision(v) => ECompare::mod_revision(key, op, *v),
        CmpTarget::Value(v) => ECompare::value(key, op, v.clone()),
    }
}

fn revision_of(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map_or(0, |h| h.revision())
}

#[async_trait]
impl MetaStore for EtcdStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let mut kv = self.client.kv_client();
        let r = kv.get(key, None).await.map_err(Error::etcd("get"))?;
        Ok(r.kvs().first().map(kv_of))
    }

    async fn range(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Page> {
        let mut kv = self.client.kv_client();
        let start = match after {
            Some(a) if a >= prefix => {
                let mut s = a.to_vec();
                s.push(0);
                s
            }
            _ => prefix.to_vec(),
        };
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let r = kv
            .get(start, Some(opts))
            .await
            .map_err(Error::etcd("range"))?;
        Ok(Page {
            kvs: r.kvs().iter().map(kv_of).collect(),
            more: r.more(),
        })
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<i64> {
        let mut kv = self.client.kv_client();
        let r = kv.put(key, value, None).await.map_err(Error::etcd("put"))?;
        Ok(revision_of(r.header()))
    }

    async fn delete(&self, key: &[u8]) -> Result<bool> {
        let mut kv = self.client.kv_client();
        let r = kv.delete(key, None).await.map_err(Error::etcd("delete"))?;
        Ok(r.deleted() > 0)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        txn.validate()?;
        let compares: Vec<ECompare> = txn.compares.iter().map(compare_of).collect();
        let ops: Vec<TxnOp> = txn
            .ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(key, value, None),
                Op::Delete { key } => TxnOp::delete(key, None),
            })
            .collect();
        let mut kv = self.client.kv_client();
        let r = kv
            .txn(ETxn::new().when(compares).and_then(ops))
            .await
            .map_err(Error::etcd("txn"))?;
        Ok(TxnOutcome {
            succeeded: r.succeeded(),
            revision: revision_of(r.header()),
        })
    }
}
