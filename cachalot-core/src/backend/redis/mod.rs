//! The Redis backend: tokens, locks and entries in Redis (or Redis Cluster), shared by every
//! process that uses the same server and key prefix.
//!
//! Every operation of [`CacheBackend`] is one Lua script, so one round trip: a read fetches
//! the states of its tables and its entry at once; a write costs two round trips (lock,
//! bump) whatever the number of tables written and whatever the number of entries cached
//! (and the engine lets overlapping writes of one process share them).
//! Time (lock deadlines) is Redis's own `TIME`, never a client's clock. The keys of one
//! database share a hash tag, hence one cluster slot. See `docs/guarantees.md` for what is
//! and what is not guaranteed.

mod conn;
mod layout;
mod scripts;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use deadpool_redis::redis::{self, ErrorKind, IntoConnectionInfo, RedisError, Value};

use self::conn::{Conn, Connections, Factory, FactoryError, Timing};
use self::layout::{Layout, decode_entry, encode_entry};
use self::scripts::Scripts;
use super::{BackendFuture, CacheBackend, Entry, Fetched, LockId, TableId, TokenState};
use crate::error::BackendError;
use crate::key::QueryKey;
use crate::version::Token;

const DEFAULT_PREFIX: &str = "cachalot";
const DEFAULT_CONNECTIONS: usize = 4;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_COOLDOWN: Duration = Duration::from_millis(250);
const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Why a [`RedisBackend`] could not be built. URLs in messages never show a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConnectError {
    /// A URL cannot be parsed, or asks for something this build cannot do (`rediss://`
    /// without the `redis-tls` feature).
    #[error("invalid Redis URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server refused the credentials (wrong password, unknown ACL user, missing
    /// permission).
    #[error("Redis at `{url}` refused the credentials: {reason}")]
    Auth {
        /// The URL, password hidden.
        url: String,
        /// The server's answer.
        reason: String,
    },
    /// The server cannot be reached or did not answer `PING`.
    #[error("cannot connect to Redis at `{url}`: {reason}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// Why.
        reason: String,
    },
    /// A setting of the builder is invalid.
    #[error("invalid Redis backend setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
}

/// What to connect to.
#[derive(Clone)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl Target {
    fn redacted(&self) -> String {
        match self {
            Target::Single(url) => redact(url),
            Target::Cluster(urls) => urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(","),
        }
    }
}

/// `url` with its password, if any, replaced by `***`.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{}{shown}{}", &url[..rest_start], &rest[at..])
}

/// Builds a [`RedisBackend`]: from [`RedisBackend::builder`] (one server) or
/// [`RedisBackend::cluster_builder`] (Redis Cluster).
///
/// ```no_run
/// use std::time::Duration;
/// use cachalot_core::backend::RedisBackend;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let backend = RedisBackend::builder("redis://app:secret@127.0.0.1:6379/0")
///     .key_prefix("shop")
///     .max_connections(8)
///     .connect_timeout(Duration::from_millis(500))
///     .command_timeout(Duration::from_millis(200))
///     .build()
///     .await?;
/// # let _ = backend;
/// # Ok::<(), cachalot_core::backend::RedisConnectError>(())
/// # });
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisBackendBuilder {
    target: Target,
    key_prefix: String,
    max_connections: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    cooldown: Duration,
    max_entry_bytes: usize,
}

impl fmt::Debug for RedisBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackendBuilder")
            .field("target", &self.target.redacted())
            .field("key_prefix", &self.key_prefix)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("failure_cooldown", &self.cooldown)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish()
    }
}

impl RedisBackendBuilder {
    fn new(target: Target) -> Self {
        RedisBackendBuilder {
            target,
            key_prefix: DEFAULT_PREFIX.to_owned(),
            max_connections: DEFAULT_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            cooldown: DEFAULT_COOLDOWN,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
        }
    }

