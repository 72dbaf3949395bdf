//! The read path: decide, look up, and on a miss run the query once and store its result.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::flight::{self, Role, Shared};
use super::options::{Codec, ReadOptions};
use super::{Cachalot, Inner};
use crate::backend::{CacheBackend, Entry, EntryValue, Fetched, TableId, TokenState};
use crate::error::BackendError;
use crate::key::QueryKey;
use crate::sql::{Analysis, NotCacheable};
use crate::stats::BypassReason;
use crate::version::Token;

/// The tables a cached read depends on: the database epoch first, then each table read
/// (sorted, without duplicates).
///
/// A read set from [`Cachalot::decide`] is shared by every read of its statement, and also
/// keeps how well caching the statement pays (see
/// [`skip_churning_reads`](crate::settings::CachalotBuilder::skip_churning_reads)).
#[derive(Clone)]
pub struct ReadSet {
    inner: Arc<Tables>,
}

struct Tables {
    ids: Box<[TableId]>,
    heat: Heat,
}

/// Lookups missed in a row, because a table changed since the statement was last stored,
/// before its reads skip the cache.
const CHURN_LIMIT: u32 = 32;

/// While skipping, one read in this many still asks the cache.
const PROBE_EVERY: u32 = 16;

/// Whether caching a statement pays: it does not when its entries are invalidated before
/// anyone reads them.
#[derive(Default)]
struct Heat {
    /// Misses in a row whose tables changed since the last store.
    churn: AtomicU32,
    /// A digest of the tokens the statement was last stored with (0: never).
    stored: AtomicU64,
    /// Reads skipped, to pick the probes.
    skipped: AtomicU32,
}

impl Heat {
    fn skip(&self) -> bool {
        self.churn.load(Ordering::Relaxed) >= CHURN_LIMIT
            && !self
                .skipped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(PROBE_EVERY)
    }

    fn hit(&self) {
        if self.churn.load(Ordering::Relaxed) != 0 {
            self.churn.store(0, Ordering::Relaxed);
        }
    }

    fn miss(&self, tokens: &[Token]) {
        let stored = self.stored.load(Ordering::Relaxed);
        if stored != 0 && stored != digest(tokens) && self.churn.load(Ordering::Relaxed) < u32::MAX
        {
            self.churn.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stored(&self, tokens: &[Token]) {
        self.stored.store(digest(tokens), Ordering::Relaxed);
    }
}

fn digest(tokens: &[Token]) -> u64 {
    let mut digest = 0x9e37_79b9_7f4a_7c15_u64;
    for token in tokens {
        let t = token.to_u128();
        digest = (digest.rotate_left(23) ^ (t as u64) ^ ((t >> 64) as u64))
            .wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
    digest | 1
}

impl ReadSet {
    /// The read set of a read of `tables` (bare names) on `database`.
    pub fn new<I, S>(database: &Arc<str>, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<S> = tables.into_iter().collect();
        names.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        names.dedup_by(|a, b| a.as_ref() == b.as_ref());
        let ids = std::iter::once(TableId::epoch(database))
            // The empty name is the epoch, already there.
            .chain(
                names
                    .iter()
                    .filter(|n| !n.as_ref().is_empty())
                    .map(|n| TableId::new(database, n.as_ref())),
            )
            .collect();
        ReadSet {
            inner: Arc::new(Tables {
                ids,
                heat: Heat::default(),
            }),
        }
    }

    /// The database read.
    pub fn database(&self) -> &Arc<str> {
        self.inner.ids[0].database()
    }

    /// The tables read (bare names), without the epoch.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.inner.ids[1..].iter().map(|t| &**t.table())
    }

    /// What the backend is asked about: the epoch, then the tables.
    pub fn ids(&self) -> &[TableId] {
        &self.inner.ids
    }

    fn heat(&self) -> &Heat {
        &self.inner.heat
    }
}

impl PartialEq for ReadSet {
    fn eq(&self, other: &Self) -> bool {
        self.ids() == other.ids()
    }
}

impl Eq for ReadSet {}

impl std::hash::Hash for ReadSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ids().hash(state);
    }
}

impl fmt::Debug for ReadSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSet").field("ids", &self.ids()).finish()
    }
}

/// Whether a statement's result goes through the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Cache it; pass the read set to [`Cachalot::read`].
    Cache(ReadSet),
    /// Run it uncached, for this reason.
    Bypass(BypassReason),
}

