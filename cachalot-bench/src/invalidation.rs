//! Invalidation latency against the number of cached entries, and what an entry costs in
//! memory.
//!
//! Per size, the entries of a database of their own are filled through the engine (a trivial
//! fetch per distinct key, no database), then each database's `tests` is invalidated in turn,
//! so that every size is measured under the same conditions. The memory backend gets one cache
//! per size; Redis one backend for all sizes, so that its connections are the same for every
//! size.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use cachalot_core::engine::ReadSet;
use serde::Serialize;

use crate::Result;
use crate::backends::Backend;
use crate::dataset::{POINT, TestRow, USERS};
use crate::sample::{Samples, Summary};

/// The database identity the entries of one size are stored under.
fn database(size: u64) -> Arc<str> {
    Arc::from(format!("bench://invalidation/{size}"))
}

/// Invalidation latency of one backend at one cache size.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Entries cached when invalidating.
    pub entries: u64,
    /// Latency of `invalidate(["tests"])`.
    pub latency: Summary,
}

/// Invalidation latency of one backend at every size.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// The backend.
    pub backend: &'static str,
    /// From the fewest entries to the most.
    pub points: Vec<Point>,
    /// Relative change of the median from the fewest entries to the most (0.05 = 5% slower).
    pub change: f64,
}

/// What an entry costs in the memory backend, at one size.
#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    /// Entries stored.
    pub entries: u64,
    /// The backend's weighted size over its entry count (what bounds the cache).
    pub weighted_bytes_per_entry: f64,
    /// Growth of the process's resident memory while filling, over the entries.
    pub rss_bytes_per_entry: f64,
}

/// The process's resident memory in bytes (`VmRSS` of `/proc/self/status`), if readable.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The entry of row `id`: what the adapter caches for `SELECT .. FROM tests WHERE id = $1`.
fn entry(id: i64) -> Vec<TestRow> {
    vec![TestRow {
        id,
        name: format!("test{}", id - 1),
        owner_id: 1 + id % USERS,
    }]
}

/// The adapter's weigher.
fn weigh(rows: &[TestRow]) -> usize {
    std::mem::size_of::<Vec<TestRow>>() + std::mem::size_of_val(rows)
}

/// Fills `backend`'s cache with `count` distinct entries of `database`, each reading `tests`.
async fn fill(backend: &Backend, database: &Arc<str>, count: u64) -> Result<()> {
    let cache = &backend.cache;
    let reads = ReadSet::new(database, ["tests"]);
    let key = |id: i64| {
        cache
            .key(database, POINT.postgres)
            .param(&id)
            .result_type("all:Vec<TestRow>")
            .finish()
    };
    let before = cache.stats().stores;
    if backend.memory.is_some() {
        for id in 1..=count as i64 {
            let fetch = || async move { Ok::<_, Infallible>(entry(id)) };
            cache
                .read(&reads, key(id), |v: &Vec<_>| weigh(v), fetch)
                .await?;
        }
    } else {
        #[cfg(feature = "redis")]
        {
            use cachalot_core::engine::{Codec, ReadOptions};
            use futures_util::{StreamExt, stream};

            let mut reads_done = stream::iter(1..=count as i64)
                .map(|id| {
                    let (key, reads) = (key(id), &reads);
                    async move {
                        let options = ReadOptions::new().codec(Codec::json());
                        let fetch = || async move { Ok::<_, Infallible>(entry(id)) };
                        cache
                            .read_with(reads, key, options, |v: &Vec<_>| weigh(v), fetch)
                            .await
                    }
                })
                .buffer_unordered(64);
            while let Some(done) = reads_done.next().await {
                done?;
            }
        }
    }
    cache.settle().await;
    let stored = cache.stats().stores - before;
    if stored != count {
        return Err(format!("{}: {stored} entries stored of {count}", backend.name).into());
    }
    if let Some(memory) = &backend.memory {
        memory.run_pending_tasks();
        if memory.entry_count() != count {
            return Err(format!("memory: {} entries kept of {count}", memory.entry_count()).into());
        }
    }
    Ok(())
}

/// Fills the entries of each size into the cache `make` returns for it (one per size, or the
/// same one), then measures `samples` invalidations of each size, in turn. Also returns the
/// memory footprint of memory caches.
pub async fn run<F, Fut>(
    name: &'static str,
    sizes: &[u64],
    samples: usize,
    make: F,
) -> Result<(Curve, Vec<Footprint>)>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Backend>>,
{
    let mut caches = Vec::with_capacity(sizes.len());
    let mut footprints = Vec::new();
    for &size in sizes {
        let backend = make(size).await?;
        let rss_before = rss_bytes();
        fill(&backend, &database(size), size).await?;
        if let Some(memory) = &backend.memory {
            let rss_growth = match (rss_before, rss_bytes()) {
                (Some(before), Some(after)) => after.saturating_sub(before) as f64,
                _ => f64::NAN,
            };
            footprints.push(Footprint {
                entries: size,
                weighted_bytes_per_entry: memory.weighted_size() as f64 / size as f64,
                rss_bytes_per_entry: rss_growth / size as f64,
            });
        }
        caches.push(backend);
    }
    let databases: Vec<Arc<str>> = sizes.iter().map(|&size| database(size)).collect();
    let mut latencies = vec![Samples::default(); caches.len()];
    for _ in 0..samples {
        for ((backend, database), latency) in caches.iter().zip(&databases).zip(&mut latencies) {
            let start = Instant::now();
            backend.cache.invalidate(database, ["tests"]).await;
            latency.push(start.elapsed());
        }
    }
    for backend in &caches {
        if backend.cache.stats().backend_errors > 0 {
            return Err(format!("{name}: backend errors while invalidating").into());
        }
    }
    let points: Vec<Point> = sizes
        .iter()
        .zip(&latencies)
        .map(|(&entries, latency)| Point {
            entries,
            latency: latency.summary(),
        })
        .collect();
    let change = match (points.first(), points.last()) {
        (Some(first), Some(last)) => last.latency.median_us / first.latency.median_us - 1.0,
        _ => 0.0,
    };
    Ok((
        Curve {
            backend: name,
            points,
            change,
        },
        footprints,
    ))
}
