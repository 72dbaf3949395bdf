//! Where version tokens and cache entries live.
//!
//! A backend stores two things: the state of every table (its current [`Token`], or the
//! writers that hold a lock on it) and the entries (a query's value with the tokens it was
//! stored with). [`CacheBackend`] is exactly what the protocol of
//! [`Cachalot`](crate::Cachalot) needs, each method one round trip for a remote backend.
//!
//! The protocol's guarantees rest on these rules, which every backend must keep:
//! - Table states must not be lost while a lock is held; a lost *token* is fine (it reads as
//!   [`TokenState::Missing`], which is a miss), a lost *lock* would let a reader store or
//!   serve data a writer is changing.
//! - [`lock`](CacheBackend::lock) removes the token: once the lock expires, a writer that
//!   never bumped leaves the table missing, never its old token.
//! - Locks are a multiset: every holder has its own deadline, and one holder's
//!   [`bump`](CacheBackend::bump) leaves the others' locks in place.
//! - A token is set only while no lock is live: a bump leaves a table that another writer
//!   still locks without a token. A present token then proves the table unlocked, which lets
//!   a remote backend skip the lock check (and the clock) on reads.

mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::{RedisBackend, RedisBackendBuilder, RedisConnectError};
pub use memory::{MemoryBackend, MemoryBackendBuilder};

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::error::BackendError;
use crate::key::QueryKey;
use crate::version::Token;

/// A backend operation's result, boxed so that [`CacheBackend`] is object safe.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// A table of one database, as invalidation knows it: by bare name, without schema.
///
/// Its hash is computed once, when it is made: the hit path looks tables up without hashing
/// their names again.
#[derive(Clone)]
pub struct TableId {
    database: Arc<str>,
    table: Arc<str>,
    hash: u64,
}

/// The epoch's reserved name, shared so that an epoch id costs no allocation.
fn epoch_name() -> Arc<str> {
    static EPOCH: OnceLock<Arc<str>> = OnceLock::new();
    EPOCH.get_or_init(|| Arc::from("")).clone()
}

impl TableId {
    /// A table of `database`.
    ///
    /// The empty name is the epoch's: a table that really has an empty name (SQLite allows
    /// `""`) shares the epoch's token, which only invalidates more.
    pub fn new(database: &Arc<str>, table: impl Into<Arc<str>>) -> Self {
        Self::from_parts(database.clone(), table.into())
    }

    /// The database-wide epoch of `database`: every read depends on it, and bumping it
    /// invalidates every entry of the database at once.
    pub fn epoch(database: &Arc<str>) -> Self {
        Self::from_parts(database.clone(), epoch_name())
    }

    fn from_parts(database: Arc<str>, table: Arc<str>) -> Self {
        let seed = xxhash_rust::xxh3::xxh3_64(database.as_bytes());
        let hash = xxhash_rust::xxh3::xxh3_64_with_seed(table.as_bytes(), seed);
        TableId {
            database,
            table,
            hash,
        }
    }

    /// The database identity (the same as in the query keys).
    pub fn database(&self) -> &Arc<str> {
        &self.database
    }

    /// The table's bare name; empty for the database-wide epoch.
    pub fn table(&self) -> &Arc<str> {
        &self.table
    }

    /// Whether this is the database-wide epoch.
    pub fn is_epoch(&self) -> bool {
        self.table.is_empty()
    }

    /// A 64-bit hash of the database and the table, computed once.
    pub fn hash64(&self) -> u64 {
        self.hash
    }
}

impl PartialEq for TableId {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.table == other.table && self.database == other.database
    }
}

impl Eq for TableId {}

impl Hash for TableId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for TableId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TableId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.database, &self.table).cmp(&(&other.database, &other.table))
    }
}

impl fmt::Debug for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_epoch() {
            write!(f, "{}:<epoch>", self.database)
        } else {
            write!(f, "{}:{}", self.database, self.table)
        }
    }
}

/// The state of one table's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenState {
    /// No token: never read, evicted, flushed, or a lock expired without a bump. A miss.
    Missing,
    /// A writer holds a lock: entries of the table are neither served nor stored.
    Locked,
    /// The current token.
    Present(Token),
}

impl TokenState {
    /// The token, if present.
    pub fn token(self) -> Option<Token> {
        match self {
            TokenState::Present(token) => Some(token),
            _ => None,
        }
    }
}

