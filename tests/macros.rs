//! The macros at run time, on SQLite (in memory) and PostgreSQL: `cached_query_as!`,
//! `cached_query_scalar!` and `#[cached_query]` are hits the second time, are invalidated by a
//! write through the pool, then refreshed.
//!
//! `deny(warnings)`: no expansion may make a lint fire on user code.
#![deny(warnings)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachalot::{CachedPool, CachedTransaction, cached_query, cached_query_as, cached_query_scalar};
use common::PgFixture;
use sqlx::{Postgres, Sqlite};

#[derive(Clone, Debug, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
struct Item {
    id: i64,
    name: String,
}

const SCHEMA: [&str; 3] = [
    "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL)",
    "CREATE TABLE owners (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL)",
    "INSERT INTO items (id, name) VALUES (1, 'harpoon'), (2, 'compass')",
];

async fn sqlite() -> CachedPool<Sqlite> {
    let db = CachedPool::new(common::sqlite_memory().await);
    for sql in SCHEMA {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    db
}

async fn postgres() -> Option<(CachedPool<Postgres>, PgFixture)> {
    let fx = PgFixture::new().await?;
    let db = CachedPool::new(fx.pool.clone());
    for sql in SCHEMA {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    Some((db, fx))
}

/// Hits and misses since `before`.
fn delta<DB: cachalot::CacheDatabase>(db: &CachedPool<DB>, before: cachalot::Stats) -> (u64, u64)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let now = db.stats();
    (now.hits - before.hits, now.misses - before.misses)
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

// ---------------------------------------------------------------------------------------------
// cached_query_as! and cached_query_scalar!

#[tokio::test]
async fn query_macros_sqlite() {
    let db = sqlite().await;
    let before = db.stats();
    let read = || {
        cached_query_as!(Item, &db, "SELECT id, name FROM items WHERE id = ?", 1_i64).fetch_one()
    };
    assert_eq!(read().await.unwrap().name, "harpoon");
    assert_eq!(read().await.unwrap().name, "harpoon");
    assert_eq!(delta(&db, before), (1, 1));

    sqlx::query("UPDATE items SET name = 'lance' WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(read().await.unwrap().name, "lance");
    assert_eq!(read().await.unwrap().name, "lance");
    assert_eq!(delta(&db, before), (2, 2));

    // Scalars, rows of the type asked for by the context, the dialect option, a trailing comma.
    let count = || cached_query_scalar!(i64, &db, "SELECT count(*) FROM items").fetch_one();
    assert_eq!(count().await.unwrap(), 2);
    assert_eq!(count().await.unwrap(), 2);
    let pairs: Vec<(i64, String)> = cached_query_as!(
        dialect = sqlite,
        _,
        &db,
        "SELECT id, name FROM items WHERE id >= ? AND name <> ? ORDER BY id",
        1_i64,
        "nothing",
    )
    .fetch_all()
    .await
    .unwrap();
    assert_eq!(pairs, [(1, "lance".to_owned()), (2, "compass".to_owned())]);
    assert_eq!(delta(&db, before), (3, 4));

    sqlx::query("INSERT INTO items (id, name) VALUES (3, 'lantern')")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(count().await.unwrap(), 3);

    // A reference to the pool, and a pool in a struct field, are sources too.
    let by_ref = &db;
    let names: Vec<String> =
        cached_query_scalar!(String, by_ref, "SELECT name FROM items ORDER BY id")
            .fetch_all()
            .await
            .unwrap();
    assert_eq!(names.len(), 3);
    struct State {
        db: CachedPool<Sqlite>,
    }
    let state = State { db: db.clone() };
    let name: Option<String> = cached_query_scalar!(
        String,
        state.db,
        "SELECT name FROM items WHERE id = ?",
        3_i64
    )
    .fetch_optional()
    .await
    .unwrap();
    assert_eq!(name.as_deref(), Some("lantern"));
}

#[tokio::test]
async fn query_macros_in_a_transaction() {
    let db = sqlite().await;
    let mut tx: CachedTransaction<'_, Sqlite> = db.begin().await.unwrap();
    let item = cached_query_as!(
        Item,
        &mut tx,
        "SELECT id, name FROM items WHERE id = ?",
        2_i64
    )
    .fetch_one()
    .await
    .unwrap();
    assert_eq!(item.name, "compass");
    sqlx::query("UPDATE items SET name = 'sextant' WHERE id = 2")
        .execute(&mut tx)
        .await
        .unwrap();
    // A table the transaction wrote is read from the database, inside it.
    let tx_ref = &mut tx;
    let name = cached_query_scalar!(String, tx_ref, "SELECT name FROM items WHERE id = ?", 2_i64)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(name, "sextant");
    // `tx_ref` was reborrowed, not moved.
    let again = cached_query_scalar!(String, tx_ref, "SELECT name FROM items WHERE id = ?", 2_i64)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(again, "sextant");
    tx.commit().await.unwrap();
    let after = cached_query_scalar!(String, &db, "SELECT name FROM items WHERE id = ?", 2_i64)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(after, "sextant");
}

#[tokio::test]
async fn query_macros_postgres() {
    let Some((db, fx)) = postgres().await else {
        return;
    };
    let before = db.stats();
    let read = || {
        cached_query_as!(
            dialect = postgres,
            Item,
            &db,
            "SELECT id, name FROM items WHERE id = $1 OR id = $1",
            1_i64
        )
        .fetch_all()
    };
    assert_eq!(read().await.unwrap()[0].name, "harpoon");
    assert_eq!(read().await.unwrap()[0].name, "harpoon");
    assert_eq!(delta(&db, before), (1, 1));
    sqlx::query("UPDATE items SET name = 'lance' WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(read().await.unwrap()[0].name, "lance");
    assert_eq!(delta(&db, before), (1, 2));

    let count = || cached_query_scalar!(i64, &db, "SELECT count(*) FROM items").fetch_one();
    assert_eq!(count().await.unwrap(), 2);
    assert_eq!(count().await.unwrap(), 2);
    let mut tx = db.begin().await.unwrap();
    sqlx::query("DELETE FROM items WHERE id = 2")
        .execute(&mut tx)
        .await
        .unwrap();
    let inside = cached_query_scalar!(i64, &mut tx, "SELECT count(*) FROM items")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(inside, 1);
    tx.commit().await.unwrap();
    assert_eq!(count().await.unwrap(), 1);
    drop(db);
    fx.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// #[cached_query]: each function counts how often its body runs.

static NAMED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Named tables, a `Result`.
#[cached_query(tables = ["items"])]
async fn item_name(db: &CachedPool<Sqlite>, id: i64) -> Result<String, sqlx::Error> {
    NAMED_RUNS.fetch_add(1, Ordering::SeqCst);
    let name: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT name FROM items WHERE id = {id}"
    )))
    .fetch_one(db)
    .await?;
    Ok(name)
}

static INFERRED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Tables inferred from the body: `items` and `owners`.
#[cached_query]
async fn summary(db: &CachedPool<Sqlite>, mut prefix: String) -> sqlx::Result<String> {
    INFERRED_RUNS.fetch_add(1, Ordering::SeqCst);
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(db)
        .await?;
    let owners: i64 = cached_query_scalar!(i64, db, "SELECT count(*) FROM owners")
        .fetch_one()
        .await?;
    prefix.push_str(&format!("{items}/{owners}"));
    Ok(prefix)
}

static OPTION_RUNS: AtomicUsize = AtomicUsize::new(0);

/// An `Option`, cached as a value (`None` included).
#[cached_query]
async fn find(db: &CachedPool<Sqlite>, id: i64) -> Option<Item> {
    OPTION_RUNS.fetch_add(1, Ordering::SeqCst);
    sqlx::query_as("SELECT id, name FROM items WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await
        .ok()?
}

static PLAIN_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A plain value, the key given by an expression (the label is not part of it).
#[cached_query(key = id, tables = ["items"])]
async fn name_len(label: &str, db: &CachedPool<Sqlite>, id: i64) -> usize {
    PLAIN_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = label;
    let name: Result<String, _> = sqlx::query_scalar("SELECT name FROM items WHERE id = ?")
        .bind(id)
        .fetch_one(db)
        .await;
    name.map_or(0, |n| n.len())
}

static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_query(tables = ["items"], ttl = "300ms")]
async fn short_lived(db: &CachedPool<Sqlite>) -> Result<i64, sqlx::Error> {
    TTL_RUNS.fetch_add(1, Ordering::SeqCst);
    sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(db)
        .await
}

static ERR_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Errors are never cached.
#[cached_query(tables = ["missing"])]
async fn failing(db: &CachedPool<Sqlite>) -> Result<i64, sqlx::Error> {
    ERR_RUNS.fetch_add(1, Ordering::SeqCst);
    sqlx::query_scalar("SELECT count(*) FROM missing")
        .fetch_one(db)
        .await
}

type Db = CachedPool<Sqlite>;

/// The pool named explicitly (its type is an alias), a destructured parameter, a tuple key.
#[cached_query(pool = conn, key = (a, b))]
async fn sum((a, b): (i64, i64), conn: &Db) -> Result<i64, sqlx::Error> {
    cached_query_scalar!(i64, conn, "SELECT count(*) + ? + ? FROM items", a, b)
        .fetch_one()
        .await
}

/// Associated functions and methods, and a generic function.
struct Repo {
    table_hint: &'static str,
}

impl Repo {
    #[cached_query(tables = ["items"])]
    async fn max_id(db: &CachedPool<Sqlite>) -> Result<i64, sqlx::Error> {
        Self::read_max(db).await
    }

    async fn read_max(db: &CachedPool<Sqlite>) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT max(id) FROM items")
            .fetch_one(db)
            .await
    }

    #[cached_query(key = self.table_hint, tables = ["items"])]
    async fn hinted(&self, db: &CachedPool<Sqlite>) -> Result<String, sqlx::Error> {
        Ok(format!("{}:{}", self.table_hint, Self::read_max(db).await?))
    }
}

#[cached_query(tables = ["items"])]
async fn default_of<T>(db: &CachedPool<Sqlite>) -> T
where
    T: Default + Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let _ = db;
    T::default()
}