/// What a read does after [`Cachalot::probe`]: served already, or the rest of the read, in
/// [`Cachalot::read_probed`].
#[must_use = "a probe that did not hit is finished by read_probed"]
pub struct Probe<T>(Step<T>);

impl<T> Probe<T> {
    /// The cached value if the probe hit (the hit is counted), else the probe, to hand to
    /// [`Cachalot::read_probed`].
    pub fn hit(self) -> Result<T, Self> {
        match self.0 {
            Step::Hit(value) => Ok(value),
            step => Err(Probe(step)),
        }
    }
}

impl<T> fmt::Debug for Probe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match &self.0 {
            Step::Hit(_) => "hit",
            Step::Bypass => "bypass",
            Step::Miss(_) => "miss",
            Step::Missing => "missing",
            Step::Fetch(_) => "fetch",
        };
        f.debug_tuple("Probe").field(&step).finish()
    }
}

enum Step<T> {
    /// Served (and counted).
    Hit(T),
    /// Run the query uncached (counted).
    Bypass,
    /// A miss with these tokens, read before the query: run it and store.
    Miss(Arc<[Token]>),
    /// A token is missing: set it, then miss.
    Missing,
    /// The backend is remote: its lookup is a round trip, made by `read_probed`.
    Fetch(Option<flight::Landing>),
}

/// What the backend's answer means for a read of type `T`.
enum Lookup<T> {
    Hit(T),
    Locked,
    Missing,
    Miss(Arc<[Token]>),
}

/// Borrows `fetched`: the answer, a few hundred bytes, is not copied again on its way.
fn lookup<T: Clone + 'static>(
    fetched: &Fetched,
    key: &QueryKey,
    expected: usize,
    codec: Option<&Codec<T>>,
) -> Result<Lookup<T>, BackendError> {
    if fetched.tokens.len() != expected {
        return Err(BackendError::Corrupt(format!(
            "{} token states for {expected} tables",
            fetched.tokens.len()
        )));
    }
    let mut missing = false;
    for state in &fetched.tokens {
        match state {
            TokenState::Locked => return Ok(Lookup::Locked),
            TokenState::Missing => missing = true,
            TokenState::Present(_) => {}
        }
    }
    if missing {
        return Ok(Lookup::Missing);
    }
    if let Some(entry) = &fetched.entry
        && entry.tokens.len() == fetched.tokens.len()
        && entry
            .tokens
            .iter()
            .zip(&fetched.tokens)
            .all(|(stored, current)| TokenState::Present(*stored) == *current)
        && key.matches(&entry.material)
    {
        match &entry.value {
            // Another type under the same key is a miss, not an error.
            EntryValue::Local(value) => {
                if let Some(value) = value.downcast_ref::<T>() {
                    return Ok(Lookup::Hit(value.clone()));
                }
            }
            // Bytes of an older row type, or corrupt: a miss, overwritten by the next store.
            EntryValue::Encoded(bytes) => {
                if let Some(Ok(value)) = codec.map(|c| (c.decode)(bytes)) {
                    return Ok(Lookup::Hit(value));
                }
            }
        }
    }
    // Every state is present here. Mapped over the slice, the length is known: one allocation.
    let tokens = fetched
        .tokens
        .iter()
        .map(|s| s.token().unwrap_or(Token::from_u128(0)))
        .collect();
    Ok(Lookup::Miss(tokens))
}

impl Cachalot {
    /// Decides whether `analysis`'s statement, sent to `database`, goes through the cache.
    ///
    /// Call it for every statement, writes included: it also records the tables a statement
    /// creates `TEMPORARY`, whose reads are never cached afterwards. It counts nothing: count
    /// a bypass with [`record_bypass`](Self::record_bypass), or use
    /// [`read_analyzed`](Self::read_analyzed) which does both.
    pub fn decide(&self, database: &Arc<str>, analysis: &Arc<Analysis>) -> Decision {
        self.inner.note_temporaries(database, analysis);
        if !self.is_enabled() {
            return Decision::Bypass(BypassReason::Disabled);
        }
        match &analysis.not_cacheable {
            None => {}
            Some(NotCacheable::TemporaryTable(_)) => {
                return Decision::Bypass(BypassReason::TemporaryTable);
            }
            Some(_) => return Decision::Bypass(BypassReason::NotCacheable),
        }
        let Some(reads) = self
            .inner
            .read_sets
            .get(database, analysis, &self.inner.catalogs)
        else {
            // From the catalog: a view whose definition may not be cached (`now()`), or a
            // table whose rows change without a write naming it (a sequence).
            return Decision::Bypass(BypassReason::NotCacheable);
        };
        match self.inner.bypass_reason(reads.ids()) {
            Some(reason) => Decision::Bypass(reason),
            None => Decision::Cache(reads),
        }
    }

