use cachalot::{CachedPool, cached_query};

#[cached_query(tables = ["items"])]
async fn no_pool(id: i64) -> Option<i64> {
    Some(id)
}

#[cached_query(tables = ["items"], pool = database)]
async fn misnamed(db: &CachedPool<sqlx::Sqlite>) -> Option<i64> {
    let _ = db;
    None
}

struct Repo;

impl Repo {
    #[cached_query(tables = ["items"])]
    async fn method(&self, db: &CachedPool<sqlx::Sqlite>) -> Option<i64> {
        let _ = db;
        None
    }
}

fn main() {}
