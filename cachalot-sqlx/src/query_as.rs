//! Cached typed reads: [`QueryAs`] and [`QueryScalar`], in sqlx's vocabulary.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Mutex;

use cachalot_core::engine::{Decision, ReadOptions, WriteSet};
use cachalot_core::key::{KeyBuilder, KeyParam};
use cachalot_core::sql::IsolationLevel;
use cachalot_core::stats::BypassReason;
use futures_core::future::BoxFuture;
use smallvec::SmallVec;
use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Encode, Error, Executor, FromRow, IntoArguments, SqlStr, Type};

use crate::connection::{ConnState, write_on};
use crate::database::CacheDatabase;
use crate::pool::CachedPool;
use crate::row::CacheRow;
use crate::transaction::{TxState, lock, write_in};

/// Where a cached read runs on a miss.
pub(crate) enum Target<'a, DB: CacheDatabase> {
    Pool(&'a CachedPool<DB>),
    Transaction {
        connection: &'a mut DB::Connection,
        pool: &'a CachedPool<DB>,
        state: &'a Mutex<TxState>,
    },
    Connection {
        connection: &'a mut DB::Connection,
        pool: &'a CachedPool<DB>,
        state: &'a Mutex<ConnState>,
    },
}

impl<'a, DB: CacheDatabase> Target<'a, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn pool(&self) -> &'a CachedPool<DB> {
        match self {
            Target::Pool(pool)
            | Target::Transaction { pool, .. }
            | Target::Connection { pool, .. } => pool,
        }
    }
}

/// A bound value, encoded into sqlx's arguments only when the query runs: a hit never pays for
/// the driver's encoding (on a read right after a database call, that code is as cold as the
/// rest of the lookup).
type Binding<'a, DB> =
    Box<dyn FnOnce(&mut <DB as Database>::Arguments) -> Result<(), BoxDynError> + Send + 'a>;

/// A query's bindings, the first few inline.
type Bindings<'a, DB> = SmallVec<[Binding<'a, DB>; 4]>;

/// The arguments of a query that runs, handed to sqlx's `query_as_with`.
struct Bound<DB: Database>(DB::Arguments);

impl<DB: Database> IntoArguments<DB> for Bound<DB> {
    fn into_arguments(self) -> DB::Arguments {
        self.0
    }
}

/// Whether all rows or only the first one are read: two different cached values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    All,
    First,
}

/// A cached read that maps each row to `O`, from [`CachedPool::query_as`] or
/// [`CachedTransaction::query_as`](crate::CachedTransaction::query_as).
///
/// Bind values with [`bind`](Self::bind) as with sqlx; each value is also hashed, with its
/// type, into the cache key. Finish with [`fetch_all`](Self::fetch_all),
/// [`fetch_one`](Self::fetch_one) or [`fetch_optional`](Self::fetch_optional).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // With the `redis` feature, rows are cached as JSON: derive serde's traits too.
/// #[derive(Clone, Debug, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
/// struct Item {
///     id: i64,
///     name: String,
/// }
///
/// let db = cachalot_sqlx::CachedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&db).await?;
/// sqlx::query("INSERT INTO items (name) VALUES ('anchor'), ('buoy')").execute(&db).await?;
///
/// let items: Vec<Item> = db
///     .query_as("SELECT id, name FROM items WHERE id > ? ORDER BY id")
///     .bind(1_i64)
///     .fetch_all()
///     .await?;
/// assert_eq!(items, vec![Item { id: 2, name: "buoy".into() }]);
/// # Ok::<(), sqlx::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "a query does nothing until it is fetched"]
pub struct QueryAs<'a, DB: CacheDatabase, O> {
    target: Target<'a, DB>,
    sql: SqlStr,
    bindings: Bindings<'a, DB>,
    key: KeyBuilder,
    row: PhantomData<fn() -> O>,
}

impl<DB: CacheDatabase, O> fmt::Debug for QueryAs<'_, DB, O>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryAs")
            .field("sql", &self.sql.as_str())
            .field("row", &type_name::<O>())
            .finish()
    }
}