/// Until when a lock taken at `now` for `ttl` lasts; an hour if `ttl` is beyond what an
/// [`Instant`] can hold.
pub(crate) fn lock_deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or(now + Duration::from_secs(3600))
}

/// A lock holder: one write in flight.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockId(u128);

impl LockId {
    /// A lock id no other write has.
    pub fn fresh() -> Self {
        LockId(Token::fresh().to_u128())
    }

    /// The id as one number (for remote backends).
    pub fn to_u128(self) -> u128 {
        self.0
    }

    /// An id from [`to_u128`](Self::to_u128).
    pub fn from_u128(value: u128) -> Self {
        LockId(value)
    }
}

impl fmt::Debug for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockId({:032x})", self.0)
    }
}

/// A cached value.
#[derive(Clone)]
pub enum EntryValue {
    /// The value itself, shared with every hit (in-process backends).
    Local(Arc<dyn Any + Send + Sync>),
    /// The value serialized (remote backends).
    Encoded(Arc<[u8]>),
}

impl fmt::Debug for EntryValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryValue::Local(_) => f.write_str("Local(..)"),
            EntryValue::Encoded(bytes) => write!(f, "Encoded({} bytes)", bytes.len()),
        }
    }
}

/// One cached result.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The tokens of the tables read (epoch first, in the order of the read's
    /// [`TableId`]s), as they were *before* the query ran.
    pub tokens: Arc<[Token]>,
    /// The key's material: a hit must match it exactly.
    pub material: Arc<[u8]>,
    /// The value.
    pub value: EntryValue,
    /// The value's approximate size in bytes, which bounds the cache.
    pub weight: usize,
}

impl Entry {
    /// The approximate memory the entry takes, value, key and tokens included.
    pub fn footprint(&self) -> usize {
        const OVERHEAD: usize = 96;
        let value = match &self.value {
            EntryValue::Local(_) => self.weight,
            EntryValue::Encoded(bytes) => bytes.len(),
        };
        value
            .saturating_add(self.material.len())
            .saturating_add(self.tokens.len() * std::mem::size_of::<Token>())
            .saturating_add(OVERHEAD)
    }
}

/// The state of each table of a read, in order: up to four inline, so that a fetch allocates
/// nothing for them. Build it with `collect()`, or from a `Vec` with `into()`.
pub type TokenStates = smallvec::SmallVec<[TokenState; 4]>;

/// What one read round trip returns.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The state of each table asked for, in the same order.
    pub tokens: TokenStates,
    /// The entry under the key's hash, if any. Its material and tokens are not checked yet.
    /// A backend may leave it out when a token is not present (it cannot be a hit).
    pub entry: Option<Entry>,
}

/// Where tokens and entries live. Object safe: the engine holds an `Arc<dyn CacheBackend>`.
///
/// Methods that take several tables need not be atomic across tables: the protocol only
/// needs each table's state to change atomically.
pub trait CacheBackend: Send + Sync + fmt::Debug + 'static {
    /// One read round trip: the state of every table in `tables` and the entry stored under
    /// `key`'s hash.
    fn fetch<'a>(&'a self, tables: &'a [TableId], key: &'a QueryKey) -> BackendFuture<'a, Fetched>;

    /// Sets a fresh token on each table that has neither a token nor a lock, and returns every
    /// table's effective state: the token set (by this call or a racing one) or
    /// [`TokenState::Locked`].
    fn init_tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>>;

    /// Whether this backend keeps values as bytes ([`EntryValue::Encoded`]) rather than in
    /// process: the engine then stores only values read with a codec.
    fn encodes_values(&self) -> bool {
        false
    }

    /// The same backend as plain calls, for one that answers in process without waiting: the
    /// engine then reads and stores without boxing a future per call (an allocation and a
    /// poll on every read). `None`, the default, for a backend across a network.
    fn local(&self) -> Option<&dyn LocalBackend> {
        None
    }

    /// Whether a store is a round trip to another process (Redis): a miss then hands its
    /// result to the caller first and stores it in a task of its own. In process, a store
    /// costs less than handing it to another task, so the memory backend says no.
    fn stores_remotely(&self) -> bool {
        false
    }

    /// Stores `entry` under `key`'s hash for at most `ttl`, replacing any entry there, if the
    /// current tokens of `tables` (the same tables as the read's
    /// [`fetch`](Self::fetch)) are still the entry's. Otherwise the entry could never be served
    /// and must not replace a newer one: returns `false` without storing. (The check need not
    /// be atomic with the store: a hit compares tokens again.)
    fn store<'a>(
        &'a self,
        tables: &'a [TableId],
        key: &'a QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> BackendFuture<'a, bool>;

    /// Locks `tables` for the write `lock`, until it bumps or `ttl` passes: removes each
    /// table's token and adds `lock` to its holders.
    fn lock<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: LockId,
        ttl: Duration,
    ) -> BackendFuture<'a, ()>;

    /// Ends a write: removes `lock` (if any) from each table's holders and sets a fresh token
    /// on each table no other live holder locks (one still locked stays without a token until
    /// its last holder bumps, or its lock expires into a missing token). Returns the fresh
    /// tokens, in order, set or not: their time is the invalidation's.
    fn bump<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: Option<LockId>,
    ) -> BackendFuture<'a, Vec<Token>>;

    /// The state of each table, without any entry.
    fn tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>>;

    /// Removes every entry. Table states stay: dropping a lock would be unsafe, and dropping
    /// tokens is useless once the entries are gone.
    fn clear(&self) -> BackendFuture<'_, ()>;
}

