use cachalot::{CachedPool, cached_query_scalar};

async fn write(db: &CachedPool<sqlx::Sqlite>) -> Result<i64, sqlx::Error> {
    cached_query_scalar!(
        i64,
        db,
        "UPDATE items SET name = ? WHERE id = ?",
        "x",
        1_i64
    )
    .fetch_one()
    .await
}

fn main() {}
