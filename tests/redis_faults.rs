//! Faults of Redis under the SQLx adapter (SQLite in memory), on private `redis-server`
//! processes: stopped, frozen, restarted empty, or cut from one process only. Queries always
//! answer from the database, no error reaches the application, and nothing stale is served
//! by the process that wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../cachalot-core/tests/redis_support/mod.rs"]
mod redis_support;

use std::time::{Duration, Instant};

use cachalot::{BypassReason, Cachalot, CachedPool};
use cachalot_core::backend::RedisBackend;
use sqlx::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;

use redis_support::{PrivateRedis, Proxy, unique};

async fn sqlite() -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
        "INSERT INTO items (v) VALUES (1), (2)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool
}

async fn backend(url: &str, prefix: &str) -> RedisBackend {
    RedisBackend::builder(url)
        .key_prefix(prefix)
        .connect_timeout(Duration::from_millis(200))
        .command_timeout(Duration::from_millis(200))
        .failure_cooldown(Duration::from_millis(100))
        .build()
        .await
        .unwrap()
}

/// A "process": its own cache and backend over the shared database.
fn attach(pool: &SqlitePool, backend: RedisBackend) -> CachedPool<sqlx::Sqlite> {
    let cache = Cachalot::builder().backend(backend).build().unwrap();
    CachedPool::with_cache(pool.clone(), cache).with_database_name("shared-db")
}

async fn sum(db: &CachedPool<sqlx::Sqlite>) -> i64 {
    db.query_scalar::<i64>("SELECT sum(v) FROM items")
        .fetch_one()
        .await
        .unwrap()
}

async fn direct_sum(pool: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT sum(v) FROM items")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn insert(db: &CachedPool<sqlx::Sqlite>, v: i64) {
    sqlx::query("INSERT INTO items (v) VALUES (?)")
        .bind(v)
        .execute(db)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_then_restarted_empty() {
    let Some(mut server) = PrivateRedis::start(&[]).await else {
        return;
    };
    let pool = sqlite().await;
    let db = attach(&pool, backend(&server.url(), "faults").await);
    assert_eq!(sum(&db).await, 3);
    assert_eq!(sum(&db).await, 3);
    assert_eq!(db.stats().hits, 1);

    server.stop();
    // Every query answers from the database; writes succeed.
    for i in 0..20 {
        assert_eq!(sum(&db).await, direct_sum(&pool).await);
        if i % 5 == 0 {
            insert(&db, 10).await;
        }
    }
    assert_eq!(direct_sum(&pool).await, 43);
    let cache = db.cache();
    assert!(
        cache.has_pending_invalidations(),
        "failed invalidations are kept"
    );
    assert!(cache.stats().backend_errors > 0);

    server.restart().await;
    // The background task retries the invalidations; meanwhile `items` stays uncached here.
    let started = Instant::now();
    while cache.has_pending_invalidations() {
        assert_eq!(sum(&db).await, 43);
        assert!(started.elapsed() < Duration::from_secs(15), "never retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Redis restarted empty: misses, then hits, never anything stale.
    assert_eq!(sum(&db).await, 43);
    let hits = db.stats().hits;
    assert_eq!(sum(&db).await, 43);
    assert_eq!(db.stats().hits, hits + 1, "caching resumed");
    insert(&db, 100).await;
    assert_eq!(sum(&db).await, 143);
    assert_eq!(sum(&db).await, 143);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_at_most_the_timeouts() {
    let Some(server) = PrivateRedis::start(&[]).await else {
        return;
    };
    let pool = sqlite().await;
    let db = attach(&pool, backend(&server.url(), "frozen").await);
    assert_eq!(sum(&db).await, 3);
    server.pause();
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(sum(&db).await, 3);
    }
    insert(&db, 1).await;
    assert_eq!(sum(&db).await, 4);
    let elapsed = started.elapsed();
    // A frozen server is given up on after the command timeout (200 ms), and then skipped
    // during the cooldown: 51 queries do not each wait.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    println!("51 queries against a frozen Redis: {elapsed:?}");
    server.resume();
    // Once the cooldown has passed, the retry reaches Redis.
    let started = Instant::now();
    while !db.cache().retry_pending_invalidations().await {
        assert!(started.elapsed() < Duration::from_secs(10), "never retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sum(&db).await, 4);
    assert_eq!(sum(&db).await, 4);
}

/// Process A is cut from Redis (a proxy between them), B still reaches it. A's write cannot
/// reach Redis: A never serves the old entry (its tables are held until the retried bump
/// succeeds), and B is protected only once that retry succeeds: the documented limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_writer_applies_its_invalidations_before_serving_from_redis() {
    let Some(server) = PrivateRedis::start(&[]).await else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let prefix = unique("partition");
    let pool = sqlite().await;
    let a = attach(&pool, backend(&proxy.url(), &prefix).await);
    let b = attach(&pool, backend(&server.url(), &prefix).await);
    assert_eq!(sum(&a).await, 3);
    a.settle().await;
    assert_eq!(sum(&b).await, 3);
    assert_eq!(b.stats().hits, 1, "B hits A's entry");

    proxy.cut();
    insert(&a, 10).await; // lock and bump fail: the write itself succeeds
    assert!(a.cache().has_pending_invalidations());
    // A answers from the database.
    assert_eq!(sum(&a).await, 13);
    // B still sees the old token and entry in Redis: the limit of a partition.
    assert_eq!(
        sum(&b).await,
        3,
        "documented: B is stale while A cannot reach Redis"
    );

    proxy.restore();
    // Redis still holds the old entry: A must not serve it before its bump lands.
    assert_eq!(sum(&a).await, 13);
    let bypasses = a.stats().bypasses.get(BypassReason::PendingInvalidation);
    assert!(bypasses >= 1, "{:?}", a.stats());
    let started = Instant::now();
    while a.cache().has_pending_invalidations() {
        assert_eq!(sum(&a).await, 13);
        assert!(started.elapsed() < Duration::from_secs(15), "never retried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The retried bump reached Redis: B is fresh too, and both cache again.
    assert_eq!(sum(&b).await, 13);
    assert_eq!(sum(&a).await, 13);
    let hits = a.stats().hits;
    assert_eq!(sum(&a).await, 13);
    assert_eq!(a.stats().hits, hits + 1);
    drop(proxy);
}
