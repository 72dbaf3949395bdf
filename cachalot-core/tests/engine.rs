//! The engine's behaviour beyond the races: expiry, capacity, control, de-duplication,
//! decisions and signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod double;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, SystemTime};

use cachalot_core::Cachalot;
use cachalot_core::backend::{CacheBackend, Entry, EntryValue, MemoryBackend, TableId, TokenState};
use cachalot_core::engine::{Decision, ReadSet, WriteGuard, WriteSet};
use cachalot_core::key::{KeyBuilder, QueryKey};
use cachalot_core::settings::CachalotBuilder;
use cachalot_core::sql::Dialect;
use cachalot_core::stats::BypassReason;
use tokio::sync::Notify;

use double::Double;

struct Fixture {
    cachalot: Cachalot,
    backend: MemoryBackend,
    db: Arc<str>,
    calls: AtomicUsize,
}

impl Fixture {
    fn new(builder: CachalotBuilder) -> Self {
        let backend = MemoryBackend::default();
        Fixture {
            cachalot: builder.backend(backend.clone()).build().unwrap(),
            backend,
            db: Arc::from("db"),
            calls: AtomicUsize::new(0),
        }
    }

    /// A fixture whose backend stores "remotely": misses answer before their store lands.
    fn remote() -> Self {
        Self::remote_with(Cachalot::builder())
    }

    /// [`remote`](Self::remote) with settings: overlapping writes share their locks, as with
    /// Redis.
    fn remote_with(builder: CachalotBuilder) -> Self {
        let backend = MemoryBackend::default();
        Fixture {
            cachalot: builder
                .backend(Double {
                    inner: backend.clone(),
                    remote: true,
                    ..Double::default()
                })
                .build()
                .unwrap(),
            backend,
            db: Arc::from("db"),
            calls: AtomicUsize::new(0),
        }
    }

    fn reads(&self, tables: &[&str]) -> ReadSet {
        ReadSet::new(&self.db, tables)
    }

    fn key(&self, sql: &str) -> QueryKey {
        self.cachalot.key(&self.db, sql).finish()
    }

    /// Reads `value` through the cache, counting the queries run.
    async fn read<T: Clone + Send + Sync + 'static>(
        &self,
        reads: &ReadSet,
        key: &QueryKey,
        value: T,
    ) -> T {
        self.cachalot
            .read(
                reads,
                key.clone(),
                |_| 8,
                || async {
                    self.calls.fetch_add(1, SeqCst);
                    Ok::<_, Infallible>(value)
                },
            )
            .await
            .unwrap()
    }

    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let f = Fixture::new(Cachalot::builder().ttl(Duration::from_millis(40)));
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    f.read(&reads, &key, 1_u64).await;
    f.read(&reads, &key, 1_u64).await;
    assert_eq!(f.calls(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(f.cachalot.cached::<u64>(&reads, &key).await, None);
    f.read(&reads, &key, 1_u64).await;
    assert_eq!(f.calls(), 2);
}

#[tokio::test]
async fn the_memory_backend_stays_within_its_byte_capacity() {
    const CAPACITY: u64 = 64 * 1024;
    let backend = MemoryBackend::new(CAPACITY);
    let db: Arc<str> = Arc::from("db");
    let tables = [TableId::new(&db, "t")];
    let tokens: Arc<[_]> = backend
        .init_tokens(&tables)
        .await
        .unwrap()
        .iter()
        .map(|s| s.token().unwrap())
        .collect();
    let mut stored = 0_u64;
    let mut i = 0_u64;
    while stored < 10 * CAPACITY {
        let key = KeyBuilder::new("p", "db", "SELECT $1").param(&i).finish();
        let entry = Entry {
            tokens: tokens.clone(),
            material: key.shared_material(),
            value: EntryValue::Local(Arc::new(vec![0_u8; 1024])),
            weight: 1024,
        };
        stored += entry.footprint() as u64;
        assert!(
            backend
                .store(&tables, &key, entry, Duration::from_secs(60))
                .await
                .unwrap()
        );
        i += 1;
    }
    backend.run_pending_tasks();
    assert!(
        backend.weighted_size() <= CAPACITY,
        "{} > {CAPACITY}",
        backend.weighted_size()
    );
    assert!(backend.entry_count() > 0);
}

#[tokio::test]
async fn a_disabled_cache_still_invalidates() {
    let f = Fixture::new(Cachalot::builder());
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    assert_eq!(f.read(&reads, &key, 1_u64).await, 1);
    f.cachalot.set_enabled(false);
    assert!(!f.cachalot.is_enabled());
    assert_eq!(f.read(&reads, &key, 2_u64).await, 2); // bypassed
    let g = f
        .cachalot
        .begin_write(&f.db, &WriteSet::tables(["t"]))
        .await;
    g.finish().await;
    f.cachalot.set_enabled(true);
    // The entry stored before disabling is not served after the write.
    assert_eq!(f.read(&reads, &key, 3_u64).await, 3);
    assert_eq!(f.read(&reads, &key, 4_u64).await, 3);
    let s = f.cachalot.stats();
    assert_eq!(s.bypasses.disabled, 1);
    assert_eq!((s.hits, s.misses), (1, 2));
}

#[tokio::test]
async fn concurrent_identical_misses_run_the_query_once() {
    let cachalot = Cachalot::builder().build().unwrap();
    let db: Arc<str> = Arc::from("db");
    let reads = ReadSet::new(&db, ["t"]);
    let key = cachalot.key(&db, "SELECT * FROM t").finish();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (cachalot, reads, key, calls) =
            (cachalot.clone(), reads.clone(), key.clone(), calls.clone());
        tasks.spawn(async move {
            cachalot
                .read(
                    &reads,
                    key,
                    |_| 8,
                    || async move {
                        calls.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, Infallible>(vec![7_u64])
                    },
                )
                .await
                .unwrap()
        });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap(), vec![7]);
    }
    assert_eq!(calls.load(SeqCst), 1);
    let s = cachalot.stats();
    assert_eq!((s.misses, s.coalesced, s.stores), (1, 15, 1));
}

