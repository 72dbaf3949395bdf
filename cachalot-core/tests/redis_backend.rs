//! The Redis backend itself: connecting (URLs, credentials, errors), what lands in Redis
//! (keys, TTLs, lock expiry), corrupt and foreign bytes, sizes, restarts.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cachalot_core::Cachalot;
use cachalot_core::backend::{
    CacheBackend, LockId, RedisBackend, RedisConnectError, TableId, TokenState,
};
use cachalot_core::engine::{Codec, ReadOptions, ReadSet};
use cachalot_core::key::QueryKey;
use deadpool_redis::redis;

use redis_support::{PrivateRedis, free_port, keys, purge, raw, redis_url, shared_backend, unique};

/// A cache on `backend`, reading `SELECT v FROM t` of a database of its own.
struct Reader {
    cachalot: Cachalot,
    db: Arc<str>,
    reads: ReadSet,
    key: QueryKey,
    runs: AtomicUsize,
}

impl Reader {
    fn new(backend: RedisBackend) -> Self {
        let cachalot = Cachalot::builder().backend(backend).build().unwrap();
        let db: Arc<str> = Arc::from(unique("db"));
        Reader {
            reads: ReadSet::new(&db, ["t"]),
            key: cachalot.key(&db, "SELECT v FROM t").finish(),
            cachalot,
            db,
            runs: AtomicUsize::new(0),
        }
    }

    /// Reads `value` with `codec`; returns what came back and whether the query ran.
    async fn read_as<T>(&self, value: T, codec: Codec<T>) -> (T, bool)
    where
        T: Clone + Send + Sync + 'static,
    {
        let before = self.runs.load(SeqCst);
        let v = self
            .cachalot
            .read_with(
                &self.reads,
                self.key.clone(),
                ReadOptions::new().codec(codec),
                |_| 8,
                || async {
                    self.runs.fetch_add(1, SeqCst);
                    Ok::<_, Infallible>(value)
                },
            )
            .await
            .unwrap();
        (v, self.runs.load(SeqCst) > before)
    }

    async fn read(&self, value: u64) -> (u64, bool) {
        self.read_as(value, Codec::json()).await
    }
}

#[tokio::test]
async fn reads_hit_and_writes_invalidate() {
    let Some(backend) = shared_backend("basic").await else {
        return;
    };
    assert!(backend.encodes_values());
    let r = Reader::new(backend.clone());
    assert_eq!(r.read(1).await, (1, true));
    assert_eq!(r.read(2).await, (1, false));
    r.cachalot.invalidate(&r.db, ["t"]).await;
    assert_eq!(r.read(3).await, (3, true));
    assert_eq!(r.read(4).await, (3, false));
    // Another table of the same database does not invalidate it.
    r.cachalot.invalidate(&r.db, ["u"]).await;
    assert_eq!(r.read(5).await, (3, false));
    let stats = r.cachalot.stats();
    assert_eq!((stats.hits, stats.misses, stats.stores), (3, 2, 2));
    assert_eq!(stats.backend_errors, 0);
    // Without a codec nothing can be kept in Redis: every read runs.
    let plain = || async { Ok::<_, Infallible>(9_u64) };
    let key = r.cachalot.key(&r.db, "SELECT w FROM t").finish();
    r.cachalot
        .read(&r.reads, key.clone(), |_| 8, plain)
        .await
        .unwrap();
    r.cachalot.read(&r.reads, key, |_| 8, plain).await.unwrap();
    assert_eq!(r.cachalot.stats().misses, 4);
    purge(&redis_url(), backend.key_prefix()).await;
}

