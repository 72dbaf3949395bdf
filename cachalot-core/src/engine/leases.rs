//! Leases: the writes of this process that overlap on a table share one lock on it in a
//! remote backend.
//!
//! With Redis a write costs two round trips: the lock before it and the fresh token after it.
//! When writes of one process overlap on a table (a hot table, several tasks writing), the
//! first one's lock covers the others: a write that starts while a lease of its table is young
//! joins it instead of locking again, and only the last member writing a table to finish bumps
//! it, once for all of them. Readers in every process see the table locked from the first
//! member's lock to the last member's bump, which covers each member's statement exactly as a
//! lock of its own would; what is saved is the round trips. A table of a lease that no member
//! writes any more is bumped at once, whatever the others still write.
//!
//! A lease may be joined for [`window`] after its lock was sent, and its lock lasts `lock_ttl`
//! plus that window: every member is covered for at least `lock_ttl` from its own start, as
//! with a lock of its own. The price is that a writer that dies leaves its tables locked (read
//! uncached) for up to the window longer.
//!
//! Reads of this process skip the backend for a table one of its writes has locked: they
//! would find it locked. Until the lock is placed the write has not started, and reads still
//! ask.

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

impl Table {
    fn cover(&mut self, until: Instant) {
        self.covered_until = Some(self.covered_until.map_or(until, |t| t.max(until)));
    }
}

#[derive(Debug)]
struct Lease {
    /// The tables it locks, each with the members writing it.
    tables: Vec<Locked>,
    joinable_until: Instant,
}

/// A table of a lease.
#[derive(Debug)]
struct Locked {
    id: TableId,
    /// Members writing it: it is bumped when the last of them leaves, whatever the others
    /// of the lease still write.
    members: usize,
    /// Not bumped before this: a member writing it was dropped unfinished, and the server may
    /// still commit its statement.
    not_before: Option<Instant>,
}

/// Tables of a lease no member writes any more: bumped under its lock.
#[derive(Debug)]
pub(crate) struct Released {
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

