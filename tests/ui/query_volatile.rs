use cachalot::{CachedPool, cached_query_scalar};

async fn recent(db: &CachedPool<sqlx::Postgres>) -> Result<i64, sqlx::Error> {
    cached_query_scalar!(
        i64,
        db,
        "SELECT count(*) FROM items WHERE created > now() - interval '1 day'"
    )
    .fetch_one()
    .await
}

// Valid SQLite, but not in the other dialects: the arguments must match the placeholders.
async fn arguments(db: &CachedPool<sqlx::Sqlite>) -> Result<i64, sqlx::Error> {
    cached_query_scalar!(
        i64,
        db,
        "SELECT count(*) FROM items WHERE id = ? AND name = ?",
        1_i64
    )
    .fetch_one()
    .await
}

fn main() {}
