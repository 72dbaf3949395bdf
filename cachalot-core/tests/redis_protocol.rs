//! The protocol tests of `protocol.rs`, generic over the backend: each scenario runs on the
//! memory backend (the reference) and on Redis (the machine's, under a fresh key prefix), with
//! the same assertions. Values go through the JSON codec, as Redis stores bytes.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cachalot_core::Cachalot;
use cachalot_core::backend::{
    CacheBackend, Entry, EntryValue, LockId, MemoryBackend, RedisBackend, TableId, TokenState,
};
use cachalot_core::engine::{Codec, ReadOptions, ReadSet, WriteGuard, WriteSet};
use cachalot_core::key::{KeyBuilder, QueryKey};
use cachalot_core::settings::CachalotBuilder;
use cachalot_core::version::Token;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use redis_support::{purge, redis_url, shared_backend, unique};

/// A backend the scenarios run on.
trait TestBackend: CacheBackend + Clone {
    /// Forgets a table's token, as an eviction or a restart would.
    async fn forget(&self, table: &TableId);
}

impl TestBackend for MemoryBackend {
    async fn forget(&self, table: &TableId) {
        self.drop_token(table);
    }
}

impl TestBackend for RedisBackend {
    async fn forget(&self, table: &TableId) {
        self.drop_token(table).await.unwrap();
    }
}

/// Runs `scenario` on the memory backend, then on Redis (skipped if absent).
macro_rules! on_every_backend {
    ($scenario:ident) => {{
        $scenario(MemoryBackend::default()).await;
        if let Some(redis) = shared_backend("protocol").await {
            $scenario(redis.clone()).await;
            purge(&redis_url(), redis.key_prefix()).await;
        }
    }};
}

fn codec() -> Codec<u64> {
    Codec::json()
}

/// What a read would be served now, decoding bytes as the engine does.
async fn served<B: CacheBackend>(backend: &B, reads: &ReadSet, key: &QueryKey) -> Option<u64> {
    let fetched = backend.fetch(reads.ids(), key).await.ok()?;
    let current: Option<Vec<Token>> = fetched.tokens.iter().map(|s| s.token()).collect();
    let entry = fetched.entry?;
    if *entry.tokens != *current? || !key.matches(&entry.material) {
        return None;
    }
    match entry.value {
        EntryValue::Local(v) => v.downcast_ref::<u64>().copied(),
        EntryValue::Encoded(bytes) => (codec().decode)(&bytes).ok(),
    }
}

struct World<B> {
    cachalot: Cachalot,
    /// Another engine on the same backend: another process, which knows nothing of this
    /// one's writes but what the backend holds.
    elsewhere: Cachalot,
    backend: B,
    db: Arc<str>,
    reads: ReadSet,
    key: QueryKey,
    /// The committed content of table `t`.
    data: Arc<AtomicU64>,
}

impl<B: TestBackend> World<B> {
    fn new(backend: B) -> Self {
        Self::with(backend, Cachalot::builder())
    }