    /// Reads through the cache: returns the cached value of `key` if it is still valid, or
    /// runs `fetch`, stores its result (if `Ok` and `weigh` says at most `max_entry_bytes`)
    /// and returns it.
    ///
    /// - Bypasses the cache (runs `fetch`, stores nothing) when it is disabled, a table is not
    ///   allowed, was created temporary, is locked by a writer, or has an invalidation pending.
    /// - A backend error never reaches the caller: the query runs uncached.
    /// - Concurrent identical misses (same key, same tokens) run `fetch` once; if that one
    ///   fails or is cancelled, the others run their own `fetch`.
    /// - An `Err` is returned as is and never cached.
    /// - `weigh` gives the value's approximate size in bytes (it bounds the memory backend).
    /// - A backend that stores bytes keeps nothing without a codec: see
    ///   [`read_with`](Self::read_with).
    pub async fn read<T, E, W, F, Fut>(
        &self,
        reads: &ReadSet,
        key: QueryKey,
        weigh: W,
        fetch: F,
    ) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        W: FnOnce(&T) -> usize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.read_with(reads, key, ReadOptions::default(), weigh, fetch)
            .await
    }

    /// [`read`](Self::read) with options: a TTL of its own, and the codec a backend that
    /// stores bytes (Redis) needs to keep the value.
    pub async fn read_with<T, E, W, F, Fut>(
        &self,
        reads: &ReadSet,
        key: QueryKey,
        options: ReadOptions<T>,
        weigh: W,
        fetch: F,
    ) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        W: FnOnce(&T) -> usize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.probe(reads, &key, &options).hit() {
            Ok(value) => Ok(value),
            // Boxed: a hit's future then holds none of the rest's state (the flight, the
            // store, the query's own future), so it is small to make and to move.
            Err(probe) => {
                Box::pin(self.read_probed(probe, reads, key, options, weigh, fetch)).await
            }
        }
    }

    /// The first half of [`read_with`](Self::read_with), without waiting on anything: with
    /// an in-process backend, a hit is served here (and counted); otherwise the [`Probe`]
    /// says what the read does next, in [`read_probed`](Self::read_probed).
    ///
    /// A hit right after database work costs what the CPU must fetch into its caches: done
    /// in a plain call, it needs none of a future's state.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cachalot_core::Cachalot;
    /// use cachalot_core::engine::{ReadOptions, ReadSet};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cachalot = Cachalot::builder().build().unwrap();
    /// let db: Arc<str> = Arc::from("app");
    /// let reads = ReadSet::new(&db, ["users"]);
    /// let key = cachalot.key(&db, "SELECT count(*) FROM users").result_type("u64").finish();
    /// let run = || async { Ok::<_, std::io::Error>(3_u64) };
    ///
    /// let probe = cachalot.probe(&reads, &key, &ReadOptions::new());
    /// let Err(probe) = probe.hit() else { unreachable!("nothing is cached yet") };
    /// let n = cachalot.read_probed(probe, &reads, key.clone(), ReadOptions::new(), |_| 8, run);
    /// assert_eq!(n.await.unwrap(), 3);
    /// assert_eq!(cachalot.probe(&reads, &key, &ReadOptions::<u64>::new()).hit().ok(), Some(3));
    /// # });
    /// ```
    pub fn probe<T: Clone + 'static>(
        &self,
        reads: &ReadSet,
        key: &QueryKey,
        options: &ReadOptions<T>,
    ) -> Probe<T> {
        let inner = &self.inner;
        let ids = reads.ids();
        if let Some(reason) = inner.bypass_reason(ids) {
            inner.stats.bypass(reason);
            return Probe(Step::Bypass);
        }
        if inner.settings.skip_churning_reads && reads.heat().skip() {
            inner.stats.bypass(BypassReason::Churn);
            return Probe(Step::Bypass);
        }
        let landing = inner.landing(key);
        match inner.backend.local() {
            Some(local) => {
                let fetched = local.fetch_now(ids, key);
                Probe(inner.judge(fetched, landing, reads, key, options.codec.as_ref()))
            }
            None => Probe(Step::Fetch(landing)),
        }
    }

    /// The rest of a read that [`probe`](Self::probe) did not serve: the lookup if the
    /// backend is remote, then the query, once for all identical concurrent misses, and the
    /// store; or the query alone, uncached, where the probe said to bypass.
    ///
    /// Its future holds all of that: box it where the probe's hits must stay small.
    pub async fn read_probed<T, E, W, F, Fut>(
        &self,
        probe: Probe<T>,
        reads: &ReadSet,
        key: QueryKey,
        options: ReadOptions<T>,
        weigh: W,
        fetch: F,
    ) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        W: FnOnce(&T) -> usize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let inner = &self.inner;
        let ids = reads.ids();
        let step = match probe.0 {
            Step::Fetch(landing) => {
                let fetched = inner.backend.fetch(ids, &key).await;
                inner.judge(fetched, landing, reads, &key, options.codec.as_ref())
            }
            step => step,
        };
        let tokens = match step {
            Step::Hit(value) => return Ok(value),
            Step::Miss(tokens) => tokens,
            Step::Missing => match inner.init_tokens(ids).await {
                Some(tokens) => tokens,
                None => return fetch().await,
            },
            Step::Bypass | Step::Fetch(_) => return fetch().await,
        };
        inner.miss(reads, key, tokens, options, weigh, fetch).await
    }

    /// [`decide`](Self::decide) then [`read`](Self::read), counting a bypass.
    pub async fn read_analyzed<T, E, W, F, Fut>(
        &self,
        database: &Arc<str>,
        analysis: &Arc<Analysis>,
        key: QueryKey,
        weigh: W,
        fetch: F,
    ) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        W: FnOnce(&T) -> usize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.decide(database, analysis) {
            Decision::Cache(reads) => self.read(&reads, key, weigh, fetch).await,
            Decision::Bypass(reason) => {
                self.record_bypass(reason);
                fetch().await
            }
        }
    }

    /// The cached value of `key` if a read would be served it right now, without running
    /// anything, storing anything or counting anything.
    ///
    /// A backend that stores bytes (Redis) needs the codec to decode them: see
    /// [`cached_with`](Self::cached_with).
    pub async fn cached<T: Clone + Send + Sync + 'static>(
        &self,
        reads: &ReadSet,
        key: &QueryKey,
    ) -> Option<T> {
        self.cached_with(reads, key, &ReadOptions::default()).await
    }

    /// [`cached`](Self::cached) with the options a read would use: their codec decodes what a
    /// backend that stores bytes keeps.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cachalot_core::Cachalot;
    /// use cachalot_core::engine::{Codec, ReadOptions, ReadSet};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cachalot = Cachalot::builder().build().unwrap();
    /// let db: Arc<str> = Arc::from("app");
    /// let reads = ReadSet::new(&db, ["users"]);
    /// let key = cachalot.key(&db, "SELECT count(*) FROM users").result_type("u64").finish();
    /// let codec = Codec::<u64> {
    ///     encode: |v| Ok(v.to_le_bytes().to_vec()),
    ///     decode: |b| b.try_into().map(u64::from_le_bytes).map_err(|_| "not 8 bytes".into()),
    /// };
    /// let options = || ReadOptions::new().codec(codec);
    /// let run = || async { Ok::<_, std::io::Error>(3_u64) };
    /// cachalot.read_with(&reads, key.clone(), options(), |_| 8, run).await.unwrap();
    /// assert_eq!(cachalot.cached_with(&reads, &key, &options()).await, Some(3));
    /// # });
    /// ```
    pub async fn cached_with<T: Clone + Send + Sync + 'static>(
        &self,
        reads: &ReadSet,
        key: &QueryKey,
        options: &ReadOptions<T>,
    ) -> Option<T> {
        let ids = reads.ids();
        if self.inner.bypass_reason(ids).is_some() {
            return None;
        }
        let landing = self.inner.landing(key);
        let fetched = self.inner.fetch(ids, key).await.ok()?;
        match lookup::<T>(&fetched, key, ids.len(), options.codec.as_ref()) {
            Ok(Lookup::Hit(value)) => Some(value),
            // Stored soon, or just now: a read would take it from its flight.
            Ok(Lookup::Miss(tokens)) => landed(landing, &tokens).or_else(|| {
                let now = self
                    .inner
                    .flights
                    .landing(key.hash(), key.material(), Some(&tokens));
                landed(now, &tokens)
            }),
            _ => None,
        }
    }
}

