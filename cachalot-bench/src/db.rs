//! The databases: private schemas on the machine's servers, the dataset, and the timed calls
//! each measurement makes (directly on the pool, or through the cache).

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cachalot::{CacheDatabase, CachedPool};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Executor, MySqlPool, PgPool, Pool};

use crate::Result;
use crate::dataset::{Dataset, Query, Shape, UPDATE_PG, UPDATE_QMARK, inserts, schema};

/// Connections per pool: one per task of the mixed workload.
pub const POOL_SIZE: u32 = 8;

/// How a read or a write is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// On the pool underneath (`db.inner()`): no cache at all.
    Direct,
    /// Through the adapter: `db.query_as(..)` for reads, `sqlx::query(..).execute(&db)` for
    /// writes.
    Cached,
}

/// One timed call: how long it took and a fingerprint of what it returned, which must be the
/// same whatever the path.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// Wall time of the call, from building the query to holding the rows.
    pub elapsed: Duration,
    /// A hash of the rows.
    pub fingerprint: u64,
}

/// A hash of a result, to compare the paths' results.
fn fingerprint<T: Hash>(rows: &T) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    rows.hash(&mut hasher);
    hasher.finish()
}

/// A database the benchmark runs on: the dataset's DDL, and reads and writes by every
/// [`Path`]. Implemented for sqlx's three drivers.
pub trait BenchDb: CacheDatabase
where
    for<'c> &'c mut Self::Connection: Executor<'c, Database = Self>,
{
    /// Its name in the report.
    const LABEL: &'static str;
    /// Whether it takes PostgreSQL's SQL (otherwise MariaDB's and SQLite's).
    const POSTGRES: bool;

    /// Creates the tables and inserts the dataset.
    fn seed(pool: &Pool<Self>, data: &Dataset) -> impl Future<Output = Result<()>> + Send;

    /// Runs a read of the benchmark by `path`, timed.
    fn read(
        db: &CachedPool<Self>,
        query: &Query,
        path: Path,
    ) -> impl Future<Output = Result<Timed>> + Send;

    /// Rewrites row `id` of `tests` with its own name by `path`, timed.
    fn update(
        db: &CachedPool<Self>,
        path: Path,
        id: i64,
    ) -> impl Future<Output = Result<Duration>> + Send;

    /// The server's version, for the report.
    fn version(pool: &Pool<Self>) -> impl Future<Output = Result<String>> + Send;
}

/// Binds a query's values, in order, to a sqlx or a cachalot query.
macro_rules! bind {
    ($query:expr, $q:expr) => {{
        let mut query = $query;
        if let Some(id) = $q.id {
            query = query.bind(id);
        }
        if let Some(pattern) = $q.pattern {
            query = query.bind(pattern);
        }
        if let Some((limit, offset)) = $q.slice {
            query = query.bind(limit).bind(offset);
        }
        query
    }};
}

/// Implements [`BenchDb`] for one driver; everything inside is concrete, so no sqlx bound has
/// to be spelled out.
macro_rules! bench_db {
    ($module:ident, $db:ty, $name:literal, postgres: $postgres:literal, id: $id:literal,
     analyze: $analyze:literal, version: $version:literal) => {
        mod $module {
            use super::*;

            type Db = $db;

            /// Whether all rows or the first one are read.
            #[derive(Clone, Copy)]
            enum Fetch {
                All,
                Optional,
            }

            async fn read_as<O>(
                db: &CachedPool<Db>,
                q: &Query,
                path: Path,
                fetch: Fetch,
            ) -> Result<Timed>
            where
                O: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row>
                    + serde::Serialize
                    + serde::de::DeserializeOwned
                    + Clone
                    + Hash
                    + Send
                    + Sync
                    + Unpin
                    + 'static,
            {
                let sql = q.sql($postgres);
                let start = Instant::now();
                let rows: Vec<O> = match path {
                    Path::Direct => {
                        let query = bind!(sqlx::query_as::<Db, O>(sql), q);
                        match fetch {
                            Fetch::All => query.fetch_all(db.inner()).await?,
                            Fetch::Optional => query
                                .fetch_optional(db.inner())
                                .await?
                                .into_iter()
                                .collect(),
                        }
                    }
                    Path::Cached => {
                        let query = bind!(db.query_as::<O>(sql), q);
                        match fetch {
                            Fetch::All => query.fetch_all().await?,
                            Fetch::Optional => query.fetch_optional().await?.into_iter().collect(),
                        }
                    }
                };
                let elapsed = start.elapsed();
                Ok(Timed {
                    elapsed,
                    fingerprint: fingerprint(&rows),
                })
            }

            impl BenchDb for Db {
                const LABEL: &'static str = $name;
                const POSTGRES: bool = $postgres;

                async fn seed(pool: &Pool<Db>, data: &Dataset) -> Result<()> {
                    for statement in schema($id) {
                        pool.execute(AssertSqlSafe(statement)).await?;
                    }
                    let mut tx = pool.begin().await?;
                    for statement in inserts(data, 1000) {
                        (&mut *tx).execute(AssertSqlSafe(statement)).await?;
                    }
                    tx.commit().await?;
                    pool.execute($analyze).await?;
                    Ok(())
                }

                async fn read(db: &CachedPool<Db>, q: &Query, path: Path) -> Result<Timed> {
                    use crate::dataset::{TestRow, TestWithGroup, TestWithOwner};
                    match q.shape {
                        Shape::Count => read_as::<(i64,)>(db, q, path, Fetch::Optional).await,
                        Shape::First => read_as::<TestRow>(db, q, path, Fetch::Optional).await,
                        Shape::Tests => read_as::<TestRow>(db, q, path, Fetch::All).await,
                        Shape::Owner => read_as::<TestWithOwner>(db, q, path, Fetch::All).await,
                        Shape::Groups => read_as::<TestWithGroup>(db, q, path, Fetch::All).await,
                    }
                }

                async fn update(db: &CachedPool<Db>, path: Path, id: i64) -> Result<Duration> {
                    let sql = if $postgres { UPDATE_PG } else { UPDATE_QMARK };
                    let name = format!("test{}", id - 1);
                    let start = Instant::now();
                    let query = sqlx::query(sql).bind(name).bind(id);
                    match path {
                        Path::Direct => query.execute(db.inner()).await?,
                        Path::Cached => query.execute(db).await?,
                    };
                    Ok(start.elapsed())
                }

                async fn version(pool: &Pool<Db>) -> Result<String> {
                    Ok(sqlx::query_scalar::<Db, String>($version)
                        .fetch_one(pool)
                        .await?)
                }
            }
        }
    };
}

