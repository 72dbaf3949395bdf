//! Transactions: isolation detection, publication rules and failed commits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cachalot::{Attach, BypassReason, Cachalot};
use common::{MySqlFixture, PgFixture};

async fn setup_pg() -> Option<(PgFixture, Cachalot, cachalot::CachedPool<sqlx::Postgres>)> {
    let fx = PgFixture::new().await?;
    let cache = Cachalot::builder().build().unwrap();
    let db = cache.attach(fx.pool.clone());
    for sql in [
        "CREATE TABLE a (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)",
        "CREATE TABLE b (id BIGINT PRIMARY KEY, a_id BIGINT REFERENCES a (id) DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO a VALUES (1, 10), (2, 20)",
    ] {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    Some((fx, cache, db))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_committed_transactions_share_clean_reads() {
    let Some((fx, cache, db)) = setup_pg().await else {
        return;
    };
    let read = "SELECT v FROM a WHERE id = 1";
    let mut tx = db.begin().await.unwrap();
    assert_eq!(tx.query_scalar::<i64>(read).fetch_one().await.unwrap(), 10);
    // Published by the transaction's miss: the pool's read is a hit.
    assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 10);
    assert_eq!(cache.stats().hits, 1);
    // Once the transaction writes `a`, its reads of `a` bypass the cache.
    sqlx::query("UPDATE a SET v = 11 WHERE id = 1")
        .execute(&mut tx)
        .await
        .unwrap();
    assert_eq!(tx.query_scalar::<i64>(read).fetch_one().await.unwrap(), 11);
    assert_eq!(cache.stats().bypasses.get(BypassReason::Transaction), 1);
    assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 10);
    tx.commit().await.unwrap();
    assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 11);
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_session_settings_make_the_rest_of_a_transaction_bypass_the_cache() {
    let Some((fx, cache, db)) = setup_pg().await else {
        return;
    };
    // A schema of the same layout, with other rows, that a search_path can point to.
    let alt = format!("{}_alt", fx.schema);
    for sql in [
        format!("CREATE SCHEMA \"{alt}\""),
        format!("CREATE TABLE \"{alt}\".a (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)"),
        format!("INSERT INTO \"{alt}\".a VALUES (1, 99)"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&fx.admin)
            .await
            .unwrap();
    }
    let read = "SELECT v FROM a WHERE id = 1";
    let search_alt = format!("SET LOCAL search_path = \"{alt}\"");
    for cached_before in [true, false] {
        db.invalidate(&["a"]).await;
        if cached_before {
            assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 10);
        }
        let mut tx = db.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(search_alt.clone()))
            .execute(&mut tx)
            .await
            .unwrap();
        let bypasses = cache.stats().bypasses.get(BypassReason::Transaction);
        // The same SQL now names the other schema's table: never the cached answer...
        assert_eq!(tx.query_scalar::<i64>(read).fetch_one().await.unwrap(), 99);
        assert_eq!(
            cache.stats().bypasses.get(BypassReason::Transaction),
            bypasses + 1
        );
        tx.commit().await.unwrap();
        // ... and never stored for the pool, whose search_path is its own schema.
        assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 10);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{alt}\" CASCADE"
    )))
    .execute(&fx.admin)
    .await
    .unwrap();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_repeatable_read_and_serializable_bypass_the_cache() {
    let Some((fx, cache, db)) = setup_pg().await else {
        return;
    };
    let read = "SELECT v FROM a WHERE id = 2";
    assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 20);

    let mut tx = db
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    assert_eq!(tx.query_scalar::<i64>(read).fetch_one().await.unwrap(), 20);
    // Another session commits a change; the snapshot must not see it, cached or not.
    sqlx::query("UPDATE a SET v = 21 WHERE id = 2")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 21);
    assert_eq!(tx.query_scalar::<i64>(read).fetch_one().await.unwrap(), 20);
    tx.commit().await.unwrap();

    // SET TRANSACTION seen through the executor.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        .execute(&mut tx)
        .await
        .unwrap();
    assert_eq!(tx.query_scalar::<i64>(read).fetch_one().await.unwrap(), 21);
    tx.commit().await.unwrap();
    assert_eq!(cache.stats().bypasses.get(BypassReason::Transaction), 3);
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failed_commit_still_invalidates() {
    let Some((fx, _cache, db)) = setup_pg().await else {
        return;
    };
    let read = "SELECT count(*) FROM b";
    assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 0);
    let mut tx = db.begin().await.unwrap();
    // The deferred foreign key fails only at COMMIT.
    sqlx::query("INSERT INTO b VALUES (1, 999)")
        .execute(&mut tx)
        .await
        .unwrap();
    let mut signals = db.subscribe();
    assert!(tx.commit().await.is_err());
    let signal = signals.try_recv().unwrap();
    assert_eq!(
        signal.table.as_deref(),
        Some("b"),
        "the failed commit invalidated b"
    );
    assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 0);
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_default_repeatable_read_bypasses_the_cache() {
    let Some(fx) = MySqlFixture::new().await else {
        return;
    };
    let cache = Cachalot::builder().build().unwrap();
    let db = cache.attach(fx.pool.clone());
    sqlx::query("CREATE TABLE a (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO a VALUES (1, 10)")
        .execute(&db)
        .await
        .unwrap();
    let read = "SELECT v FROM a WHERE id = 1";
    let mut tx = db.begin().await.unwrap();
    assert_eq!(tx.query_scalar::<i64>(read).fetch_one().await.unwrap(), 10);
    sqlx::query("UPDATE a SET v = 11 WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        tx.query_scalar::<i64>(read).fetch_one().await.unwrap(),
        10,
        "snapshot kept"
    );
    tx.commit().await.unwrap();
    assert_eq!(cache.stats().bypasses.get(BypassReason::Transaction), 2);
    assert_eq!(db.query_scalar::<i64>(read).fetch_one().await.unwrap(), 11);
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failed_commit_still_invalidates() {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            "sqlite::memory:"
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .foreign_keys(true),
        )
        .await
        .unwrap();
    let db = cachalot::CachedPool::new(pool);
    sqlx::query("CREATE TABLE a (id INTEGER PRIMARY KEY)")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id) DEFERRABLE INITIALLY DEFERRED)")
        .execute(&db)
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO b VALUES (1, 999)")
        .execute(&mut tx)
        .await
        .unwrap();
    let mut signals = db.subscribe();
    assert!(tx.commit().await.is_err());
    assert_eq!(signals.try_recv().unwrap().table.as_deref(), Some("b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_statements_that_commit_implicitly_invalidate_what_they_commit() {
    let Some(fx) = MySqlFixture::new().await else {
        return;
    };
    let cache = Cachalot::builder().build().unwrap();
    let db = cache.attach(fx.pool.clone());
    for sql in [
        "CREATE TABLE a (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)",
        "CREATE TABLE b (id BIGINT PRIMARY KEY)",
        "INSERT INTO a VALUES (1, 10)",
    ] {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    let read = "SELECT v FROM a WHERE id = 1";
    let value = || db.query_scalar::<i64>(read).fetch_one();
    for (n, commits) in [
        "TRUNCATE TABLE b",
        "CREATE TABLE c (id INT)",
        "DROP TABLE c",
    ]
    .into_iter()
    .enumerate()
    {
        let before = 10 + n as i64;
        assert_eq!(value().await.unwrap(), before);
        let mut tx = db.begin().await.unwrap();
        sqlx::query("UPDATE a SET v = v + 1 WHERE id = 1")
            .execute(&mut tx)
            .await
            .unwrap();
        assert_eq!(value().await.unwrap(), before, "not committed yet");
        // MySQL commits the UPDATE here, before the statement, and nothing undoes it.
        sqlx::query(commits).execute(&mut tx).await.unwrap();
        assert_eq!(
            value().await.unwrap(),
            before + 1,
            "{commits} committed the UPDATE"
        );
        tx.rollback().await.unwrap();
        assert_eq!(
            value().await.unwrap(),
            before + 1,
            "{commits}: the rollback undid nothing"
        );
    }
    // The same through a connection that began its transaction as a statement.
    let mut conn = db.acquire().await.unwrap();
    sqlx::query("START TRANSACTION")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE a SET v = v + 1 WHERE id = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(value().await.unwrap(), 13, "not committed yet");
    sqlx::query("TRUNCATE TABLE b")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(value().await.unwrap(), 14, "TRUNCATE committed the UPDATE");
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    drop(conn);
    assert_eq!(
        value().await.unwrap(),
        14,
        "TRUNCATE committed the connection's UPDATE"
    );
    sqlx::query("UPDATE a SET v = 13 WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    // A temporary table's creation commits nothing: the UPDATE stays the transaction's.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("UPDATE a SET v = 0 WHERE id = 1")
        .execute(&mut tx)
        .await
        .unwrap();
    sqlx::query("CREATE TEMPORARY TABLE scratch (id INT)")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(value().await.unwrap(), 13);
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commit_sent_as_a_statement_invalidates_what_it_commits() {
    let Some((fx, _cache, db)) = setup_pg().await else {
        return;
    };
    let read = "SELECT v FROM a WHERE id = 1";
    let value = || db.query_scalar::<i64>(read).fetch_one();
    assert_eq!(value().await.unwrap(), 10);
    let mut tx = db.begin().await.unwrap();
    sqlx::query("UPDATE a SET v = 11 WHERE id = 1")
        .execute(&mut tx)
        .await
        .unwrap();
    // Behind sqlx's back: the server's transaction ends here.
    sqlx::query("COMMIT").execute(&mut tx).await.unwrap();
    assert_eq!(value().await.unwrap(), 11, "the COMMIT invalidated a");
    // The connection now runs each statement on its own: this UPDATE commits as it runs.
    sqlx::query("UPDATE a SET v = 12 WHERE id = 1")
        .execute(&mut tx)
        .await
        .unwrap();
    assert_eq!(value().await.unwrap(), 12, "so it invalidates as it runs");
    assert_eq!(tx.query_scalar::<i64>(read).fetch_one().await.unwrap(), 12);
    drop(tx);
    assert_eq!(value().await.unwrap(), 12);

    // And a transaction that began again is one again: nothing is seen before its COMMIT.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("COMMIT").execute(&mut tx).await.unwrap();
    sqlx::query("BEGIN").execute(&mut tx).await.unwrap();
    sqlx::query("UPDATE a SET v = 13 WHERE id = 1")
        .execute(&mut tx)
        .await
        .unwrap();
    assert_eq!(value().await.unwrap(), 12);
    sqlx::query("COMMIT").execute(&mut tx).await.unwrap();
    assert_eq!(value().await.unwrap(), 13);
    tx.rollback().await.unwrap();
    assert_eq!(value().await.unwrap(), 13);
    fx.cleanup().await;
}
