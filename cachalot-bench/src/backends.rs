//! The cache backends compared: the memory backend always, Redis with the `redis` feature.

use cachalot::{Cachalot, MemoryBackend};

use crate::Result;

/// A cache built on one backend, and how reads reach it.
#[derive(Clone)]
pub struct Backend {
    /// `memory` or `redis`.
    pub name: &'static str,
    /// The cache.
    pub cache: Cachalot,
    /// The memory backend itself, for its size accessors.
    pub memory: Option<MemoryBackend>,
}

/// A cache on a fresh memory backend of `max_bytes`.
pub fn memory(max_bytes: u64) -> Result<Backend> {
    let backend = MemoryBackend::builder().max_bytes(max_bytes).build();
    Ok(Backend {
        name: "memory",
        cache: Cachalot::builder().backend(backend.clone()).build()?,
        memory: Some(backend),
    })
}

/// The Redis server's URL (`REDIS_URL`).
#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A cache on Redis whose keys all start with `prefix`; `Err` with the reason when Redis does
/// not answer.
#[cfg(feature = "redis")]
pub async fn redis(prefix: &str) -> Result<std::result::Result<Backend, String>> {
    use cachalot::RedisBackend;

    let backend = match RedisBackend::builder(redis_url())
        .key_prefix(prefix)
        .max_connections(crate::db::POOL_SIZE as usize)
        .build()
        .await
    {
        Ok(backend) => backend,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(Ok(Backend {
        name: "redis",
        cache: Cachalot::builder().backend(backend).build()?,
        memory: None,
    }))
}

/// The Redis server's version (`redis_version` of `INFO server`).
#[cfg(feature = "redis")]
pub async fn redis_version() -> Result<String> {
    use deadpool_redis::redis;

    let client = redis::Client::open(redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_owned())
}

/// Deletes every Redis key that starts with `prefix`, or, with `stale`, every key of a
/// `cachalot_bench_<pid>` run whose process has died.
#[cfg(feature = "redis")]
pub async fn redis_cleanup(prefix: &str, stale: bool) -> Result<()> {
    use deadpool_redis::redis;

    let client = redis::Client::open(redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        let keys: Vec<String> = if stale {
            keys.into_iter()
                .filter(|k| k.split(['.', ':']).next().is_some_and(crate::db::stale))
                .collect()
        } else {
            keys
        };
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
