//! Run-time support of the macros of `cachalot-macros`, hidden from the documentation: what
//! `#[cached_query]` and the `cached_query*!` macros expand to. Not a stable API.
//!
//! A cached function's value is stored under a key made of the cache's prefix, the database
//! identity, the function's identity (the type name of a closure defined in its body, which
//! names its module, its `impl` and its generic arguments, plus a hash of its tokens) and its
//! key parameters. It depends on the tables its SQL reads: each SQL string the macro found or
//! made (`SELECT * FROM t` for each table named with `tables = [...]`) is analyzed at run time in
//! the pool's dialect, so views, allow- and deny-lists and temporary tables are followed exactly
//! as for any other read.

use std::any::type_name;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use cachalot_core::ReadSet;
use cachalot_core::engine::{Codec, Decision, ReadOptions};
use cachalot_core::key::{KeyBuilder, KeyParam};
use cachalot_core::stats::BypassReason;

use crate::database::CacheDatabase;
use crate::pool::CachedPool;

/// What the function-like macros pass as SQL: the literal, checked at compile time to hash
/// to `hash` with this crate's [`sql_hash`](cachalot_core::sql::sql_hash), so that a macro
/// and a run time of different versions cannot disagree silently. `tables` are the tables the
/// compile-time analysis found (the run time analyzes the SQL again, memoized, in the pool's
/// dialect and with its configuration).
#[doc(hidden)]
pub const fn checked_sql(
    sql: &'static str,
    hash: u64,
    tables: &'static [&'static str],
) -> &'static str {
    let _ = tables;
    assert!(
        cachalot_core::sql::sql_hash(sql) == hash,
        "cachalot: the macros and the run time hash SQL differently: use one version of cachalot"
    );
    sql
}

/// A value a cached function may return: kept in process by the memory backend, and encoded
/// as JSON for a backend that stores bytes when the `redis` feature is on.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the cached value of a `#[cached_query]` function",
    label = "the value of this function is cached",
    note = "a cached value is `Clone + Send + Sync + 'static`, and serde's `Serialize + DeserializeOwned` with the `redis` feature"
)]
pub trait CacheFnValue: Clone + Send + Sync + 'static {
    /// The codec a backend that stores bytes keeps the value with, if any.
    fn codec() -> Option<Codec<Self>>;
}

#[cfg(feature = "redis")]
impl<T> CacheFnValue for T
where
    T: Clone + Send + Sync + 'static + serde::Serialize + serde::de::DeserializeOwned,
{
    fn codec() -> Option<Codec<Self>> {
        Some(Codec::json())
    }
}

#[cfg(not(feature = "redis"))]
impl<T: Clone + Send + Sync + 'static> CacheFnValue for T {
    fn codec() -> Option<Codec<Self>> {
        None
    }
}

/// One call of a cached function: where it reads, its key so far, and its options.
#[doc(hidden)]
pub struct FnCall<'a, DB: CacheDatabase> {
    pool: &'a CachedPool<DB>,
    key: KeyBuilder,
    sqls: &'static [&'static str],
    ttl: Option<Duration>,
}

impl<'a, DB: CacheDatabase> FnCall<'a, DB> {
    /// Starts the call of the function in whose body `marker` (a closure) is defined.
    /// `code` is a hash of the function's tokens, `sqls` the SQL the tables read are taken
    /// from, `ttl_ms` the function's TTL in milliseconds (0: the cache's).
    pub fn new<M>(
        pool: &'a CachedPool<DB>,
        marker: &M,
        code: u64,
        sqls: &'static [&'static str],
        ttl_ms: u64,
    ) -> Self {
        let _ = marker;
        let identity = format!("cachalot:fn:{}#{code:016x}", type_name::<M>());
        FnCall {
            pool,
            key: KeyBuilder::in_namespace(&pool.namespace, &identity, KeyBuilder::DEFAULT_ROOM),
            sqls,
            ttl: (ttl_ms > 0).then(|| Duration::from_millis(ttl_ms)),
        }
    }

    /// Adds a key parameter.
    pub fn param<P: KeyParam + ?Sized>(&mut self, value: &P) {
        self.key.push_param(value);
    }

    /// Returns the cached value, or runs `fetch` and caches its `Ok` value.
    async fn read<T, E, F, Fut>(self, fetch: F) -> Result<T, E>
    where
        T: CacheFnValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let FnCall {
            pool,
            key,
            sqls,
            ttl,
        } = self;
        let cache = &pool.cache;
        if pool.bypass_reads {
            cache.record_bypass(BypassReason::Disabled);
            return fetch().await;
        }
        pool.catalog_for_reads().await;
        let mut tables: Vec<String> = Vec::new();
        for sql in sqls {
            let analysis = cache.analyze_in(&pool.database, DB::DIALECT, sql);
            match pool.decide(&analysis) {
                Decision::Cache(reads) => tables.extend(reads.tables().map(str::to_owned)),
                Decision::Bypass(reason) => {
                    cache.record_bypass(reason);
                    return fetch().await;
                }
            }
        }
        let reads = ReadSet::new(&pool.database, tables);
        let key = key.finish_with_result_type(&["fn:", type_name::<T>()]);
        let mut options = ReadOptions::new();
        if let Some(ttl) = ttl {
            options = options.ttl(ttl);
        }
        if let Some(codec) = T::codec() {
            options = options.codec(codec);
        }
        let weigh = |_: &T| std::mem::size_of::<T>();
        cache.read_with(&reads, key, options, weigh, fetch).await
    }
}

/// The return type of a cached function, for the method lookup that tells a `Result` (only
/// `Ok` is cached) from any other value (cached as it is), whatever alias names it.
#[doc(hidden)]
pub struct Tag<R>(PhantomData<fn() -> R>);

impl<R> Tag<R> {
    /// The tag of `R`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Tag(PhantomData)
    }
}

/// Reads a function returning a `Result`: found first by method lookup on `&Tag<Result<..>>`.
#[doc(hidden)]
pub trait CachedResult {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;

    /// The cached `Ok` value, or the result of `fetch` (an `Err` is never cached).
    fn __cachalot_read<DB, F, Fut>(
        &self,
        call: FnCall<'_, DB>,
        fetch: F,
    ) -> impl Future<Output = Result<Self::Ok, Self::Err>>
    where
        DB: CacheDatabase,
        Self::Ok: CacheFnValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Self::Ok, Self::Err>>;
}

impl<T, E> CachedResult for Tag<Result<T, E>> {
    type Ok = T;
    type Err = E;

    fn __cachalot_read<DB, F, Fut>(
        &self,
        call: FnCall<'_, DB>,
        fetch: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        DB: CacheDatabase,
        T: CacheFnValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        call.read(fetch)
    }
}

/// Reads a function returning anything else (`Option<T>`, `T`): found by method lookup on
/// `&Tag<R>` only when [`CachedResult`] does not apply.
#[doc(hidden)]
pub trait CachedValue {
    /// The return type.
    type Value;

    /// The cached value, or the value of `fetch`.
    fn __cachalot_read<DB, F, Fut>(
        &self,
        call: FnCall<'_, DB>,
        fetch: F,
    ) -> impl Future<Output = Self::Value>
    where
        DB: CacheDatabase,
        Self::Value: CacheFnValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Self::Value>;
}

impl<R> CachedValue for &Tag<R> {
    type Value = R;

    async fn __cachalot_read<DB, F, Fut>(&self, call: FnCall<'_, DB>, fetch: F) -> R
    where
        DB: CacheDatabase,
        R: CacheFnValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let read = call.read(move || async move { Ok::<R, Infallible>(fetch().await) });
        match read.await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}