/// The synchronous face of a backend that answers in process (see
/// [`CacheBackend::local`]): each method returns what its namesake's future would.
///
/// ```
/// use std::sync::Arc;
/// use cachalot_core::backend::{CacheBackend, MemoryBackend, TableId, TokenState};
/// use cachalot_core::key::KeyBuilder;
///
/// let backend = MemoryBackend::default();
/// let local = backend.local().expect("the memory backend answers in process");
/// let db: Arc<str> = Arc::from("app");
/// let key = KeyBuilder::new("p", "app", "SELECT 1").finish();
/// let fetched = local.fetch_now(&[TableId::epoch(&db)], &key).unwrap();
/// // Nothing read yet: no token, no entry.
/// assert!(matches!(fetched.tokens[..], [TokenState::Missing]));
/// assert!(fetched.entry.is_none());
/// ```
pub trait LocalBackend {
    /// [`CacheBackend::fetch`], answered now.
    fn fetch_now(&self, tables: &[TableId], key: &QueryKey) -> Result<Fetched, BackendError>;

    /// [`CacheBackend::store`], done now.
    fn store_now(
        &self,
        tables: &[TableId],
        key: &QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> Result<bool, BackendError>;

    /// [`CacheBackend::lock`], done now.
    fn lock_now(&self, tables: &[TableId], lock: LockId, ttl: Duration)
    -> Result<(), BackendError>;

    /// [`CacheBackend::bump`], done now.
    fn bump_now(
        &self,
        tables: &[TableId],
        lock: Option<LockId>,
    ) -> Result<Vec<Token>, BackendError>;
}

impl<B: CacheBackend + ?Sized> CacheBackend for Arc<B> {
    fn local(&self) -> Option<&dyn LocalBackend> {
        (**self).local()
    }
    fn encodes_values(&self) -> bool {
        (**self).encodes_values()
    }
    fn stores_remotely(&self) -> bool {
        (**self).stores_remotely()
    }
    fn fetch<'a>(&'a self, tables: &'a [TableId], key: &'a QueryKey) -> BackendFuture<'a, Fetched> {
        (**self).fetch(tables, key)
    }
    fn init_tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>> {
        (**self).init_tokens(tables)
    }
    fn store<'a>(
        &'a self,
        tables: &'a [TableId],
        key: &'a QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> BackendFuture<'a, bool> {
        (**self).store(tables, key, entry, ttl)
    }
    fn lock<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: LockId,
        ttl: Duration,
    ) -> BackendFuture<'a, ()> {
        (**self).lock(tables, lock, ttl)
    }
    fn bump<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: Option<LockId>,
    ) -> BackendFuture<'a, Vec<Token>> {
        (**self).bump(tables, lock)
    }
    fn tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>> {
        (**self).tokens(tables)
    }
    fn clear(&self) -> BackendFuture<'_, ()> {
        (**self).clear()
    }
}
