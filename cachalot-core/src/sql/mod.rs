//! SQL analysis: which tables a statement reads and writes, and whether its result may be cached.
//!
//! The analyzer parses one SQL string with [sqlparser] in the dialect of the database it is sent
//! to and answers with an [`Analysis`]. A table the analyzer misses would be a stale read, so
//! every doubt resolves towards "not cacheable" and "writes more": a statement that cannot be
//! attributed to tables invalidates the whole database ([`Analysis::writes_all`]).
//!
//! ```
//! use cachalot_core::sql::{Analyzer, Dialect};
//!
//! let analyzer = Analyzer::new(Dialect::Postgres);
//! let a = analyzer.analyze("SELECT u.name FROM users u JOIN orders o ON o.user_id = u.id");
//! assert!(a.is_cacheable());
//! assert_eq!(a.read_names(), ["orders", "users"]);
//!
//! let w = analyzer.analyze("UPDATE \"public\".users SET name = $1");
//! assert!(!w.is_read_only());
//! assert_eq!(w.write_names(), ["users"]);
//! ```

mod analyze;
mod functions;
mod memo;
mod names;
mod nesting;
mod spellings;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

pub use memo::sql_hash;

/// The SQL dialect a statement is parsed in, one per database family sqlx supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL: unquoted names fold to lower case, quoted names keep their case,
    /// the default schema is `public`.
    Postgres,
    /// MySQL and MariaDB: names compare case-insensitively (the safe choice whatever
    /// `lower_case_table_names` is), the default schema is the connection's database.
    MySql,
    /// SQLite: names compare case-insensitively, the default schema is `main`.
    Sqlite,
}

impl Dialect {
    /// The schema that an unqualified name resolves to, stripped from normalized names.
    pub fn default_schema(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some("public"),
            Dialect::Sqlite => Some("main"),
            Dialect::MySql => None,
        }
    }
}

/// A normalized table name: case folded the way the dialect resolves it, the default schema
/// stripped, any catalog (database) qualifier dropped.
///
/// Invalidation is keyed by [`Table::name`] alone, whatever the schema, so that a write through
/// `audit.items` also invalidates reads of an unqualified `items` that a `search_path` or `USE`
/// may have pointed at the same table: merging two tables can only cause extra misses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table {
    /// The schema, when the statement named a schema other than the default one.
    pub schema: Option<String>,
    /// The table name.
    pub name: String,
}

impl Table {
    /// A table in the default schema.
    ///
    /// ```
    /// let t = cachalot_core::sql::Table::new("items");
    /// assert_eq!(t.to_string(), "items");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Table {
            schema: None,
            name: name.into(),
        }
    }

    /// A table in a named schema.
    ///
    /// ```
    /// let t = cachalot_core::sql::Table::qualified("audit", "items");
    /// assert_eq!(t.to_string(), "audit.items");
    /// ```
    pub fn qualified(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Table {
            schema: Some(schema.into()),
            name: name.into(),
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What kind of statement was analyzed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// A query: `SELECT`, `VALUES`, `TABLE`, set operations, `WITH ... SELECT`.
    Query,
    /// `INSERT` or `REPLACE`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `MERGE`.
    Merge,
    /// `TRUNCATE`.
    Truncate,
    /// `COPY` (PostgreSQL) or `LOAD DATA` (MySQL).
    Copy,
    /// `CREATE`, `ALTER`, `DROP`, `RENAME` and other schema changes.
    Ddl,
    /// `CALL`, `DO`, `EXECUTE`: runs code whose effects cannot be seen from the SQL.
    Procedure,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, savepoints and `SET TRANSACTION`.
    Transaction(TransactionControl),
    /// `EXPLAIN`, `SHOW`, `PRAGMA` and other statements that change no table data, `SET` of
    /// a timeout or another setting no query's rows depend on included.
    Utility,
    /// `SET` (of `search_path`, the role, the time zone, `sql_mode`, ...), `RESET`,
    /// `DISCARD` or `USE`: changes no table, but may change what later statements on the
    /// same connection read or return.
    Session,
    /// Several statements in one string.
    Multiple,
    /// The SQL did not parse.
    Unparsed,
}

/// Transaction control statements, which the adapter follows to know a transaction's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionControl {
    /// `BEGIN` / `START TRANSACTION`, with the isolation level it names, if any.
    Begin(Option<IsolationLevel>),
    /// `COMMIT`.
    Commit,
    /// `ROLLBACK`.
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint(String),
    /// `RELEASE SAVEPOINT name`.
    Release(String),
    /// `ROLLBACK TO SAVEPOINT name`.
    RollbackTo(String),
    /// `SET TRANSACTION ...` or `SET SESSION CHARACTERISTICS AS TRANSACTION ...`.
    SetTransaction {
        /// The isolation level named, if any.
        isolation: Option<IsolationLevel>,
        /// Whether it sets the session default (`SET SESSION ...`) rather than the
        /// current or next transaction.
        session: bool,
    },
}