#[tokio::test]
async fn cached_fn_with_named_tables() {
    let db = sqlite().await;
    let before = db.stats();
    let runs = || NAMED_RUNS.load(Ordering::SeqCst);
    let call = assert_send(item_name(&db, 1));
    assert_eq!(call.await.unwrap(), "harpoon");
    assert_eq!(item_name(&db, 1).await.unwrap(), "harpoon");
    assert_eq!((runs(), delta(&db, before)), (1, (1, 1)));
    // Another parameter, another entry.
    assert_eq!(item_name(&db, 2).await.unwrap(), "compass");
    assert_eq!(runs(), 2);
    // A write to another table keeps the entry; one to `items` invalidates it.
    sqlx::query("INSERT INTO owners (id, name) VALUES (1, 'ahab')")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(item_name(&db, 1).await.unwrap(), "harpoon");
    assert_eq!(runs(), 2);
    sqlx::query("UPDATE items SET name = 'lance' WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(item_name(&db, 1).await.unwrap(), "lance");
    assert_eq!(item_name(&db, 1).await.unwrap(), "lance");
    assert_eq!(runs(), 3);
    // The companion never uses the cache.
    assert_eq!(item_name_uncached(&db, 1).await.unwrap(), "lance");
    assert_eq!(item_name_uncached(&db, 1).await.unwrap(), "lance");
    assert_eq!(runs(), 5);
    // Nor does a handle that bypasses reads.
    assert_eq!(item_name(&db.uncached(), 1).await.unwrap(), "lance");
    assert_eq!(runs(), 6);
}

#[tokio::test]
async fn cached_fn_with_inferred_tables() {
    let db = sqlite().await;
    let runs = || INFERRED_RUNS.load(Ordering::SeqCst);
    assert_eq!(summary(&db, "n=".into()).await.unwrap(), "n=2/0");
    assert_eq!(summary(&db, "n=".into()).await.unwrap(), "n=2/0");
    assert_eq!(runs(), 1);
    assert_eq!(summary(&db, "m=".into()).await.unwrap(), "m=2/0");
    assert_eq!(runs(), 2);
    // Both inferred tables invalidate it.
    sqlx::query("INSERT INTO owners (id, name) VALUES (1, 'ahab')")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(summary(&db, "n=".into()).await.unwrap(), "n=2/1");
    assert_eq!(runs(), 3);
    sqlx::query("DELETE FROM items WHERE id = 2")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(summary(&db, "n=".into()).await.unwrap(), "n=1/1");
    assert_eq!(summary(&db, "n=".into()).await.unwrap(), "n=1/1");
    assert_eq!(runs(), 4);
}

#[tokio::test]
async fn cached_fn_returning_option_and_plain_values() {
    let db = sqlite().await;
    let runs = || OPTION_RUNS.load(Ordering::SeqCst);
    assert_eq!(assert_send(find(&db, 3)).await, None);
    assert_eq!(find(&db, 3).await, None);
    assert_eq!(runs(), 1);
    sqlx::query("INSERT INTO items (id, name) VALUES (3, 'lantern')")
        .execute(&db)
        .await
        .unwrap();
    let found = find(&db, 3).await;
    assert_eq!(found.map(|i| i.name).as_deref(), Some("lantern"));
    assert_eq!(runs(), 2);

    let plain = || PLAIN_RUNS.load(Ordering::SeqCst);
    assert_eq!(name_len("first", &db, 1).await, 7);
    assert_eq!(name_len("second", &db, 1).await, 7); // the label is not in the key
    assert_eq!(plain(), 1);
    assert_eq!(name_len("first", &db, 2).await, 7);
    assert_eq!(plain(), 2);
    sqlx::query("UPDATE items SET name = 'gaff' WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(name_len("first", &db, 1).await, 4);
    assert_eq!(plain(), 3);
}

#[tokio::test]
async fn cached_fn_ttl_errors_and_keys() {
    let db = sqlite().await;
    let ttl_runs = || TTL_RUNS.load(Ordering::SeqCst);
    assert_eq!(short_lived(&db).await.unwrap(), 2);
    assert_eq!(short_lived(&db).await.unwrap(), 2);
    assert_eq!(ttl_runs(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(short_lived(&db).await.unwrap(), 2);
    assert_eq!(ttl_runs(), 2);

    let err_runs = || ERR_RUNS.load(Ordering::SeqCst);
    assert!(failing(&db).await.is_err());
    assert!(failing(&db).await.is_err());
    assert_eq!(err_runs(), 2);

    assert_eq!(sum((1, 2), &db).await.unwrap(), 5);
    assert_eq!(sum((2, 1), &db).await.unwrap(), 5);
    let before = db.stats();
    assert_eq!(sum((1, 2), &db).await.unwrap(), 5);
    assert_eq!(delta(&db, before), (1, 0));

    // Methods and associated functions of one impl, generic functions per type.
    assert_eq!(Repo::max_id(&db).await.unwrap(), 2);
    assert_eq!(Repo::max_id_uncached(&db).await.unwrap(), 2);
    let a = Repo { table_hint: "a" };
    let b = Repo { table_hint: "b" };
    assert_eq!(a.hinted(&db).await.unwrap(), "a:2");
    assert_eq!(b.hinted(&db).await.unwrap(), "b:2");
    assert_eq!(a.hinted_uncached(&db).await.unwrap(), "a:2");
    assert_eq!(default_of::<i64>(&db).await, 0);
    assert_eq!(default_of::<String>(&db).await, "");
    let before = db.stats();
    assert_eq!(default_of::<i64>(&db).await, 0);
    assert_eq!(default_of::<String>(&db).await, "");
    assert_eq!(delta(&db, before), (2, 0));
}

// ---------------------------------------------------------------------------------------------
// #[cached_query] on PostgreSQL.

static PG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_query(dialect = postgres)]
async fn pg_names(db: &CachedPool<Postgres>, min: i64) -> Result<Vec<String>, sqlx::Error> {
    PG_RUNS.fetch_add(1, Ordering::SeqCst);
    sqlx::query_scalar("SELECT name FROM items WHERE id >= $1 ORDER BY id")
        .bind(min)
        .fetch_all(db)
        .await
}

static PG_NAMED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_query(tables = ["items", "owners"], ttl = "1h")]
async fn pg_count(db: &CachedPool<Postgres>) -> Option<i64> {
    PG_NAMED_RUNS.fetch_add(1, Ordering::SeqCst);
    sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(db)
        .await
        .ok()
}

#[tokio::test]
async fn cached_fn_postgres() {
    let Some((db, fx)) = postgres().await else {
        return;
    };
    let runs = || PG_RUNS.load(Ordering::SeqCst);
    assert_eq!(pg_names(&db, 1).await.unwrap(), ["harpoon", "compass"]);
    assert_eq!(pg_names(&db, 1).await.unwrap(), ["harpoon", "compass"]);
    assert_eq!(runs(), 1);
    sqlx::query("UPDATE items SET name = 'lance' WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(pg_names(&db, 1).await.unwrap(), ["lance", "compass"]);
    assert_eq!(pg_names(&db, 1).await.unwrap(), ["lance", "compass"]);
    assert_eq!(runs(), 2);
    assert_eq!(pg_names_uncached(&db, 2).await.unwrap(), ["compass"]);
    assert_eq!(runs(), 3);

    let named = || PG_NAMED_RUNS.load(Ordering::SeqCst);
    assert_eq!(pg_count(&db).await, Some(2));
    assert_eq!(pg_count(&db).await, Some(2));
    assert_eq!(named(), 1);
    // A committed transaction invalidates the tables it wrote.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO owners (id, name) VALUES (1, 'ahab')")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(pg_count(&db).await, Some(2));
    assert_eq!(named(), 2);
    drop(db);
    fx.cleanup().await;
}
