//! Compile-time checked cached queries for [cachalot](https://docs.rs/cachalot): use them
//! through the `cachalot` crate, which re-exports them with runnable examples.
//!
//! - [`cached_query_as!`] and [`cached_query_scalar!`]: the cached builders of `CachedPool`
//!   and `CachedTransaction` (`db.query_as::<T>(sql).bind(..)`),
//!   with the SQL literal analyzed at compile time by the analyzer the run time uses. SQL
//!   that does not parse, writes, or is never cacheable (`FOR UPDATE`, `now()`, ...) is a
//!   compile error on the literal that says why.
//! - [`#[cached_query]`](macro@cached_query): caches the value of an `async fn` that reads through a
//!   `&CachedPool`, invalidated when the tables it reads change.
//!
//! # Which dialect the SQL is checked in
//!
//! By default the SQL is analyzed as PostgreSQL, MySQL and SQLite. At least one dialect must
//! parse it, and every dialect that parses it must find a cacheable read: a query that is a
//! plain read in SQLite but calls a function PostgreSQL knows as volatile is refused. Give
//! `dialect = postgres`, `dialect = mysql` or `dialect = sqlite` to check in your database's
//! dialect only. Functions the analyzer does not know to be deterministic are refused unless
//! declared with `cacheable_functions = ["name", ...]` (declare them on the
//! `Cachalot::builder()` too, or the run time bypasses the cache for them).
//!
//! There is no function-like `cached_query!` next to sqlx's `query!`: Rust has one namespace
//! for all macros, and `cached_query` is the attribute. sqlx's `query!` builds an anonymous
//! record type from the database's own description of the query; these macros check the SQL
//! without a database, so they cannot name columns or types. For rows of the type the context
//! asks for (a tuple, say), write `cached_query_as!(_, &db, "...")`. Writes are not cached:
//! send them with `sqlx::query!(...).execute(&db)`, which invalidates what they write.
//!
//! The expansions name `::cachalot`: the macros work in crates that depend on `cachalot`
//! under that name.
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_docs)]

mod attr;
mod check;
mod infer;
mod query;

use proc_macro::TokenStream;

/// A cached read mapping each row to a type, its SQL checked at compile time.
///
/// ```text
/// cached_query_as!([dialect = postgres|mysql|sqlite,] [cacheable_functions = ["f", ..],]
///                  RowType, source, "SQL", args...)
/// ```
///
/// Expands to `source.query_as::<RowType>("SQL").bind(arg1).bind(arg2)...`: a `QueryAs`
/// builder to finish with `fetch_all`, `fetch_one` or `fetch_optional`, exactly as the
/// run-time API. `RowType` may be `_`: the type the result is assigned to, a tuple say. `source` is `&db` (a `CachedPool`) or `&mut tx` (a `CachedTransaction`).
/// `RowType` implements `sqlx::FromRow` and `Clone`; each argument is bound and hashed into
/// the key, so it implements `sqlx::Encode`, `sqlx::Type` and `cachalot::KeyParam`.
///
/// Compile errors, on the literal: SQL that does not parse, writes, or is never cacheable
/// (`FOR UPDATE`, volatile functions such as `now()`, system catalogs, several statements),
/// and a number of arguments that does not match the placeholders (`$1..$n` or `?`).
/// The run time analyzes the SQL again (memoized) in the pool's dialect, so views, allow-
/// and deny-lists declared on the cache still apply.
#[proc_macro]
pub fn cached_query_as(input: TokenStream) -> TokenStream {
    query::expand(query::Kind::As, input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A cached read of the first column of each row, its SQL checked at compile time.
///
/// ```text
/// cached_query_scalar!([dialect = ..,] [cacheable_functions = [..],] Type, source, "SQL", args...)
/// ```
///
/// Expands to `source.query_scalar::<Type>("SQL").bind(..)...`, a `QueryScalar`; the rest is
/// as for [`cached_query_as!`].
#[proc_macro]
pub fn cached_query_scalar(input: TokenStream) -> TokenStream {
    query::expand(query::Kind::Scalar, input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Caches the value of an `async fn` that reads through a `&CachedPool`.
///
/// ```text
/// #[cached_query(
///     tables = ["users", ...],   // the tables it reads; inferred from its SQL when absent
///     ttl = "60s",               // at most this long (ms, s, m, h, d; "1h30m"); else the cache's TTL
///     key = expr,                // the key instead of the parameters; a tuple gives several
///     pool = name,               // the pool parameter, when its type is not `&..CachedPool<..>`
///     dialect = postgres,        // check the SQL in one dialect only (mysql, sqlite)
///     cacheable_functions = ["f"],
/// )]
/// async fn name(db: &CachedPool<DB>, params...) -> Result<T, E> | Option<T> | T
/// ```
///
/// - **Key**: the cache's prefix, the pool's database, the function's identity (the type name
///   of a closure defined in its body, which names its module, its `impl` and its generic
///   arguments, and a hash of its tokens, so a changed function never reads values of an
///   older one) and every parameter but the pool, each of which implements
///   `cachalot::KeyParam`; or `key = expr`. A method taking `self` needs `key = ...`.
/// - **Value**: a `Result` (whatever alias names it) caches `Ok` only, and an `Err` passes
///   through; any other type (`Option<T>`, `T`) is cached as it is. The value is `Clone +
///   Send + Sync + 'static`, and serde-serializable when cachalot's `redis` feature is on.
/// - **Invalidation**: whenever one of the tables changes through cachalot. Without
///   `tables`, they are inferred from the SQL string literals the body passes to sqlx's query
///   functions and macros (`sqlx::query("...")`, `query_as`, `query_scalar`, `query!`,
///   `query_as!`, ...), to cachalot's builders (`db.query_as::<T>("...")`) and macros. No
///   literal, a write, a never-cacheable read, a query whose SQL is not a literal, and the
///   pool handed to another function (whose reads cannot be seen) are compile errors that ask
///   for `tables = [...]`. Reads made by functions the body calls without the pool cannot be
///   seen either: name the tables of such a function.
/// - **Pool**: the first parameter whose type is a reference to a path ending in
///   `CachedPool`, or the one named with `pool = ...`; it is not part of the key (the pool's
///   database is).
/// - **Companion**: `name_uncached`, with the same signature, runs the body without the
///   cache. Both are emitted where the function was, so the attribute works on free functions
///   and on functions and methods of inherent `impl` blocks, not on trait `impl`s.
///
/// The tables are analyzed again at run time in the pool's dialect, so views, allow- and
/// deny-lists and temporary tables are followed as for any read; a handle from
/// `CachedPool::uncached()` bypasses the cache.
#[proc_macro_attribute]
pub fn cached_query(args: TokenStream, item: TokenStream) -> TokenStream {
    let original: proc_macro2::TokenStream = item.clone().into();
    match attr::expand(args.into(), item.into()) {
        Ok(expanded) => expanded.into(),
        Err(error) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(original);
            tokens.into()
        }
    }
}
