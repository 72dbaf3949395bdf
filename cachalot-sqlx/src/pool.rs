//! [`CachedPool`]: a `sqlx::Pool` with the cache in front of it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use cachalot_core::Cachalot;
use cachalot_core::engine::{Catalog, Decision};
use cachalot_core::key::Namespace;
use cachalot_core::signal::Invalidation;
use cachalot_core::sql::{Analysis, IsolationLevel, Table};
use cachalot_core::stats::{BypassReason, Stats};
use sqlx::{Executor, Pool, SqlSafeStr};
use tokio::sync::{OnceCell, broadcast};

use crate::database::{CacheDatabase, parse_isolation};
use crate::query_as::{QueryAs, QueryScalar, Target};
use crate::transaction::CachedTransaction;

/// A [`sqlx::Pool`] with the cache attached.
///
/// Typed reads made with [`query_as`](Self::query_as) and [`query_scalar`](Self::query_scalar)
/// are served from the cache while no table they read has changed. Every statement sent
/// through `&CachedPool` as a sqlx [`Executor`] invalidates the tables it writes, whatever
/// API sent it (`sqlx::query(..).execute(&db)`, `fetch`, `execute_many`, ...).
///
/// Cloning is cheap: clones share the pool and the cache.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cachalot_sqlx::CachedPool;
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let db = CachedPool::new(pool);
/// sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)").execute(&db).await?;
/// sqlx::query("INSERT INTO items (name) VALUES ('a')").execute(&db).await?;
///
/// let n: i64 = db.query_scalar("SELECT count(*) FROM items").fetch_one().await?;
/// let again: i64 = db.query_scalar("SELECT count(*) FROM items").fetch_one().await?;
/// assert_eq!((n, again), (1, 1));
/// assert_eq!(db.stats().hits, 1);
/// # Ok::<(), sqlx::Error>(())
/// # }).unwrap();
/// ```
pub struct CachedPool<DB: CacheDatabase> {
    pub(crate) pool: Pool<DB>,
    pub(crate) cache: Cachalot,
    /// Where the tables live: what the tables' tokens are kept under.
    pub(crate) database: Arc<str>,
    /// What of the session changes what the same SQL returns (see
    /// [`CacheDatabase::session`]).
    pub(crate) session: Arc<str>,
    /// The keys' prefix, `database` and `session`, digested once.
    pub(crate) namespace: Namespace,
    pub(crate) shared: Arc<Shared>,
    /// Reads skip the cache (writes still invalidate): see [`CachedPool::uncached`].
    pub(crate) bypass_reads: bool,
}

/// State shared by the clones of one attached pool.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The server's default isolation level, read once on first need.
    default_isolation: OnceCell<IsolationLevel>,
    /// A `SET SESSION ... ISOLATION LEVEL` went through some pooled connection: the default
    /// no longer says what a transaction gets, so assume the strictest.
    session_isolation_changed: AtomicBool,
    /// Foreign-key cascades, triggers and views, read from the catalog.
    pub(crate) dependents: crate::dependents::DependentsCell,
    /// Hashes of the statements already warned about, so each is logged once.
    warned: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// MySQL: the database the pool uses (see [`CacheDatabase::schema_database`]).
    schema_database: Option<String>,
}

impl Shared {
    /// Whether this is the first warning about `sql` (bounded: a flood of distinct generated
    /// statements is logged until the set is full, then not at all).
    pub(crate) fn first_warning(&self, sql: &str) -> bool {
        const MAX_WARNED: usize = 1024;
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        warned.len() < MAX_WARNED && warned.insert(cachalot_core::sql::sql_hash(sql))
    }
}

impl<DB: CacheDatabase> Clone for CachedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn clone(&self) -> Self {
        CachedPool {
            pool: self.pool.clone(),
            cache: self.cache.clone(),
            database: self.database.clone(),
            session: self.session.clone(),
            namespace: self.namespace,
            shared: self.shared.clone(),
            bypass_reads: self.bypass_reads,
        }
    }
}

