//! The metadata store: a small async KV interface with etcd 3.4 semantics.
//!
//! Two implementations share one conformance suite (`tests/store_conformance.rs`):
//! [`etcd::EtcdStore`] (production) and [`mem::MemStore`] (tests, single process). Both
//! keep etcd's revision model: one global revision that grows by one per write request;
//! per key a `create_revision`, `mod_revision` and `version` (writes since creation, reset
//! by delete). A compare on a missing key sees `version == create_revision ==
//! mod_revision == 0`, and a value compare on a missing key is always false (etcd does so).
//!
//! Listing is paged (`range` with a limit and a resume key): etcd 3.4 has no RangeStream.
//!
//! [`fence::FencedStore`] wraps any store so every write carries the leader-key compare.

pub mod etcd;
pub mod fence;
pub mod mem;

use crate::error::{Error, Result};
use async_trait::async_trait;
use std::collections::HashSet;

/// A stored key with its revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: i64,
    /// Revision of the last write of the key.
    pub mod_revision: i64,
    /// Writes since creation (1 after the first put).
    pub version: i64,
}

/// One page of a prefix listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// More keys follow: continue with `after = last key`.
    pub more: bool,
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `>` (stored > given)
    Greater,
    /// `<` (stored < given)
    Less,
}

/// What a compare looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmpTarget {
    /// The key's version (0 when absent).
    Version(i64),
    /// The key's create revision (0 when absent).
    CreateRevision(i64),
    /// The key's mod revision (0 when absent).
    ModRevision(i64),
    /// The key's value (false for every operator when the key is absent).
    Value(Vec<u8>),
}

/// A guard of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// Key compared.
    pub key: Vec<u8>,
    /// Operator.
    pub op: CmpOp,
    /// Target and operand.
    pub target: CmpTarget,
}

impl Compare {
    /// `key` does not exist.
    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            op: CmpOp::Equal,
            target: CmpTarget::Version(0),
        }
    }

    /// `key` was last written at `rev` (0: absent).
    pub fn mod_revision(key: impl Into<Vec<u8>>, rev: i64) -> Self {
        Compare {
            key: key.into(),
            op: CmpOp::Equal,
            target: CmpTarget::ModRevision(rev),
        }
    }

    /// `key` was created at `rev`.
    pub fn create_revision(key: impl Into<Vec<u8>>, rev: i64) -> Self {
        Compare {
            key: key.into(),
            op: CmpOp::Equal,
            target: CmpTarget::CreateRevision(rev),
        }
    }

    /// `key` holds `value`.
    pub fn value(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            op: CmpOp::Equal,
            target: CmpTarget::Value(value.into()),
        }
    }

    /// Evaluate against the stored key (shared by the in-memory store and tests).
    pub fn holds(&self, kv: Option<&KeyValue>) -> bool {
        fn cmp<T: Ord>(op: CmpOp, a: T, b: T) -> bool {
            match op {
                CmpOp::Equal => a == b,
                CmpOp::NotEqual => a != b,
                CmpOp::Greater => a > b,
                CmpOp::Less => a < b,
            }
        }
        let (v, c, m) = kv.map_or((0, 0, 0), |kv| {
            (kv.version, kv.create_revision, kv.mod_revision)
        });
        match &self.target {
            CmpTarget::Version(x) => cmp(self.op, v, *x),
            CmpTarget::CreateRevision(x) => cmp(self.op, c, *x),
            CmpTarget::ModRevision(x) => cmp(self.op, m, *x),
            CmpTarget::Value(x) => match kv {
                Some(kv) => cmp(self.op, kv.value.as_slice(), x.as_slice()),
                None => false,
            },
        }
    }
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put a value.
    Put {
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Delete a key (no-op when absent).
    Delete {
        /// Key.
        key: Vec<u8>,
    },
}

impl Op {
    /// A put.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A delete.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Op::Delete { key: key.into() }
    }

    /// The key written.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// A multi-key transaction: if every compare holds, apply every op atomically.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Txn {
    /// Guards.
    pub compares: Vec<Compare>,
    /// Writes applied when all guards hold.
    pub ops: Vec<Op>,
}

