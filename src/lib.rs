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
pub use cachalot_core::engine::Cachalot;
pub use cachalot_core::settings::CachalotBuilder;
pub use cachalot_core::signal::Invalidation;
pub use cachalot_core::stats::{BypassReason, Stats};
pub use cachalot_core::{BackendError, BuildError, backend, sql};
pub use cachalot_sqlx::{
    Attach, CacheDatabase, CachedPool, CachedTransaction, KeyParam, QueryAs, QueryScalar,
};

/// The names most applications import: `use cachalot::prelude::*;`.
pub mod prelude {
    pub use cachalot_core::engine::Cachalot;
    pub use cachalot_sqlx::{Attach, CachedPool, CachedTransaction};
}