impl<DB: CacheDatabase> fmt::Debug for CachedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedPool")
            .field("database", &self.database)
            .field("session", &self.session)
            .field("pool", &self.pool)
            .field("bypass_reads", &self.bypass_reads)
            .finish()
    }
}

/// Attaches a [`Cachalot`] to a pool: `let db = cache.attach(pool);`.
pub trait Attach {
    /// Puts this cache in front of `pool`.
    fn attach<DB: CacheDatabase>(&self, pool: Pool<DB>) -> CachedPool<DB>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>;
}

impl Attach for Cachalot {
    fn attach<DB: CacheDatabase>(&self, pool: Pool<DB>) -> CachedPool<DB>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        CachedPool::<DB>::with_cache(pool, self.clone())
    }
}

impl<DB: CacheDatabase> CachedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Attaches a cache with the default settings (in-process memory backend) to `pool`.
    pub fn new(pool: Pool<DB>) -> Self {
        Self::with_cache(pool, Cachalot::default())
    }

    /// Attaches `cache` to `pool`. Several pools may share one cache: entries are kept
    /// apart by the database each pool connects to.
    pub fn with_cache(pool: Pool<DB>, cache: Cachalot) -> Self {
        let options = pool.connect_options();
        let database: Arc<str> = DB::identity(&options).into();
        let session: Arc<str> = DB::session(&options).into();
        let shared = Shared {
            schema_database: DB::schema_database(&options),
            ..Shared::default()
        };
        CachedPool {
            pool,
            namespace: namespace(&cache, &database, &session),
            cache,
            database,
            session,
            shared: Arc::new(shared),
            bypass_reads: false,
        }
    }

    /// Names the database explicitly instead of deriving its identity from the connection
    /// target; processes that reach one database by different addresses must use one name.
    /// Pools that connect as other users or with other startup options keep their entries
    /// apart under one name, and still invalidate each other's.
    pub fn with_database_name(mut self, name: impl Into<String>) -> Self {
        self.database = name.into().into();
        self.namespace = namespace(&self.cache, &self.database, &self.session);
        self
    }

    /// The identity of the database, where its tables live (derived from the server and the
    /// database name, never the user or a password, or set by
    /// [`with_database_name`](Self::with_database_name)): writes through any pool with this
    /// identity invalidate the reads of all of them.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The pool underneath. Statements sent to it directly bypass the cache **and do not
    /// invalidate it**: send writes through the `CachedPool`, or through a connection from
    /// [`acquire`](Self::acquire).
    pub fn inner(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The cache this pool uses.
    pub fn cache(&self) -> &Cachalot {
        &self.cache
    }

    /// A handle on the same pool whose reads bypass the cache; its writes still invalidate.
    pub fn uncached(&self) -> Self {
        CachedPool {
            bypass_reads: true,
            ..self.clone()
        }
    }

    /// Starts a transaction. See [`CachedTransaction`].
    pub async fn begin(&self) -> Result<CachedTransaction<'static, DB>, sqlx::Error> {
        // Read the catalog now: at COMMIT the transaction holds a connection, and waiting for
        // a second one could deadlock a small pool.
        self.dependents().await;
        let tx = self.pool.begin().await?;
        Ok(CachedTransaction::<DB>::new(tx, self.clone()))
    }

    /// A cached read mapping each row to `O` (sqlx's [`query_as`](sqlx::query_as)).
    pub fn query_as<O>(&self, sql: impl SqlSafeStr) -> QueryAs<'_, DB, O> {
        QueryAs::<DB, O>::new(Target::Pool(self), sql.into_sql_str())
    }

    /// A cached read of the first column of each row (sqlx's
    /// [`query_scalar`](sqlx::query_scalar)).
    pub fn query_scalar<O>(&self, sql: impl SqlSafeStr) -> QueryScalar<'_, DB, O> {
        QueryScalar::<DB, O>::new(self.query_as(sql))
    }

    /// Invalidates every cached read of these tables on this database.
    pub async fn invalidate(&self, tables: &[&str]) {
        self.cache.invalidate(&self.database, tables).await;
    }

    /// Invalidates every cached read of this database.
    pub async fn invalidate_all(&self) {
        self.cache.invalidate_all(&self.database).await;
    }

    /// When these tables (or the whole database) were last invalidated, as far as the
    /// cache knows.
    pub async fn last_invalidation(&self, tables: &[&str]) -> Option<SystemTime> {
        self.cache.last_invalidation(&self.database, tables).await
    }

    /// Invalidation signals: one per table written, once the write is final.
    pub fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.cache.subscribe()
    }

    /// What the cache did so far (shared by every pool attached to the same cache).
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// Waits until the results of the misses so far are stored. With Redis, a miss stores its
    /// rows after returning them; reads in this process never notice, another process and
    /// [`stats`](Self::stats)'s `stores` do (see
    /// [`Cachalot::settle`](cachalot_core::Cachalot::settle)).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let db = cachalot_sqlx::CachedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
    /// let n: i64 = db.query_scalar("SELECT 40 + 2").fetch_one().await?;
    /// let again: i64 = db.query_scalar("SELECT 40 + 2").fetch_one().await?;
    /// assert_eq!((n, again), (42, 42));
    /// db.settle().await;
    /// let stats = db.stats();
    /// assert_eq!((stats.misses, stats.hits, stats.stores), (1, 1, 1));
    /// # Ok::<(), sqlx::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn settle(&self) {
        self.cache.settle().await;
    }

    /// The isolation level a new transaction on this pool gets by default.
    pub(crate) async fn default_isolation(&self) -> IsolationLevel {
        if self
            .shared
            .session_isolation_changed
            .load(Ordering::Relaxed)
        {
            return IsolationLevel::Serializable;
        }
        *self
            .shared
            .default_isolation
            .get_or_init(|| async {
                match DB::default_isolation(&self.pool)
                    .await
                    .as_deref()
                    .map(parse_isolation)
                {
                    Ok(Some(level)) => level,
                    other => {
                        // Unknown means assume the strictest: nothing read inside a transaction
                        // is then shared, which is always correct.
                        tracing::warn!(
                            ?other,
                            "cachalot: could not read the default isolation level"
                        );
                        IsolationLevel::Serializable
                    }
                }
            })
            .await
    }

    /// The foreign-key cascades and triggers of this database, read again when stale.
    pub(crate) fn session_isolation_changed(&self) {
        self.shared
            .session_isolation_changed
            .store(true, Ordering::Relaxed);
    }
}

