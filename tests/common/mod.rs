//! Fixtures shared by the integration tests: a private schema or database per test on the
//! machine's servers, skipped (or failed, with CACHALOT_REQUIRE_SERVICES=1) when absent.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, MySqlPool, PgPool, SqlitePool};

pub fn pg_url() -> String {
    std::env::var("DATABASE_URL_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn mysql_url() -> String {
    std::env::var("DATABASE_URL_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether a missing server must fail the test rather than skip it.
pub fn services_required() -> bool {
    std::env::var("CACHALOT_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (returns `None`) or panics when a server does not answer.
pub fn unavailable<T>(what: &str, error: impl std::fmt::Display) -> Option<T> {
    if services_required() {
        panic!("{what} is required (CACHALOT_REQUIRE_SERVICES=1) but unavailable: {error}");
    }
    println!("skipped: {what} unavailable: {error}");
    None
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A name no other test, process or earlier run uses at the same time.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "cachalot_{prefix}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Names left by test processes that have died without cleaning up.
fn stale(name: &str) -> bool {
    let mut parts = name.rsplitn(3, '_');
    let (_, Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    pid.parse::<u32>().is_ok_and(|pid| {
        pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// A PostgreSQL pool whose connections use a schema of their own (via search_path).
pub struct PgFixture {
    pub pool: PgPool,
    pub admin: PgPool,
    pub schema: String,
}

impl PgFixture {
    pub async fn new() -> Option<Self> {
        let base: PgConnectOptions = pg_url().parse().ok()?;
        let admin = match PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(base.clone())
            .await
        {
            Ok(pool) => pool,
            Err(e) => return unavailable("PostgreSQL", e),
        };
        let leftovers: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'cachalot\\_%'",
        )
        .fetch_all(&admin)
        .await
        .unwrap_or_default();
        for name in leftovers.into_iter().filter(|n| stale(n)) {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            )))
            .execute(&admin)
            .await;
        }
        let schema = unique_name("pg");
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&admin)
            .await
            .unwrap();
        let options = base.options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .unwrap();
        Some(PgFixture {
            pool,
            admin,
            schema,
        })
    }

    pub async fn cleanup(self) {
        self.pool.close().await;
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        )))
        .execute(&self.admin)
        .await
        .unwrap();
        self.admin.close().await;
    }
}

/// A MariaDB/MySQL pool on a database of its own.
pub struct MySqlFixture {
    pub pool: MySqlPool,
    pub admin: MySqlPool,
    pub database: String,
}

impl MySqlFixture {
    pub async fn new() -> Option<Self> {
        let base: MySqlConnectOptions = mysql_url().parse().ok()?;
        let admin = match MySqlPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(base.clone())
            .await
        {
            Ok(pool) => pool,
            Err(e) => return unavailable("MariaDB/MySQL", e),
        };
        let leftovers: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE 'cachalot\\_%'",
        )
        .fetch_all(&admin)
        .await
        .unwrap_or_default();
        for name in leftovers.into_iter().filter(|n| stale(n)) {
            let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
                .execute(&admin)
                .await;
        }
        let database = unique_name("my");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
            .execute(&admin)
            .await
            .unwrap();
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .connect_with(base.database(&database).disable_statement_logging())
            .await
            .unwrap();
        Some(MySqlFixture {
            pool,
            admin,
            database,
        })
    }

    pub async fn cleanup(self) {
        self.pool.close().await;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{}`",
            self.database
        )))
        .execute(&self.admin)
        .await
        .unwrap();
        self.admin.close().await;
    }
}

/// A private in-memory SQLite database shared by the pool's connections.
pub async fn sqlite_memory() -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect("sqlite::memory:")
        .await
        .unwrap()
}

/// A SQLite database in a fresh file; the guard removes it.
pub struct SqliteFile {
    pub pool: SqlitePool,
    pub path: std::path::PathBuf,
}

impl SqliteFile {
    pub async fn new() -> Self {
        let path = std::env::temp_dir().join(format!("{}.sqlite3", unique_name("sqlite")));
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        SqliteFile { pool, path }
    }

    pub async fn cleanup(self) {
        self.pool.close().await;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}
