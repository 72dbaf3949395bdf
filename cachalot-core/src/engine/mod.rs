//! The engine: the version-token protocol that keeps cached reads correct.
//!
//! Read: one backend round trip fetches the tokens of every table read (and the database
//! epoch) with the entry; the entry is served only if it was stored with exactly those tokens
//! and the exact key material. On a miss the tokens are read *before* the query runs, so a
//! write committed meanwhile makes the new entry unservable at once.
//!
//! Write: lock the written tables (readers then neither serve nor store them), run the write,
//! then bump (a fresh token per table), whatever the write's outcome.
//!
//! The adapter calls, per statement:
//! - [`Cachalot::analyze`] then [`Cachalot::decide`]: cache it, or why not;
//! - for a cacheable read, [`Cachalot::read`] with a [`ReadSet`] and a
//!   [`QueryKey`](crate::key::QueryKey) from [`Cachalot::key`];
//! - for a write, [`Cachalot::begin_write`] before it runs (before `COMMIT` in a
//!   transaction) and [`WriteGuard::finish`] after.

mod calls;
mod catalog;
mod flight;
mod leases;
mod options;
mod pending;
mod read;
mod readsets;
mod storing;
mod write;

pub use catalog::Catalog;
pub use options::{Codec, ReadOptions};
pub use read::{Decision, Probe, ReadSet};
pub use write::{WriteGuard, WriteSet};

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use tokio::sync::broadcast;

use crate::backend::{CacheBackend, TableId};
use crate::error::BackendError;
use crate::key::{KeyBuilder, Namespace};
use crate::settings::{CachalotBuilder, Settings};
use crate::signal::{Invalidation, Signal};
use crate::sql::{Analysis, Analyzer, AnalyzerConfig, Dialect};
use crate::stats::{BypassReason, Counters, Stats};

/// Automatic, always-correct query caching, invalidated per table.
///
/// Cheap to clone: clones share the cache, the settings and the counters.
///
/// ```
/// use std::sync::Arc;
/// use cachalot_core::Cachalot;
/// use cachalot_core::sql::Dialect;
/// use cachalot_core::engine::{Decision, WriteSet};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cachalot = Cachalot::builder().build().unwrap();
/// let db: Arc<str> = Arc::from("app");
/// let sql = "SELECT name FROM users WHERE id = $1";
///
/// let analysis = cachalot.analyze(Dialect::Postgres, sql);
/// let Decision::Cache(reads) = cachalot.decide(&db, &analysis) else { unreachable!() };
/// let key = cachalot.key(&db, sql).param(&7_i64).result_type("String").finish();
///
/// // A miss runs the query, a hit does not.
/// let run = || async { Ok::<_, std::io::Error>(String::from("Ada")) };
/// let name = cachalot.read(&reads, key.clone(), String::len, run).await.unwrap();
/// let again = cachalot.read(&reads, key.clone(), String::len, run).await.unwrap();
/// assert_eq!(name, again);
///
/// // A write to `users` invalidates it.
/// let guard = cachalot.begin_write(&db, &WriteSet::tables(["users"])).await;
/// // ... run the UPDATE ...
/// guard.finish().await;
/// let stats = cachalot.stats();
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// assert!(cachalot.cached::<String>(&reads, &key).await.is_none());
/// # });
/// ```
#[derive(Clone)]
pub struct Cachalot {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    settings: Settings,
    backend: Arc<dyn CacheBackend>,
    enabled: AtomicBool,
    analyzers: PerDialect<Analyzer>,
    stats: Counters,
    signal: Signal,
    flights: flight::Flights,
    read_sets: readsets::ReadSets,
    /// Each database's views, tables never cached and functions, from its catalog.
    catalogs: catalog::Catalogs,
    pending: pending::Pending,
    /// Writes in flight with a remote backend, sharing their locks.
    leases: leases::Leases,
    storing: storing::Storing,
    temporaries: Temporaries,
    /// Set by a backend error, cleared by the next success: one warning per outage.
    degraded: AtomicBool,
}

/// Tables created `TEMPORARY`, per database: never cached afterwards.
#[derive(Debug, Default)]
struct Temporaries {
    any: AtomicBool,
    tables: RwLock<std::collections::HashSet<TableId>>,
}

