//! [`CachedConnection`]: one pooled connection with the cache attached, from
//! [`CachedPool::acquire`].

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use cachalot_core::engine::WriteSet;
use cachalot_core::sql::{Dialect, StatementKind, TransactionControl};
use sqlx::pool::PoolConnection;
use sqlx::{Execute, Executor, SqlSafeStr};

use crate::database::CacheDatabase;
use crate::execute::Forwarded;
use crate::executor::{Invalidation, Routed, written};
use crate::pool::CachedPool;
use crate::query_as::{QueryAs, QueryScalar, Target};
use crate::transaction::commits_implicitly;

/// A connection taken from the pool, with the cache attached: for a series of statements that
/// must share one session (a temporary table, say), or code written against a connection.
///
/// - Each write is invalidated as it runs, as through the pool: outside a transaction it
///   commits as it runs.
/// - It follows the transaction control sent through it as statements. After `BEGIN`, the
///   tables written stay *dirty* and are invalidated again around the `COMMIT` or `ROLLBACK`
///   (and around MySQL's statements that commit implicitly); reads through it bypass the
///   cache until then. [`CachedPool::begin`] is the better way to a transaction.
/// - A session setting sent through it (`SET search_path`, `USE`, ...) makes its later reads
///   bypass the cache, and the connection is closed rather than given back to the pool, so
///   that no other read gets a session the cache does not know.
/// - Dropped inside a transaction it opened, the connection is closed: the server rolls back.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let db = cachalot_sqlx::CachedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY)").execute(&db).await?;
///
/// let mut conn = db.acquire().await?;
/// sqlx::query("INSERT INTO items DEFAULT VALUES").execute(&mut conn).await?;
/// let n: i64 = conn.query_scalar("SELECT count(*) FROM items").fetch_one().await?;
/// assert_eq!(n, 1);
/// # Ok::<(), sqlx::Error>(())
/// # }).unwrap();
/// ```
pub struct CachedConnection<DB: CacheDatabase> {
    conn: PoolConnection<DB>,
    pool: CachedPool<DB>,
    state: Mutex<ConnState>,
}

/// What the statements sent through a connection have done to its session.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// A `BEGIN` sent as a statement opened a transaction that has not ended yet.
    pub(crate) open: bool,
    /// Tables written inside that transaction: invalidated again when it ends.
    pub(crate) dirty: WriteSet,
    /// A setting a read may depend on changed.
    pub(crate) session_changed: bool,
}

impl ConnState {
    /// Whether its reads must bypass the cache.
    pub(crate) fn bypasses(&self) -> bool {
        self.open || self.session_changed
    }
}

pub(crate) fn lock(state: &Mutex<ConnState>) -> MutexGuard<'_, ConnState> {
    // The state is plain data; a panic elsewhere cannot leave it half-written.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<DB: CacheDatabase> fmt::Debug for CachedConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedConnection")
            .field("state", &*lock(&self.state))
            .finish()
    }
}

impl<DB: CacheDatabase> CachedConnection<DB>
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    pub(crate) fn new(conn: PoolConnection<DB>, pool: CachedPool<DB>) -> Self {
        CachedConnection {
            conn,
            pool,
            state: Mutex::default(),
        }
    }

    /// A read mapping each row to `O`: cached as through the pool, unless the connection is
    /// inside a transaction it was sent, or its session was changed.
    pub fn query_as<O>(&mut self, sql: impl SqlSafeStr) -> QueryAs<'_, DB, O> {
        let CachedConnection { conn, pool, state } = self;
        let target = Target::Connection {
            connection: &mut **conn,
            pool,
            state,
        };
        QueryAs::<DB, O>::new(target, sql.into_sql_str())
    }

    /// A read of the first column of each row; see [`query_as`](Self::query_as).
    pub fn query_scalar<O>(&mut self, sql: impl SqlSafeStr) -> QueryScalar<'_, DB, O> {
        QueryScalar::<DB, O>::new(self.query_as(sql))
    }

    /// The statement as the connection runs it, and the invalidation it must run inside.
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
                    // MySQL commits an open transaction before it starts another.
                    Some(TransactionControl::Begin(_)) if DB::DIALECT == Dialect::MySql => {
                        state.open = true;
                        self.end_of(&mut state)
                    }
                    Some(TransactionControl::Begin(_)) => {
                        state.open = true;
                        None
                    }
                    Some(TransactionControl::Commit | TransactionControl::Rollback) => {
                        let around = self.end_of(&mut state);
                        state.open = false;
                        around
                    }
                    _ => None,
                };
                Ok((forwarded, around))
            }
            Routed::Write(forwarded, analysis) => {
                let around = write_on(&self.pool, &mut lock(&self.state), &analysis);
                Ok((forwarded, Some(around)))
            }
            Routed::Failed(e) => Err(e),
        }
    }

    /// Around a statement that ends the open transaction: the invalidation of what it wrote.
    fn end_of(&self, state: &mut ConnState) -> Option<Invalidation> {
        let dirty = std::mem::take(&mut state.dirty);
        (!dirty.is_empty()).then(|| self.pool.invalidation_as_is(dirty))
    }

    pub(crate) fn connection(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

/// The invalidation a write through a connection runs inside: its own tables (it may commit
/// as it runs), and on MySQL, before a statement that commits implicitly, what the open
/// transaction wrote. Inside a transaction the tables also stay dirty until it ends.
pub(crate) fn write_on<DB: CacheDatabase>(
    pool: &CachedPool<DB>,
    state: &mut ConnState,
    analysis: &cachalot_core::sql::Analysis,
) -> Invalidation
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    let (mut writes, ddl) = written(analysis);
    // Read at `acquire`; no second connection may be taken here.
    pool.shared.dependents.last().widen(&mut writes);
    if DB::DIALECT == Dialect::MySql && commits_implicitly(analysis) {
        writes.merge(&std::mem::take(&mut state.dirty));
        state.open = false;
    } else if state.open {
        state.dirty.merge(&writes);
    }
    pool.invalidation_as_is(writes)
        .schema_change_if(ddl, &pool.shared)
}

impl<DB: CacheDatabase> Drop for CachedConnection<DB> {
    fn drop(&mut self) {
        let state = lock(&self.state);
        if state.open || state.session_changed {
            // Closed, not given back: the server rolls the transaction back, and no other
            // read gets this session. Its writes were invalidated as they ran.
            self.conn.close_on_drop();
        }
    }
}

impl<DB: CacheDatabase> CachedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Takes a connection from the pool, with the cache attached: see [`CachedConnection`].
    pub async fn acquire(&self) -> Result<CachedConnection<DB>, sqlx::Error> {
        // Read the catalog now: a write through the connection must not wait for a second
        // connection, which could deadlock a small pool.
        self.dependents().await;
        let conn = self.pool.acquire().await?;
        Ok(CachedConnection::new(conn, self.clone()))
    }
}
