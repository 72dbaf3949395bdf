//! Errors of the cache machinery. None of them ever reaches a query's caller: the engine
//! degrades a [`BackendError`] to an uncached query, and a [`BuildError`] is only returned
//! when the cache is configured.

use std::time::Duration;

/// A cache backend could not answer. The engine then runs the query uncached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend cannot be reached (connection refused, pool exhausted, ...).
    #[error("cache backend unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer in time.
    #[error("cache backend timed out after {0:?}")]
    Timeout(Duration),
    /// The backend answered with data that cannot be decoded.
    #[error("cache backend returned corrupt data: {0}")]
    Corrupt(String),
    /// Any other failure.
    #[error("cache backend error: {0}")]
    Other(String),
}

/// The cache settings are invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A duration setting is zero: a zero `ttl` would cache nothing, a zero `lock_ttl` would
    /// protect nothing.
    #[error("`{0}` must be longer than zero")]
    ZeroDuration(&'static str),
    /// A view was declared without the tables behind it: its reads could never be invalidated.
    #[error("view `{0}` is declared without any table behind it")]
    EmptyView(String),
    /// A table or view name is empty.
    #[error("empty name in `{0}`")]
    EmptyName(&'static str),
}
