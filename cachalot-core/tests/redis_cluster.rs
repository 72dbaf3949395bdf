//! Redis Cluster: a 3-node cluster started by the test on free loopback ports (killed at the
//! end), used for reads, writes, invalidations and `clear` across many databases, hence many
//! slots on every node.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cachalot_core::Cachalot;
use cachalot_core::backend::{CacheBackend, RedisBackend, TableId, TokenState};
use cachalot_core::engine::{Codec, ReadOptions, ReadSet, WriteSet};
use deadpool_redis::redis;

use redis_support::{PrivateCluster, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_and_invalidations_on_a_cluster() {
    let Some(cluster) = PrivateCluster::start().await else {
        return;
    };
    let backend = RedisBackend::cluster_builder(cluster.urls())
        .key_prefix("cl")
        .build()
        .await
        .unwrap();
    assert!(backend.is_cluster());
    let cachalot = Cachalot::builder()
        .backend(backend.clone())
        .build()
        .unwrap();
    let runs = AtomicUsize::new(0);
    let read = |db: &Arc<str>, table: &'static str, value: u64| {
        let reads = ReadSet::new(db, [table, "shared"]);
        let key = cachalot
            .key(db, &format!("SELECT v FROM {table} JOIN shared"))
            .finish();
        let runs = &runs;
        let cachalot = &cachalot;
        async move {
            let before = runs.load(SeqCst);
            let v = cachalot
                .read_with(
                    &reads,
                    key,
                    ReadOptions::new().codec(Codec::<u64>::json()),
                    |_| 8,
                    || async {
                        runs.fetch_add(1, SeqCst);
                        Ok::<_, Infallible>(value)
                    },
                )
                .await
                .unwrap();
            (v, runs.load(SeqCst) > before)
        }
    };

    // Many databases: their hash tags spread over the three nodes.
    let dbs: Vec<Arc<str>> = (0..24).map(|i| Arc::from(format!("db{i}"))).collect();
    for db in &dbs {
        assert_eq!(read(db, "t", 1).await, (1, true));
        assert_eq!(read(db, "t", 2).await, (1, false));
    }
    let mut nodes_used = 0;
    for url in cluster.urls() {
        let mut c = raw(&url).await;
        let size: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
        if size > 0 {
            nodes_used += 1;
        }
    }
    assert!(nodes_used >= 2, "keys on {nodes_used} node(s) only");

    // A write invalidates its table in its database only.
    for db in &dbs {
        let guard = cachalot.begin_write(db, &WriteSet::tables(["t"])).await;
        assert_eq!(read(db, "t", 3).await, (3, true), "locked: not served");
        guard.finish().await;
        assert_eq!(read(db, "t", 4).await, (4, true));
        assert_eq!(read(db, "t", 5).await, (4, false));
        assert_eq!(read(db, "u", 6).await, (6, true));
    }
    // A shared table, the epoch, several tables at once.
    let db = &dbs[0];
    cachalot.invalidate(db, ["shared", "u"]).await;
    assert_eq!(read(db, "t", 7).await, (7, true));
    assert_eq!(read(db, "u", 8).await, (8, true));
    cachalot.invalidate_all(db).await;
    assert_eq!(read(db, "t", 9).await, (9, true));
    assert_eq!(read(&dbs[1], "t", 10).await, (4, false), "another database");

    // Tables of several databases (several slots) in one call are split per slot.
    let mixed = [TableId::new(&dbs[2], "t"), TableId::new(&dbs[3], "t")];
    let states = backend.tokens(&mixed).await.unwrap();
    assert!(states.iter().all(|s| matches!(s, TokenState::Present(_))));
    let fresh = backend.bump(&mixed, None).await.unwrap();
    assert_eq!(
        backend.tokens(&mixed).await.unwrap(),
        fresh
            .iter()
            .map(|t| TokenState::Present(*t))
            .collect::<Vec<_>>()
    );

    // `clear` reaches every node.
    backend.clear().await.unwrap();
    for url in cluster.urls() {
        let mut c = raw(&url).await;
        let entries: Vec<String> = redis::cmd("KEYS")
            .arg("cl:*:e:*")
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(entries.is_empty(), "{url}: {entries:?}");
    }
    assert_eq!(read(&dbs[1], "t", 11).await, (11, true));
    assert_eq!(read(&dbs[1], "t", 12).await, (11, false));
    let stats = cachalot.stats();
    assert_eq!(stats.backend_errors, 0, "{stats:?}");
}