impl Temporaries {
    fn add(&self, table: TableId) {
        self.tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(table);
        self.any.store(true, Ordering::Release);
    }

    fn contains_any(&self, tables: &[TableId]) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let set = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        tables.iter().any(|t| set.contains(t))
    }
}

impl Cachalot {
    /// A builder with the default settings.
    pub fn builder() -> CachalotBuilder {
        CachalotBuilder::default()
    }

    pub(crate) fn from_parts(settings: Settings, backend: Arc<dyn CacheBackend>) -> Self {
        Cachalot {
            inner: Arc::new(Inner {
                enabled: AtomicBool::new(settings.enabled),
                settings,
                backend,
                analyzers: PerDialect::default(),
                stats: Counters::default(),
                signal: Signal::new(),
                flights: flight::Flights::default(),
                read_sets: readsets::ReadSets::default(),
                catalogs: catalog::Catalogs::default(),
                pending: pending::Pending::default(),
                leases: leases::Leases::default(),
                storing: storing::Storing::default(),
                temporaries: Temporaries::default(),
                degraded: AtomicBool::new(false),
            }),
        }
    }

    /// The settings the cache was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn CacheBackend> {
        &self.inner.backend
    }

    /// Whether reads use the cache.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Turns the use of the cache by reads on or off. Writes invalidate either way, so
    /// entries stored before are still correct when it is turned back on.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.enabled.store(enabled, Ordering::Relaxed);
    }

    /// The memoized analyzer of `dialect`, configured with the declared cacheable functions
    /// and views.
    pub fn analyzer(&self, dialect: Dialect) -> &Analyzer {
        self.inner.analyzers.get_or_init(dialect, || {
            let config = AnalyzerConfig {
                cacheable_functions: self.inner.settings.cacheable_functions.clone(),
                views: self.inner.settings.views.clone(),
                ..AnalyzerConfig::default()
            };
            Analyzer::with_config(dialect, config)
        })
    }

    /// Analyzes `sql` (memoized): the tables it reads and writes, and whether it may be cached.
    pub fn analyze(&self, dialect: Dialect, sql: &str) -> Arc<Analysis> {
        self.analyzer(dialect).analyze(sql)
    }

    /// Analyzes `sql` (memoized) as sent to `database`: as [`analyze`](Self::analyze), and if
    /// it calls functions the analyzer does not know but `database`'s
    /// [catalog](Self::set_catalog) does, as the catalog says they behave (a function that
    /// writes nothing does not make the statement a write of everything).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cachalot_core::Cachalot;
    /// use cachalot_core::engine::Catalog;
    /// use cachalot_core::sql::Dialect;
    ///
    /// let cachalot = Cachalot::default();
    /// let db: Arc<str> = Arc::from("app");
    /// let sql = "SELECT * FROM shops WHERE st_dwithin(location, $1, 500)";
    /// assert!(cachalot.analyze_in(&db, Dialect::Postgres, sql).writes_all);
    /// let mut catalog = Catalog::new();
    /// catalog.deterministic_function("st_dwithin");
    /// cachalot.set_catalog(&db, catalog);
    /// let analysis = cachalot.analyze_in(&db, Dialect::Postgres, sql);
    /// assert!(analysis.is_cacheable());
    /// assert!(cachalot.analyze_in("other", Dialect::Postgres, sql).writes_all);
    /// ```
    pub fn analyze_in(&self, database: &str, dialect: Dialect, sql: &str) -> Arc<Analysis> {
        let analysis = self.analyze(dialect, sql);
        if analysis.unknown_functions.is_empty() {
            return analysis;
        }
        let base = self.analyzer(dialect);
        self.inner
            .catalogs
            .analyze(database, base, &analysis.unknown_functions, sql)
            .unwrap_or(analysis)
    }

    /// Sets what `database`'s catalog says (its views, with their definitions analyzed by
    /// [`analyzer`](Self::analyzer); its tables never cached; its functions), replacing what
    /// was set before; the SQLx adapter does it each time it reads the catalog. A read of a
    /// view is then also a read of the tables behind it, which a write to any of them
    /// invalidates; a read of a view whose definition may not be cached, or of a table never
    /// cached, bypasses the cache; and [`analyze_in`](Self::analyze_in) follows the functions.
    /// Returns whether anything changed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cachalot_core::Cachalot;
    /// use cachalot_core::engine::{Catalog, Decision};
    /// use cachalot_core::sql::Dialect;
    ///
    /// let cachalot = Cachalot::default();
    /// let db: Arc<str> = Arc::from("app");
    /// let mut catalog = Catalog::new();
    /// let analyzer = cachalot.analyzer(Dialect::Postgres);
    /// catalog.define(analyzer, "busy_owners", "SELECT o.* FROM owners o JOIN items i ON i.owner = o.id");
    /// catalog.define(analyzer, "recent", "SELECT * FROM items WHERE at > now() - interval '1 day'");
    /// assert!(cachalot.set_catalog(&db, catalog));
    ///
    /// let read = cachalot.analyze(Dialect::Postgres, "SELECT * FROM busy_owners");
    /// let Decision::Cache(reads) = cachalot.decide(&db, &read) else { panic!() };
    /// assert_eq!(reads.tables().collect::<Vec<_>>(), ["busy_owners", "items", "owners"]);
    /// let recent = cachalot.analyze(Dialect::Postgres, "SELECT count(*) FROM recent");
    /// assert!(matches!(cachalot.decide(&db, &recent), Decision::Bypass(_)));
    /// ```
    pub fn set_catalog(&self, database: &Arc<str>, catalog: Catalog) -> bool {
        self.inner.catalogs.set(database, catalog)
    }

    /// The catalog set for `database` with [`set_catalog`](Self::set_catalog), if any.
    pub fn catalog(&self, database: &str) -> Option<Arc<Catalog>> {
        self.inner.catalogs.of(database)
    }

    /// Starts the key of `sql` sent to `database`, under the configured key prefix; add the
    /// bound values and the result type, then [`finish`](KeyBuilder::finish) it.
    pub fn key(&self, database: &str, sql: &str) -> KeyBuilder {
        KeyBuilder::new(&self.inner.settings.key_prefix, database, sql)
    }

    /// [`key`](Self::key), with room for `room` bytes of bound values and result type (see
    /// [`KeyBuilder::with_room`]).
    pub fn key_with_room(&self, database: &str, sql: &str, room: usize) -> KeyBuilder {
        KeyBuilder::with_room(&self.inner.settings.key_prefix, database, sql, room)
    }

    /// The namespace of the keys of `database` under the configured key prefix: keep it, and
    /// start keys with [`KeyBuilder::in_namespace`] instead of [`key`](Self::key), which
    /// makes it anew for every key.
    ///
    /// ```
    /// use cachalot_core::Cachalot;
    /// use cachalot_core::key::KeyBuilder;
    ///
    /// let cachalot = Cachalot::builder().build().unwrap();
    /// let namespace = cachalot.namespace("app");
    /// let key = KeyBuilder::in_namespace(&namespace, "SELECT 1", 16).finish();
    /// assert_eq!(key, cachalot.key("app", "SELECT 1").finish());
    /// ```
    pub fn namespace(&self, database: &str) -> Namespace {
        Namespace::new(&self.inner.settings.key_prefix, database)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// Counts a read that the adapter sent to the database without asking the cache.
    pub fn record_bypass(&self, reason: BypassReason) {
        self.inner.stats.bypass(reason);
    }

    /// Receives an [`Invalidation`] per table per finished write.
    pub fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.inner.signal.subscribe()
    }

    /// Waits until the results of the misses so far are stored (or refused by the backend).
    ///
    /// With a backend whose stores are round trips ([`CacheBackend::stores_remotely`]:
    /// Redis), a miss stores its result after it returns, so that the caller does not wait
    /// for the round trip. Reads never notice: until the store lands, a read with the same
    /// tokens takes the result from the miss that is storing it. What does notice is another
    /// process, what looks at the backend itself or at
    /// [`Stats::stores`](crate::stats::Stats::stores), and a process about to exit that wants
    /// its last results kept. With the memory backend, stores are done before a miss returns
    /// and this returns at once.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cachalot_core::Cachalot;
    /// use cachalot_core::engine::ReadSet;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cachalot = Cachalot::builder().build().unwrap();
    /// let db: Arc<str> = Arc::from("app");
    /// let reads = ReadSet::new(&db, ["users"]);
    /// let key = cachalot.key(&db, "SELECT count(*) FROM users").result_type("u64").finish();
    /// let run = || async { Ok::<_, std::io::Error>(3_u64) };
    /// cachalot.read(&reads, key, |_| 8, run).await.unwrap();
    /// cachalot.settle().await;
    /// assert_eq!(cachalot.stats().stores, 1);
    /// # });
    /// ```
    pub async fn settle(&self) {
        self.inner.storing.settle().await;
    }

    /// Whether some invalidation failed to reach the backend and is still being retried (its
    /// tables are not cached by this process meanwhile).
    pub fn has_pending_invalidations(&self) -> bool {
        self.inner.pending.any()
    }

    /// Retries the failed invalidations now (a background task also does, with backoff); the
    /// bump of a write dropped unfinished outside a runtime waits for its lock to expire (see
    /// [`WriteGuard`]). Returns whether none is left.
    pub async fn retry_pending_invalidations(&self) -> bool {
        self.inner.retry_failed().await
    }
}

