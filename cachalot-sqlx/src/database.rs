//! What the adapter needs to know about each database sqlx supports.

use cachalot_core::sql::{Dialect, IsolationLevel};
use futures_core::future::BoxFuture;
use sqlx::{Connection, Database, Pool};

/// A database the cache can sit in front of: its SQL dialect, how to name it without
/// credentials, and how to read its default isolation level.
///
/// Implemented for [`sqlx::Postgres`], [`sqlx::MySql`] and [`sqlx::Sqlite`] behind the crate
/// features `postgres`, `mysql` and `sqlite`.
pub trait CacheDatabase: Database {
    /// The dialect statements are analyzed in.
    const DIALECT: Dialect;

    /// The identity of the database the options connect to, where its tables live (server
    /// and database, never the user or the password): a write through any pool on it
    /// invalidates the reads of every pool on it.
    fn identity(options: &<Self::Connection as Connection>::Options) -> String;

    /// What of the session changes what the same SQL returns on that database (the user, for
    /// its privileges and row-level security; PostgreSQL's startup options, for the
    /// `search_path`): pools share entries only when this is equal too.
    fn session(options: &<Self::Connection as Connection>::Options) -> String;

    /// MySQL's databases are schemas of one server: the database the options use, whose
    /// tables the pool's tokens are. A statement that names a table of another (`other.items`)
    /// reads or writes rows whose tokens belong to the pools on that database: its reads are
    /// not cached. `None` where a schema-qualified name is still this database's table.
    fn schema_database(options: &<Self::Connection as Connection>::Options) -> Option<String> {
        let _ = options;
        None
    }

    /// Asks the server which isolation level a transaction gets by default, as the server
    /// prints it (`read committed`, `REPEATABLE-READ`, ...).
    fn default_isolation(pool: &Pool<Self>) -> BoxFuture<'_, Result<String, sqlx::Error>>;

    /// Reads from the catalog what the SQL of a statement does not show: the `(parent,
    /// child)` pairs of foreign keys whose `ON DELETE` / `ON UPDATE` action changes the child,
    /// the tables that have triggers, the views with their definitions, and the tables that
    /// inherit from others. Names as the analyzer normalizes them.
    fn dependents(pool: &Pool<Self>) -> BoxFuture<'_, Result<CatalogDependents, sqlx::Error>>;
}

/// What a database's catalog says about the tables a statement changes or reads without
/// naming them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogDependents {
    /// Foreign keys whose action changes the child, as `(parent, child)`.
    pub cascades: Vec<(String, String)>,
    /// Tables with triggers (or PostgreSQL rules that write).
    pub triggered: Vec<String>,
    /// Views, as `(name, definition)`: the definition is the view's query, or its whole
    /// `CREATE VIEW` statement.
    pub views: Vec<(String, String)>,
    /// Tables whose rows are also another's, as `(parent, child)`: PostgreSQL's partitions
    /// and inheriting tables. A write to either changes the other.
    pub inherits: Vec<(String, String)>,
    /// Tables whose reads are never cached: their rows change without a write naming them
    /// (sequences, foreign tables) or differ by session (row-level security).
    pub never_cached: Vec<String>,
    /// Functions that write nothing, as `(name, deterministic)`: PostgreSQL's `IMMUTABLE`
    /// (deterministic) and `STABLE` ones, where no overload of the name is `VOLATILE`.
    pub functions: Vec<(String, bool)>,
}

impl CatalogDependents {
    /// With the names lowercased, as the analyzer folds them (MySQL, SQLite).
    fn lowercased(self) -> Self {
        let names = |names: Vec<String>| names.iter().map(|t| t.to_lowercase()).collect();
        let pairs = |pairs: Vec<(String, String)>| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_lowercase(), b.to_lowercase()))
                .collect()
        };
        CatalogDependents {
            cascades: pairs(self.cascades),
            triggered: names(self.triggered),
            views: self
                .views
                .into_iter()
                .map(|(name, definition)| (name.to_lowercase(), definition))
                .collect(),
            inherits: pairs(self.inherits),
            never_cached: names(self.never_cached),
            functions: self
                .functions
                .into_iter()
                .map(|(name, deterministic)| (name.to_lowercase(), deterministic))
                .collect(),
        }
    }
}