    fn with(backend: B, builder: CachalotBuilder) -> Self {
        let cachalot = builder.backend(backend.clone()).build().unwrap();
        // A database of its own: worlds may share one Redis prefix.
        let db: Arc<str> = Arc::from(unique("db"));
        World {
            reads: ReadSet::new(&db, ["t"]),
            key: cachalot
                .key(&db, "SELECT v FROM t")
                .result_type("u64")
                .finish(),
            cachalot,
            elsewhere: Cachalot::builder()
                .backend(backend.clone())
                .build()
                .unwrap(),
            backend,
            db,
            data: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn cached(&self) -> Option<u64> {
        served(&self.backend, &self.reads, &self.key).await
    }

    async fn check(&self, step: &str) {
        if let Some(v) = self.cached().await {
            assert_eq!(v, self.data.load(SeqCst), "stale hit after {step}");
        }
    }

    /// A complete read, its store landed (these scenarios look at the backend itself);
    /// returns the value and whether the query ran.
    async fn read(&self) -> (u64, bool) {
        let ran = AtomicUsize::new(0);
        let v = self
            .cachalot
            .read_with(
                &self.reads,
                self.key.clone(),
                ReadOptions::new().codec(codec()),
                |_| 8,
                || async {
                    ran.fetch_add(1, SeqCst);
                    Ok::<_, Infallible>(self.data.load(SeqCst))
                },
            )
            .await
            .unwrap();
        self.cachalot.settle().await;
        (v, ran.load(SeqCst) > 0)
    }

    async fn begin(&self) -> WriteGuard {
        self.cachalot
            .begin_write(&self.db, &WriteSet::tables(["t"]))
            .await
    }

    fn commit(&self) {
        self.data.fetch_add(1, SeqCst);
    }

    async fn start_reader(&self) -> GatedReader {
        self.start_reader_on(&self.cachalot).await
    }

    /// A reader on `cachalot`, stopped before its query runs.
    async fn start_reader_on(&self, cachalot: &Cachalot) -> GatedReader {
        let (at_query, at_query_rx) = oneshot::channel::<()>();
        let (go_query, go_query_rx) = oneshot::channel::<()>();
        let (at_store, at_store_rx) = oneshot::channel::<()>();
        let (go_store, go_store_rx) = oneshot::channel::<()>();
        let cachalot = cachalot.clone();
        let reads = self.reads.clone();
        let key = self.key.clone();
        let data = self.data.clone();
        let task = tokio::spawn(async move {
            cachalot
                .read_with(
                    &reads,
                    key,
                    ReadOptions::new().codec(codec()),
                    |_| 8,
                    || async move {
                        at_query.send(()).unwrap();
                        go_query_rx.await.unwrap();
                        let v = data.load(SeqCst);
                        at_store.send(()).unwrap();
                        go_store_rx.await.unwrap();
                        Ok::<_, Infallible>(v)
                    },
                )
                .await
                .unwrap()
        });
        at_query_rx.await.expect("the reader ran its query");
        GatedReader {
            go_query: Some(go_query),
            at_store: Some(at_store_rx),
            go_store: Some(go_store),
            task: Some(task),
        }
    }
}

struct GatedReader {
    go_query: Option<oneshot::Sender<()>>,
    at_store: Option<oneshot::Receiver<()>>,
    go_store: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<u64>>,
}

impl GatedReader {
    async fn query(&mut self) {
        self.go_query.take().unwrap().send(()).unwrap();
        self.at_store.take().unwrap().await.unwrap();
    }

    async fn store(&mut self) -> u64 {
        self.go_store.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap()
    }
}

fn interleavings(lengths: &[usize]) -> Vec<Vec<usize>> {
    fn go(left: &mut Vec<usize>, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if left.iter().all(|&n| n == 0) {
            out.push(prefix.clone());
            return;
        }
        for i in 0..left.len() {
            if left[i] > 0 {
                left[i] -= 1;
                prefix.push(i);
                go(left, prefix, out);
                prefix.pop();
                left[i] += 1;
            }
        }
    }
    let mut out = Vec::new();
    go(&mut lengths.to_vec(), &mut Vec::new(), &mut out);
    out
}

/// Where the reader of a schedule runs.
#[derive(Clone, Copy)]
enum Reader {
    /// On the writers' engine.
    Here,
    /// On another engine sharing the backend (another process).
    Elsewhere,
}

async fn run_schedule<B: TestBackend>(
    backend: B,
    schedule: &[usize],
    writers: usize,
    reader_on: Reader,
) {
    let w = World::new(backend);
    w.check("nothing").await;
    let mut reader: Option<GatedReader> = None;
    let mut reader_step = 0;
    let mut guards: Vec<Option<WriteGuard>> = (0..writers).map(|_| None).collect();
    let mut writer_step = vec![0; writers];
    for (n, &who) in schedule.iter().enumerate() {
        let step = format!("step {n} of {schedule:?}");
        if who == 0 {
            match reader_step {
                0 => {
                    let on = match reader_on {
                        Reader::Here => &w.cachalot,
                        Reader::Elsewhere => &w.elsewhere,
                    };
                    reader = Some(w.start_reader_on(on).await);
                }
                1 => reader.as_mut().unwrap().query().await,
                _ => {
                    reader.as_mut().unwrap().store().await;
                }
            }
            reader_step += 1;
        } else {
            let i = who - 1;
            match writer_step[i] {
                0 => guards[i] = Some(w.begin().await),
                1 => w.commit(),
                _ => guards[i].take().unwrap().finish().await,
            }
            writer_step[i] += 1;
        }
        w.check(&step).await;
    }
    let (v, _) = w.read().await;
    assert_eq!(v, w.data.load(SeqCst), "final read of {schedule:?}");
    let (v, ran) = w.read().await;
    assert_eq!(v, w.data.load(SeqCst));
    assert!(!ran, "the final read should be a hit in {schedule:?}");
}

async fn all_schedules<B: TestBackend>(backend: B, writers: usize, reader: Reader) {
    let lengths = vec![3; writers + 1];
    for schedule in interleavings(&lengths) {
        run_schedule(backend.clone(), &schedule, writers, reader).await;
    }
}

#[tokio::test]
async fn every_interleaving_of_a_reader_and_a_writer_is_safe() {
    assert_eq!(interleavings(&[3, 3]).len(), 20);
    all_schedules(MemoryBackend::default(), 1, Reader::Here).await;
    if let Some(redis) = shared_backend("protocol").await {
        all_schedules(redis.clone(), 1, Reader::Here).await;
        purge(&redis_url(), redis.key_prefix()).await;
    }
}

#[tokio::test]
async fn every_interleaving_of_a_reader_and_two_writers_is_safe() {
    assert_eq!(interleavings(&[3, 3, 3]).len(), 1680);
    if let Some(redis) = shared_backend("protocol").await {
        all_schedules(redis.clone(), 2, Reader::Here).await;
        purge(&redis_url(), redis.key_prefix()).await;
    }
}

/// Two overlapping writes of one process share one lock in Redis (the second joins the
/// first's lease, and only the last to finish bumps): a reader in another process, which
/// sees nothing of that but Redis, must still never be served or store what they change.
#[tokio::test]
async fn every_interleaving_of_two_writers_and_a_reader_in_another_process_is_safe() {
    if let Some(redis) = shared_backend("protocol").await {
        all_schedules(redis.clone(), 2, Reader::Elsewhere).await;
        purge(&redis_url(), redis.key_prefix()).await;
    }
    all_schedules(MemoryBackend::default(), 2, Reader::Elsewhere).await;
}

async fn write_while_query_runs<B: TestBackend>(backend: B) {
    let w = World::new(backend.clone());
    let mut r = w.start_reader().await;
    let g = w.begin().await;
    w.commit();
    g.finish().await;
    r.query().await;
    r.store().await;
    assert_eq!(w.cached().await, None);

    let w = World::new(backend);
    let mut r = w.start_reader().await;
    r.query().await;
    let g = w.begin().await;
    w.commit();
    g.finish().await;
    assert_eq!(r.store().await, 0);
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (1, true));
}

async fn cached_with_decodes_what_the_backend_keeps<B: TestBackend>(backend: B) {
    let w = World::new(backend);
    assert_eq!(w.read().await, (0, true));
    let options = ReadOptions::new().codec(codec());
    let cached = w.cachalot.cached_with(&w.reads, &w.key, &options).await;
    assert_eq!(cached, Some(0));
    assert_eq!(cached, w.cached().await);
    // Without the codec, bytes cannot be read back: only a local value is.
    let plain = w.cachalot.cached::<u64>(&w.reads, &w.key).await;
    assert_eq!(plain.is_some(), !w.backend.encodes_values());
}

#[tokio::test]
async fn cached_with_a_codec_reads_every_backend() {
    on_every_backend!(cached_with_decodes_what_the_backend_keeps);
}

#[tokio::test]
async fn a_write_committed_while_the_query_ran_makes_the_entry_unservable() {
    on_every_backend!(write_while_query_runs);
}

async fn lock_blocks<B: TestBackend>(backend: B) {
    let w = World::new(backend);
    assert_eq!(w.read().await, (0, true));
    assert_eq!(w.read().await, (0, false));
    let g = w.begin().await;
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (0, true));
    w.commit();
    assert_eq!(w.read().await, (1, true));
    assert_eq!(w.cached().await, None);
    let stats = w.cachalot.stats();
    assert_eq!(stats.bypasses.locked, 2);
    assert_eq!(stats.stores, 1);
    g.finish().await;
    assert_eq!(w.read().await, (1, true));
    assert_eq!(w.read().await, (1, false));
}

