//! The analysis memo: a repeated SQL string costs one hash and one string comparison.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::Analysis;

/// The hash of an SQL string that the memo is keyed by (xxh3-64). `const`, so that the macros
/// can bake it into their expansion.
///
/// ```
/// const H: u64 = cachalot_core::sql::sql_hash("SELECT 1");
/// assert_eq!(H, cachalot_core::sql::sql_hash("SELECT 1"));
/// ```
pub const fn sql_hash(sql: &str) -> u64 {
    xxhash_rust::const_xxh3::xxh3_64(sql.as_bytes())
}

/// The same hash as [`sql_hash`], computed at run time by the vectorized implementation,
/// about ten times faster than the `const` one.
pub(crate) fn runtime_hash(sql: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(sql.as_bytes())
}

pub(crate) const DEFAULT_CAPACITY: usize = 16 * 1024;
const SHARDS: usize = 16;

type Shard = HashMap<u64, (Box<str>, Arc<Analysis>), crate::hashing::BuildMix>;

/// A bounded map from SQL text to its analysis, sharded so readers rarely meet.
pub(crate) struct Memo {
    shards: Vec<RwLock<Shard>>,
    per_shard: usize,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish()
    }
}

impl Memo {
    pub(crate) fn new(capacity: usize) -> Self {
        Memo {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        // The low bits pick the bucket inside a shard; the high bits pick the shard.
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    pub(crate) fn get(&self, hash: u64, sql: &str) -> Option<Arc<Analysis>> {
        let shard = self.shard(hash).read().ok()?;
        match shard.get(&hash) {
            Some((text, analysis)) if &**text == sql => Some(analysis.clone()),
            _ => None,
        }
    }

    pub(crate) fn insert(&self, hash: u64, sql: &str, analysis: Arc<Analysis>) {
        let Ok(mut shard) = self.shard(hash).write() else {
            return;
        };
        // Generated SQL (IN lists of every length) must not grow the memo without bound;
        // starting the shard afresh is crude but keeps the lookup path free of bookkeeping.
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(hash, (sql.into(), analysis));
    }
}

#[cfg(test)]
mod tests {
    use super::{runtime_hash, sql_hash};

    #[test]
    fn runtime_and_const_hashes_agree() {
        let long = "SELECT * FROM t WHERE a = 1 AND ".repeat(100);
        for sql in [
            "",
            "S",
            "SELECT 1",
            "SELECT * FROM users WHERE id = $1",
            long.as_str(),
        ] {
            for end in 0..sql.len().min(300) {
                assert_eq!(runtime_hash(&sql[..end]), sql_hash(&sql[..end]));
            }
            assert_eq!(runtime_hash(sql), sql_hash(sql));
        }
    }
}
