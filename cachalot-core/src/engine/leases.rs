//! Leases: the writes of this process that overlap on a table share one lock on it in a
//! remote backend.
//!
//! With Redis a write costs two round trips: the lock before it and the fresh token after it.
//! When writes of one process overlap on a table (a hot table, several tasks writing), the
//! first one's lock covers the others: a write that starts while a lease of its table is young
//! joins it instead of locking again, and only the last member of a lease to finish bumps, once
//! for all of them. Readers in every process see the table locked from the first member's lock
//! to the last member's bump, which covers each member's statement exactly as a lock of its own
//! would; what is saved is the round trips.
//!
//! A lease may be joined for [`window`] after its lock was sent, and its lock lasts `lock_ttl`
//! plus that window: every member is covered for at least `lock_ttl` from its own start, as
//! with a lock of its own. The price is that a writer that dies leaves its tables locked (read
//! uncached) for up to the window longer.
//!
//! Reads of this process skip the backend for a table one of its writes has in flight: they
//! would find it locked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::backend::{LockId, TableId, lock_deadline};

/// The leases a write is a member of: almost always one.
pub(crate) type Memberships = SmallVec<[LockId; 1]>;

/// How long after its lock was sent a lease may be joined, for a `lock_ttl`.
pub(crate) fn window(lock_ttl: Duration) -> Duration {
    lock_ttl / 8
}

/// The writes of this process in flight, and the leases they share.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    /// Writes in flight, summed over their tables: the read path's only check while none is.
    writing: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tables: HashMap<TableId, Table>,
    leases: HashMap<LockId, Lease>,
}

/// A table some write of this process has in flight.
#[derive(Debug, Default)]
struct Table {
    /// Writes of it in flight: locking, running, or bumping.
    writers: usize,
    /// The lease a write starting now may join, if still young enough.
    joinable: Option<LockId>,
    /// Until when the writes of it are covered by a lock: `lock_ttl` after the last one
    /// started. A write that never finishes (a future forgotten, not dropped) then no longer
    /// keeps this process's reads from the backend, as its lock no longer keeps anyone's.
    covered_until: Option<Instant>,
}

#[derive(Debug)]
struct Lease {
    tables: Vec<TableId>,
    joinable_until: Instant,
    members: usize,
    /// Not bumped before this: a member was dropped unfinished, and the server may still
    /// commit its statement.
    not_before: Option<Instant>,
}

