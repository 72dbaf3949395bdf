//! The in-process backend: entries in a moka cache bounded in bytes, table states in sharded
//! hash maps that are never evicted.

use std::collections::HashMap;
use std::fmt;
use std::future::ready;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::{
    BackendFuture, CacheBackend, Entry, Fetched, LocalBackend, LockId, TableId, TokenState,
    TokenStates,
};
use crate::error::BackendError;
use crate::key::QueryKey;
use crate::version::Token;

/// Default capacity: 64 MiB of entries.
const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Table states are sharded so that readers of different tables never share a lock.
const SHARDS: usize = 16;

/// The embedded backend: fast, bounded, private to this process.
///
/// A hit returns the stored `Arc` of the value: nothing is serialized or copied. Entries are
/// bounded by their approximate size in bytes and expire after their TTL; table states (tokens
/// and locks) are kept apart and never evicted, since a lost lock would be a stale read.
///
/// Cloning is cheap and shares the cache.
///
/// ```
/// use cachalot_core::Cachalot;
/// use cachalot_core::backend::MemoryBackend;
///
/// let backend = MemoryBackend::builder().max_bytes(16 * 1024 * 1024).build();
/// let cachalot = Cachalot::builder().backend(backend.clone()).build().unwrap();
/// # let _ = cachalot;
/// assert_eq!(backend.entry_count(), 0);
/// assert_eq!(backend.max_bytes(), 16 * 1024 * 1024);
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

/// Keys are hashes already (a [`QueryKey`]'s, a [`TableId`]'s): hashing them again is waste.
type Fast = crate::hashing::BuildMix;
/// Table states by [`TableId::hash64`] alone: a lookup compares one number instead of two
/// names, and a write's `entry` clones no id. Two tables whose hashes collided would only
/// share a state, so that a write to either invalidates both: extra misses, never a stale read.
type Shard = RwLock<HashMap<u64, TableState, Fast>>;

struct Inner {
    entries: moka::sync::Cache<u128, Slot, Fast>,
    tables: Box<[Shard]>,
    max_bytes: u64,
}

/// What moka stores: the entry and until when it may be served (`None`: a TTL too long to
/// reach).
///
/// The deadline is checked on lookup rather than given to moka as a per-entry expiry: moka's
/// expiry policy costs every lookup and every insert its timer-wheel bookkeeping, while an
/// entry past its deadline is simply never served and is evicted like any other.
#[derive(Clone)]
struct Slot {
    entry: Entry,
    expires: Option<Instant>,
}

/// A table's version: its token, and the writers holding a lock on it.
#[derive(Debug, Default)]
struct TableState {
    token: Option<Token>,
    holders: Vec<(LockId, Instant)>,
}

impl TableState {
    fn state(&self, now: &mut Option<Instant>) -> TokenState {
        if !self.holders.is_empty() {
            // Reading the clock costs; only a table with holders needs it.
            let now = *now.get_or_insert_with(Instant::now);
            if self.holders.iter().any(|&(_, deadline)| deadline > now) {
                return TokenState::Locked;
            }
        }
        match self.token {
            Some(token) => TokenState::Present(token),
            None => TokenState::Missing,
        }
    }

    fn prune(&mut self, now: Instant) {
        self.holders.retain(|&(_, deadline)| deadline > now);
    }
}

/// Builds a [`MemoryBackend`].
#[derive(Debug, Clone)]
pub struct MemoryBackendBuilder {
    max_bytes: u64,
}

impl MemoryBackendBuilder {
    /// The most memory entries may take, in bytes (approximate: values are weighed by the
    /// engine's weigher). Default: 64 MiB.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The backend.
    pub fn build(self) -> MemoryBackend {
        let entries = moka::sync::Cache::builder()
            .max_capacity(self.max_bytes)
            .weigher(|_key: &u128, slot: &Slot| {
                u32::try_from(slot.entry.footprint()).unwrap_or(u32::MAX)
            })
            .build_with_hasher(Fast::default());
        MemoryBackend {
            inner: Arc::new(Inner {
                entries,
                tables: (0..SHARDS).map(|_| RwLock::default()).collect(),
                max_bytes: self.max_bytes,
            }),
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::builder().build()
    }
}

impl MemoryBackend {
    /// A backend holding at most `max_bytes` of entries.
    pub fn new(max_bytes: u64) -> Self {
        MemoryBackend::builder().max_bytes(max_bytes).build()
    }

    /// A builder, with the default capacity of 64 MiB.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// The capacity in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// How many entries are stored (approximate until [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn entry_count(&self) -> u64 {
        self.inner.entries.entry_count()
    }