#[tokio::test]
async fn a_failed_leader_is_not_cached_and_its_followers_run_their_own_query() {
    let cachalot = Cachalot::builder().build().unwrap();
    let db: Arc<str> = Arc::from("db");
    let reads = ReadSet::new(&db, ["t"]);
    let key = cachalot.key(&db, "SELECT * FROM t").finish();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (cachalot, reads, key, calls) =
            (cachalot.clone(), reads.clone(), key.clone(), calls.clone());
        tasks.spawn(async move {
            cachalot
                .read(
                    &reads,
                    key,
                    |_| 8,
                    || async move {
                        let n = calls.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if n == 0 { Err("boom") } else { Ok(n) }
                    },
                )
                .await
        });
    }
    let mut errors = 0;
    while let Some(result) = tasks.join_next().await {
        if result.unwrap().is_err() {
            errors += 1;
        }
    }
    assert_eq!(errors, 1);
    assert_eq!(calls.load(SeqCst), 4);
    // The error was not cached; one of the followers' results was.
    assert!(cachalot.cached::<usize>(&reads, &key).await.is_some());
}

#[tokio::test]
async fn followers_of_a_cancelled_leader_do_not_hang() {
    let cachalot = Cachalot::builder().build().unwrap();
    let db: Arc<str> = Arc::from("db");
    let reads = ReadSet::new(&db, ["t"]);
    let key = cachalot.key(&db, "SELECT * FROM t").finish();
    let started = Arc::new(Notify::new());
    let leader = {
        let (cachalot, reads, key, started) = (
            cachalot.clone(),
            reads.clone(),
            key.clone(),
            started.clone(),
        );
        tokio::spawn(async move {
            cachalot
                .read(
                    &reads,
                    key,
                    |_| 8,
                    || async move {
                        started.notify_one();
                        std::future::pending::<Result<u64, Infallible>>().await
                    },
                )
                .await
        })
    };
    started.notified().await;
    let follower = {
        let (cachalot, reads, key) = (cachalot.clone(), reads.clone(), key.clone());
        tokio::spawn(async move {
            cachalot
                .read(&reads, key, |_| 8, || async { Ok::<_, Infallible>(2_u64) })
                .await
        })
    };
    tokio::task::yield_now().await;
    leader.abort();
    let got = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower must not hang")
        .unwrap()
        .unwrap();
    assert_eq!(got, 2);
}

