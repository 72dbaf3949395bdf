//! Counters of what the cache did, cheap enough for the hit path.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a read went to the database without the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BypassReason {
    /// The cache is disabled ([`Cachalot::set_enabled`](crate::Cachalot::set_enabled)).
    Disabled,
    /// The statement may not be cached (a write, a volatile function, a system catalog, ...).
    NotCacheable,
    /// A table read is outside the allow-list or inside the deny-list.
    TableNotAllowed,
    /// A table read was created `TEMPORARY` on this database.
    TemporaryTable,
    /// A writer holds a lock on a table read.
    Locked,
    /// An invalidation of a table read failed in this process and is still being retried.
    PendingInvalidation,
    /// The result was larger than `max_entry_bytes`: the query ran (and counts as a miss) but
    /// its result was not stored.
    TooLarge,
    /// The read ran inside a transaction whose result may not be shared (adapter use).
    Transaction,
    /// The backend failed; the query ran uncached.
    BackendError,
    /// The statement's entries keep being invalidated before they are read: it skips the
    /// cache but for a probe now and then (see `skip_churning_reads` in the settings).
    Churn,
}

impl BypassReason {
    /// Every reason, in the order of [`Bypasses`]'s fields.
    pub const ALL: [BypassReason; 10] = [
        BypassReason::Disabled,
        BypassReason::NotCacheable,
        BypassReason::TableNotAllowed,
        BypassReason::TemporaryTable,
        BypassReason::Locked,
        BypassReason::PendingInvalidation,
        BypassReason::TooLarge,
        BypassReason::Transaction,
        BypassReason::BackendError,
        BypassReason::Churn,
    ];

    fn index(self) -> usize {
        match self {
            BypassReason::Disabled => 0,
            BypassReason::NotCacheable => 1,
            BypassReason::TableNotAllowed => 2,
            BypassReason::TemporaryTable => 3,
            BypassReason::Locked => 4,
            BypassReason::PendingInvalidation => 5,
            BypassReason::TooLarge => 6,
            BypassReason::Transaction => 7,
            BypassReason::BackendError => 8,
            BypassReason::Churn => 9,
        }
    }
}

/// Bypassed reads, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bypasses {
    /// [`BypassReason::Disabled`].
    pub disabled: u64,
    /// [`BypassReason::NotCacheable`].
    pub not_cacheable: u64,
    /// [`BypassReason::TableNotAllowed`].
    pub table_not_allowed: u64,
    /// [`BypassReason::TemporaryTable`].
    pub temporary_table: u64,
    /// [`BypassReason::Locked`].
    pub locked: u64,
    /// [`BypassReason::PendingInvalidation`].
    pub pending_invalidation: u64,
    /// [`BypassReason::TooLarge`].
    pub too_large: u64,
    /// [`BypassReason::Transaction`].
    pub transaction: u64,
    /// [`BypassReason::BackendError`].
    pub backend_error: u64,
    /// [`BypassReason::Churn`].
    pub churn: u64,
}

impl Bypasses {
    /// The count for one reason.
    pub fn get(&self, reason: BypassReason) -> u64 {
        match reason {
            BypassReason::Disabled => self.disabled,
            BypassReason::NotCacheable => self.not_cacheable,
            BypassReason::TableNotAllowed => self.table_not_allowed,
            BypassReason::TemporaryTable => self.temporary_table,
            BypassReason::Locked => self.locked,
            BypassReason::PendingInvalidation => self.pending_invalidation,
            BypassReason::TooLarge => self.too_large,
            BypassReason::Transaction => self.transaction,
            BypassReason::BackendError => self.backend_error,
            BypassReason::Churn => self.churn,
        }
    }

    /// All bypasses, whatever the reason.
    pub fn total(&self) -> u64 {
        BypassReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// A snapshot of the counters since the cache was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that consulted the cache, found nothing servable and ran the query.
    pub misses: u64,
    /// Reads that waited for an identical concurrent miss and took its result.
    pub coalesced: u64,
    /// Entries stored.
    pub stores: u64,
    /// Reads that did not use the cache, by reason.
    pub bypasses: Bypasses,
    /// Tables invalidated (one per table per write; the database epoch counts as one).
    pub invalidations: u64,
    /// Backend operations that failed (each one degraded to an uncached query or a retried
    /// invalidation).
    pub backend_errors: u64,
}

impl Stats {
    /// Hits among the reads that consulted the cache (hits, misses, coalesced), from 0 to 1.
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits + self.coalesced;
        let total = served + self.misses;
        if total == 0 {
            0.0
        } else {
            served as f64 / total as f64
        }
    }
}

/// One counter on its own cache line, so that hits on one core do not slow misses on another.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: Counter,
    misses: Counter,
    coalesced: Counter,
    stores: Counter,
    bypasses: [Counter; BypassReason::ALL.len()],
    invalidations: Counter,
    backend_errors: Counter,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.add(1);
    }

    pub(crate) fn miss(&self) {
        self.misses.add(1);
    }

    pub(crate) fn coalesced(&self) {
        self.coalesced.add(1);
    }

    pub(crate) fn store(&self) {
        self.stores.add(1);
    }

    pub(crate) fn bypass(&self, reason: BypassReason) {
        self.bypasses[reason.index()].add(1);
    }

    pub(crate) fn invalidations(&self, n: usize) {
        self.invalidations.add(n as u64);
    }

    pub(crate) fn backend_error(&self) {
        self.backend_errors.add(1);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let b = |r: BypassReason| self.bypasses[r.index()].get();
        Stats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            coalesced: self.coalesced.get(),
            stores: self.stores.get(),
            bypasses: Bypasses {
                disabled: b(BypassReason::Disabled),
                not_cacheable: b(BypassReason::NotCacheable),
                table_not_allowed: b(BypassReason::TableNotAllowed),
                temporary_table: b(BypassReason::TemporaryTable),
                locked: b(BypassReason::Locked),
                pending_invalidation: b(BypassReason::PendingInvalidation),
                too_large: b(BypassReason::TooLarge),
                transaction: b(BypassReason::Transaction),
                backend_error: b(BypassReason::BackendError),
                churn: b(BypassReason::Churn),
            },
            invalidations: self.invalidations.get(),
            backend_errors: self.backend_errors.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        let c = Counters::default();
        for (i, &r) in BypassReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                c.bypass(r);
            }
        }
        let s = c.snapshot();
        for (i, &r) in BypassReason::ALL.iter().enumerate() {
            assert_eq!(s.bypasses.get(r), i as u64 + 1);
        }
        assert_eq!(
            s.bypasses.total(),
            (1..=BypassReason::ALL.len() as u64).sum::<u64>()
        );
    }
}
