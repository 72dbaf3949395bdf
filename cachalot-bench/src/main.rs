//! `cachalot-bench`: django-cachalot's benchmark on cachalot for SQLx, and more.
//!
//! ```text
//! cargo run --release -p cachalot-bench [--features redis] -- [--quick] [--out DIR] [--db LIST]
//! ```
//!
//! On SQLite (a temporary file), PostgreSQL and MariaDB, with the memory backend (and Redis with
//! the `redis` feature), it measures:
//! - the 12 queries of django-cachalot's benchmark, directly, cold (a miss) and hot (a hit),
//!   interleaved in one run;
//! - a mixed workload of 8 concurrent tasks at 0%, 1%, 10% and 50% writes;
//! - the adapter's own cost on a miss and on an uncached write (PostgreSQL);
//! - invalidation latency with 1k to 1M entries cached, and the memory an entry takes.
//!
//! The full run writes `docs/benchmarks.{md,json,svg}`; `--quick` runs every path with few
//! iterations in seconds and writes nothing unless `--out` is given. A database that does not
//! answer is skipped with a printed line, or fails the run when `CACHALOT_REQUIRE_SERVICES=1`.
//! Any error (a wrong result, a hit that should be a miss, a failed query) exits non-zero.

mod backends;
mod chart;
mod dataset;
mod db;
mod invalidation;
mod latency;
mod overhead;
mod profile;
mod report;
mod sample;
mod throughput;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sqlx::Executor;

use crate::backends::Backend;
use crate::dataset::{Dataset, Rng, SEED};
use crate::db::{BenchDb, Fixture};
use crate::report::{Machine, Report, Settings};

/// Every error of the benchmark, with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// A result of the benchmark.
pub type Result<T> = std::result::Result<T, Error>;

/// The capacity of the memory backend for the query benchmarks.
const MEMORY_BYTES: u64 = 256 * 1024 * 1024;
/// The capacity of the memory backends of the invalidation benchmark (room for 1M entries).
const MEMORY_BYTES_LARGE: u64 = 8 * 1024 * 1024 * 1024;

/// The command line.
#[derive(Debug, Clone)]
struct Args {
    quick: bool,
    rounds: Option<usize>,
    seconds: Option<f64>,
    profile: Option<profile::Profile>,
    sweep: Option<usize>,
    writes: Option<f64>,
    out: Option<PathBuf>,
    databases: Vec<String>,
}

const USAGE: &str = "usage: cachalot-bench [--quick] [--out DIR] [--db sqlite,postgres,mariadb]

  --quick    every path with few iterations, in seconds; writes nothing unless --out is given
  --rounds N recorded rounds of the 12 queries (default: 5 quick, 300 full)
  --seconds S
             seconds per mode and write ratio of the mixed workload (default: 0.2 quick, 4 full),
             or of the --profile loop (default: 10)
  --profile [redis-]PATH
             instead of the benchmark, run only PATH (through the memory backend, or Redis) on
             the first database of --db, for perf record or valgrind; writes nothing. PATH is
             hit, cold-hit, hit-after-direct, miss, direct, write, write-direct, point-miss,
             point-direct, point-uncached, overhead, mixed or mixed-direct
  --sweep BYTES
             what cold-hit sweeps before each hit (default: 64 MiB; under valgrind, a little
             more than its simulated last-level cache)
  --writes R the share of writes of the mixed loops, from 0 to 1 (default: 0.5)
  --out DIR  where benchmarks.{md,json,svg} go (default for a full run: the workspace's docs/)
  --db LIST  only these databases (default: all three)

Servers: DATABASE_URL_PG, DATABASE_URL_MYSQL, REDIS_URL (with --features redis).
CACHALOT_REQUIRE_SERVICES=1 fails instead of skipping a server that does not answer.";

/// The number following `flag` on the command line.
fn number<T: std::str::FromStr>(
    flag: &str,
    value: Option<String>,
) -> std::result::Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a number"))?;
    value
        .parse()
        .map_err(|_| format!("{flag}: not a number: {value}"))
}

