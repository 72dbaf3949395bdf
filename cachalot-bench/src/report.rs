//! The results: printed as the run goes, checked against the targets, and written as
//! `benchmarks.md` (tables and the chart), `benchmarks.json` (raw figures) and
//! `benchmarks.svg`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::Result;
use crate::dataset::QUERIES;
use crate::invalidation::{Curve, Footprint};
use crate::latency::DbLatency;
use crate::overhead::Comparison;
use crate::sample::{Bucket, log_histogram};
use crate::throughput::Throughput;

/// How much of everything a run measures.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `quick` or `full`.
    pub mode: &'static str,
    /// Unrecorded rounds of the 12 queries.
    pub warmup_rounds: usize,
    /// Recorded rounds of the 12 queries.
    pub rounds: usize,
    /// Hits timed back to back per query, database and backend.
    pub back_to_back_hits: usize,
    /// Write ratios of the mixed workload.
    pub write_ratios: Vec<f64>,
    /// Seconds per mode and write ratio of the mixed workload.
    pub throughput_seconds: f64,
    /// Cache sizes of the invalidation benchmark.
    pub invalidation_sizes: Vec<u64>,
    /// Invalidations timed per size.
    pub invalidation_samples: usize,
    /// Pairs timed per path of the overhead benchmark.
    pub overhead_iterations: usize,
}

/// The machine and the software measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// When the run started (UTC).
    pub date: String,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu: String,
    /// Processors the process may use (`nproc`).
    pub nproc: usize,
    /// Physical memory.
    pub memory: String,
    /// Operating system and kernel.
    pub os: String,
    /// The version of cachalot measured.
    pub cachalot: &'static str,
    /// `(server, version)`.
    pub versions: Vec<(String, String)>,
}