/// The catalog, which needs nothing of the pool but the pool: the cached functions' calls, whose
/// bounds are the macros', read it too.
impl<DB: CacheDatabase> CachedPool<DB> {
    /// What the catalog says (cascades, triggers, views), read again if it is not fresh; the
    /// views also go to the cache, which expands reads of them.
    pub(crate) async fn dependents(&self) -> Arc<crate::dependents::Dependents> {
        read_catalog(&self.pool, &self.cache, &self.database, &self.shared).await
    }

    /// On a miss: if the catalog is older than its refresh period, reads it again in a task
    /// of its own (a view another process created is then followed), without making this
    /// read wait.
    pub(crate) fn refresh_catalog_if_old(&self) {
        let cell = &self.shared.dependents;
        if !cell.begin_refresh() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            cell.refreshed();
            return;
        };
        let (pool, cache) = (self.pool.clone(), self.cache.clone());
        let (database, shared) = (self.database.clone(), self.shared.clone());
        handle.spawn(async move {
            /// Ends the refresh however the task ends (a runtime shutting down drops it).
            struct Refreshing<'a>(&'a crate::dependents::DependentsCell);
            impl Drop for Refreshing<'_> {
                fn drop(&mut self) {
                    self.0.refreshed();
                }
            }
            let _refreshing = Refreshing(&shared.dependents);
            read_catalog(&pool, &cache, &database, &shared).await;
        });
    }

    /// Reads the catalog again now: foreign keys, triggers and views created by another
    /// process (a migration tool, say) are followed from here on, rather than within the
    /// minute after which the catalog is read again anyway. Schema changes sent through the
    /// adapter need no call.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// let db = cachalot_sqlx::CachedPool::new(pool.clone());
    /// sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, at TEXT)").execute(&db).await?;
    /// let n: i64 = db.query_scalar("SELECT count(*) FROM items").fetch_one().await?;
    /// // Behind the adapter's back:
    /// sqlx::query("CREATE VIEW recent AS SELECT * FROM items WHERE at > datetime('now', '-1 day')")
    ///     .execute(&pool)
    ///     .await?;
    /// db.refresh_catalog().await;
    /// let recent: i64 = db.query_scalar("SELECT count(*) FROM recent").fetch_one().await?;
    /// assert_eq!((n, recent), (0, 0));
    /// // `recent` depends on the clock: never cached.
    /// assert_eq!(db.stats().bypasses.not_cacheable, 1);
    /// # Ok::<(), sqlx::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn refresh_catalog(&self) {
        self.shared.dependents.mark_stale();
        self.dependents().await;
    }

    /// [`Cachalot::decide`] for a read through this pool: a MySQL read of another database's
    /// table is not cached, as its writes invalidate the pools on that database.
    pub(crate) fn decide(&self, analysis: &Arc<Analysis>) -> Decision {
        match self.cache.decide(&self.database, analysis) {
            Decision::Cache(_) if self.names_other_database(&analysis.reads) => {
                Decision::Bypass(BypassReason::NotCacheable)
            }
            decision => decision,
        }
    }

    /// Whether `tables` holds a table of another MySQL database than the pool's.
    pub(crate) fn names_other_database(&self, tables: &[Table]) -> bool {
        self.shared.schema_database.as_deref().is_some_and(|own| {
            tables
                .iter()
                .any(|t| t.schema.as_deref().is_some_and(|schema| schema != own))
        })
    }

    /// Before a read that may be cached: the catalog is read first if it never was, or if a
    /// schema change went through since (a view it created may call `now()`).
    pub(crate) async fn catalog_for_reads(&self) {
        if self.shared.dependents.must_read_first() {
            Box::pin(self.dependents()).await;
        }
    }
}

