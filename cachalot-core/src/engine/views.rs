//! The views a database's catalog defines: a read of a view is a read of the tables behind
//! it, and a view whose definition may not be cached (it calls `now()`, say) is never cached;
//! nor is a table whose rows change without a write, or differ by session.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::sql::Analyzer;

/// The views of one database, from its catalog (the SQLx adapter reads it), and its tables
/// whose reads are never cached, for [`Cachalot::set_views`](crate::Cachalot::set_views).
///
/// Views declared with [`view`](crate::CachalotBuilder::view) are expanded by the analyzer
/// itself, in every database; these are one database's own.
///
/// ```
/// use cachalot_core::engine::CatalogViews;
/// use cachalot_core::sql::{Analyzer, Dialect};
///
/// let analyzer = Analyzer::new(Dialect::Postgres);
/// let mut views = CatalogViews::new();
/// views.define(&analyzer, "busy", "SELECT o.* FROM owners o JOIN items i ON i.owner = o.id");
/// views.define(&analyzer, "recent", "SELECT * FROM items WHERE at > now() - interval '1 day'");
/// assert_eq!(views.tables_behind("busy"), Some(&["items".to_owned(), "owners".to_owned()][..]));
/// // Its rows change with the clock: never cached.
/// assert!(views.contains("recent"));
/// assert_eq!(views.tables_behind("recent"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogViews {
    views: BTreeMap<String, Behind>,
    /// Tables whose rows change without a write naming them, or differ by session.
    never_cached: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Behind {
    /// What its definition reads: tables, or views.
    Tables(Vec<String>),
    /// Its definition may not be cached, or could not be analyzed.
    Uncacheable,
}

impl CatalogViews {
    /// No views.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the view `name` (as the analyzer names tables) from its definition as the catalog
    /// gives it, analyzed by `analyzer` (see [`Analyzer::analyze_view`]).
    pub fn define(&mut self, analyzer: &Analyzer, name: impl Into<String>, definition: &str) {
        let analysis = analyzer.analyze_view(definition);
        let behind = match analysis.is_cacheable() {
            true => Behind::Tables(
                analysis
                    .read_names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            ),
            false => Behind::Uncacheable,
        };
        self.views.insert(name.into(), behind);
    }

    /// Marks `name` as a table whose reads are never cached: its rows change without a write
    /// naming it (a sequence, a foreign table) or differ from session to session (row-level
    /// security). Reads of a view on it are not cached either.
    ///
    /// ```
    /// use cachalot_core::engine::CatalogViews;
    /// use cachalot_core::sql::{Analyzer, Dialect};
    ///
    /// let mut views = CatalogViews::new();
    /// views.never_cached("tenant_rows");
    /// views.define(&Analyzer::new(Dialect::Postgres), "mine", "SELECT * FROM tenant_rows");
    /// assert_eq!(views.expand(["mine"]), None);
    /// assert!(!views.contains("tenant_rows"), "not a view");
    /// ```
    pub fn never_cached(&mut self, name: impl Into<String>) {
        self.never_cached.insert(name.into());
    }

    /// Whether there are no views and no tables never cached.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty() && self.never_cached.is_empty()
    }

    /// Whether `name` is one of the views.
    pub fn contains(&self, name: &str) -> bool {
        self.views.contains_key(name)
    }

    /// The views' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.views.keys().map(String::as_str)
    }

    /// The tables (or views) the view `name` reads, or `None` if it is not a view or may not
    /// be cached.
    pub fn tables_behind(&self, name: &str) -> Option<&[String]> {
        match self.views.get(name)? {
            Behind::Tables(tables) => Some(tables),
            Behind::Uncacheable => None,
        }
    }

    /// `tables` and, for every view among them, what it reads (views of views to the
    /// tables), sorted and without duplicates; `None` if one of the views may not be cached,
    /// or one of the tables reached is [never cached](Self::never_cached).
    ///
    /// ```
    /// use cachalot_core::engine::CatalogViews;
    /// use cachalot_core::sql::{Analyzer, Dialect};
    ///
    /// let analyzer = Analyzer::new(Dialect::Sqlite);
    /// let mut views = CatalogViews::new();
    /// views.define(&analyzer, "busy", "CREATE VIEW busy AS SELECT * FROM owners JOIN items USING (id)");
    /// views.define(&analyzer, "busiest", "CREATE VIEW busiest AS SELECT * FROM busy LIMIT 3");
    /// assert_eq!(views.expand(["busiest", "tags"]).unwrap(), ["busiest", "busy", "items", "owners", "tags"]);
    /// ```
    pub fn expand<'a>(&self, tables: impl IntoIterator<Item = &'a str>) -> Option<Vec<String>> {
        let mut reached = BTreeSet::new();
        let mut todo: Vec<&str> = tables.into_iter().collect();
        while let Some(table) = todo.pop() {
            if !reached.insert(table) {
                continue;
            }
            if self.never_cached.contains(table) {
                return None;
            }
            match self.views.get(table) {
                None => {}
                Some(Behind::Uncacheable) => return None,
                Some(Behind::Tables(behind)) => todo.extend(behind.iter().map(String::as_str)),
            }
        }
        Some(reached.into_iter().map(str::to_owned).collect())
    }
}

