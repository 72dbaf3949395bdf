//! [`CachedTransaction`]: a transaction whose writes invalidate at COMMIT.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use cachalot_core::engine::WriteSet;
use cachalot_core::sql::{Analysis, Dialect, IsolationLevel, StatementKind, TransactionControl};
use sqlx::{Acquire, Execute, Executor, SqlSafeStr, Transaction};

use crate::database::CacheDatabase;
use crate::execute::Forwarded;
use crate::executor::{Invalidation, Routed, creates_temporary_only, written};
use crate::pool::CachedPool;
use crate::query_as::{QueryAs, QueryScalar, Target};

/// A database transaction with the cache attached, from [`CachedPool::begin`].
///
/// - Statements sent through `&mut tx` as a sqlx executor run in the transaction; the tables
///   they write become *dirty*.
/// - Reads of dirty tables bypass the cache: they see the transaction's own writes.
/// - Other reads may use the cache only under READ COMMITTED (PostgreSQL's default), where a
///   statement sees exactly what an autocommit read would; under REPEATABLE READ or
///   SERIALIZABLE (MySQL's and SQLite's behaviour) the cache is bypassed.
/// - [`commit`](Self::commit) locks the dirty tables, commits, then invalidates them, also
///   when the commit fails. [`rollback`](Self::rollback) or drop invalidates nothing (but see
///   the last point).
/// - [`begin`](Self::begin) opens a savepoint; tables written inside it stay dirty even if it
///   is rolled back (which is merely cautious).
/// - A `COMMIT`, `ROLLBACK` or `BEGIN` sent as a statement, or on MySQL a statement that
///   commits implicitly (DDL, `TRUNCATE`), may end the server's transaction: its dirty tables
///   are invalidated around it, every later write also as it runs, reads bypass the cache,
///   and the end invalidates the dirty tables even on rollback or drop.
///
/// It deliberately does not dereference to the connection: a statement sent past the wrapper
/// would not mark its tables dirty.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let db = cachalot_sqlx::CachedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY)").execute(&db).await?;
///
/// let mut tx = db.begin().await?;
/// sqlx::query("INSERT INTO items DEFAULT VALUES").execute(&mut tx).await?;
/// let inside: i64 = tx.query_scalar("SELECT count(*) FROM items").fetch_one().await?;
/// tx.commit().await?;
///
/// let after: i64 = db.query_scalar("SELECT count(*) FROM items").fetch_one().await?;
/// assert_eq!((inside, after), (1, 1));
/// # Ok::<(), sqlx::Error>(())
/// # }).unwrap();
/// ```
pub struct CachedTransaction<'c, DB: CacheDatabase> {
    tx: Transaction<'c, DB>,
    pool: CachedPool<DB>,
    state: Arc<Mutex<TxState>>,
    /// A savepoint inside an outer transaction: its commit invalidates nothing yet.
    nested: bool,
    /// The outermost transaction's: invalidates what an untrusted one wrote if it is dropped.
    _end: Option<EndGuard>,
}

/// Dropped with the outermost transaction: if it was neither committed nor rolled back through
/// its methods and had become [untrusted](TxState::untrusted), its dirty tables may hold
/// committed writes, and are invalidated.
struct EndGuard {
    cache: cachalot_core::Cachalot,
    database: Arc<str>,
    state: Arc<Mutex<TxState>>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let dirty = {
            let mut state = lock(&self.state);
            if state.ended || !state.untrusted || state.dirty.is_empty() {
                return;
            }
            std::mem::take(&mut state.dirty)
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "cachalot: a transaction dropped outside a runtime; its writes may stay cached until the TTL"
            );
            return;
        };
        let (cache, database) = (self.cache.clone(), self.database.clone());
        handle.spawn(async move {
            match dirty.is_all() {
                true => cache.invalidate_all(&database).await,
                false => cache.invalidate(&database, dirty.table_names()).await,
            }
        });
    }
}

/// What a transaction (and its savepoints) has done so far.
#[derive(Debug, Default)]
pub(crate) struct TxState {
    /// Tables written, not yet invalidated.
    pub(crate) dirty: WriteSet,
    /// The isolation level the transaction itself asked for, if any.
    pub(crate) isolation: Option<IsolationLevel>,
    /// A schema change ran: the catalog is read again after COMMIT.
    pub(crate) schema_changed: bool,
    /// A setting a read may depend on changed (`SET search_path`, `SET ROLE`, `USE`, ...):
    /// the same SQL may now read other tables or return other rows than the cache's.
    pub(crate) session_changed: bool,
    /// The server's transaction may have ended before [`commit`](CachedTransaction::commit):
    /// a `COMMIT`, `ROLLBACK` or `BEGIN` sent as a statement, or, on MySQL, a statement that
    /// commits implicitly (DDL, `TRUNCATE`). Each later write may be committed as it runs, so
    /// it is invalidated after it runs as well as at the end, which invalidates the dirty
    /// tables even on rollback.
    pub(crate) untrusted: bool,
    /// The outermost transaction was committed or rolled back through its methods.
    pub(crate) ended: bool,
}