/// The value of `landing`, if its tokens are `tokens`: what was being stored, valid exactly as
/// an entry stored with those tokens would be.
fn landed<T: Clone + 'static>(landing: Option<flight::Landing>, tokens: &[Token]) -> Option<T> {
    landing?.with_tokens(tokens)?.downcast_ref::<T>().cloned()
}

impl Inner {
    /// What the backend's answer `fetched` means for a read: a hit, a miss (checked against
    /// `landing` first), or a bypass (counted).
    fn judge<T: Clone + 'static>(
        &self,
        fetched: Result<Fetched, BackendError>,
        landing: Option<flight::Landing>,
        reads: &ReadSet,
        key: &QueryKey,
        codec: Option<&Codec<T>>,
    ) -> Step<T> {
        let heat = reads.heat();
        let looked_up = match fetched {
            Ok(ref fetched) => lookup::<T>(fetched, key, reads.ids().len(), codec),
            Err(err) => Err(err),
        };
        match looked_up {
            Ok(Lookup::Hit(value)) => {
                self.backend_ok();
                self.stats.hit();
                heat.hit();
                Step::Hit(value)
            }
            Ok(Lookup::Miss(tokens)) => {
                self.backend_ok();
                if let Some(value) = landed::<T>(landing, &tokens) {
                    self.stats.hit();
                    heat.hit();
                    return Step::Hit(value);
                }
                heat.miss(&tokens);
                Step::Miss(tokens)
            }
            Ok(Lookup::Locked) => {
                self.stats.bypass(BypassReason::Locked);
                Step::Bypass
            }
            Ok(Lookup::Missing) => Step::Missing,
            Err(err) => {
                self.backend_failed("fetch", &err);
                self.stats.bypass(BypassReason::BackendError);
                Step::Bypass
            }
        }
    }

    /// The result of `key` being stored, if one is: taken before the backend is asked, so that
    /// a store landing meanwhile (its flight gone, its entry not yet seen) still serves.
    fn landing(&self, key: &QueryKey) -> Option<flight::Landing> {
        if !self.storing.any() {
            return None;
        }
        self.flights.landing(key.hash(), key.material(), None)
    }

    /// Sets the missing tokens. `None` (counted) when the read must bypass.
    async fn init_tokens(&self, ids: &[TableId]) -> Option<Arc<[Token]>> {
        let states = match self.backend.init_tokens(ids).await {
            Ok(states) if states.len() == ids.len() => states,
            Ok(states) => {
                let err = BackendError::Corrupt(format!(
                    "{} token states for {} tables",
                    states.len(),
                    ids.len()
                ));
                self.backend_failed("init_tokens", &err);
                self.stats.bypass(BypassReason::BackendError);
                return None;
            }
            Err(err) => {
                self.backend_failed("init_tokens", &err);
                self.stats.bypass(BypassReason::BackendError);
                return None;
            }
        };
        self.backend_ok();
        let tokens: Option<Arc<[Token]>> = states.iter().map(|s| s.token()).collect();
        if tokens.is_none() {
            // Locked since the fetch (or missing again: a lock came and went).
            self.stats.bypass(BypassReason::Locked);
        }
        tokens
    }

    /// A miss with `tokens` read before the query: run it once for all identical concurrent
    /// misses, and store its result with those tokens.
    ///
    /// With a backend that [stores remotely](CacheBackend::stores_remotely), the store
    /// happens after this returns, in a task of its own (inline without a tokio runtime, or
    /// when too many are on their way): the caller has its rows without waiting for the round
    /// trip. Until the store lands, the flight holds the result for the readers that read the
    /// same tokens.
    async fn miss<T, E, W, F, Fut>(
        self: &Arc<Self>,
        reads: &ReadSet,
        key: QueryKey,
        tokens: Arc<[Token]>,
        options: ReadOptions<T>,
        weigh: W,
        fetch: F,
    ) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        W: FnOnce(&T) -> usize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Made once, shared by the flight and the entry.
        let material = key.shared_material();
        let leader = match self.flights.join(key.hash(), &tokens, &material) {
            Role::Leader(leader) => Some(leader),
            Role::Alone => None,
            Role::Ready(shared) => {
                if let Some(value) = shared.downcast_ref::<T>() {
                    self.stats.hit();
                    reads.heat().hit();
                    return Ok(value.clone());
                }
                None
            }
            Role::Follower(receiver) => {
                if let Some(shared) = flight::wait(receiver).await
                    && let Some(value) = shared.downcast_ref::<T>()
                {
                    self.stats.coalesced();
                    reads.heat().hit();
                    return Ok(value.clone());
                }
                // The leader failed or was cancelled: run it ourselves. Storing is still
                // safe, our tokens were read before our own query.
                None
            }
        };
        self.stats.miss();
        // On `Err` the leader is dropped here: its followers run their own query.
        let value = fetch().await?;
        let weight = weigh(&value);
        let too_large = weight > self.settings.max_entry_bytes;
        let encodes = self.backend.encodes_values();
        // Without a codec, a backend of bytes keeps nothing: the read simply stays a miss. A
        // table this process has locked since the tokens were read would make the backend
        // refuse the store: with a remote one, that is a round trip saved.
        if too_large || (encodes && options.codec.is_none()) || self.leases.covers_any(reads.ids())
        {
            if too_large {
                self.stats.bypass(BypassReason::TooLarge);
            }
            if let Some(leader) = leader {
                leader.finish(|| Arc::new(value.clone()) as Shared);
            }
            return Ok(value);
        }
        let kept = Arc::new(value.clone());
        let shared: Shared = kept.clone();
        let remote = self.backend.stores_remotely();
        // A store in process is done before this returns: the followers need the result,
        // later readers will find the entry.
        let published = match leader {
            Some(leader) if remote => leader.publish(shared.clone()),
            Some(leader) => {
                leader.finish(|| shared.clone());
                None
            }
            None => None,
        };
        let store = Store {
            inner: self.clone(),
            published,
            reads: reads.clone(),
            key,
            material,
            tokens,
            ttl: options.ttl.unwrap_or(self.settings.ttl),
            weight,
            counted: false,
        };
        let value_stored = match options.codec {
            Some(codec) if encodes => Stored::Encode(kept, codec),
            _ => Stored::Local(shared),
        };
        let handle = match remote {
            true => tokio::runtime::Handle::try_current().ok(),
            false => None,
        };
        match handle {
            Some(handle) if self.storing.begin() => {
                let mut store = store;
                store.counted = true;
                handle.spawn(store.run(value_stored));
            }
            _ => store.run(value_stored).await,
        }
        Ok(value)
    }
}

