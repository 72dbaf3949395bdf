//! Single-flight: concurrent identical misses run the query once.
//!
//! A flight is keyed by the query key's hash *and* the tokens its leader read, so a reader that
//! saw newer tokens (a write committed in between) never takes an older flight's result, and
//! joining also requires the same key material, so a hash collision never shares a result.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::hashing::BuildMix;
use crate::version::Token;

/// A result handed from a leader to its followers.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct FlightKey {
    hash: u128,
    tokens: Arc<[Token]>,
}

impl Hash for FlightKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a hash; equal hashes with other tokens are rare and compared in full.
        state.write_u128(self.hash);
    }
}

struct Flight {
    id: u64,
    material: Arc<[u8]>,
    /// Made by the first follower: most misses have none, and a channel costs an allocation
    /// and, when sent on, a wake of each of its notifiers.
    sender: Option<watch::Sender<Option<Shared>>>,
}

/// The flights in progress.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<FlightKey, Flight, BuildMix>>,
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
        if let Some(flight) = map.get_mut(&key) {
            if *flight.material != **material {
                return Role::Alone;
            }
            let receiver = match &flight.sender {
                Some(sender) => sender.subscribe(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    flight.sender = Some(sender);
                    receiver
                }
            };
            return Role::Follower(receiver);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        map.insert(
            key.clone(),
            Flight {
                id,
                material: material.clone(),
                sender: None,
            },
        );
        Role::Leader(Leader {
            flights: self,
            key: Some(key),
            id,
        })
    }

    /// Removes flight `id` (a later flight may have the same key once ours is gone: only ours
    /// goes) and gives its followers' channel, if any follower came.
    fn remove(&self, key: &FlightKey, id: u64) -> Option<watch::Sender<Option<Shared>>> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_some_and(|f| f.id == id) {
            return map.remove(key).and_then(|f| f.sender);
        }
        None
    }
}

/// The leader of a flight. Dropped without [`finish`](Self::finish) (an error, or the read was
/// cancelled), it closes the flight and its followers run the query themselves.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: Option<FlightKey>,
    id: u64,
}

impl Leader<'_> {
    /// Closes the flight and hands `value()` to the followers, if there are any.
    pub(crate) fn finish(mut self, value: impl FnOnce() -> Shared) {
        // Removed first: no follower can join after the value is sent and miss it.
        if let Some(key) = self.key.take()
            && let Some(sender) = self.flights.remove(&key, self.id)
        {
            let _ = sender.send(Some(value()));
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // Dropping the channel tells the followers to run the query themselves.
            drop(self.flights.remove(&key, self.id));
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