impl TxState {
    /// Whether a read of `tables` must bypass the cache: the transaction wrote them, or
    /// changed a setting the read may depend on.
    pub(crate) fn touches<'t>(&self, mut tables: impl Iterator<Item = &'t str>) -> bool {
        self.session_changed
            || self.untrusted
            || self.dirty.is_all()
            || tables.any(|t| self.dirty.table_names().any(|d| d == t))
    }
}

pub(crate) fn lock(state: &Mutex<TxState>) -> MutexGuard<'_, TxState> {
    // The state is plain data; a panic elsewhere cannot leave it half-written.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<DB: CacheDatabase> fmt::Debug for CachedTransaction<'_, DB>
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedTransaction")
            .field("database", &self.pool.database())
            .field("nested", &self.nested)
            .field("state", &*lock(&self.state))
            .finish()
    }
}

impl<'c, DB: CacheDatabase> CachedTransaction<'c, DB>
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    pub(crate) fn new(tx: Transaction<'c, DB>, pool: CachedPool<DB>) -> Self {
        let state: Arc<Mutex<TxState>> = Arc::default();
        CachedTransaction {
            tx,
            _end: Some(EndGuard {
                cache: pool.cache.clone(),
                database: pool.database.clone(),
                state: state.clone(),
            }),
            pool,
            state,
            nested: false,
        }
    }

    pub(crate) fn with_isolation(self, isolation: Option<IsolationLevel>) -> Self {
        lock(&self.state).isolation = isolation;
        self
    }

    /// Opens a savepoint: a nested transaction that commits into this one.
    pub async fn begin(&mut self) -> Result<CachedTransaction<'_, DB>, sqlx::Error> {
        let tx = (&mut self.tx).begin().await?;
        Ok(CachedTransaction::<'_, DB> {
            tx,
            pool: self.pool.clone(),
            state: self.state.clone(),
            nested: true,
            _end: None,
        })
    }

    /// Commits. The outermost commit locks the tables written, commits, and invalidates them
    /// whatever the outcome; a savepoint's commit only releases it.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        if self.nested {
            return self.tx.commit().await;
        }
        let (dirty, ddl) = {
            let mut state = lock(&self.state);
            state.ended = true;
            (std::mem::take(&mut state.dirty), state.schema_changed)
        };
        if dirty.is_empty() {
            return self.tx.commit().await;
        }
        // Already widened by the catalog as each write went through.
        self.pool
            .invalidation_as_is(dirty)
            .schema_change_if(ddl, &self.pool.shared)
            .around(self.tx.commit())
            .await
    }

    /// Rolls back. Nothing is invalidated: nothing was visible to anyone else (unless a
    /// statement ended the server's transaction early: then the dirty tables are).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        if self.nested {
            return self.tx.rollback().await;
        }
        let dirty = {
            let mut state = lock(&self.state);
            state.ended = true;
            match state.untrusted {
                true => std::mem::take(&mut state.dirty),
                false => WriteSet::new(),
            }
        };
        if dirty.is_empty() {
            return self.tx.rollback().await;
        }
        self.pool
            .invalidation_as_is(dirty)
            .around(self.tx.rollback())
            .await
    }

    /// A read inside the transaction mapping each row to `O`; see the type's documentation
    /// for when it may use the cache.
    pub fn query_as<O>(&mut self, sql: impl SqlSafeStr) -> QueryAs<'_, DB, O> {
        QueryAs::<DB, O>::new(
            Target::Transaction {
                connection: &mut self.tx,
                pool: &self.pool,
                state: &self.state,
            },
            sql.into_sql_str(),
        )
    }

    /// A read inside the transaction of the first column of each row.
    pub fn query_scalar<O>(&mut self, sql: impl SqlSafeStr) -> QueryScalar<'_, DB, O> {
        QueryScalar::<DB, O>::new(self.query_as(sql))
    }

    pub(crate) fn connection(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }

    /// Follows a statement sent through the executor: its writes make tables dirty, and
    /// `SET TRANSACTION` or a session setting change what may be shared. Returns the
    /// statement, and the invalidation it must run inside, if any (see
    /// [`TxState::untrusted`]).
    pub(crate) fn route<'q, E: Execute<'q, DB>>(
        &mut self,
        query: E,
    ) -> Result<(Forwarded<DB>, Option<Invalidation>), sqlx::Error> {
        match self.pool.route(query) {
            Routed::Read(forwarded, analysis) => {
                let mut state = lock(&self.state);
                if analysis.kind == StatementKind::Session {
                    state.session_changed = true;
                }
                let around = match analysis.transaction_control() {
                    Some(TransactionControl::SetTransaction {
                        isolation: Some(level),
                        session: false,
                    }) => {
                        note_isolation(&mut state, DB::DIALECT, *level);
                        None
                    }
                    // Sent as a statement: the server's transaction may end here, behind
                    // sqlx's and this wrapper's back.
                    Some(
                        TransactionControl::Commit
                        | TransactionControl::Rollback
                        | TransactionControl::Begin(_),
                    ) => {
                        state.untrusted = true;
                        self.commit_point(&state)
                    }
                    _ => None,
                };
                Ok((forwarded, around))
            }
            Routed::Write(forwarded, analysis) => {
                let around = write_in(&self.pool, &mut lock(&self.state), &analysis);
                Ok((forwarded, around))
            }
            Routed::Failed(e) => Err(e),
        }
    }

    /// Around a statement that may commit what the transaction wrote: its dirty tables'
    /// invalidation. They stay dirty, for the invalidation at the end.
    fn commit_point(&self, state: &TxState) -> Option<Invalidation> {
        (!state.dirty.is_empty()).then(|| {
            self.pool
                .invalidation_as_is(state.dirty.clone())
                .schema_change_if(state.schema_changed, &self.pool.shared)
        })
    }
}