#[tokio::test]
async fn a_lock_blocks_serving_and_storing() {
    on_every_backend!(lock_blocks);
}

async fn missing_token<B: TestBackend>(backend: B) {
    let w = World::new(backend);
    assert_eq!(w.read().await, (0, true));
    assert_eq!(w.cached().await, Some(0));
    w.backend.forget(&TableId::new(&w.db, "t")).await;
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (0, true));
    assert_eq!(w.read().await, (0, false));
    w.backend.forget(&TableId::epoch(&w.db)).await;
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (0, true));
    assert_eq!(w.cached().await, Some(0));
    w.backend.clear().await.unwrap();
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (0, true));
}

#[tokio::test]
async fn a_missing_token_is_a_miss() {
    on_every_backend!(missing_token);
}

async fn expired_lock<B: TestBackend>(backend: B) {
    let w = World::with(
        backend,
        Cachalot::builder().lock_ttl(Duration::from_millis(30)),
    );
    assert_eq!(w.read().await, (0, true));
    let before = w.backend.tokens(w.reads.ids()).await.unwrap();
    let g = w.begin().await;
    w.commit();
    std::mem::forget(g);
    assert_eq!(w.cached().await, None);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let after = w.backend.tokens(w.reads.ids()).await.unwrap();
    assert_eq!(after[1], TokenState::Missing);
    assert_ne!(before[1], after[1]);
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (1, true));
    assert_eq!(w.read().await, (1, false));
}