    /// The first part of every Redis key (default `"cachalot"`): applications, or test
    /// runs, with different prefixes never see each other's tokens or entries. It must not
    /// be empty nor contain `{` or `}` (the keys' hash tags come after it).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How many connections are kept (default 4). Each is multiplexed: it carries any number
    /// of concurrent operations; more connections spread the load over more sockets.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// How long making a connection may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one operation may take (default 1 s). Past it the operation fails, the
    /// query runs uncached, and the connection is replaced.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// After a connection failure, how long operations fail at once instead of trying
    /// again (default 250 ms; zero: always try). Queries meanwhile run uncached, and failed
    /// invalidations are retried by the engine.
    pub fn failure_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The largest entry stored, in bytes as stored (value, key material and tokens;
    /// default 1 MiB). Larger results are returned but not cached.
    pub fn max_entry_bytes(mut self, max: usize) -> Self {
        self.max_entry_bytes = max;
        self
    }

    fn check(&self) -> Result<(), RedisConnectError> {
        let invalid = |setting, reason: &str| {
            Err(RedisConnectError::InvalidSetting {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.key_prefix.is_empty() {
            return invalid("key_prefix", "must not be empty");
        }
        if self.key_prefix.contains(['{', '}']) {
            return invalid(
                "key_prefix",
                "must not contain `{` or `}`: keys carry their own hash tag",
            );
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout", "must be longer than zero");
        }
        if self.command_timeout.is_zero() {
            return invalid("command_timeout", "must be longer than zero");
        }
        let urls: &[String] = match &self.target {
            Target::Single(url) => std::slice::from_ref(url),
            Target::Cluster(urls) => urls,
        };
        if urls.is_empty() {
            return Err(RedisConnectError::InvalidUrl {
                url: String::new(),
                reason: "no cluster node URL given".to_owned(),
            });
        }
        for url in urls {
            if let Err(err) = url.as_str().into_connection_info() {
                return Err(RedisConnectError::InvalidUrl {
                    url: redact(url),
                    reason: err.to_string(),
                });
            }
        }
        Ok(())
    }

    fn factory(&self) -> Result<Factory, RedisConnectError> {
        let url = self.target.redacted();
        let pool_error = |err: String| RedisConnectError::InvalidUrl {
            url: url.clone(),
            reason: err,
        };
        match &self.target {
            Target::Single(target) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.command_timeout));
                let manager = deadpool_redis::Manager::new_with_config(target.as_str(), config)
                    .map_err(|e| pool_error(e.to_string()))?;
                let pool = deadpool_redis::Pool::builder(manager)
                    .max_size(self.max_connections)
                    .runtime(deadpool_redis::Runtime::Tokio1)
                    .create_timeout(Some(self.connect_timeout))
                    .wait_timeout(Some(self.connect_timeout))
                    .build()
                    .map_err(|e| pool_error(e.to_string()))?;
                Ok(Factory::Single(pool))
            }
            Target::Cluster(targets) => {
                let manager = deadpool_redis::cluster::Manager::new(
                    targets.iter().map(String::as_str).collect(),
                    false,
                )
                .map_err(|e| pool_error(e.to_string()))?;
                let pool = deadpool_redis::cluster::Pool::builder(manager)
                    .max_size(self.max_connections)
                    .runtime(deadpool_redis::Runtime::Tokio1)
                    .create_timeout(Some(self.connect_timeout))
                    .wait_timeout(Some(self.connect_timeout))
                    .build()
                    .map_err(|e| pool_error(e.to_string()))?;
                Ok(Factory::Cluster(pool))
            }
        }
    }

    /// Connects, checks the server with `PING` and loads the scripts. A wrong URL, an
    /// unreachable server or refused credentials fail here, with a clear error.
    pub async fn build(self) -> Result<RedisBackend, RedisConnectError> {
        self.check()?;
        let factory = self.factory()?;
        let url = self.target.redacted();
        let timing = Timing {
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            cooldown: self.cooldown,
        };
        let conns = Connections::new(factory, self.max_connections, timing);
        let scripts = Scripts::new();
        let connect_error = |reason: String| RedisConnectError::Connect {
            url: url.clone(),
            reason,
        };
        let lease = conns.lease().await.map_err(|err| match err {
            FactoryError::Redis(e) if is_auth_error(&e) => RedisConnectError::Auth {
                url: url.clone(),
                reason: e.to_string(),
            },
            FactoryError::Redis(e) => connect_error(e.to_string()),
            other => connect_error(other.into_backend().to_string()),
        })?;
        let mut conn = lease.conn;
        let checked = tokio::time::timeout(self.command_timeout, async {
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            for script in scripts.all() {
                script.load_async(&mut conn).await?;
            }
            Ok::<_, RedisError>(())
        })
        .await;
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(e)) if is_auth_error(&e) => {
                return Err(RedisConnectError::Auth {
                    url,
                    reason: e.to_string(),
                });
            }
            Ok(Err(e)) => return Err(connect_error(e.to_string())),
            Err(_) => {
                return Err(connect_error(format!(
                    "no answer to PING within {:?}",
                    self.command_timeout
                )));
            }
        }
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                conns,
                layout: Layout::new(&self.key_prefix),
                scripts,
                max_entry_bytes: self.max_entry_bytes,
                target: url,
            }),
        })
    }
}

