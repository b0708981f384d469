//! One conformance suite for every `MetaStore`: the in-memory store and a real etcd
//! (started by the testkit on free loopback ports).

use basalt_mds::store::etcd::EtcdStore;
use basalt_mds::store::fence::{Fence, FencedStore};
use basalt_mds::store::mem::MemStore;
use basalt_mds::store::{list_all, next_ids, CmpOp, CmpTarget, Compare, MetaStore, Op, Txn};
use basalt_mds::Error;
use basalt_testkit::EtcdProcess;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

async fn conformance(s: Arc<dyn MetaStore>) {
    basic_put_get_delete(&*s).await;
    revisions_and_versions(&*s).await;
    paged_range(&*s).await;
    txn_compares(&*s).await;
    id_generator(s.clone()).await;
    fencing(s.clone()).await;
}

async fn basic_put_get_delete(s: &dyn MetaStore) {
    assert_eq!(s.get(b"/t/a").await.unwrap(), None);
    s.put(b"/t/a", b"1").await.unwrap();
    let kv = s.get(b"/t/a").await.unwrap().unwrap();
    assert_eq!(kv.value, b"1");
    assert!(s.delete(b"/t/a").await.unwrap());
    assert!(!s.delete(b"/t/a").await.unwrap());
    assert_eq!(s.get(b"/t/a").await.unwrap(), None);
}

async fn revisions_and_versions(s: &dyn MetaStore) {
    let r1 = s.put(b"/r/k", b"a").await.unwrap();
    let r2 = s.put(b"/r/k", b"b").await.unwrap();
    assert_eq!(r2, r1 + 1, "one revision per write");
    let kv = s.get(b"/r/k").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );
    s.delete(b"/r/k").await.unwrap();
    let r3 = s.put(b"/r/k", b"c").await.unwrap();
    let kv = s.get(b"/r/k").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.version),
        (r3, 1),
        "delete resets the version"
    );
}

async fn paged_range(s: &dyn MetaStore) {
    for i in 0u32..25 {
        s.put(
            &[b"/p/".as_slice(), &i.to_be_bytes()].concat(),
            &i.to_le_bytes(),
        )
        .await
        .unwrap();
    }
    s.put(b"/p", b"not under the prefix").await.unwrap();
    s.put(b"/p0", b"not under the prefix").await.unwrap();
    let page = s.range(b"/p/", None, 10).await.unwrap();
    assert_eq!(page.kvs.len(), 10);
    assert!(page.more);
    let last = page.kvs.last().unwrap().key.clone();
    let page2 = s.range(b"/p/", Some(&last), 10).await.unwrap();
    assert_eq!(
        page2.kvs[0].key,
        [b"/p/".as_slice(), &10u32.to_be_bytes()].concat()
    );
    let all = list_all(s, b"/p/", 7).await.unwrap();
    assert_eq!(all.len(), 25);
    assert!(
        all.windows(2).all(|w| w[0].key < w[1].key),
        "ascending order"
    );
    let exact = s.range(b"/p/", None, 25).await.unwrap();
    assert_eq!(exact.kvs.len(), 25);
    assert!(!exact.more);
    assert!(s.range(b"/nothing/", None, 5).await.unwrap().kvs.is_empty());
}