#[tokio::test]
async fn a_reader_with_newer_tokens_never_joins_an_older_flight() {
    let cachalot = Cachalot::builder().build().unwrap();
    let db: Arc<str> = Arc::from("db");
    let reads = ReadSet::new(&db, ["t"]);
    let key = cachalot.key(&db, "SELECT * FROM t").finish();
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let old = {
        let (cachalot, reads, key) = (cachalot.clone(), reads.clone(), key.clone());
        let (started, release) = (started.clone(), release.clone());
        tokio::spawn(async move {
            cachalot
                .read(
                    &reads,
                    key,
                    |_| 8,
                    || async move {
                        started.notify_one();
                        release.notified().await;
                        Ok::<_, Infallible>("old")
                    },
                )
                .await
                .unwrap()
        })
    };
    started.notified().await;
    cachalot.invalidate(&db, ["t"]).await;
    // Same key, newer tokens: runs its own query instead of waiting for the old one.
    let new = cachalot
        .read(
            &reads,
            key.clone(),
            |_| 8,
            || async { Ok::<_, Infallible>("new") },
        )
        .await
        .unwrap();
    assert_eq!(new, "new");
    release.notify_one();
    assert_eq!(old.await.unwrap(), "old");
    // The old flight's entry was stored with the old tokens: not served.
    assert_eq!(cachalot.cached::<&str>(&reads, &key).await, Some("new"));
}

#[tokio::test]
async fn another_type_under_the_same_key_is_a_miss() {
    let f = Fixture::new(Cachalot::builder());
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    assert_eq!(f.read(&reads, &key, 1_u64).await, 1);
    assert_eq!(f.read(&reads, &key, String::from("x")).await, "x");
    assert_eq!(f.calls(), 2);
    assert_eq!(f.cachalot.stats().backend_errors, 0);
}

