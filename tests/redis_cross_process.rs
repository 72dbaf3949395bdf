//! Two OS processes share the machine's Redis (under a prefix of this run) and a SQLite
//! file: a write made in one is seen by the other's next read as soon as the write returns.
//! The test binary runs itself again as the child, selected by an environment variable, and
//! drives it line by line over stdin/stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../cachalot-core/tests/redis_support/mod.rs"]
mod redis_support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use cachalot::{Cachalot, CachedPool};
use cachalot_core::backend::RedisBackend;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use redis_support::{purge, redis_url, unavailable, unique};

const TEST: &str = "a_write_in_one_process_is_seen_by_the_next_read_of_another";
const ROLE: &str = "CACHALOT_TEST_CHILD_DB";
const PREFIX: &str = "CACHALOT_TEST_CHILD_PREFIX";

async fn open(path: &Path, prefix: &str) -> Option<CachedPool<sqlx::Sqlite>> {
    let backend = match RedisBackend::builder(redis_url())
        .key_prefix(prefix)
        .build()
        .await
    {
        Ok(b) => b,
        Err(e) => return unavailable("Redis", e),
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let cache = Cachalot::builder().backend(backend).build().unwrap();
    Some(CachedPool::with_cache(pool, cache))
}

/// Reads through the cache; returns the value and whether it was a hit. The other process
/// looks for the entry next: a miss's store has landed when this returns.
async fn read(db: &CachedPool<sqlx::Sqlite>) -> (i64, bool) {
    let hits = db.stats().hits;
    let v = db
        .query_scalar::<i64>("SELECT coalesce(sum(v), 0) FROM items")
        .fetch_one()
        .await
        .unwrap();
    db.settle().await;
    (v, db.stats().hits > hits)
}

async fn write(db: &CachedPool<sqlx::Sqlite>, v: i64) {
    sqlx::query("INSERT INTO items (v) VALUES (?)")
        .bind(v)
        .execute(db)
        .await
        .unwrap();
}

/// The child: answers `read` and `write N` on stdin, one line each on stdout.
async fn child(path: String) {
    let prefix = std::env::var(PREFIX).unwrap();
    let db = open(Path::new(&path), &prefix).await.unwrap();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("read") => {
                let (v, hit) = read(&db).await;
                println!("CHILD {v} {}", if hit { "hit" } else { "miss" });
            }
            Some("write") => {
                write(&db, words.next().unwrap().parse().unwrap()).await;
                println!("CHILD written");
            }
            Some("tx") => {
                let mut tx = db.begin().await.unwrap();
                sqlx::query("UPDATE items SET v = v + 1")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                println!("CHILD committed");
            }
            _ => break,
        }
    }
}

struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn ask(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        loop {
            let mut answer = String::new();
            assert!(
                self.stdout.read_line(&mut answer).unwrap() > 0,
                "the child died"
            );
            // The harness's "test ... " line has no newline before the test's output.
            if let Some(at) = answer.find("CHILD ") {
                return answer[at + 6..].trim_end().to_owned();
            }
        }
    }

    fn read(&mut self) -> (i64, bool) {
        let answer = self.ask("read");
        let (v, how) = answer.split_once(' ').unwrap();
        (v.parse().unwrap(), how == "hit")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_one_process_is_seen_by_the_next_read_of_another() {
    if let Ok(path) = std::env::var(ROLE) {
        return child(path).await;
    }
    let prefix = unique("xproc");
    let path = std::env::temp_dir().join(format!("{}.sqlite3", unique("xproc")));
    let Some(db) = open(&path, &prefix).await else {
        return;
    };
    sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        .execute(&db)
        .await
        .unwrap();
    write(&db, 1).await;

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
        .env(ROLE, &path)
        .env(PREFIX, &prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peer = Peer {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
    };

    // The child caches; this process is served the child's entry.
    assert_eq!(peer.read(), (1, false));
    assert_eq!(peer.read(), (1, true));
    assert_eq!(read(&db).await, (1, true));

    let mut expected = 1;
    for round in 0..20 {
        // A write here, returned: the child's very next read sees it.
        write(&db, round).await;
        expected += round;
        assert_eq!(peer.read(), (expected, false), "round {round}");
        assert_eq!(peer.read(), (expected, true));
        // And the other way round.
        assert_eq!(peer.ask(&format!("write {round}")), "written");
        expected += round;
        assert_eq!(read(&db).await, (expected, false), "round {round}");
        assert_eq!(read(&db).await, (expected, true));
    }
    // A transaction committed in the child.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(db.inner())
        .await
        .unwrap();
    assert_eq!(peer.ask("tx"), "committed");
    expected += rows;
    assert_eq!(read(&db).await.0, expected);
    assert_eq!(peer.read().0, expected);

    drop(peer.stdin);
    assert!(peer.child.wait().unwrap().success());
    assert_eq!(db.stats().backend_errors, 0);
    db.inner().close().await;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    purge(&redis_url(), &prefix).await;
}
