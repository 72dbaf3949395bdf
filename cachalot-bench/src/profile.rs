//! `--profile`: one path in a loop, for `perf record`, with nothing else running.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::Executor;

use crate::Result;
use crate::backends;
use crate::dataset::{Dataset, QUERIES, TABLES, TESTS};
use crate::db::{BenchDb, Fixture, Path};

/// What `cold-hit` sweeps before each hit: more than the machine's caches.
const SWEEP_BYTES: usize = 64 * 1024 * 1024;

/// How long the loop runs.
const DURATION: Duration = Duration::from_secs(10);

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
    /// Cached reads right after an invalidation.
    Miss,
    /// Reads on the pool.
    Direct,
    /// `UPDATE`s through the adapter.
    Write,
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
            "miss" => Loop::Miss,
            "direct" => Loop::Direct,
            "write" => Loop::Write,
            other => return Err(format!("--profile: unknown path `{other}`")),
        };
        Ok(Profile { path, redis })
    }
}

/// Seeds the database and loops on `profile`'s path over the 12 queries for [`DURATION`].
pub async fn run<DB>(fixture: Fixture<DB>, data: &Dataset, profile: Profile) -> Result<()>
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
            "profile: {path:?} on {} through {} for {DURATION:?}",
            DB::LABEL,
            backend.name
        );
        let deadline = Instant::now() + DURATION;
        let mut calls = 0u64;
        let mut timed = Duration::ZERO;
        let mut per_query = [Duration::ZERO; QUERIES.len()];
        let mut sweep = vec![
            0u8;
            if path == Loop::ColdHit {
                SWEEP_BYTES
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
                    Loop::Miss => {
                        db.invalidate(&TABLES).await;
                        DB::read(&db, query, Path::Cached).await?.elapsed
                    }
                    Loop::Direct => DB::read(&db, query, Path::Direct).await?.elapsed,
                    Loop::Write => {
                        let id = (calls as i64 * 12 + i as i64) % TESTS + 1;
                        DB::update(&db, Path::Cached, id).await?
                    }
                };
                timed += elapsed;
                per_query[i] += elapsed;
                calls += 1;
            }
        }
        println!(
            "profile: {calls} calls, {:.2} µs each on average; {:?}",
            timed.as_secs_f64() * 1e6 / calls as f64,
            db.stats()
        );
        let rounds = calls as f64 / QUERIES.len() as f64;
        for (query, total) in QUERIES.iter().zip(per_query) {
            println!(
                "  {:<46} {:>10.2} µs",
                query.django,
                total.as_secs_f64() * 1e6 / rounds
            );
        }
        Ok(())
    }
    .await;
    let cleaned = fixture.cleanup().await;
    outcome.and(cleaned)
}
