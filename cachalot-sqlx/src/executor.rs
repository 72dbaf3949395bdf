//! sqlx's [`Executor`] for `&CachedPool` and `&mut CachedTransaction`: every statement is
//! analyzed, writes invalidate, everything else passes through untouched.

use std::sync::Arc;

use cachalot_core::Cachalot;
use cachalot_core::engine::{WriteGuard, WriteSet};
use cachalot_core::sql::{Analysis, StatementKind};
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, stream};
use sqlx::{Database, Describe, Either, Error, Execute, Executor, Pool, SqlStr};

use crate::connection::CachedConnection;
use crate::database::CacheDatabase;
use crate::dependents::Dependents;
use crate::execute::Forwarded;
use crate::pool::{CachedPool, Shared};
use crate::transaction::CachedTransaction;

/// How a write is wrapped: the lock is taken when the statement is about to run, the bump
/// happens once it has finished, whatever its outcome. Dropped early by its caller, the
/// write's lock stays until it expires (see [`WriteGuard`]): the server may still commit it.
pub(crate) struct Invalidation {
    cache: Cachalot,
    database: Arc<str>,
    writes: WriteSet,
    /// Reads the catalog's cascades and triggers, when they are not known yet.
    dependents: Option<BoxFuture<'static, Arc<Dependents>>>,
    /// Set for schema changes: once they have run, the catalog must be read again.
    schema_changed: Option<Arc<Shared>>,
}

impl Invalidation {
    async fn lock(mut self) -> Locked {
        if let Some(dependents) = self.dependents.take() {
            dependents.await.widen(&mut self.writes);
        }
        Locked {
            guard: self.cache.begin_write(&self.database, &self.writes).await,
            schema_changed: self.schema_changed,
        }
    }

    /// Marks the statement as a schema change: the catalog is read again after it.
    pub(crate) fn schema_change_if(mut self, ddl: bool, shared: &Arc<Shared>) -> Self {
        if ddl {
            self.schema_changed = Some(shared.clone());
        }
        self
    }

    /// Runs a single-result statement between lock and bump.
    pub(crate) async fn around<T>(self, run: impl Future<Output = T>) -> T {
        let locked = self.lock().await;
        let result = run.await;
        locked.finish().await;
        result
    }

    /// Wraps a result stream: locked before its first item, bumped after its last one, or
    /// by the guard's drop when the caller abandons the stream (`INSERT ... RETURNING`
    /// read through `fetch` and dropped after the first row), once the lock has expired.
    pub(crate) fn around_stream<'e, T: Send + 'e, E: Send + 'e>(
        self,
        inner: BoxStream<'e, Result<T, E>>,
    ) -> BoxStream<'e, Result<T, E>> {
        enum Phase {
            Unlocked(Invalidation),
            Locked(Locked),
        }
        stream::unfold(Some((Phase::Unlocked(self), inner)), |state| async move {
            let (phase, mut inner) = state?;
            let guard = match phase {
                Phase::Unlocked(invalidation) => invalidation.lock().await,
                Phase::Locked(guard) => guard,
            };
            match inner.next().await {
                Some(Ok(item)) => Some((Ok(item), Some((Phase::Locked(guard), inner)))),
                // sqlx ends a stream at its first error, and `execute` drops the stream as soon
                // as it sees one: invalidate before handing the error over.
                Some(Err(e)) => {
                    guard.finish().await;
                    Some((Err(e), None))
                }
                None => {
                    guard.finish().await;
                    None
                }
            }
        })
        .boxed()
    }
}

/// A write whose tables are locked; [`finish`](Locked::finish) bumps them.
struct Locked {
    guard: WriteGuard,
    schema_changed: Option<Arc<Shared>>,
}

impl Locked {
    async fn finish(self) {
        self.guard.finish().await;
        if let Some(shared) = self.schema_changed {
            // After the DDL ran: reading the catalog before it would miss what it created.
            shared.dependents.mark_stale();
        }
    }
}

/// The statement as the adapter sees it before running it.
pub(crate) enum Routed<DB: Database> {
    /// Read-only: run as is.
    Read(Forwarded<DB>, Arc<Analysis>),
    /// Writes: run inside an invalidation (or, in a transaction, mark the tables dirty); see
    /// [`written`] for what the statement writes.
    Write(Forwarded<DB>, Arc<Analysis>),
    /// The query could not even be taken apart (an argument failed to encode).
    Failed(Error),
}

