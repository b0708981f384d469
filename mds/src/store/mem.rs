//! In-memory [`MetaStore`] with etcd's revision semantics, for tests.

use super::{KeyValue, MetaStore, Op, Page, Txn, TxnOutcome};
use crate::error::Result;
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Default)]
struct Inner {
    revision: i64,
    kvs: BTreeMap<Vec<u8>, KeyValue>,
}

impl Inner {
    /// Apply writes at revision `rev`; whether anything changed.
    fn apply(&mut self, ops: &[Op], rev: i64) -> bool {
        let mut changed = false;
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    changed = true;
                    let e = self.kvs.entry(key.clone()).or_insert_with(|| KeyValue {
                        key: key.clone(),
                        value: Vec::new(),
                        create_revision: rev,
                        mod_revision: rev,
                        version: 0,
                    });
                    e.value = value.clone();
                    e.mod_revision = rev;
                    e.version += 1;
                }
                Op::Delete { key } => changed |= self.kvs.remove(key).is_some(),
            }
        }
        changed
    }
}

/// An in-memory store; clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    inner: std::sync::Arc<Mutex<Inner>>,
}

impl MemStore {
    /// An empty store at revision 1 (etcd starts there too).
    pub fn new() -> Self {
        let s = Self::default();
        s.inner.lock().revision = 1;
        s
    }
}

#[async_trait]
impl MetaStore for MemStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        Ok(self.inner.lock().kvs.get(key).cloned())
    }

    async fn range(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Page> {
        let g = self.inner.lock();
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_vec()),
            _ => Bound::Included(prefix.to_vec()),
        };
        let mut it = g
            .kvs
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        let limit = if limit == 0 { usize::MAX } else { limit };
        let kvs: Vec<KeyValue> = it.by_ref().take(limit).map(|(_, v)| v.clone()).collect();
        let more = it.next().is_some();
        Ok(Page { kvs, more })
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<i64> {
        let mut g = self.inner.lock();
        let rev = g.revision + 1;
        g.apply(&[Op::put(key, value)], rev);
        g.revision = rev;
        Ok(rev)
    }

    async fn delete(&self, key: &[u8]) -> Result<bool> {
        let mut g = self.inner.lock();
        let rev = g.revision + 1;
        let existed = g.apply(&[Op::delete(key)], rev);
        if existed {
            g.revision = rev;
        }
        Ok(existed)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        txn.validate()?;
        let mut g = self.inner.lock();
        let ok = txn.compares.iter().all(|c| c.holds(g.kvs.get(&c.key)));
        if !ok {
            return Ok(TxnOutcome {
                succeeded: false,
                revision: g.revision,
            });
        }
        let rev = g.revision + 1;
        if g.apply(&txn.ops, rev) {
            g.revision = rev;
        }
        Ok(TxnOutcome {
            succeeded: true,
            revision: g.revision,
        })
    }
}
