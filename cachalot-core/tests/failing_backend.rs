//! A backend that fails: reads still answer, and a failed invalidation keeps its tables
//! uncacheable in this process until a retry succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod double;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cachalot_core::Cachalot;
use cachalot_core::engine::{ReadSet, WriteSet};
use cachalot_core::key::QueryKey;

use double::Double;

struct Fixture {
    cachalot: Cachalot,
    backend: Double,
    db: Arc<str>,
    reads: ReadSet,
    key: QueryKey,
    calls: AtomicUsize,
}

impl Fixture {
    fn new() -> Self {
        let backend = Double::default();
        let cachalot = Cachalot::builder()
            .backend(backend.clone())
            .build()
            .unwrap();
        let db: Arc<str> = Arc::from("db");
        Fixture {
            reads: ReadSet::new(&db, ["t"]),
            key: cachalot.key(&db, "SELECT * FROM t").finish(),
            cachalot,
            backend,
            db,
            calls: AtomicUsize::new(0),
        }
    }

    fn fail(&self, fail: bool) {
        self.backend.fail.store(fail, SeqCst);
    }

    /// Reads `value`; returns what was returned and whether the query ran.
    async fn read(&self, value: u64) -> (u64, bool) {
        let before = self.calls.load(SeqCst);
        let v = self
            .cachalot
            .read(
                &self.reads,
                self.key.clone(),
                |_| 8,
                || async {
                    self.calls.fetch_add(1, SeqCst);
                    Ok::<_, Infallible>(value)
                },
            )
            .await
            .unwrap();
        (v, self.calls.load(SeqCst) > before)
    }
}

#[tokio::test]
async fn reads_answer_from_the_database_while_the_backend_fails() {
    let f = Fixture::new();
    f.fail(true);
    assert_eq!(f.read(1).await, (1, true));
    assert_eq!(f.read(2).await, (2, true));
    let s = f.cachalot.stats();
    assert_eq!(s.backend_errors, 2);
    assert_eq!(s.bypasses.backend_error, 2);
    assert_eq!(f.cachalot.last_invalidation(&f.db, ["t"]).await, None);
    // Back up: caching resumes.
    f.fail(false);
    assert_eq!(f.read(3).await, (3, true));
    assert_eq!(f.read(4).await, (3, false));
}

#[tokio::test]
async fn a_failed_store_is_only_counted() {
    let f = Fixture::new();
    assert_eq!(f.read(1).await, (1, true));
    f.cachalot.invalidate(&f.db, ["t"]).await;
    // Fetch works, the store fails.
    let (cachalot, reads, key) = (f.cachalot.clone(), f.reads.clone(), f.key.clone());
    let fail = f.backend.fail.clone();
    let v = cachalot
        .read(
            &reads,
            key,
            |_| 8,
            || async move {
                fail.store(true, SeqCst);
                Ok::<_, Infallible>(2_u64)
            },
        )
        .await
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(f.cachalot.stats().backend_errors, 1);
}

#[tokio::test]
async fn a_failed_invalidation_keeps_its_tables_uncached_until_a_retry_succeeds() {
    let f = Fixture::new();
    assert_eq!(f.read(1).await, (1, true));
    assert_eq!(f.read(1).await, (1, false));

    // The backend fails for the whole write: neither lock nor bump reach it, so it still has
    // the old token and the old entry.
    f.fail(true);
    let g = f
        .cachalot
        .begin_write(&f.db, &WriteSet::tables(["t"]))
        .await;
    assert!(f.cachalot.has_pending_invalidations());
    g.finish().await;
    assert!(f.cachalot.has_pending_invalidations());

    // The backend is back, but the bump has not been retried yet: serving the old entry would
    // be stale, so this process bypasses.
    f.fail(false);
    assert_eq!(f.read(2).await, (2, true));
    assert_eq!(f.read(2).await, (2, true));
    assert_eq!(f.cachalot.stats().bypasses.pending_invalidation, 2);

    assert!(f.cachalot.retry_pending_invalidations().await);
    assert!(!f.cachalot.has_pending_invalidations());
    assert_eq!(f.read(3).await, (3, true));
    assert_eq!(f.read(4).await, (3, false));
}

#[tokio::test]
async fn a_failed_bump_after_a_lock_is_retried() {
    let f = Fixture::new();
    assert_eq!(f.read(1).await, (1, true));
    let g = f
        .cachalot
        .begin_write(&f.db, &WriteSet::tables(["t"]))
        .await;
    assert!(!f.cachalot.has_pending_invalidations());
    f.fail(true);
    g.finish().await;
    assert!(f.cachalot.has_pending_invalidations());
    f.fail(false);
    // Still locked in the backend, and held here.
    assert_eq!(f.read(2).await, (2, true));
    assert!(f.cachalot.retry_pending_invalidations().await);
    // The retried bump released this writer's lock.
    assert_eq!(f.read(3).await, (3, true));
    assert_eq!(f.read(4).await, (3, false));
}

#[tokio::test]
async fn the_background_task_retries_with_backoff() {
    let f = Fixture::new();
    f.fail(true);
    f.cachalot.invalidate(&f.db, ["t"]).await;
    assert!(f.cachalot.has_pending_invalidations());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(f.cachalot.has_pending_invalidations());
    f.fail(false);
    let mut waited = Duration::ZERO;
    while f.cachalot.has_pending_invalidations() {
        assert!(
            waited < Duration::from_secs(3),
            "the retry task did not run"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    assert_eq!(f.read(1).await, (1, true));
    assert_eq!(f.read(2).await, (1, false));
}

#[tokio::test]
async fn the_next_write_retries_too() {
    let f = Fixture::new();
    f.fail(true);
    f.cachalot.invalidate(&f.db, ["t"]).await;
    f.fail(false);
    let g = f
        .cachalot
        .begin_write(&f.db, &WriteSet::tables(["u"]))
        .await;
    assert!(!f.cachalot.has_pending_invalidations());
    g.finish().await;
}

#[tokio::test]
async fn other_tables_stay_cached_during_a_pending_invalidation() {
    let f = Fixture::new();
    f.fail(true);
    f.cachalot.invalidate(&f.db, ["other"]).await;
    f.fail(false);
    assert_eq!(f.read(1).await, (1, true));
    assert_eq!(f.read(2).await, (1, false));
}