/// Parses an isolation level as servers print it (`read committed`, `REPEATABLE-READ`, ...).
pub(crate) fn parse_isolation(text: &str) -> Option<IsolationLevel> {
    let norm: String = text
        .trim()
        .chars()
        .map(|c| {
            if c == '-' || c == '_' {
                ' '
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    match norm.as_str() {
        "read uncommitted" => Some(IsolationLevel::ReadUncommitted),
        "read committed" => Some(IsolationLevel::ReadCommitted),
        "repeatable read" => Some(IsolationLevel::RepeatableRead),
        "serializable" => Some(IsolationLevel::Serializable),
        _ => None,
    }
}

#[cfg(feature = "postgres")]
impl CacheDatabase for sqlx::Postgres {
    const DIALECT: Dialect = Dialect::Postgres;

    fn default_isolation(pool: &Pool<Self>) -> BoxFuture<'_, Result<String, sqlx::Error>> {
        Box::pin(sqlx::query_scalar("SHOW transaction_isolation").fetch_one(pool))
    }

    fn dependents(pool: &Pool<Self>) -> BoxFuture<'_, Result<CatalogDependents, sqlx::Error>> {
        Box::pin(async move {
            // relname is the exact name: unquoted names are stored folded, as the analyzer
            // folds them; quoted ones keep their case on both sides.
            let cascades = sqlx::query_as(
                "SELECT p.relname::text, c.relname::text FROM pg_constraint k \
                 JOIN pg_class p ON p.oid = k.confrelid JOIN pg_class c ON c.oid = k.conrelid \
                 WHERE k.contype = 'f' AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))",
            )
            .fetch_all(pool)
            .await?;
            // A rule other than a view's SELECT may write anything, as a trigger.
            let triggered = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_trigger t \
                 JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal \
                 UNION SELECT c.relname::text FROM pg_rewrite r \
                 JOIN pg_class c ON c.oid = r.ev_class WHERE r.ev_type <> '1'",
            )
            .fetch_all(pool)
            .await?;
            // A partition's or an inheriting table's rows are also its parent's.
            let inherits = sqlx::query_as(
                "SELECT p.relname::text, c.relname::text FROM pg_inherits i \
                 JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class c ON c.oid = i.inhrelid",
            )
            .fetch_all(pool)
            .await?;
            // The system's own views (pg_catalog, information_schema) are never cached anyway.
            // Temporary schemas stay: a view on a temporary table is temporary itself, and its
            // definition names the table whose reads are never cached.
            let views = sqlx::query_as(
                "SELECT c.relname::text, pg_get_viewdef(c.oid) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            )
            .fetch_all(pool)
            .await?;
            // A policy may read current_user or current_setting(): the same SQL returns
            // other rows to another session.
            let never_cached = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE (c.relkind IN ('S', 'f') OR c.relrowsecurity) \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            )
            .fetch_all(pool)
            .await?;
            // PostgreSQL itself refuses a write inside a function that is not VOLATILE; the
            // extensions' (PostGIS's st_* ...) are mostly IMMUTABLE.
            let functions = sqlx::query_as(
                "SELECT proname::text, bool_and(provolatile = 'i') FROM pg_proc \
                 WHERE prokind IN ('f', 'a', 'w') GROUP BY proname \
                 HAVING bool_and(provolatile <> 'v')",
            )
            .fetch_all(pool)
            .await?;
            Ok(CatalogDependents {
                cascades,
                triggered,
                views,
                inherits,
                never_cached,
                functions,
            })
        })
    }

    fn identity(options: &sqlx::postgres::PgConnectOptions) -> String {
        let host = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => options.get_host().to_owned(),
        };
        // Without a name, a connection lands in the database named after its user.
        format!(
            "postgres://{host}:{}/{}",
            options.get_port(),
            options
                .get_database()
                .unwrap_or_else(|| options.get_username())
        )
    }

    fn session(options: &sqlx::postgres::PgConnectOptions) -> String {
        let mut session = format!("user={}", options.get_username());
        if let Some(startup) = options.get_options() {
            session.push_str(" options=");
            session.push_str(startup);
        }
        session
    }
}

#[cfg(feature = "mysql")]
impl CacheDatabase for sqlx::MySql {
    const DIALECT: Dialect = Dialect::MySql;