fn is_auth_error(err: &RedisError) -> bool {
    err.kind() == ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

/// The Redis backend: shared by every process that uses the same Redis and key prefix.
///
/// - A read is one round trip (a Lua script run with `EVALSHA`, loaded again by itself
///   after a Redis restart): the states of its tables and its entry.
/// - A write is two round trips (lock, bump) whatever the number of tables it writes and
///   the number of entries cached.
/// - Values are stored as bytes (the engine encodes them with the read's codec, JSON for
///   the SQLx adapter), with their tokens and their key material, under a TTL.
/// - Any failure (server down, timeout, corrupt data) reaches the engine as a
///   [`BackendError`], which runs the query uncached; bytes that do not decode are a miss.
///
/// Cloning is cheap and shares the connections.
///
/// ```no_run
/// use cachalot_core::Cachalot;
/// use cachalot_core::backend::RedisBackend;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let backend = RedisBackend::connect("redis://127.0.0.1:6379").await?;
/// let cachalot = Cachalot::builder().backend(backend).build()?;
/// # let _ = cachalot;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

struct Inner {
    conns: Connections,
    layout: Layout,
    scripts: Scripts,
    max_entry_bytes: usize,
    target: String,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("target", &self.inner.target)
            .field("cluster", &self.inner.conns.is_cluster())
            .field("key_prefix", &self.inner.layout.prefix())
            .field("connections", &self.inner.conns.lanes())
            .field("timing", &self.inner.conns.timing())
            .field("max_entry_bytes", &self.inner.max_entry_bytes)
            .finish()
    }
}

impl RedisBackend {
    /// A builder for the server at `url`: `redis://[[user]:password@]host[:port][/db]`, or
    /// `rediss://...` (TLS, with the `redis-tls` feature), or `redis+unix:///path`.
    pub fn builder(url: impl Into<String>) -> RedisBackendBuilder {
        RedisBackendBuilder::new(Target::Single(url.into()))
    }

    /// A builder for the Redis Cluster reachable at any of `urls` (the other nodes are
    /// discovered). The keys of one database share a hash tag, so one slot.
    pub fn cluster_builder<I, S>(urls: I) -> RedisBackendBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisBackendBuilder::new(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    /// Connects to the server at `url` with the default settings; see
    /// [`builder`](Self::builder).
    pub async fn connect(url: impl Into<String>) -> Result<Self, RedisConnectError> {
        Self::builder(url).build().await
    }

    /// Connects to the Redis Cluster reachable at `urls` with the default settings; see
    /// [`cluster_builder`](Self::cluster_builder).
    pub async fn cluster<I, S>(urls: I) -> Result<Self, RedisConnectError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::cluster_builder(urls).build().await
    }

    /// The prefix of every key.
    pub fn key_prefix(&self) -> &str {
        self.inner.layout.prefix()
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.conns.is_cluster()
    }

