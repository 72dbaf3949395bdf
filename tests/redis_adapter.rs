//! The SQLx adapter on the Redis backend: rows cached as JSON, invalidated by writes and
//! commits, entries of an older row type or corrupt bytes read as misses and overwritten,
//! oversized results not stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../cachalot-core/tests/redis_support/mod.rs"]
mod redis_support;

use cachalot::{Cachalot, CachedPool};
use cachalot_core::backend::RedisBackend;
use deadpool_redis::redis;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqlitePoolOptions;

use redis_support::{keys, purge, raw, redis_url, unavailable, unique};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize, Deserialize)]
struct Fish {
    id: i64,
    name: String,
}

struct Setup {
    db: CachedPool<sqlx::Sqlite>,
    prefix: String,
}

async fn setup(max_entry_bytes: usize) -> Option<Setup> {
    let prefix = unique("adapter");
    let backend = match RedisBackend::builder(redis_url())
        .key_prefix(&prefix)
        .max_entry_bytes(max_entry_bytes)
        .build()
        .await
    {
        Ok(b) => b,
        Err(e) => return unavailable("Redis", e),
    };
    let cache = Cachalot::builder().backend(backend).build().unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    // A database name of its own: entries of other runs can never match.
    let db = CachedPool::with_cache(pool, cache).with_database_name(unique("sqlite"));
    for sql in [
        "CREATE TABLE fish (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO fish (name) VALUES ('cachalot'), ('orca')",
    ] {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    Some(Setup { db, prefix })
}

async fn all_fish(db: &CachedPool<sqlx::Sqlite>) -> Vec<Fish> {
    db.query_as::<Fish>("SELECT id, name FROM fish ORDER BY id")
        .fetch_all()
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_are_cached_in_redis_and_invalidated_by_writes() {
    let Some(Setup { db, prefix }) = setup(1 << 20).await else {
        return;
    };
    let first = all_fish(&db).await;
    assert_eq!(first.len(), 2);
    assert_eq!(all_fish(&db).await, first);
    assert_eq!((db.stats().hits, db.stats().misses), (1, 1));
    let count = || {
        db.query_scalar::<i64>("SELECT count(*) FROM fish")
            .fetch_one()
    };
    assert_eq!(count().await.unwrap(), 2);
    assert_eq!(count().await.unwrap(), 2);
    let one = db
        .query_as::<Fish>("SELECT id, name FROM fish WHERE id = ?")
        .bind(2_i64)
        .fetch_optional()
        .await
        .unwrap();
    assert_eq!(one.unwrap().name, "orca");
    assert_eq!(db.stats().hits, 2);

    sqlx::query("INSERT INTO fish (name) VALUES ('narwhal')")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(all_fish(&db).await.len(), 3);
    assert_eq!(count().await.unwrap(), 3);

    // A transaction's commit invalidates.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("DELETE FROM fish WHERE name = 'orca'")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(all_fish(&db).await.len(), 2);
    assert_eq!(count().await.unwrap(), 2);
    assert_eq!(all_fish(&db).await.len(), 2);
    let stats = db.stats();
    assert_eq!(stats.backend_errors, 0, "{stats:?}");
    assert!(stats.hits >= 3, "{stats:?}");
    purge(&redis_url(), &prefix).await;
}

/// Replaces the value bytes of every entry under `prefix` with `value`, keeping the header
/// (format, tokens, key material): what a deployment with another row type would have left.
async fn rewrite_values(prefix: &str, value: &[u8]) -> usize {
    let mut c = raw(&redis_url()).await;
    let mut n = 0;
    for key in keys(&redis_url(), prefix).await {
        if !key.contains(":e:") {
            continue;
        }
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        let tokens = usize::from(u16::from_be_bytes([bytes[1], bytes[2]]));
        let at = 3 + 16 * tokens;
        let material = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let mut rewritten = bytes[..at + 4 + material].to_vec();
        rewritten.extend_from_slice(value);
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(rewritten)
            .arg("KEEPTTL")
            .query_async(&mut c)
            .await
            .unwrap();
        n += 1;
    }
    n
}

#[tokio::test]
async fn an_older_row_type_or_corrupt_value_is_a_miss_then_overwritten() {
    let Some(Setup { db, prefix }) = setup(1 << 20).await else {
        return;
    };
    let expected = all_fish(&db).await;
    assert_eq!(all_fish(&db).await, expected);
    let hits = db.stats().hits;

    // An older `Fish` had other fields.
    assert_eq!(
        rewrite_values(&prefix, br#"[{"id":1,"label":"old"}]"#).await,
        1
    );
    assert_eq!(
        all_fish(&db).await,
        expected,
        "never an error, never the old shape"
    );
    assert_eq!(db.stats().hits, hits, "a miss");
    assert_eq!(all_fish(&db).await, expected);
    assert_eq!(db.stats().hits, hits + 1, "overwritten by the miss's store");

    // Plain garbage.
    assert_eq!(rewrite_values(&prefix, b"\xff\x00not json").await, 1);
    assert_eq!(all_fish(&db).await, expected);
    assert_eq!(all_fish(&db).await, expected);
    assert_eq!(db.stats().hits, hits + 2);
    assert_eq!(db.stats().backend_errors, 0);
    purge(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn oversized_results_are_returned_but_not_stored() {
    let Some(Setup { db, prefix }) = setup(2048).await else {
        return;
    };
    let mut tx = db.begin().await.unwrap();
    for i in 0..200 {
        sqlx::query("INSERT INTO fish (name) VALUES (?)")
            .bind(format!("fish number {i}"))
            .execute(&mut tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(all_fish(&db).await.len(), 202);
    // Refused by Redis: once that is known, every read runs the query.
    db.settle().await;
    assert_eq!(all_fish(&db).await.len(), 202);
    assert_eq!(db.stats().hits, 0, "too large for Redis: not cached");
    assert!(
        !keys(&redis_url(), &prefix)
            .await
            .iter()
            .any(|k| k.contains(":e:"))
    );
    // A small result of the same table is cached.
    let count = || {
        db.query_scalar::<i64>("SELECT count(*) FROM fish")
            .fetch_one()
    };
    assert_eq!(count().await.unwrap(), 202);
    assert_eq!(count().await.unwrap(), 202);
    assert_eq!(db.stats().hits, 1);
    purge(&redis_url(), &prefix).await;
}
