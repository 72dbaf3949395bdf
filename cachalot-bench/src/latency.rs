//! The 12 queries, each run directly, cold (a miss after an invalidation) and hot (a hit), in
//! one interleaved run per database.

use cachalot::{Attach, CachedPool};
use serde::Serialize;
use sqlx::{Executor, Pool};

use crate::Result;
use crate::backends::Backend;
use crate::dataset::{QUERIES, Query, Rng, TABLES};
use crate::db::{BenchDb, Path, Timed};
use crate::sample::{Samples, Summary};

/// How many rounds of the 12 queries.
#[derive(Debug, Clone, Copy)]
pub struct Rounds {
    /// Rounds run first and not recorded.
    pub warmup: usize,
    /// Rounds recorded.
    pub measured: usize,
    /// Hits timed back to back per query and backend, after the rounds.
    pub back_to_back: usize,
}

/// One query on one database.
#[derive(Debug, Clone, Serialize)]
pub struct QueryLatency {
    /// The Django expression.
    pub query: &'static str,
    /// On the pool, without the cache.
    pub direct: Summary,
    /// Per backend.
    pub backends: Vec<BackendLatency>,
}

/// One query through one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendLatency {
    /// The backend.
    pub backend: &'static str,
    /// A miss: invalidated just before (outside the timing).
    pub cold: Summary,
    /// A hit, in the interleaved rounds: right after other work, as in an application.
    pub hot: Summary,
    /// A hit repeated back to back, the CPU's caches warm: the cache's own floor.
    pub hot_back_to_back: Summary,
    /// Cold median over direct median: how much slower a miss is.
    pub cold_over_direct: f64,
    /// Direct median over hot median: how much faster a hit is.
    pub direct_over_hot: f64,
}

/// The 12 queries on one database, with the overall ratios per backend.
#[derive(Debug, Clone, Serialize)]
pub struct DbLatency {
    /// The database.
    pub database: &'static str,
    /// Per query, in django-cachalot's order.
    pub queries: Vec<QueryLatency>,
    /// Per backend, over the 12 queries.
    pub overall: Vec<Overall>,
    /// Every hit latency, per backend, in µs (for the histogram; not in the JSON).
    #[serde(skip)]
    pub hits: Vec<(&'static str, Vec<f64>)>,
}

/// The 12 queries together through one backend.
#[derive(Debug, Clone, Serialize)]
pub struct Overall {
    /// The backend.
    pub backend: &'static str,
    /// As django-cachalot computes it: mean cold time over mean direct time (of the medians).
    pub cold_over_direct: f64,
    /// Mean direct time over mean hot time (of the medians).
    pub direct_over_hot: f64,
    /// Median over the queries of each query's cold/direct.
    pub median_cold_over_direct: f64,
    /// Median over the queries of each query's direct/hot.
    pub median_direct_over_hot: f64,
}

/// One measured call of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Direct,
    Cold(usize),
    Hot(usize),
}

/// A round's order for one query: shuffled, but each backend's cold run before its hot run
/// (the cold run stores the entry the hot run reads: invalidating for another query's cold
/// run stales it, `tests` being read by every query).
fn order(rng: &mut Rng, backends: usize) -> Vec<Op> {
    let mut ops = vec![Op::Direct];
    for b in 0..backends {
        ops.push(Op::Cold(b));
        ops.push(Op::Hot(b));
    }
    for i in (1..ops.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ops.swap(i, j);
    }
    for b in 0..backends {
        let cold = ops.iter().position(|op| *op == Op::Cold(b));
        let hot = ops.iter().position(|op| *op == Op::Hot(b));
        if let (Some(cold), Some(hot)) = (cold, hot)
            && hot < cold
        {
            ops.swap(cold, hot);
        }
    }
    ops
}

/// The median of some ratios.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Checks that a cached call returned what the direct call did and was the expected hit or
/// miss.
fn check(
    query: &Query,
    backend: &Backend,
    expected: u64,
    timed: &Timed,
    (before, after): (cachalot::Stats, cachalot::Stats),
    hit: bool,
) -> Result<()> {
    if timed.fingerprint != expected {
        return Err(format!(
            "{} via {}: the cached result differs from the database's",
            query.django, backend.name
        )
        .into());
    }
    let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
    if (hits, misses) != (u64::from(hit), u64::from(!hit)) {
        return Err(format!(
            "{} via {}: expected a {}, got {hits} hit(s) and {misses} miss(es) ({:?})",
            query.django,
            backend.name,
            if hit { "hit" } else { "miss" },
            after
        )
        .into());
    }
    Ok(())
}

