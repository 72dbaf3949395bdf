//! Measures the SQL analyzer: a memoized lookup and a first (unmemoized) analysis of a
//! 300-character SELECT.
//!
//! `cargo run --release -p cachalot-core --no-default-features --example analyze_bench`
use std::hint::black_box;
use std::time::Instant;

use cachalot_core::sql::{Analyzer, Dialect, sql_hash};

const SQL: &str = "SELECT u.id, u.email, u.name, o.id AS order_id, o.total, o.created_at \
     FROM users u JOIN orders o ON o.user_id = u.id \
     LEFT JOIN payments p ON p.order_id = o.id \
     WHERE u.tenant_id = $1 AND o.status = ANY($2) AND o.created_at >= $3 \
     AND p.id IS NULL ORDER BY o.created_at DESC LIMIT $4 OFFSET $5";

/// The median of `samples` measurements of `per_sample` calls of `f`, in nanoseconds per call.
fn median_ns(samples: usize, per_sample: u32, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_sample {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(per_sample)
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    println!("SQL: {} characters", SQL.len());
    for dialect in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
        let analyzer = Analyzer::new(dialect);
        let analysis = analyzer.analyze(SQL);
        assert!(analysis.is_cacheable(), "{:?}", analysis.not_cacheable);

        // Warm up, then measure.
        let _ = median_ns(50, 1_000, || {
            black_box(analyzer.analyze(black_box(SQL)));
        });
        let memo = median_ns(201, 2_000, || {
            black_box(analyzer.analyze(black_box(SQL)));
        });
        let hash = sql_hash(SQL);
        let memo_hashed = median_ns(201, 2_000, || {
            black_box(analyzer.analyze_hashed(black_box(hash), black_box(SQL)));
        });
        let first = median_ns(201, 10, || {
            black_box(analyzer.analyze_uncached(black_box(SQL)));
        });
        println!(
            "{dialect:?}: memoized lookup {memo:.0} ns (hash precomputed: {memo_hashed:.0} ns), \
             first analysis {:.1} µs",
            first / 1_000.0
        );
    }
}
