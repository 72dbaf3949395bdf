//! Single-flight: concurrent identical misses run the query once.
//!
//! A flight is identified by the query key's hash *and* the tokens its leader read, so a reader
//! that saw newer tokens (a write committed in between) never takes an older flight's result,
//! and joining also requires the same key material, so a hash collision never shares a result.
//!
//! Once its query has returned, a flight stays until its result is stored, holding the result:
//! a reader with the same tokens takes it from there, so a store that is a round trip need not
//! happen before the leader returns (see [`Cachalot::settle`](crate::engine::Cachalot::settle)).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use smallvec::SmallVec;
use tokio::sync::watch;

use crate::hashing::BuildMix;
use crate::version::Token;

/// A result handed from a leader to its followers.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

struct Flight {
    id: u64,
    tokens: Arc<[Token]>,
    material: Arc<[u8]>,
    /// Made by the first follower: most misses have none, and a channel costs an allocation
    /// and, when sent on, a wake of each of its notifiers.
    sender: Option<watch::Sender<Option<Shared>>>,
    /// The result, once the query has returned, until it is stored.
    ready: Option<Shared>,
}

/// The flights of one key hash: they differ by their tokens, and there is almost always one.
type Group = SmallVec<[Flight; 1]>;

/// The flights in progress, by key hash.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<u128, Group, BuildMix>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.lock().values().map(|group| group.len()).sum();
        f.debug_struct("Flights").field("in_progress", &n).finish()
    }
}

/// What a missing reader does.
pub(crate) enum Role<'a> {
    /// Runs the query and hands the result to the followers.
    Leader(Leader<'a>),
    /// Waits for the leader's result.
    Follower(watch::Receiver<Option<Shared>>),
    /// Takes the result of a query already returned, whose store is on its way.
    Ready(Shared),
    /// Runs the query on its own (another query has the same hash).
    Alone,
}

/// A flight whose result is published and being stored: [`Flights::land`] closes it.
#[must_use = "a published flight stays open until it lands"]
pub(crate) struct Published {
    hash: u128,
    id: u64,
}

/// A published result, taken before asking the backend (see [`Flights::landing`]).
pub(crate) struct Landing {
    tokens: Arc<[Token]>,
    value: Shared,
}

impl Landing {
    /// The result, if it was read with exactly `tokens`.
    pub(crate) fn with_tokens(self, tokens: &[Token]) -> Option<Shared> {
        (*self.tokens == *tokens).then_some(self.value)
    }
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Group, BuildMix>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn join(&self, hash: u128, tokens: &Arc<[Token]>, material: &Arc<[u8]>) -> Role<'_> {
        let mut map = self.lock();
        let flights = map.entry(hash).or_default();
        if let Some(flight) = flights.iter_mut().find(|f| f.tokens == *tokens) {
            if *flight.material != **material {
                return Role::Alone;
            }
            if let Some(ready) = &flight.ready {
                return Role::Ready(ready.clone());
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
        flights.push(Flight {
            id,
            tokens: tokens.clone(),
            material: material.clone(),
            sender: None,
            ready: None,
        });
        Role::Leader(Leader {
            flights: self,
            hash: Some(hash),
            id,
        })
    }

    /// A published result of this key, read with `tokens` if given, else whatever its tokens
    /// (the latest): taken before the backend is asked, it still serves a reader whose tokens
    /// match once the store has landed and its flight is gone, so a read after a miss is a hit
    /// whenever the store lands.
    pub(crate) fn landing(
        &self,
        hash: u128,
        material: &[u8],
        tokens: Option<&[Token]>,
    ) -> Option<Landing> {
        let map = self.lock();
        let flight = map.get(&hash)?.iter().rev().find(|f| {
            f.ready.is_some() && *f.material == *material && tokens.is_none_or(|t| *f.tokens == *t)
        })?;
        Some(Landing {
            tokens: flight.tokens.clone(),
            value: flight.ready.clone()?,
        })
    }

    /// Closes a published flight: its result is stored, or will never be.
    pub(crate) fn land(&self, published: Published) {
        drop(self.remove(published.hash, published.id));
    }

    /// Removes flight `id` and gives its followers' channel, if any follower came.
    fn remove(&self, hash: u128, id: u64) -> Option<watch::Sender<Option<Shared>>> {
        let mut map = self.lock();
        let flights = map.get_mut(&hash)?;
        let at = flights.iter().position(|f| f.id == id)?;
        let flight = flights.swap_remove(at);
        if flights.is_empty() {
            map.remove(&hash);
        }
        flight.sender
    }
}

/// The leader of a flight. Dropped without [`finish`](Self::finish) or
/// [`publish`](Self::publish) (an error, or the read was cancelled), it closes the flight and
/// its followers run the query themselves.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    hash: Option<u128>,
    id: u64,
}

impl Leader<'_> {
    /// Closes the flight and hands `value()` to the followers, if there are any.
    pub(crate) fn finish(mut self, value: impl FnOnce() -> Shared) {
        // Removed first: no follower can join after the value is sent and miss it.
        if let Some(hash) = self.hash.take()
            && let Some(sender) = self.flights.remove(hash, self.id)
        {
            let _ = sender.send(Some(value()));
        }
    }

    /// Hands `value` to the followers and keeps it for the readers that come until the flight
    /// [lands](Flights::land).
    pub(crate) fn publish(mut self, value: Shared) -> Option<Published> {
        let hash = self.hash.take()?;
        let sender = {
            let mut map = self.flights.lock();
            let flight = map.get_mut(&hash)?.iter_mut().find(|f| f.id == self.id)?;
            flight.ready = Some(value.clone());
            flight.sender.take()
        };
        if let Some(sender) = sender {
            let _ = sender.send(Some(value));
        }
        Some(Published { hash, id: self.id })
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(hash) = self.hash.take() {
            // Dropping the channel tells the followers to run the query themselves.
            drop(self.flights.remove(hash, self.id));
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