bench_db!(sqlite, sqlx::Sqlite, "SQLite", postgres: false, id: "INTEGER",
    analyze: "ANALYZE", version: "SELECT sqlite_version()");
bench_db!(postgres, sqlx::Postgres, "PostgreSQL", postgres: true, id: "BIGINT",
    analyze: "ANALYZE", version: "SHOW server_version");
bench_db!(mariadb, sqlx::MySql, "MariaDB", postgres: false, id: "BIGINT",
    analyze: "ANALYZE TABLE auth_user, auth_group, auth_user_groups, tests",
    version: "SELECT CAST(VERSION() AS CHAR)");

/// The name of this run's schema, database, file and key prefix.
pub fn run_name() -> String {
    format!("cachalot_bench_{}", std::process::id())
}

/// Whether a `cachalot_bench_<pid>` name was left by a process that has died.
pub fn stale(name: &str) -> bool {
    name.strip_prefix("cachalot_bench_")
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
}

/// A database prepared for the benchmark, removed by [`Fixture::cleanup`].
pub struct Fixture<DB: sqlx::Database> {
    /// The pool on the private schema, database or file.
    pub pool: Pool<DB>,
    cleanup: Cleanup,
}

/// What [`Fixture::cleanup`] removes.
enum Cleanup {
    Postgres { admin: PgPool, schema: String },
    MySql { admin: MySqlPool, database: String },
    Sqlite { path: PathBuf },
}

impl<DB: sqlx::Database> Fixture<DB> {
    /// Closes the pool and drops the schema, database or file.
    pub async fn cleanup(self) -> Result<()> {
        self.pool.close().await;
        match self.cleanup {
            Cleanup::Postgres { admin, schema } => {
                admin
                    .execute(AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                    )))
                    .await?;
                admin.close().await;
            }
            Cleanup::MySql { admin, database } => {
                admin
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS `{database}`"
                    )))
                    .await?;
                admin.close().await;
            }
            Cleanup::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
        Ok(())
    }
}

/// How long to wait for a server before calling it unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A SQLite database in a temporary file (WAL, so that the mixed workload's writers and
/// readers can overlap).
pub async fn sqlite() -> Result<Fixture<sqlx::Sqlite>> {
    let path = std::env::temp_dir().join(format!("{}.sqlite3", run_name()));
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(options)
        .await?;
    Ok(Fixture {
        pool,
        cleanup: Cleanup::Sqlite { path },
    })
}

/// A schema of its own on PostgreSQL (`DATABASE_URL_PG`), reached through `search_path`; `Err`
/// with the reason when the server does not answer.
pub async fn postgres() -> Result<std::result::Result<Fixture<sqlx::Postgres>, String>> {
    let url = std::env::var("DATABASE_URL_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let base: PgConnectOptions = url.parse()?;
    let base = base.disable_statement_logging();
    let admin = match PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(base.clone())
        .await
    {
        Ok(pool) => pool,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'cachalot\\_bench\\_%'",
    )
    .fetch_all(&admin)
    .await?;
    for name in leftovers.into_iter().filter(|n| stale(n)) {
        admin
            .execute(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            )))
            .await?;
    }
    let schema = run_name();
    admin
        .execute(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .await?;
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(base.options([("search_path", schema.as_str())]))
        .await?;
    Ok(Ok(Fixture {
        pool,
        cleanup: Cleanup::Postgres { admin, schema },
    }))
}

/// A database of its own on MariaDB/MySQL (`DATABASE_URL_MYSQL`); `Err` with the reason when
/// the server does not answer.
pub async fn mariadb() -> Result<std::result::Result<Fixture<sqlx::MySql>, String>> {
    let url = std::env::var("DATABASE_URL_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let base: MySqlConnectOptions = url.parse()?;
    let base = base.disable_statement_logging();
    let admin = match MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(base.clone())
        .await
    {
        Ok(pool) => pool,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata \
         WHERE schema_name LIKE 'cachalot\\_bench\\_%'",
    )
    .fetch_all(&admin)
    .await?;
    for name in leftovers.into_iter().filter(|n| stale(n)) {
        admin
            .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
            .await?;
    }
    let database = run_name();
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{database}`"
        )))
        .await?;
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
        .await?;
    let pool = MySqlPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(base.database(&database))
        .await?;
    Ok(Ok(Fixture {
        pool,
        cleanup: Cleanup::MySql { admin, database },
    }))
}