/// Runs the 12 queries on `pool` by every path, interleaved, and summarizes them.
pub async fn run<DB>(
    pool: &Pool<DB>,
    backends: &[Backend],
    rounds: Rounds,
    rng: &mut Rng,
) -> Result<DbLatency>
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
    // What each query returns, to compare every cached result with.
    let mut expected = Vec::with_capacity(QUERIES.len());
    for query in &QUERIES {
        expected.push(DB::read(plain, query, Path::Direct).await?.fingerprint);
    }
    let mut direct = vec![Samples::default(); QUERIES.len()];
    let mut cold = vec![vec![Samples::default(); backends.len()]; QUERIES.len()];
    let mut hot = cold.clone();
    for round in 0..rounds.warmup + rounds.measured {
        let record = round >= rounds.warmup;
        for (q, query) in QUERIES.iter().enumerate() {
            for op in order(rng, backends.len()) {
                match op {
                    Op::Direct => {
                        let timed = DB::read(plain, query, Path::Direct).await?;
                        if timed.fingerprint != expected[q] {
                            return Err(
                                format!("{}: the database's result changed", query.django).into()
                            );
                        }
                        if record {
                            direct[q].push(timed.elapsed);
                        }
                    }
                    Op::Cold(b) | Op::Hot(b) => {
                        let hit = matches!(op, Op::Hot(_));
                        let db = &dbs[b];
                        if !hit {
                            db.invalidate(&TABLES).await;
                        }
                        let before = db.stats();
                        let timed = DB::read(db, query, Path::Cached).await?;
                        // A Redis miss stores after it returns, in a task of its own: let it
                        // land before the next call is timed, which it would otherwise share
                        // the machine's two cores with.
                        db.settle().await;
                        let stats = (before, db.stats());
                        check(query, &backends[b], expected[q], &timed, stats, hit)?;
                        if record {
                            let samples = if hit { &mut hot[q][b] } else { &mut cold[q][b] };
                            samples.push(timed.elapsed);
                        }
                    }
                }
            }
        }
    }

    // The same hit again and again.
    let mut back_to_back = vec![vec![Samples::default(); backends.len()]; QUERIES.len()];
    for (b, db) in dbs.iter().enumerate() {
        for (q, query) in QUERIES.iter().enumerate() {
            DB::read(db, query, Path::Cached).await?;
            let before = db.stats();
            for _ in 0..rounds.back_to_back {
                let timed = DB::read(db, query, Path::Cached).await?;
                back_to_back[q][b].push(timed.elapsed);
            }
            let after = db.stats();
            if after.hits - before.hits != rounds.back_to_back as u64 {
                return Err(
                    format!("{}: back-to-back reads were not all hits", query.django).into(),
                );
            }
        }
    }

    let mut queries = Vec::with_capacity(QUERIES.len());
    for (q, query) in QUERIES.iter().enumerate() {
        let direct = direct[q].summary();
        let backends = backends
            .iter()
            .enumerate()
            .map(|(b, backend)| {
                let (cold, hot) = (cold[q][b].summary(), hot[q][b].summary());
                BackendLatency {
                    backend: backend.name,
                    cold,
                    hot,
                    hot_back_to_back: back_to_back[q][b].summary(),
                    cold_over_direct: cold.median_us / direct.median_us,
                    direct_over_hot: direct.median_us / hot.median_us,
                }
            })
            .collect();
        queries.push(QueryLatency {
            query: query.django,
            direct,
            backends,
        });
    }
    let overall = backends
        .iter()
        .enumerate()
        .map(|(b, backend)| {
            let sum = |f: &dyn Fn(&QueryLatency) -> f64| queries.iter().map(f).sum::<f64>();
            let direct = sum(&|q| q.direct.median_us);
            let cold = sum(&|q| q.backends[b].cold.median_us);
            let hot = sum(&|q| q.backends[b].hot.median_us);
            Overall {
                backend: backend.name,
                cold_over_direct: cold / direct,
                direct_over_hot: direct / hot,
                median_cold_over_direct: median(
                    queries
                        .iter()
                        .map(|q| q.backends[b].cold_over_direct)
                        .collect(),
                ),
                median_direct_over_hot: median(
                    queries
                        .iter()
                        .map(|q| q.backends[b].direct_over_hot)
                        .collect(),
                ),
            }
        })
        .collect();
    let hits = backends
        .iter()
        .enumerate()
        .map(|(b, backend)| {
            let all = hot
                .iter()
                .flat_map(|per_backend| per_backend[b].micros().iter().copied());
            (backend.name, all.collect())
        })
        .collect();
    Ok(DbLatency {
        database: DB::LABEL,
        queries,
        overall,
        hits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cold_run_precedes_its_hot_run() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let ops = order(&mut rng, 2);
            assert_eq!(ops.len(), 5);
            for b in 0..2 {
                let cold = ops.iter().position(|op| *op == Op::Cold(b));
                let hot = ops.iter().position(|op| *op == Op::Hot(b));
                assert!(cold < hot);
            }
        }
    }
}
