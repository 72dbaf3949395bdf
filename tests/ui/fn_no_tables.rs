use cachalot::{CachedPool, cached_query};

#[cached_query]
async fn constant(db: &CachedPool<sqlx::Sqlite>) -> Result<i64, sqlx::Error> {
    let _ = db;
    Ok(42)
}

// SQL that is not a literal hides the tables it reads.
#[cached_query]
async fn dynamic(db: &CachedPool<sqlx::Sqlite>, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(db)
        .await
}

// So does a function the pool is handed to.
#[cached_query]
async fn delegating(db: &CachedPool<sqlx::Sqlite>) -> Result<i64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(db)
        .await?;
    Ok(n + helper(db).await?)
}

async fn helper(db: &CachedPool<sqlx::Sqlite>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM owners")
        .fetch_one(db)
        .await
}

fn main() {}
