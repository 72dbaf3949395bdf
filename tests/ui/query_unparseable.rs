use cachalot::{CachedPool, cached_query_as};

async fn read(db: &CachedPool<sqlx::Sqlite>) -> Result<Vec<(i64,)>, sqlx::Error> {
    cached_query_as!(_, db, "SELEKT id FROM items")
        .fetch_all()
        .await
}

fn main() {}