async fn txn_compares(s: &dyn MetaStore) {
    // create-if-absent succeeds once.
    let create = || {
        Txn::new()
            .when(Compare::absent("/x/k"))
            .then(Op::put("/x/k", "v1"))
    };
    assert!(s.txn(create()).await.unwrap().succeeded);
    assert!(!s.txn(create()).await.unwrap().succeeded);
    let kv = s.get(b"/x/k").await.unwrap().unwrap();
    // multi-key CAS on mod revision.
    let cas = Txn::new()
        .when(Compare::mod_revision("/x/k", kv.mod_revision))
        .when(Compare::value("/x/k", "v1"))
        .then(Op::put("/x/k", "v2"))
        .then(Op::put("/x/other", "o"))
        .then(Op::delete("/x/missing"));
    let out = s.txn(cas.clone()).await.unwrap();
    assert!(out.succeeded);
    assert_eq!(
        s.get(b"/x/other").await.unwrap().unwrap().mod_revision,
        out.revision
    );
    assert!(
        !s.txn(cas).await.unwrap().succeeded,
        "stale mod revision refused"
    );
    assert_eq!(s.get(b"/x/k").await.unwrap().unwrap().value, b"v2");
    // create revision and value compares, missing key semantics.
    let kv = s.get(b"/x/k").await.unwrap().unwrap();
    let by_create = Txn::new()
        .when(Compare::create_revision("/x/k", kv.create_revision))
        .then(Op::put("/x/c", "1"));
    assert!(s.txn(by_create).await.unwrap().succeeded);
    let gt = Compare {
        key: b"/x/k".to_vec(),
        op: CmpOp::Greater,
        target: CmpTarget::Version(1),
    };
    assert!(s.txn(Txn::new().when(gt)).await.unwrap().succeeded);
    let ne_missing = Compare {
        key: b"/x/absent".to_vec(),
        op: CmpOp::NotEqual,
        target: CmpTarget::Value(b"z".to_vec()),
    };
    assert!(
        !s.txn(Txn::new().when(ne_missing)).await.unwrap().succeeded,
        "value compare on a missing key is false"
    );
    // failed txn writes nothing.
    let failing = Txn::new()
        .when(Compare::value("/x/k", "nope"))
        .then(Op::put("/x/never", "1"));
    assert!(!s.txn(failing).await.unwrap().succeeded);
    assert_eq!(s.get(b"/x/never").await.unwrap(), None);
    // duplicate key refused by both.
    let dup = Txn::new()
        .then(Op::put("/x/d", "1"))
        .then(Op::put("/x/d", "2"));
    assert!(matches!(
        s.txn(dup).await,
        Err(Error::DuplicateKeyInTxn { .. })
    ));
}

async fn id_generator(s: Arc<dyn MetaStore>) {
    let a = next_ids(&*s, b"/id/test", 10).await.unwrap();
    assert_eq!(a, 1..11);
    let b = next_ids(&*s, b"/id/test", 5).await.unwrap();
    assert_eq!(b, 11..16);
    // concurrent allocators never overlap.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..5 {
                got.push(next_ids(&*s, b"/id/conc", 3).await.unwrap());
            }
            got
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for t in tasks {
        for r in t.await.unwrap() {
            all.extend(r);
        }
    }
    all.sort_unstable();
    assert_eq!(all, (1..=60).collect::<Vec<_>>());
}

async fn fencing(s: Arc<dyn MetaStore>) {
    // A leader key, as campaign would create it.
    let rev = s.put(b"/fence/leader/1", b"mds-a").await.unwrap();
    let fenced = FencedStore::new(
        s.clone(),
        Fence {
            key: b"/fence/leader/1".to_vec(),
            create_revision: rev,
        },
    );
    fenced.put(b"/fence/data", b"1").await.unwrap();
    // Own compare failing is not a fence failure.
    let own = Txn::new()
        .when(Compare::absent("/fence/data"))
        .then(Op::put("/fence/data", "2"));
    assert!(!fenced.txn(own).await.unwrap().succeeded);
    // Deposed: the key is re-created by someone else (new create revision).
    s.delete(b"/fence/leader/1").await.unwrap();
    s.put(b"/fence/leader/1", b"mds-b").await.unwrap();
    assert!(matches!(
        fenced.put(b"/fence/data", b"3").await,
        Err(Error::Fenced)
    ));
    assert!(matches!(
        fenced.delete(b"/fence/data").await,
        Err(Error::Fenced)
    ));
    assert!(matches!(
        next_ids(&fenced, b"/fence/id", 1).await,
        Err(Error::Fenced)
    ));
    assert_eq!(s.get(b"/fence/data").await.unwrap().unwrap().value, b"1");
}

#[tokio::test]
async fn mem_store_conformance() {
    tokio::time::timeout(T, conformance(Arc::new(MemStore::new())))
        .await
        .expect("timed out");
}

#[tokio::test]
async fn etcd_store_conformance() {
    let etcd = EtcdProcess::start().expect("start etcd");
    let store = EtcdStore::connect(&[etcd.endpoint()]).await.unwrap();
    tokio::time::timeout(T, conformance(Arc::new(store)))
        .await
        .expect("timed out");
}

#[tokio::test]
async fn etcd_store_unreachable_is_an_error() {
    let mut etcd = EtcdProcess::start().expect("start etcd");
    let store = EtcdStore::connect(&[etcd.endpoint()]).await.unwrap();
    store.put(b"/k", b"v").await.unwrap();
    etcd.kill();
    let r = tokio::time::timeout(T, store.get(b"/k"))
        .await
        .expect("bounded by client timeout");
    assert!(matches!(r, Err(Error::Etcd { .. })), "{r:?}");
}
