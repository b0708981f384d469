//! Fenced writes: every write of the active MDS carries a compare on its election key.
//!
//! The election key (`<election name>/<lease hex>`) is created by `campaign` and deleted
//! when the lease expires or the leader resigns. A later leader's key has another create
//! revision. Guarding each write with `create_revision(leader_key) == ours` makes a
//! deposed MDS that has not noticed yet unable to change anything.

use super::{Compare, KeyValue, MetaStore, Op, Page, Txn, TxnOutcome};
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::sync::Arc;

/// The leader key this MDS holds and the revision that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Election key owned by this MDS.
    pub key: Vec<u8>,
    /// Its create revision.
    pub create_revision: i64,
}

impl Fence {
    /// The guard added to every write.
    pub fn compare(&self) -> Compare {
        Compare::create_revision(self.key.clone(), self.create_revision)
    }
}

/// A store whose writes fail with [`Error::Fenced`] once the fence key is no longer ours.
#[derive(Clone)]
pub struct FencedStore {
    inner: Arc<dyn MetaStore>,
    fence: Fence,
}

impl std::fmt::Debug for FencedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedStore")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl FencedStore {
    /// Wrap `inner`, guarding writes with `fence`.
    pub fn new(inner: Arc<dyn MetaStore>, fence: Fence) -> Self {
        Self { inner, fence }
    }

    /// The fence in force.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    async fn still_ours(&self) -> Result<bool> {
        let kv = self.inner.get(&self.fence.key).await?;
        Ok(kv.is_some_and(|kv| kv.create_revision == self.fence.create_revision))
    }
}

#[async_trait]
impl MetaStore for FencedStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Page> {
        self.inner.range(prefix, after, limit).await
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<i64> {
        let out = self.txn(Txn::new().then(Op::put(key, value))).await?;
        if out.succeeded {
            Ok(out.revision)
        } else {
            Err(Error::Fenced)
        }
    }

    async fn delete(&self, key: &[u8]) -> Result<bool> {
        let existed = self.inner.get(key).await?.is_some();
        let out = self.txn(Txn::new().then(Op::delete(key))).await?;
        if out.succeeded {
            Ok(existed)
        } else {
            Err(Error::Fenced)
        }
    }

    /// The caller's compares plus the fence. A failure caused by the fence is
    /// [`Error::Fenced`]; a failure of the caller's own compares is `succeeded == false`.
    async fn txn(&self, mut txn: Txn) -> Result<TxnOutcome> {
        txn.compares.push(self.fence.compare());
        let out = self.inner.txn(txn).await?;
        if !out.succeeded && !self.still_ours().await? {
            return Err(Error::Fenced);
        }
        Ok(out)
    }
}