impl<DB: CacheDatabase> CachedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    pub(crate) fn route<'q, E: Execute<'q, DB>>(&self, query: E) -> Routed<DB> {
        let forwarded = match Forwarded::take(query) {
            Ok(forwarded) => forwarded,
            Err(e) => return Routed::Failed(e),
        };
        let analysis = self
            .cache
            .analyze_in(&self.database, DB::DIALECT, forwarded.sql.as_str());
        // Records the tables a statement creates TEMPORARY, whatever else it does.
        let _ = self.cache.decide(&self.database, &analysis);
        if let Some(cachalot_core::sql::TransactionControl::SetTransaction {
            session: true, ..
        }) = analysis.transaction_control()
        {
            self.session_isolation_changed();
        }
        if analysis.is_read_only() {
            Routed::Read(forwarded, analysis)
        } else {
            if self.names_other_database(&analysis.writes)
                && self.shared.first_warning(forwarded.sql.as_str())
            {
                tracing::warn!(
                    sql = forwarded.sql.as_str(),
                    "cachalot: a write to another database's table invalidates this pool's \
                     reads only; send it through a pool on that database"
                );
            }
            if analysis.writes_all && self.shared.first_warning(forwarded.sql.as_str()) {
                tracing::warn!(
                    sql = forwarded.sql.as_str(),
                    reason = ?analysis.not_cacheable,
                    "cachalot: statement not attributable to tables; every write of it invalidates the whole database"
                );
            }
            Routed::Write(forwarded, analysis)
        }
    }

    /// [`route`](Self::route) for a statement run on the pool, outside a transaction.
    fn route_pooled<'q, E: Execute<'q, DB>>(&self, query: E) -> Routed<DB> {
        let routed = self.route(query);
        if let Routed::Read(forwarded, analysis) = &routed
            && analysis.kind == StatementKind::Session
            && self.shared.first_warning(forwarded.sql.as_str())
        {
            // A transaction follows it (its later reads bypass the cache); the pool cannot
            // know which connection a later read gets.
            tracing::warn!(
                sql = forwarded.sql.as_str(),
                "cachalot: a session setting sent through the pool changes one pooled connection; \
                 set it in the pool's after_connect, or inside a transaction"
            );
        }
        routed
    }

    /// Wraps a write: its tables widened by the catalog's cascades and triggers (read first
    /// if unknown or stale), locked before it runs, bumped after.
    pub(crate) fn invalidation(&self, mut writes: WriteSet) -> Invalidation {
        let dependents = match self.shared.dependents.fresh() {
            Some(known) => {
                known.widen(&mut writes);
                None
            }
            None => {
                let pool = self.clone();
                Some(Box::pin(async move { pool.dependents().await }) as BoxFuture<'static, _>)
            }
        };
        Invalidation {
            cache: self.cache.clone(),
            database: self.database.clone(),
            writes,
            dependents,
            schema_changed: None,
        }
    }

    /// Runs `call`, one of sqlx's calls that return a single result, on the pool: as it is
    /// for a read, between lock and bump for a write.
    fn single<'e, 'q: 'e, E, T>(
        &'e self,
        query: E,
        call: impl FnOnce(&'e Pool<DB>, Forwarded<DB>) -> BoxFuture<'e, Result<T, Error>>,
    ) -> BoxFuture<'e, Result<T, Error>>
    where
        E: 'q + Execute<'q, DB>,
        T: Send + 'e,
    {
        match self.route_pooled(query) {
            Routed::Read(forwarded, _) => call(&self.pool, forwarded),
            Routed::Write(forwarded, analysis) => {
                let (writes, ddl) = written(&analysis);
                Box::pin(
                    self.invalidation(writes)
                        .schema_change_if(ddl, &self.shared)
                        .around(call(&self.pool, forwarded)),
                )
            }
            Routed::Failed(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    /// Wraps a write whose tables are already widened (a transaction's dirty set).
    pub(crate) fn invalidation_as_is(&self, writes: WriteSet) -> Invalidation {
        Invalidation {
            cache: self.cache.clone(),
            database: self.database.clone(),
            writes,
            dependents: None,
            schema_changed: None,
        }
    }
}

/// What `analysis`'s statement writes, and whether it changes the schema (see
/// [`changes_schema`]).
pub(crate) fn written(analysis: &Analysis) -> (WriteSet, bool) {
    (WriteSet::from_analysis(analysis), changes_schema(analysis))
}

/// Whether the catalog must be read again after `analysis`'s statement: a schema change may
/// add a foreign key, a trigger or a view; so may anything the analyzer could not attribute
/// (a multi-statement script, an unparsed CREATE TRIGGER). Creating a temporary table or view
/// changes nothing the catalog says of the others: no database lets a permanent table's
/// foreign key, or a permanent view, stand on a temporary one.
fn changes_schema(analysis: &Analysis) -> bool {
    if analysis.writes_all {
        return true;
    }
    analysis.kind == StatementKind::Ddl && !creates_temporary_only(analysis)
}

/// Whether every table `analysis`'s statement writes is one it creates (or drops) temporary.
pub(crate) fn creates_temporary_only(analysis: &Analysis) -> bool {
    !analysis.creates_temporary.is_empty()
        && analysis
            .writes
            .iter()
            .all(|table| analysis.creates_temporary.contains(table))
}

fn failed_stream<'e, T: Send + 'e>(error: Error) -> BoxStream<'e, Result<T, Error>> {
    stream::once(std::future::ready(Err(error))).boxed()
}

impl<'p, DB: CacheDatabase> Executor<'p> for &'p CachedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        match self.route_pooled(query) {
            Routed::Read(forwarded, _) => self.pool.fetch_many(forwarded),
            Routed::Write(forwarded, analysis) => {
                let (writes, ddl) = written(&analysis);
                self.invalidation(writes)
                    .schema_change_if(ddl, &self.shared)
                    .around_stream(self.pool.fetch_many(forwarded))
            }
            Routed::Failed(e) => failed_stream(e),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.single(query, |pool, forwarded| pool.fetch_optional(forwarded))
    }

    // `execute` and `fetch_all` would otherwise collect `fetch_many`'s stream, which a write
    // wraps in a stream of its own: one future around sqlx's is less work per statement.
    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<DB::QueryResult, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.single(query, |pool, forwarded| pool.execute(forwarded))
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.single(query, |pool, forwarded| pool.fetch_all(forwarded))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'p: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}

/// The executor of a wrapper around one connection ([`CachedTransaction`],
/// [`CachedConnection`](crate::CachedConnection)): each has a `route` that follows the statement
/// and says what invalidation it runs inside, and a `connection` to run it on.
///
/// Implemented per database rather than generically: a generic impl on `&mut` would let the
/// trait solver try the wrapper as a connection type and recurse without end whenever a
/// user's database type is still being inferred.
macro_rules! wrapper_executor {
    ($feature:literal, $db:ty, $wrapper:ty) => {
        #[cfg(feature = $feature)]
        impl<'t> Executor<'t> for &'t mut $wrapper {
            type Database = $db;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<
                'e,
                Result<Either<<$db as Database>::QueryResult, <$db as Database>::Row>, Error>,
            >
            where
                't: 'e,
                E: 'q + Execute<'q, $db>,
            {
                match self.route(query) {
                    Ok((forwarded, None)) => self.connection().fetch_many(forwarded),
                    Ok((forwarded, Some(around))) => {
                        around.around_stream(self.connection().fetch_many(forwarded))
                    }
                    Err(e) => failed_stream(e),
                }
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<<$db as Database>::Row>, Error>>
            where
                't: 'e,
                E: 'q + Execute<'q, $db>,
            {
                match self.route(query) {
                    Ok((forwarded, None)) => self.connection().fetch_optional(forwarded),
                    Ok((forwarded, Some(around))) => {
                        Box::pin(around.around(self.connection().fetch_optional(forwarded)))
                    }
                    Err(e) => Box::pin(std::future::ready(Err(e))),
                }
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [<$db as Database>::TypeInfo],
            ) -> BoxFuture<'e, Result<<$db as Database>::Statement, Error>>
            where
                't: 'e,
            {
                self.connection().prepare_with(sql, parameters)
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<$db>, Error>>
            where
                't: 'e,
            {
                self.connection().describe(sql)
            }
        }
    };
}

wrapper_executor!(
    "postgres",
    sqlx::Postgres,
    CachedTransaction<'_, sqlx::Postgres>
);
wrapper_executor!("mysql", sqlx::MySql, CachedTransaction<'_, sqlx::MySql>);
wrapper_executor!("sqlite", sqlx::Sqlite, CachedTransaction<'_, sqlx::Sqlite>);
wrapper_executor!("postgres", sqlx::Postgres, CachedConnection<sqlx::Postgres>);
wrapper_executor!("mysql", sqlx::MySql, CachedConnection<sqlx::MySql>);
wrapper_executor!("sqlite", sqlx::Sqlite, CachedConnection<sqlx::Sqlite>);

#[cfg(test)]
mod tests {
    use cachalot_core::sql::{Analyzer, Dialect};

    use super::changes_schema;

    #[test]
    fn temporary_tables_are_no_schema_change() {
        let cases = [
            (
                Dialect::Postgres,
                "CREATE TEMP TABLE scratch (id INT)",
                false,
            ),
            (
                Dialect::Postgres,
                "CREATE TEMP TABLE scratch AS SELECT * FROM orders",
                false,
            ),
            (
                Dialect::Sqlite,
                "CREATE TEMPORARY VIEW recent AS SELECT * FROM orders",
                false,
            ),
            (Dialect::MySql, "CREATE TEMPORARY TABLE tmp (id INT)", false),
            (Dialect::Postgres, "CREATE TABLE kept (id INT)", true),
            (
                Dialect::Postgres,
                "CREATE VIEW v AS SELECT * FROM orders",
                true,
            ),
            (Dialect::Postgres, "DROP TABLE scratch", true),
            (
                Dialect::Postgres,
                "CREATE TEMP TABLE a (id INT); CREATE TABLE b (id INT)",
                true,
            ),
            (Dialect::Postgres, "INSERT INTO orders VALUES (1)", false),
        ];
        for (dialect, sql, expected) in cases {
            let analysis = Analyzer::new(dialect).analyze(sql);
            assert_eq!(changes_schema(&analysis), expected, "{sql}");
        }
    }
}
