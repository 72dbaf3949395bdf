use cachalot::{CachedPool, cached_query};

#[cached_query(tables = ["items"], ttl = "10 minutes")]
async fn words(db: &CachedPool<sqlx::Sqlite>) -> Option<i64> {
    let _ = db;
    None
}

#[cached_query(tables = ["items"], ttl = "0s")]
async fn zero(db: &CachedPool<sqlx::Sqlite>) -> Option<i64> {
    let _ = db;
    None
}

#[cached_query(tables = ["items"], refresh = true)]
async fn unknown(db: &CachedPool<sqlx::Sqlite>) -> Option<i64> {
    let _ = db;
    None
}

#[cached_query(tables = ["items"])]
fn not_async(db: &CachedPool<sqlx::Sqlite>) -> Option<i64> {
    let _ = db;
    None
}

fn main() {}