#[tokio::test]
async fn an_expired_lock_leaves_the_table_missing_never_its_old_token() {
    on_every_backend!(expired_lock);
}

async fn transaction<B: TestBackend>(backend: B) {
    let w = World::new(backend);
    assert_eq!(w.read().await, (0, true));
    let mut dirty = WriteSet::new();
    dirty.merge(&WriteSet::tables(["t"]));
    assert_eq!(w.read().await, (0, false));
    let g = w.cachalot.begin_write(&w.db, &dirty).await;
    assert_eq!(w.cached().await, None);
    w.commit();
    assert_eq!(w.read().await, (1, true));
    g.finish().await;
    assert_eq!(w.read().await, (1, true));
    assert_eq!(w.read().await, (1, false));
}

#[tokio::test]
async fn a_transaction_bumps_after_its_commit() {
    on_every_backend!(transaction);
}

async fn whole_database<B: TestBackend>(backend: B) {
    let w = World::new(backend);
    assert_eq!(w.read().await, (0, true));
    let g = w.cachalot.begin_write(&w.db, &WriteSet::all()).await;
    assert_eq!(w.cached().await, None);
    w.commit();
    g.finish().await;
    assert_eq!(w.read().await, (1, true));
    w.cachalot.invalidate_all(&w.db).await;
    assert_eq!(w.cached().await, None);
    let other: Arc<str> = Arc::from(unique("other"));
    let reads = ReadSet::new(&other, ["t"]);
    let key = w.cachalot.key(&other, "SELECT v FROM t").finish();
    w.cachalot
        .read_with(
            &reads,
            key.clone(),
            ReadOptions::new().codec(codec()),
            |_| 8,
            || async { Ok::<_, Infallible>(5_u64) },
        )
        .await
        .unwrap();
    w.cachalot.settle().await;
    w.cachalot.invalidate_all(&w.db).await;
    assert_eq!(served(&w.backend, &reads, &key).await, Some(5));
}