    /// Forgets a table's token, as an eviction or a restart of Redis would; its locks stay.
    /// The next read of the table is a miss.
    pub async fn drop_token(&self, table: &TableId) -> Result<(), BackendError> {
        let key = self.inner.layout.token_key(table);
        self.inner
            .conns
            .run(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await })
            .await
    }

    fn table_keys(&self, invocation: &mut redis::ScriptInvocation<'_>, tables: &[TableId]) {
        for table in tables {
            invocation.key(self.inner.layout.token_key(table));
        }
        for table in tables {
            invocation.key(self.inner.layout.lock_key(table));
        }
    }

    async fn eval(&self, invocation: redis::ScriptInvocation<'_>) -> Result<Value, BackendError> {
        self.inner
            .conns
            .run(|mut c| async move { invocation.invoke_async::<Value>(&mut c).await })
            .await
    }

    async fn fetch_now(
        &self,
        tables: &[TableId],
        key: Option<&QueryKey>,
    ) -> Result<Fetched, BackendError> {
        let mut invocation = self.inner.scripts.fetch.prepare_invoke();
        self.table_keys(&mut invocation, tables);
        if let Some(key) = key {
            invocation.key(self.inner.layout.entry_key(database_of(tables), key));
        }
        invocation.arg(tables.len());
        let reply = self.eval(invocation).await?;
        let mut items = array(reply, tables.len() + 1)?;
        let entry = match items.pop() {
            Some(Value::BulkString(bytes)) => {
                let entry = decode_entry(&bytes, tables.len());
                if entry.is_none() {
                    tracing::debug!("cachalot: an undecodable Redis entry is read as a miss");
                }
                entry
            }
            _ => None,
        };
        let tokens = items.iter().map(state).collect::<Result<_, _>>()?;
        Ok(Fetched { tokens, entry })
    }

    async fn init_group(&self, tables: Vec<TableId>) -> Result<Vec<TokenState>, BackendError> {
        let mut invocation = self.inner.scripts.init.prepare_invoke();
        self.table_keys(&mut invocation, &tables);
        invocation.arg(tables.len());
        for _ in &tables {
            invocation.arg(&Token::fresh().to_bytes()[..]);
        }
        let reply = self.eval(invocation).await?;
        array(reply, tables.len())?.iter().map(state).collect()
    }

    async fn tokens_group(&self, tables: Vec<TableId>) -> Result<Vec<TokenState>, BackendError> {
        Ok(self.fetch_now(&tables, None).await?.tokens.into_vec())
    }

    async fn lock_group(
        &self,
        tables: Vec<TableId>,
        lock: LockId,
        ttl: Duration,
    ) -> Result<Vec<()>, BackendError> {
        let mut invocation = self.inner.scripts.lock.prepare_invoke();
        self.table_keys(&mut invocation, &tables);
        invocation
            .arg(tables.len())
            .arg(&lock.to_u128().to_be_bytes()[..])
            .arg(millis(ttl));
        self.eval(invocation).await?;
        Ok(vec![(); tables.len()])
    }

    async fn bump_group(
        &self,
        tables: Vec<TableId>,
        lock: Option<LockId>,
    ) -> Result<Vec<Token>, BackendError> {
        let tokens: Vec<Token> = tables.iter().map(|_| Token::fresh()).collect();
        let mut invocation = self.inner.scripts.bump.prepare_invoke();
        self.table_keys(&mut invocation, &tables);
        invocation.arg(tables.len());
        match lock {
            Some(lock) => invocation.arg(&lock.to_u128().to_be_bytes()[..]),
            None => invocation.arg(&b""[..]),
        };
        for token in &tokens {
            invocation.arg(&token.to_bytes()[..]);
        }
        self.eval(invocation).await?;
        Ok(tokens)
    }

    async fn store_now(
        &self,
        tables: &[TableId],
        key: &QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        if entry.tokens.len() != tables.len() {
            return Ok(false);
        }
        let Some(bytes) = encode_entry(&entry) else {
            return Ok(false);
        };
        if bytes.len() > self.inner.max_entry_bytes {
            tracing::debug!(
                bytes = bytes.len(),
                max = self.inner.max_entry_bytes,
                "cachalot: entry too large for Redis; not stored"
            );
            return Ok(false);
        }
        let mut invocation = self.inner.scripts.store.prepare_invoke();
        self.table_keys(&mut invocation, tables);
        invocation.key(self.inner.layout.entry_key(database_of(tables), key));
        invocation.arg(tables.len()).arg(millis(ttl)).arg(bytes);
        match self.eval(invocation).await? {
            Value::Int(stored) => Ok(stored == 1),
            other => Err(BackendError::Corrupt(format!(
                "unexpected reply to store: {other:?}"
            ))),
        }
    }

    /// Deletes every entry under the prefix: `SCAN` then `UNLINK`, node by node in a
    /// cluster.
    async fn clear_now(&self) -> Result<(), BackendError> {
        let pattern = self.inner.layout.entry_pattern();
        if !self.inner.conns.is_cluster() {
            return self.clear_node(&pattern, None).await;
        }
        let slots = self
            .inner
            .conns
            .run(|mut c| async move {
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut c)
                    .await
            })
            .await?;
        let mut masters: Vec<(String, u16)> = Vec::new();
        for range in array(slots, usize::MAX)? {
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(node)) = parts.get(2) else {
                continue;
            };
            let (Some(host), Some(Value::Int(port))) = (node.first(), node.get(1)) else {
                continue;
            };
            let host = match host {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => continue,
            };
            let Ok(port) = u16::try_from(*port) else {
                continue;
            };
            if !masters.contains(&(host.clone(), port)) {
                masters.push((host, port));
            }
        }
        for node in masters {
            self.clear_node(&pattern, Some(node)).await?;
        }
        Ok(())
    }

    async fn clear_node(
        &self,
        pattern: &[u8],
        node: Option<(String, u16)>,
    ) -> Result<(), BackendError> {
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.cursor_arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let node = node.clone();
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .inner
                .conns
                .run(|c| async move {
                    match (c, node) {
                        (Conn::Cluster(mut c), Some((host, port))) => {
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host,
                                    port,
                                });
                            let reply = c.route_command(scan, routing).await?;
                            Ok(redis::from_redis_value(reply)?)
                        }
                        (mut c, _) => scan.query_async(&mut c).await,
                    }
                })
                .await?;
            // One UNLINK per hash tag: in a cluster, the keys of one command share a slot.
            for group in by_hash_tag(keys) {
                self.inner
                    .conns
                    .run(|mut c| async move {
                        redis::cmd("UNLINK")
                            .arg(&group)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Runs `op` once per database among `tables` (one hash slot each), and puts the
    /// results back in the order of `tables`.
    async fn by_database<T, F, Fut>(tables: &[TableId], mut op: F) -> Result<Vec<T>, BackendError>
    where
        F: FnMut(Vec<TableId>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, BackendError>>,
    {
        let Some(first) = tables.first() else {
            return Ok(Vec::new());
        };
        if tables.iter().all(|t| t.database() == first.database()) {
            return op(tables.to_vec()).await;
        }
        let mut results: Vec<Option<T>> = tables.iter().map(|_| None).collect();
        let mut done = vec![false; tables.len()];
        for start in 0..tables.len() {
            if done[start] {
                continue;
            }
            let database = tables[start].database();
            let indices: Vec<usize> = (start..tables.len())
                .filter(|&i| !done[i] && tables[i].database() == database)
                .collect();
            let group = indices.iter().map(|&i| tables[i].clone()).collect();
            let values = op(group).await?;
            if values.len() != indices.len() {
                return Err(BackendError::Corrupt(format!(
                    "{} results for {} tables",
                    values.len(),
                    indices.len()
                )));
            }
            for (i, value) in indices.into_iter().zip(values) {
                done[i] = true;
                results[i] = Some(value);
            }
        }
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| BackendError::Corrupt("a table without a result".into())))
            .collect()
    }
}

/// `keys` grouped by their hash tag (the part between the first `{` and the next `}`).
fn by_hash_tag(keys: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    fn tag(key: &[u8]) -> &[u8] {
        let Some(open) = key.iter().position(|&b| b == b'{') else {
            return key;
        };
        match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        }
    }
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    for key in keys {
        match groups
            .iter_mut()
            .find(|g| g.first().is_some_and(|k| tag(k) == tag(&key)))
        {
            Some(group) => group.push(key),
            None => groups.push(vec![key]),
        }
    }
    groups
}

