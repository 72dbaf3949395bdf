//! Redis fixtures: the machine's Redis with a unique key prefix, private `redis-server`
//! processes on free loopback ports (stopped, restarted, counted), and a 3-node Redis Cluster.
//! A missing server or binary skips the test (prints a line), or fails it with
//! CACHALOT_REQUIRE_SERVICES=1. Only processes started here are ever stopped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachalot_core::backend::RedisBackend;
use deadpool_redis::redis;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether a missing server must fail the test rather than skip it.
pub fn services_required() -> bool {
    std::env::var("CACHALOT_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (returns `None`) or panics when a server does not answer.
pub fn unavailable<T>(what: &str, error: impl std::fmt::Display) -> Option<T> {
    if services_required() {
        panic!("{what} is required (CACHALOT_REQUIRE_SERVICES=1) but unavailable: {error}");
    }
    println!("skipped: {what} unavailable: {error}");
    None
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A key prefix (or name) no other test, process or run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "cachalot-test-{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A backend on the machine's Redis under a fresh prefix, or `None` (skipped). Purge its
/// keys with [`purge`] at the end; keys of test processes that died are purged here.
pub async fn shared_backend(name: &str) -> Option<RedisBackend> {
    match RedisBackend::builder(redis_url())
        .key_prefix(unique(name))
        .build()
        .await
    {
        Ok(backend) => {
            purge_stale(&redis_url()).await;
            Some(backend)
        }
        Err(e) => unavailable("Redis", e),
    }
}

/// Deletes the keys of test runs whose process is gone (once per process).
async fn purge_stale(url: &str) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    let mut c = raw(url).await;
    let mut cursor = 0_u64;
    let mut dead = std::collections::HashSet::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("cachalot-test-*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .unwrap();
        for key in keys {
            let prefix = key.split(':').next().unwrap_or_default();
            let pid = prefix
                .rsplit('-')
                .nth(2)
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && pid != std::process::id()
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                dead.insert(prefix.to_owned());
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for prefix in dead {
        purge(url, &prefix).await;
    }
}

/// A plain connection for checks and clean-up.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes every key under `prefix` (test clean-up only: it drops locks too).
pub async fn purge(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let pattern = format!("{prefix}:*");
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut c)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

/// The keys under `prefix` (standalone servers only).
pub async fn keys(url: &str, prefix: &str) -> Vec<String> {
    let mut c = raw(url).await;
    let mut out: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    out.sort();
    out
}

/// `calls` per command from `INFO commandstats` (e.g. `"evalsha"`).
pub async fn commandstats(url: &str) -> HashMap<String, u64> {
    let mut c = raw(url).await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut out = HashMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        let calls = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.insert(name.to_owned(), calls);
    }
    out
}

/// Commands run between two [`commandstats`] snapshots, the given ones left out.
pub fn delta(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
    ignore: &[&str],
) -> HashMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| !ignore.contains(&name.as_str()))
        .filter_map(|(name, &n)| {
            let d = n - before.get(name).copied().unwrap_or(0);
            (d > 0).then(|| (name.clone(), d))
        })
        .collect()
}

/// A loopback port that is free now (and whose cluster bus port, +10000, is free too).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port > 55_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn redis_server_binary() -> Option<String> {
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| bin)
}

/// A `redis-server` this test started, on a free loopback port, keeping nothing on disk.
/// Dropped, it is killed (this process only ever kills its own children).
pub struct PrivateRedis {
    pub port: u16,
    bin: String,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one, or `None` (skipped) if `redis-server` is not installed.
    pub async fn start(extra: &[&str]) -> Option<Self> {
        let Some(bin) = redis_server_binary() else {
            return unavailable("redis-server binary", "not found on PATH");
        };
        let dir = std::env::temp_dir().join(unique("redis-dir"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = PrivateRedis {
            port: free_port(),
            bin,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.spawn().await;
        Some(server)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir"])
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none());
        self.child = Some(self.command().spawn().unwrap());
        wait_for_ping(&format!("redis://127.0.0.1:{}", self.port), &self.extra).await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: nothing is saved, nothing is said to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until the server at `url` answers PING (a password in `extra` is used).
async fn wait_for_ping(url: &str, extra: &[String]) {
    let password = extra
        .iter()
        .position(|a| a == "--requirepass")
        .and_then(|i| extra.get(i + 1));
    let url = match password {
        Some(p) => url.replacen("redis://", &format!("redis://:{p}@"), 1),
        None => url.to_owned(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(client) = redis::Client::open(url.as_str())
            && let Ok(mut c) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server at {url} did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A 3-node Redis Cluster (no replicas) on free loopback ports, started by the test.
pub struct PrivateCluster {
    pub nodes: Vec<PrivateRedis>,
}

impl PrivateCluster {
    pub async fn start() -> Option<Self> {
        let cli = std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into());
        if Command::new(&cli)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            return unavailable("redis-cli binary", "not found on PATH");
        }
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let dir = std::env::temp_dir().join(unique("redis-cluster"));
            std::fs::create_dir_all(&dir).unwrap();
            let conf = dir.join("nodes.conf");
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                conf.to_str().unwrap(),
                "--cluster-node-timeout",
                "2000",
            ];
            let node = PrivateRedis::start(&extra).await?;
            nodes.push(node);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = PrivateCluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &cluster.nodes {
            let mut c = raw(&node.url()).await;
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster never got ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Some(cluster)
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(PrivateRedis::url).collect()
    }
}

impl PrivateRedis {
    /// Freezes the server (SIGSTOP): it keeps its data and its connections but answers
    /// nothing until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Unfreezes it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server runs");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A TCP proxy on a free loopback port in front of a Redis server, that can be cut (every
/// connection through it closed, new ones refused) and restored: one process partitioned
/// from Redis while the others still reach it.
pub struct Proxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream_port: u16) -> Self {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (cut, tasks) = (cut.clone(), tasks.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        let Ok(mut server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                        else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                    tasks.lock().unwrap().push(task);
                }
            })
        };
        Proxy {
            port,
            cut,
            tasks,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}
