//! The version-token protocol under races, as deterministic interleavings: every step of the
//! readers and writers is driven by the test in a fixed order, no sleeps decide anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cachalot_core::Cachalot;
use cachalot_core::backend::{
    CacheBackend, Entry, EntryValue, LockId, MemoryBackend, TableId, TokenState,
};
use cachalot_core::engine::{ReadSet, WriteGuard, WriteSet};
use cachalot_core::key::{KeyBuilder, QueryKey};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct World {
    cachalot: Cachalot,
    backend: MemoryBackend,
    db: Arc<str>,
    reads: ReadSet,
    key: QueryKey,
    /// The committed content of table `t`.
    data: Arc<AtomicU64>,
}

impl World {
    fn new() -> Self {
        Self::with(Cachalot::builder())
    }

    fn with(builder: cachalot_core::settings::CachalotBuilder) -> Self {
        let backend = MemoryBackend::default();
        let cachalot = builder.backend(backend.clone()).build().unwrap();
        let db: Arc<str> = Arc::from("db");
        World {
            reads: ReadSet::new(&db, ["t"]),
            key: cachalot
                .key(&db, "SELECT v FROM t")
                .result_type("u64")
                .finish(),
            cachalot,
            backend,
            db,
            data: Arc::new(AtomicU64::new(0)),
        }
    }

    /// What a read would be served from the cache now, if anything.
    async fn cached(&self) -> Option<u64> {
        self.cachalot.cached::<u64>(&self.reads, &self.key).await
    }

    /// Asserts the cache serves nothing stale.
    async fn check(&self, step: &str) {
        if let Some(v) = self.cached().await {
            assert_eq!(v, self.data.load(SeqCst), "stale hit after {step}");
        }
    }