/// The database of a read (all its tables are of one database).
fn database_of(tables: &[TableId]) -> &str {
    tables.first().map_or("", |t| &**t.database())
}

/// A duration in whole milliseconds, at least 1.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The items of an array reply, checking their number unless `len` is `usize::MAX`.
fn array(reply: Value, len: usize) -> Result<Vec<Value>, BackendError> {
    match reply {
        Value::Array(items) if len == usize::MAX || items.len() == len => Ok(items),
        other => Err(BackendError::Corrupt(format!(
            "unexpected reply from Redis: {other:?}"
        ))),
    }
}

/// A table's state from a script's reply: `0` missing, `1` locked, or the token.
fn state(value: &Value) -> Result<TokenState, BackendError> {
    match value {
        Value::Int(0) => Ok(TokenState::Missing),
        Value::Int(1) => Ok(TokenState::Locked),
        Value::BulkString(bytes) => match <[u8; 16]>::try_from(bytes.as_slice()) {
            Ok(raw) => Ok(TokenState::Present(Token::from_bytes(raw))),
            Err(_) => Err(BackendError::Corrupt(format!(
                "a token of {} bytes",
                bytes.len()
            ))),
        },
        other => Err(BackendError::Corrupt(format!(
            "unexpected token state from Redis: {other:?}"
        ))),
    }
}