/// What a miss stores: the value itself, or its bytes (encoded by the store, off the
/// reader's path).
enum Stored<T> {
    Local(Shared),
    Encode(Arc<T>, Codec<T>),
}

/// The store of a miss's result, and the closing of its flight once it lands (or is
/// dropped: a runtime shutting down).
struct Store {
    inner: Arc<Inner>,
    published: Option<flight::Published>,
    reads: ReadSet,
    key: QueryKey,
    material: Arc<[u8]>,
    tokens: Arc<[Token]>,
    ttl: std::time::Duration,
    weight: usize,
    /// Counted in [`Inner::storing`]: it runs in a task of its own.
    counted: bool,
}

impl Store {
    async fn run<T: Send + Sync + 'static>(self, value: Stored<T>) {
        let value = match value {
            Stored::Local(shared) => EntryValue::Local(shared),
            Stored::Encode(value, codec) => match (codec.encode)(&value) {
                Ok(bytes) => EntryValue::Encoded(bytes.into()),
                Err(err) => {
                    tracing::warn!(%err, "cachalot: a value failed to encode; not stored");
                    return;
                }
            },
        };
        let entry = Entry {
            tokens: self.tokens.clone(),
            material: self.material.clone(),
            value,
            weight: self.weight,
        };
        let inner = &self.inner;
        match inner
            .store(self.reads.ids(), &self.key, entry, self.ttl)
            .await
        {
            Ok(true) => {
                inner.stats.store();
                self.reads.heat().stored(&self.tokens);
            }
            // A write came in while the query ran: the entry could never be served.
            Ok(false) => {}
            Err(err) => inner.backend_failed("store", &err),
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(published) = self.published.take() {
            self.inner.flights.land(published);
        }
        if self.counted {
            self.inner.storing.end();
        }
    }
}