    /// A complete read; returns the value and whether the query ran.
    async fn read(&self) -> (u64, bool) {
        let ran = AtomicUsize::new(0);
        let v = self
            .cachalot
            .read(
                &self.reads,
                self.key.clone(),
                |_| 8,
                || async {
                    ran.fetch_add(1, SeqCst);
                    Ok::<_, Infallible>(self.data.load(SeqCst))
                },
            )
            .await
            .unwrap();
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

    /// A reader whose query is gated: see [`GatedReader`].
    async fn start_reader(&self) -> GatedReader {
        let (at_query, at_query_rx) = oneshot::channel::<()>();
        let (go_query, go_query_rx) = oneshot::channel::<()>();
        let (at_store, at_store_rx) = oneshot::channel::<()>();
        let (go_store, go_store_rx) = oneshot::channel::<()>();
        let cachalot = self.cachalot.clone();
        let reads = self.reads.clone();
        let key = self.key.clone();
        let data = self.data.clone();
        let task = tokio::spawn(async move {
            cachalot
                .read(
                    &reads,
                    key,
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
        // The tokens are read and the query is about to run.
        at_query_rx.await.expect("the reader ran its query");
        GatedReader {
            go_query: Some(go_query),
            at_store: Some(at_store_rx),
            go_store: Some(go_store),
            task: Some(task),
        }
    }
}

/// A reader stopped between its steps: tokens read (started), query run, result stored.
struct GatedReader {
    go_query: Option<oneshot::Sender<()>>,
    at_store: Option<oneshot::Receiver<()>>,
    go_store: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<u64>>,
}

impl GatedReader {
    /// Runs the query (reads the data).
    async fn query(&mut self) {
        self.go_query.take().unwrap().send(()).unwrap();
        self.at_store.take().unwrap().await.unwrap();
    }

    /// Lets the read finish (store its result); returns what it returned.
    async fn store(&mut self) -> u64 {
        self.go_store.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap()
    }
}

/// Every interleaving of sequences of the given lengths (participant index per step).
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

/// Runs one schedule: participant 0 is the reader (start, query, store), the others are
/// writers (lock, commit, bump). After every step nothing stale may be served; at the end
/// a read returns the committed data and the next one is a hit.
async fn run_schedule(schedule: &[usize], writers: usize) {
    let w = World::new();
    // Warm the token so that the reader's path is a plain miss in some schedules.
    w.check("nothing").await;
    let mut reader: Option<GatedReader> = None;
    let mut reader_step = 0;
    let mut guards: Vec<Option<WriteGuard>> = (0..writers).map(|_| None).collect();
    let mut writer_step = vec![0; writers];
    for (n, &who) in schedule.iter().enumerate() {
        let step = format!("step {n} of {schedule:?}");
        if who == 0 {
            match reader_step {
                0 => reader = Some(w.start_reader().await),
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

#[tokio::test]
async fn every_interleaving_of_a_reader_and_a_writer_is_safe() {
    let all = interleavings(&[3, 3]);
    assert_eq!(all.len(), 20);
    for schedule in all {
        run_schedule(&schedule, 1).await;
    }
}

#[tokio::test]
async fn every_interleaving_of_a_reader_and_two_writers_is_safe() {
    let all = interleavings(&[3, 3, 3]);
    assert_eq!(all.len(), 1680);
    for schedule in all {
        run_schedule(&schedule, 2).await;
    }
}

#[tokio::test]
async fn a_write_committed_while_the_query_ran_makes_the_entry_unservable() {
    let w = World::new();
    let mut r = w.start_reader().await; // tokens read
    let g = w.begin().await;
    w.commit();
    g.finish().await;
    r.query().await; // reads the new data: fine, but ...
    r.store().await;
    // ... stored with the tokens from before the write: never served.
    assert_eq!(w.cached().await, None);

    // The other order: the query reads old data, the write commits after it.
    let w = World::new();
    let mut r = w.start_reader().await;
    r.query().await; // old data
    let g = w.begin().await;
    w.commit();
    g.finish().await;
    assert_eq!(r.store().await, 0);
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (1, true));
}

#[tokio::test]
async fn a_lock_blocks_serving_and_storing() {
    let w = World::new();
    assert_eq!(w.read().await, (0, true));
    assert_eq!(w.read().await, (0, false)); // hit
    let g = w.begin().await;
    // Locked: the valid entry is not served, and a read neither serves nor stores.
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
async fn a_missing_token_is_a_miss() {
    let w = World::new();
    assert_eq!(w.read().await, (0, true));
    assert_eq!(w.cached().await, Some(0));
    // Evicted, flushed, restarted: the token is gone.
    w.backend.drop_token(&TableId::new(&w.db, "t"));
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (0, true));
    assert_eq!(w.read().await, (0, false));
    // The epoch's token too.
    w.backend.drop_token(&TableId::epoch(&w.db));
    assert_eq!(w.cached().await, None);
    // An evicted entry with tokens present is a plain miss.
    assert_eq!(w.read().await, (0, true));
    w.backend.clear().await.unwrap();
    assert_eq!(w.cached().await, None);
}

#[tokio::test]
async fn an_expired_lock_leaves_the_table_missing_never_its_old_token() {
    let w = World::with(Cachalot::builder().lock_ttl(Duration::from_millis(30)));
    assert_eq!(w.read().await, (0, true));
    let before = w.backend.tokens(w.reads.ids()).await.unwrap();
    // A writer crashes between its commit and its bump.
    let g = w.begin().await;
    w.commit();
    std::mem::forget(g);
    assert_eq!(w.cached().await, None);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = w.backend.tokens(w.reads.ids()).await.unwrap();
    assert_eq!(after[1], TokenState::Missing);
    assert_ne!(before[1], after[1]);
    // The old entry is never served again; caching resumes with a fresh token.
    assert_eq!(w.cached().await, None);
    assert_eq!(w.read().await, (1, true));
    assert_eq!(w.read().await, (1, false));
}

#[tokio::test]
async fn a_transaction_bumps_after_its_commit() {
    let w = World::new();
    assert_eq!(w.read().await, (0, true));
    // Inside the transaction: uncommitted changes are invisible to other readers, who go on
    // hitting the cache.
    let mut dirty = WriteSet::new();
    dirty.merge(&WriteSet::tables(["t"]));
    assert_eq!(w.read().await, (0, false));
    // COMMIT: lock, commit, bump.
    let g = w.cachalot.begin_write(&w.db, &dirty).await;
    assert_eq!(w.cached().await, None);
    w.commit();
    assert_eq!(w.read().await, (1, true));
    g.finish().await;
    assert_eq!(w.read().await, (1, true));
    assert_eq!(w.read().await, (1, false));
}

#[tokio::test]
async fn a_write_of_the_whole_database_invalidates_every_table() {
    let w = World::new();
    assert_eq!(w.read().await, (0, true));
    let g = w.cachalot.begin_write(&w.db, &WriteSet::all()).await;
    assert_eq!(w.cached().await, None);
    w.commit();
    g.finish().await;
    assert_eq!(w.read().await, (1, true));
    w.cachalot.invalidate_all(&w.db).await;
    assert_eq!(w.cached().await, None);
    // Another database is not touched.
    let other: Arc<str> = Arc::from("other");
    let reads = ReadSet::new(&other, ["t"]);
    let key = w.cachalot.key(&other, "SELECT v FROM t").finish();
    w.cachalot
        .read(
            &reads,
            key.clone(),
            |_| 8,
            || async { Ok::<_, Infallible>(5_u64) },
        )
        .await
        .unwrap();
    w.cachalot.invalidate_all(&w.db).await;
    assert_eq!(w.cachalot.cached::<u64>(&reads, &key).await, Some(5));
}

fn entry(tokens: &[cachalot_core::version::Token], key: &QueryKey, value: u64) -> Entry {
    Entry {
        tokens: tokens.into(),
        material: key.shared_material(),
        value: EntryValue::Local(Arc::new(value)),
        weight: 8,
    }
}

/// Writers A and B lock `t`; A bumps. If A's bump had cleared B's lock, readers could store
/// and serve entries while B commits.
#[tokio::test]
async fn overlapping_writers_each_hold_their_own_lock() {
    let b = MemoryBackend::default();
    let db: Arc<str> = Arc::from("db");
    let t = [TableId::new(&db, "t")];
    let key = KeyBuilder::new("p", "db", "SELECT v FROM t").finish();
    let ttl = Duration::from_secs(60);

    let t0 = b.init_tokens(&t).await.unwrap()[0].token().unwrap();
    assert!(b.store(&t, &key, entry(&[t0], &key, 0), ttl).await.unwrap());

    let (a_id, b_id) = (LockId::fresh(), LockId::fresh());
    b.lock(&t, a_id, ttl).await.unwrap();
    b.lock(&t, b_id, ttl).await.unwrap();
    // Locked: a store is refused (its tokens are no longer current).
    assert!(!b.store(&t, &key, entry(&[t0], &key, 0), ttl).await.unwrap());
    let t1 = b.bump(&t, Some(a_id)).await.unwrap()[0];
    assert_ne!(t1, t0);
    assert!(!b.store(&t, &key, entry(&[t1], &key, 0), ttl).await.unwrap());
    // B still holds its lock: readers neither serve nor store.
    let fetched = b.fetch(&t, &key).await.unwrap();
    assert_eq!(fetched.tokens[..], [TokenState::Locked]);
    assert!(fetched.entry.is_none());
    assert_eq!(b.init_tokens(&t).await.unwrap(), [TokenState::Locked]);
    // B bumps: unlocked, with a token neither entry has.
    let t2 = b.bump(&t, Some(b_id)).await.unwrap()[0];
    assert_ne!(t2, t1);
    assert_eq!(b.tokens(&t).await.unwrap(), [TokenState::Present(t2)]);

    // A bump without a lock (a plain invalidation) works too, and leaves other locks alone.
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
async fn locks_expire_one_by_one() {
    let b = MemoryBackend::default();
    let db: Arc<str> = Arc::from("db");
    let t = [TableId::new(&db, "t")];
    b.init_tokens(&t).await.unwrap();
    b.lock(&t, LockId::fresh(), Duration::from_millis(20))
        .await
        .unwrap();
    b.lock(&t, LockId::fresh(), Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    // The short lock expired, the long one still holds.
    assert_eq!(b.tokens(&t).await.unwrap(), [TokenState::Locked]);
}

/// The memory backend checks an entry's TTL when it looks the entry up: past it, the entry is
/// not served and is dropped; a TTL too long to add to the clock never expires.
#[tokio::test]
async fn an_entry_past_its_ttl_is_not_served_and_is_dropped() {
    let b = MemoryBackend::default();
    let db: Arc<str> = Arc::from("db");
    let t = [TableId::new(&db, "t")];
    let short = KeyBuilder::new("p", "db", "SELECT v FROM t").finish();
    let forever = KeyBuilder::new("p", "db", "SELECT w FROM t").finish();
    let t0 = b.init_tokens(&t).await.unwrap()[0].token().unwrap();
    let stored = b.store(
        &t,
        &short,
        entry(&[t0], &short, 1),
        Duration::from_millis(20),
    );
    assert!(stored.await.unwrap());
    let stored = b.store(&t, &forever, entry(&[t0], &forever, 2), Duration::MAX);
    assert!(stored.await.unwrap());
    assert!(b.fetch(&t, &short).await.unwrap().entry.is_some());
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(b.fetch(&t, &short).await.unwrap().entry.is_none());
    assert!(b.fetch(&t, &forever).await.unwrap().entry.is_some());
    b.run_pending_tasks();
    assert_eq!(b.entry_count(), 1, "the expired entry was dropped");
}

#[tokio::test]
async fn init_tokens_keeps_the_first_token() {
    let b = MemoryBackend::default();
    let db: Arc<str> = Arc::from("db");
    let t = [TableId::new(&db, "t"), TableId::epoch(&db)];
    let first = b.init_tokens(&t).await.unwrap();
    let second = b.init_tokens(&t).await.unwrap();
    assert_eq!(first, second);
    assert!(first.iter().all(|s| s.token().is_some()));
}

/// Real concurrency on two worker threads: readers of overlapping table sets and writers of
/// single tables. Writers only increment, so a value older than what was committed when a
/// read began is a stale read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_and_writers_never_see_stale_data() {
    const TABLES: [&str; 3] = ["a", "b", "c"];
    const SETS: [&[usize]; 4] = [&[0], &[0, 1], &[1, 2], &[0, 1, 2]];
    let cachalot = Cachalot::builder().build().unwrap();
    let db: Arc<str> = Arc::from("db");
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
                    .read(
                        &reads,
                        key,
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
    // The test means something only if the cache served a good share of the reads.
    assert!(hits.load(SeqCst) > 100, "only {} hits", hits.load(SeqCst));
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}
