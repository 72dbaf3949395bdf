//! Round trips, counted by the server (`INFO commandstats` deltas of a private
//! `redis-server`, which nothing else talks to): a hit is exactly one command, a miss adds at
//! most one plus the store, a write's invalidation is two, whatever the number of tables.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use cachalot_core::Cachalot;
use cachalot_core::backend::{CacheBackend, RedisBackend, TableId, TokenState};
use cachalot_core::engine::{Codec, ReadOptions, ReadSet, WriteSet};

use redis_support::{PrivateRedis, commandstats, delta};

/// What the counting itself sends (`INFO`, and its connection's handshake).
const COUNTING: &[&str] = &["info", "hello", "client|setinfo", "client|setname", "ping"];

/// What the scripts call inside Redis (`commandstats` counts those too; they cost no round
/// trip).
const INSIDE: &[&str] = &[
    "time",
    "get",
    "set",
    "zcount",
    "zcard",
    "zremrangebyscore",
    "zadd",
    "zrange",
    "zrem",
    "del",
    "pexpireat",
];

fn map(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// The commands clients sent between two snapshots.
fn round_trips(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
) -> HashMap<String, u64> {
    delta(before, after, &[COUNTING, INSIDE].concat())
}

/// What the scripts called inside Redis between two snapshots.
fn inside_scripts(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
) -> HashMap<String, u64> {
    delta(before, after, &[COUNTING, &["evalsha"]].concat())
}

/// A private server nothing else talks to, a backend on it and a cache on that backend
/// (`None`, skipped, without a `redis-server`).
async fn private() -> Option<(PrivateRedis, String, RedisBackend, Cachalot)> {
    let server = PrivateRedis::start(&[]).await?;
    let url = server.url();
    let backend = RedisBackend::connect(&url).await.unwrap();
    let cachalot = Cachalot::builder()
        .backend(backend.clone())
        .build()
        .unwrap();
    Some((server, url, backend, cachalot))
}

#[tokio::test]
async fn a_hit_is_one_round_trip_and_a_write_two() {
    let Some((_server, url, _, cachalot)) = private().await else {
        return;
    };
    let db: Arc<str> = Arc::from("app");
    let reads = ReadSet::new(&db, ["orders", "users"]);
    let key = cachalot
        .key(
            &db,
            "SELECT * FROM users JOIN orders ON orders.user_id = users.id",
        )
        .finish();
    let read = || {
        cachalot.read_with(
            &reads,
            key.clone(),
            ReadOptions::new().codec(Codec::json()),
            |_| 64,
            || async { Ok::<_, Infallible>(vec![(1_i64, String::from("Ada"))]) },
        )
    };

    // First read of these tables: fetch, set the missing tokens, store.
    let before = commandstats(&url).await;
    read().await.unwrap();
    // The store goes on after the read returns.
    cachalot.settle().await;
    let first = round_trips(&before, &commandstats(&url).await);
    assert_eq!(first, map(&[("evalsha", 3)]), "first miss");

    // A hit: one EVALSHA, nothing else. Inside it, three tokens (the epoch and two tables)
    // and the entry: present tokens prove the tables unlocked, so no clock and no lock check.
    for _ in 0..10 {
        let before = commandstats(&url).await;
        read().await.unwrap();
        let after = commandstats(&url).await;
        assert_eq!(round_trips(&before, &after), map(&[("evalsha", 1)]), "hit");
        assert_eq!(
            inside_scripts(&before, &after),
            map(&[("get", 4)]),
            "a hit's script"
        );
    }

    // A write of three tables: lock + bump, two EVALSHA.
    let before = commandstats(&url).await;
    let guard = cachalot
        .begin_write(&db, &WriteSet::tables(["orders", "users", "audit"]))
        .await;
    guard.finish().await;
    let write = round_trips(&before, &commandstats(&url).await);
    assert_eq!(write, map(&[("evalsha", 2)]), "write");

    // A miss on present tokens: fetch + store.
    let before = commandstats(&url).await;
    read().await.unwrap();
    cachalot.settle().await;
    let miss = round_trips(&before, &commandstats(&url).await);
    assert_eq!(miss, map(&[("evalsha", 2)]), "miss");
    assert_eq!(cachalot.stats().hits, 10);
    assert_eq!(cachalot.stats().misses, 2);

    // Redis forgot its scripts (SCRIPT FLUSH, a restart): EVALSHA falls back by itself.
    let mut c = redis_support::raw(&url).await;
    let _: () = deadpool_redis::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .unwrap();
    read().await.unwrap();
    assert_eq!(cachalot.stats().hits, 11);
    assert_eq!(cachalot.stats().backend_errors, 0);
}

#[tokio::test]
async fn overlapping_writes_of_one_process_share_one_lock_and_one_bump() {
    let Some((_server, url, backend, cachalot)) = private().await else {
        return;
    };
    let db: Arc<str> = Arc::from("app");
    let orders = [TableId::new(&db, "orders")];
    let locked = || async { backend.tokens(&orders).await.unwrap() };

    // The second write joins the first one's lock: one round trip for both.
    let before = commandstats(&url).await;
    let first = cachalot
        .begin_write(&db, &WriteSet::tables(["orders"]))
        .await;
    let second = cachalot
        .begin_write(&db, &WriteSet::tables(["orders"]))
        .await;
    // The first to finish leaves the table locked for the second: no round trip.
    first.finish().await;
    let trips = round_trips(&before, &commandstats(&url).await);
    assert_eq!(trips, map(&[("evalsha", 1)]), "two locks");
    assert_eq!(locked().await, [TokenState::Locked]);

    // A write of `orders` and `users` joins for `orders` and locks `users` alone.
    let before = commandstats(&url).await;
    let third = cachalot
        .begin_write(&db, &WriteSet::tables(["orders", "users"]))
        .await;
    assert_eq!(third.tables().len(), 2);
    second.finish().await;
    let trips = round_trips(&before, &commandstats(&url).await);
    assert_eq!(trips, map(&[("evalsha", 1)]), "a lock of `users`");
    assert_eq!(locked().await, [TokenState::Locked]);

    // The last one bumps both leases: two round trips, then both tables have a token.
    let before = commandstats(&url).await;
    third.finish().await;
    let trips = round_trips(&before, &commandstats(&url).await);
    assert_eq!(trips, map(&[("evalsha", 2)]), "the bumps");
    let tables = [TableId::new(&db, "orders"), TableId::new(&db, "users")];
    let states = backend.tokens(&tables).await.unwrap();
    assert!(
        states.iter().all(|s| matches!(s, TokenState::Present(_))),
        "{states:?}"
    );
    assert_eq!(cachalot.stats().invalidations, 4);
}

#[tokio::test]
async fn a_miss_does_not_store_what_a_write_of_this_process_has_locked_since() {
    let Some((_server, url, _, cachalot)) = private().await else {
        return;
    };
    let db: Arc<str> = Arc::from("app");
    let reads = ReadSet::new(&db, ["orders"]);
    let key = cachalot.key(&db, "SELECT * FROM orders").finish();
    let options = || ReadOptions::new().codec(Codec::json());
    let run = || async { Ok::<_, Infallible>(vec![1_i64]) };
    cachalot
        .read_with(&reads, key.clone(), options(), |_| 8, run)
        .await
        .unwrap();
    cachalot.settle().await;
    cachalot.invalidate(&db, ["orders"]).await;

    // The query runs, then a write of this process locks the table before the store: the
    // store would be refused, so it is not sent.
    let before = commandstats(&url).await;
    let mut guard = None;
    let read = cachalot.read_with(
        &reads,
        key.clone(),
        options(),
        |_| 8,
        || async {
            guard = Some(
                cachalot
                    .begin_write(&db, &WriteSet::tables(["orders"]))
                    .await,
            );
            Ok::<_, Infallible>(vec![2_i64])
        },
    );
    assert_eq!(read.await.unwrap(), vec![2]);
    cachalot.settle().await;
    let trips = round_trips(&before, &commandstats(&url).await);
    assert_eq!(
        trips,
        map(&[("evalsha", 2)]),
        "the fetch and the lock, no store"
    );
    guard.unwrap().finish().await;
    assert_eq!(cachalot.stats().stores, 1);
}
