//! [`CachedTransaction`]: a transaction whose writes invalidate at COMMIT.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use cachalot_core::engine::WriteSet;
use cachalot_core::sql::{Dialect, IsolationLevel, StatementKind, TransactionControl};
use sqlx::{Acquire, Execute, Executor, SqlSafeStr, Transaction};

use crate::database::CacheDatabase;
use crate::execute::Forwarded;
use crate::executor::Routed;
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
///   when the commit fails. [`rollback`](Self::rollback) or drop invalidates nothing.
/// - [`begin`](Self::begin) opens a savepoint; tables written inside it stay dirty even if it
///   is rolled back (which is merely cautious).
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
}

impl TxState {
    /// Whether a read of `tables` must bypass the cache: the transaction wrote them, or
    /// changed a setting the read may depend on.
    pub(crate) fn touches<'t>(&self, mut tables: impl Iterator<Item = &'t str>) -> bool {
        self.session_changed
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
        CachedTransaction {
            tx,
            pool,
            state: Arc::default(),
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

    /// Rolls back. Nothing is invalidated: nothing was visible to anyone else.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
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
    /// `SET TRANSACTION` changes what may be shared.
    pub(crate) fn route<'q, E: Execute<'q, DB>>(
        &mut self,
        query: E,
    ) -> Result<Forwarded<DB>, sqlx::Error> {
        match self.pool.route(query) {
            Routed::Read(forwarded, analysis) => {
                if analysis.kind == StatementKind::Session {
                    lock(&self.state).session_changed = true;
                }
                if let Some(TransactionControl::SetTransaction {
                    isolation: Some(level),
                    session: false,
                }) = analysis.transaction_control()
                {
                    note_isolation(&mut lock(&self.state), DB::DIALECT, *level);
                }
                Ok(forwarded)
            }
            Routed::Write(forwarded, mut writes, ddl) => {
                // Read at BEGIN; no second connection may be taken here.
                self.pool.shared.dependents.last().widen(&mut writes);
                let mut state = lock(&self.state);
                state.dirty.merge(&writes);
                state.schema_changed |= ddl;
                Ok(forwarded)
            }
            Routed::Failed(e) => Err(e),
        }
    }
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