/// Largest number of ops in one transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a guard.
    pub fn when(mut self, c: Compare) -> Self {
        self.compares.push(c);
        self
    }

    /// Add a write.
    pub fn then(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Refuse what etcd refuses: the same key written twice.
    pub fn validate(&self) -> Result<()> {
        let mut seen = HashSet::new();
        for op in &self.ops {
            if !seen.insert(op.key()) {
                return Err(Error::DuplicateKeyInTxn {
                    key: String::from_utf8_lossy(op.key()).into_owned(),
                });
            }
        }
        Ok(())
    }
}

/// Outcome of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Every compare held and the ops were applied.
    pub succeeded: bool,
    /// Store revision after the transaction.
    pub revision: i64,
}

/// The metadata store interface.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// One key.
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>>;
    /// Up to `limit` keys starting with `prefix`, strictly after `after` when given.
    async fn range(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Page>;
    /// Put a value; returns the new revision.
    async fn put(&self, key: &[u8], value: &[u8]) -> Result<i64>;
    /// Delete a key; whether it existed.
    async fn delete(&self, key: &[u8]) -> Result<bool>;
    /// A guarded multi-key write.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome>;
}

/// The key just after every key starting with `prefix` (etcd's range end), or empty for
/// "to the end of the keyspace" when the prefix is all `0xff`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Every key under `prefix`, fetched page by page.
pub async fn list_all(store: &dyn MetaStore, prefix: &[u8], page: usize) -> Result<Vec<KeyValue>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let p = store.range(prefix, after.as_deref(), page).await?;
        let more = p.more;
        out.extend(p.kvs);
        if !more {
            return Ok(out);
        }
        after = out.last().map(|kv| kv.key.clone());
    }
}

/// Attempts of a CAS loop before giving up with [`Error::Contention`].
const CAS_ATTEMPTS: u32 = 32;

/// Id generator primitive: reserve `n` ids from the counter at `key` with a CAS on its
/// mod revision. Returns the half-open range `[first, first + n)`; ids start at 1. The
/// counter holds the last id handed out, as a decimal string (readable in `etcdctl`).
pub async fn next_ids(store: &dyn MetaStore, key: &[u8], n: u64) -> Result<std::ops::Range<u64>> {
    for _ in 0..CAS_ATTEMPTS {
        let cur = store.get(key).await?;
        let (last, guard) = match &cur {
            None => (0u64, Compare::absent(key)),
            Some(kv) => {
                let s = std::str::from_utf8(&kv.value).map_err(|e| Error::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: e.to_string(),
                })?;
                let last = s.parse::<u64>().map_err(|e| Error::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: e.to_string(),
                })?;
                (last, Compare::mod_revision(key, kv.mod_revision))
            }
        };
        let new_last = last.checked_add(n).ok_or_else(|| Error::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "id counter overflow".into(),
        })?;
        let txn = Txn::new()
            .when(guard)
            .then(Op::put(key, new_last.to_string()));
        if store.txn(txn).await?.succeeded {
            return Ok(last + 1..new_last + 1);
        }
    }
    Err(Error::Contention {
        key: String::from_utf8_lossy(key).into_owned(),
        attempts: CAS_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0]);
    }

    #[test]
    fn compare_on_missing_key() {
        assert!(Compare::absent("k").holds(None));
        assert!(Compare::mod_revision("k", 0).holds(None));
        assert!(!Compare::value("k", "").holds(None));
        let ne = Compare {
            key: b"k".to_vec(),
            op: CmpOp::NotEqual,
            target: CmpTarget::Value(b"x".to_vec()),
        };
        assert!(!ne.holds(None), "value compares on absent keys are false");
    }

    #[test]
    fn duplicate_keys_refused() {
        let t = Txn::new().then(Op::put("a", "1")).then(Op::delete("a"));
        assert!(matches!(t.validate(), Err(Error::DuplicateKeyInTxn { .. })));
    }
}
