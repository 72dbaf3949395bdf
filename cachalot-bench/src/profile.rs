//! `--profile`: one path in a loop, for `perf record`, with nothing else running.

use std::str::FromStr;
use std::time::{Duration, Instant};

use cachalot::CachedPool;
use sqlx::Executor;

use crate::Result;
use crate::dataset::{Dataset, POINT, QUERIES, Query, TABLES, TESTS};
use crate::db::{BenchDb, Fixture, Path};
use crate::sample::Samples;
use crate::{backends, overhead, throughput};

/// What `cold-hit` sweeps before each hit by default: more than the machine's caches.
pub const SWEEP_BYTES: usize = 64 * 1024 * 1024;

/// How long the loop runs by default.
pub const DURATION: Duration = Duration::from_secs(10);

/// How the loop runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long.
    pub duration: Duration,
    /// What `cold-hit` sweeps before each hit, in bytes. Under `valgrind --cache-sim=yes`, a
    /// little more than the simulated last-level cache makes every line a hit touches a miss
    /// there: the count of lines a hit brings in, which is what it costs between database
    /// calls.
    pub sweep: usize,
    /// The share of writes of the `mixed` loops.
    pub writes: f64,
}

/// What `--profile` loops on: a path, through the memory backend or (`redis-` prefix) Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The path.
    pub path: Loop,
    /// Through Redis rather than the memory backend.
    pub redis: bool,
}

/// The path looped on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// Cached reads that hit.
    Hit,
    /// Cached reads that hit, each after the CPU's caches were flushed by sweeping a buffer
    /// larger than them: what a hit costs between database calls.
    ColdHit,
    /// Cached reads that hit, each right after the same query on the pool: what the
    /// benchmark's interleaved hot column measures (only the hit is timed).
    HitAfterDirect,
    /// Cached reads right after an invalidation.
    Miss,
    /// Primary-key reads of rows never read through the cache before, through the adapter:
    /// the overhead benchmark's miss (it stops after one pass over the rows).
    PointMiss,
    /// The same primary-key reads on the pool.
    PointDirect,
    /// The same primary-key reads through `uncached()`: the adapter without the cache.
    PointUncached,
    /// Reads on the pool.
    Direct,
    /// The overhead benchmark's pairs alone (PostgreSQL in the full run), 10,000 of each or
    /// as many as fit in the duration: what it prints, with the means.
    Overhead,
    /// The mixed workload's tasks, reads and writes (`--writes`) through the adapter.
    Mixed,
    /// The same workload on the pool.
    MixedDirect,
    /// `UPDATE`s through the adapter.
    Write,
    /// The same `UPDATE`s on the pool.
    WriteDirect,
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (redis, name) = match s.strip_prefix("redis-") {
            Some(name) if cfg!(feature = "redis") => (true, name),
            Some(_) => return Err("--profile redis-..: built without the `redis` feature".into()),
            None => (false, s),
        };
        let path = match name {
            "hit" => Loop::Hit,
            "cold-hit" => Loop::ColdHit,
            "hit-after-direct" => Loop::HitAfterDirect,
            "miss" => Loop::Miss,
            "point-miss" => Loop::PointMiss,
            "point-direct" => Loop::PointDirect,
            "point-uncached" => Loop::PointUncached,
            "direct" => Loop::Direct,
            "overhead" => Loop::Overhead,
            "mixed" => Loop::Mixed,
            "mixed-direct" => Loop::MixedDirect,
            "write" => Loop::Write,
            "write-direct" => Loop::WriteDirect,
            other => return Err(format!("--profile: unknown path `{other}`")),
        };
        Ok(Profile { path, redis })
    }
}

impl Loop {
    /// For the mixed loops, the path their operations take.
    fn mixed(self) -> Option<Path> {
        match self {
            Loop::Mixed => Some(Path::Cached),
            Loop::MixedDirect => Some(Path::Direct),
            _ => None,
        }
    }

    /// For the point loops, the path their reads take.
    fn point(self) -> Option<Path> {
        match self {
            Loop::PointMiss => Some(Path::Cached),
            Loop::PointDirect => Some(Path::Direct),
            Loop::PointUncached => Some(Path::Cached),
            _ => None,
        }
    }
}

/// One pass of primary-key reads over the rows (or until `deadline`), each row read once
/// through `via`; prints their median and mean.
async fn point_reads<DB>(db: &CachedPool<DB>, via: Path, deadline: Instant) -> Result<()>
where
    DB: BenchDb,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut samples = Samples::default();
    for i in 0..TESTS as usize {
        if Instant::now() >= deadline {
            break;
        }
        let query = Query {
            id: Some(crate::overhead::nth_id(i)),
            ..POINT
        };
        samples.push(DB::read(db, &query, via).await?.elapsed);
    }
    let summary = samples.summary();
    println!(
        "profile: {} reads, median {:.2} µs, mean {:.2} µs; {:?}",
        summary.n,
        summary.median_us,
        summary.mean_us,
        db.stats()
    );
    Ok(())
}

