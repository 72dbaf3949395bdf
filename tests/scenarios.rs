//! The adapter's scenarios, each run on SQLite (in memory), PostgreSQL and MariaDB.
//!
//! Every test builds its own cache, so the stats it asserts are its own, and its own schema or
//! database, so tests run in parallel and leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use cachalot::{Attach, Cachalot, CachedPool};
use common::{MySqlFixture, PgFixture, SqliteFile};
use sqlx::{AssertSqlSafe, Database, Pool};

enum Fixture {
    Sqlite,
    SqliteFile(SqliteFile),
    Pg(PgFixture),
    My(MySqlFixture),
}

struct Ctx<DB: cachalot::CacheDatabase> {
    db: CachedPool<DB>,
    raw: Pool<DB>,
    fixture: Fixture,
}

fn builder() -> cachalot::CachalotBuilder {
    Cachalot::builder().lock_ttl(Duration::from_secs(5))
}

impl Ctx<sqlx::Sqlite> {
    async fn sqlite(cache: Cachalot) -> Self {
        let raw = common::sqlite_memory().await;
        Ctx {
            db: cache.attach(raw.clone()),
            raw,
            fixture: Fixture::Sqlite,
        }
    }

    async fn sqlite_file(cache: Cachalot) -> Self {
        let file = SqliteFile::new().await;
        let raw = file.pool.clone();
        Ctx {
            db: cache.attach(raw.clone()),
            raw,
            fixture: Fixture::SqliteFile(file),
        }
    }
}

impl Ctx<sqlx::Postgres> {
    async fn postgres(cache: Cachalot) -> Option<Self> {
        let fx = PgFixture::new().await?;
        let raw = fx.pool.clone();
        Some(Ctx {
            db: cache.attach(raw.clone()),
            raw,
            fixture: Fixture::Pg(fx),
        })
    }
}

impl Ctx<sqlx::MySql> {
    async fn mysql(cache: Cachalot) -> Option<Self> {
        let fx = MySqlFixture::new().await?;
        let raw = fx.pool.clone();
        Some(Ctx {
            db: cache.attach(raw.clone()),
            raw,
            fixture: Fixture::My(fx),
        })
    }
}

impl<DB: cachalot::CacheDatabase> Ctx<DB> {
    fn is(&self, name: &str) -> bool {
        DB::NAME.eq_ignore_ascii_case(name)
    }

    /// Creates `name`, a trigger that copies into `audit` the id of each row of `table` that
    /// `event` (`INSERT` or `DELETE`) touches, in the database's own syntax.
    fn audit_trigger(&self, name: &str, table: &str, event: &str) -> AssertSqlSafe<String> {
        let row = if event == "DELETE" { "OLD" } else { "NEW" };
        AssertSqlSafe(if self.is("postgresql") {
            format!(
                "CREATE FUNCTION {name}_log() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN INSERT INTO audit VALUES ({row}.id); RETURN {row}; END $$; \
                 CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_log();"
            )
        } else if self.is("mysql") {
            format!(
                "CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW \
                 INSERT INTO audit VALUES ({row}.id)"
            )
        } else {
            format!(
                "CREATE TRIGGER {name} AFTER {event} ON {table} \
                 BEGIN INSERT INTO audit VALUES ({row}.id); END"
            )
        })
    }

    /// Tests write `?` placeholders; PostgreSQL wants `$1`, `$2`, ...
    fn sql(&self, text: &str) -> AssertSqlSafe<String> {
        if !DB::NAME.eq_ignore_ascii_case("postgresql") {
            return AssertSqlSafe(text.to_owned());
        }
        let mut out = String::with_capacity(text.len() + 8);
        let mut n = 0;
        for c in text.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        AssertSqlSafe(out)
    }

    async fn cleanup(self) {
        drop(self.db);
        match self.fixture {
            Fixture::Sqlite => self.raw.close().await,
            Fixture::SqliteFile(f) => f.cleanup().await,
            Fixture::Pg(f) => f.cleanup().await,
            Fixture::My(f) => f.cleanup().await,
        }
    }
}

/// Expands each scenario into one test per database.
macro_rules! each_database {
    ($( $(#[$meta:meta])* async fn $name:ident($ctx:ident, $cache:ident) $body:block )*) => {$(
        mod $name {
            use super::*;

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $cache = scenario_cache();
                let $ctx = Ctx::sqlite($cache.clone()).await;
                $body
                $ctx.cleanup().await;
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $cache = scenario_cache();
                let Some($ctx) = Ctx::postgres($cache.clone()).await else { return };
                $body
                $ctx.cleanup().await;
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                let $cache = scenario_cache();
                let Some($ctx) = Ctx::mysql($cache.clone()).await else { return };
                $body
                $ctx.cleanup().await;
            }
        }
    )*};
}

fn scenario_cache() -> Cachalot {
    builder().build().unwrap()
}

/// Runs a statement through the cached pool (so it invalidates).
macro_rules! exec {
    ($ctx:expr, $sql:expr $(, $bind:expr)*) => {
        sqlx::query($ctx.sql($sql))$(.bind($bind))*.execute(&$ctx.db).await.unwrap()
    };
}

/// A cached scalar read.
macro_rules! scalar {
    ($ctx:expr, $ty:ty, $sql:expr $(, $bind:expr)*) => {
        $ctx.db.query_scalar::<$ty>($ctx.sql($sql))$(.bind($bind))*.fetch_one().await.unwrap()
    };
}

/// A cached list of the first column.
macro_rules! column {
    ($ctx:expr, $ty:ty, $sql:expr $(, $bind:expr)*) => {
        $ctx.db.query_scalar::<$ty>($ctx.sql($sql))$(.bind($bind))*.fetch_all().await.unwrap()
    };
}

async fn items<DB: cachalot::CacheDatabase>(ctx: &Ctx<DB>)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'c> &'c CachedPool<DB>: sqlx::Executor<'c, Database = DB>,
    <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
{
    for sql in [
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, owner BIGINT)",
        "CREATE TABLE owners (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL)",
        "CREATE TABLE notes (id BIGINT PRIMARY KEY, body VARCHAR(64))",
        "INSERT INTO owners (id, name) VALUES (1, 'ahab'), (2, 'ishmael')",
        "INSERT INTO items (id, name, owner) VALUES (1, 'harpoon', 1), (2, 'compass', 2), (3, 'lantern', 1)",
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&ctx.db)
            .await
            .unwrap();
    }
}