/// A transaction isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IsolationLevel {
    /// `READ UNCOMMITTED`.
    ReadUncommitted,
    /// `READ COMMITTED`.
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

/// Why a statement's result is not cached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NotCacheable {
    /// The SQL did not parse; the message is the parser's.
    ParseError(String),
    /// The statement writes (or may write) data or schema.
    Write,
    /// The string holds several statements.
    MultipleStatements,
    /// The statement is not a query (transaction control, `SET`, `SHOW`, ...).
    NotAQuery,
    /// `EXPLAIN`, whose output depends on planner statistics.
    Explain,
    /// `SELECT ... FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE`.
    Locking,
    /// `SELECT ... INTO`, which stores its result somewhere.
    SelectInto,
    /// A function whose result changes between calls (`now()`, `random()`, ...), or
    /// `TABLESAMPLE`.
    Volatile(String),
    /// A function the analyzer does not know to be deterministic and that was not declared
    /// cacheable. It might read tables or have side effects, so the statement also gets
    /// [`Analysis::writes_all`].
    UnknownFunction(String),
    /// A system catalog (`pg_catalog`, `information_schema`, `sqlite_master`, `mysql.*`).
    SystemCatalog(String),
    /// A temporary table (`temp.*`, `pg_temp.*`).
    TemporaryTable(String),
}

impl fmt::Display for NotCacheable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotCacheable::ParseError(e) => write!(f, "parse error: {e}"),
            NotCacheable::Write => f.write_str("writes data"),
            NotCacheable::MultipleStatements => f.write_str("several statements in one string"),
            NotCacheable::NotAQuery => f.write_str("not a query"),
            NotCacheable::Explain => f.write_str("EXPLAIN"),
            NotCacheable::Locking => f.write_str("locking read (FOR UPDATE / FOR SHARE)"),
            NotCacheable::SelectInto => f.write_str("SELECT ... INTO"),
            // Literals ('now') and session variables (@x) are values, not calls.
            NotCacheable::Volatile(name) if name.starts_with(['\'', '@']) => {
                write!(f, "non-deterministic value {name}")
            }
            NotCacheable::Volatile(name) if name == "TABLESAMPLE" => {
                f.write_str("TABLESAMPLE picks rows at random")
            }
            NotCacheable::Volatile(name) => write!(f, "non-deterministic function {name}()"),
            NotCacheable::UnknownFunction(name) => {
                write!(f, "function {name}() is not known to be deterministic")
            }
            NotCacheable::SystemCatalog(name) => write!(f, "system catalog {name}"),
            NotCacheable::TemporaryTable(name) => write!(f, "temporary table {name}"),
        }
    }
}

/// The analysis of one SQL string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// What kind of statement it is.
    pub kind: StatementKind,
    /// Tables the statement reads, sorted and without duplicates (views included, with the
    /// tables declared behind them).
    pub reads: Vec<Table>,
    /// Tables the statement writes, sorted and without duplicates.
    pub writes: Vec<Table>,
    /// The statement may write tables the analyzer cannot name (`CALL`, `DO`, unparseable or
    /// multi-statement SQL, `DROP SCHEMA`, a call of an unknown function, ...): the whole
    /// database must be invalidated.
    pub writes_all: bool,
    /// Tables created `TEMPORARY` by this statement: reads of them are never cached afterwards.
    pub creates_temporary: Vec<Table>,
    /// `None` when the result may be cached, or the first reason it may not.
    pub not_cacheable: Option<NotCacheable>,
    /// Functions called that the analyzer knows nothing of (lower case, without schema,
    /// sorted): each one makes the statement write everything and never be cached, unless a
    /// database's catalog says otherwise (see
    /// [`Cachalot::analyze_in`](crate::Cachalot::analyze_in)).
    pub unknown_functions: Vec<String>,
}

impl Analysis {
    /// Whether the result of this statement may be cached.
    pub fn is_cacheable(&self) -> bool {
        self.not_cacheable.is_none()
    }

    /// Whether the statement provably changes no table: nothing to invalidate after it.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty() && !self.writes_all
    }

    /// The names (without schema) of the tables read, the keys invalidation works on.
    pub fn read_names(&self) -> Vec<&str> {
        unique_names(&self.reads)
    }

    /// The names (without schema) of the tables written.
    pub fn write_names(&self) -> Vec<&str> {
        unique_names(&self.writes)
    }

    /// The transaction control this statement performs, if it is one.
    pub fn transaction_control(&self) -> Option<&TransactionControl> {
        match &self.kind {
            StatementKind::Transaction(tc) => Some(tc),
            _ => None,
        }
    }

    pub(crate) fn unparsed(message: String) -> Self {
        Analysis {
            kind: StatementKind::Unparsed,
            reads: Vec::new(),
            writes: Vec::new(),
            writes_all: true,
            creates_temporary: Vec::new(),
            not_cacheable: Some(NotCacheable::ParseError(message)),
            unknown_functions: Vec::new(),
        }
    }
}