impl<'a, DB: CacheDatabase, O> QueryAs<'a, DB, O>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    pub(crate) fn new(target: Target<'a, DB>, sql: SqlStr) -> Self {
        let pool = target.pool();
        // Room for a few bound values and for the result type (its marker and length, "first:"
        // and the type's name): the key is built in one allocation.
        let room = KeyBuilder::DEFAULT_ROOM + 16 + type_name::<O>().len();
        let key = KeyBuilder::in_namespace(&pool.namespace, sql.as_str(), room);
        QueryAs {
            target,
            sql,
            bindings: SmallVec::new(),
            key,
            row: PhantomData,
        }
    }

    /// Binds the next placeholder's value, as sqlx's `bind`. The value is part of the cache
    /// key, typed: `1_i64` and `"1"` never share an entry.
    ///
    /// sqlx encodes the value only if the query runs; a value that fails to encode is
    /// reported then, as [`Error::Encode`].
    pub fn bind<T>(mut self, value: T) -> Self
    where
        T: 'a + Encode<'a, DB> + Type<DB> + KeyParam + Send,
    {
        self.key.push_param(&value);
        self.bindings
            .push(Box::new(move |arguments: &mut DB::Arguments| {
                arguments.add(value)
            }));
        self
    }
}

impl<DB: CacheDatabase, O> QueryAs<'_, DB, O>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    O: for<'r> FromRow<'r, DB::Row> + CacheRow + Unpin,
{
    /// All rows, from the cache when possible.
    pub async fn fetch_all(self) -> Result<Vec<O>, Error> {
        self.rows(Rows::All).await
    }

    /// The first row, or `None`, from the cache when possible.
    pub async fn fetch_optional(self) -> Result<Option<O>, Error> {
        Ok(self.rows(Rows::First).await?.into_iter().next())
    }

    /// The first row, or [`Error::RowNotFound`], from the cache when possible.
    pub async fn fetch_one(self) -> Result<O, Error> {
        self.fetch_optional().await?.ok_or(Error::RowNotFound)
    }

    async fn rows(self, rows: Rows) -> Result<Vec<O>, Error> {
        let QueryAs {
            target,
            sql,
            bindings,
            key,
            ..
        } = self;
        let pool = target.pool();
        let cache = &pool.cache;
        // A transaction holds a connection: it reads the catalog at BEGIN, never here.
        if matches!(target, Target::Pool(_)) && !pool.bypass_reads {
            pool.catalog_for_reads().await;
        }
        let analysis = cache.analyze_in(&pool.database, DB::DIALECT, sql.as_str());
        let mode = match rows {
            Rows::All => "all",
            Rows::First => "first",
        };
        let key = key.finish_with_result_type(&[mode, ":", type_name::<O>()]);
        let weigh =
            |value: &Vec<O>| std::mem::size_of::<Vec<O>>() + value.len() * std::mem::size_of::<O>();
        let options = || match O::codec() {
            Some(codec) => ReadOptions::new().codec(codec),
            None => ReadOptions::new(),
        };

        match target {
            Target::Pool(_) => {
                let fetch = || run::<DB, O, _>(&pool.pool, sql, bindings, rows);
                if !analysis.is_read_only() {
                    // INSERT ... RETURNING read through query_as: a write all the same. Boxed,
                    // as the transaction's arm: a read's future need not hold a write's.
                    let writes = WriteSet::from_analysis(&analysis);
                    return Box::pin(pool.invalidation(writes).around(fetch())).await;
                }
                match pool.decide(&analysis) {
                    Decision::Cache(_) if pool.bypass_reads => {
                        cache.record_bypass(BypassReason::Disabled);
                        fetch().await
                    }
                    Decision::Cache(reads) => {
                        let options = options();
                        // A hit in a plain call; the rest, boxed, only when it is not one.
                        match cache.probe(&reads, &key, &options).hit() {
                            Ok(value) => Ok(value),
                            Err(probe) => {
                                pool.refresh_catalog_if_old();
                                let read =
                                    cache.read_probed(probe, &reads, key, options, weigh, fetch);
                                Box::pin(read).await
                            }
                        }
                    }
                    Decision::Bypass(reason) => {
                        cache.record_bypass(reason);
                        fetch().await
                    }
                }
            }
            Target::Connection {
                connection, state, ..
            } => {
                Box::pin(async move {
                    let fetch = || run::<DB, O, _>(connection, sql, bindings, rows);
                    if !analysis.is_read_only() {
                        let around = write_on(pool, &mut crate::connection::lock(state), &analysis);
                        return around.around(fetch()).await;
                    }
                    match pool.decide(&analysis) {
                        Decision::Cache(_) if pool.bypass_reads => {
                            cache.record_bypass(BypassReason::Disabled);
                            fetch().await
                        }
                        // Inside a transaction it was sent, or in a session of its own.
                        Decision::Cache(_) if crate::connection::lock(state).bypasses() => {
                            cache.record_bypass(BypassReason::Transaction);
                            fetch().await
                        }
                        Decision::Cache(reads) => {
                            cache.read_with(&reads, key, options(), weigh, fetch).await
                        }
                        Decision::Bypass(reason) => {
                            cache.record_bypass(reason);
                            fetch().await
                        }
                    }
                })
                .await
            }
            Target::Transaction {
                connection, state, ..
            } => {
                Box::pin(async move {
                    let fetch = || run::<DB, O, _>(connection, sql, bindings, rows);
                    if !analysis.is_read_only() {
                        let around = write_in(pool, &mut lock(state), &analysis);
                        return match around {
                            Some(around) => around.around(fetch()).await,
                            None => fetch().await,
                        };
                    }
                    let reads = match pool.decide(&analysis) {
                        Decision::Cache(reads) if !pool.bypass_reads => reads,
                        Decision::Cache(_) => {
                            cache.record_bypass(BypassReason::Disabled);
                            return fetch().await;
                        }
                        Decision::Bypass(reason) => {
                            cache.record_bypass(reason);
                            return fetch().await;
                        }
                    };
                    let (dirty, explicit) = {
                        let state = lock(state);
                        (state.touches(reads.tables()), state.isolation)
                    };
                    let isolation = match explicit {
                        Some(level) => level,
                        None => pool.default_isolation().await,
                    };
                    // Only READ COMMITTED sees exactly what an autocommit read would.
                    if dirty || isolation != IsolationLevel::ReadCommitted {
                        cache.record_bypass(BypassReason::Transaction);
                        return fetch().await;
                    }
                    cache.read_with(&reads, key, options(), weigh, fetch).await
                })
                .await
            }
        }
    }
}

