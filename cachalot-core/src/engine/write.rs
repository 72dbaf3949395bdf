//! The write path: lock before the write, bump after it, whatever happens in between.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use smallvec::SmallVec;

use super::leases::{self, Memberships, Released};
use super::read::ReadSet;
use super::{Cachalot, Inner};
use crate::backend::{LockId, TableId, TokenState, lock_deadline};
use crate::signal::Invalidation;
use crate::sql::Analysis;
use crate::version::Token;

/// The tables a write changes: named tables (bare names) and/or the whole database.
///
/// A transaction accumulates the write sets of its statements with [`merge`](Self::merge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// Sorted, without duplicates. A write set holds a few tables: a sorted `Vec` costs every
    /// write a fraction of a `BTreeSet`'s code and allocations, and shared names become table
    /// ids without another copy.
    tables: Vec<Arc<str>>,
    all: bool,
}

impl WriteSet {
    /// Nothing written.
    pub fn new() -> Self {
        Self::default()
    }

    /// A write of `tables` (bare names).
    pub fn tables<I, S>(tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::new();
        for t in tables {
            set.add_table(t.as_ref());
        }
        set
    }

    /// A write that may change any table of the database (bumps its epoch).
    pub fn all() -> Self {
        WriteSet {
            tables: Vec::new(),
            all: true,
        }
    }

    /// What `analysis`'s statement writes.
    pub fn from_analysis(analysis: &Analysis) -> Self {
        let mut set = WriteSet {
            tables: Vec::with_capacity(analysis.writes.len()),
            all: analysis.writes_all,
        };
        for table in &analysis.writes {
            set.add_table(&table.name);
        }
        set
    }

    /// Adds a table.
    pub fn add_table(&mut self, table: &str) {
        if let Err(at) = self.position(table) {
            self.tables.insert(at, Arc::from(table));
        }
    }

    /// Where `table` is, or would be inserted.
    fn position(&self, table: &str) -> Result<usize, usize> {
        self.tables.binary_search_by(|t| (**t).cmp(table))
    }

    /// Adds the whole database.
    pub fn add_all(&mut self) {
        self.all = true;
    }

    /// Adds everything `other` writes.
    pub fn merge(&mut self, other: &WriteSet) {
        self.all |= other.all;
        for t in &other.tables {
            if let Err(at) = self.position(t) {
                self.tables.insert(at, t.clone());
            }
        }
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && !self.all
    }

    /// Whether the whole database is written.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// The tables named, sorted.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|t| &**t)
    }

    fn ids(&self, database: &Arc<str>) -> Vec<TableId> {
        let mut ids = Vec::with_capacity(self.tables.len() + 1);
        // The empty name is the epoch's: it is bumped once whichever way it is named.
        if self.all || self.position("").is_ok() {
            ids.push(TableId::epoch(database));
        }
        ids.extend(
            self.tables
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| TableId::new(database, t.clone())),
        );
        ids
    }
}

/// The bump a write owes.
#[derive(Debug, Default)]
struct BumpJob {
    ids: Vec<TableId>,
    lock: Option<LockId>,
    /// The lock failed: the tables are held in this process until the bump succeeds.
    held: bool,
}

/// With a remote backend, a write's tables and the [leases](super::leases) covering them.
#[derive(Debug)]
struct Leased {
    tables: Vec<TableId>,
    memberships: Memberships,
    /// Set once the write has left its leases (once only: leaving twice would let the others'
    /// tables go early). What is left then is to bump `released`.
    left: bool,
    /// The tables it was the last member writing, not bumped yet.
    released: SmallVec<[Released; 1]>,
}

/// A write in flight: its tables are locked. [`finish`](Self::finish) it once the write is
/// done (committed, failed, whatever the outcome).
///
/// With a remote backend, writes of this process that overlap on a table share one lock: the
/// last of them writing the table to finish bumps it, for all of them.
///
/// Dropped unfinished (a cancelled future, an early-dropped stream), the write's outcome is
/// unknown: the server may still be running the statement and commit it later. Its tables
/// then stay locked until `lock_ttl` has passed, and are bumped at that point, in a task on the
/// current tokio runtime. A bump right away would let a read store what the statement is
/// about to change. Dropped outside any runtime, the bump is a pending invalidation, left to
/// the retries once `lock_ttl` has passed (its tables are not cached by this process
/// meanwhile, and its signal is sent when it is bumped). A crash leaves only the locks, which
/// expire after `lock_ttl` and then read as missing tokens.
#[must_use = "finish() the guard once the write is done"]
pub struct WriteGuard {
    inner: Arc<Inner>,
    /// The tables locked by this write alone: all of them with an in-process backend; with a
    /// remote one, those whose lock failed (or is still being sent).
    job: BumpJob,
    leased: Option<Leased>,
    done: bool,
}

