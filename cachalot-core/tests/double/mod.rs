//! A test double of a backend, shared by the engine's tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use cachalot_core::BackendError;
use cachalot_core::backend::{
    BackendFuture, CacheBackend, Entry, Fetched, LockId, MemoryBackend, TableId, TokenState,
};
use cachalot_core::key::QueryKey;
use cachalot_core::version::Token;

/// The memory backend, made to fail every operation while `fail` is set, or to say that its
/// stores are round trips (as Redis's are) when `remote` is.
#[derive(Debug, Clone, Default)]
pub struct Double {
    pub inner: MemoryBackend,
    pub fail: Arc<AtomicBool>,
    pub remote: bool,
}

impl Double {
    fn check<'a, T: Send + 'a>(&self, ok: BackendFuture<'a, T>) -> BackendFuture<'a, T> {
        if self.fail.load(SeqCst) {
            Box::pin(async { Err(BackendError::Unavailable("down".into())) })
        } else {
            ok
        }
    }
}

impl CacheBackend for Double {
    fn stores_remotely(&self) -> bool {
        self.remote
    }
    fn fetch<'a>(&'a self, tables: &'a [TableId], key: &'a QueryKey) -> BackendFuture<'a, Fetched> {
        self.check(self.inner.fetch(tables, key))
    }
    fn init_tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>> {
        self.check(self.inner.init_tokens(tables))
    }
    fn store<'a>(
        &'a self,
        tables: &'a [TableId],
        key: &'a QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> BackendFuture<'a, bool> {
        if self.fail.load(SeqCst) {
            return Box::pin(async { Err(BackendError::Timeout(Duration::from_millis(1))) });
        }
        self.inner.store(tables, key, entry, ttl)
    }
    fn lock<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: LockId,
        ttl: Duration,
    ) -> BackendFuture<'a, ()> {
        if self.fail.load(SeqCst) {
            return Box::pin(async { Err(BackendError::Unavailable("down".into())) });
        }
        self.inner.lock(tables, lock, ttl)
    }
    fn bump<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: Option<LockId>,
    ) -> BackendFuture<'a, Vec<Token>> {
        if self.fail.load(SeqCst) {
            return Box::pin(async { Err(BackendError::Unavailable("down".into())) });
        }
        self.inner.bump(tables, lock)
    }
    fn tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>> {
        self.check(self.inner.tokens(tables))
    }
    fn clear(&self) -> BackendFuture<'_, ()> {
        self.check(self.inner.clear())
    }
}
