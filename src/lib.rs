//! # cachalot for SQLx
//!
//! Caches the read queries an application sends through [SQLx](sqlx), and keeps the cache
//! correct by itself: when anything writes to a table, the cache stops serving that table's
//! old results.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cachalot::{Attach, Cachalot, CachedPool};
//!
//! let cache = Cachalot::builder().build()?;
//! let db: CachedPool<sqlx::Sqlite> = cache.attach(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//!
//! sqlx::query("CREATE TABLE fish (name TEXT)").execute(&db).await?;
//! sqlx::query("INSERT INTO fish VALUES ('cachalot')").execute(&db).await?;
//!
//! let names: Vec<String> = db.query_scalar("SELECT name FROM fish").fetch_all().await?; // miss
//! let again: Vec<String> = db.query_scalar("SELECT name FROM fish").fetch_all().await?; // hit
//! assert_eq!(names, again);
//!
//! sqlx::query("INSERT INTO fish VALUES ('orca')").execute(&db).await?;               // invalidates `fish`
//! let fresh: Vec<String> = db.query_scalar("SELECT name FROM fish").fetch_all().await?;
//! assert_eq!(fresh.len(), 2);
//! assert_eq!((db.stats().hits, db.stats().misses), (1, 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## How it stays correct
//!
//! Every table has a version token in the cache backend. A cached read stores the tokens it
//! read *before* running the query; it is served only while every token is unchanged. A write
//! locks the tables it touches, runs, then replaces their tokens, so invalidation costs one
//! backend operation per table written, whatever the size of the cache. Transactions defer the
//! invalidation to COMMIT. Any cache failure degrades to running the query on the database.
//!
//! The crates: [`cachalot_core`] (SQL analysis, keys, the protocol, backends) and
//! [`cachalot_sqlx`] (the adapter). This facade re-exports what applications use.
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_docs)]

pub use cachalot_core::backend::{CacheBackend, MemoryBackend};
#[cfg(feature = "redis")]
pub use cachalot_core::backend::{RedisBackend, RedisBackendBuilder, RedisConnectError};
pub use cachalot_core::engine::Cachalot;
pub use cachalot_core::settings::CachalotBuilder;
pub use cachalot_core::signal::Invalidation;
pub use cachalot_core::stats::{BypassReason, Stats};
pub use cachalot_core::{BackendError, BuildError, backend, sql};
pub use cachalot_sqlx::{
    Attach, CacheDatabase, CacheRow, CachedConnection, CachedPool, CachedTransaction, KeyParam,
    KeySink, QueryAs, QueryScalar,
};

/// A cached read mapping each row to a type, its SQL checked at compile time.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cachalot::{CachedPool, cached_query_as};
///
/// #[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// struct Fish {
///     id: i64,
///     name: String,
/// }
///
/// let db = CachedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// sqlx::query("CREATE TABLE fish (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&db).await?;
/// sqlx::query("INSERT INTO fish (name) VALUES ('cachalot'), ('orca')").execute(&db).await?;
///
/// let big: Vec<Fish> = cached_query_as!(Fish, &db, "SELECT id, name FROM fish WHERE id > ?", 1_i64)
///     .fetch_all()
///     .await?; // miss
/// let again: Vec<Fish> = cached_query_as!(Fish, &db, "SELECT id, name FROM fish WHERE id > ?", 1_i64)
///     .fetch_all()
///     .await?; // hit
/// assert_eq!(big, again);
/// assert_eq!(db.stats().hits, 1);
///
/// // `_`: rows of the type the result is assigned to.
/// let pairs: Vec<(i64, String)> = cached_query_as!(_, &db, "SELECT id, name FROM fish ORDER BY id")
///     .fetch_all()
///     .await?;
/// assert_eq!(pairs.len(), 2);
///
/// // Inside a transaction: pass `&mut tx`.
/// let mut tx = db.begin().await?;
/// let orca: Option<Fish> = cached_query_as!(Fish, &mut tx, "SELECT id, name FROM fish WHERE id = ?", 2_i64)
///     .fetch_optional()
///     .await?;
/// tx.commit().await?;
/// assert_eq!(orca.map(|f| f.name).as_deref(), Some("orca"));
/// # Ok::<(), sqlx::Error>(())
/// # }).unwrap();
/// ```
///
/// SQL that writes, does not parse, or is never cacheable does not compile:
///
/// ```compile_fail
/// # async fn f(db: &cachalot::CachedPool<sqlx::Sqlite>) -> Result<(), sqlx::Error> {
/// let _: Vec<(i64,)> = cachalot::cached_query_as!(_, db, "SELECT id FROM fish FOR UPDATE").fetch_all().await?;
/// # Ok(()) }
/// ```
pub use cachalot_macros::cached_query_as;