impl CacheBackend for RedisBackend {
    fn fetch<'a>(&'a self, tables: &'a [TableId], key: &'a QueryKey) -> BackendFuture<'a, Fetched> {
        Box::pin(self.fetch_now(tables, Some(key)))
    }

    fn init_tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>> {
        Box::pin(Self::by_database(tables, move |group| {
            self.init_group(group)
        }))
    }

    fn encodes_values(&self) -> bool {
        true
    }

    fn stores_remotely(&self) -> bool {
        true
    }

    fn store<'a>(
        &'a self,
        tables: &'a [TableId],
        key: &'a QueryKey,
        entry: Entry,
        ttl: Duration,
    ) -> BackendFuture<'a, bool> {
        Box::pin(self.store_now(tables, key, entry, ttl))
    }

    fn lock<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: LockId,
        ttl: Duration,
    ) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            Self::by_database(tables, move |group| self.lock_group(group, lock, ttl)).await?;
            Ok(())
        })
    }

    fn bump<'a>(
        &'a self,
        tables: &'a [TableId],
        lock: Option<LockId>,
    ) -> BackendFuture<'a, Vec<Token>> {
        Box::pin(Self::by_database(tables, move |group| {
            self.bump_group(group, lock)
        }))
    }

    fn tokens<'a>(&'a self, tables: &'a [TableId]) -> BackendFuture<'a, Vec<TokenState>> {
        Box::pin(Self::by_database(tables, move |group| {
            self.tokens_group(group)
        }))
    }

    fn clear(&self) -> BackendFuture<'_, ()> {
        Box::pin(self.clear_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://user:pa:ss@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(redact("rediss://:secret@host"), "rediss://:***@host");
        assert_eq!(redact("redis://user@host"), "redis://user@host");
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(redact("redis://host/0?x=a@b"), "redis://host/0?x=a@b");
    }

    #[test]
    fn replies_are_checked() {
        assert_eq!(state(&Value::Int(0)), Ok(TokenState::Missing));
        assert_eq!(state(&Value::Int(1)), Ok(TokenState::Locked));
        let t = Token::fresh();
        assert_eq!(
            state(&Value::BulkString(t.to_bytes().to_vec())),
            Ok(TokenState::Present(t))
        );
        assert!(state(&Value::BulkString(vec![1, 2])).is_err());
        assert!(state(&Value::Nil).is_err());
        assert!(array(Value::Array(vec![Value::Nil]), 2).is_err());
        assert!(array(Value::Okay, 0).is_err());
        assert_eq!(millis(Duration::from_micros(10)), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
    }
}