/// Marks what `analysis`'s statement writes (widened by the catalog) dirty in `state`, and
/// returns the invalidation the write must run inside, if any: where the write commits as it
/// runs (see [`TxState::untrusted`]), and around MySQL's statements that commit the
/// transaction before they run.
pub(crate) fn write_in<DB: CacheDatabase>(
    pool: &CachedPool<DB>,
    state: &mut TxState,
    analysis: &Analysis,
) -> Option<Invalidation>
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    let (mut writes, ddl) = written(analysis);
    // Read at BEGIN; no second connection may be taken here.
    pool.shared.dependents.last().widen(&mut writes);
    let implicit_commit = DB::DIALECT == Dialect::MySql && commits_implicitly(analysis);
    state.dirty.merge(&writes);
    state.schema_changed |= ddl;
    let around = if implicit_commit {
        state.untrusted = true;
        // Everything so far is committed by this statement, which commits itself too.
        state.dirty.clone()
    } else if state.untrusted {
        writes
    } else {
        return None;
    };
    Some(
        pool.invalidation_as_is(around)
            .schema_change_if(ddl, &pool.shared),
    )
}

/// MySQL commits the current transaction before a schema change or `TRUNCATE`, and the
/// statement after it (a temporary table's creation or drop excepted).
pub(crate) fn commits_implicitly(analysis: &Analysis) -> bool {
    matches!(analysis.kind, StatementKind::Ddl | StatementKind::Truncate)
        && !creates_temporary_only(analysis)
}

/// Records an isolation level the transaction asked for. MySQL applies `SET TRANSACTION` to
/// the *next* transaction only, so there it may only make this one look stricter.
fn note_isolation(state: &mut TxState, dialect: Dialect, level: IsolationLevel) {
    let stricter = level > IsolationLevel::ReadCommitted;
    if dialect == Dialect::Postgres || stricter {
        state.isolation = Some(state.isolation.map_or(level, |old| old.max(level)));
    }
}

impl<DB: CacheDatabase> CachedPool<DB>
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    /// Starts a transaction with a custom statement (`BEGIN ISOLATION LEVEL SERIALIZABLE`,
    /// ...), like [`sqlx::Pool::begin_with`]. The isolation level it names is followed.
    pub async fn begin_with(
        &self,
        statement: impl SqlSafeStr,
    ) -> Result<CachedTransaction<'static, DB>, sqlx::Error> {
        let statement = statement.into_sql_str();
        let analysis = self.cache.analyze(DB::DIALECT, statement.as_str());
        let isolation = match analysis.transaction_control() {
            Some(TransactionControl::Begin(level)) => *level,
            // Anything else (several statements, say) is not followed: assume the strictest.
            _ => Some(IsolationLevel::Serializable),
        };
        self.dependents().await;
        let tx = self.pool.begin_with(statement).await?;
        Ok(CachedTransaction::<DB>::new(tx, self.clone()).with_isolation(isolation))
    }
}