/// The first value of `key` in a `key: value` file.
fn field(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once([':', '=']))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (days to civil date: H. Hinnant's algorithm).
fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let (hour, minute) = ((seconds % 86_400) / 3600, (seconds % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

impl Machine {
    /// Reads the machine's description from `/proc` and `/etc/os-release`.
    pub fn probe() -> Machine {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let os = format!(
            "{}, Linux {}",
            field("/etc/os-release", "PRETTY_NAME").unwrap_or_else(|| "unknown".into()),
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        );
        Machine {
            date: utc(now),
            cpu: field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory: field("/proc/meminfo", "MemTotal")
                .and_then(|kb| kb.trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or_else(
                    || "unknown".into(),
                    |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0),
                ),
            os,
            cachalot: env!("CARGO_PKG_VERSION"),
            versions: Vec::new(),
        }
    }
}

/// Why a hit is not faster, from `--profile hit-after-direct`, and `--profile cold-hit` under
/// valgrind's cache simulation.
const WHY_HIT: &str = "Back to back, a hit costs 0.4–5 µs; right after a database call it costs \
    several times more, because the database's work has evicted the CPU's caches. A hit then \
    brings in about 610 cache lines, 404 of code and 205 of data, and runs about 7,200 \
    instructions (`valgrind --tool=callgrind --cache-sim=yes --I1=2048,32,64 --D1=4096,64,64 \
    cachalot-bench --profile cold-hit --db postgres --sweep 4194304`, the 12 queries in turn; \
    430, 215 and 7,510 before this round's changes). The largest share, about 220 lines and \
    4,300 instructions, is the copy of the rows `fetch_all` hands the caller: a `Vec` of its \
    own, one allocation per row and per `String`, most of them through glibc's slow path, as \
    the caller frees more chunks of one size than its per-thread cache keeps; the direct read \
    makes the same allocations. Then the backend's lookup, about 150 (moka's get: an epoch \
    pin, its read log and a clock read; the table states; the TTL's clock read), the analysis \
    memo about 47 (the SQL hashed and compared) and the key about 34. Already done: the lookup \
    is a plain call (`Cachalot::probe`) and everything a hit does not run is boxed, so a \
    cached `fetch_all` future is 608 bytes instead of 2,896; keys carry the prefix and the \
    database as one 16-byte digest per pool; bound values are encoded only on a miss. Merging \
    the analysis memo, the read set and the key's SQL part into one memo per statement was \
    measured and saved nothing. The `[0:10]` queries take the database 130–480 µs over the \
    runs and machines, so 50× needs a hit of 2.6–9.6 µs between database calls; the one with \
    two strings per row (`select_related`) copies twice as many, and lands on either side of \
    50× from one run to the next.";

/// Why a miss costs more than the query.
const WHY_COLD: &str = "A miss adds the lookup before the query and, after it, one copy of the \
    rows for the cache and moka's insert (its write log and, every 64 writes, its \
    housekeeping): about 3 µs with warm caches (`cargo bench -p cachalot-core --bench hit`, \
    `read miss + store`), 6–12 µs right after the database call on this machine, about half on \
    each side of the query, as the database's work has evicted the CPU's caches. Storing from a task of its own, \
    as misses through Redis do, does not pay in memory: on 2 cores the spawn wakes the second \
    worker, which then competes with the database. Nor does putting the store off until the \
    engine's next query waits for the database: measured in alternating runs on PostgreSQL, the \
    cold reads were no faster and the hits right after them, served from the miss's flight \
    rather than from moka, were slower (134–146× faster than the database became 90–105×). \
    SQLite answers the cheap queries in 70–150 µs, so that is 3–10% there; the run-to-run \
    spread of these medians is of the same order. Until this round a Redis miss's store, which \
    lands after the miss returns, also ran during the next call timed, often this one: over \
    150 rounds, 1.067× (SQLite) and 1.062× (PostgreSQL) with it, 1.046× and 1.043× since each \
    cached call settles before the next.";

/// Why a Redis hit is not faster.
const WHY_REDIS_HOT: &str = "A Redis hit is one round trip to a Lua script that reads the tokens \
    and the entry, then the rows are decoded from JSON: about 100 µs on this machine, where \
    Redis shares the 2 cores with the database and the benchmark.";

/// Why writes cost throughput.
const WHY_WRITES: &str = "Reads cost almost nothing here: with writes in flight most of the \
    time, a read mostly finds its table locked and goes straight to the database, and a \
    statement whose entries are invalidated before anyone reads them skips the cache (the \
    *skipped* column). What remains is the write itself: a lock before it and a fresh token \
    after it, which keep readers in other processes from serving or storing what the write is \
    changing. In memory that is under a microsecond. With Redis it was two round trips per \
    write, and a third for every read that only learned the table was locked: 0.63–0.81× of \
    the database alone at 50% writes before this round. Writes of one process that overlap \
    on a table now share one lock (the last one writing the table bumps it), the process's \
    reads of a table it has locked skip Redis, and a miss whose table a write locked since \
    does not send its store: 0.94–0.98× on SQLite and PostgreSQL over this round's runs, \
    the memory backend's 0.96–1.00× within the same spread. What is left is mostly the \
    spread of the database itself: over six alternating 4-second runs on SQLite \
    (`--profile redis-mixed` against `--profile mixed-direct`), the database alone made \
    11,100–13,900 operations per second, and under `perf record` cachalot, moka and the \
    Redis client together take under 1% of the samples, SQLite and the kernel's thread \
    switches most of the rest. Returning from a write before its bump lands (its lock still \
    covering it) was measured and not kept: 10,800 operations per second against 10,900.";

/// Why invalidation is not flat.
const WHY_FLAT: &str = "Invalidation replaces one token per table and never visits entries; a \
    change beyond 10% is noise from the shared machine.";

/// Why the adapter costs more than 2%.
const WHY_OVERHEAD: &str = "callgrind counts the adapter's miss at about 9,300 instructions on \
    top of the 25,400 the client spends on the same read from the pool (`cachalot-bench \
    --profile point-miss` against `--profile point-direct`, under `valgrind --tool=callgrind`). \
    About 1,900 of them come before the cache is asked: the key and the analysis, which a read \
    through `uncached()` pays too (`--profile point-uncached`). The rest is moka's insert, \
    about 2,800, the backend's lookup before the query, about 800, then the flight that \
    coalesces identical misses and the copy of the row the cache keeps. Right after a database \
    call all of it runs with cold CPU caches. Timed inside one build on this machine (about \
    5.8 µs in all on a 155 µs read): the key and the analysis 0.7 µs, the decision 0.4, the \
    lookup 1.5, joining the flight 0.3, the copy of the rows and closing the flight 0.8, the \
    store 2.2; no step is more than a third of it. Handing the stores to moka 16 at a time, so \
    that all but the first run warm, was measured and not kept: the store fell to 1.6 µs and \
    the lookup, which then also looks in the batch, rose by 0.3 (alternating runs of \
    `--profile overhead`: 1.040–1.045× against 1.038–1.060×). Storing in a task of its own, \
    as the Redis backend does, made the miss slower (1.10–1.17× against 1.03–1.08×), and \
    putting the store off until the next query waits for the database did not help (the store \
    still runs cold, and every read then also looks for a result on its way); run at that \
    query's second pending poll, once the query is on the wire, it gained 1–3% (1.055–1.068× \
    against 1.076–1.094× in alternating runs of `--profile overhead`), but until it runs the \
    hits are served from the flight, the slower hits the cold target describes. A build whose \
    memory backend skipped moka's insert altogether (it keeps nothing, so it cannot ship) \
    measured 1.024–1.042× against 1.077–1.095× in the same hour: the insert is about 7 µs of \
    that day's 9–13 µs, and without it the rest is still above 2% of a 120–160 µs read on \
    this machine. Where the client's task wakes weighs more than any step: on 2026-12-04 (an \
    Intel Xeon machine of the same kind), unpinned runs fell into two modes, the direct read at \
    100–105 µs with the adapter 8–12 µs slower (1.08–1.12×), or at 135 µs with it 1 µs slower \
    (1.005×); the same binary under `taskset -c 1` measured 1.022–1.032× in alternating runs, \
    and with `TOKIO_WORKER_THREADS=1` 1.010–1.029×: most of the cost is the task resuming on a \
    core whose caches hold none of its data. The write is \
    the analysis, the write set, a lock and a bump in memory: about 3,000 instructions over \
    the pool's own `execute` (`--profile write` against `--profile write-direct`), on an \
    UPDATE that takes PostgreSQL 200–550 µs over the runs; its ratio moves by a percent or two \
    from run to run with the database's own timing.";

/// One of the targets and how the run did.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The target.
    pub goal: &'static str,
    /// What was measured.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured.
    pub met: Option<bool>,
    /// Where the time goes, from the profiles: printed when the target is missed.
    pub why: &'static str,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// How much was measured.
    pub settings: Settings,
    /// Servers that did not answer.
    pub skipped: Vec<String>,
    /// The 12 queries, per database.
    pub latency: Vec<DbLatency>,
    /// The mixed workload.
    pub throughput: Vec<Throughput>,
    /// Invalidation latency against cache size, per backend.
    pub invalidation: Vec<Curve>,
    /// Memory per entry in the memory backend.
    pub footprint: Vec<Footprint>,
    /// The adapter's own cost (PostgreSQL).
    pub overhead: Vec<Comparison>,
    /// The distribution of the hit latencies of the interleaved rounds, every database
    /// together, per backend.
    pub hit_histograms: Vec<HitHistogram>,
    /// The targets.
    pub targets: Vec<Target>,
}

/// The hit latencies of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct HitHistogram {
    /// The backend.
    pub backend: &'static str,
    /// Hits measured.
    pub hits: usize,
    /// Logarithmic buckets, 20 per decade.
    pub buckets: Vec<Bucket>,
}

/// `12.3` below 100, `123` above.
fn us(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A ratio: `1.03×` near 1, `95×` when large.
fn times(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}×")
    } else {
        format!("{v:.0}×")
    }
}