#[tokio::test]
async fn keys_share_one_hash_tag_and_carry_ttls() {
    let Some(backend) = shared_backend("layout").await else {
        return;
    };
    let prefix = backend.key_prefix().to_owned();
    let cachalot = Cachalot::builder()
        .backend(backend.clone())
        .lock_ttl(Duration::from_secs(7))
        .build()
        .unwrap();
    let db: Arc<str> = Arc::from(unique("db"));
    let reads = ReadSet::new(&db, ["a", "b"]);
    let key = cachalot.key(&db, "SELECT * FROM a, b").finish();
    cachalot
        .read_with(
            &reads,
            key,
            ReadOptions::new()
                .codec(Codec::json())
                .ttl(Duration::from_secs(30)),
            |_| 8,
            || async { Ok::<_, Infallible>(vec![1_i32, 2]) },
        )
        .await
        .unwrap();
    cachalot.settle().await;
    let all = keys(&redis_url(), &prefix).await;
    assert_eq!(all.len(), 4, "{all:?}"); // epoch, a, b, the entry
    let tag = |k: &str| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
    assert!(all.iter().all(|k| tag(k) == tag(&all[0])), "{all:?}");
    assert!(all.iter().any(|k| k.ends_with(":t:")), "the epoch: {all:?}");
    assert!(all.iter().any(|k| k.ends_with(":t:a")));
    let entry = all.iter().find(|k| k.contains(":e:")).unwrap();
    let mut c = raw(&redis_url()).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(entry)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 25_000 && pttl <= 30_000, "{pttl}");
    let token = all.iter().find(|k| k.contains(":t:")).unwrap();
    let token_ttl: i64 = redis::cmd("PTTL")
        .arg(token)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(token_ttl, -1, "tokens do not expire");

    // A lock removes the token and expires with its deadline: `lock_ttl`, and the eighth of it
    // during which overlapping writes of this process may share it.
    let guard = cachalot
        .begin_write(&db, &cachalot_core::engine::WriteSet::tables(["a"]))
        .await;
    let all = keys(&redis_url(), &prefix).await;
    assert!(!all.iter().any(|k| k.ends_with(":t:a")), "{all:?}");
    let lock = all.iter().find(|k| k.ends_with(":l:a")).unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(lock)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 6_875 && pttl <= 7_875, "{pttl}");
    guard.finish().await;
    let all = keys(&redis_url(), &prefix).await;
    assert!(all.iter().any(|k| k.ends_with(":t:a")));
    assert!(!all.iter().any(|k| k.contains(":l:")), "{all:?}");
    purge(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn a_dead_writer_leaves_no_lock_behind() {
    let Some(backend) = shared_backend("deadlock").await else {
        return;
    };
    let db: Arc<str> = Arc::from(unique("db"));
    let t = [TableId::new(&db, "t")];
    backend
        .lock(&t, LockId::fresh(), Duration::from_millis(50))
        .await
        .unwrap();
    backend
        .lock(&t, LockId::fresh(), Duration::from_millis(120))
        .await
        .unwrap();
    assert_eq!(backend.tokens(&t).await.unwrap(), [TokenState::Locked]);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(backend.tokens(&t).await.unwrap(), [TokenState::Locked]);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(backend.tokens(&t).await.unwrap(), [TokenState::Missing]);
    assert!(keys(&redis_url(), backend.key_prefix()).await.is_empty());
    purge(&redis_url(), backend.key_prefix()).await;
}

#[tokio::test]
async fn tables_of_several_databases_in_one_call() {
    let Some(backend) = shared_backend("multidb").await else {
        return;
    };
    let (d1, d2): (Arc<str>, Arc<str>) = (Arc::from(unique("db")), Arc::from(unique("db")));
    let tables = [
        TableId::new(&d1, "a"),
        TableId::new(&d2, "a"),
        TableId::epoch(&d1),
        TableId::new(&d2, "b"),
    ];
    let states = backend.init_tokens(&tables).await.unwrap();
    assert_eq!(states, backend.tokens(&tables).await.unwrap());
    let lock = LockId::fresh();
    backend
        .lock(&tables[1..3], lock, Duration::from_secs(5))
        .await
        .unwrap();
    let locked = backend.tokens(&tables).await.unwrap();
    assert_eq!(locked[0], states[0]);
    assert_eq!(locked[1], TokenState::Locked);
    assert_eq!(locked[2], TokenState::Locked);
    assert_eq!(locked[3], states[3]);
    let fresh = backend.bump(&tables[1..3], Some(lock)).await.unwrap();
    let after = backend.tokens(&tables).await.unwrap();
    assert_eq!(after[1], TokenState::Present(fresh[0]));
    assert_eq!(after[2], TokenState::Present(fresh[1]));
    assert!(backend.bump(&[], None).await.unwrap().is_empty());
    purge(&redis_url(), backend.key_prefix()).await;
}

#[tokio::test]
async fn corrupt_or_foreign_bytes_are_a_miss_then_overwritten() {
    let Some(backend) = shared_backend("corrupt").await else {
        return;
    };
    let prefix = backend.key_prefix().to_owned();
    let r = Reader::new(backend.clone());
    assert_eq!(r.read(1).await, (1, true));
    assert_eq!(r.read(2).await, (1, false));
    // What follows rewrites the stored entry: it must be there.
    r.cachalot.settle().await;
    let entry_key = keys(&redis_url(), &prefix)
        .await
        .into_iter()
        .find(|k| k.contains(":e:"))
        .unwrap();
    let mut c = raw(&redis_url()).await;

    // Garbage: a miss, not an error, and the next store replaces it.
    for garbage in [&b"garbage"[..], b"", &[0xC1, 0, 2, 1, 2, 3][..]] {
        let _: () = redis::cmd("SET")
            .arg(&entry_key)
            .arg(garbage)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(r.read(3).await, (3, true));
        assert_eq!(r.read(4).await, (3, false));
        r.cachalot.invalidate(&r.db, ["t"]).await;
        assert_eq!(r.read(1).await, (1, true));
        r.cachalot.settle().await;
    }
    // A valid entry whose header is intact but whose material is cut short.
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&entry_key)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&entry_key)
        .arg(&stored[..stored.len().min(3 + 32 + 4 + 3)])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r.read(5).await, (5, true));
    assert_eq!(r.read(6).await, (5, false));

    // Bytes written by an older row type: the codec fails to decode them, a miss. Settled
    // first: while the store of `5` is on its way, its flight holds a `u64`, and a `String`
    // read beside it publishes nothing, so the read after it could miss too.
    r.cachalot.settle().await;
    let (v, ran) = r.read_as(String::from("now a string"), Codec::json()).await;
    assert_eq!((v.as_str(), ran), ("now a string", true));
    let (v, ran) = r.read_as(String::from("other"), Codec::json()).await;
    assert_eq!((v.as_str(), ran), ("now a string", false));
    r.cachalot.settle().await;
    assert_eq!(r.cachalot.stats().backend_errors, 0);

    // A corrupt token: read as missing, and replaced by the next read.
    let token_key = keys(&redis_url(), &prefix)
        .await
        .into_iter()
        .find(|k| k.ends_with(":t:t"))
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&token_key)
        .arg("short")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r.read(7).await, (7, true));
    assert_eq!(r.read(8).await, (7, false));
    assert_eq!(r.cachalot.stats().backend_errors, 0);
    purge(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn oversized_values_are_not_stored() {
    let Ok(backend) = RedisBackend::builder(redis_url())
        .key_prefix(unique("big"))
        .max_entry_bytes(512)
        .build()
        .await
    else {
        let _ = redis_support::unavailable::<()>("Redis", "no connection");
        return;
    };
    let prefix = backend.key_prefix().to_owned();
    let r = Reader::new(backend.clone());
    let big = "x".repeat(1000);
    let (_, ran) = r.read_as(big.clone(), Codec::json()).await;
    assert!(ran);
    // Refused by the backend: once that is known, the next read runs again.
    r.cachalot.settle().await;
    let (_, ran) = r.read_as(big.clone(), Codec::json()).await;
    assert!(ran, "a value over max_entry_bytes must not be cached");
    assert!(
        !keys(&redis_url(), &prefix)
            .await
            .iter()
            .any(|k| k.contains(":e:")),
        "no entry stored"
    );
    // A small one is.
    let small = Reader {
        key: r.cachalot.key(&r.db, "SELECT small FROM t").finish(),
        ..Reader::new(backend.clone())
    };
    assert_eq!(small.read(1).await, (1, true));
    assert_eq!(small.read(2).await, (1, false));
    purge(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn clear_removes_entries_and_keeps_table_states() {
    let Some(backend) = shared_backend("clear").await else {
        return;
    };
    let prefix = backend.key_prefix().to_owned();
    let r = Reader::new(backend.clone());
    assert_eq!(r.read(1).await, (1, true));
    let before = backend.tokens(r.reads.ids()).await.unwrap();
    backend.clear().await.unwrap();
    assert!(
        !keys(&redis_url(), &prefix)
            .await
            .iter()
            .any(|k| k.contains(":e:"))
    );
    assert_eq!(backend.tokens(r.reads.ids()).await.unwrap(), before);
    assert_eq!(r.read(2).await, (2, true));
    assert_eq!(r.read(3).await, (2, false));
    purge(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn bad_urls_and_settings_fail_at_build_time() {
    let err = RedisBackend::connect("http://127.0.0.1:6379")
        .await
        .unwrap_err();
    assert!(matches!(err, RedisConnectError::InvalidUrl { .. }), "{err}");
    let err = RedisBackend::connect("redis://:hunter2@[::1")
        .await
        .unwrap_err();
    assert!(matches!(err, RedisConnectError::InvalidUrl { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // TLS needs the `redis-tls` feature.
    #[cfg(not(feature = "redis-tls"))]
    {
        let err = RedisBackend::connect("rediss://user:hunter2@127.0.0.1:6380/0")
            .await
            .unwrap_err();
        assert!(matches!(err, RedisConnectError::InvalidUrl { .. }), "{err}");
        assert!(err.to_string().contains("TLS"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    // Nobody listens there.
    let port = free_port();
    let started = std::time::Instant::now();
    let err = RedisBackend::builder(format!("redis://:hunter2@127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, RedisConnectError::Connect { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    for (builder, setting) in [
        (
            RedisBackend::builder(redis_url()).key_prefix(""),
            "key_prefix",
        ),
        (
            RedisBackend::builder(redis_url()).key_prefix("a{b}"),
            "key_prefix",
        ),
        (
            RedisBackend::builder(redis_url()).max_connections(0),
            "max_connections",
        ),
        (
            RedisBackend::builder(redis_url()).command_timeout(Duration::ZERO),
            "command_timeout",
        ),
    ] {
        match builder.build().await.unwrap_err() {
            RedisConnectError::InvalidSetting { setting: s, .. } => assert_eq!(s, setting),
            other => panic!("{other}"),
        }
    }
    let err = RedisBackend::cluster(Vec::<String>::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RedisConnectError::InvalidUrl { .. }), "{err}");
}

#[tokio::test]
async fn passwords_and_acl_users() {
    let Some(server) = PrivateRedis::start(&["--requirepass", "s3cret"]).await else {
        return;
    };
    let port = server.port;
    let ok = RedisBackend::connect(format!("redis://:s3cret@127.0.0.1:{port}")).await;
    let ok = ok.unwrap();
    assert!(!format!("{ok:?}").contains("s3cret"), "{ok:?}");
    let err = RedisBackend::connect(format!("redis://:wrong@127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, RedisConnectError::Auth { .. }), "{err}");
    assert!(!err.to_string().contains("wrong@"), "{err}");
    let err = RedisBackend::connect(format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RedisConnectError::Auth { .. } | RedisConnectError::Connect { .. }
        ),
        "{err}"
    );

    // An ACL user limited to its keys and the commands the backend uses.
    let mut admin = raw(&format!("redis://:s3cret@127.0.0.1:{port}")).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">app-pass")
        .arg("~app:*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .unwrap();
    let backend = RedisBackend::builder(format!("redis://app:app-pass@127.0.0.1:{port}/0"))
        .key_prefix("app")
        .build()
        .await
        .unwrap();
    let r = Reader::new(backend);
    assert_eq!(r.read(1).await, (1, true));
    assert_eq!(r.read(2).await, (1, false));
    let err = RedisBackend::connect(format!("redis://app:nope@127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, RedisConnectError::Auth { .. }), "{err}");
    // Keys outside its pattern are refused by Redis: an error, never a wrong answer.
    let outside = RedisBackend::builder(format!("redis://app:app-pass@127.0.0.1:{port}"))
        .key_prefix("other")
        .build()
        .await
        .unwrap();
    let r = Reader::new(outside);
    assert_eq!(r.read(1).await, (1, true));
    assert_eq!(r.read(2).await, (2, true));
    assert!(r.cachalot.stats().backend_errors > 0);
}

#[tokio::test]
async fn a_restart_empties_redis_and_only_causes_misses() {
    let Some(mut server) = PrivateRedis::start(&[]).await else {
        return;
    };
    let backend = RedisBackend::builder(server.url())
        .failure_cooldown(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let r = Reader::new(backend);
    assert_eq!(r.read(1).await, (1, true));
    assert_eq!(r.read(2).await, (1, false));
    server.restart().await;
    // The connections are broken: the first read runs on the database and every connection
    // to the old server is thrown away.
    assert_eq!(r.read(3).await, (3, true));
    // Redis is empty: the scripts load again by themselves, the tokens are missing, nothing
    // stale can come back.
    assert_eq!(r.read(4).await, (4, true));
    assert_eq!(r.read(5).await, (4, false));
    assert_eq!(r.cachalot.stats().backend_errors, 1);
}
