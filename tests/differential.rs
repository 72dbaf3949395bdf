//! Randomized differential test on PostgreSQL through `CachedPool`.
//!
//! Several tasks run random interleavings of cached reads and writes (autocommit statements,
//! `INSERT ... RETURNING` through the cached API, transactions with savepoints, commits and
//! rollbacks) against three small tables. Every cached read is framed by two direct reads of
//! the same SQL and binds on the raw pool (or on the transaction's own connection for reads
//! inside a transaction), and must equal one of them.
//!
//! That check is exact when at most one write to a table the query reads may have committed
//! between the start of the first direct read and the end of the second one (counted with
//! per-table-set counters of writes started and finished): the database then only had two
//! states in that window. With several such writes an intermediate state is legitimate, so a
//! cached result matching neither frame is counted as inconclusive, not as a mismatch.
//!
//! - `CACHALOT_DIFF_SEED`: the seed (default: from the clock). It fixes each task's sequence of
//!   operations; the interleaving of the tasks is up to the scheduler.
//! - `CACHALOT_DIFF_OPS`: operations in total across the tasks (default 20,000 with the memory
//!   backend, 5,000 through Redis).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../cachalot-core/tests/redis_support/mod.rs"]
mod redis_support;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cachalot::{Cachalot, CacheRow, CachedPool, CachedTransaction, QueryAs, QueryScalar};
use cachalot_core::backend::RedisBackend;
use sqlx::postgres::PgRow;
use sqlx::{Executor, FromRow, Postgres};

const TASKS: u64 = 5;
const DEFAULT_OPS: u64 = 20_000;
/// Through Redis, where every cached operation is also a round trip.
const REDIS_OPS: u64 = 5_000;
/// Account ids used by reads and writes; ids above `SEEDED_ACCOUNTS` start absent.
const MAX_ACCOUNT: i64 = 48;
const SEEDED_ACCOUNTS: i64 = 40;
/// Owners 1..=8 always exist; 9 and 10 come and go.
const MAX_OWNER: i64 = 10;
/// Mismatch or error reports kept in full.
const KEEP: usize = 10;
/// The run stops early after this many mismatches or errors.
const GIVE_UP: u64 = 50;

const ACCOUNTS: u8 = 1;
const OWNERS: u8 = 2;
const LEDGER: u8 = 4;

// ---------------------------------------------------------------------------------------------
// Seeded generator

/// splitmix64: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + i64::try_from(self.below(u64::try_from(hi - lo + 1).unwrap())).unwrap()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }
}

// ---------------------------------------------------------------------------------------------
// Rows and read shapes

#[derive(sqlx::FromRow, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Account {
    id: i64,
    owner: i64,
    balance: i64,
}

#[derive(sqlx::FromRow, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Owner {
    id: i64,
    name: String,
}

#[derive(sqlx::FromRow, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Holding {
    id: i64,
    name: String,
    balance: i64,
}

#[derive(sqlx::FromRow, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Summary {
    owner: i64,
    accounts: i64,
    total: i64,
}

/// What a read returns, whatever its row type.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Accounts(Vec<Account>),
    Owners(Vec<Owner>),
    Holdings(Vec<Holding>),
    Summaries(Vec<Summary>),
    Count(i64),
    Max(Option<i64>),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Accounts,
    Owners,
    Holdings,
    Summaries,
    /// `query_scalar::<i64>` with `fetch_one`.
    Count,
    /// `query_scalar::<Option<i64>>` with `fetch_one`.
    Max,
}