impl WriteGuard {
    /// Bumps every written table and sends the invalidation signal.
    pub async fn finish(mut self) {
        if !self.done {
            let inner = self.inner.clone();
            match &mut self.leased {
                Some(leased) => inner.finish_leased(leased, &mut self.job).await,
                None => inner.complete(&self.job).await,
            }
            // Not before: a finish cancelled during the bump leaves it to `Drop`.
            self.done = true;
        }
    }

    /// The tables locked (the database epoch included if the whole database is written).
    pub fn tables(&self) -> &[TableId] {
        match &self.leased {
            Some(leased) => &leased.tables,
            None => &self.job.ids,
        }
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let mut job = std::mem::take(&mut self.job);
        let mut leased = self.leased.take();
        let inner = self.inner.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let wait = inner.settings.lock_ttl;
                handle.spawn(async move {
                    // As after a crash: the lock (or this process's hold) covers the statement
                    // until it expires. A member of a lease keeps it from being bumped by the
                    // others meanwhile.
                    tokio::time::sleep(wait).await;
                    match &mut leased {
                        Some(leased) => inner.finish_leased(leased, &mut job).await,
                        None => inner.complete(&job).await,
                    }
                });
            }
            Err(_) => {
                // No runtime to wait on: the retries bump it, not before the lock expires.
                let until = lock_deadline(Instant::now(), inner.settings.lock_ttl);
                if !job.ids.is_empty() {
                    inner.record_failed(&job.ids, job.lock, job.held, Some(until));
                }
                if let Some(mut leased) = leased {
                    if !leased.left {
                        leased.released =
                            inner
                                .leases
                                .leave(&leased.memberships, &leased.tables, Some(until));
                        inner.leases.done(&leased.tables);
                    }
                    for released in leased.released {
                        inner.record_failed(
                            &released.tables,
                            Some(released.lock),
                            false,
                            Some(until),
                        );
                    }
                }
            }
        }
    }
}

impl fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard")
            .field("tables", &self.tables())
            .field("done", &self.done)
            .finish()
    }
}

impl Cachalot {
    /// Starts a write of `writes` on `database`: locks every written table (for `lock_ttl`),
    /// so that readers neither serve nor store them until the returned guard is finished.
    ///
    /// Call it just before the statement runs, or just before `COMMIT` in a transaction (with
    /// everything the transaction wrote), and [`finish`](WriteGuard::finish) the guard after,
    /// whatever the outcome. Works whether the cache is enabled or not.
    pub async fn begin_write(&self, database: &Arc<str>, writes: &WriteSet) -> WriteGuard {
        let ids = writes.ids(database);
        let inner = &self.inner;
        if ids.is_empty() {
            return WriteGuard {
                inner: inner.clone(),
                job: BumpJob::default(),
                leased: None,
                done: true,
            };
        }
        if inner.pending.has_failed() {
            // Opportunistic retry: the backend is about to be asked anyway.
            inner.retry_failed().await;
        }
        if inner.backend.local().is_none() {
            return self.begin_leased(ids).await;
        }
        let lock = LockId::fresh();
        let held = match inner.lock(&ids, lock, inner.settings.lock_ttl).await {
            Ok(()) => {
                inner.backend_ok();
                false
            }
            Err(err) => {
                inner.backend_failed("lock", &err);
                inner.pending.hold(&ids);
                true
            }
        };
        WriteGuard {
            inner: inner.clone(),
            job: BumpJob {
                ids,
                lock: Some(lock),
                held,
            },
            leased: None,
            done: false,
        }
    }

    /// [`begin_write`](Self::begin_write) with a remote backend: joins the young leases of
    /// the tables this process is already writing, and locks the others in a lease of their
    /// own.
    async fn begin_leased(&self, ids: Vec<TableId>) -> WriteGuard {
        let inner = &self.inner;
        let sent = Instant::now();
        let (memberships, rest) = inner.leases.join(&ids, sent, inner.settings.lock_ttl);
        let lock = LockId::fresh();
        // Made before the lock is sent: if this future is dropped meanwhile, the guard's drop
        // leaves the leases joined and bumps what may have been locked.
        let mut guard = WriteGuard {
            inner: inner.clone(),
            job: BumpJob {
                ids: rest,
                lock: Some(lock),
                held: false,
            },
            leased: Some(Leased {
                tables: ids,
                memberships,
                left: false,
                released: SmallVec::new(),
            }),
            done: false,
        };
        if guard.job.ids.is_empty() {
            guard.job.lock = None;
            return guard;
        }
        let window = leases::window(inner.settings.lock_ttl);
        let ttl = inner.settings.lock_ttl.saturating_add(window);
        match inner.lock(&guard.job.ids, lock, ttl).await {
            Ok(()) => {
                inner.backend_ok();
                let tables = std::mem::take(&mut guard.job.ids);
                guard.job.lock = None;
                inner
                    .leases
                    .open(lock, tables, sent, inner.settings.lock_ttl, sent + window);
                if let Some(leased) = &mut guard.leased {
                    leased.memberships.push(lock);
                }
            }
            Err(err) => {
                inner.backend_failed("lock", &err);
                inner.pending.hold(&guard.job.ids);
                guard.job.held = true;
            }
        }
        guard
    }