/// A ratio near 1, precise enough to compare with a threshold: `1.052×`.
fn times3(v: f64) -> String {
    format!("{v:.3}×")
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

impl Report {
    /// An empty report.
    pub fn new(machine: Machine, settings: Settings) -> Report {
        Report {
            machine,
            settings,
            skipped: Vec::new(),
            latency: Vec::new(),
            throughput: Vec::new(),
            invalidation: Vec::new(),
            footprint: Vec::new(),
            overhead: Vec::new(),
            hit_histograms: Vec::new(),
            targets: Vec::new(),
        }
    }

    fn latency_of(&self, database: &str) -> Option<&DbLatency> {
        self.latency.iter().find(|l| l.database == database)
    }

    /// Completes the report: the hit histograms and the targets.
    pub fn finish(&mut self) {
        let mut per_backend: Vec<(&'static str, Vec<f64>)> = Vec::new();
        for l in &self.latency {
            for (backend, micros) in &l.hits {
                match per_backend.iter_mut().find(|(b, _)| b == backend) {
                    Some((_, all)) => all.extend_from_slice(micros),
                    None => per_backend.push((backend, micros.clone())),
                }
            }
        }
        self.hit_histograms = per_backend
            .into_iter()
            .map(|(backend, micros)| HitHistogram {
                backend,
                hits: micros.len(),
                buckets: log_histogram(&micros, 20),
            })
            .collect();
        self.evaluate_targets();
    }

    /// Checks the measurements against the targets.
    fn evaluate_targets(&mut self) {
        let mut targets = Vec::new();
        let pg = self.latency_of("PostgreSQL");

        // 1. Memory hits on the join and slice queries (all but count and first).
        let speedups: Vec<(f64, &str)> = pg
            .map(|l| {
                l.queries
                    .iter()
                    .skip(2)
                    .filter_map(|q| {
                        let b = q.backends.iter().find(|b| b.backend == "memory")?;
                        Some((b.direct_over_hot, q.query))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let worst = speedups
            .iter()
            .copied()
            .reduce(|a, b| if b.0 < a.0 { b } else { a });
        let floor: Option<f64> = pg.and_then(|l| {
            l.queries
                .iter()
                .skip(2)
                .filter_map(|q| {
                    let b = q.backends.iter().find(|b| b.backend == "memory")?;
                    Some(q.direct.median_us / b.hot_back_to_back.median_us)
                })
                .reduce(f64::min)
        });
        targets.push(Target {
            goal: "Memory hit ≥ 50× faster than direct PostgreSQL on the join and slice queries",
            measured: worst.map_or_else(
                || "PostgreSQL not measured".into(),
                |(v, q)| {
                    format!(
                        "slowest: {} faster ({q}); hits back to back: ≥ {} faster",
                        times(v),
                        times(floor.unwrap_or_default())
                    )
                },
            ),
            met: worst.map(|(v, _)| v >= 50.0),
            why: WHY_HIT,
        });

        // 2. Cold with the memory backend, per database.
        let colds: Vec<(f64, f64, &str)> = self
            .latency
            .iter()
            .filter_map(|l| {
                let overall = l.overall.iter().find(|o| o.backend == "memory")?;
                Some((
                    overall.cold_over_direct,
                    overall.median_cold_over_direct,
                    l.database,
                ))
            })
            .collect();
        targets.push(Target {
            goal: "Cold ≤ 1.05× direct with the memory backend (mean of the 12 medians, as django-cachalot computes it)",
            measured: colds
                .iter()
                .map(|(v, m, d)| format!("{d} {} (per-query median {})", times3(*v), times(*m)))
                .collect::<Vec<_>>()
                .join(", "),
            met: (!colds.is_empty()).then(|| colds.iter().all(|(v, _, _)| *v <= 1.05)),
            why: WHY_COLD,
        });

        // 3. Redis hits against PostgreSQL.
        let redis = pg.and_then(|l| l.overall.iter().find(|o| o.backend == "redis"));
        targets.push(Target {
            goal: "Redis hot ≥ 3× faster than direct PostgreSQL (median over the 12 queries)",
            measured: redis.map_or_else(
                || "Redis not measured".into(),
                |o| format!("{} faster", times(o.median_direct_over_hot)),
            ),
            met: redis.map(|o| o.median_direct_over_hot >= 3.0),
            why: WHY_REDIS_HOT,
        });

        // 4. Throughput at 50% writes.
        let heavy: Vec<(f64, &str, &str)> = self
            .throughput
            .iter()
            .filter(|t| (t.write_ratio - 0.5).abs() < 1e-9)
            .flat_map(|t| {
                t.backends
                    .iter()
                    .map(move |b| (b.speedup, b.backend, t.database))
            })
            .collect();
        targets.push(Target {
            goal: "At 50% writes, ≤ 1.05× slower than direct (throughput ≥ 0.952× direct)",
            measured: heavy
                .iter()
                .map(|(s, b, d)| format!("{d}/{b} {}", times3(*s)))
                .collect::<Vec<_>>()
                .join(", "),
            met: (!heavy.is_empty()).then(|| heavy.iter().all(|(s, _, _)| *s >= 1.0 / 1.05)),
            why: WHY_WRITES,
        });

        // 5. Invalidation flat from the smallest to the largest cache.
        let flat: Vec<&Curve> = self.invalidation.iter().collect();
        let sizes = flat
            .first()
            .and_then(|c| Some((c.points.first()?.entries, c.points.last()?.entries)));
        targets.push(Target {
            goal: "Invalidation flat: ≤ 10% change from 1k to 1M entries",
            measured: flat
                .iter()
                .map(|c| {
                    let (from, to) = sizes.unwrap_or_default();
                    format!(
                        "{} {:+.1}% ({from} → {to} entries)",
                        c.backend,
                        c.change * 100.0
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            met: (!flat.is_empty()).then(|| flat.iter().all(|c| c.change.abs() <= 0.10)),
            why: WHY_FLAT,
        });

        // 6. The adapter's own cost.
        targets.push(Target {
            goal: "Adapter overhead on a miss and on an uncached write ≤ 2% (PostgreSQL)",
            measured: self
                .overhead
                .iter()
                .filter(|c| c.target)
                .map(|c| format!("{}: {}", c.what, times3(c.ratio)))
                .collect::<Vec<_>>()
                .join(", "),
            met: (!self.overhead.is_empty()).then(|| {
                self.overhead
                    .iter()
                    .filter(|c| c.target)
                    .all(|c| c.ratio <= 1.02)
            }),
            why: WHY_OVERHEAD,
        });
        self.targets = targets;
    }

    /// Writes `benchmarks.md`, `benchmarks.json` and `benchmarks.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("benchmarks.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        std::fs::write(dir.join("benchmarks.svg"), crate::chart::draw(self)?)?;
        std::fs::write(dir.join("benchmarks.md"), self.markdown())?;
        Ok(())
    }

    /// The names of the backends measured, in order.
    fn backend_names(&self) -> Vec<&'static str> {
        self.latency
            .first()
            .and_then(|l| l.queries.first())
            .map(|q| q.backends.iter().map(|b| b.backend).collect())
            .unwrap_or_default()
    }

    /// `benchmarks.md`.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let s = &self.settings;
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "django-cachalot's benchmark on cachalot for SQLx, plus what django-cachalot does not \
             measure: invalidation against cache size, a mixed read/write workload, memory per \
             entry and the adapter's own cost. Generated by `cargo run --release -p cachalot-bench \
             --features redis` (about 7 minutes; `-- --quick` checks every path in seconds and \
             writes nothing), built with the workspace's release profile: `lto = \"fat\"` and \
             `codegen-units = 1`, for the direct reads and the cached ones alike. The raw figures \
             are in [benchmarks.json](benchmarks.json).\n"
        );
        let _ = writeln!(md, "| Machine | |\n|---|---|");
        let _ = writeln!(md, "| Date | {} |", m.date);
        let _ = writeln!(md, "| CPU | {} (`nproc` = {}) |", m.cpu, m.nproc);
        let _ = writeln!(md, "| Memory | {} |", m.memory);
        let _ = writeln!(md, "| OS | {} |", m.os);
        let _ = writeln!(md, "| cachalot | {} |", m.cachalot);
        for (server, version) in &m.versions {
            let _ = writeln!(md, "| {server} | {version} |");
        }
        let _ = writeln!(
            md,
            "\nThe servers run on the same machine as the benchmark, over TCP on 127.0.0.1 with \
             their stock settings (PostgreSQL with `fsync` and synchronous commit on). SQLite is a \
             temporary file in WAL mode.\n"
        );
        for skipped in &self.skipped {
            let _ = writeln!(md, "- Not measured: {skipped}");
        }
        if !self.skipped.is_empty() {
            md.push('\n');
        }

        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| Target | Measured | |\n|---|---|---|");
        for t in &self.targets {
            let _ = writeln!(md, "| {} | {} | {} |", t.goal, t.measured, met(t.met));
        }

        let missed: Vec<&Target> = self
            .targets
            .iter()
            .filter(|t| t.met == Some(false))
            .collect();
        if !missed.is_empty() {
            let _ = writeln!(md, "\n### Where the time goes in the targets missed\n");
            for t in missed {
                let _ = writeln!(md, "- **{}.** {}", t.goal, t.why);
            }
        }

        let _ = writeln!(
            md,
            "\n![Latency, hit distribution, invalidation and throughput](benchmarks.svg)\n"
        );

        self.markdown_queries(&mut md);
        self.markdown_throughput(&mut md);
        self.markdown_invalidation(&mut md);
        self.markdown_overhead(&mut md);

        let _ = writeln!(md, "## How it is measured\n");
        let _ = writeln!(
            md,
            "- **Data**: as django-cachalot's benchmark: 50 users, 10 groups, each user in 2 \
             distinct random groups, 10,000 rows of `tests` with a random owner, from a fixed \
             seed. Django's table names (`auth_user`, `auth_group`, `auth_user_groups`).\n\
             - **Queries**: its 12 querysets translated to SQL: slices are `LIMIT/OFFSET` \
             `ORDER BY id`; `icontains` is `ILIKE` on PostgreSQL and `LOWER(name) LIKE` elsewhere; \
             `order_by('owner')` also orders by `id` (so results are deterministic); \
             `prefetch_related('owner__groups')` is one query joining the slice to the owner and \
             through `auth_user_groups` to the groups (Django sends three). Values are bound \
             (`.bind()`), rows read into `#[derive(FromRow)]` structs.\n\
             - **Direct** is `sqlx::query_as(..)` on `db.inner()`, the pool without the cache. \
             **Cold** is the cached read right after `db.invalidate(&[tables])` (the invalidation \
             is not timed): the miss path, query included. **Hot** is the cached read again: a hit. \
             Each call is timed from building the query to holding the rows. The three (and each \
             backend's cold and hot) are interleaved in a random order per query and round, a \
             backend's cold before its hot; every result is compared with the direct one and \
             every cold/hot call is checked to be exactly one miss/hit. {} warm-up rounds, then \
             {} recorded rounds.\n\
             - **Redis** goes through the same adapter calls; rows are stored as JSON (the \
             adapter's codec with the `redis` feature). A Redis miss returns before its store \
             lands (in a task of its own): after each cached call, `db.settle()` waits for it, \
             untimed, so that it does not share the two cores with the next call timed.\n\
             - **Mixed workload**: {} tasks on a pool of {} connections, each drawing one of the 12 \
             queries or, at the write ratio, an `UPDATE` of a random row of `tests` (sent through \
             `execute(&db)`, so it invalidates `tests`, which every query reads); {} s per mode \
             and ratio, in {} segments, the modes in alternating order.\n\
             - **Invalidation**: per size, a database identity of its own whose entries are filled \
             through the engine with distinct primary-key reads of `tests` (no database); the \
             memory backend gets one cache per size, Redis one backend for all (the same \
             connections for every size, every entry in the same Redis). Then \
             `invalidate([\"tests\"])` timed {} times per size, the sizes in turn.\n\
             - **Memory per entry**: the memory backend's weighted size over its entry count (what \
             its byte bound counts), and the growth of the process's resident memory while \
             filling, over the entries (what it really takes).\n\
             - **Overhead**: a primary-key read of a row never cached before (a plain miss, no \
             invalidation) and a one-row `UPDATE`, each through the adapter and directly, in \
             alternating order, {} pairs each.\n",
            s.warmup_rounds,
            s.rounds,
            crate::throughput::TASKS,
            crate::db::POOL_SIZE,
            s.throughput_seconds,
            crate::throughput::SEGMENTS,
            s.invalidation_samples,
            s.overhead_iterations,
        );
        md
    }

    fn markdown_queries(&self, md: &mut String) {
        let backends = self.backend_names();
        let _ = writeln!(md, "## The 12 queries\n");
        let _ = writeln!(
            md,
            "Median (p99) latency in µs. *cold/direct*: how much slower a miss is than the \
             database alone; *direct/hot*: how much faster a hit is.\n"
        );
        for l in &self.latency {
            let _ = writeln!(md, "### {}\n", l.database);
            for o in &l.overall {
                let _ = writeln!(
                    md,
                    "- **{}**: {} slower then {} faster (django-cachalot's summary: mean of the \
                     medians); per-query medians: {} and {}.",
                    o.backend,
                    times(o.cold_over_direct),
                    times(o.direct_over_hot),
                    times(o.median_cold_over_direct),
                    times(o.median_direct_over_hot)
                );
            }
            md.push('\n');
            let mut header = String::from("| Query | direct |");
            let mut rule = String::from("|---|--:|");
            for b in &backends {
                let _ = write!(header, " {b} cold | {b} hot | cold/direct | direct/hot |");
                rule.push_str("--:|--:|--:|--:|");
            }
            let _ = writeln!(md, "{header}\n{rule}");
            for q in &l.queries {
                let _ = write!(
                    md,
                    "| `{}` | {} ({}) |",
                    q.query,
                    us(q.direct.median_us),
                    us(q.direct.p99_us)
                );
                for b in &q.backends {
                    let _ = write!(
                        md,
                        " {} ({}) | {} ({}) | {} | {} |",
                        us(b.cold.median_us),
                        us(b.cold.p99_us),
                        us(b.hot.median_us),
                        us(b.hot.p99_us),
                        times(b.cold_over_direct),
                        times(b.direct_over_hot)
                    );
                }
                md.push('\n');
            }
            md.push('\n');
        }
        let _ = writeln!(md, "### Hits back to back\n");
        let _ = writeln!(
            md,
            "The same hit repeated {} times right after the rounds, median (p99) in µs: what a hit \
             costs with the CPU's caches warm. In the interleaved rounds above, a hit runs right \
             after database work, as in an application, and costs more.\n",
            self.settings.back_to_back_hits
        );
        let mut header = String::from("| Query |");
        let mut rule = String::from("|---|");
        for l in &self.latency {
            for b in &backends {
                let _ = write!(header, " {} {b} |", l.database);
                rule.push_str("--:|");
            }
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for (i, q) in QUERIES.iter().enumerate() {
            let _ = write!(md, "| `{}` |", q.django);
            for l in &self.latency {
                for b in l
                    .queries
                    .get(i)
                    .map(|q| q.backends.as_slice())
                    .unwrap_or_default()
                {
                    let h = b.hot_back_to_back;
                    let _ = write!(md, " {} ({}) |", us(h.median_us), us(h.p99_us));
                }
            }
            md.push('\n');
        }
        md.push('\n');
        let _ = writeln!(md, "The SQL, PostgreSQL's dialect:\n");
        for q in QUERIES.iter().step_by(2) {
            let _ = writeln!(md, "- `{}`: `{}`", q.django, q.postgres);
        }
        md.push('\n');
    }

    fn markdown_throughput(&self, md: &mut String) {
        if self.throughput.is_empty() {
            return;
        }
        let backends = self.backend_names();
        let _ = writeln!(md, "## Mixed workload\n");
        let _ = writeln!(
            md,
            "{} concurrent tasks; operations per second, the speedup over the database alone (the \
             median over the segments of each segment's ratio), the share of reads served from \
             the cache, and the share that skipped it because the statement's entries kept being \
             invalidated before anyone read them (`skip_churning_reads`).\n",
            crate::throughput::TASKS
        );
        let mut header = String::from("| Database | writes | direct ops/s |");
        let mut rule = String::from("|---|--:|--:|");
        for b in &backends {
            let _ = write!(header, " {b} ops/s | speedup | hits | skipped |");
            rule.push_str("--:|--:|--:|--:|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for t in &self.throughput {
            let _ = write!(
                md,
                "| {} | {}% | {:.0} |",
                t.database,
                t.write_ratio * 100.0,
                t.direct_ops
            );
            for b in &t.backends {
                let _ = write!(
                    md,
                    " {:.0} | {} | {:.0}% | {:.0}% |",
                    b.ops,
                    times(b.speedup),
                    b.hit_ratio * 100.0,
                    b.churn_ratio * 100.0
                );
            }
            md.push('\n');
        }
        md.push('\n');
    }

    fn markdown_invalidation(&self, md: &mut String) {
        if self.invalidation.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Invalidation against cache size\n");
        let _ = writeln!(
            md,
            "Latency of `invalidate([\"tests\"])`, median (p99) in µs, with that many entries of \
             `tests` cached. It replaces one version token: no entry is visited.\n"
        );
        let mut header = String::from("| Entries |");
        let mut rule = String::from("|--:|");
        for c in &self.invalidation {
            let _ = write!(header, " {} |", c.backend);
            rule.push_str("--:|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        let sizes: Vec<u64> = self
            .invalidation
            .first()
            .map(|c| c.points.iter().map(|p| p.entries).collect())
            .unwrap_or_default();
        for (i, size) in sizes.iter().enumerate() {
            let _ = write!(md, "| {size} |");
            for c in &self.invalidation {
                if let Some(p) = c.points.get(i) {
                    let _ = write!(
                        md,
                        " {} ({}) |",
                        us(p.latency.median_us),
                        us(p.latency.p99_us)
                    );
                }
            }
            md.push('\n');
        }
        let _ = write!(md, "| change |");
        for c in &self.invalidation {
            let _ = write!(md, " {:+.1}% |", c.change * 100.0);
        }
        md.push_str("\n\n");

        if !self.footprint.is_empty() {
            let _ = writeln!(md, "## Memory per entry (memory backend)\n");
            let _ = writeln!(
                md,
                "An entry here is one `tests` row read by primary key (`Vec<TestRow>` of one row), \
                 as the adapter caches it. The weighted size is what the backend's byte bound \
                 counts; the resident growth is what the process really grew by (below ~100k \
                 entries the allocator mostly reuses memory it already holds, so it reads low).\n"
            );
            let _ = writeln!(
                md,
                "| Entries | weighted bytes/entry | resident bytes/entry |\n|--:|--:|--:|"
            );
            for f in &self.footprint {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.0} |",
                    f.entries, f.weighted_bytes_per_entry, f.rss_bytes_per_entry
                );
            }
            md.push('\n');
        }
    }

    fn markdown_overhead(&self, md: &mut String) {
        if self.overhead.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "## The adapter's own cost (PostgreSQL, memory backend)\n"
        );
        let _ = writeln!(
            md,
            "| Path | direct median (p99) µs | adapter median (p99) µs | ratio of medians | ratio of means |\n|---|--:|--:|--:|--:|"
        );
        for c in &self.overhead {
            let _ = writeln!(
                md,
                "| {} | {} ({}) | {} ({}) | {} | {} |",
                c.what,
                us(c.direct.median_us),
                us(c.direct.p99_us),
                us(c.cached.median_us),
                us(c.cached.p99_us),
                times(c.ratio),
                times(c.mean_ratio)
            );
        }
        md.push('\n');
    }
}

/// Prints one database's query results.
pub fn print_latency(l: &DbLatency) {
    println!(
        "  {:<46} {:>9}  backend cold/hot µs and ratios",
        "query", "direct µs"
    );
    for q in &l.queries {
        let mut line = format!("  {:<46} {:>9}", q.query, us(q.direct.median_us));
        for b in &q.backends {
            let _ = write!(
                line,
                "  {} {}/{} ({} slower, {} faster)",
                b.backend,
                us(b.cold.median_us),
                us(b.hot.median_us),
                times(b.cold_over_direct),
                times(b.direct_over_hot)
            );
        }
        println!("{line}");
    }
    for o in &l.overall {
        println!(
            "  {} overall: {} slower then {} faster",
            o.backend,
            times(o.cold_over_direct),
            times(o.direct_over_hot)
        );
    }
}

/// Prints one database's mixed-workload results.
pub fn print_throughput(results: &[Throughput]) {
    for t in results {
        let mut line = format!(
            "  writes {:>4.0}%: direct {:>8.0} ops/s",
            t.write_ratio * 100.0,
            t.direct_ops
        );
        for b in &t.backends {
            let _ = write!(
                line,
                "  {} {:>8.0} ops/s ({}, {:.0}% hits, {:.0}% skipped)",
                b.backend,
                b.ops,
                times(b.speedup),
                b.hit_ratio * 100.0,
                b.churn_ratio * 100.0
            );
        }
        println!("{line}");
    }
}

/// Prints the adapter's overhead.
pub fn print_overhead(results: &[Comparison]) {
    for c in results {
        println!(
            "  {}: direct {} µs, adapter {} µs: {}",
            c.what,
            us(c.direct.median_us),
            us(c.cached.median_us),
            times(c.ratio)
        );
    }
}

/// Prints the invalidation curves and the memory footprint.
pub fn print_invalidation(curves: &[Curve], footprints: &[Footprint]) {
    for c in curves {
        let points: Vec<String> = c
            .points
            .iter()
            .map(|p| format!("{}: {} µs", p.entries, us(p.latency.median_us)))
            .collect();
        println!(
            "  {}: {} ({:+.1}%)",
            c.backend,
            points.join(", "),
            c.change * 100.0
        );
    }
    for f in footprints {
        println!(
            "  memory, {} entries: {:.0} weighted bytes/entry, {:.0} resident bytes/entry",
            f.entries, f.weighted_bytes_per_entry, f.rss_bytes_per_entry
        );
    }
}

/// Prints the targets.
pub fn print_targets(targets: &[Target]) {
    println!("targets:");
    for t in targets {
        println!(
            "  [{}] {}: {}",
            met(t.met).trim_matches('*'),
            t.goal,
            t.measured
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_767_225_600 + 3_660), "2026-01-01 01:01 UTC");
    }
}
