//! Invalidations that could not reach the backend, or must not reach it yet.
//!
//! A table whose bump failed keeps an old token in the backend, so this process stops caching
//! it (its reads bypass the cache) until a retry succeeds. A table whose lock failed is held
//! the same way until its write's bump succeeds, and so is a table whose write was dropped
//! unfinished outside a runtime, until its lock has expired and the retries bump it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::Inner;
use crate::backend::{LockId, TableId};

const RETRY_FIRST: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A bump to retry.
#[derive(Debug, Clone)]
pub(crate) struct FailedBump {
    pub(crate) tables: Vec<TableId>,
    pub(crate) lock: Option<LockId>,
    /// Set for a write dropped unfinished: the server may still commit it, so it is not
    /// bumped before its lock expires, and its signal is sent when it is.
    pub(crate) unfinished_until: Option<Instant>,
}

/// Tables this process must not cache, and the bumps to retry.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Sum of the hold counts: the hit path's only check while nothing is pending.
    held: AtomicUsize,
    tables: Mutex<HashMap<TableId, usize>>,
    failed: Mutex<Vec<FailedBump>>,
    retrying: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, even if it panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pending {
    /// Whether any table is held.
    pub(crate) fn any(&self) -> bool {
        self.held.load(Ordering::Acquire) > 0
    }

    /// Whether any of `tables` is held.
    pub(crate) fn holds_any(&self, tables: &[TableId]) -> bool {
        if !self.any() {
            return false;
        }
        let map = lock(&self.tables);
        tables.iter().any(|t| map.contains_key(t))
    }

    /// Holds `tables` once more each.
    pub(crate) fn hold(&self, tables: &[TableId]) {
        let mut map = lock(&self.tables);
        for t in tables {
            *map.entry(t.clone()).or_insert(0) += 1;
        }
        self.held.fetch_add(tables.len(), Ordering::Release);
    }

    /// Undoes one [`hold`](Self::hold) of `tables`.
    pub(crate) fn release(&self, tables: &[TableId]) {
        let mut map = lock(&self.tables);
        let mut released = 0;
        for t in tables {
            if let Some(count) = map.get_mut(t) {
                *count -= 1;
                released += 1;
                if *count == 0 {
                    map.remove(t);
                }
            }
        }
        self.held.fetch_sub(released, Ordering::Release);
    }

    /// Records a bump to retry (its tables must be held).
    pub(crate) fn push_failed(&self, bump: FailedBump) {
        lock(&self.failed).push(bump);
    }

    pub(crate) fn has_failed(&self) -> bool {
        !lock(&self.failed).is_empty()
    }

    /// When the first bump waiting for its write's lock to expire is due, if every bump left
    /// is such a one (none failed on the backend).
    fn next_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for bump in lock(&self.failed).iter() {
            match bump.unfinished_until {
                Some(due) if due > now => next = Some(next.map_or(due, |n| n.min(due))),
                _ => return None,
            }
        }
        next
    }

    fn take_failed(&self) -> Vec<FailedBump> {
        std::mem::take(&mut *lock(&self.failed))
    }
}

/// Bumps taken out for a retry; whatever was not retried goes back, even if the retry is
/// cancelled half way.
struct Batch<'a> {
    pending: &'a Pending,
    bumps: Vec<FailedBump>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        for bump in self.bumps.drain(..) {
            self.pending.push_failed(bump);
        }
    }
}

impl Inner {
    /// Retries every failed bump that is due once. Returns whether none is left.
    pub(crate) async fn retry_failed(&self) -> bool {
        let mut batch = Batch {
            pending: &self.pending,
            bumps: self.pending.take_failed(),
        };
        while let Some(bump) = batch.bumps.last() {
            let due = bump.unfinished_until.is_none_or(|t| t <= Instant::now());
            let result = match due {
                true => Some(self.bump(&bump.tables, bump.lock).await),
                false => None,
            };
            let Some(bump) = batch.bumps.pop() else { break };
            match result {
                None => self.pending.push_failed(bump),
                Some(Ok(tokens)) => {
                    self.backend_ok();
                    self.pending.release(&bump.tables);
                    if bump.unfinished_until.is_some() {
                        self.bumped(&bump.tables, &tokens);
                    }
                    tracing::info!(tables = ?bump.tables, "cachalot: pending invalidation done");
                }
                Some(Err(err)) => {
                    self.backend_failed("bump (retry)", &err);
                    self.pending.push_failed(bump);
                }
            }
        }
        drop(batch);
        !self.pending.has_failed()
    }

    /// Records a bump that could not be made (or, with `unfinished_until`, must not be made
    /// yet): its tables stay uncacheable in this process until a retry succeeds.
    pub(crate) fn record_failed(
        self: &Arc<Self>,
        tables: &[TableId],
        lock: Option<LockId>,
        held: bool,
        unfinished_until: Option<Instant>,
    ) {
        if !held {
            self.pending.hold(tables);
        }
        self.pending.push_failed(FailedBump {
            tables: tables.to_vec(),
            lock,
            unfinished_until,
        });
        self.ensure_retry_task();
    }

    /// Starts the background retry task if bumps are waiting, none is running and a tokio
    /// runtime is at hand; otherwise the next read or write on a runtime starts it.
    pub(crate) fn ensure_retry_task(self: &Arc<Self>) {
        if self.pending.retrying.load(Ordering::Acquire) || !self.pending.has_failed() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.pending.retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        handle.spawn(retry_loop(Arc::downgrade(self)));
    }
}

/// Retries with exponential backoff (or, for a write waiting for its lock to expire, once it
/// has) until nothing is left or the cache is dropped.
async fn retry_loop(inner: Weak<Inner>) {
    let mut delay = RETRY_FIRST;
    loop {
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.retry_failed().await {
            inner.pending.retrying.store(false, Ordering::Release);
            // A failure recorded just before the store saw `retrying` set and left it to us.
            if inner.pending.has_failed() && !inner.pending.retrying.swap(true, Ordering::AcqRel) {
                delay = RETRY_FIRST;
                continue;
            }
            return;
        }
        delay = match inner.pending.next_due() {
            // Nothing failed, a write waits for its lock to expire: wake up when it has.
            Some(due) => due.saturating_duration_since(Instant::now()) + RETRY_FIRST,
            None => (delay * 2).min(RETRY_MAX),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(unfinished_until: Option<Instant>) -> FailedBump {
        let db: Arc<str> = Arc::from("app");
        FailedBump {
            tables: vec![TableId::new(&db, "t")],
            lock: None,
            unfinished_until,
        }
    }

    #[test]
    fn the_retries_wait_for_the_first_lock_only_when_nothing_failed() {
        let now = Instant::now();
        let (soon, later) = (now + Duration::from_secs(10), now + Duration::from_secs(20));
        let pending = Pending::default();
        assert_eq!(pending.next_due(), None);
        pending.push_failed(bump(Some(later)));
        pending.push_failed(bump(Some(soon)));
        assert_eq!(pending.next_due(), Some(soon));
        // A bump the backend refused is retried with backoff, whatever else waits.
        pending.push_failed(bump(None));
        assert_eq!(pending.next_due(), None);
        let pending = Pending::default();
        // So is one whose lock has expired (due, so it failed on the backend).
        pending.push_failed(bump(Some(now)));
        assert_eq!(pending.next_due(), None);
    }
}