/// The keys' namespace of a pool on `database` in `session`.
fn namespace(cache: &Cachalot, database: &str, session: &str) -> Namespace {
    match session {
        "" => cache.namespace(database),
        // Length-prefixed: no other pair of strings joins to the same.
        session => cache.namespace(&format!("{}:{database}{session}", database.len())),
    }
}

/// Reads the catalog of `pool`'s database unless the last read is fresh.
async fn read_catalog<DB: CacheDatabase>(
    pool: &Pool<DB>,
    cache: &Cachalot,
    database: &Arc<str>,
    shared: &Shared,
) -> Arc<crate::dependents::Dependents> {
    let cell = &shared.dependents;
    if let Some(fresh) = cell.fresh() {
        return fresh;
    }
    let start = cell.start();
    match DB::dependents(pool).await {
        Ok(catalog) => {
            let mut known = Catalog::new();
            for (function, deterministic) in &catalog.functions {
                match deterministic {
                    true => known.deterministic_function(function.as_str()),
                    false => known.read_only_function(function.as_str()),
                }
            }
            for table in &catalog.never_cached {
                known.never_cached(table.as_str());
            }
            // After the functions: a view may call them.
            let analyzer = known.analyzer(cache.analyzer(DB::DIALECT));
            for (name, definition) in &catalog.views {
                known.define(&analyzer, name.as_str(), definition);
            }
            cell.set(start, Ok((catalog, &known)), |known| {
                cache.set_catalog(database, known.clone());
            })
        }
        Err(e) => cell.set(start, Err(e), |_| {}),
    }
}