    /// The total weight of the stored entries, in bytes (approximate until
    /// [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn weighted_size(&self) -> u64 {
        self.inner.entries.weighted_size()
    }

    /// Runs moka's pending maintenance (evictions, expirations) now instead of on later
    /// accesses.
    pub fn run_pending_tasks(&self) {
        self.inner.entries.run_pending_tasks();
    }

    /// Forgets a table's token, as an eviction or a restart of a remote backend would; its
    /// locks stay. The next read of the table is a miss.
    pub fn drop_token(&self, table: &TableId) {
        if let Some(state) = self.write_shard(table).get_mut(&table.hash64()) {
            state.token = None;
        }
    }

    /// The entry stored under `hash`, unless its TTL has passed (then it is dropped).
    fn live(&self, hash: u128) -> Option<Entry> {
        let slot = self.inner.entries.get(&hash)?;
        if slot.expires.is_none_or(|expires| expires > Instant::now()) {
            return Some(slot.entry);
        }
        self.inner.entries.invalidate(&hash);
        None
    }

    fn shard(&self, table: &TableId) -> &Shard {
        // Middle bits: the map uses the low ones for buckets and the high ones for tags.
        let index = (table.hash64() >> 32) as usize % SHARDS;
        &self.inner.tables[index]
    }

    fn write_shard(
        &self,
        table: &TableId,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, TableState, Fast>> {
        // A panic cannot leave a table state half-updated: every update is one assignment.
        self.shard(table)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn states(&self, tables: &[TableId]) -> TokenStates {
        let mut now = None;
        tables
            .iter()
            .map(|table| self.state(table, &mut now))
            .collect()
    }

    /// One table's state (`now` is read from the clock once, if a table has holders).
    fn state(&self, table: &TableId, now: &mut Option<Instant>) -> TokenState {
        let shard = self
            .shard(table)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard
            .get(&table.hash64())
            .map_or(TokenState::Missing, |s| s.state(now))
    }

    fn init_now(&self, tables: &[TableId]) -> Vec<TokenState> {
        let now = Instant::now();
        tables
            .iter()
            .map(|table| {
                let mut shard = self.write_shard(table);
                let state = shard.entry(table.hash64()).or_default();
                state.prune(now);
                if !state.holders.is_empty() {
                    TokenState::Locked
                } else {
                    TokenState::Present(*state.token.get_or_insert_with(Token::fresh))
                }
            })
            .collect()
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("max_bytes", &self.inner.max_bytes)
            .field("entry_count", &self.entry_count())
            .field("weighted_size", &self.weighted_size())
            .finish()
    }
}

impl LocalBackend for MemoryBackend {
    fn fetch_now(&self, tables: &[TableId], key: &QueryKey) -> Result<Fetched, BackendError> {
        let tokens = self.states(tables);
        let entry = if tokens.iter().all(|s| matches!(s, TokenState::Present(_))) {
            self.live(key.hash())
        } else {
            None
        };
        Ok(Fetched { tokens, entry })
    }

    fn store_now(
        &self,
        tables: &[TableId],
        key: &QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        // Compared table by table: a miss's store allocates nothing for the check.
        let mut now = None;
        let still_current = tables.len() == entry.tokens.len()
            && tables
                .iter()
                .zip(entry.tokens.iter())
                .all(|(table, token)| self.state(table, &mut now) == TokenState::Present(*token));
        if still_current {
            let expires = Instant::now().checked_add(ttl);
            self.inner
                .entries
                .insert(key.hash(), Slot { entry, expires });
        }
        Ok(still_current)
    }

    fn lock_now(
        &self,
        tables: &[TableId],
        lock: LockId,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let now = Instant::now();
        let deadline = super::lock_deadline(now, ttl);
        for table in tables {
            let mut shard = self.write_shard(table);
            let state = shard.entry(table.hash64()).or_default();
            state.prune(now);
            state.token = None;
            state.holders.push((lock, deadline));
        }
        Ok(())
    }

    fn bump_now(
        &self,
        tables: &[TableId],
        lock: Option<LockId>,
    ) -> Result<Vec<Token>, BackendError> {
        let now = Instant::now();
        Ok(tables
            .iter()
            .map(|table| {
                let mut shard = self.write_shard(table);
                let state = shard.entry(table.hash64()).or_default();
                state.prune(now);
                if let Some(lock) = lock
                    && let Some(i) = state.holders.iter().position(|&(id, _)| id == lock)
                {
                    state.holders.swap_remove(i);
                }
                let token = Token::fresh();
                // Another writer's lock stays: the table gets its token when that one bumps
                // or expires, as with Redis.
                if state.holders.is_empty() {
                    state.token = Some(token);
                }
                token
            })
            .collect())
    }
}

impl CacheBackend for MemoryBackend {
    fn local(&self) -> Option<&dyn LocalBackend> {
        Some(self)
    }

    fn fetch<'a>(&'a self, tables: &'a [TableId], key: &'a QueryKey) -> BackendFuture<'a, Fetched> {
        Box::pin(ready(self.fetch_now(tables, key)))
    }

    fn init_tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>> {
        Box::pin(ready(Ok(self.init_now(tables))))
    }

    fn store<'a>(
        &'a self,
        tables: &'a [TableId],
        key: &'a QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> BackendFuture<'a, bool> {
        Box::pin(ready(self.store_now(tables, key, entry, ttl)))
    }

    fn lock<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: LockId,
        ttl: Duration,
    ) -> BackendFuture<'a, ()> {
        Box::pin(ready(LocalBackend::lock_now(self, tables, lock, ttl)))
    }

    fn bump<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: Option<LockId>,
    ) -> BackendFuture<'a, Vec<Token>> {
        Box::pin(ready(LocalBackend::bump_now(self, tables, lock)))
    }

    fn tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>> {
        Box::pin(ready(Ok(self.states(tables).into_vec())))
    }

    fn clear(&self) -> BackendFuture<'_, ()> {
        self.inner.entries.invalidate_all();
        Box::pin(ready(Ok(())))
    }
}