fn unique_names(tables: &[Table]) -> Vec<&str> {
    let set: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    set.into_iter().collect()
}

/// Settings of an [`Analyzer`] beyond the dialect.
#[derive(Debug, Clone, Default)]
pub struct AnalyzerConfig {
    /// Functions (lower case, without schema) declared deterministic by the user, in addition
    /// to the built-in list.
    pub cacheable_functions: BTreeSet<String>,
    /// Views and the tables behind them (normalized names). A read of a view is a read of
    /// its tables too, and a write through a view writes them.
    pub views: HashMap<String, Vec<String>>,
    /// Functions a database's catalog says write nothing and always return the same result
    /// for the same arguments (PostgreSQL's `IMMUTABLE`): consulted only for functions the
    /// analyzer does not know, which then allow caching.
    pub catalog_deterministic: BTreeSet<String>,
    /// Functions a database's catalog says write nothing but may return other results at
    /// another time or in another session (PostgreSQL's `STABLE`): consulted only for
    /// functions the analyzer does not know, which then make a query read-only but never
    /// cached.
    pub catalog_read_only: BTreeSet<String>,
    /// For MySQL, the connection's database, stripped from qualified names like the default
    /// schema is for the other dialects.
    pub default_schema: Option<String>,
    /// Maximum parser nesting depth (a parenthesis or a function call is one level, a
    /// subquery two); deeper SQL is a parse error rather than a stack overflow. `0` means the
    /// built-in default, 40, at which the analysis needs at most about 1.1 MiB of stack. Each
    /// level costs up to about 28 KiB more: raise it only where threads have the stack for it.
    pub recursion_limit: usize,
}

/// Analyzes SQL strings of one dialect, memoizing the result by the SQL's hash so that a
/// repeated string costs one hash table lookup.
///
/// ```
/// use cachalot_core::sql::{Analyzer, Dialect, NotCacheable};
///
/// let analyzer = Analyzer::new(Dialect::Sqlite);
/// let a = analyzer.analyze("SELECT * FROM items WHERE created < datetime('now')");
/// assert!(!a.is_cacheable());
/// let again = analyzer.analyze("SELECT * FROM items WHERE created < datetime('now')");
/// assert!(std::sync::Arc::ptr_eq(&a, &again));
/// ```
#[derive(Debug)]
pub struct Analyzer {
    dialect: Dialect,
    config: AnalyzerConfig,
    memo: memo::Memo,
}

impl Analyzer {
    /// An analyzer with the default configuration.
    pub fn new(dialect: Dialect) -> Self {
        Self::with_config(dialect, AnalyzerConfig::default())
    }

    /// An analyzer with the given configuration.
    pub fn with_config(dialect: Dialect, config: AnalyzerConfig) -> Self {
        Analyzer {
            dialect,
            config,
            memo: memo::Memo::new(memo::DEFAULT_CAPACITY),
        }
    }

    /// The dialect this analyzer parses.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The configuration this analyzer was built with.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// Analyzes `sql`, from the memo when the same string was analyzed before.
    pub fn analyze(&self, sql: &str) -> Arc<Analysis> {
        self.analyze_hashed(memo::runtime_hash(sql), sql)
    }

    /// Like [`analyze`](Self::analyze) with the string's [`sql_hash`] already computed (the
    /// macros compute it at compile time).
    pub fn analyze_hashed(&self, hash: u64, sql: &str) -> Arc<Analysis> {
        if let Some(found) = self.memo.get(hash, sql) {
            return found;
        }
        let analysis = Arc::new(self.analyze_uncached(sql));
        self.memo.insert(hash, sql, analysis.clone());
        analysis
    }

    /// Analyzes `sql` without the memo.
    pub fn analyze_uncached(&self, sql: &str) -> Analysis {
        analyze::analyze(self.dialect, &self.config, sql)
    }

    /// Analyzes a view's definition as the database's catalog gives it: its query, or its
    /// whole `CREATE VIEW` statement (SQLite keeps that), of which the query is analyzed. The
    /// result says which tables a read of the view reads and whether it may be cached.
    ///
    /// ```
    /// use cachalot_core::sql::{Analyzer, Dialect};
    ///
    /// let analyzer = Analyzer::new(Dialect::Sqlite);
    /// let view = analyzer.analyze_view("CREATE VIEW busy AS SELECT o.* FROM owners o JOIN items i ON i.owner = o.id");
    /// assert!(view.is_cacheable());
    /// assert_eq!(view.read_names(), ["items", "owners"]);
    /// let recent = analyzer.analyze_view("CREATE VIEW recent AS SELECT * FROM items WHERE at > datetime('now', '-1 day')");
    /// assert!(!recent.is_cacheable());
    /// ```
    pub fn analyze_view(&self, definition: &str) -> Analysis {
        analyze::analyze_view(self.dialect, &self.config, definition)
    }
}