/// A lease whose last member left: its tables are bumped under its lock.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) tables: Vec<TableId>,
    pub(crate) lock: LockId,
    /// Bumped no earlier than this (see [`Leases::leave`]).
    pub(crate) not_before: Option<Instant>,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, even if it panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether any write of this process is in flight.
    pub(crate) fn any(&self) -> bool {
        self.writing.load(Ordering::Acquire) > 0
    }

    /// Whether a write of this process has one of `tables` in flight, under a lock.
    pub(crate) fn covers_any(&self, tables: &[TableId]) -> bool {
        if !self.any() {
            return false;
        }
        let now = Instant::now();
        let state = self.lock();
        tables.iter().any(|t| {
            state
                .tables
                .get(t)
                .and_then(|t| t.covered_until)
                .is_some_and(|until| until > now)
        })
    }

    /// Starts a write of `tables` (each once), covered for `lock_ttl` from `now`: joins the
    /// leases it can, and returns them with the tables that no lease may cover, which need a
    /// lock of their own.
    pub(crate) fn join(
        &self,
        tables: &[TableId],
        now: Instant,
        lock_ttl: Duration,
    ) -> (Memberships, Vec<TableId>) {
        let covered = lock_deadline(now, lock_ttl);
        let mut guard = self.lock();
        let State {
            tables: map,
            leases,
        } = &mut *guard;
        let mut joined = Memberships::new();
        let mut rest = Vec::new();
        for id in tables {
            let table = map.entry(id.clone()).or_default();
            table.writers += 1;
            table.covered_until = Some(table.covered_until.map_or(covered, |t| t.max(covered)));
            let young = table
                .joinable
                .filter(|lock| leases.get(lock).is_some_and(|l| l.joinable_until > now));
            match young {
                Some(lock) if joined.contains(&lock) => {}
                Some(lock) => joined.push(lock),
                None => rest.push(id.clone()),
            }
        }
        for lock in &joined {
            if let Some(lease) = leases.get_mut(lock) {
                lease.members += 1;
            }
        }
        self.writing.fetch_add(tables.len(), Ordering::AcqRel);
        (joined, rest)
    }

    /// A lease of `tables`, just locked under `lock`; its one member is the write that locked
    /// them. Writes of those tables may join it until `joinable_until`.
    pub(crate) fn open(&self, lock: LockId, tables: Vec<TableId>, joinable_until: Instant) {
        let mut state = self.lock();
        for id in &tables {
            if let Some(table) = state.tables.get_mut(id) {
                table.joinable = Some(lock);
            }
        }
        state.leases.insert(
            lock,
            Lease {
                tables,
                joinable_until,
                members: 1,
                not_before: None,
            },
        );
    }

    /// A member leaves `memberships`. With `not_before` (a member dropped unfinished), none
    /// of those leases is bumped before then, whoever leaves last. Returns the leases it was
    /// the last member of: no write joins them any more, the caller bumps them.
    pub(crate) fn leave(
        &self,
        memberships: &[LockId],
        not_before: Option<Instant>,
    ) -> SmallVec<[Ended; 1]> {
        let mut guard = self.lock();
        let State { tables, leases } = &mut *guard;
        let mut ended = SmallVec::new();
        for lock in memberships {
            let Some(lease) = leases.get_mut(lock) else {
                continue;
            };
            if let Some(at) = not_before {
                lease.not_before = Some(lease.not_before.map_or(at, |t| t.max(at)));
            }
            lease.members = lease.members.saturating_sub(1);
            if lease.members > 0 {
                continue;
            }
            let Some(lease) = leases.remove(lock) else {
                continue;
            };
            for id in &lease.tables {
                if let Some(table) = tables.get_mut(id)
                    && table.joinable == Some(*lock)
                {
                    table.joinable = None;
                }
            }
            ended.push(Ended {
                tables: lease.tables,
                lock: *lock,
                not_before: lease.not_before,
            });
        }
        ended
    }

    /// The write of `tables` is over (its leases bumped, or left to others or to the
    /// retries): reads of them ask the backend again once no other write has them.
    pub(crate) fn done(&self, tables: &[TableId]) {
        let mut state = self.lock();
        let mut released = 0;
        for id in tables {
            let Some(table) = state.tables.get_mut(id) else {
                continue;
            };
            table.writers = table.writers.saturating_sub(1);
            released += 1;
            if table.writers == 0 {
                state.tables.remove(id);
            }
        }
        self.writing.fetch_sub(released, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn ids(names: &[&str]) -> Vec<TableId> {
        let db: Arc<str> = Arc::from("app");
        names.iter().map(|n| TableId::new(&db, *n)).collect()
    }

    #[test]
    fn overlapping_writes_share_a_young_lease_and_the_last_one_ends_it() {
        let leases = Leases::default();
        let now = Instant::now();
        let [a, b] = [ids(&["a"]), ids(&["a", "b"])];

        let (joined, rest) = leases.join(&a, now, TTL);
        assert!(joined.is_empty());
        assert_eq!(rest, a);
        let first = LockId::fresh();
        leases.open(first, rest, now + Duration::from_secs(1));

        // `a` joins the lease; `b` has none and needs a lock of its own.
        let (joined, rest) = leases.join(&b, now, TTL);
        assert_eq!(joined.as_slice(), &[first]);
        assert_eq!(rest, ids(&["b"]));
        assert!(leases.covers_any(&ids(&["b"])));

        assert!(leases.leave(&[first], None).is_empty());
        leases.done(&a);
        let ended = leases.leave(&[first], None);
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].lock, &ended[0].tables), (first, &a));
        leases.done(&b);
        assert!(!leases.any());
        assert!(!leases.covers_any(&b));
    }

    #[test]
    fn a_write_covers_its_tables_for_lock_ttl_from_its_start() {
        let leases = Leases::default();
        let a = ids(&["a"]);
        let long_ago = Instant::now() - 2 * TTL;
        leases.join(&a, long_ago, TTL);
        // Never finished (forgotten): its lock has expired, reads ask the backend again.
        assert!(leases.any());
        assert!(!leases.covers_any(&a));
        leases.join(&a, Instant::now(), TTL);
        assert!(leases.covers_any(&a));
    }

    #[test]
    fn an_old_lease_is_not_joined() {
        let leases = Leases::default();
        let now = Instant::now();
        let a = ids(&["a"]);
        let (_, rest) = leases.join(&a, now, TTL);
        let first = LockId::fresh();
        leases.open(first, rest, now + Duration::from_millis(10));
        let (joined, rest) = leases.join(&a, now + Duration::from_millis(10), TTL);
        assert!(joined.is_empty());
        assert_eq!(rest, a);
    }

    #[test]
    fn a_member_dropped_unfinished_delays_the_bump_whoever_leaves_last() {
        let leases = Leases::default();
        let now = Instant::now();
        let a = ids(&["a"]);
        let (_, rest) = leases.join(&a, now, TTL);
        let lock = LockId::fresh();
        leases.open(lock, rest, now + Duration::from_secs(1));
        let (joined, _) = leases.join(&a, now, TTL);
        let until = now + Duration::from_secs(10);
        assert!(leases.leave(&joined, Some(until)).is_empty());
        let ended = leases.leave(&[lock], None);
        assert_eq!(ended[0].not_before, Some(until));
    }
}
