//! The engine's calls to its backend: plain calls when the backend answers in process (see
//! [`CacheBackend::local`](crate::backend::CacheBackend::local)), its futures otherwise.

use std::time::Duration;

use super::Inner;
use crate::backend::{Entry, Fetched, LockId, TableId};
use crate::error::BackendError;
use crate::key::QueryKey;
use crate::version::Token;

impl Inner {
    pub(super) async fn fetch(
        &self,
        tables: &[TableId],
        key: &QueryKey,
    ) -> Result<Fetched, BackendError> {
        match self.backend.local() {
            Some(local) => local.fetch_now(tables, key),
            None => self.backend.fetch(tables, key).await,
        }
    }

    pub(super) async fn store(
        &self,
        tables: &[TableId],
        key: &QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        match self.backend.local() {
            Some(local) => local.store_now(tables, key, entry, ttl),
            None => self.backend.store(tables, key, entry, ttl).await,
        }
    }

    pub(super) async fn lock(
        &self,
        tables: &[TableId],
        lock: LockId,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        match self.backend.local() {
            Some(local) => local.lock_now(tables, lock, ttl),
            None => self.backend.lock(tables, lock, ttl).await,
        }
    }

    pub(super) async fn bump(
        &self,
        tables: &[TableId],
        lock: Option<LockId>,
    ) -> Result<Vec<Token>, BackendError> {
        match self.backend.local() {
            Some(local) => local.bump_now(tables, lock),
            None => self.backend.bump(tables, lock).await,
        }
    }
}
