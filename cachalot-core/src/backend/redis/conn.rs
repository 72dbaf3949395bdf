//! Connections: a few multiplexed connections ("lanes") taken from a deadpool-redis pool and
//! kept, so that an operation costs exactly its own round trip.
//!
//! deadpool checks a connection with a `PING` every time one is taken from the pool: one
//! round trip more per operation. A multiplexed connection serves many concurrent requests,
//! so each lane keeps the connection it got and every operation clones it (an `Arc` clone).
//! A connection that fails at the connection level is thrown away; the lane takes a new one
//! from the pool on its next use. After such a failure, operations fail at once for the
//! cooldown instead of each waiting on a dead server.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};

use crate::error::BackendError;

/// One connection, to a server or to a cluster. Cloning shares it.
#[derive(Clone)]
pub(super) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where connections come from.
pub(super) enum Factory {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

/// A connection taken from the pool, kept by a lane.
enum Held {
    Single(deadpool_redis::Connection),
    Cluster(deadpool_redis::cluster::Connection),
}

impl Held {
    fn conn(&self) -> Conn {
        match self {
            Held::Single(c) => Conn::Single((**c).clone()),
            Held::Cluster(c) => Conn::Cluster((**c).clone()),
        }
    }

    /// Takes the connection out of the pool for good and closes it: it is broken.
    fn discard(self) {
        match self {
            Held::Single(c) => drop(deadpool_redis::Connection::take(c)),
            Held::Cluster(c) => drop(deadpool_redis::cluster::Connection::take(c)),
        }
    }
}

impl Factory {
    async fn get(&self) -> Result<Held, FactoryError> {
        match self {
            Factory::Single(pool) => pool.get().await.map(Held::Single).map_err(|e| match e {
                deadpool_redis::PoolError::Backend(e) => FactoryError::Redis(e),
                other => FactoryError::Pool(other.to_string()),
            }),
            Factory::Cluster(pool) => pool.get().await.map(Held::Cluster).map_err(|e| match e {
                deadpool_redis::cluster::PoolError::Backend(e) => FactoryError::Redis(e),
                other => FactoryError::Pool(other.to_string()),
            }),
        }
    }

    fn is_cluster(&self) -> bool {
        matches!(self, Factory::Cluster(_))
    }
}

/// Why no connection could be made.
#[derive(Debug)]
pub(super) enum FactoryError {
    Redis(RedisError),
    Pool(String),
    Timeout(Duration),
    Cooldown(Duration),
}

impl FactoryError {
    pub(super) fn into_backend(self) -> BackendError {
        match self {
            FactoryError::Redis(e) => map_error(&e),
            FactoryError::Pool(e) => BackendError::Unavailable(e),
            FactoryError::Timeout(d) => BackendError::Timeout(d),
            FactoryError::Cooldown(d) => BackendError::Unavailable(format!(
                "Redis failed moments ago; next attempt in {d:?}"
            )),
        }
    }
}

#[derive(Default)]
struct Lane {
    slot: Mutex<Option<(u64, Conn, Held)>>,
    fill: tokio::sync::Mutex<()>,
}

impl Lane {
    fn current(&self) -> Option<(u64, Conn)> {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().map(|(id, conn, _)| (*id, conn.clone()))
    }
}

/// The connection settings that matter after the build.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) connect_timeout: Duration,
    pub(super) command_timeout: Duration,
    pub(super) cooldown: Duration,
}

/// The lanes and the pool they take connections from.
pub(super) struct Connections {
    factory: Factory,
    lanes: Box<[Lane]>,
    next_lane: AtomicUsize,
    next_id: AtomicU64,
    timing: Timing,
    /// Milliseconds after `start` before which operations fail at once (0: none).
    cool_until: AtomicU64,
    start: Instant,
}

/// A connection lent to one operation.
pub(super) struct Lease {
    /// The connections made before this lease: those a failure of this operation throws away.
    horizon: u64,
    pub(super) conn: Conn,
}