/// The catalog views of every database, and a generation that moves with them, so that the
/// read sets built from older views are built again.
#[derive(Debug, Default)]
pub(crate) struct ViewsByDatabase {
    map: RwLock<HashMap<Arc<str>, Arc<CatalogViews>>>,
    generation: AtomicU64,
}

impl ViewsByDatabase {
    /// Read before the views themselves: a read set built from them is tagged with it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The views of `database`, if it has any.
    pub(crate) fn of(&self, database: &str) -> Option<Arc<CatalogViews>> {
        // Generation 0: no database has ever had views, so there is no lock to take.
        if self.generation() == 0 {
            return None;
        }
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(database).cloned()
    }

    /// Replaces the views of `database`; returns whether they changed.
    pub(crate) fn set(&self, database: &Arc<str>, views: CatalogViews) -> bool {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let changed = match map.get(database) {
            Some(old) => **old != views,
            None => !views.is_empty(),
        };
        if changed {
            if views.is_empty() {
                map.remove(database);
            } else {
                map.insert(database.clone(), Arc::new(views));
            }
            // Under the lock: whoever reads the new generation reads the new views.
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sql::Dialect;

    fn views(defs: &[(&str, &str)]) -> CatalogViews {
        let analyzer = Analyzer::new(Dialect::Postgres);
        let mut views = CatalogViews::new();
        for (name, definition) in defs {
            views.define(&analyzer, *name, definition);
        }
        views
    }

    #[test]
    fn views_of_views_expand_to_their_tables() {
        let v = views(&[
            ("top", "SELECT * FROM mid JOIN c ON true"),
            ("mid", "SELECT * FROM a JOIN b ON true"),
            ("loop1", "SELECT * FROM loop2"),
            ("loop2", "SELECT * FROM loop1"),
        ]);
        assert_eq!(
            v.expand(["top", "x"]).unwrap(),
            ["a", "b", "c", "mid", "top", "x"]
        );
        assert_eq!(v.expand(["loop1"]).unwrap(), ["loop1", "loop2"]);
        assert_eq!(v.expand(["plain"]).unwrap(), ["plain"]);
    }

    #[test]
    fn a_view_that_may_not_be_cached_makes_every_read_of_it_uncacheable() {
        let v = views(&[
            ("recent", "SELECT * FROM items WHERE at > now()"),
            ("on_recent", "SELECT * FROM recent"),
            ("broken", "SELECT (* FROM"),
        ]);
        assert_eq!(v.expand(["on_recent"]), None);
        assert_eq!(v.expand(["broken", "a"]), None);
        assert_eq!(v.expand(["items"]).unwrap(), ["items"]);
    }

    #[test]
    fn setting_the_same_views_again_changes_nothing() {
        let by_db = ViewsByDatabase::default();
        let db: Arc<str> = Arc::from("db");
        assert!(by_db.of("db").is_none());
        assert!(!by_db.set(&db, CatalogViews::new()));
        assert_eq!(by_db.generation(), 0);
        let v = views(&[("v", "SELECT * FROM t")]);
        assert!(by_db.set(&db, v.clone()));
        assert!(!by_db.set(&db, v));
        assert_eq!(by_db.generation(), 1);
        assert!(by_db.of("db").is_some_and(|v| v.contains("v")));
        assert!(by_db.of("other").is_none());
        assert!(by_db.set(&db, CatalogViews::new()));
        assert!(by_db.of("db").is_none());
    }
}