    /// Invalidates `tables` (bare names) of `database` now, for changes made outside this
    /// cache's sight (another application, a trigger, a manual fix).
    pub async fn invalidate<I, S>(&self, database: &Arc<str>, tables: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let job = BumpJob {
            ids: WriteSet::tables(tables).ids(database),
            lock: None,
            held: false,
        };
        if !job.ids.is_empty() {
            self.inner.complete(&job).await;
        }
    }

    /// Invalidates everything cached for `database` at once (bumps its epoch).
    pub async fn invalidate_all(&self, database: &Arc<str>) {
        let job = BumpJob {
            ids: vec![TableId::epoch(database)],
            lock: None,
            held: false,
        };
        self.inner.complete(&job).await;
    }

    /// When reads of `tables` on `database` were last invalidated: the latest time in the
    /// current tokens of the tables and of the database epoch (a token set by the first read
    /// of a table counts as an invalidation at that time; a table being written counts as
    /// now). `None` if no token is known or the backend failed.
    pub async fn last_invalidation<I, S>(
        &self,
        database: &Arc<str>,
        tables: I,
    ) -> Option<SystemTime>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let reads = ReadSet::new(database, tables);
        match self.inner.backend.tokens(reads.ids()).await {
            Ok(states) => {
                self.inner.backend_ok();
                states
                    .iter()
                    .filter_map(|s| match s {
                        TokenState::Present(token) => Some(token.time()),
                        TokenState::Locked => Some(SystemTime::now()),
                        TokenState::Missing => None,
                    })
                    .max()
            }
            Err(err) => {
                self.inner.backend_failed("tokens", &err);
                None
            }
        }
    }
}

impl Inner {
    /// Bumps `ids` (under `lock`); a failed bump is held and retried. The tokens set, if the
    /// backend took it.
    async fn bump_or_hold(
        self: &Arc<Self>,
        ids: &[TableId],
        lock: Option<LockId>,
        held: bool,
    ) -> Option<Vec<Token>> {
        match self.bump(ids, lock).await {
            Ok(tokens) => {
                self.backend_ok();
                if held {
                    self.pending.release(ids);
                }
                Some(tokens)
            }
            Err(err) => {
                self.backend_failed("bump", &err);
                self.record_failed(ids, lock, held, None);
                None
            }
        }
    }

    /// Bumps a write's tables, sends the signal and counts; a failed bump is held and retried.
    async fn complete(self: &Arc<Self>, job: &BumpJob) {
        match self.bump_or_hold(&job.ids, job.lock, job.held).await {
            Some(tokens) => self.bumped(&job.ids, &tokens),
            // The write is over: its signal need not wait for the retry.
            None => self.bumped(&job.ids, &[]),
        }
    }

    /// Finishes a write that shares leases: leaves them, bumps the tables it was the last
    /// member writing (and its tables locked alone), then signals and counts its own tables.
    /// Cancelled half way, it can be run again: what was done is not done twice.
    async fn finish_leased(self: &Arc<Self>, leased: &mut Leased, job: &mut BumpJob) {
        if !leased.left {
            leased.released = self.leases.leave(&leased.memberships, &leased.tables, None);
            leased.left = true;
            // From here the backend knows best: its tables are locked until bumped, and a read
            // once they are may store under the new token.
            self.leases.done(&leased.tables);
        }
        while let Some(released) = leased.released.last() {
            match released.not_before {
                // A member was dropped unfinished outside a runtime: not before its lock expires.
                Some(until) if until > Instant::now() => {
                    self.record_failed(&released.tables, Some(released.lock), false, Some(until));
                }
                _ => {
                    self.bump_or_hold(&released.tables, Some(released.lock), false)
                        .await;
                }
            }
            leased.released.pop();
        }
        if !job.ids.is_empty() {
            self.bump_or_hold(&job.ids, job.lock, job.held).await;
            job.ids.clear();
        }
        self.bumped(&leased.tables, &[]);
    }

    /// Signals and counts the bump of `ids` to `tokens` (the time of a table without one in
    /// `tokens` is now).
    pub(super) fn bumped(&self, ids: &[TableId], tokens: &[Token]) {
        self.signal(ids, |i| {
            tokens.get(i).map_or_else(SystemTime::now, |t| t.time())
        });
        self.stats.invalidations(ids.len());
    }

    /// One event per table (`None` for the epoch).
    fn signal(&self, ids: &[TableId], time: impl Fn(usize) -> SystemTime) {
        if !self.signal.has_receivers() {
            return;
        }
        for (i, id) in ids.iter().enumerate() {
            self.signal.send(Invalidation {
                database: id.database().clone(),
                table: (!id.is_epoch()).then(|| id.table().clone()),
                time: time(i),
            });
        }
    }
}
