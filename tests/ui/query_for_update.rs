use cachalot::{CachedPool, cached_query_as};

async fn lock(db: &CachedPool<sqlx::Postgres>) -> Result<Vec<(i64,)>, sqlx::Error> {
    cached_query_as!(
        dialect = postgres,
        _,
        db,
        "SELECT id FROM items WHERE id = $1 FOR UPDATE",
        1_i64
    )
    .fetch_all()
    .await
}

fn main() {}
