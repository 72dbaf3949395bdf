//! The read sets already built, by analysis and database: `decide` runs on every read, and
//! building a [`ReadSet`] (a table id per table, each with its own allocation and hashes)
//! would otherwise cost more than the rest of a hit.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::catalog::Catalogs;
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

/// The analysis (kept alive), the catalogs' generation the read set was built with, and the
/// read set (`None`: the catalog says a table or view it reads is never cached).
type Shard = HashMap<Key, (Arc<Analysis>, u64, Option<ReadSet>), BuildMix>;

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
    /// The read set of `analysis` on `database`, with the tables behind the database's
    /// views, built once per generation of `catalogs`; `None` if its catalog says a table or
    /// view it reads is never cached.
    pub(crate) fn get(
        &self,
        database: &Arc<str>,
        analysis: &Arc<Analysis>,
        catalogs: &Catalogs,
    ) -> Option<ReadSet> {
        let key = (
            Arc::as_ptr(analysis) as usize,
            Arc::as_ptr(database).cast::<u8>() as usize,
        );
        // Analyses are heap blocks at least 8-aligned: the low bits carry nothing.
        let shard = &self.shards[(key.0 >> 4) % SHARDS];
        let generation = catalogs.generation();
        if let Some((_, built, reads)) = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && *built == generation
        {
            return reads.clone();
        }
        let tables = analysis.reads.iter().map(|t| t.name.as_str());
        let reads = match catalogs.of(database) {
            None => Some(ReadSet::new(database, tables)),
            Some(catalog) => catalog
                .expand(tables)
                .map(|all| ReadSet::new(database, all)),
        };
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SHARD_CAPACITY {
            map.clear();
        }
        map.insert(key, (analysis.clone(), generation, reads.clone()));
        reads
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sql::{Analyzer, Dialect};

    #[test]
    fn one_read_set_per_analysis_and_database() {
        let sets = ReadSets::default();
        let analyzer = Analyzer::new(Dialect::Postgres);
        let a = analyzer.analyze("SELECT * FROM b JOIN a ON a.id = b.id");
        let (one, two): (Arc<str>, Arc<str>) = (Arc::from("one"), Arc::from("two"));
        let views = Catalogs::default();
        let first = sets.get(&one, &a, &views).unwrap();
        assert_eq!(first.tables().collect::<Vec<_>>(), ["a", "b"]);
        assert!(std::ptr::eq(
            first.ids().as_ptr(),
            sets.get(&one, &a, &views).unwrap().ids().as_ptr()
        ));
        let other = sets.get(&two, &a, &views).unwrap();
        assert_eq!(&**other.database(), "two");
        assert_eq!(other.tables().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn read_sets_follow_the_views_of_their_database() {
        use crate::engine::Catalog;
        let sets = ReadSets::default();
        let analyzer = Analyzer::new(Dialect::Postgres);
        let a = analyzer.analyze("SELECT * FROM busy");
        let (one, two): (Arc<str>, Arc<str>) = (Arc::from("one"), Arc::from("two"));
        let views = Catalogs::default();
        let names = |reads: Option<ReadSet>| -> Vec<String> {
            reads.unwrap().tables().map(str::to_owned).collect()
        };
        assert_eq!(names(sets.get(&one, &a, &views)), ["busy"]);
        let mut defined = Catalog::new();
        defined.define(&analyzer, "busy", "SELECT * FROM items JOIN owners ON true");
        views.set(&one, defined);
        // Built again: the generation moved.
        assert_eq!(
            names(sets.get(&one, &a, &views)),
            ["busy", "items", "owners"]
        );
        assert_eq!(names(sets.get(&two, &a, &views)), ["busy"]);
        let mut volatile = Catalog::new();
        volatile.define(&analyzer, "busy", "SELECT * FROM items WHERE at > now()");
        views.set(&one, volatile);
        assert!(sets.get(&one, &a, &views).is_none());
    }

    #[test]
    fn a_full_shard_starts_again() {
        let sets = ReadSets::default();
        let analyzer = Analyzer::new(Dialect::Postgres);
        let db: Arc<str> = Arc::from("db");
        for i in 0..SHARDS * SHARD_CAPACITY * 2 {
            let a = analyzer.analyze_uncached(&format!("SELECT {i} FROM t"));
            let reads = sets.get(&db, &Arc::new(a), &Catalogs::default()).unwrap();
            assert_eq!(reads.tables().collect::<Vec<_>>(), ["t"]);
        }
        for shard in &sets.shards {
            assert!(shard.read().unwrap_or_else(PoisonError::into_inner).len() <= SHARD_CAPACITY);
        }
    }
}
