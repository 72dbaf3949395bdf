//! The SQLx adapter of cachalot: put the cache in front of a [`sqlx::Pool`].
//!
//! - [`CachedPool`]: attach with [`CachedPool::new`] or [`Attach::attach`]. Cached typed reads
//!   with [`CachedPool::query_as`] / [`CachedPool::query_scalar`]; every other sqlx call works
//!   through `&CachedPool` as an [`Executor`](sqlx::Executor), and writes invalidate the
//!   tables they touch.
//! - [`CachedTransaction`]: invalidation deferred to COMMIT, reads of tables the transaction
//!   wrote bypass the cache.
//!
//! Features `postgres`, `mysql` and `sqlite` implement [`CacheDatabase`] for sqlx's drivers.
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_docs)]

#[doc(hidden)]
pub mod cached_fn;
mod connection;
mod database;
mod dependents;
mod execute;
mod executor;
mod pool;
mod query_as;
mod row;
mod transaction;

pub use cachalot_core::key::{KeyParam, KeySink};
pub use connection::CachedConnection;
pub use database::{CacheDatabase, CatalogDependents};
pub use pool::{Attach, CachedPool};
pub use query_as::{QueryAs, QueryScalar};
pub use row::CacheRow;
pub use transaction::CachedTransaction;
