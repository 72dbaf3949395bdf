//! The Redis backend's costs on a private `redis-server` (started here on a free loopback
//! port, killed at the end): round trips per hit, miss and write, counted by the server
//! (`INFO commandstats`), and latencies; then a write's invalidation with 1,000 and with
//! 1,000,000 entries cached. `cargo bench -p cachalot-core --features redis --bench redis`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachalot_core::Cachalot;
use cachalot_core::backend::RedisBackend;
use cachalot_core::engine::{Codec, ReadOptions, ReadSet, WriteSet};
use deadpool_redis::redis;

use redis_support::{PrivateRedis, commandstats, raw};

type Row = (i64, String, i64);

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    format!(
        "mean {:>7.1} us  p50 {:>7.1} us  p99 {:>7.1} us",
        mean.as_secs_f64() * 1e6,
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    )
}

/// Client commands between two snapshots (the scripts' own calls left out: every script calls
/// TIME once, so TIME counts the scripts).
fn client_commands(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> (u64, u64) {
    let d =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    (d("evalsha") + d("eval") + d("script|load"), d("time"))
}

async fn populate(url: &str, prefix: &str, tag: &str, from: u64, to: u64) {
    let mut c = raw(url).await;
    let value = vec![b'x'; 100];
    let mut i = from;
    while i < to {
        let mut pipe = redis::pipe();
        let end = (i + 10_000).min(to);
        for n in i..end {
            pipe.cmd("SET")
                .arg(format!("{prefix}:{{{tag}}}:e:{n:032x}"))
                .arg(&value)
                .arg("PX")
                .arg(3_600_000)
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await.unwrap();
        i = end;
    }
}

async fn dbsize(url: &str) -> u64 {
    let mut c = raw(url).await;
    redis::cmd("DBSIZE").query_async(&mut c).await.unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(server) = PrivateRedis::start(&[]).await else {
        return;
    };
    let url = server.url();
    let backend = RedisBackend::builder(&url)
        .key_prefix("bench")
        .build()
        .await
        .unwrap();
    // The miss loop reads right after invalidating, again and again: measure the miss, not
    // the skip the churn rule would turn it into.
    let cachalot = Cachalot::builder()
        .backend(backend)
        .skip_churning_reads(false)
        .build()
        .unwrap();
    let db: Arc<str> = Arc::from("postgres://db.example/app");
    let reads = ReadSet::new(&db, ["orders", "users"]);
    let value: Vec<Row> = (0..10).map(|i| (i, format!("user {i}"), i * 7)).collect();
    let key = cachalot
        .key(&db, "SELECT u.id, u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1")
        .param(&42_i64)
        .result_type("Vec<(i64, String, i64)>")
        .finish();
    let read = || {
        cachalot.read_with(
            &reads,
            key.clone(),
            ReadOptions::new().codec(Codec::<Vec<Row>>::json()),
            |_| 256,
            || async { Ok::<_, Infallible>(value.clone()) },
        )
    };
    println!(
        "private redis-server on 127.0.0.1:{} (loopback)",
        server.port
    );
    println!("read: 2 tables + epoch, 10 rows of (i64, String, i64) as JSON\n");

    // Cold miss: tokens missing.
    let before = commandstats(&url).await;
    let t = Instant::now();
    read().await.unwrap();
    let cold = t.elapsed();
    let (rt, scripts) = client_commands(&before, &commandstats(&url).await);
    println!(
        "cold miss (tokens missing): {rt} round trips ({scripts} scripts), {:.1} us",
        cold.as_secs_f64() * 1e6
    );

    // Hits.
    for _ in 0..1000 {
        read().await.unwrap();
    }
    const HITS: usize = 20_000;
    let before = commandstats(&url).await;
    let mut samples = Vec::with_capacity(HITS);
    for _ in 0..HITS {
        let t = Instant::now();
        read().await.unwrap();
        samples.push(t.elapsed());
    }
    let (rt, _) = client_commands(&before, &commandstats(&url).await);
    println!(
        "hit:   {:.2} round trips each   {}",
        rt as f64 / HITS as f64,
        percentiles(samples)
    );

    // Misses with the tokens present (after an invalidation of another query's table).
    const MISSES: usize = 2_000;
    let mut samples = Vec::with_capacity(MISSES);
    let mut trips = 0;
    for _ in 0..MISSES {
        cachalot.invalidate(&db, ["orders"]).await;
        let before = commandstats(&url).await;
        let t = Instant::now();
        read().await.unwrap();
        samples.push(t.elapsed());
        trips += client_commands(&before, &commandstats(&url).await).0;
    }
    println!(
        "miss:  {:.2} round trips each   {}  (fetch + store; the query itself not included)",
        trips as f64 / MISSES as f64,
        percentiles(samples)
    );

    // Writes: lock + bump of two tables, with 1,000 then 1,000,000 entries cached in the
    // same database (the same slot, the same tables).
    let mut c = raw(&url).await;
    let some: Vec<String> = redis::cmd("KEYS")
        .arg("bench:*:e:*")
        .query_async(&mut c)
        .await
        .unwrap();
    let tag = {
        let k = &some[0];
        k[k.find('{').unwrap() + 1..k.find('}').unwrap()].to_owned()
    };
    let writes = WriteSet::tables(["orders", "users"]);
    let mut previous = 0;
    for entries in [1_000_u64, 1_000_000] {
        let t = Instant::now();
        populate(&url, "bench", &tag, previous, entries).await;
        previous = entries;
        let fill = t.elapsed();
        const WRITES: usize = 5_000;
        let before = commandstats(&url).await;
        let mut samples = Vec::with_capacity(WRITES);
        for _ in 0..WRITES {
            let t = Instant::now();
            let guard = cachalot.begin_write(&db, &writes).await;
            guard.finish().await;
            samples.push(t.elapsed());
        }
        let (rt, _) = client_commands(&before, &commandstats(&url).await);
        println!(
            "write invalidation with {:>9} entries cached ({} keys, filled in {:.1} s): {:.2} round trips each   {}",
            entries,
            dbsize(&url).await,
            fill.as_secs_f64(),
            rt as f64 / WRITES as f64,
            percentiles(samples)
        );
    }
    let stats = cachalot.stats();
    assert_eq!(stats.backend_errors, 0, "{stats:?}");
}
