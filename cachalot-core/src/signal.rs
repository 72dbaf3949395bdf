//! The invalidation signal: who wants to know when a table's data changed.
//!
//! An [`Invalidation`] is sent once a write is final (its guard finished, or an explicit
//! invalidation), once per table per write, never for a rolled-back transaction. A receiver
//! that lags behind loses the oldest events (see [`tokio::sync::broadcast`]).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;

/// How many events a slow receiver may lag behind before it loses the oldest.
const CAPACITY: usize = 1024;

/// One table (or a whole database) whose cached reads were invalidated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Invalidation {
    /// The database identity.
    pub database: Arc<str>,
    /// The table's bare name, or `None` when the whole database was invalidated.
    pub table: Option<Arc<str>>,
    /// When it happened (the time inside the new version token).
    pub time: SystemTime,
}

/// The sending side, owned by the engine.
#[derive(Debug)]
pub(crate) struct Signal {
    sender: broadcast::Sender<Invalidation>,
}

impl Signal {
    pub(crate) fn new() -> Self {
        Signal {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.sender.subscribe()
    }

    pub(crate) fn has_receivers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    pub(crate) fn send(&self, event: Invalidation) {
        // No receiver is not an error: nobody asked.
        let _ = self.sender.send(event);
    }
}
