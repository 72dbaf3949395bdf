//! The mixed workload: concurrent tasks each running random queries of the benchmark and, at a
//! given rate, writes to `tests`; operations per second directly and through each backend.

use std::time::{Duration, Instant};

use cachalot::{Attach, CachedPool};
use serde::Serialize;
use sqlx::{Executor, Pool};

use crate::Result;
use crate::backends::Backend;
use crate::dataset::{QUERIES, Rng, TESTS};
use crate::db::{BenchDb, Path};
use crate::latency::median;

/// Concurrent tasks.
pub const TASKS: usize = 8;

/// Each measurement is split in this many segments, the modes run in alternating order, so
/// that a drift of the machine (another process, the database's background work) favours
/// none.
pub const SEGMENTS: u64 = 24;

/// The workload at one write rate on one database.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// The database.
    pub database: &'static str,
    /// Share of the operations that are writes.
    pub write_ratio: f64,
    /// Operations per second on the pool directly.
    pub direct_ops: f64,
    /// Per backend.
    pub backends: Vec<BackendThroughput>,
}

/// The workload through one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendThroughput {
    /// The backend.
    pub backend: &'static str,
    /// Operations per second.
    pub ops: f64,
    /// The median over the segments of the segment's operations over the direct run's in the
    /// same segment: above 1 is faster than the database alone. Robust to a burst of noise
    /// from another process in one segment.
    pub speedup: f64,
    /// `ops / direct_ops` over the whole run.
    pub total_ratio: f64,
    /// Share of the reads served from the cache (hits and reads coalesced with an identical
    /// concurrent miss) among all reads.
    pub hit_ratio: f64,
    /// Share of the reads that skipped the cache because their entries kept being
    /// invalidated before anyone read them (`BypassReason::Churn`).
    pub churn_ratio: f64,
}

/// Who runs the workload.
#[derive(Clone, Copy)]
enum Mode {
    Direct,
    Backend(usize),
}

/// Runs [`TASKS`] tasks for `duration`, reads and writes all by `path`, and returns how many
/// operations they completed.
pub async fn workload<DB>(
    db: &CachedPool<DB>,
    path: Path,
    write_ratio: f64,
    duration: Duration,
    seed: u64,
) -> Result<u64>
where
    DB: BenchDb,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..TASKS as u64)
        .map(|task| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ (task << 32));
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    if rng.chance(write_ratio) {
                        let id = 1 + rng.below(TESTS as u64) as i64;
                        DB::update(&db, path, id).await?;
                    } else {
                        let query = &QUERIES[rng.below(QUERIES.len() as u64) as usize];
                        DB::read(&db, query, path).await?;
                    }
                    ops += 1;
                }
                Ok::<u64, crate::Error>(ops)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}

/// The workload at each write rate, directly and through each backend, in [`SEGMENTS`]
/// interleaved segments.
pub async fn run<DB>(
    pool: &Pool<DB>,
    backends: &[Backend],
    write_ratios: &[f64],
    duration: Duration,
    seed: u64,
) -> Result<Vec<Throughput>>
where
    DB: BenchDb,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let dbs: Vec<CachedPool<DB>> = backends
        .iter()
        .map(|b| b.cache.attach(pool.clone()))
        .collect();
    let Some(plain) = dbs.first() else {
        return Err("no backend".into());
    };
    let mut modes = vec![Mode::Direct];
    modes.extend((0..backends.len()).map(Mode::Backend));
    let mut results = Vec::new();
    for (r, &write_ratio) in write_ratios.iter().enumerate() {
        let mut ops = vec![0u64; modes.len()];
        // Per backend, each segment's operations over the direct run's in the same segment.
        let mut ratios = vec![Vec::new(); backends.len()];
        let mut stats = vec![(0u64, 0u64, 0u64); backends.len()];
        for segment in 0..SEGMENTS {
            let order: Vec<usize> = if segment % 2 == 0 {
                (0..modes.len()).collect()
            } else {
                (0..modes.len()).rev().collect()
            };
            let mut segment_ops = vec![0u64; modes.len()];
            for m in order {
                let seed = seed ^ ((r as u64) << 8) ^ (segment << 4) ^ m as u64;
                let done = match modes[m] {
                    Mode::Direct => {
                        workload(
                            plain,
                            Path::Direct,
                            write_ratio,
                            duration / SEGMENTS as u32,
                            seed,
                        )
                        .await?
                    }
                    Mode::Backend(b) => {
                        let before = dbs[b].stats();
                        let done = workload(
                            &dbs[b],
                            Path::Cached,
                            write_ratio,
                            duration / SEGMENTS as u32,
                            seed,
                        )
                        .await?;
                        let after = dbs[b].stats();
                        stats[b].0 +=
                            (after.hits + after.coalesced) - (before.hits + before.coalesced);
                        stats[b].1 += (after.misses + after.bypasses.total())
                            - (before.misses + before.bypasses.total());
                        stats[b].2 += after.bypasses.churn - before.bypasses.churn;
                        done
                    }
                };
                ops[m] += done;
                segment_ops[m] = done;
            }
            for (b, r) in ratios.iter_mut().enumerate() {
                r.push(segment_ops[b + 1] as f64 / segment_ops[0].max(1) as f64);
            }
        }
        let per_second = |n: u64| n as f64 / duration.as_secs_f64();
        let direct_ops = per_second(ops[0]);
        results.push(Throughput {
            database: DB::LABEL,
            write_ratio,
            direct_ops,
            backends: backends
                .iter()
                .enumerate()
                .map(|(b, backend)| {
                    let (hits, others, churn) = stats[b];
                    BackendThroughput {
                        backend: backend.name,
                        ops: per_second(ops[b + 1]),
                        speedup: median(ratios[b].clone()),
                        total_ratio: per_second(ops[b + 1]) / direct_ops,
                        hit_ratio: hits as f64 / (hits + others).max(1) as f64,
                        churn_ratio: churn as f64 / (hits + others).max(1) as f64,
                    }
                })
                .collect(),
        });
    }
    Ok(results)
}
