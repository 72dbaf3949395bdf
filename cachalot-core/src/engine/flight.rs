//! Single-flight: concurrent identical misses run the query once.
//!
//! A flight is keyed by the query key's hash *and* the tokens its leader read, so a reader that
//! saw newer tokens (a write committed in between) never takes an older flight's result, and
//! joining also requires the same key material, so a hash collision never shares a result.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::version::Token;

/// A result handed from a leader to its followers.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FlightKey {
    hash: u128,
    tokens: Arc<[Token]>,
}

struct Flight {
    id: u64,
    material: Arc<[u8]>,
    receiver: watch::Receiver<Option<Shared>>,
}

/// The flights in progress.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<FlightKey, Flight>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Flights").field("in_progress", &n).finish()
    }
}

/// What a missing reader does.
pub(crate) enum Role<'a> {
    /// Runs the query and hands the result to the followers.
    Leader(Leader<'a>),
    /// Waits for the leader's result.
    Follower(watch::Receiver<Option<Shared>>),
    /// Runs the query on its own (another query has the same hash).
    Alone,
}

impl Flights {
    pub(crate) fn join(&self, hash: u128, tokens: &Arc<[Token]>, material: &Arc<[u8]>) -> Role<'_> {
        let key = FlightKey {
            hash,
            tokens: tokens.clone(),
        };
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = map.get(&key) {
            return if *flight.material == **material {
                Role::Follower(flight.receiver.clone())
            } else {
                Role::Alone
            };
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(None);
        map.insert(
            key.clone(),
            Flight {
                id,
                material: material.clone(),
                receiver,
            },
        );
        Role::Leader(Leader {
            flights: self,
            key: Some(key),
            id,
            sender,
        })
    }

    fn remove(&self, key: &FlightKey, id: u64) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // A later flight may have the same key once ours is gone: remove only ours.
        if map.get(key).is_some_and(|f| f.id == id) {
            map.remove(key);
        }
    }
}

/// The leader of a flight. Dropped without [`finish`](Self::finish) (an error, or the read was
/// cancelled), it closes the flight and its followers run the query themselves.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: Option<FlightKey>,
    id: u64,
    sender: watch::Sender<Option<Shared>>,
}

impl Leader<'_> {
    /// Closes the flight and hands `value()` to the followers, if there are any.
    pub(crate) fn finish(mut self, value: impl FnOnce() -> Shared) {
        if let Some(key) = self.key.take() {
            // Removed first: no follower can join after the value is sent and miss it.
            self.flights.remove(&key, self.id);
        }
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Some(value()));
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flights.remove(&key, self.id);
        }
    }
}

/// Waits for the leader: its result, or `None` if it failed or was cancelled.
pub(crate) async fn wait(mut receiver: watch::Receiver<Option<Shared>>) -> Option<Shared> {
    match receiver.changed().await {
        Ok(()) => receiver.borrow_and_update().clone(),
        Err(_) => None,
    }
}
