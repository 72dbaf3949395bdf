use cachalot::{CachedPool, cached_query};

#[cached_query]
async fn touch(db: &CachedPool<sqlx::Sqlite>, id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query("UPDATE items SET seen = seen + 1 WHERE id = ?")
        .bind(id)
        .execute(db)
        .await?;
    sqlx::query_scalar("SELECT seen FROM items WHERE id = ?")
        .bind(id)
        .fetch_one(db)
        .await
}

#[cached_query]
async fn locked(db: &CachedPool<sqlx::Sqlite>) -> Result<Vec<(i64,)>, sqlx::Error> {
    sqlx::query_as("SELECT id FROM items WHERE added > datetime('now')")
        .fetch_all(db)
        .await
}

fn main() {}
