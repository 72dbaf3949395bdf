//! What the adapter itself costs where the cache cannot help: a miss, and an uncached write,
//! against the same call on the pool directly (PostgreSQL, memory backend); and, to tell
//! where a miss's cost lies, the same read through `uncached()`, which pays for the key and
//! the analysis but never asks the cache.

use cachalot::{Attach, CachedPool, Stats};
use serde::Serialize;
use sqlx::{Executor, Pool};

use crate::Result;
use crate::backends::Backend;
use crate::dataset::{POINT, Query, TESTS};
use crate::db::{BenchDb, Path, Timed};
use crate::sample::{Samples, Summary};

/// One path against the pool directly.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// What is compared.
    pub what: &'static str,
    /// Whether the ≤ 2% target is about this path (the others explain it).
    pub target: bool,
    /// On the pool.
    pub direct: Summary,
    /// Through the adapter.
    pub cached: Summary,
    /// Median over median: the adapter's cost (1.02 = 2% slower).
    pub ratio: f64,
    /// Mean over mean.
    pub mean_ratio: f64,
}

fn compare(what: &'static str, target: bool, (direct, cached): (Samples, Samples)) -> Comparison {
    let (direct, cached) = (direct.summary(), cached.summary());
    Comparison {
        what,
        target,
        direct,
        cached,
        ratio: cached.median_us / direct.median_us,
        mean_ratio: cached.mean_us / direct.mean_us,
    }
}

/// How many pairs of each path `--profile overhead` times in about `duration`: a pair of
/// reads takes about 0.3 ms and a pair of writes about 1 ms on this project's machine. With
/// the warm-up's tenth, the misses make at most one pass over the rows.
pub fn pairs_in(duration: std::time::Duration) -> usize {
    ((duration.as_secs_f64() / 0.002) as usize).clamp(10, TESTS as usize * 10 / 11)
}

/// The `i`-th id of a walk visiting every row once (7919 is prime, so coprime with 10,000).
pub fn nth_id(i: usize) -> i64 {
    (i as i64 * 7919) % TESTS + 1
}

/// Measures `iterations` pairs of each: a miss (a primary-key read of a row never read
/// through the cache before), the same read told to bypass the cache (what the adapter costs
/// before the cache is asked), and an `UPDATE` of one row; each pair alternately first
/// directly and first through the adapter.
pub async fn run<DB>(
    pool: &Pool<DB>,
    backend: &Backend,
    iterations: usize,
) -> Result<Vec<Comparison>>
where
    DB: BenchDb,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let db: CachedPool<DB> = backend.cache.attach(pool.clone());
    // With the warm-up's tenth, every miss reads a row not read before.
    let iterations = iterations.min(TESTS as usize * 10 / 11);
    // A fresh cache: none of these keys is stored yet.
    let miss = pairs(iterations, |i, path| {
        point_read(&db, i, path, |s| s.misses, "was not a plain miss")
    })
    .await?;

    let uncached = db.uncached();
    let bypass = pairs(iterations, |i, path| {
        point_read(
            &uncached,
            i,
            path,
            |s| s.bypasses.disabled,
            "did not bypass",
        )
    })
    .await?;

    let write = pairs(iterations, |i, path| {
        let db = &db;
        async move {
            let elapsed = DB::update(db, path, nth_id(i)).await?;
            Ok(Timed {
                elapsed,
                fingerprint: 0,
            })
        }
    })
    .await?;

    Ok(vec![
        compare("miss (primary-key read)", true, miss),
        compare("uncached write (UPDATE one row)", true, write),
        compare(
            "the same read through `uncached()` (the cache not asked)",
            false,
            bypass,
        ),
    ])
}

/// The primary-key read of the `i`-th row through `path`; read through the adapter, it must
/// add exactly one to the counter `counted` picks (else the error says it `failed`).
async fn point_read<DB>(
    db: &CachedPool<DB>,
    i: usize,
    path: Path,
    counted: fn(&Stats) -> u64,
    failed: &'static str,
) -> Result<Timed>
where
    DB: BenchDb,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let query = Query {
        id: Some(nth_id(i)),
        ..POINT
    };
    let before = counted(&db.stats());
    let read = DB::read(db, &query, path).await?;
    if path == Path::Cached && counted(&db.stats()) != before + 1 {
        return Err(format!("overhead: a primary-key read through the adapter {failed}").into());
    }
    Ok(read)
}

/// Times `iterations` pairs of `call(i, path)` (after a tenth as many unrecorded), directly
/// and through the adapter, alternating which goes first; both must return the same rows.
async fn pairs<F, Fut>(iterations: usize, mut call: F) -> Result<(Samples, Samples)>
where
    F: FnMut(usize, Path) -> Fut,
    Fut: Future<Output = Result<Timed>>,
{
    let warmup = (iterations / 10).max(5);
    let (mut direct, mut cached) = (Samples::default(), Samples::default());
    for i in 0..warmup + iterations {
        let (d, c) = if i % 2 == 0 {
            let d = call(i, Path::Direct).await?;
            (d, call(i, Path::Cached).await?)
        } else {
            let c = call(i, Path::Cached).await?;
            (call(i, Path::Direct).await?, c)
        };
        if d.fingerprint != c.fingerprint {
            return Err("overhead: the adapter returned other rows than the pool".into());
        }
        if i >= warmup {
            direct.push(d.elapsed);
            cached.push(c.elapsed);
        }
    }
    Ok((direct, cached))
}