    fn default_isolation(pool: &Pool<Self>) -> BoxFuture<'_, Result<String, sqlx::Error>> {
        Box::pin(async move {
            // MariaDB and MySQL 5.7 call it tx_isolation; MySQL 8 only transaction_isolation.
            match sqlx::query_scalar("SELECT CAST(@@transaction_isolation AS CHAR)")
                .fetch_one(pool)
                .await
            {
                Ok(level) => Ok(level),
                Err(_) => {
                    sqlx::query_scalar("SELECT CAST(@@tx_isolation AS CHAR)")
                        .fetch_one(pool)
                        .await
                }
            }
        })
    }

    fn dependents(pool: &Pool<Self>) -> BoxFuture<'_, Result<CatalogDependents, sqlx::Error>> {
        Box::pin(async move {
            let cascades = sqlx::query_as(
                "SELECT CAST(REFERENCED_TABLE_NAME AS CHAR), CAST(TABLE_NAME AS CHAR) \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = DATABASE() \
                 AND (DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))",
            )
            .fetch_all(pool)
            .await?;
            let triggered = sqlx::query_scalar(
                "SELECT DISTINCT CAST(EVENT_OBJECT_TABLE AS CHAR) FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA = DATABASE()",
            )
            .fetch_all(pool)
            .await?;
            // The definition is empty to a user without SHOW VIEW: such a view is then never
            // cached, as any view whose definition cannot be analyzed.
            let views = sqlx::query_as(
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(VIEW_DEFINITION AS CHAR) \
                 FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
            )
            .fetch_all(pool)
            .await?;
            // MariaDB's sequences are read as tables; nextval() changes them.
            let never_cached = sqlx::query_scalar(
                "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE'",
            )
            .fetch_all(pool)
            .await?;
            Ok(CatalogDependents {
                cascades,
                triggered,
                views,
                never_cached,
                ..CatalogDependents::default()
            }
            .lowercased())
        })
    }

    fn identity(options: &sqlx::mysql::MySqlConnectOptions) -> String {
        let host = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => options.get_host().to_owned(),
        };
        format!(
            "mysql://{host}:{}/{}",
            options.get_port(),
            options.get_database().unwrap_or_default()
        )
    }

    fn session(options: &sqlx::mysql::MySqlConnectOptions) -> String {
        format!("user={}", options.get_username())
    }

    fn schema_database(options: &sqlx::mysql::MySqlConnectOptions) -> Option<String> {
        options.get_database().map(str::to_owned)
    }
}

#[cfg(feature = "sqlite")]
impl CacheDatabase for sqlx::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn default_isolation(_: &Pool<Self>) -> BoxFuture<'_, Result<String, sqlx::Error>> {
        // SQLite transactions are serializable: nothing read inside one is published.
        Box::pin(std::future::ready(Ok("serializable".to_owned())))
    }

    fn dependents(pool: &Pool<Self>) -> BoxFuture<'_, Result<CatalogDependents, sqlx::Error>> {
        Box::pin(async move {
            let cascades = sqlx::query_as(
                "SELECT f.\"table\", m.name FROM sqlite_master m \
                 JOIN pragma_foreign_key_list(m.name) f \
                 WHERE m.type = 'table' \
                 AND (f.on_delete NOT IN ('NO ACTION', 'RESTRICT') OR f.on_update NOT IN ('NO ACTION', 'RESTRICT'))",
            )
            .fetch_all(pool)
            .await?;
            let triggered = sqlx::query_scalar(
                "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger'",
            )
            .fetch_all(pool)
            .await?;
            // SQLite keeps the whole CREATE VIEW statement.
            let views = sqlx::query_as("SELECT name, sql FROM sqlite_master WHERE type = 'view'")
                .fetch_all(pool)
                .await?;
            Ok(CatalogDependents {
                cascades,
                triggered,
                views,
                ..CatalogDependents::default()
            }
            .lowercased())
        })
    }

    fn identity(options: &sqlx::sqlite::SqliteConnectOptions) -> String {
        // sqlx names each `sqlite::memory:` database uniquely, so the file name tells
        // private in-memory databases apart and shared ones together.
        let path = options.get_filename();
        match std::fs::canonicalize(path) {
            Ok(file) => format!("sqlite://{}", file.display()),
            // In memory: the name is only unique inside this process, and a shared backend
            // must never mix two processes' private databases.
            Err(_) => format!("sqlite://{}#{}", path.display(), process_nonce()),
        }
    }

    fn session(_: &sqlx::sqlite::SqliteConnectOptions) -> String {
        // One file, one set of rows: SQLite has no users or per-session name resolution.
        String::new()
    }
}

/// A value that differs between any two processes, even with a reused pid.
#[cfg(feature = "sqlite")]
fn process_nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos:x}", std::process::id())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_levels_parse_as_servers_print_them() {
        assert_eq!(
            parse_isolation("read committed"),
            Some(IsolationLevel::ReadCommitted)
        );
        assert_eq!(
            parse_isolation("REPEATABLE-READ"),
            Some(IsolationLevel::RepeatableRead)
        );
        assert_eq!(
            parse_isolation("SERIALIZABLE"),
            Some(IsolationLevel::Serializable)
        );
        assert_eq!(parse_isolation("snapshot"), None);
    }
}