impl Connections {
    pub(super) fn new(factory: Factory, lanes: usize, timing: Timing) -> Self {
        Connections {
            factory,
            lanes: (0..lanes.max(1)).map(|_| Lane::default()).collect(),
            next_lane: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            timing,
            cool_until: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        self.factory.is_cluster()
    }

    pub(super) fn lanes(&self) -> usize {
        self.lanes.len()
    }

    pub(super) fn timing(&self) -> Timing {
        self.timing
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn cooling(&self) -> Option<Duration> {
        let until = self.cool_until.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let now = self.now_ms();
        (now < until).then(|| Duration::from_millis(until - now))
    }

    fn trip(&self) {
        if !self.timing.cooldown.is_zero() {
            let cooldown = u64::try_from(self.timing.cooldown.as_millis()).unwrap_or(u64::MAX);
            let until = self.now_ms().saturating_add(cooldown).max(1);
            self.cool_until.store(until, Ordering::Relaxed);
        }
    }

    /// A connection of the next lane, made if the lane has none.
    pub(super) async fn lease(&self) -> Result<Lease, FactoryError> {
        if let Some(wait) = self.cooling() {
            return Err(FactoryError::Cooldown(wait));
        }
        let index = self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let lane = &self.lanes[index];
        if let Some((id, conn)) = lane.current() {
            return Ok(Lease {
                horizon: self.horizon(id),
                conn,
            });
        }
        // One connection attempt per lane at a time; the others wait for its outcome.
        let _filling = lane.fill.lock().await;
        if let Some((id, conn)) = lane.current() {
            return Ok(Lease {
                horizon: self.horizon(id),
                conn,
            });
        }
        if let Some(wait) = self.cooling() {
            return Err(FactoryError::Cooldown(wait));
        }
        // The driver's own connect timeout applies too; this bounds the pool's part.
        let limit = self.timing.connect_timeout + Duration::from_millis(100);
        let held = match tokio::time::timeout(limit, self.factory.get()).await {
            Ok(Ok(held)) => held,
            Ok(Err(err)) => {
                self.trip();
                return Err(err);
            }
            Err(_) => {
                self.trip();
                return Err(FactoryError::Timeout(limit));
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = held.conn();
        *lane.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some((id, conn.clone(), held));
        Ok(Lease {
            horizon: self.horizon(id),
            conn,
        })
    }

    /// Runs `op` on a leased connection within the command timeout; a connection-level
    /// failure throws the connection away.
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T, BackendError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let lease = self.lease().await.map_err(FactoryError::into_backend)?;
        let Lease { horizon, conn } = lease;
        let limit = self.timing.command_timeout;
        match tokio::time::timeout(limit, op(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if is_connection_error(&err) {
                    self.discard(horizon);
                    self.trip();
                }
                Err(map_error(&err))
            }
            Err(_) => {
                // A server that does not answer in time is treated as gone.
                self.discard(horizon);
                self.trip();
                Err(BackendError::Timeout(limit))
            }
        }
    }

    /// Connections with an id below this one exist now; `id` (the one leased) is among them.
    fn horizon(&self, id: u64) -> u64 {
        self.next_id.load(Ordering::Relaxed).max(id + 1)
    }

    /// Throws away every connection made before the failed operation started (ids below
    /// `horizon`): they lead to the same server, which has most likely closed them all (a
    /// restart). Connections made since stay.
    fn discard(&self, horizon: u64) {
        for lane in self.lanes.iter() {
            let held = {
                let mut slot = lane.slot.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.as_ref().is_some_and(|(id, _, _)| *id < horizon) {
                    slot.take()
                } else {
                    None
                }
            };
            if let Some((_, _, held)) = held {
                held.discard();
            }
        }
    }
}

/// Whether `err` means the connection is unusable (as opposed to a command's own error).
fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
        || err.kind() == ErrorKind::ClusterConnectionNotFound
}

/// A Redis error as the engine sees it.
pub(super) fn map_error(err: &RedisError) -> BackendError {
    if err.is_timeout() {
        BackendError::Unavailable(format!("Redis timed out: {err}"))
    } else if is_connection_error(err) || err.is_cluster_error() {
        BackendError::Unavailable(err.to_string())
    } else if err.kind() == ErrorKind::Parse {
        BackendError::Corrupt(err.to_string())
    } else {
        BackendError::Other(err.to_string())
    }
}