    /// Starts a write of `tables` (each once): joins the leases it can (its tables in them
    /// are covered for `lock_ttl` from `now`), and returns them with the tables that no lease
    /// may cover, which need a lock of their own. Those are covered once it is placed, by
    /// [`open`](Self::open): until then the write has not started, and reads of them may
    /// still be served what the backend holds.
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
            let young = table.joinable.and_then(|lock| {
                let lease = leases.get_mut(&lock)?;
                if lease.joinable_until <= now {
                    return None;
                }
                let locked = lease.tables.iter_mut().find(|t| t.id == *id)?;
                locked.members += 1;
                Some(lock)
            });
            match young {
                Some(lock) => {
                    table.cover(covered);
                    if !joined.contains(&lock) {
                        joined.push(lock);
                    }
                }
                None => rest.push(id.clone()),
            }
        }
        self.writing.fetch_add(tables.len(), Ordering::AcqRel);
        (joined, rest)
    }

    /// A lease of `tables`, just locked under `lock` by a write that started at `started`:
    /// its one member. Writes of those tables may join it until `joinable_until`.
    pub(crate) fn open(
        &self,
        lock: LockId,
        tables: Vec<TableId>,
        started: Instant,
        lock_ttl: Duration,
        joinable_until: Instant,
    ) {
        let covered = lock_deadline(started, lock_ttl);
        let mut state = self.lock();
        for id in &tables {
            if let Some(table) = state.tables.get_mut(id) {
                table.joinable = Some(lock);
                table.cover(covered);
            }
        }
        let tables = tables
            .into_iter()
            .map(|id| Locked {
                id,
                members: 1,
                not_before: None,
            })
            .collect();
        state.leases.insert(
            lock,
            Lease {
                tables,
                joinable_until,
            },
        );
    }

    /// The write of `tables` leaves `memberships`. With `not_before` (the write was dropped
    /// unfinished), none of its tables is bumped before then, whoever leaves last. Returns the
    /// tables of those leases that no member writes any more: no write joins them, the
    /// caller bumps them (under the lease's lock: its other tables stay locked).
    pub(crate) fn leave(
        &self,
        memberships: &[LockId],
        tables: &[TableId],
        not_before: Option<Instant>,
    ) -> SmallVec<[Released; 1]> {
        let mut guard = self.lock();
        let State {
            tables: map,
            leases,
        } = &mut *guard;
        let mut released: SmallVec<[Released; 1]> = SmallVec::new();
        for lock in memberships {
            let Some(lease) = leases.get_mut(lock) else {
                continue;
            };
            let mut i = 0;
            while i < lease.tables.len() {
                let locked = &mut lease.tables[i];
                if !tables.contains(&locked.id) {
                    i += 1;
                    continue;
                }
                if let Some(at) = not_before {
                    locked.not_before = Some(locked.not_before.map_or(at, |t| t.max(at)));
                }
                locked.members = locked.members.saturating_sub(1);
                if locked.members > 0 {
                    i += 1;
                    continue;
                }
                let locked = lease.tables.swap_remove(i);
                if let Some(table) = map.get_mut(&locked.id)
                    && table.joinable == Some(*lock)
                {
                    table.joinable = None;
                }
                match released
                    .iter_mut()
                    .find(|r| r.lock == *lock && r.not_before == locked.not_before)
                {
                    Some(r) => r.tables.push(locked.id),
                    None => released.push(Released {
                        tables: vec![locked.id],
                        lock: *lock,
                        not_before: locked.not_before,
                    }),
                }
            }
            if lease.tables.is_empty() {
                leases.remove(lock);
            }
        }
        released
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
        // Not covered before its lock is placed: the write has not started.
        assert!(!leases.covers_any(&a));
        let first = LockId::fresh();
        leases.open(first, rest, now, TTL, now + Duration::from_secs(1));
        assert!(leases.covers_any(&a));

        // `a` joins the lease; `b` has none and needs a lock of its own.
        let (joined, rest) = leases.join(&b, now, TTL);
        assert_eq!(joined.as_slice(), &[first]);
        assert_eq!(rest, ids(&["b"]));
        assert!(!leases.covers_any(&ids(&["b"])));

        assert!(leases.leave(&[first], &a, None).is_empty());
        leases.done(&a);
        let released = leases.leave(&[first], &b, None);
        assert_eq!(released.len(), 1);
        assert_eq!((released[0].lock, &released[0].tables), (first, &a));
        leases.done(&b);
        assert!(!leases.any());
        assert!(!leases.covers_any(&b));
    }

    #[test]
    fn a_table_no_member_writes_any_more_is_released_at_once() {
        let leases = Leases::default();
        let now = Instant::now();
        let ab = ids(&["a", "b"]);
        let (_, rest) = leases.join(&ab, now, TTL);
        let lock = LockId::fresh();
        leases.open(lock, rest, now, TTL, now + Duration::from_secs(1));
        // A write of `a` alone joins; the first one's `b` needs not wait for it.
        let a = ids(&["a"]);
        let (joined, rest) = leases.join(&a, now, TTL);
        assert_eq!((joined.as_slice(), rest.len()), (&[lock][..], 0));
        let released = leases.leave(&[lock], &ab, None);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].tables, ids(&["b"]));
        leases.done(&ab);
        // `b` is no longer joinable: a write of it locks again.
        let (joined, rest) = leases.join(&ids(&["b"]), now, TTL);
        assert!(joined.is_empty());
        assert_eq!(rest, ids(&["b"]));
        let released = leases.leave(&[lock], &a, None);
        assert_eq!(released[0].tables, a);
    }

    #[test]
    fn a_write_covers_its_tables_for_lock_ttl_from_its_start() {
        let leases = Leases::default();
        let a = ids(&["a"]);
        let long_ago = Instant::now() - 2 * TTL;
        let (_, rest) = leases.join(&a, long_ago, TTL);
        leases.open(LockId::fresh(), rest, long_ago, TTL, long_ago);
        // Never finished (forgotten): its lock has expired, reads ask the backend again.
        assert!(leases.any());
        assert!(!leases.covers_any(&a));
        let (_, rest) = leases.join(&a, Instant::now(), TTL);
        leases.open(LockId::fresh(), rest, Instant::now(), TTL, Instant::now());
        assert!(leases.covers_any(&a));
    }

    #[test]
    fn an_old_lease_is_not_joined() {
        let leases = Leases::default();
        let now = Instant::now();
        let a = ids(&["a"]);
        let (_, rest) = leases.join(&a, now, TTL);
        let first = LockId::fresh();
        leases.open(first, rest, now, TTL, now + Duration::from_millis(10));
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
        leases.open(lock, rest, now, TTL, now + Duration::from_secs(1));
        let (joined, _) = leases.join(&a, now, TTL);
        let until = now + Duration::from_secs(10);
        assert!(leases.leave(&joined, &a, Some(until)).is_empty());
        let released = leases.leave(&[lock], &a, None);
        assert_eq!(released[0].not_before, Some(until));
    }
}