#[tokio::test]
async fn a_write_of_the_whole_database_invalidates_every_table() {
    on_every_backend!(whole_database);
}

fn entry(tokens: &[Token], key: &QueryKey, value: u64) -> Entry {
    Entry {
        tokens: tokens.into(),
        material: key.shared_material(),
        value: EntryValue::Encoded(Arc::from((codec().encode)(&value).unwrap())),
        weight: 8,
    }
}

async fn overlapping_writers<B: TestBackend>(b: B) {
    let db: Arc<str> = Arc::from(unique("db"));
    let t = [TableId::new(&db, "t")];
    let key = KeyBuilder::new("p", &db, "SELECT v FROM t").finish();
    let ttl = Duration::from_secs(60);

    let t0 = b.init_tokens(&t).await.unwrap()[0].token().unwrap();
    assert!(b.store(&t, &key, entry(&[t0], &key, 0), ttl).await.unwrap());

    let (a_id, b_id) = (LockId::fresh(), LockId::fresh());
    b.lock(&t, a_id, ttl).await.unwrap();
    b.lock(&t, b_id, ttl).await.unwrap();
    assert!(!b.store(&t, &key, entry(&[t0], &key, 0), ttl).await.unwrap());
    let t1 = b.bump(&t, Some(a_id)).await.unwrap()[0];
    assert_ne!(t1, t0);
    assert!(!b.store(&t, &key, entry(&[t1], &key, 0), ttl).await.unwrap());
    let fetched = b.fetch(&t, &key).await.unwrap();
    assert_eq!(fetched.tokens[..], [TokenState::Locked]);
    assert!(fetched.entry.is_none());
    assert_eq!(b.init_tokens(&t).await.unwrap(), [TokenState::Locked]);
    let t2 = b.bump(&t, Some(b_id)).await.unwrap()[0];
    assert_ne!(t2, t1);
    assert_eq!(b.tokens(&t).await.unwrap(), [TokenState::Present(t2)]);

    b.lock(&t, a_id, ttl).await.unwrap();
    let t3 = b.bump(&t, None).await.unwrap()[0];
    assert_ne!(t3, t2);
    assert_eq!(b.tokens(&t).await.unwrap(), [TokenState::Locked]);
    b.bump(&t, Some(a_id)).await.unwrap();
    assert!(matches!(
        b.tokens(&t).await.unwrap()[0],
        TokenState::Present(_)
    ));
}

#[tokio::test]
async fn overlapping_writers_each_hold_their_own_lock() {
    on_every_backend!(overlapping_writers);
}

