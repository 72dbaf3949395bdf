//! The cost of a memory hit, end to end and by part. `cargo bench -p cachalot-core --bench hit`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use cachalot_core::Cachalot;
use cachalot_core::backend::CacheBackend;
use cachalot_core::engine::{Decision, ReadSet};
use cachalot_core::sql::Dialect;

const N: u32 = 1_000_000;

fn report(name: &str, start: Instant) {
    let ns = start.elapsed().as_nanos() as f64 / f64::from(N);
    println!("{name:<40} {ns:>8.1} ns");
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cachalot = Cachalot::builder().build().unwrap();
        let db: Arc<str> = Arc::from("postgres://db.example/app");
        let sql =
            "SELECT u.id, u.name FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1";
        let reads = ReadSet::new(&db, ["orders", "users"]);
        let value: Vec<(i64, String)> = (0..10).map(|i| (i, format!("user {i}"))).collect();
        let key = || {
            cachalot
                .key(&db, sql)
                .param(&42_i64)
                .result_type("Vec<(i64, String)>")
                .finish()
        };
        let fetch = || async { Ok::<_, Infallible>(value.clone()) };
        cachalot.read(&reads, key(), |_| 256, fetch).await.unwrap();

        let start = Instant::now();
        for _ in 0..N {
            black_box(key());
        }
        report("key build", start);

        let k = key();
        let start = Instant::now();
        for _ in 0..N {
            black_box(cachalot.backend().fetch(reads.ids(), &k).await.unwrap());
        }
        report("backend fetch (2 tables + epoch)", start);

        let start = Instant::now();
        for _ in 0..N {
            black_box(cachalot.backend().tokens(reads.ids()).await.unwrap());
        }
        report("backend tokens only (2 tables + epoch)", start);

        let start = Instant::now();
        for _ in 0..N {
            black_box(
                cachalot
                    .read(&reads, k.clone(), |_| 256, fetch)
                    .await
                    .unwrap(),
            );
        }
        report("read hit (10-row Vec clone)", start);

        let analysis = cachalot.analyze(Dialect::Postgres, sql);
        let start = Instant::now();
        for _ in 0..N {
            black_box(cachalot.analyze(Dialect::Postgres, sql));
        }
        report("analyze (memoized)", start);
        let start = Instant::now();
        for _ in 0..N {
            black_box(cachalot.decide(&db, &analysis));
        }
        report("decide", start);
        let start = Instant::now();
        for _ in 0..N {
            let analysis = cachalot.analyze(Dialect::Postgres, sql);
            let Decision::Cache(reads) = cachalot.decide(&db, &analysis) else {
                unreachable!()
            };
            black_box(cachalot.read(&reads, key(), |_| 256, fetch).await.unwrap());
        }
        report("analyze + decide + key + read hit", start);
        drop(analysis);

        let small = cachalot.key(&db, "SELECT 1 FROM users").finish();
        let one = ReadSet::new(&db, ["users"]);
        cachalot
            .read(
                &one,
                small.clone(),
                |_| 8,
                || async { Ok::<_, Infallible>(1_i64) },
            )
            .await
            .unwrap();
        let start = Instant::now();
        for _ in 0..N {
            black_box(
                cachalot
                    .read(
                        &one,
                        small.clone(),
                        |_| 8,
                        || async { Ok::<_, Infallible>(1_i64) },
                    )
                    .await
                    .unwrap(),
            );
        }
        report("read hit (i64, 1 table)", start);

        // The latency of single hits, timed one by one: median and p99.
        let mut samples: Vec<u128> = Vec::with_capacity(200_000);
        for _ in 0..200_000 {
            let start = Instant::now();
            black_box(
                cachalot
                    .read(&reads, k.clone(), |_| 256, fetch)
                    .await
                    .unwrap(),
            );
            samples.push(start.elapsed().as_nanos());
        }
        samples.sort_unstable();
        println!(
            "{:<40} {:>8} ns median, {} ns p99",
            "read hit (10-row Vec), timed singly",
            samples[samples.len() / 2],
            samples[samples.len() * 99 / 100]
        );
        // Misses that store: a fresh key every time, as many as the cache keeps.
        const MISSES: u32 = 200_000;
        let start = Instant::now();
        for i in 0..MISSES {
            let key = cachalot
                .key(&db, sql)
                .param(&i64::from(i))
                .result_type("Vec<(i64, String)>")
                .finish();
            black_box(cachalot.read(&reads, key, |_| 256, fetch).await.unwrap());
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(MISSES);
        println!("{:<40} {ns:>8.1} ns", "read miss + store (10-row Vec)");

        let s = cachalot.stats();
        println!("hits {} misses {}", s.hits, s.misses);
    });
    throughput();
}

/// Hits per second with 1 and with 8 tasks on a 2-worker runtime: with no global lock on the
/// hit path, more tasks than cores still add throughput rather than contention.
fn throughput() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cachalot = Cachalot::builder().build().unwrap();
        let db: Arc<str> = Arc::from("postgres://db.example/app");
        let reads = ReadSet::new(&db, ["orders", "users"]);
        let value: Arc<Vec<(i64, String)>> =
            Arc::new((0..10).map(|i| (i, format!("user {i}"))).collect());
        // Distinct keys per task, so tasks do not all read one moka entry.
        let keys: Vec<_> = (0..8_i64)
            .map(|t| {
                cachalot
                    .key(
                        &db,
                        "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1",
                    )
                    .param(&t)
                    .finish()
            })
            .collect();
        for key in &keys {
            let v = value.clone();
            cachalot
                .read(
                    &reads,
                    key.clone(),
                    |_| 256,
                    || async move { Ok::<_, Infallible>((*v).clone()) },
                )
                .await
                .unwrap();
        }
        const TOTAL: usize = 2_000_000;
        for tasks in [1_usize, 2, 8] {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let cachalot = cachalot.clone();
                    let reads = reads.clone();
                    let key = keys[t].clone();
                    let value = value.clone();
                    tokio::spawn(async move {
                        for _ in 0..TOTAL / tasks {
                            let v = value.clone();
                            black_box(
                                cachalot
                                    .read(
                                        &reads,
                                        key.clone(),
                                        |_| 256,
                                        || async move { Ok::<_, Infallible>((*v).clone()) },
                                    )
                                    .await
                                    .unwrap(),
                            );
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
            let per_sec = TOTAL as f64 / start.elapsed().as_secs_f64();
            println!(
                "hit throughput, {tasks} task(s) on 2 workers: {:>12.0} hits/s",
                per_sec
            );
        }
    });
}