/// Runs the query on a miss with sqlx's own `query_as_with`.
///
/// Boxed: the driver's future is kilobytes, and a read's future holds the largest of the
/// futures it may await. A hit, which never runs the query, then neither reserves nor moves
/// them; a miss pays one allocation next to a round trip to the database.
fn run<'e, DB, O, X>(
    executor: X,
    sql: SqlStr,
    bindings: Bindings<'e, DB>,
    rows: Rows,
) -> BoxFuture<'e, Result<Vec<O>, Error>>
where
    DB: Database,
    X: 'e + Executor<'e, Database = DB>,
    O: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
{
    Box::pin(async move {
        let mut arguments = DB::Arguments::default();
        for binding in bindings {
            binding(&mut arguments).map_err(Error::Encode)?;
        }
        let query = sqlx::query_as_with::<DB, O, _>(sql, Bound::<DB>(arguments));
        match rows {
            Rows::All => query.fetch_all(executor).await,
            Rows::First => Ok(query.fetch_optional(executor).await?.into_iter().collect()),
        }
    })
}

/// A cached read of the first column of each row, from [`CachedPool::query_scalar`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let db = cachalot_sqlx::CachedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY)").execute(&db).await?;
/// let n: i64 = db.query_scalar("SELECT count(*) FROM items").fetch_one().await?;
/// assert_eq!(n, 0);
/// # Ok::<(), sqlx::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "a query does nothing until it is fetched"]
pub struct QueryScalar<'a, DB: CacheDatabase, O> {
    inner: QueryAs<'a, DB, (O,)>,
}

impl<DB: CacheDatabase, O> fmt::Debug for QueryScalar<'_, DB, O>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QueryScalar").field(&self.inner).finish()
    }
}

impl<'a, DB: CacheDatabase, O> QueryScalar<'a, DB, O>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    pub(crate) fn new(inner: QueryAs<'a, DB, (O,)>) -> Self {
        QueryScalar { inner }
    }

    /// Binds the next placeholder's value; see [`QueryAs::bind`].
    pub fn bind<T>(self, value: T) -> Self
    where
        T: 'a + Encode<'a, DB> + Type<DB> + KeyParam + Send,
    {
        QueryScalar {
            inner: self.inner.bind(value),
        }
    }
}

impl<DB: CacheDatabase, O> QueryScalar<'_, DB, O>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    (O,): for<'r> FromRow<'r, DB::Row> + CacheRow,
    O: Unpin,
{
    /// The first column of every row.
    pub async fn fetch_all(self) -> Result<Vec<O>, Error> {
        Ok(self
            .inner
            .fetch_all()
            .await?
            .into_iter()
            .map(|(v,)| v)
            .collect())
    }

    /// The first column of the first row, or `None`.
    pub async fn fetch_optional(self) -> Result<Option<O>, Error> {
        Ok(self.inner.fetch_optional().await?.map(|(v,)| v))
    }

    /// The first column of the first row, or [`Error::RowNotFound`].
    pub async fn fetch_one(self) -> Result<O, Error> {
        Ok(self.inner.fetch_one().await?.0)
    }
}
