//! The read sets already built, by analysis and database: `decide` runs on every read, and
//! building a [`ReadSet`] (a table id per table, each with its own allocation and hashes)
//! would otherwise cost more than the rest of a hit.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::read::ReadSet;
use crate::hashing::BuildMix;
use crate::sql::Analysis;

const SHARDS: usize = 8;

/// A shard never holds more: past it, the shard starts again empty (an analysis evicted from
/// the analyzer's memo comes back as a new `Arc`, so old entries would otherwise pile up).
const SHARD_CAPACITY: usize = 1024;

/// Keyed by the addresses of the analysis and of the database name. Both are kept alive by
/// the value (the analysis by its `Arc`, the name inside the read set), so an address can
/// never be reused by another analysis or database while its entry exists.
type Key = (usize, usize);

type Shard = HashMap<Key, (Arc<Analysis>, ReadSet), BuildMix>;

pub(crate) struct ReadSets {
    shards: [RwLock<Shard>; SHARDS],
}

impl Default for ReadSets {
    fn default() -> Self {
        ReadSets {
            shards: std::array::from_fn(|_| RwLock::default()),
        }
    }
}

impl ReadSets {
    /// The read set of `analysis` on `database`, built once.
    pub(crate) fn get(&self, database: &Arc<str>, analysis: &Arc<Analysis>) -> ReadSet {
        let key = (
            Arc::as_ptr(analysis) as usize,
            Arc::as_ptr(database).cast::<u8>() as usize,
        );
        // Analyses are heap blocks at least 8-aligned: the low bits carry nothing.
        let shard = &self.shards[(key.0 >> 4) % SHARDS];
        if let Some((_, reads)) = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return reads.clone();
        }
        let reads = ReadSet::new(database, analysis.reads.iter().map(|t| t.name.as_str()));
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SHARD_CAPACITY {
            map.clear();
        }
        map.insert(key, (analysis.clone(), reads.clone()));
        reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Analyzer, Dialect};

    #[test]
    fn one_read_set_per_analysis_and_database() {
        let sets = ReadSets::default();
        let analyzer = Analyzer::new(Dialect::Postgres);
        let a = analyzer.analyze("SELECT * FROM b JOIN a ON a.id = b.id");
        let (one, two): (Arc<str>, Arc<str>) = (Arc::from("one"), Arc::from("two"));
        let first = sets.get(&one, &a);
        assert_eq!(first.tables().collect::<Vec<_>>(), ["a", "b"]);
        assert!(std::ptr::eq(
            first.ids().as_ptr(),
            sets.get(&one, &a).ids().as_ptr()
        ));
        let other = sets.get(&two, &a);
        assert_eq!(&**other.database(), "two");
        assert_eq!(other.tables().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_full_shard_starts_again() {
        let sets = ReadSets::default();
        let analyzer = Analyzer::new(Dialect::Postgres);
        let db: Arc<str> = Arc::from("db");
        for i in 0..SHARDS * SHARD_CAPACITY * 2 {
            let a = analyzer.analyze_uncached(&format!("SELECT {i} FROM t"));
            let reads = sets.get(&db, &Arc::new(a));
            assert_eq!(reads.tables().collect::<Vec<_>>(), ["t"]);
        }
        for shard in &sets.shards {
            assert!(shard.read().unwrap_or_else(PoisonError::into_inner).len() <= SHARD_CAPACITY);
        }
    }
}