async fn locks_expire_one_by_one<B: TestBackend>(b: B) {
    let db: Arc<str> = Arc::from(unique("db"));
    let t = [TableId::new(&db, "t")];
    b.init_tokens(&t).await.unwrap();
    b.lock(&t, LockId::fresh(), Duration::from_millis(20))
        .await
        .unwrap();
    b.lock(&t, LockId::fresh(), Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(b.tokens(&t).await.unwrap(), [TokenState::Locked]);
}

#[tokio::test]
async fn locks_expire_one_by_one_on_every_backend() {
    on_every_backend!(locks_expire_one_by_one);
}

/// A bump under another writer's lock sets no token: a present token always means unlocked,
/// which the Redis read scripts rely on to skip the lock check.
async fn bump_under_another_lock<B: TestBackend>(b: B) {
    let db: Arc<str> = Arc::from(unique("db"));
    let t = [TableId::new(&db, "t")];
    b.init_tokens(&t).await.unwrap();
    let (mine, theirs) = (LockId::fresh(), LockId::fresh());
    b.lock(&t, mine, Duration::from_secs(60)).await.unwrap();
    b.lock(&t, theirs, Duration::from_millis(30)).await.unwrap();
    b.bump(&t, Some(mine)).await.unwrap();
    assert_eq!(b.tokens(&t).await.unwrap(), [TokenState::Locked]);
    // Their writer died: its lock expires into a missing token, never one set meanwhile.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(b.tokens(&t).await.unwrap(), [TokenState::Missing]);
    let key = KeyBuilder::new("p", &db, "SELECT v FROM t").finish();
    assert_eq!(
        b.fetch(&t, &key).await.unwrap().tokens[..],
        [TokenState::Missing]
    );
    assert!(b.init_tokens(&t).await.unwrap()[0].token().is_some());
}

#[tokio::test]
async fn a_bump_under_another_lock_leaves_no_token() {
    on_every_backend!(bump_under_another_lock);
}

async fn init_keeps_first<B: TestBackend>(b: B) {
    let db: Arc<str> = Arc::from(unique("db"));
    let t = [TableId::new(&db, "t"), TableId::epoch(&db)];
    let first = b.init_tokens(&t).await.unwrap();
    let second = b.init_tokens(&t).await.unwrap();
    assert_eq!(first, second);
    assert!(first.iter().all(|s| s.token().is_some()));
}

#[tokio::test]
async fn init_tokens_keeps_the_first_token() {
    on_every_backend!(init_keeps_first);
}

async fn concurrent<B: TestBackend>(backend: B) {
    const TABLES: [&str; 3] = ["a", "b", "c"];
    const SETS: [&[usize]; 4] = [&[0], &[0, 1], &[1, 2], &[0, 1, 2]];
    let cachalot = Cachalot::builder().backend(backend).build().unwrap();
    let db: Arc<str> = Arc::from(unique("db"));
    let data: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..2_u64 {
        let (cachalot, db, data) = (cachalot.clone(), db.clone(), data.clone());
        tasks.spawn(async move {
            let mut seed = writer + 1;
            for _ in 0..300 {
                seed = xorshift(seed);
                let t = (seed % 3) as usize;
                let g = cachalot
                    .begin_write(&db, &WriteSet::tables([TABLES[t]]))
                    .await;
                data[t].fetch_add(1, SeqCst);
                tokio::task::yield_now().await;
                g.finish().await;
                tokio::task::yield_now().await;
            }
        });
    }
    let hits = Arc::new(AtomicUsize::new(0));
    for reader in 0..4_u64 {
        let (cachalot, db, data, hits) = (cachalot.clone(), db.clone(), data.clone(), hits.clone());
        tasks.spawn(async move {
            let mut seed = reader + 100;
            for _ in 0..2000 {
                seed = xorshift(seed);
                let set = SETS[(seed % 4) as usize];
                let reads = ReadSet::new(&db, set.iter().map(|&t| TABLES[t]));
                let key = cachalot.key(&db, &format!("SELECT {set:?}")).finish();
                let before: Vec<u64> = set.iter().map(|&t| data[t].load(SeqCst)).collect();
                let ran = AtomicUsize::new(0);
                let got = cachalot
                    .read_with(
                        &reads,
                        key,
                        ReadOptions::new().codec(Codec::<Vec<u64>>::json()),
                        |_| 8,
                        || async {
                            ran.fetch_add(1, SeqCst);
                            let mut values = Vec::new();
                            for &t in set {
                                values.push(data[t].load(SeqCst));
                                tokio::task::yield_now().await;
                            }
                            Ok::<_, Infallible>(values)
                        },
                    )
                    .await
                    .unwrap();
                if ran.load(SeqCst) == 0 {
                    hits.fetch_add(1, SeqCst);
                }
                for (i, (&now, &then)) in got.iter().zip(&before).enumerate() {
                    assert!(
                        now >= then,
                        "stale read of {}: {now} < {then}",
                        TABLES[set[i]]
                    );
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert!(hits.load(SeqCst) > 100, "only {} hits", hits.load(SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_and_writers_never_see_stale_data() {
    on_every_backend!(concurrent);
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}