/// One value per dialect, each made on first need.
#[derive(Debug)]
pub(crate) struct PerDialect<T>([OnceLock<T>; 3]);

impl<T> Default for PerDialect<T> {
    fn default() -> Self {
        PerDialect(Default::default())
    }
}

impl<T> PerDialect<T> {
    /// The value of `dialect`, made by `init` if it is the first call.
    pub(crate) fn get_or_init(&self, dialect: Dialect, init: impl FnOnce() -> T) -> &T {
        let slot = match dialect {
            Dialect::Postgres => &self.0[0],
            Dialect::MySql => &self.0[1],
            Dialect::Sqlite => &self.0[2],
        };
        slot.get_or_init(init)
    }
}

impl Inner {
    /// Why reads of `tables` must bypass the cache right now, if they must.
    fn bypass_reason(self: &Arc<Self>, tables: &[TableId]) -> Option<BypassReason> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Some(BypassReason::Disabled);
        }
        if self.settings.has_table_lists()
            && tables
                .iter()
                .any(|t| !t.is_epoch() && !self.settings.table_allowed(t.table()))
        {
            return Some(BypassReason::TableNotAllowed);
        }
        if self.temporaries.contains_any(tables) {
            return Some(BypassReason::TemporaryTable);
        }
        // A table this process is writing is locked: no need to ask the backend.
        if self.leases.covers_any(tables) {
            return Some(BypassReason::Locked);
        }
        if self.pending.any() {
            self.ensure_retry_task();
            if self.pending.holds_any(tables) {
                return Some(BypassReason::PendingInvalidation);
            }
        }
        None
    }

    fn backend_failed(&self, operation: &'static str, error: &BackendError) {
        self.stats.backend_error();
        if self.degraded.swap(true, Ordering::Relaxed) {
            tracing::debug!(operation, %error, "cachalot: cache backend failed");
        } else {
            tracing::warn!(operation, %error, "cachalot: cache backend failed; queries run uncached until it recovers");
        }
    }

    fn backend_ok(&self) {
        if self.degraded.load(Ordering::Relaxed) && self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("cachalot: cache backend recovered");
        }
    }

    fn note_temporaries(&self, database: &Arc<str>, analysis: &Analysis) {
        for table in &analysis.creates_temporary {
            self.temporaries
                .add(TableId::new(database, table.name.as_str()));
        }
    }
}

impl fmt::Debug for Cachalot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cachalot")
            .field("enabled", &self.is_enabled())
            .field("settings", &self.inner.settings)
            .field("backend", &self.inner.backend)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Cachalot {
    /// The default settings with the memory backend.
    fn default() -> Self {
        Cachalot::from_parts(
            Settings::default(),
            Arc::new(crate::backend::MemoryBackend::default()),
        )
    }
}