#[tokio::test]
async fn a_hit_requires_the_exact_key_material() {
    let f = Fixture::new(Cachalot::builder());
    let reads = f.reads(&["t"]);
    let key = f.key("SELECT * FROM t WHERE a = 1");
    let other = f.key("SELECT * FROM t WHERE a = 2");
    f.read(&reads, &key, 1_u64).await;
    // Overwrite the entry under `key`'s hash with one stored for another query (what a hash
    // collision would do), with valid tokens.
    let tokens = f.backend.tokens(reads.ids()).await.unwrap();
    let entry = Entry {
        tokens: tokens.iter().map(|s| s.token().unwrap()).collect(),
        material: other.shared_material(),
        value: EntryValue::Local(Arc::new(2_u64)),
        weight: 8,
    };
    assert!(
        f.backend
            .store(reads.ids(), &key, entry, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(f.cachalot.cached::<u64>(&reads, &key).await, None);
    assert_eq!(f.read(&reads, &key, 1_u64).await, 1);
    assert_eq!(f.calls(), 2);
}

#[tokio::test]
async fn errors_and_large_results_are_not_cached() {
    let f = Fixture::new(Cachalot::builder().max_entry_bytes(100));
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    let err = f
        .cachalot
        .read(
            &reads,
            key.clone(),
            |_: &u64| 8,
            || async { Err::<u64, _>("boom") },
        )
        .await;
    assert_eq!(err, Err("boom"));
    assert_eq!(f.cachalot.cached::<u64>(&reads, &key).await, None);
    let big = f
        .cachalot
        .read(&reads, key.clone(), Vec::len, || async {
            Ok::<_, Infallible>(vec![0_u8; 101])
        })
        .await
        .unwrap();
    assert_eq!(big.len(), 101);
    assert_eq!(f.cachalot.cached::<Vec<u8>>(&reads, &key).await, None);
    let s = f.cachalot.stats();
    assert_eq!((s.misses, s.stores, s.bypasses.too_large), (2, 0, 1));
}

#[tokio::test]
async fn one_signal_per_table_per_finished_write() {
    let f = Fixture::new(Cachalot::builder());
    let mut rx = f.cachalot.subscribe();
    let g = f
        .cachalot
        .begin_write(&f.db, &WriteSet::tables(["a", "b", "a"]))
        .await;
    assert!(rx.try_recv().is_err(), "nothing before the write is final");
    g.finish().await;
    let mut tables = [rx.try_recv().unwrap(), rx.try_recv().unwrap()];
    assert!(rx.try_recv().is_err());
    tables.sort_by(|x, y| x.table.cmp(&y.table));
    assert_eq!(tables[0].table.as_deref(), Some("a"));
    assert_eq!(tables[1].table.as_deref(), Some("b"));
    assert_eq!(&*tables[0].database, "db");
    assert!(tables[0].time <= SystemTime::now());

    f.cachalot.invalidate_all(&f.db).await;
    let all = rx.try_recv().unwrap();
    assert_eq!(all.table, None);
    f.cachalot.invalidate(&f.db, ["c"]).await;
    assert_eq!(rx.try_recv().unwrap().table.as_deref(), Some("c"));
    // An empty write locks and signals nothing.
    f.cachalot
        .begin_write(&f.db, &WriteSet::new())
        .await
        .finish()
        .await;
    assert!(rx.try_recv().is_err());
    assert_eq!(f.cachalot.stats().invalidations, 4);
}

#[tokio::test]
async fn a_dropped_guard_keeps_its_lock_until_it_expires_then_bumps() {
    // Long enough that a loaded machine still reads twice before the lock expires.
    let ttl = Duration::from_secs(1);
    let f = Fixture::new(Cachalot::builder().lock_ttl(ttl));
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    f.read(&reads, &key, 1_u64).await;
    let guard = f
        .cachalot
        .begin_write(&f.db, &WriteSet::tables(["t"]))
        .await;
    // A cancelled write: the server may still be running the statement.
    drop(guard);
    // Until the lock expires, nothing of the table is served or stored.
    assert_eq!(f.read(&reads, &key, 2_u64).await, 2);
    assert_eq!(f.read(&reads, &key, 3_u64).await, 3);
    assert_eq!(f.cachalot.stats().bypasses.locked, 2);
    assert_eq!(f.cachalot.stats().invalidations, 0);
    tokio::time::sleep(ttl * 2 + ttl / 2).await;
    assert_eq!(
        f.cachalot.stats().invalidations,
        1,
        "bumped once the lock expired"
    );
    assert!(!f.cachalot.has_pending_invalidations());
    assert_eq!(f.read(&reads, &key, 4_u64).await, 4);
    assert_eq!(f.read(&reads, &key, 5_u64).await, 4);
}

#[tokio::test]
async fn a_guard_dropped_outside_a_runtime_is_bumped_only_once_its_lock_expires() {
    let ttl = Duration::from_secs(1);
    let f = Fixture::new(Cachalot::builder().lock_ttl(ttl));
    let mut rx = f.cachalot.subscribe();
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    f.read(&reads, &key, 1_u64).await;
    let guard = f
        .cachalot
        .begin_write(&f.db, &WriteSet::tables(["t"]))
        .await;
    // Dropped where no runtime can wait for the lock: the server may still commit the write.
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert!(f.cachalot.has_pending_invalidations());
    // Not cached by this process, and not bumped, until the lock has expired.
    assert_eq!(f.read(&reads, &key, 2_u64).await, 2);
    assert_eq!(f.cachalot.stats().bypasses.pending_invalidation, 1);
    assert!(!f.cachalot.retry_pending_invalidations().await);
    assert_eq!(f.read(&reads, &key, 3_u64).await, 3);
    assert_eq!(f.cachalot.stats().invalidations, 0);
    assert!(rx.try_recv().is_err(), "no signal before the bump");

    // The retries, started by the read, bump it once the lock has expired.
    tokio::time::sleep(ttl + ttl / 2).await;
    assert!(!f.cachalot.has_pending_invalidations());
    assert_eq!(f.cachalot.stats().invalidations, 1);
    assert_eq!(rx.try_recv().unwrap().table.as_deref(), Some("t"));
    assert_eq!(f.read(&reads, &key, 4_u64).await, 4);
    assert_eq!(f.read(&reads, &key, 5_u64).await, 4);
}

/// With a remote backend and a `lock_ttl` of `ttl`, a read of `t` cached, then two writes of
/// `t` in flight, the second sharing the first one's lock.
async fn two_writes_sharing_a_lock(
    ttl: Duration,
) -> (
    Fixture,
    ReadSet,
    QueryKey,
    [TableId; 1],
    WriteGuard,
    WriteGuard,
) {
    let f = Fixture::remote_with(Cachalot::builder().lock_ttl(ttl));
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    let table = [TableId::new(&f.db, "t")];
    f.read(&reads, &key, 1_u64).await;
    let writes = WriteSet::tables(["t"]);
    let first = f.cachalot.begin_write(&f.db, &writes).await;
    let second = f.cachalot.begin_write(&f.db, &writes).await;
    (f, reads, key, table, first, second)
}

/// `table` has a token again, and the next read is a miss whose result the one after hits.
async fn bumped_then_cached_again(f: &Fixture, reads: &ReadSet, key: &QueryKey, table: &[TableId]) {
    assert!(matches!(
        f.backend.tokens(table).await.unwrap()[0],
        TokenState::Present(_)
    ));
    assert_eq!(f.read(reads, key, 3_u64).await, 3);
    f.cachalot.settle().await;
    assert_eq!(f.read(reads, key, 4_u64).await, 3);
}

#[tokio::test]
async fn a_write_dropped_in_a_shared_lock_keeps_it_until_its_own_lock_would_expire() {
    let ttl = Duration::from_secs(1);
    let (f, reads, key, table, first, second) = two_writes_sharing_a_lock(ttl).await;
    drop(second);
    // The first one is the last to finish, but the dropped one may still commit: the table
    // stays locked for every process, not bumped.
    first.finish().await;
    assert_eq!(
        f.backend.tokens(&table).await.unwrap(),
        [TokenState::Locked]
    );
    assert_eq!(f.read(&reads, &key, 2_u64).await, 2);
    assert_eq!(f.cachalot.stats().invalidations, 1);
    tokio::time::sleep(ttl * 2 + ttl / 2).await;
    assert_eq!(
        f.cachalot.stats().invalidations,
        2,
        "bumped once it expired"
    );
    bumped_then_cached_again(&f, &reads, &key, &table).await;
}

#[tokio::test]
async fn a_write_dropped_outside_a_runtime_in_a_shared_lock_delays_its_bump() {
    let ttl = Duration::from_secs(1);
    let (f, reads, key, table, first, second) = two_writes_sharing_a_lock(ttl).await;
    std::thread::spawn(move || drop(second)).join().unwrap();
    // The last one to finish leaves the bump to the retries, once the dropped one's lock
    // would have expired.
    first.finish().await;
    assert!(f.cachalot.has_pending_invalidations());
    assert!(!f.cachalot.retry_pending_invalidations().await);
    assert_eq!(
        f.backend.tokens(&table).await.unwrap(),
        [TokenState::Locked]
    );
    assert_eq!(f.read(&reads, &key, 2_u64).await, 2);
    tokio::time::sleep(ttl + ttl / 2).await;
    assert!(!f.cachalot.has_pending_invalidations());
    bumped_then_cached_again(&f, &reads, &key, &table).await;
}

#[tokio::test]
async fn decisions() {
    let f = Fixture::new(
        Cachalot::builder()
            .only_tables(["users", "orders", "secrets"])
            .deny_tables(["Secrets"]),
    );
    let decide = |sql: &str| {
        let analysis = f.cachalot.analyze(Dialect::Sqlite, sql);
        f.cachalot.decide(&f.db, &analysis)
    };
    match decide("SELECT * FROM users JOIN orders ON orders.user_id = users.id") {
        Decision::Cache(reads) => {
            assert_eq!(reads.tables().collect::<Vec<_>>(), ["orders", "users"])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decide("SELECT * FROM secrets"),
        Decision::Bypass(BypassReason::TableNotAllowed)
    );
    assert_eq!(
        decide("SELECT * FROM other"),
        Decision::Bypass(BypassReason::TableNotAllowed)
    );
    assert_eq!(
        decide("UPDATE users SET a = 1"),
        Decision::Bypass(BypassReason::NotCacheable)
    );
    assert_eq!(
        decide("SELECT random() FROM users"),
        Decision::Bypass(BypassReason::NotCacheable)
    );
    // A temporary table shadows `users` from now on.
    assert_eq!(
        decide("CREATE TEMP TABLE users (id int)"),
        Decision::Bypass(BypassReason::NotCacheable)
    );
    assert_eq!(
        decide("SELECT * FROM users"),
        Decision::Bypass(BypassReason::TemporaryTable)
    );
    // `read` re-checks: a read set built without `decide` bypasses too.
    let reads = f.reads(&["users"]);
    f.read(&reads, &f.key("SELECT * FROM users"), 1_u64).await;
    f.read(&reads, &f.key("SELECT * FROM users"), 1_u64).await;
    assert_eq!(f.calls(), 2);
    assert_eq!(f.cachalot.stats().bypasses.temporary_table, 2);
    f.cachalot.set_enabled(false);
    assert_eq!(
        decide("SELECT * FROM orders"),
        Decision::Bypass(BypassReason::Disabled)
    );
}

#[tokio::test]
async fn read_analyzed_counts_its_bypasses() {
    let f = Fixture::new(Cachalot::builder());
    let analysis = f.cachalot.analyze(Dialect::Postgres, "SELECT now()");
    let key = f.key("SELECT now()");
    for _ in 0..2 {
        f.cachalot
            .read_analyzed(
                &f.db,
                &analysis,
                key.clone(),
                |_| 8,
                || async { Ok::<_, Infallible>(1_u8) },
            )
            .await
            .unwrap();
    }
    assert_eq!(f.cachalot.stats().bypasses.not_cacheable, 2);
}

#[tokio::test]
async fn views_and_cacheable_functions_reach_the_analyzer() {
    let f = Fixture::new(
        Cachalot::builder()
            .view("active_users", ["users", "logins"])
            .cacheable_functions(["My_Slug"]),
    );
    let a = f
        .cachalot
        .analyze(Dialect::Postgres, "SELECT my_slug(name) FROM active_users");
    assert!(a.is_cacheable(), "{a:?}");
    let names = a.read_names();
    assert!(
        names.contains(&"users") && names.contains(&"logins"),
        "{names:?}"
    );
}

#[tokio::test]
async fn last_invalidation_is_the_latest_token_time() {
    let f = Fixture::new(Cachalot::builder());
    assert_eq!(f.cachalot.last_invalidation(&f.db, ["t"]).await, None);
    let before = SystemTime::now() - Duration::from_millis(1);
    f.cachalot.invalidate(&f.db, ["t"]).await;
    let t = f
        .cachalot
        .last_invalidation(&f.db, ["t", "u"])
        .await
        .unwrap();
    assert!(t >= before && t <= SystemTime::now());
    tokio::time::sleep(Duration::from_millis(2)).await;
    f.cachalot.invalidate_all(&f.db).await;
    let all = f.cachalot.last_invalidation(&f.db, ["t"]).await.unwrap();
    assert!(all > t);
}

#[test]
fn the_read_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let cachalot = Cachalot::builder().build().unwrap();
    let db: Arc<str> = Arc::from("db");
    let reads = ReadSet::new(&db, ["t"]);
    let key = cachalot.key(&db, "SELECT 1").finish();
    let read = cachalot.read(
        &reads,
        key.clone(),
        |_| 8,
        || async { Ok::<_, Infallible>(1_u8) },
    );
    assert_send(&read);
    let all = WriteSet::all();
    let write = cachalot.begin_write(&db, &all);
    assert_send(&write);
    assert_send(&cachalot.invalidate(&db, ["t"]));
    assert_send(&cachalot.retry_pending_invalidations());
}

/// Writes `t` then reads it `n` times with a fresh parameter each time: misses only.
async fn churn(f: &Fixture, reads: &ReadSet, n: usize, write_between: bool) {
    for i in 0..n {
        if write_between {
            let guard = f
                .cachalot
                .begin_write(&f.db, &WriteSet::tables(["t"]))
                .await;
            guard.finish().await;
        }
        let key = f
            .cachalot
            .key(&f.db, "SELECT * FROM t WHERE id = $1")
            .param(&(i as i64))
            .finish();
        f.read(reads, &key, i).await;
    }
}

#[tokio::test]
async fn a_statement_invalidated_before_every_read_stops_asking_the_cache() {
    let f = Fixture::new(Cachalot::builder());
    let analysis = f
        .cachalot
        .analyze(Dialect::Postgres, "SELECT * FROM t WHERE id = $1");
    let Decision::Cache(reads) = f.cachalot.decide(&f.db, &analysis) else {
        panic!("cacheable");
    };
    // The read set is shared by every read of the statement, with how well it pays.
    let Decision::Cache(again) = f.cachalot.decide(&f.db, &analysis) else {
        panic!("cacheable");
    };
    assert_eq!(reads, again);

    // Misses of entries never stored do not count: a cold cache fills at full speed.
    churn(&f, &reads, 100, false).await;
    let stats = f.cachalot.stats();
    assert_eq!(
        (stats.misses, stats.stores, stats.bypasses.churn),
        (100, 100, 0)
    );

    // Every miss after a write to `t`: after 32, only one read in 16 asks the cache.
    churn(&f, &reads, 32 + 160, true).await;
    let stats = f.cachalot.stats();
    assert_eq!(stats.bypasses.churn, 150);
    assert_eq!(stats.misses, 100 + 32 + 10);
    assert_eq!(f.calls(), 100 + 32 + 160);

    // A probe that hits makes every read ask again.
    let key = f.key("SELECT * FROM t WHERE id = 1000");
    for _ in 0..32 {
        f.read(&reads, &key, 0_usize).await;
    }
    let before = f.cachalot.stats();
    f.read(&reads, &key, 0_usize).await;
    f.read(&reads, &key, 0_usize).await;
    let after = f.cachalot.stats();
    assert_eq!(after.hits - before.hits, 2);
    assert_eq!(after.bypasses.churn, before.bypasses.churn);
}

#[tokio::test]
async fn churning_reads_ask_the_cache_when_skipping_is_off() {
    let f = Fixture::new(Cachalot::builder().skip_churning_reads(false));
    let analysis = f
        .cachalot
        .analyze(Dialect::Postgres, "SELECT * FROM t WHERE id = $1");
    let Decision::Cache(reads) = f.cachalot.decide(&f.db, &analysis) else {
        panic!("cacheable");
    };
    churn(&f, &reads, 100, true).await;
    let stats = f.cachalot.stats();
    assert_eq!((stats.misses, stats.bypasses.churn), (100, 0));
}

#[tokio::test]
async fn a_read_after_a_miss_is_a_hit_before_the_store_lands() {
    let f = Fixture::remote();
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    assert_eq!(f.read(&reads, &key, 1_u64).await, 1);
    // On this single-threaded runtime the store has not run yet: the entry is not in the
    // backend, and still a read is served, from the miss that is storing it.
    assert!(
        f.backend
            .fetch(reads.ids(), &key)
            .await
            .unwrap()
            .entry
            .is_none()
    );
    assert_eq!(f.cachalot.stats().stores, 0);
    assert_eq!(f.read(&reads, &key, 2_u64).await, 1);
    assert_eq!(f.cachalot.cached::<u64>(&reads, &key).await, Some(1));
    f.cachalot.settle().await;
    let s = f.cachalot.stats();
    assert_eq!((s.misses, s.hits, s.stores), (1, 1, 1));
    assert_eq!(f.read(&reads, &key, 3_u64).await, 1);
    assert_eq!(f.calls(), 1);
}

#[tokio::test]
async fn a_write_before_the_store_lands_is_never_served_the_old_result() {
    let f = Fixture::remote();
    let (reads, key) = (f.reads(&["t"]), f.key("SELECT * FROM t"));
    assert_eq!(f.read(&reads, &key, 1_u64).await, 1);
    // The write finishes while the store is still on its way: the store is refused, and the
    // result it carries is never served again.
    let guard = f
        .cachalot
        .begin_write(&f.db, &WriteSet::tables(["t"]))
        .await;
    assert_eq!(f.read(&reads, &key, 2_u64).await, 2);
    guard.finish().await;
    assert_eq!(f.cachalot.cached::<u64>(&reads, &key).await, None);
    assert_eq!(f.read(&reads, &key, 3_u64).await, 3);
    f.cachalot.settle().await;
    assert_eq!(f.read(&reads, &key, 4_u64).await, 3);
    let s = f.cachalot.stats();
    assert_eq!(
        (s.misses, s.hits, s.stores, s.bypasses.locked),
        (2, 1, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_racing_the_store_of_a_miss_is_served_either_way() {
    // Each round: a miss, then from another task a read racing its store (the flight closes
    // as the entry lands). The second read must never run the query again.
    let f = Arc::new(Fixture::remote());
    let reads = f.reads(&["t"]);
    for round in 0..500_u64 {
        let key = f
            .cachalot
            .key(&f.db, "SELECT * FROM t WHERE id = $1")
            .param(&(round as i64))
            .finish();
        assert_eq!(f.read(&reads, &key, round).await, round);
        let (f2, reads2, key2) = (f.clone(), reads.clone(), key.clone());
        let again = tokio::spawn(async move { f2.read(&reads2, &key2, u64::MAX).await });
        assert_eq!(again.await.unwrap(), round);
    }
    assert_eq!(f.calls(), 500);
    f.cachalot.settle().await;
    assert_eq!(f.cachalot.stats().stores, 500);
}