each_database! {
    async fn a_read_after_every_write_skips_the_cache_and_stays_correct(ctx, cache) {
        items(&ctx).await;
        // Reads each after a write to `items`: from the second on, every lookup misses an entry
        // the write invalidated. After 32 of those (33 misses), the statement skips the cache
        // but for one read in 16: 2 probes and 29 skips in the last 31 reads.
        for i in 0..64_i64 {
            exec!(ctx, "UPDATE items SET owner = ? WHERE id = 1", i);
            assert_eq!(scalar!(ctx, i64, "SELECT owner FROM items WHERE id = 1"), i);
        }
        let churned = cache.stats();
        assert_eq!(churned.bypasses.churn, 29);
        assert_eq!(churned.misses, 35);
        // Without writes, the next probe stores, the one after hits, and caching resumes.
        for _ in 0..32 {
            assert_eq!(scalar!(ctx, i64, "SELECT owner FROM items WHERE id = 1"), 63);
        }
        let before = cache.stats();
        for _ in 0..3 {
            assert_eq!(scalar!(ctx, i64, "SELECT owner FROM items WHERE id = 1"), 63);
        }
        let after = cache.stats();
        assert_eq!(after.hits - before.hits, 3);
        assert_eq!(after.bypasses.churn, before.bypasses.churn);
    }

    async fn repeated_read_is_a_hit(ctx, cache) {
        items(&ctx).await;
        let before = cache.stats();
        let a = column!(ctx, String, "SELECT name FROM items WHERE owner = ? ORDER BY id", 1_i64);
        let b = column!(ctx, String, "SELECT name FROM items WHERE owner = ? ORDER BY id", 1_i64);
        assert_eq!(a, vec!["harpoon".to_string(), "lantern".to_string()]);
        assert_eq!(a, b);
        let after = cache.stats();
        assert_eq!(after.misses - before.misses, 1);
        assert_eq!(after.hits - before.hits, 1);
        // Another parameter is another entry; the i64 1 and the string "1" never share one.
        let other = column!(ctx, String, "SELECT name FROM items WHERE owner = ? ORDER BY id", 2_i64);
        assert_eq!(other, vec!["compass".to_string()]);
        assert_eq!(cache.stats().misses - before.misses, 2);
    }

    async fn empty_results_counts_and_aggregates_are_cached(ctx, cache) {
        items(&ctx).await;
        let before = cache.stats();
        for _ in 0..2 {
            assert!(column!(ctx, String, "SELECT name FROM items WHERE id = ?", 99_i64).is_empty());
            assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM items"), 3);
            assert_eq!(scalar!(ctx, i64, "SELECT max(id) FROM items"), 3);
            let exists = ctx.db
                .query_scalar::<i64>(ctx.sql("SELECT id FROM items WHERE EXISTS (SELECT 1 FROM owners WHERE owners.id = items.owner) ORDER BY id LIMIT 1"))
                .fetch_optional()
                .await
                .unwrap();
            assert_eq!(exists, Some(1));
        }
        let after = cache.stats();
        assert_eq!(after.misses - before.misses, 4);
        assert_eq!(after.hits - before.hits, 4);
    }

    async fn every_kind_of_write_invalidates(ctx, cache) {
        items(&ctx).await;
        let count = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one();
        let mut expected = 3;
        assert_eq!(count().await.unwrap(), expected);
        assert_eq!(count().await.unwrap(), expected);

        exec!(ctx, "INSERT INTO items (id, name, owner) VALUES (?, ?, ?)", 10_i64, "rope", 1_i64);
        expected += 1;
        assert_eq!(count().await.unwrap(), expected, "INSERT");

        exec!(ctx, "DELETE FROM items WHERE id = ?", 10_i64);
        expected -= 1;
        assert_eq!(count().await.unwrap(), expected, "DELETE");

        let upsert = if ctx.is("mysql") {
            "INSERT INTO items (id, name, owner) VALUES (11, 'net', 2) ON DUPLICATE KEY UPDATE name = 'net'"
        } else {
            "INSERT INTO items (id, name, owner) VALUES (11, 'net', 2) ON CONFLICT (id) DO UPDATE SET name = 'net'"
        };
        exec!(ctx, upsert);
        expected += 1;
        assert_eq!(count().await.unwrap(), expected, "upsert");

        exec!(ctx, "INSERT INTO items (id, name, owner) SELECT id + 100, name, NULL FROM owners");
        expected += 2;
        assert_eq!(count().await.unwrap(), expected, "INSERT ... SELECT");

        let names = || ctx.db.query_scalar::<String>("SELECT name FROM items WHERE id = 1").fetch_one();
        assert_eq!(names().await.unwrap(), "harpoon");
        assert_eq!(names().await.unwrap(), "harpoon");
        exec!(ctx, "UPDATE items SET name = ? WHERE id = ?", "spear", 1_i64);
        assert_eq!(names().await.unwrap(), "spear", "UPDATE");

        let columns = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM items WHERE owner IS NULL").fetch_one();
        assert_eq!(columns().await.unwrap(), 2);
        exec!(ctx, "ALTER TABLE items ADD COLUMN weight BIGINT");
        exec!(ctx, "UPDATE items SET owner = 1 WHERE owner IS NULL");
        assert_eq!(columns().await.unwrap(), 0, "ALTER then UPDATE");

        let truncate = if ctx.is("sqlite") { "DELETE FROM items" } else { "TRUNCATE TABLE items" };
        exec!(ctx, truncate);
        assert_eq!(count().await.unwrap(), 0, "TRUNCATE");
        assert!(cache.stats().invalidations > 0);
    }

    async fn unrelated_writes_keep_entries(ctx, cache) {
        items(&ctx).await;
        let read = || ctx.db.query_scalar::<String>("SELECT name FROM items WHERE id = 2").fetch_one();
        read().await.unwrap();
        exec!(ctx, "INSERT INTO notes (id, body) VALUES (1, 'unrelated')");
        exec!(ctx, "UPDATE owners SET name = 'queequeg' WHERE id = 2");
        let before = cache.stats();
        assert_eq!(read().await.unwrap(), "compass");
        assert_eq!(cache.stats().hits - before.hits, 1, "a write to another table keeps the entry");
        // `note` and `notes` are two tables; so are `items` and `items_archive`.
        exec!(ctx, "CREATE TABLE items_archive (id BIGINT)");
        assert_eq!(read().await.unwrap(), "compass");
        assert_eq!(cache.stats().hits - before.hits, 2);
    }

    async fn complex_reads_follow_every_table_they_read(ctx, cache) {
        items(&ctx).await;
        let shapes = [
            "SELECT i.name FROM items i JOIN owners o ON o.id = i.owner WHERE o.name = 'ahab' ORDER BY i.id",
            "SELECT name FROM items WHERE owner IN (SELECT id FROM owners WHERE name = 'ahab') ORDER BY id",
            "WITH mine AS (SELECT id FROM owners WHERE name = 'ahab') SELECT i.name FROM items i, mine WHERE i.owner = mine.id ORDER BY i.id",
            "SELECT name FROM (SELECT i.name, i.id FROM items i WHERE i.owner = 1 UNION SELECT o.name, o.id + 1000 FROM owners o WHERE o.name = 'ahab') u ORDER BY id",
        ];
        for (n, sql) in shapes.iter().enumerate() {
            let read = || ctx.db.query_scalar::<String>(ctx.sql(sql)).fetch_all();
            let first = read().await.unwrap();
            let hits = cache.stats().hits;
            assert_eq!(read().await.unwrap(), first);
            assert_eq!(cache.stats().hits, hits + 1, "shape {n} is cached");
            // A write to the *second* table read changes the answer.
            exec!(ctx, "UPDATE owners SET name = ? WHERE id = 1", format!("ahab{n}"));
            let after = read().await.unwrap();
            assert_ne!(after, first, "shape {n}: owners changed, the entry must be gone");
            exec!(ctx, "UPDATE owners SET name = 'ahab' WHERE id = 1");
            assert_eq!(read().await.unwrap(), first, "shape {n}");
        }
    }

    async fn volatile_and_locking_reads_are_never_cached(ctx, cache) {
        items(&ctx).await;
        let mut shapes = vec!["SELECT count(*) FROM items WHERE id < random()"];
        if ctx.is("sqlite") {
            shapes.push("SELECT count(*) FROM items WHERE datetime('now') > '2000-01-01'");
        } else {
            shapes.push("SELECT count(*) FROM items WHERE now() > '2000-01-01'");
            shapes.push("SELECT id FROM items WHERE id = 1 FOR UPDATE");
        }
        if ctx.is("mysql") {
            shapes[0] = "SELECT count(*) FROM items WHERE id < rand()";
        }
        if ctx.is("postgresql") {
            shapes.push("SELECT count(*) FROM items TABLESAMPLE BERNOULLI (100)");
        }
        for sql in shapes {
            let before = cache.stats();
            for _ in 0..2 {
                ctx.db.query_scalar::<i64>(AssertSqlSafe(sql)).fetch_one().await.unwrap();
            }
            let after = cache.stats();
            assert_eq!(after.hits, before.hits, "{sql} was served from the cache");
            assert_eq!(after.bypasses.total() - before.bypasses.total(), 2, "{sql}");
        }
    }

    async fn locking_reads_of_every_strength_invalidate_nothing(ctx, cache) {
        items(&ctx).await;
        // Spellings sqlparser cannot parse itself: were they parse errors, each would
        // invalidate the whole database, and a job queue polling with one would keep nothing.
        let shapes: &[&str] = if ctx.is("postgresql") {
            &[
                "SELECT id FROM items WHERE id = 1 FOR NO KEY UPDATE",
                "SELECT id FROM items WHERE id = 1 FOR NO KEY UPDATE SKIP LOCKED",
                "SELECT id FROM items WHERE id = 1 FOR KEY SHARE",
            ]
        } else if ctx.is("mysql") {
            &[
                "SELECT id FROM items WHERE id = 1 LOCK IN SHARE MODE",
                "SELECT id FROM items WHERE id = 1 FOR UPDATE WAIT 1",
            ]
        } else {
            &[]
        };
        let owners = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM owners").fetch_one();
        owners().await.unwrap();
        for &sql in shapes {
            let before = cache.stats();
            for _ in 0..2 {
                let id = ctx.db.query_scalar::<i64>(AssertSqlSafe(sql)).fetch_one().await.unwrap();
                assert_eq!(id, 1, "{sql}");
            }
            sqlx::query(AssertSqlSafe(sql)).fetch_all(&ctx.db).await.unwrap();
            assert_eq!(owners().await.unwrap(), 2);
            let after = cache.stats();
            assert_eq!(after.bypasses.total() - before.bypasses.total(), 2, "{sql} is never cached");
            assert_eq!(after.hits - before.hits, 1, "{sql} invalidated the owners' count");
            assert_eq!(after.invalidations, before.invalidations, "{sql}");
        }
    }

    async fn table_commands_are_reads_of_their_table(ctx, cache) {
        // `TABLE name` (PostgreSQL; MariaDB and SQLite have no such statement): a read the
        // cache must see, or a write to the table would leave the old answer cached.
        if ctx.is("postgresql") {
            items(&ctx).await;
            for sql in [
                "SELECT count(*) FROM (TABLE items) t",
                "SELECT count(*) FROM (SELECT id, name, id FROM owners UNION ALL TABLE items) t",
                "WITH i AS (TABLE items) SELECT count(*) FROM i",
            ] {
                let count = || ctx.db.query_scalar::<i64>(AssertSqlSafe(sql)).fetch_one();
                let first = count().await.unwrap();
                let hits = cache.stats().hits;
                assert_eq!(count().await.unwrap(), first, "{sql}");
                assert_eq!(cache.stats().hits, hits + 1, "{sql} is cached");
                exec!(ctx, "INSERT INTO items (id, name, owner) VALUES (100, 'net', 2)");
                assert_eq!(count().await.unwrap(), first + 1, "{sql}: items changed");
                exec!(ctx, "DELETE FROM items WHERE id = 100");
                assert_eq!(count().await.unwrap(), first, "{sql}");
            }
            let rows = ctx.db.query_as::<(i64, String, Option<i64>)>("TABLE items ORDER BY id").fetch_all().await.unwrap();
            assert_eq!(rows.len(), 3);
            exec!(ctx, "UPDATE items SET name = 'oar' WHERE id = 1");
            let rows = ctx.db.query_as::<(i64, String, Option<i64>)>("TABLE items ORDER BY id").fetch_all().await.unwrap();
            assert_eq!(rows[0].1, "oar", "TABLE items was invalidated");
        }
    }

    async fn mysql_statement_modifiers_invalidate_the_table_written(ctx, cache) {
        // sqlparser takes `IGNORE` in `UPDATE IGNORE items` for the table written.
        if ctx.is("mysql") {
            items(&ctx).await;
            let count = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM items WHERE name = 'oar'").fetch_one();
            for (n, write) in [
                "UPDATE IGNORE items SET name = 'oar' WHERE id = 1",
                "UPDATE LOW_PRIORITY items SET name = 'oar' WHERE id = 2",
                "DELETE QUICK FROM items WHERE id = 1",
                "DELETE LOW_PRIORITY IGNORE FROM items WHERE id = 2",
            ]
            .into_iter()
            .enumerate()
            {
                let before = count().await.unwrap();
                let hits = cache.stats().hits;
                assert_eq!(count().await.unwrap(), before);
                assert_eq!(cache.stats().hits, hits + 1, "cached before {write}");
                exec!(ctx, write);
                let expected = [1, 2, 1, 0][n];
                assert_eq!(count().await.unwrap(), expected, "{write} invalidated items");
            }
        }
    }

    async fn uuids_and_timestamps_bind_to_cached_reads(ctx, cache) {
        let (uuid, timestamp) = if ctx.is("postgresql") {
            ("UUID", "TIMESTAMP")
        } else if ctx.is("mysql") {
            ("BINARY(16)", "DATETIME(6)")
        } else {
            ("BLOB", "TEXT")
        };
        exec!(ctx, &format!("CREATE TABLE events (id BIGINT PRIMARY KEY, token {uuid} NOT NULL, at {timestamp} NOT NULL)"));
        let tokens = [sqlx::types::Uuid::from_u128(7), sqlx::types::Uuid::from_u128(8)];
        let day = sqlx::types::chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let times = [day.and_hms_opt(9, 0, 0).unwrap(), day.and_hms_micro_opt(9, 0, 0, 1).unwrap()];
        for (i, (token, at)) in tokens.iter().zip(&times).enumerate() {
            exec!(ctx, "INSERT INTO events (id, token, at) VALUES (?, ?, ?)", i as i64 + 1, *token, *at);
        }
        let by_token = |t: sqlx::types::Uuid| ctx.db.query_scalar::<i64>(ctx.sql("SELECT id FROM events WHERE token = ?")).bind(t).fetch_optional();
        let by_time = |t: sqlx::types::chrono::NaiveDateTime| ctx.db.query_scalar::<i64>(ctx.sql("SELECT id FROM events WHERE at = ?")).bind(t).fetch_optional();
        for _ in 0..2 {
            // Two values, two keys: each read gets its own row, the second time from the cache.
            assert_eq!(by_token(tokens[0]).await.unwrap(), Some(1));
            assert_eq!(by_token(tokens[1]).await.unwrap(), Some(2));
            assert_eq!(by_time(times[0]).await.unwrap(), Some(1));
            assert_eq!(by_time(times[1]).await.unwrap(), Some(2), "a microsecond apart");
        }
        assert_eq!(cache.stats().hits, 4);
        exec!(ctx, "DELETE FROM events WHERE token = ?", tokens[1]);
        assert_eq!(by_token(tokens[1]).await.unwrap(), None);
        assert_eq!(by_time(times[1]).await.unwrap(), None);
    }

    async fn a_connection_taken_from_the_pool_invalidates_and_follows_its_transactions(ctx, cache) {
        items(&ctx).await;
        let count = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one();
        assert_eq!(count().await.unwrap(), 3);
        let mut conn = ctx.db.acquire().await.unwrap();
        // Outside a transaction a write commits as it runs, and invalidates as it runs.
        sqlx::query(ctx.sql("INSERT INTO items (id, name) VALUES (10, 'net')")).execute(&mut conn).await.unwrap();
        assert_eq!(count().await.unwrap(), 4);
        // Its own reads use the cache, as the pool's do.
        let hits = cache.stats().hits;
        assert_eq!(conn.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one().await.unwrap(), 4);
        assert_eq!(cache.stats().hits, hits + 1);
        // A transaction sent as statements: nothing is seen before its COMMIT, all after.
        let begin = if ctx.is("mysql") { "START TRANSACTION" } else { "BEGIN" };
        sqlx::query(begin).execute(&mut conn).await.unwrap();
        sqlx::query("DELETE FROM items WHERE id = 10").execute(&mut conn).await.unwrap();
        assert_eq!(conn.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one().await.unwrap(), 3, "its own write");
        if !ctx.is("sqlite") {
            // (SQLite's shared in-memory database locks the table for other connections.)
            assert_eq!(count().await.unwrap(), 4, "not committed yet");
        }
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
        assert_eq!(count().await.unwrap(), 3, "the COMMIT invalidated items");
        // Rolled back: nothing changed, and dropped inside one, the server rolls back.
        sqlx::query(begin).execute(&mut conn).await.unwrap();
        sqlx::query("DELETE FROM items").execute(&mut conn).await.unwrap();
        sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
        assert_eq!(count().await.unwrap(), 3);
        sqlx::query(begin).execute(&mut conn).await.unwrap();
        sqlx::query("DELETE FROM items").execute(&mut conn).await.unwrap();
        drop(conn);
        if !ctx.is("sqlite") {
            // (SQLite's lock holds until the closing connection is gone.)
            assert_eq!(count().await.unwrap(), 3, "dropped inside its transaction");
        }
        if ctx.is("postgresql") {
            // A session of its own: its reads bypass the cache from then on.
            let mut conn = ctx.db.acquire().await.unwrap();
            sqlx::query("SET search_path TO pg_catalog").execute(&mut conn).await.unwrap();
            let bypasses = cache.stats().bypasses.get(cachalot::BypassReason::Transaction);
            let tables = conn.query_scalar::<i64>("SELECT count(*) FROM pg_tables WHERE tablename = 'items'").fetch_one().await.unwrap();
            assert!(tables >= 1);
            conn.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one().await.unwrap_err();
            assert_eq!(cache.stats().bypasses.get(cachalot::BypassReason::Transaction), bypasses + 1);
        }
    }

    async fn syntax_errors_come_back_unchanged(ctx, cache) {
        items(&ctx).await;
        let cached = ctx.db.query_scalar::<i64>("SELEKT count(*) FROM items").fetch_one().await.unwrap_err();
        let direct = sqlx::query_scalar::<_, i64>("SELEKT count(*) FROM items").fetch_one(&ctx.raw).await.unwrap_err();
        assert_eq!(cached.to_string(), direct.to_string());
        let through_executor = sqlx::query("SELEKT count(*) FROM items").execute(&ctx.db).await.unwrap_err();
        assert_eq!(through_executor.to_string(), direct.to_string());
        // An unparseable statement that may write invalidates the whole database.
        let read = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM owners").fetch_one();
        read().await.unwrap();
        let _ = sqlx::query("UPDATE owners SET name = 'x' WHERE id = 1 FROBNICATE").execute(&ctx.db).await;
        let misses = cache.stats().misses;
        read().await.unwrap();
        assert_eq!(cache.stats().misses, misses + 1, "the epoch was bumped");
    }

    async fn allow_and_deny_lists(ctx, cache) {
        items(&ctx).await;
        let listed = builder().only_tables(["items", "owners"]).deny_tables(["owners"]).build().unwrap();
        let db = listed.attach(ctx.raw.clone());
        for _ in 0..2 {
            db.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one().await.unwrap();
            db.query_scalar::<i64>("SELECT count(*) FROM owners").fetch_one().await.unwrap();
            db.query_scalar::<i64>("SELECT count(*) FROM notes").fetch_one().await.unwrap();
            db.query_scalar::<i64>("SELECT count(*) FROM items JOIN owners ON owners.id = items.owner").fetch_one().await.unwrap();
        }
        let stats = listed.stats();
        assert_eq!(stats.hits, 1, "only items alone is cacheable");
        assert_eq!(stats.bypasses.get(cachalot::BypassReason::TableNotAllowed), 6);
        let _ = cache;
    }

    async fn transactions_commit_rollback_and_savepoints(ctx, cache) {
        items(&ctx).await;
        let count = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one();
        assert_eq!(count().await.unwrap(), 3);

        // Rollback: nothing changes, nothing is invalidated.
        let mut tx = ctx.db.begin().await.unwrap();
        sqlx::query(ctx.sql("INSERT INTO items (id, name) VALUES (20, 'buoy')")).execute(&mut tx).await.unwrap();
        let inside = tx.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one().await.unwrap();
        assert_eq!(inside, 4, "the transaction sees its own write");
        // Another session, through the cache, never sees uncommitted data.
        assert_eq!(count().await.unwrap(), 3);
        let invalidations = cache.stats().invalidations;
        tx.rollback().await.unwrap();
        assert_eq!(cache.stats().invalidations, invalidations, "a rollback invalidates nothing");
        assert_eq!(count().await.unwrap(), 3);

        // Commit: the data is visible through the cache as soon as commit returns.
        let mut tx = ctx.db.begin().await.unwrap();
        sqlx::query(ctx.sql("INSERT INTO items (id, name) VALUES (21, 'oar')")).execute(&mut tx).await.unwrap();
        assert_eq!(count().await.unwrap(), 3, "uncommitted, seen from another session");
        tx.commit().await.unwrap();
        assert_eq!(count().await.unwrap(), 4, "committed, seen at once");

        // Savepoints: a rolled-back savepoint keeps its tables dirty; the outer commit invalidates.
        let names = || ctx.db.query_scalar::<String>("SELECT name FROM owners WHERE id = 2").fetch_one();
        assert_eq!(names().await.unwrap(), "ishmael");
        let mut tx = ctx.db.begin().await.unwrap();
        {
            let mut sp = tx.begin().await.unwrap();
            sqlx::query(ctx.sql("UPDATE owners SET name = 'starbuck' WHERE id = 2")).execute(&mut sp).await.unwrap();
            sp.rollback().await.unwrap();
        }
        {
            let mut sp = tx.begin().await.unwrap();
            sqlx::query(ctx.sql("UPDATE owners SET name = 'stubb' WHERE id = 2")).execute(&mut sp).await.unwrap();
            let seen = sp.query_scalar::<String>("SELECT name FROM owners WHERE id = 2").fetch_one().await.unwrap();
            assert_eq!(seen, "stubb", "a dirty table is read from the transaction");
            sp.commit().await.unwrap();
        }
        assert_eq!(names().await.unwrap(), "ishmael", "not committed yet");
        tx.commit().await.unwrap();
        assert_eq!(names().await.unwrap(), "stubb");

        // Dropping a transaction rolls it back and invalidates nothing.
        let invalidations = cache.stats().invalidations;
        {
            let mut tx = ctx.db.begin().await.unwrap();
            sqlx::query(ctx.sql("DELETE FROM items")).execute(&mut tx).await.unwrap();
        }
        assert_eq!(cache.stats().invalidations, invalidations);
        assert_eq!(count().await.unwrap(), 4);
    }

    async fn concurrent_session_during_a_transaction(ctx, cache) {
        items(&ctx).await;
        let reader = ctx.db.clone();
        let count = move || {
            let reader = reader.clone();
            async move { reader.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one().await.unwrap() }
        };
        assert_eq!(count().await, 3);
        let mut tx = ctx.db.begin().await.unwrap();
        for id in 30..35_i64 {
            sqlx::query(ctx.sql("INSERT INTO items (id, name) VALUES (?, 'x')")).bind(id).execute(&mut tx).await.unwrap();
            // Another task, on another connection, keeps reading the committed state.
            assert_eq!(tokio::spawn(count()).await.unwrap(), 3);
        }
        tx.commit().await.unwrap();
        assert_eq!(tokio::spawn(count()).await.unwrap(), 8);
        let _ = cache;
    }

    async fn signals_once_per_table_after_commit_never_on_rollback(ctx, cache) {
        items(&ctx).await;
        let mut rx = ctx.db.subscribe();
        let mut tx = ctx.db.begin().await.unwrap();
        sqlx::query(ctx.sql("INSERT INTO items (id, name) VALUES (40, 'a')")).execute(&mut tx).await.unwrap();
        sqlx::query(ctx.sql("INSERT INTO items (id, name) VALUES (41, 'b')")).execute(&mut tx).await.unwrap();
        sqlx::query(ctx.sql("UPDATE owners SET name = 'flask' WHERE id = 1")).execute(&mut tx).await.unwrap();
        assert!(rx.try_recv().is_err(), "nothing before commit");
        tx.commit().await.unwrap();
        let mut tables = Vec::new();
        while let Ok(signal) = rx.try_recv() {
            assert_eq!(&*signal.database, ctx.db.database());
            tables.push(signal.table.map(|t| t.to_string()).unwrap_or_default());
        }
        tables.sort();
        assert_eq!(tables, ["items", "owners"], "once per table");

        let mut tx = ctx.db.begin().await.unwrap();
        sqlx::query(ctx.sql("DELETE FROM items")).execute(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert!(rx.try_recv().is_err(), "never on rollback");
        let _ = cache;
    }

    async fn returning_stream_dropped_early_still_invalidates(ctx, cache) {
        use futures_util::StreamExt;
        items(&ctx).await;
        let count = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one();
        assert_eq!(count().await.unwrap(), 3);
        {
            let mut rows = sqlx::query(ctx.sql("DELETE FROM items WHERE id > ? RETURNING id")).bind(1_i64).fetch(&ctx.db);
            let first = rows.next().await;
            assert!(first.is_some_and(|r| r.is_ok()));
        }
        // The server may finish the statement after the stream is dropped: its table stays
        // locked (reads bypass the cache) until the lock expires, and is bumped then.
        let mut last = 0;
        for _ in 0..100 {
            last = count().await.unwrap();
            if last == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(last, 1);
        let _ = cache;
    }

    async fn cancelled_write_never_leaves_a_stale_entry(ctx, cache) {
        items(&ctx).await;
        let count = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM items").fetch_one();
        assert_eq!(count().await.unwrap(), 3);
        // A DELETE still running on the server when its caller gives up on it.
        let slow = if ctx.is("postgresql") {
            "DELETE FROM items WHERE id > 1 AND pg_sleep(0.2) IS NOT NULL"
        } else if ctx.is("mysql") {
            "DELETE FROM items WHERE id > 1 AND SLEEP(0.2) = 0"
        } else {
            "DELETE FROM items WHERE id > 1 AND (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL \
             SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c) > 0"
        };
        let run = sqlx::query(slow).execute(&ctx.db);
        let timed_out = tokio::time::timeout(Duration::from_millis(50), run).await.is_err();
        // SQLite's own timing is the machine's: only the servers are sure to still be running.
        assert!(timed_out || ctx.is("sqlite"), "the DELETE outlived its caller");
        // Reads while it runs may go to the database, but what they read must not stay cached
        // once it has committed.
        for _ in 0..10 {
            count().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let direct: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
            .fetch_one(&ctx.raw)
            .await
            .unwrap();
        assert_eq!(count().await.unwrap(), direct);
        let _ = cache;
    }

    async fn disabled_cache_still_invalidates(ctx, cache) {
        items(&ctx).await;
        let read = || ctx.db.query_scalar::<String>("SELECT name FROM items WHERE id = 3").fetch_one();
        assert_eq!(read().await.unwrap(), "lantern");
        cache.set_enabled(false);
        exec!(ctx, "UPDATE items SET name = 'candle' WHERE id = 3");
        assert_eq!(read().await.unwrap(), "candle");
        cache.set_enabled(true);
        assert_eq!(read().await.unwrap(), "candle", "the write while disabled invalidated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_databases_are_cached_and_invalidated() {
    let cache = scenario_cache();
    let ctx = Ctx::sqlite_file(cache.clone()).await;
    items(&ctx).await;
    let read = || {
        ctx.db
            .query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one()
    };
    assert_eq!(read().await.unwrap(), 3);
    assert_eq!(read().await.unwrap(), 3);
    assert_eq!(cache.stats().hits, 1);
    exec!(ctx, "DELETE FROM items WHERE id = 1");
    assert_eq!(read().await.unwrap(), 2);
    ctx.cleanup().await;
}

/// A bound value whose encoding always fails, as a driver's would for a value out of range.
struct Unencodable;

impl sqlx::Type<sqlx::Sqlite> for Unencodable {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <i64 as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Sqlite> for Unencodable {
    fn encode_by_ref(
        &self,
        _buf: &mut <sqlx::Sqlite as Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Err("out of range".into())
    }
}

impl cachalot::KeyParam for Unencodable {
    fn key_type(sink: &mut cachalot::KeySink) {
        sink.named_type("unencodable");
    }
    fn key_value(&self, _sink: &mut cachalot::KeySink) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_fails_to_encode_is_an_encode_error_every_time() {
    let cache = scenario_cache();
    let ctx = Ctx::sqlite(cache.clone()).await;
    items(&ctx).await;
    // Binding defers the driver's encoding to the query's run; the error must still come back
    // as sqlx's, and nothing be cached in its place.
    for _ in 0..2 {
        let err = ctx
            .db
            .query_scalar::<i64>("SELECT count(*) FROM items WHERE id > ?")
            .bind(Unencodable)
            .fetch_one()
            .await
            .unwrap_err();
        assert!(matches!(err, sqlx::Error::Encode(_)), "{err:?}");
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.stores), (0, 0));
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_databases_never_share_entries() {
    let cache = scenario_cache();
    let a = Ctx::sqlite(cache.clone()).await;
    let b = Ctx::sqlite(cache.clone()).await;
    assert_ne!(a.db.database(), b.db.database());
    items(&a).await;
    items(&b).await;
    exec!(b, "DELETE FROM items WHERE id = 1");
    let count_a = || {
        a.db.query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one()
    };
    let count_b = || {
        b.db.query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one()
    };
    assert_eq!(count_a().await.unwrap(), 3);
    assert_eq!(count_b().await.unwrap(), 2);
    assert_eq!(count_a().await.unwrap(), 3);
    let hits = cache.stats().hits;
    exec!(b, "DELETE FROM items WHERE id = 2");
    assert_eq!(count_a().await.unwrap(), 3);
    assert_eq!(cache.stats().hits, hits + 1, "a write on b keeps a's entry");
    assert_eq!(count_b().await.unwrap(), 1);
    a.cleanup().await;
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schemas_behind_one_cache_never_share_entries() {
    let Some(a) = PgFixture::new().await else {
        return;
    };
    let Some(b) = PgFixture::new().await else {
        return;
    };
    let cache = scenario_cache();
    let da = cache.attach(a.pool.clone());
    let db = cache.attach(b.pool.clone());
    // One database, whose tables both pools' writes invalidate; but the search_path is part
    // of what a key names, as the same SQL reads other tables.
    assert_eq!(da.database(), db.database());
    for (pool, v) in [(&da, 1_i64), (&db, 2_i64)] {
        sqlx::query("CREATE TABLE t (v BIGINT)")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(v)
            .execute(pool)
            .await
            .unwrap();
    }
    async fn read(pool: &CachedPool<sqlx::Postgres>) -> Vec<i64> {
        pool.query_scalar::<i64>("SELECT v FROM t")
            .fetch_all()
            .await
            .unwrap()
    }
    assert_eq!(read(&da).await, [1]);
    assert_eq!(read(&db).await, [2]);
    assert_eq!(read(&da).await, [1]);
    a.cleanup().await;
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pools_as_other_sessions_on_one_database_see_each_others_writes() {
    let Some(fx) = PgFixture::new().await else {
        return;
    };
    // The same tables through other startup options (as through another user, a read-only
    // one say): the entries are the pool's own, the writes invalidate them all the same.
    let options: sqlx::postgres::PgConnectOptions = common::pg_url().parse().unwrap();
    let search_path = format!("{},public", fx.schema);
    let other = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("search_path", search_path.as_str())]))
        .await
        .unwrap();
    let cache = scenario_cache();
    let reader = cache.attach(fx.pool.clone());
    let writer = cache.attach(other.clone());
    sqlx::query("CREATE TABLE t (v BIGINT)")
        .execute(&writer)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&writer)
        .await
        .unwrap();
    let count = || {
        reader
            .query_scalar::<i64>("SELECT count(*) FROM t")
            .fetch_one()
    };
    assert_eq!(count().await.unwrap(), 1);
    assert_eq!(count().await.unwrap(), 1);
    assert_eq!(cache.stats().hits, 1);
    sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&writer)
        .await
        .unwrap();
    assert_eq!(
        count().await.unwrap(),
        2,
        "the writer's INSERT invalidated it"
    );
    let mut tx = writer.begin().await.unwrap();
    sqlx::query("DELETE FROM t").execute(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count().await.unwrap(), 0, "so did its transaction's DELETE");
    // One epoch, too: the writer's invalidate_all empties the reader's entries.
    assert_eq!(count().await.unwrap(), 0);
    writer.invalidate_all().await;
    let misses = cache.stats().misses;
    assert_eq!(count().await.unwrap(), 0);
    assert_eq!(
        cache.stats().misses,
        misses + 1,
        "the epoch is the database's"
    );
    other.close().await;
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_reads_of_another_database_are_not_cached() {
    let Some(a) = MySqlFixture::new().await else {
        return;
    };
    let Some(b) = MySqlFixture::new().await else {
        return;
    };
    let cache = scenario_cache();
    let da = cache.attach(a.pool.clone());
    let db = cache.attach(b.pool.clone());
    sqlx::query("CREATE TABLE t (v BIGINT)")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&db)
        .await
        .unwrap();
    // `b`'s table read through `a`'s pool: its writes go through `b`'s, whose tokens are
    // not `a`'s. Cached, the second count would be the first.
    let across = format!("SELECT count(*) FROM `{}`.t", b.database);
    let count = || {
        da.query_scalar::<i64>(AssertSqlSafe(across.clone()))
            .fetch_one()
    };
    assert_eq!(count().await.unwrap(), 1);
    let bypasses = cache.stats().bypasses.not_cacheable;
    sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(count().await.unwrap(), 2);
    assert_eq!(cache.stats().bypasses.not_cacheable, bypasses + 1);
    // Its own database named in full is still its own.
    sqlx::query("CREATE TABLE own (v BIGINT)")
        .execute(&da)
        .await
        .unwrap();
    let own = format!("SELECT count(*) FROM `{}`.own", a.database);
    let hits = cache.stats().hits;
    for _ in 0..2 {
        da.query_scalar::<i64>(AssertSqlSafe(own.clone()))
            .fetch_one()
            .await
            .unwrap();
    }
    assert_eq!(cache.stats().hits, hits + 1);
    a.cleanup().await;
    b.cleanup().await;
}

each_database! {
    async fn foreign_key_cascades_invalidate_the_child(ctx, cache) {
        exec!(ctx, "CREATE TABLE parents (id BIGINT PRIMARY KEY)");
        exec!(ctx, "CREATE TABLE kids (id BIGINT PRIMARY KEY, parent BIGINT REFERENCES parents (id) ON DELETE CASCADE)");
        exec!(ctx, "CREATE TABLE toys (id BIGINT PRIMARY KEY, kid BIGINT REFERENCES kids (id) ON DELETE CASCADE)");
        exec!(ctx, "INSERT INTO parents VALUES (1), (2)");
        exec!(ctx, "INSERT INTO kids VALUES (10, 1), (20, 2)");
        exec!(ctx, "INSERT INTO toys VALUES (100, 10), (200, 20)");
        let kids = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM kids").fetch_one();
        let toys = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM toys").fetch_one();
        assert_eq!((kids().await.unwrap(), toys().await.unwrap()), (2, 2));
        assert_eq!((kids().await.unwrap(), toys().await.unwrap()), (2, 2));
        // The DELETE names only `parents`; the cascade empties kids and toys too.
        exec!(ctx, "DELETE FROM parents WHERE id = 1");
        assert_eq!(kids().await.unwrap(), 1, "cascade to kids");
        assert_eq!(toys().await.unwrap(), 1, "cascade to toys, transitively");
        // The same inside a transaction, invalidated at commit.
        let mut tx = ctx.db.begin().await.unwrap();
        sqlx::query(ctx.sql("DELETE FROM parents WHERE id = 2")).execute(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((kids().await.unwrap(), toys().await.unwrap()), (0, 0));
        let _ = cache;
    }

    async fn triggers_invalidate_what_they_may_write(ctx, cache) {
        exec!(ctx, "CREATE TABLE orders (id BIGINT PRIMARY KEY)");
        exec!(ctx, "CREATE TABLE audit (id BIGINT)");
        sqlx::raw_sql(ctx.audit_trigger("order_audit", "orders", "INSERT"))
            .execute(&ctx.db)
            .await
            .unwrap();
        let audit = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM audit").fetch_one();
        assert_eq!(audit().await.unwrap(), 0);
        assert_eq!(audit().await.unwrap(), 0);
        let hits = cache.stats().hits;
        assert!(hits >= 1);
        exec!(ctx, "INSERT INTO orders VALUES (1)");
        assert_eq!(audit().await.unwrap(), 1, "the trigger's write is not stale");
    }

    async fn a_trigger_a_cascade_reaches_invalidates_what_it_may_write(ctx, cache) {
        exec!(ctx, "CREATE TABLE parents (id BIGINT PRIMARY KEY)");
        exec!(ctx, "CREATE TABLE kids (id BIGINT PRIMARY KEY, parent BIGINT REFERENCES parents (id) ON DELETE CASCADE)");
        exec!(ctx, "CREATE TABLE audit (id BIGINT)");
        sqlx::raw_sql(ctx.audit_trigger("kid_audit", "kids", "DELETE"))
            .execute(&ctx.db)
            .await
            .unwrap();
        exec!(ctx, "INSERT INTO parents VALUES (1)");
        exec!(ctx, "INSERT INTO kids VALUES (10, 1)");
        let audit = || ctx.db.query_scalar::<i64>("SELECT count(*) FROM audit").fetch_one();
        assert_eq!(audit().await.unwrap(), 0);
        assert_eq!(audit().await.unwrap(), 0);
        assert!(cache.stats().hits >= 1);
        // The DELETE names `parents`; its cascade deletes the kid, whose trigger (where the
        // database fires triggers on cascades: PostgreSQL, SQLite) writes `audit`.
        exec!(ctx, "DELETE FROM parents WHERE id = 1");
        let direct: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
            .fetch_one(ctx.db.inner())
            .await
            .unwrap();
        if !ctx.is("mysql") {
            assert_eq!(direct, 1, "the cascade fired the kid's trigger");
        }
        assert_eq!(audit().await.unwrap(), direct, "what the trigger wrote is not stale");
    }
}

each_database! {
    async fn views_are_read_through_to_their_tables(ctx, cache) {
        exec!(ctx, "CREATE TABLE owners (id BIGINT PRIMARY KEY, name VARCHAR(20))");
        exec!(ctx, "CREATE TABLE pets (id BIGINT PRIMARY KEY, owner BIGINT)");
        // Created behind the adapter's back, as a migration run before the application would.
        sqlx::raw_sql("CREATE VIEW owned AS SELECT o.name FROM owners o JOIN pets p ON p.owner = o.id")
            .execute(&ctx.raw)
            .await
            .unwrap();
        exec!(ctx, "INSERT INTO owners VALUES (1, 'ann')");
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM owned"), 0);
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM owned"), 0);
        assert_eq!(cache.stats().hits, 1, "a view is cached");
        // The INSERT names `pets` alone.
        exec!(ctx, "INSERT INTO pets VALUES (10, 1)");
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM owned"), 1, "the view's table was written");
        // A view on the view, created through the adapter: followed at once.
        exec!(ctx, "CREATE VIEW owned_count AS SELECT count(*) AS n FROM owned");
        assert_eq!(scalar!(ctx, i64, "SELECT n FROM owned_count"), 1);
        assert_eq!(scalar!(ctx, i64, "SELECT n FROM owned_count"), 1);
        exec!(ctx, "UPDATE pets SET owner = 2");
        assert_eq!(scalar!(ctx, i64, "SELECT n FROM owned_count"), 0, "two views down");
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM owned"), 0);
    }

    async fn a_view_whose_rows_change_with_the_clock_is_never_cached(ctx, cache) {
        exec!(ctx, "CREATE TABLE events (id BIGINT PRIMARY KEY, at VARCHAR(40))");
        exec!(ctx, "CREATE VIEW stamped AS SELECT id, CURRENT_TIMESTAMP AS seen FROM events");
        exec!(ctx, "INSERT INTO events VALUES (1, 'x')");
        let before = cache.stats();
        for _ in 0..2 {
            assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM stamped"), 1);
        }
        let after = cache.stats();
        assert_eq!(after.misses, before.misses, "never asked the cache");
        assert_eq!(after.bypasses.not_cacheable - before.bypasses.not_cacheable, 2);
        // Reads of the table itself are cached as ever.
        assert_eq!((scalar!(ctx, i64, "SELECT count(*) FROM events"), scalar!(ctx, i64, "SELECT count(*) FROM events")), (1, 1));
        assert_eq!(cache.stats().hits, after.hits + 1);
    }

    async fn a_transaction_that_wrote_a_views_table_reads_the_view_uncached(ctx, cache) {
        exec!(ctx, "CREATE TABLE owners (id BIGINT PRIMARY KEY, name VARCHAR(20))");
        exec!(ctx, "CREATE VIEW named AS SELECT name FROM owners WHERE name IS NOT NULL");
        assert_eq!((scalar!(ctx, i64, "SELECT count(*) FROM named"), scalar!(ctx, i64, "SELECT count(*) FROM named")), (0, 0));
        assert_eq!(cache.stats().hits, 1);
        let mut tx = ctx.db.begin().await.unwrap();
        sqlx::query(ctx.sql("INSERT INTO owners VALUES (1, 'ann')"))
            .execute(&mut tx)
            .await
            .unwrap();
        let inside: i64 = tx
            .query_scalar("SELECT count(*) FROM named")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(inside, 1, "the transaction's own write, through the view");
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM named"), 0, "not committed yet");
        tx.commit().await.unwrap();
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM named"), 1, "committed");
    }

    async fn a_write_through_a_view_invalidates_its_table(ctx, cache) {
        exec!(ctx, "CREATE TABLE owners (id BIGINT PRIMARY KEY, name VARCHAR(20))");
        exec!(ctx, "CREATE VIEW owner_names AS SELECT id, name FROM owners");
        if ctx.is("sqlite") {
            // SQLite's views are written through INSTEAD OF triggers only.
            sqlx::raw_sql(
                "CREATE TRIGGER owner_names_insert INSTEAD OF INSERT ON owner_names \
                 BEGIN INSERT INTO owners VALUES (NEW.id, NEW.name); END",
            )
            .execute(&ctx.db)
            .await
            .unwrap();
        }
        assert_eq!((scalar!(ctx, i64, "SELECT count(*) FROM owners"), scalar!(ctx, i64, "SELECT count(*) FROM owners")), (0, 0));
        assert_eq!(cache.stats().hits, 1);
        exec!(ctx, "INSERT INTO owner_names VALUES (1, 'ann')");
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM owners"), 1, "written through the view");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_partitions_inheritance_and_rules_are_followed() {
    let cache = scenario_cache();
    let Some(ctx) = Ctx::postgres(cache.clone()).await else {
        return;
    };
    exec!(
        ctx,
        "CREATE TABLE readings (at INT NOT NULL, v INT) PARTITION BY RANGE (at)"
    );
    exec!(
        ctx,
        "CREATE TABLE readings_low PARTITION OF readings FOR VALUES FROM (0) TO (100)"
    );
    exec!(
        ctx,
        "CREATE TABLE readings_high PARTITION OF readings FOR VALUES FROM (100) TO (200)"
    );
    exec!(ctx, "CREATE TABLE animals (name TEXT)");
    exec!(ctx, "CREATE TABLE dogs (barks BOOLEAN) INHERITS (animals)");
    exec!(ctx, "CREATE TABLE inbox (n INT)");
    exec!(ctx, "CREATE TABLE outbox (n INT)");
    exec!(
        ctx,
        "CREATE RULE copy_out AS ON INSERT TO inbox DO ALSO INSERT INTO outbox VALUES (NEW.n)"
    );
    for _ in 0..2 {
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM readings"), 0);
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM readings_low"), 0);
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM animals"), 0);
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM dogs"), 0);
        assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM outbox"), 0);
    }
    assert_eq!(cache.stats().hits, 5);
    // Into a partition: the partitioned table's rows changed too.
    exec!(ctx, "INSERT INTO readings_low VALUES (5, 1)");
    assert_eq!(
        scalar!(ctx, i64, "SELECT count(*) FROM readings"),
        1,
        "a partition's write shows in its table"
    );
    // Into the partitioned table: the row lands in a partition.
    exec!(ctx, "INSERT INTO readings VALUES (7, 1)");
    assert_eq!(
        scalar!(ctx, i64, "SELECT count(*) FROM readings_low"),
        2,
        "a table's write lands in its partition"
    );
    // Inheritance: a child's rows are its parent's, and a parent's DELETE reaches them.
    exec!(ctx, "INSERT INTO dogs VALUES ('rex', true)");
    assert_eq!(
        scalar!(ctx, i64, "SELECT count(*) FROM animals"),
        1,
        "a child's write shows in its parent"
    );
    assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM dogs"), 1);
    exec!(ctx, "DELETE FROM animals");
    assert_eq!(
        scalar!(ctx, i64, "SELECT count(*) FROM dogs"),
        0,
        "a parent's DELETE reaches its child"
    );
    // A rule writes a table the statement does not name.
    exec!(ctx, "INSERT INTO inbox VALUES (1)");
    assert_eq!(
        scalar!(ctx, i64, "SELECT count(*) FROM outbox"),
        1,
        "what the rule wrote is not stale"
    );
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sequences_and_row_level_security_are_never_cached() {
    let cache = scenario_cache();
    let Some(ctx) = Ctx::postgres(cache.clone()).await else {
        return;
    };
    exec!(
        ctx,
        "CREATE TABLE docs (id BIGSERIAL PRIMARY KEY, tenant TEXT)"
    );
    exec!(ctx, "CREATE SEQUENCE tickets");
    // A policy on a session setting: two sessions see two sets of rows for one SQL.
    exec!(ctx, "ALTER TABLE docs ENABLE ROW LEVEL SECURITY");
    exec!(
        ctx,
        "CREATE POLICY own ON docs USING (tenant = current_setting('app.tenant', true))"
    );
    exec!(ctx, "CREATE VIEW docs_seen AS SELECT * FROM docs");
    exec!(ctx, "CREATE TABLE plain (id INT)");
    let before = cache.stats();
    for sql in [
        "SELECT last_value FROM tickets",
        "SELECT count(*) FROM docs",
        "SELECT count(*) FROM docs_seen",
    ] {
        for _ in 0..2 {
            let _ = scalar!(ctx, i64, sql);
        }
    }
    let after = cache.stats();
    assert_eq!((after.misses, after.hits), (before.misses, before.hits));
    assert_eq!(
        after.bypasses.not_cacheable - before.bypasses.not_cacheable,
        6
    );
    // The sequence moves with no write naming it.
    let _: i64 = sqlx::query_scalar("SELECT nextval('tickets')")
        .fetch_one(&ctx.db)
        .await
        .unwrap();
    let last = scalar!(ctx, i64, "SELECT last_value FROM tickets");
    assert_eq!(last, 1);
    // Other tables are cached as ever.
    assert_eq!(
        (
            scalar!(ctx, i64, "SELECT count(*) FROM plain"),
            scalar!(ctx, i64, "SELECT count(*) FROM plain")
        ),
        (0, 0)
    );
    assert_eq!(cache.stats().hits, after.hits + 1);
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_sequences_are_never_cached() {
    let cache = scenario_cache();
    let Some(ctx) = Ctx::mysql(cache.clone()).await else {
        return;
    };
    exec!(ctx, "CREATE SEQUENCE tickets");
    let before = cache.stats();
    for _ in 0..2 {
        let _ = scalar!(ctx, i64, "SELECT next_not_cached_value FROM tickets");
    }
    let after = cache.stats();
    assert_eq!((after.misses, after.hits), (before.misses, before.hits));
    assert_eq!(
        after.bypasses.not_cacheable - before.bypasses.not_cacheable,
        2
    );
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_functions_are_taken_at_the_catalogs_word() {
    let cache = scenario_cache();
    let Some(ctx) = Ctx::postgres(cache.clone()).await else {
        return;
    };
    exec!(ctx, "CREATE TABLE items (id INT PRIMARY KEY)");
    exec!(ctx, "CREATE TABLE prices (id INT PRIMARY KEY, p INT)");
    exec!(ctx, "CREATE TABLE counters (n INT)");
    exec!(ctx, "INSERT INTO items VALUES (1), (2)");
    exec!(ctx, "INSERT INTO prices VALUES (1, 10)");
    exec!(ctx, "INSERT INTO counters VALUES (0)");
    exec!(
        ctx,
        "CREATE FUNCTION double_it(x INT) RETURNS INT IMMUTABLE LANGUAGE sql AS 'SELECT x * 2'"
    );
    exec!(
        ctx,
        "CREATE FUNCTION price_of(i INT) RETURNS INT STABLE LANGUAGE sql AS 'SELECT p FROM prices WHERE id = i'"
    );
    exec!(
        ctx,
        "CREATE FUNCTION bump() RETURNS INT VOLATILE LANGUAGE sql AS 'UPDATE counters SET n = n + 1 RETURNING n'"
    );
    // IMMUTABLE: cached, and invalidated by a write to the table read.
    assert_eq!(
        (
            scalar!(ctx, i64, "SELECT sum(double_it(id))::bigint FROM items"),
            scalar!(ctx, i64, "SELECT sum(double_it(id))::bigint FROM items")
        ),
        (6, 6)
    );
    assert_eq!(
        cache.stats().hits,
        1,
        "a query of an IMMUTABLE function is cached"
    );
    exec!(ctx, "INSERT INTO items VALUES (3)");
    assert_eq!(
        scalar!(ctx, i64, "SELECT sum(double_it(id))::bigint FROM items"),
        12
    );
    assert_eq!(
        scalar!(ctx, i64, "SELECT sum(double_it(id))::bigint FROM items"),
        12
    );
    let hits = cache.stats().hits;
    // STABLE: never cached, and it invalidates nothing.
    assert_eq!(
        (
            scalar!(ctx, i32, "SELECT price_of(1)"),
            scalar!(ctx, i32, "SELECT price_of(1)")
        ),
        (10, 10)
    );
    exec!(ctx, "UPDATE prices SET p = 11");
    assert_eq!(
        scalar!(ctx, i32, "SELECT price_of(1)"),
        11,
        "the function's table changed"
    );
    assert_eq!(
        scalar!(ctx, i64, "SELECT sum(double_it(id))::bigint FROM items"),
        12
    );
    assert_eq!(
        cache.stats().hits,
        hits + 1,
        "a STABLE function's call invalidated nothing"
    );
    // A view calling the IMMUTABLE one is cached, and follows its table.
    exec!(
        ctx,
        "CREATE VIEW doubled AS SELECT double_it(id) AS d FROM items"
    );
    assert_eq!(
        (
            scalar!(ctx, i64, "SELECT count(*) FROM doubled"),
            scalar!(ctx, i64, "SELECT count(*) FROM doubled")
        ),
        (3, 3)
    );
    assert_eq!(
        cache.stats().hits,
        hits + 2,
        "a view of an IMMUTABLE function is cached"
    );
    exec!(ctx, "DELETE FROM items WHERE id = 3");
    assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM doubled"), 2);
    // VOLATILE: may write anything, so it invalidates everything.
    let n: i32 = sqlx::query_scalar("SELECT bump()")
        .fetch_one(&ctx.db)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let misses = cache.stats().misses;
    assert_eq!(scalar!(ctx, i64, "SELECT count(*) FROM doubled"), 2);
    assert_eq!(
        cache.stats().misses,
        misses + 1,
        "a VOLATILE function's call invalidated everything"
    );
    ctx.cleanup().await;
}