/// Seeds the database and loops on `profile`'s path over the 12 queries for `options.duration`.
pub async fn run<DB>(
    fixture: Fixture<DB>,
    data: &Dataset,
    profile: Profile,
    options: Options,
) -> Result<()>
where
    DB: BenchDb,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let outcome = async {
        DB::seed(&fixture.pool, data).await?;
        let path = profile.path;
        let backend = if profile.redis {
            crate::redis_backend("profile").await?
        } else {
            backends::memory(256 * 1024 * 1024)?
        };
        let cache = if path == Loop::Miss {
            // Every read follows an invalidation: measure the miss, not the skip it turns into.
            cachalot::Cachalot::builder()
                .backend(backend.cache.backend().clone())
                .skip_churning_reads(false)
                .build()?
        } else {
            backend.cache.clone()
        };
        let db = cachalot::Attach::attach(&cache, fixture.pool.clone());
        println!(
            "profile: {path:?} on {} through {} for {:?}",
            DB::LABEL,
            backend.name,
            options.duration
        );
        let deadline = Instant::now() + options.duration;
        if path == Loop::Overhead {
            // A fresh cache: none of the overhead's keys is stored yet.
            let fresh = if profile.redis {
                backend
            } else {
                backends::memory(256 * 1024 * 1024)?
            };
            let pairs = overhead::pairs_in(options.duration);
            for c in overhead::run(&fixture.pool, &fresh, pairs).await? {
                println!(
                    "profile: {}: direct {:.1} µs, adapter {:.1} µs: {:.3}× (means {:.1} and {:.1} µs: {:.3}×)",
                    c.what,
                    c.direct.median_us,
                    c.cached.median_us,
                    c.ratio,
                    c.direct.mean_us,
                    c.cached.mean_us,
                    c.mean_ratio
                );
            }
            return Ok(());
        }
        if let Some(via) = path.mixed() {
            let started = Instant::now();
            let ops = throughput::workload(&db, via, options.writes, options.duration, 1).await?;
            println!(
                "profile: {ops} operations, {:.0} per second; {:?}",
                ops as f64 / started.elapsed().as_secs_f64(),
                db.stats()
            );
            return Ok(());
        }
        if let Some(via) = path.point() {
            let db = match path {
                Loop::PointUncached => db.uncached(),
                _ => db,
            };
            return point_reads::<DB>(&db, via, deadline).await;
        }
        // The row the `i`-th query of round `calls / 12` updates: each in turn.
        let row = |calls: u64, i: usize| (calls as i64 * 12 + i as i64) % TESTS + 1;
        let mut calls = 0u64;
        let mut timed = Duration::ZERO;
        let mut per_query: Vec<Samples> = vec![Samples::default(); QUERIES.len()];
        let mut sweep = vec![
            0u8;
            if path == Loop::ColdHit {
                options.sweep
            } else {
                0
            }
        ];
        while Instant::now() < deadline {
            for (i, query) in QUERIES.iter().enumerate() {
                let elapsed = match path {
                    Loop::Hit => DB::read(&db, query, Path::Cached).await?.elapsed,
                    Loop::ColdHit => {
                        for line in sweep.chunks_mut(64) {
                            line[0] = line[0].wrapping_add(1);
                        }
                        std::hint::black_box(&sweep);
                        DB::read(&db, query, Path::Cached).await?.elapsed
                    }
                    Loop::HitAfterDirect => {
                        DB::read(&db, query, Path::Direct).await?;
                        DB::read(&db, query, Path::Cached).await?.elapsed
                    }
                    Loop::Miss => {
                        db.invalidate(&TABLES).await;
                        DB::read(&db, query, Path::Cached).await?.elapsed
                    }
                    // The point, overhead and mixed loops run above.
                    Loop::Direct
                    | Loop::Overhead
                    | Loop::PointMiss
                    | Loop::PointDirect
                    | Loop::PointUncached
                    | Loop::Mixed
                    | Loop::MixedDirect => DB::read(&db, query, Path::Direct).await?.elapsed,
                    Loop::Write => DB::update(&db, Path::Cached, row(calls, i)).await?,
                    Loop::WriteDirect => DB::update(&db, Path::Direct, row(calls, i)).await?,
                };
                timed += elapsed;
                per_query[i].push(elapsed);
                calls += 1;
            }
        }
        println!(
            "profile: {calls} calls, {:.2} µs each on average; {:?}",
            timed.as_secs_f64() * 1e6 / calls as f64,
            db.stats()
        );
        for (query, samples) in QUERIES.iter().zip(&per_query) {
            let summary = samples.summary();
            println!(
                "  {:<46} median {:>9.2} µs, mean {:>9.2} µs",
                query.django, summary.median_us, summary.mean_us
            );
        }
        Ok(())
    }
    .await;
    let cleaned = fixture.cleanup().await;
    outcome.and(cleaned)
}
