//! `#[cached_query]` on the Redis backend: values are stored as JSON, so a second process
//! (here a second cache on the same Redis prefix) is served them, and a write through either
//! invalidates them for both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../cachalot-core/tests/redis_support/mod.rs"]
mod redis_support;

use std::sync::atomic::{AtomicUsize, Ordering};

use cachalot::{Cachalot, CachedPool, cached_query};
use cachalot_core::backend::RedisBackend;
use serde::{Deserialize, Serialize};
use sqlx::Sqlite;
use sqlx::sqlite::SqlitePoolOptions;

use redis_support::{purge, redis_url, unavailable, unique};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize, Deserialize)]
struct Fish {
    id: i64,
    name: String,
}

static LIST_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_query(ttl = "1m")]
async fn fish_from(db: &CachedPool<Sqlite>, first: i64) -> Result<Vec<Fish>, sqlx::Error> {
    LIST_RUNS.fetch_add(1, Ordering::SeqCst);
    sqlx::query_as("SELECT id, name FROM fish WHERE id >= ? ORDER BY id")
        .bind(first)
        .fetch_all(db)
        .await
}

static FIRST_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_query(tables = ["fish"])]
async fn first_fish(db: &CachedPool<Sqlite>) -> Option<Fish> {
    FIRST_RUNS.fetch_add(1, Ordering::SeqCst);
    sqlx::query_as("SELECT id, name FROM fish ORDER BY id LIMIT 1")
        .fetch_optional(db)
        .await
        .ok()?
}

/// A cache on the machine's Redis under `prefix`, as another process would build it.
async fn cache(prefix: &str) -> Option<Cachalot> {
    match RedisBackend::builder(redis_url())
        .key_prefix(prefix)
        .build()
        .await
    {
        Ok(backend) => Some(Cachalot::builder().backend(backend).build().unwrap()),
        Err(e) => unavailable("Redis", e),
    }
}

#[tokio::test]
async fn cached_functions_share_values_through_redis() {
    let prefix = unique("macros");
    let (Some(one), Some(other)) = (cache(&prefix).await, cache(&prefix).await) else {
        return;
    };
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let name = unique("sqlite");
    let a = CachedPool::with_cache(pool.clone(), one).with_database_name(name.clone());
    let b = CachedPool::with_cache(pool, other).with_database_name(name);
    for sql in [
        "CREATE TABLE fish (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO fish (name) VALUES ('cachalot'), ('orca')",
    ] {
        sqlx::query(sql).execute(&a).await.unwrap();
    }

    let runs = || LIST_RUNS.load(Ordering::SeqCst);
    let from_a = fish_from(&a, 1).await.unwrap();
    assert_eq!(from_a.len(), 2);
    // Another process sees an entry once its store has landed.
    a.settle().await;
    // The other process decodes the JSON value `a` stored.
    assert_eq!(fish_from(&b, 1).await.unwrap(), from_a);
    assert_eq!((runs(), b.stats().hits), (1, 1));

    let firsts = || FIRST_RUNS.load(Ordering::SeqCst);
    assert_eq!(
        first_fish(&b).await.map(|f| f.name).as_deref(),
        Some("cachalot")
    );
    b.settle().await;
    assert_eq!(
        first_fish(&a).await.map(|f| f.name).as_deref(),
        Some("cachalot")
    );
    assert_eq!(firsts(), 1);

    // A write through one invalidates both functions for the other.
    sqlx::query("DELETE FROM fish WHERE name = 'cachalot'")
        .execute(&b)
        .await
        .unwrap();
    let after = fish_from(&a, 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(runs(), 2);
    assert_eq!(
        first_fish(&a).await.map(|f| f.name).as_deref(),
        Some("orca")
    );
    a.settle().await;
    assert_eq!(
        first_fish(&b).await.map(|f| f.name).as_deref(),
        Some("orca")
    );
    assert_eq!(firsts(), 2);
    purge(&redis_url(), &prefix).await;
}
