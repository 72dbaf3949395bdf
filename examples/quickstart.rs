//! The quickstart: SQLite in memory and the in-process memory backend, no server needed.
//!
//! `cargo run --example quickstart`
use cachalot::{Attach, Cachalot, CachedPool};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
struct Fish {
    id: i64,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Cachalot::builder().build()?;
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    let db: CachedPool<sqlx::Sqlite> = cache.attach(pool);
    let mut signals = db.subscribe();

    sqlx::query("CREATE TABLE fish (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&db)
        .await?;
    sqlx::query("INSERT INTO fish (name) VALUES ('cachalot'), ('orca')")
        .execute(&db)
        .await?;

    let read = || {
        db.query_as::<Fish>("SELECT id, name FROM fish WHERE id >= ? ORDER BY id")
            .bind(1_i64)
            .fetch_all()
    };

    let first = read().await?;
    println!("1st read (miss):      {first:?}  {:?}", db.stats());
    let second = read().await?;
    println!("2nd read (hit):       {second:?}  {:?}", db.stats());

    while signals.try_recv().is_ok() {} // the set-up's own invalidations

    sqlx::query("INSERT INTO fish (name) VALUES (?)")
        .bind("narwhal")
        .execute(&db)
        .await?;
    while let Ok(signal) = signals.try_recv() {
        println!("invalidation signal:  {signal:?}");
    }

    let third = read().await?;
    println!("after the write:      {third:?}  {:?}", db.stats());
    assert_eq!(third.len(), 3, "the write must be visible at once");
    for fish in &third {
        println!("  #{} {}", fish.id, fish.name);
    }

    let stats = db.stats();
    println!(
        "hits {}, misses {}, stores {}, invalidations {}",
        stats.hits, stats.misses, stats.stores, stats.invalidations
    );
    Ok(())
}
