//! What the adapter itself costs where the cache cannot help: a miss, and an uncached write,
//! against the same call on the pool directly (PostgreSQL, memory backend).

use cachalot::{Attach, CachedPool};
use serde::Serialize;
use sqlx::{Executor, Pool};

use crate::Result;
use crate::backends::Backend;
use crate::dataset::{POINT, Query, TESTS};
use crate::db::{BenchDb, Path};
use crate::sample::{Samples, Summary};

/// One path against the pool directly.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// What is compared.
    pub what: &'static str,
    /// On the pool.
    pub direct: Summary,
    /// Through the adapter.
    pub cached: Summary,
    /// Median over median: the adapter's cost (1.02 = 2% slower).
    pub ratio: f64,
    /// Mean over mean.
    pub mean_ratio: f64,
}

fn compare(what: &'static str, direct: &Samples, cached: &Samples) -> Comparison {
    let (direct, cached) = (direct.summary(), cached.summary());
    Comparison {
        what,
        direct,
        cached,
        ratio: cached.median_us / direct.median_us,
        mean_ratio: cached.mean_us / direct.mean_us,
    }
}

/// The `i`-th id of a walk visiting every row once (7919 is prime, so coprime with 10,000).
pub fn nth_id(i: usize) -> i64 {
    (i as i64 * 7919) % TESTS + 1
}

/// Measures `iterations` pairs of each: a miss (a primary-key read of a row never read
/// through the cache before) and an `UPDATE` of one row, alternately first directly and
/// first through the adapter.
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
    let iterations = iterations.min(TESTS as usize);
    let warmup = (iterations / 10).max(5);
    // A fresh cache: none of these keys is stored yet.
    let (mut direct, mut cached) = (Samples::default(), Samples::default());
    for i in 0..warmup + iterations {
        let query = Query {
            id: Some(nth_id(i)),
            ..POINT
        };
        let before = db.stats().misses;
        let (d, c) = if i % 2 == 0 {
            let d = DB::read(&db, &query, Path::Direct).await?;
            (d, DB::read(&db, &query, Path::Cached).await?)
        } else {
            let c = DB::read(&db, &query, Path::Cached).await?;
            (DB::read(&db, &query, Path::Direct).await?, c)
        };
        if db.stats().misses != before + 1 || d.fingerprint != c.fingerprint {
            return Err("overhead: a primary-key read was not a plain miss".into());
        }
        if i >= warmup {
            direct.push(d.elapsed);
            cached.push(c.elapsed);
        }
    }
    let miss = compare("miss (primary-key read)", &direct, &cached);

    let (mut direct, mut cached) = (Samples::default(), Samples::default());
    for i in 0..warmup + iterations {
        let id = nth_id(i);
        let (d, c) = if i % 2 == 0 {
            let d = DB::update(&db, Path::Direct, id).await?;
            (d, DB::update(&db, Path::Cached, id).await?)
        } else {
            let c = DB::update(&db, Path::Cached, id).await?;
            (DB::update(&db, Path::Direct, id).await?, c)
        };
        if i >= warmup {
            direct.push(d);
            cached.push(c);
        }
    }
    let write = compare("uncached write (UPDATE one row)", &direct, &cached);
    Ok(vec![miss, write])
}