struct Shape {
    name: &'static str,
    sql: &'static str,
    kind: Kind,
    /// `fetch_optional` rather than `fetch_all` (row kinds only).
    first: bool,
    /// The tables read.
    reads: u8,
    binds: fn(&mut Rng) -> Vec<i64>,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "point",
        sql: "SELECT id, owner, balance FROM accounts WHERE id = $1",
        kind: Kind::Accounts,
        first: true,
        reads: ACCOUNTS,
        binds: |r| vec![r.range(1, MAX_ACCOUNT)],
    },
    Shape {
        name: "range",
        sql: "SELECT id, owner, balance FROM accounts WHERE id >= $1 AND id < $2 ORDER BY id",
        kind: Kind::Accounts,
        first: false,
        reads: ACCOUNTS,
        binds: |r| {
            let lo = 1 + 8 * r.range(0, 5);
            vec![lo, lo + r.pick(&[8, 16])]
        },
    },
    Shape {
        name: "count_by_owner",
        sql: "SELECT count(*) FROM accounts WHERE owner = $1",
        kind: Kind::Count,
        first: false,
        reads: ACCOUNTS,
        binds: |r| vec![r.range(1, MAX_OWNER)],
    },
    Shape {
        name: "count_all",
        sql: "SELECT count(*) FROM accounts",
        kind: Kind::Count,
        first: false,
        reads: ACCOUNTS,
        binds: |_| vec![],
    },
    Shape {
        name: "join",
        sql: "SELECT a.id, o.name, a.balance FROM accounts a JOIN owners o ON o.id = a.owner \
              WHERE o.id = $1 ORDER BY a.id",
        kind: Kind::Holdings,
        first: false,
        reads: ACCOUNTS | OWNERS,
        binds: |r| vec![r.range(1, MAX_OWNER)],
    },
    Shape {
        name: "max",
        sql: "SELECT max(balance) FROM accounts WHERE owner = $1",
        kind: Kind::Max,
        first: false,
        reads: ACCOUNTS,
        binds: |r| vec![r.range(1, MAX_OWNER)],
    },
    Shape {
        name: "subquery",
        sql: "SELECT id, name FROM owners WHERE id IN \
              (SELECT owner FROM accounts WHERE balance > $1) ORDER BY id",
        kind: Kind::Owners,
        first: false,
        reads: ACCOUNTS | OWNERS,
        binds: |r| vec![r.pick(&[0, 100, 200, 300, 400])],
    },
    Shape {
        name: "owner",
        sql: "SELECT id, name FROM owners WHERE id = $1",
        kind: Kind::Owners,
        first: true,
        reads: OWNERS,
        binds: |r| vec![r.range(1, MAX_OWNER)],
    },
    Shape {
        name: "owners_all",
        sql: "SELECT id, name FROM owners ORDER BY id",
        kind: Kind::Owners,
        first: false,
        reads: OWNERS,
        binds: |_| vec![],
    },
    Shape {
        name: "ledger_sum",
        sql: "SELECT coalesce(sum(amount), 0)::bigint FROM ledger WHERE account = $1",
        kind: Kind::Count,
        first: false,
        reads: LEDGER,
        binds: |r| vec![r.range(1, 12)],
    },
    Shape {
        name: "summary",
        sql: "SELECT o.id AS owner, count(a.id) AS accounts, \
              coalesce(sum(a.balance), 0)::bigint AS total \
              FROM owners o LEFT JOIN accounts a ON a.owner = o.id GROUP BY o.id ORDER BY o.id",
        kind: Kind::Summaries,
        first: false,
        reads: ACCOUNTS | OWNERS,
        binds: |_| vec![],
    },
    Shape {
        name: "cte",
        sql: "WITH rich AS (SELECT id, owner, balance FROM accounts WHERE balance >= $1) \
              SELECT id, owner, balance FROM rich ORDER BY balance DESC, id LIMIT 5",
        kind: Kind::Accounts,
        first: false,
        reads: ACCOUNTS,
        binds: |r| vec![r.pick(&[100, 200, 300])],
    },
    Shape {
        name: "exists3",
        sql: "SELECT count(*) FROM owners o WHERE EXISTS (SELECT 1 FROM ledger l \
              JOIN accounts a ON a.id = l.account WHERE a.owner = o.id AND l.amount > $1)",
        kind: Kind::Count,
        first: false,
        reads: ACCOUNTS | OWNERS | LEDGER,
        binds: |r| vec![r.pick(&[0, 20])],
    },
];

// ---------------------------------------------------------------------------------------------
// Writes

#[derive(Clone, Debug)]
enum Bind {
    I(i64),
    S(String),
}