/// A cached read of the first column of each row, its SQL checked at compile time.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cachalot::{CachedPool, cached_query_scalar};
///
/// let db = CachedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// sqlx::query("CREATE TABLE fish (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&db).await?;
/// sqlx::query("INSERT INTO fish (name) VALUES ('cachalot')").execute(&db).await?;
///
/// let count = || cached_query_scalar!(i64, &db, "SELECT count(*) FROM fish").fetch_one();
/// assert_eq!(count().await?, 1); // miss
/// assert_eq!(count().await?, 1); // hit
/// sqlx::query("INSERT INTO fish (name) VALUES ('orca')").execute(&db).await?; // invalidates `fish`
/// assert_eq!(count().await?, 2); // miss
/// assert_eq!((db.stats().hits, db.stats().misses), (1, 2));
/// # Ok::<(), sqlx::Error>(())
/// # }).unwrap();
/// ```
pub use cachalot_macros::cached_query_scalar;

/// Caches the value of an `async fn` that reads through a `&CachedPool`.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cachalot::{CachedPool, cached_query};
///
/// // The tables are inferred from the SQL literals of the body: `fish`.
/// #[cached_query(ttl = "10m")]
/// async fn names_from(db: &CachedPool<sqlx::Sqlite>, first: i64) -> Result<Vec<String>, sqlx::Error> {
///     sqlx::query_scalar("SELECT name FROM fish WHERE id >= ? ORDER BY id")
///         .bind(first)
///         .fetch_all(db)
///         .await
/// }
///
/// // Named tables, a value that is not a `Result`.
/// #[cached_query(tables = ["fish"])]
/// async fn first_name(db: &CachedPool<sqlx::Sqlite>) -> Option<String> {
///     names_from_uncached(db, 0).await.ok()?.into_iter().next()
/// }
///
/// let db = CachedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// sqlx::query("CREATE TABLE fish (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&db).await?;
/// sqlx::query("INSERT INTO fish (name) VALUES ('cachalot')").execute(&db).await?;
///
/// assert_eq!(names_from(&db, 1).await?, ["cachalot"]); // miss
/// assert_eq!(names_from(&db, 1).await?, ["cachalot"]); // hit
/// assert_eq!(first_name(&db).await.as_deref(), Some("cachalot"));
/// sqlx::query("INSERT INTO fish (name) VALUES ('orca')").execute(&db).await?; // invalidates both
/// assert_eq!(names_from(&db, 1).await?, ["cachalot", "orca"]);
/// assert_eq!(names_from_uncached(&db, 2).await?, ["orca"]); // never cached
/// assert_eq!(db.stats().hits, 1);
/// # Ok::<(), sqlx::Error>(())
/// # }).unwrap();
/// ```
pub use cachalot_macros::cached_query;

/// What the macros expand to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use cachalot_sqlx::cached_fn::{
        CacheFnValue, CachedResult, CachedValue, FnCall, Tag, checked_sql,
    };
}

/// The names most applications import: `use cachalot::prelude::*;`.
pub mod prelude {
    pub use cachalot_core::engine::Cachalot;
    pub use cachalot_sqlx::{Attach, CachedPool, CachedTransaction};
}