impl Args {
    fn parse() -> std::result::Result<Args, String> {
        let mut args = Args {
            quick: false,
            rounds: None,
            seconds: None,
            profile: None,
            sweep: None,
            writes: None,
            out: None,
            databases: vec!["sqlite".into(), "postgres".into(), "mariadb".into()],
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => args.quick = true,
                "--rounds" => args.rounds = Some(number(&arg, it.next())?),
                "--seconds" => args.seconds = Some(number(&arg, it.next())?),
                "--sweep" => args.sweep = Some(number(&arg, it.next())?),
                "--writes" => {
                    let share: f64 = number(&arg, it.next())?;
                    if !(0.0..=1.0).contains(&share) {
                        return Err(format!("--writes: {share} is not between 0 and 1"));
                    }
                    args.writes = Some(share);
                }
                "--profile" => {
                    let what = it.next().ok_or("--profile needs a path")?;
                    args.profile = Some(what.parse()?);
                }
                "--out" => args.out = Some(it.next().ok_or("--out needs a directory")?.into()),
                "--db" => {
                    let list = it.next().ok_or("--db needs a list")?;
                    args.databases = list.split(',').map(|s| s.trim().to_lowercase()).collect();
                    if let Some(bad) = args
                        .databases
                        .iter()
                        .find(|d| !["sqlite", "postgres", "mariadb"].contains(&d.as_str()))
                    {
                        return Err(format!("unknown database `{bad}`"));
                    }
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if !args.quick && args.out.is_none() && args.profile.is_none() {
            args.out = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs"));
        }
        Ok(args)
    }

    fn wants(&self, database: &str) -> bool {
        self.databases.iter().any(|d| d == database)
    }
}

/// How much of everything: the quick mode's or the full run's.
fn settings(quick: bool) -> Settings {
    if quick {
        Settings {
            mode: "quick",
            warmup_rounds: 2,
            rounds: 5,
            back_to_back_hits: 20,
            write_ratios: vec![0.0, 0.01, 0.1, 0.5],
            throughput_seconds: 0.2,
            invalidation_sizes: vec![1_000, 10_000],
            invalidation_samples: 200,
            overhead_iterations: 40,
        }
    } else {
        Settings {
            mode: "full",
            warmup_rounds: 20,
            rounds: 300,
            back_to_back_hits: 2_000,
            write_ratios: vec![0.0, 0.01, 0.1, 0.5],
            throughput_seconds: 8.0,
            invalidation_sizes: vec![1_000, 10_000, 100_000, 1_000_000],
            invalidation_samples: 20_000,
            overhead_iterations: 2_000,
        }
    }
}

/// Whether an unavailable server fails the run.
fn services_required() -> bool {
    std::env::var("CACHALOT_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips an unavailable server with a printed line, or fails when servers are required.
fn unavailable(report: &mut Report, what: &str, reason: &str) -> Result<()> {
    if services_required() {
        return Err(format!(
            "{what} is required (CACHALOT_REQUIRE_SERVICES=1) but unavailable: {reason}"
        )
        .into());
    }
    println!("skipped: {what} unavailable: {reason}");
    report.skipped.push(format!("{what}: {reason}"));
    Ok(())
}

/// What every database's benchmark shares.
struct Context {
    args: Args,
    settings: Settings,
    data: Dataset,
    rng: Rng,
    report: Report,
    /// Whether Redis answered.
    redis: bool,
}

impl Context {
    /// Fresh caches for one database: memory, and Redis if it answered.
    async fn backends(&self, database: &str) -> Result<Vec<Backend>> {
        let mut backends = vec![backends::memory(MEMORY_BYTES)?];
        if self.redis {
            backends.push(redis_backend(&format!("{database}.queries")).await?);
        }
        Ok(backends)
    }

    /// Runs everything measured on one database, then drops its data, error or not.
    async fn database<DB>(&mut self, fixture: Fixture<DB>) -> Result<()>
    where
        DB: BenchDb,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        let outcome = self.measure(&fixture.pool).await;
        let cleaned = fixture.cleanup().await;
        outcome.and(cleaned)
    }

    /// Seeds the dataset, then measures the queries, the mixed workload and (PostgreSQL)
    /// the adapter's overhead.
    async fn measure<DB>(&mut self, pool: &sqlx::Pool<DB>) -> Result<()>
    where
        DB: BenchDb,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        let s = self.settings.clone();
        println!("{}: seeding the dataset", DB::LABEL);
        DB::seed(pool, &self.data).await?;
        let version = DB::version(pool).await?;
        self.report
            .machine
            .versions
            .push((DB::LABEL.into(), version));

        println!("{}: the 12 queries, {} rounds", DB::LABEL, s.rounds);
        let backends = self.backends(DB::LABEL).await?;
        let rounds = latency::Rounds {
            warmup: s.warmup_rounds,
            measured: s.rounds,
            back_to_back: s.back_to_back_hits,
        };
        let latency = latency::run(pool, &backends, rounds, &mut self.rng).await?;
        report::print_latency(&latency);
        self.report.latency.push(latency);

        println!(
            "{}: mixed workload, {} tasks, {}s per mode and write ratio",
            DB::LABEL,
            throughput::TASKS,
            s.throughput_seconds
        );
        let duration = Duration::from_secs_f64(s.throughput_seconds);
        let seed = self.rng.next_u64();
        let throughput = throughput::run(pool, &backends, &s.write_ratios, duration, seed).await?;
        report::print_throughput(&throughput);
        self.report.throughput.extend(throughput);

        if DB::POSTGRES {
            println!(
                "{}: the adapter's overhead, {} pairs",
                DB::LABEL,
                s.overhead_iterations
            );
            let fresh = backends::memory(MEMORY_BYTES)?;
            let overhead = overhead::run(pool, &fresh, s.overhead_iterations).await?;
            report::print_overhead(&overhead);
            self.report.overhead = overhead;
        }
        Ok(())
    }
}

/// A Redis-backed cache under this run's prefix.
#[cfg(feature = "redis")]
async fn redis_backend(name: &str) -> Result<Backend> {
    let prefix = format!("{}.{name}", db::run_name());
    backends::redis(&prefix).await?.map_err(Into::into)
}

/// Without the `redis` feature there is no Redis backend.
#[cfg(not(feature = "redis"))]
async fn redis_backend(_name: &str) -> Result<Backend> {
    Err("built without the `redis` feature".into())
}

/// Whether Redis answers (always `false` without the `redis` feature).
async fn probe_redis(report: &mut Report) -> Result<bool> {
    #[cfg(feature = "redis")]
    {
        match backends::redis(&format!("{}.probe", db::run_name())).await? {
            Ok(_) => {
                backends::redis_cleanup("cachalot_bench_", true).await?;
                let version = backends::redis_version().await?;
                report.machine.versions.push(("Redis".into(), version));
                Ok(true)
            }
            Err(reason) => {
                unavailable(report, "Redis", &reason)?;
                Ok(false)
            }
        }
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = report;
        println!("Redis: not measured (build with --features redis)");
        Ok(false)
    }
}

/// The invalidation curves (every backend) and the memory footprint.
async fn invalidation(ctx: &mut Context) -> Result<()> {
    let s = ctx.settings.clone();
    println!(
        "invalidation: {} samples at {:?} entries",
        s.invalidation_samples, s.invalidation_sizes
    );
    let (curve, footprints) = invalidation::run(
        "memory",
        &s.invalidation_sizes,
        s.invalidation_samples,
        |_| async { backends::memory(MEMORY_BYTES_LARGE) },
    )
    .await?;
    ctx.report.invalidation.push(curve);
    ctx.report.footprint = footprints;
    if ctx.redis {
        let shared = redis_backend("invalidation").await?;
        let (curve, _) = invalidation::run(
            "redis",
            &s.invalidation_sizes,
            s.invalidation_samples,
            |_| async { Ok(shared.clone()) },
        )
        .await?;
        ctx.report.invalidation.push(curve);
    }
    report::print_invalidation(&ctx.report.invalidation, &ctx.report.footprint);
    Ok(())
}

/// The whole run: the measurements, the targets, the files; this run's Redis keys are deleted
/// whatever happens.
async fn run(args: Args) -> Result<()> {
    let mut settings = settings(args.quick);
    if let Some(rounds) = args.rounds {
        settings.rounds = rounds;
    }
    if let Some(seconds) = args.seconds {
        settings.throughput_seconds = seconds;
    }
    let mut report = Report::new(Machine::probe(), settings.clone());
    let redis = probe_redis(&mut report).await?;
    let mut ctx = Context {
        args,
        settings,
        data: Dataset::generate(),
        rng: Rng::new(SEED),
        report,
        redis,
    };
    let outcome = run_all(&mut ctx).await;
    #[cfg(feature = "redis")]
    if ctx.redis {
        backends::redis_cleanup(&format!("{}.", db::run_name()), false).await?;
    }
    outcome?;

    if ctx.args.profile.is_some() {
        return Ok(());
    }
    ctx.report.finish();
    report::print_targets(&ctx.report.targets);
    if let Some(out) = &ctx.args.out {
        ctx.report.write(out)?;
        let out = out.canonicalize().unwrap_or_else(|_| out.clone());
        println!("wrote {}/benchmarks.{{md,json,svg}}", out.display());
    }
    Ok(())
}

/// Every database in turn (or the `--profile` loop), then the invalidation benchmark.
async fn run_all(ctx: &mut Context) -> Result<()> {
    if let Some(path) = ctx.args.profile {
        let options = profile::Options {
            duration: ctx
                .args
                .seconds
                .map_or(profile::DURATION, Duration::from_secs_f64),
            sweep: ctx.args.sweep.unwrap_or(profile::SWEEP_BYTES),
            writes: ctx.args.writes.unwrap_or(0.5),
        };
        return match ctx.args.databases.first().map(String::as_str) {
            Some("sqlite") => profile::run(db::sqlite().await?, &ctx.data, path, options).await,
            Some("postgres") => {
                profile::run(db::postgres().await??, &ctx.data, path, options).await
            }
            _ => profile::run(db::mariadb().await??, &ctx.data, path, options).await,
        };
    }
    if ctx.args.wants("sqlite") {
        let fixture = db::sqlite().await?;
        ctx.database(fixture).await?;
    }
    if ctx.args.wants("postgres") {
        match db::postgres().await? {
            Ok(fixture) => ctx.database(fixture).await?,
            Err(reason) => unavailable(&mut ctx.report, "PostgreSQL", &reason)?,
        }
    }
    if ctx.args.wants("mariadb") {
        match db::mariadb().await? {
            Ok(fixture) => ctx.database(fixture).await?,
            Err(reason) => unavailable(&mut ctx.report, "MariaDB", &reason)?,
        }
    }
    invalidation(ctx).await
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("cachalot-bench: {message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cachalot-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On a worker thread, which drives the I/O it waits for, rather than on the main thread.
    match runtime.block_on(async { tokio::spawn(run(args)).await }) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("cachalot-bench: error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cachalot-bench: the benchmark panicked: {e}");
            ExitCode::FAILURE
        }
    }
}
