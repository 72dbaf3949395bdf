//! The core of cachalot: everything but the SQL driver.
//!
//! - [`sql`]: which tables a statement reads and writes, and whether it may be cached.
//! - [`key`]: query keys, hashed from the SQL, the bound values and the result type.
//!
//! With the `runtime` feature (on by default):
//! - [`version`]: the version tokens that make invalidation O(tables written).
//! - [`backend`]: where tokens and entries live ([`backend::MemoryBackend`], ...).
//! - [`engine`]: [`Cachalot`], the protocol that keeps cached reads correct.
//! - [`settings`]: what [`Cachalot::builder`] configures.
//! - [`signal`]: the [`Invalidation`](signal::Invalidation) events of finished writes.
//! - [`stats`]: hit, miss and bypass counters.
//!
//! Without `runtime` it compiles down to the SQL analysis and key hashing, which the
//! compile-time macros share.
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_docs)]

mod hashing;
pub mod key;
pub mod sql;

#[cfg(feature = "runtime")]
pub mod backend;
#[cfg(feature = "runtime")]
pub mod engine;
#[cfg(feature = "runtime")]
mod error;
#[cfg(feature = "runtime")]
pub mod settings;
#[cfg(feature = "runtime")]
pub mod signal;
#[cfg(feature = "runtime")]
pub mod stats;
#[cfg(feature = "runtime")]
pub mod version;

#[cfg(feature = "runtime")]
pub use engine::{Cachalot, Decision, ReadSet, WriteGuard, WriteSet};
#[cfg(feature = "runtime")]
pub use error::{BackendError, BuildError};
#[cfg(feature = "runtime")]
pub use stats::{BypassReason, Stats};