struct Write {
    name: &'static str,
    sql: &'static str,
    /// The tables written.
    writes: u8,
    binds: Vec<Bind>,
    /// Sent through the cached API (`query_as` + `fetch_all`): `... RETURNING`.
    returning: bool,
}

fn pick_write(r: &mut Rng) -> Write {
    use Bind::{I, S};
    let id = r.range(1, MAX_ACCOUNT);
    let owner = r.range(1, MAX_OWNER);
    let w = |name, sql, writes, binds| Write {
        name,
        sql,
        writes,
        binds,
        returning: false,
    };
    match r.below(100) {
        0..=24 => w(
            "credit",
            "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
            ACCOUNTS,
            vec![I(r.range(-50, 50)), I(id)],
        ),
        25..=32 => w(
            "move",
            "UPDATE accounts SET owner = $1 WHERE id = $2",
            ACCOUNTS,
            vec![I(owner), I(id)],
        ),
        33..=41 => w(
            "open",
            "INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
            ACCOUNTS,
            vec![I(id), I(owner), I(r.range(0, 400))],
        ),
        42..=48 => w(
            "upsert",
            "INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, balance = EXCLUDED.balance",
            ACCOUNTS,
            vec![I(id), I(owner), I(r.range(0, 400))],
        ),
        49..=56 => w(
            "close",
            "DELETE FROM accounts WHERE id = $1",
            ACCOUNTS,
            vec![I(id)],
        ),
        57..=61 => w(
            "bulk",
            "UPDATE accounts SET balance = balance + 1 WHERE owner = $1",
            ACCOUNTS,
            vec![I(owner)],
        ),
        62..=65 => w(
            "subwrite",
            "UPDATE accounts SET balance = balance + 5 \
             WHERE owner IN (SELECT id FROM owners WHERE name LIKE $1)",
            ACCOUNTS,
            vec![S(format!("{}%", r.pick(&["a", "b", "c"])))],
        ),
        66..=71 => Write {
            returning: true,
            ..w(
                "returning",
                "UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING balance",
                ACCOUNTS,
                vec![I(r.range(1, 20)), I(id)],
            )
        },
        72..=83 => w(
            "log",
            "INSERT INTO ledger (account, amount) VALUES ($1, $2)",
            LEDGER,
            vec![I(r.range(1, 12)), I(r.range(-30, 30))],
        ),
        84..=87 => w(
            "trim",
            "DELETE FROM ledger WHERE account = $1",
            LEDGER,
            vec![I(r.range(1, 12))],
        ),
        88..=94 => w(
            "rename",
            "UPDATE owners SET name = $1 WHERE id = $2",
            OWNERS,
            vec![S(name(r)), I(owner)],
        ),
        95..=97 => w(
            "hire",
            "INSERT INTO owners (id, name) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
            OWNERS,
            vec![I(r.range(9, MAX_OWNER)), S(name(r))],
        ),
        _ => w(
            "fire",
            "DELETE FROM owners WHERE id = $1",
            OWNERS,
            vec![I(r.range(9, MAX_OWNER))],
        ),
    }
}

fn name(r: &mut Rng) -> String {
    format!("{}{}", r.pick(&["ann", "bob", "cyd", "dee"]), r.range(0, 3))
}

// ---------------------------------------------------------------------------------------------
// Running reads and writes

/// Where a cached read (or a write through the cached API) goes.
enum Cached<'a> {
    Pool(&'a CachedPool<Postgres>),
    Tx(&'a mut CachedTransaction<'static, Postgres>),
}

impl Cached<'_> {
    fn query_as<O>(&mut self, sql: &'static str) -> QueryAs<'_, Postgres, O> {
        match self {
            Cached::Pool(db) => db.query_as(sql),
            Cached::Tx(tx) => tx.query_as(sql),
        }
    }

    fn query_scalar<O>(&mut self, sql: &'static str) -> QueryScalar<'_, Postgres, O> {
        match self {
            Cached::Pool(db) => db.query_scalar(sql),
            Cached::Tx(tx) => tx.query_scalar(sql),
        }
    }
}

async fn cached_rows<O>(
    mut query: QueryAs<'_, Postgres, O>,
    binds: &[i64],
    first: bool,
) -> Result<Vec<O>, sqlx::Error>
where
    O: for<'r> FromRow<'r, PgRow> + CacheRow + Unpin,
{
    for &b in binds {
        query = query.bind(b);
    }
    if first {
        Ok(query.fetch_optional().await?.into_iter().collect())
    } else {
        query.fetch_all().await
    }
}

async fn cached_scalar<T>(
    mut query: QueryScalar<'_, Postgres, T>,
    binds: &[i64],
) -> Result<T, sqlx::Error>
where
    (T,): for<'r> FromRow<'r, PgRow> + CacheRow,
    T: Unpin,
{
    for &b in binds {
        query = query.bind(b);
    }
    query.fetch_one().await
}

async fn fetch_cached(
    via: &mut Cached<'_>,
    shape: &Shape,
    binds: &[i64],
) -> Result<Outcome, sqlx::Error> {
    let (sql, first) = (shape.sql, shape.first);
    Ok(match shape.kind {
        Kind::Accounts => Outcome::Accounts(cached_rows(via.query_as(sql), binds, first).await?),
        Kind::Owners => Outcome::Owners(cached_rows(via.query_as(sql), binds, first).await?),
        Kind::Holdings => Outcome::Holdings(cached_rows(via.query_as(sql), binds, first).await?),
        Kind::Summaries => Outcome::Summaries(cached_rows(via.query_as(sql), binds, first).await?),
        Kind::Count => Outcome::Count(cached_scalar(via.query_scalar(sql), binds).await?),
        Kind::Max => Outcome::Max(cached_scalar(via.query_scalar(sql), binds).await?),
    })
}

async fn direct_rows<'c, O, E>(
    executor: E,
    sql: &'static str,
    binds: &[i64],
    first: bool,
) -> Result<Vec<O>, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
    O: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut query = sqlx::query_as::<Postgres, O>(sql);
    for &b in binds {
        query = query.bind(b);
    }
    if first {
        Ok(query.fetch_optional(executor).await?.into_iter().collect())
    } else {
        query.fetch_all(executor).await
    }
}

async fn direct_scalar<'c, T, E>(
    executor: E,
    sql: &'static str,
    binds: &[i64],
) -> Result<T, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
    (T,): for<'r> FromRow<'r, PgRow>,
    T: Send + Unpin,
{
    let mut query = sqlx::query_scalar::<Postgres, T>(sql);
    for &b in binds {
        query = query.bind(b);
    }
    query.fetch_one(executor).await
}

/// The same read straight on `executor`: never cached.
async fn fetch_direct<'c, E>(
    executor: E,
    shape: &Shape,
    binds: &[i64],
) -> Result<Outcome, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    let (sql, first) = (shape.sql, shape.first);
    Ok(match shape.kind {
        Kind::Accounts => Outcome::Accounts(direct_rows(executor, sql, binds, first).await?),
        Kind::Owners => Outcome::Owners(direct_rows(executor, sql, binds, first).await?),
        Kind::Holdings => Outcome::Holdings(direct_rows(executor, sql, binds, first).await?),
        Kind::Summaries => Outcome::Summaries(direct_rows(executor, sql, binds, first).await?),
        Kind::Count => Outcome::Count(direct_scalar(executor, sql, binds).await?),
        Kind::Max => Outcome::Max(direct_scalar(executor, sql, binds).await?),
    })
}

async fn execute_plain<'c, E>(executor: E, write: &Write) -> Result<(), sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    let mut query = sqlx::query(write.sql);
    for bind in &write.binds {
        query = match bind {
            Bind::I(v) => query.bind(*v),
            Bind::S(v) => query.bind(v.clone()),
        };
    }
    query.execute(executor).await.map(drop)
}

async fn execute_returning(via: &mut Cached<'_>, write: &Write) -> Result<(), sqlx::Error> {
    let mut query = via.query_as::<(i64,)>(write.sql);
    for bind in &write.binds {
        query = match bind {
            Bind::I(v) => query.bind(*v),
            Bind::S(v) => query.bind(v.clone()),
        };
    }
    query.fetch_all().await.map(drop)
}

// ---------------------------------------------------------------------------------------------
// Shared bookkeeping

/// Writes started and finished, per set of tables written (indexed by the bit mask).
#[derive(Default)]
struct WriteClock {
    started: [AtomicU64; 8],
    finished: [AtomicU64; 8],
}

impl WriteClock {
    fn sum(counters: &[AtomicU64; 8], reads: u8) -> u64 {
        (1..8u8)
            .filter(|mask| mask & reads != 0)
            .map(|mask| counters[usize::from(mask)].load(Ordering::SeqCst))
            .sum()
    }

    /// Writes to any of `reads` finished so far (taken before the first frame).
    fn finished(&self, reads: u8) -> u64 {
        Self::sum(&self.finished, reads)
    }

    /// Writes to any of `reads` started so far (taken after the second frame).
    fn started(&self, reads: u8) -> u64 {
        Self::sum(&self.started, reads)
    }

    fn start(&self, writes: u8) {
        self.started[usize::from(writes)].fetch_add(1, Ordering::SeqCst);
    }

    fn finish(&self, writes: u8) {
        self.finished[usize::from(writes)].fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    reads: AtomicU64,
    /// Reads whose window saw at most one write to their tables: checked exactly.
    exact: AtomicU64,
    /// Cached result equal to neither frame, but several writes were in the window.
    inconclusive: AtomicU64,
    /// Frames differing (a write landed between them).
    moving: AtomicU64,
    tx_reads: AtomicU64,
    writes: AtomicU64,
    commits: AtomicU64,
    rollbacks: AtomicU64,
    savepoints: AtomicU64,
    conflicts: AtomicU64,
    mismatches: AtomicU64,
    errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

struct Ctx {
    db: CachedPool<Postgres>,
    seed: u64,
    clock: WriteClock,
    tally: Tally,
    reports: Mutex<Vec<String>>,
    inconclusive_samples: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Ctx {
    fn report(&self, counter: &AtomicU64, text: String) {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut reports = self.reports.lock().unwrap();
        if reports.len() < KEEP {
            reports.push(text);
        }
        let total = get(&self.tally.mismatches) + get(&self.tally.errors);
        if n >= GIVE_UP || total >= GIVE_UP {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    fn error(&self, task: u64, op: u64, what: &str, error: &sqlx::Error) {
        self.report(
            &self.tally.errors,
            format!(
                "ERROR seed={} task={task} op={op}: {what}: {error}",
                self.seed
            ),
        );
    }
}

/// A serialization failure or deadlock: the database's business, tolerated.
fn conflict(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| matches!(&*code, "40P01" | "40001" | "55P03"))
}

// ---------------------------------------------------------------------------------------------
// Operations

/// Where a checked read runs: the pool, or a transaction (frames on its connection).
enum Place<'a> {
    Pool,
    Tx(&'a mut CachedTransaction<'static, Postgres>),
}

/// A read shape (index into `SHAPES`) and its binds.
type Read = (usize, Vec<i64>);

fn pick_read(rng: &mut Rng) -> Read {
    let index = usize::try_from(rng.below(SHAPES.len() as u64)).unwrap();
    (index, (SHAPES[index].binds)(rng))
}

/// Direct read, cached read, direct read; the cached one must equal a frame.
async fn checked_read(
    ctx: &Ctx,
    task: u64,
    op: u64,
    place: Place<'_>,
    (index, binds): &Read,
) -> Result<(), sqlx::Error> {
    let shape = &SHAPES[*index];
    let finished_before = ctx.clock.finished(shape.reads);
    let (before, cached, after, where_) = match place {
        Place::Pool => {
            let before = fetch_direct(ctx.db.inner(), shape, binds).await?;
            let cached = fetch_cached(&mut Cached::Pool(&ctx.db), shape, binds).await?;
            let after = fetch_direct(ctx.db.inner(), shape, binds).await?;
            (before, cached, after, "pool")
        }
        Place::Tx(tx) => {
            let before = fetch_direct(&mut *tx, shape, binds).await?;
            let cached = fetch_cached(&mut Cached::Tx(&mut *tx), shape, binds).await?;
            let after = fetch_direct(&mut *tx, shape, binds).await?;
            (before, cached, after, "transaction")
        }
    };
    let in_window = ctx.clock.started(shape.reads) - finished_before;
    if before != after {
        bump(&ctx.tally.moving);
    }
    if in_window <= 1 {
        bump(&ctx.tally.exact);
    }
    if cached == before || cached == after {
        return Ok(());
    }
    let text = format!(
        "seed={} task={task} op={op} ({where_}) shape={} writes_in_window={in_window}\n  \
         sql:    {}\n  binds:  {binds:?}\n  before: {before:?}\n  cached: {cached:?}\n  \
         after:  {after:?}",
        ctx.seed, shape.name, shape.sql
    );
    if in_window <= 1 {
        ctx.report(&ctx.tally.mismatches, format!("MISMATCH {text}"));
    } else {
        bump(&ctx.tally.inconclusive);
        let mut samples = ctx.inconclusive_samples.lock().unwrap();
        if samples.len() < 3 {
            samples.push(text);
        }
    }
    Ok(())
}

/// One autocommit write through the `CachedPool`.
async fn write(ctx: &Ctx, rng: &mut Rng) -> Result<(), sqlx::Error> {
    let w = pick_write(rng);
    ctx.clock.start(w.writes);
    let result = if w.returning {
        execute_returning(&mut Cached::Pool(&ctx.db), &w).await
    } else {
        execute_plain(&ctx.db, &w).await
    };
    ctx.clock.finish(w.writes);
    bump(&ctx.tally.writes);
    result.map_err(|e| annotate(e, &w))
}

fn annotate(error: sqlx::Error, w: &Write) -> sqlx::Error {
    if conflict(&error) {
        return error;
    }
    sqlx::Error::Protocol(format!(
        "write {} ({}) with {:?} failed: {error}",
        w.name, w.sql, w.binds
    ))
}

/// A transaction: a few writes, maybe a savepoint, maybe checked reads, commit or rollback.
async fn transaction(ctx: &Ctx, rng: &mut Rng, task: u64, op: u64) -> Result<(), sqlx::Error> {
    let mut tx = ctx.db.begin().await?;
    let mut dirty = 0u8;
    if rng.chance(30) {
        // Reads before any write: may be served from and published to the shared cache.
        bump(&ctx.tally.tx_reads);
        checked_read(ctx, task, op, Place::Tx(&mut tx), &pick_read(rng)).await?;
    }
    // A transfer between two accounts, logged, plus a random write or two.
    let (from, to, amount) = (
        rng.range(1, MAX_ACCOUNT),
        rng.range(1, MAX_ACCOUNT),
        rng.range(1, 30),
    );
    let (first, second) = if from <= to { (from, to) } else { (to, from) };
    let sign = if first == from { -1 } else { 1 };
    for (id, delta) in [(first, sign * amount), (second, -sign * amount)] {
        sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
            .bind(delta)
            .bind(id)
            .execute(&mut tx)
            .await?;
    }
    dirty |= ACCOUNTS;
    if rng.chance(50) {
        sqlx::query("INSERT INTO ledger (account, amount) VALUES ($1, $2), ($3, $4)")
            .bind(from % 12 + 1)
            .bind(-amount)
            .bind(to % 12 + 1)
            .bind(amount)
            .execute(&mut tx)
            .await?;
        dirty |= LEDGER;
    }
    for _ in 0..rng.below(2) {
        let w = pick_write(rng);
        dirty |= w.writes;
        if w.returning {
            execute_returning(&mut Cached::Tx(&mut tx), &w).await
        } else {
            execute_plain(&mut tx, &w).await
        }
        .map_err(|e| annotate(e, &w))?;
    }
    if rng.chance(25) {
        bump(&ctx.tally.savepoints);
        let mut savepoint = tx.begin().await?;
        let w = pick_write(rng);
        dirty |= w.writes;
        execute_plain(&mut savepoint, &w)
            .await
            .map_err(|e| annotate(e, &w))?;
        if rng.chance(50) {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
    }
    if rng.chance(50) {
        // Reads after the writes: dirty tables bypass, the others may use the cache.
        bump(&ctx.tally.tx_reads);
        checked_read(ctx, task, op, Place::Tx(&mut tx), &pick_read(rng)).await?;
    }
    if rng.chance(75) {
        ctx.clock.start(dirty);
        let result = tx.commit().await;
        ctx.clock.finish(dirty);
        bump(&ctx.tally.commits);
        result
    } else {
        bump(&ctx.tally.rollbacks);
        tx.rollback().await
    }
}

async fn run_task(ctx: Arc<Ctx>, task: u64, ops: u64) {
    let mut rng = Rng::new(
        ctx.seed
            .wrapping_add(task.wrapping_mul(0xd1b5_4a32_d192_ed03)),
    );
    let mut write_percent = 10;
    let mut last: Option<Read> = None;
    for op in 0..ops {
        if ctx.stop.load(Ordering::SeqCst) {
            return;
        }
        // Phases: quiet ones let hits happen, busy ones race reads against writes.
        if op % 250 == 0 {
            write_percent = rng.pick(&[2, 5, 10, 20, 40]);
        }
        let (what, result) = if rng.chance(write_percent) {
            if rng.chance(12) {
                ("transaction", transaction(&ctx, &mut rng, task, op).await)
            } else {
                ("write", write(&ctx, &mut rng).await)
            }
        } else {
            bump(&ctx.tally.reads);
            // Applications reread what they just read: that is when hits happen.
            let read = match last.take() {
                Some(again) if rng.chance(30) => again,
                _ => pick_read(&mut rng),
            };
            let result = checked_read(&ctx, task, op, Place::Pool, &read).await;
            last = Some(read);
            ("read", result)
        };
        bump(&ctx.tally.ops);
        match result {
            Ok(()) => {}
            Err(e) if conflict(&e) => bump(&ctx.tally.conflicts),
            Err(e) => ctx.error(task, op, what, &e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?} is not a number: {e}")),
    )
}

async fn seed_tables(db: &CachedPool<Postgres>) {
    for sql in [
        "CREATE TABLE owners (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner BIGINT NOT NULL, \
         balance BIGINT NOT NULL)",
        "CREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, account BIGINT NOT NULL, \
         amount BIGINT NOT NULL)",
        "INSERT INTO owners (id, name) SELECT g, (ARRAY['ann','bob','cyd','dee'])[1 + g % 4] \
         || (g % 3)::text FROM generate_series(1, 8) g",
        "INSERT INTO ledger (account, amount) SELECT 1 + g % 12, g % 40 - 10 \
         FROM generate_series(1, 30) g",
    ] {
        sqlx::query(sql).execute(db).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO accounts (id, owner, balance) \
         SELECT g, 1 + g % 8, g * 10 FROM generate_series(1, $1) g",
    )
    .bind(SEEDED_ACCOUNTS)
    .execute(db)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_match_direct_reads_under_concurrent_writes() {
    let Some(fixture) = common::PgFixture::new().await else {
        return;
    };
    let db = CachedPool::new(fixture.pool.clone());
    differential(fixture, db, DEFAULT_OPS).await;
}

/// The same through Redis, whose misses answer before their store lands (the flight holds
/// the rows until then), and whose every operation is a round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_match_direct_reads_under_concurrent_writes_on_redis() {
    let Some(fixture) = common::PgFixture::new().await else {
        return;
    };
    let prefix = redis_support::unique("differential");
    let backend = match RedisBackend::builder(redis_support::redis_url())
        .key_prefix(&prefix)
        .build()
        .await
    {
        Ok(backend) => backend,
        Err(e) => {
            fixture.cleanup().await;
            let _: Option<()> = redis_support::unavailable("Redis", e);
            return;
        }
    };
    let cache = Cachalot::builder().backend(backend).build().unwrap();
    let db = CachedPool::with_cache(fixture.pool.clone(), cache);
    differential(fixture, db, REDIS_OPS).await;
    redis_support::purge(&redis_support::redis_url(), &prefix).await;
}

/// Runs the tasks on `db` (the fixture's pool, cached), `default_ops` operations unless
/// `CACHALOT_DIFF_OPS` says otherwise, and fails on any mismatch.
async fn differential(fixture: common::PgFixture, db: CachedPool<Postgres>, default_ops: u64) {
    let seed = env_u64("CACHALOT_DIFF_SEED").unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        u64::try_from(nanos % u128::from(u64::MAX)).unwrap()
    });
    let ops = env_u64("CACHALOT_DIFF_OPS").unwrap_or(default_ops);
    println!(
        "differential: seed={seed} ops={ops} tasks={TASKS} \
         (rerun with CACHALOT_DIFF_SEED={seed} CACHALOT_DIFF_OPS={ops})"
    );

    seed_tables(&db).await;
    let ctx = Arc::new(Ctx {
        db: db.clone(),
        seed,
        clock: WriteClock::default(),
        tally: Tally::default(),
        reports: Mutex::default(),
        inconclusive_samples: Mutex::default(),
        stop: AtomicBool::new(false),
    });
    let start_stats = db.stats();
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let share = ops / TASKS + u64::from(task < ops % TASKS);
        handles.push(tokio::spawn(run_task(ctx.clone(), task, share)));
    }
    for handle in handles {
        handle
            .await
            .unwrap_or_else(|e| panic!("seed={seed}: a task panicked: {e}"));
    }
    let elapsed = started.elapsed();
    let stats = db.stats();

    for table in ["ledger", "accounts", "owners"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(&db)
            .await
            .unwrap();
    }
    fixture.cleanup().await;

    let t = &ctx.tally;
    let cached_reads = (stats.hits - start_stats.hits)
        + (stats.misses - start_stats.misses)
        + (stats.coalesced - start_stats.coalesced)
        + (stats.bypasses.total() - start_stats.bypasses.total());
    let mut summary = String::new();
    writeln!(
        summary,
        "differential: seed={seed} ops={} in {:.1?} ({:.0} ops/s)",
        get(&t.ops),
        elapsed,
        get(&t.ops) as f64 / elapsed.as_secs_f64()
    )
    .unwrap();
    writeln!(
        summary,
        "  reads: {} pool + {} in transactions; exact-checked {}; frames moved {}; \
         inconclusive {}",
        get(&t.reads),
        get(&t.tx_reads),
        get(&t.exact),
        get(&t.moving),
        get(&t.inconclusive)
    )
    .unwrap();
    writeln!(
        summary,
        "  writes: {} autocommit; transactions {} committed, {} rolled back, {} savepoints; \
         conflicts (deadlocks) {}",
        get(&t.writes),
        get(&t.commits),
        get(&t.rollbacks),
        get(&t.savepoints),
        get(&t.conflicts)
    )
    .unwrap();
    writeln!(
        summary,
        "  cache: hits {} misses {} coalesced {} stores {} invalidations {} \
         backend errors {}; hit ratio {:.1}%",
        stats.hits,
        stats.misses,
        stats.coalesced,
        stats.stores,
        stats.invalidations,
        stats.backend_errors,
        100.0 * stats.hit_ratio()
    )
    .unwrap();
    writeln!(summary, "  bypasses: {:?}", stats.bypasses).unwrap();
    writeln!(
        summary,
        "  mismatches {} errors {}",
        get(&t.mismatches),
        get(&t.errors)
    )
    .unwrap();
    println!("{summary}");
    for sample in ctx.inconclusive_samples.lock().unwrap().iter() {
        println!("inconclusive (several writes in the window): {sample}");
    }

    let reports = ctx.reports.lock().unwrap();
    assert!(
        reports.is_empty(),
        "seed={seed}: {} mismatches, {} errors (first {} below; rerun with \
         CACHALOT_DIFF_SEED={seed})\n{}\n{summary}",
        get(&t.mismatches),
        get(&t.errors),
        reports.len(),
        reports.join("\n")
    );
    assert_eq!(get(&t.ops), ops, "seed={seed}: not every operation ran");
    assert!(
        stats.hits * 10 > cached_reads,
        "seed={seed}: the cache served too few hits ({} of {cached_reads} cached reads): \
         the test proves nothing\n{summary}",
        stats.hits
    );
}
