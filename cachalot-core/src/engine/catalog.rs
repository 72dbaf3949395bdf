//! What a database's catalog says that its SQL does not: a read of a view is a read of the
//! tables behind it, and a view whose definition may not be cached (it calls `now()`, say)
//! is never cached; nor is a table whose rows change without a write, or differ by session;
//! and a function the analyzer does not know may be one the catalog says writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::PerDialect;
use crate::sql::{Analysis, Analyzer};

/// One database's views, its tables whose reads are never cached, and what its functions do,
/// from its catalog (the SQLx adapter reads it), for
/// [`Cachalot::set_catalog`](crate::Cachalot::set_catalog).
///
/// Views declared with [`view`](crate::CachalotBuilder::view) are expanded by the analyzer
/// itself, in every database; these are one database's own.
///
/// ```
/// use cachalot_core::engine::Catalog;
/// use cachalot_core::sql::{Analyzer, Dialect};
///
/// let analyzer = Analyzer::new(Dialect::Postgres);
/// let mut views = Catalog::new();
/// views.define(&analyzer, "busy", "SELECT o.* FROM owners o JOIN items i ON i.owner = o.id");
/// views.define(&analyzer, "recent", "SELECT * FROM items WHERE at > now() - interval '1 day'");
/// assert_eq!(views.tables_behind("busy"), Some(&["items".to_owned(), "owners".to_owned()][..]));
/// // Its rows change with the clock: never cached.
/// assert!(views.contains("recent"));
/// assert_eq!(views.tables_behind("recent"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    views: BTreeMap<String, Behind>,
    /// Tables whose rows change without a write naming them, or differ by session.
    never_cached: BTreeSet<String>,
    /// Functions that write nothing: `true` if they are also deterministic.
    functions: BTreeMap<String, bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Behind {
    /// What its definition reads: tables, or views.
    Tables(Vec<String>),
    /// Its definition may not be cached, or could not be analyzed.
    Uncacheable,
}

impl Catalog {
    /// An empty catalog.
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
    /// use cachalot_core::engine::Catalog;
    /// use cachalot_core::sql::{Analyzer, Dialect};
    ///
    /// let mut views = Catalog::new();
    /// views.never_cached("tenant_rows");
    /// views.define(&Analyzer::new(Dialect::Postgres), "mine", "SELECT * FROM tenant_rows");
    /// assert_eq!(views.expand(["mine"]), None);
    /// assert!(!views.contains("tenant_rows"), "not a view");
    /// ```
    pub fn never_cached(&mut self, name: impl Into<String>) {
        self.never_cached.insert(name.into());
    }

    /// Declares `name` (lower case, without schema) a function of this database that writes
    /// nothing and returns the same result for the same arguments, as PostgreSQL's
    /// `IMMUTABLE`: a query calling it may be cached. Only where the analyzer does not know the
    /// function itself; [`Cachalot::analyze_in`](crate::Cachalot::analyze_in) follows it.
    pub fn deterministic_function(&mut self, name: impl Into<String>) {
        self.functions.insert(name.into(), true);
    }

    /// Declares `name` a function of this database that writes nothing but may return another
    /// result at another time or in another session, as PostgreSQL's `STABLE`: a query calling
    /// it is read-only (it invalidates nothing) and never cached.
    pub fn read_only_function(&mut self, name: impl Into<String>) {
        self.functions.insert(name.into(), false);
    }

    /// Whether `name` is a function declared with
    /// [`deterministic_function`](Self::deterministic_function) or
    /// [`read_only_function`](Self::read_only_function).
    pub fn knows_function(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Whether there are no views, no tables never cached and no functions.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty() && self.never_cached.is_empty() && self.functions.is_empty()
    }

    /// An analyzer configured as `base` that also follows this catalog's functions: the one
    /// to [`define`](Self::define) views with, once the functions are declared.
    ///
    /// ```
    /// use cachalot_core::engine::Catalog;
    /// use cachalot_core::sql::{Analyzer, Dialect};
    ///
    /// let mut catalog = Catalog::new();
    /// catalog.deterministic_function("st_area");
    /// let analyzer = catalog.analyzer(&Analyzer::new(Dialect::Postgres));
    /// catalog.define(&analyzer, "big_lots", "SELECT * FROM lots WHERE st_area(shape) > 1000");
    /// assert_eq!(catalog.tables_behind("big_lots"), Some(&["lots".to_owned()][..]));
    /// ```
    pub fn analyzer(&self, base: &Analyzer) -> Analyzer {
        let mut config = base.config().clone();
        for (name, &deterministic) in &self.functions {
            match deterministic {
                true => config.catalog_deterministic.insert(name.clone()),
                false => config.catalog_read_only.insert(name.clone()),
            };
        }
        Analyzer::with_config(base.dialect(), config)
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
    /// use cachalot_core::engine::Catalog;
    /// use cachalot_core::sql::{Analyzer, Dialect};
    ///
    /// let analyzer = Analyzer::new(Dialect::Sqlite);
    /// let mut views = Catalog::new();
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

/// A database's catalog, and the analyzers that follow its functions, made on first need.
#[derive(Debug)]
struct Installed {
    catalog: Arc<Catalog>,
    analyzers: PerDialect<Analyzer>,
}

/// The catalog of every database, and a generation that moves with them, so that the read
/// sets built from an older one are built again.
#[derive(Debug, Default)]
pub(crate) struct Catalogs {
    map: RwLock<HashMap<Arc<str>, Arc<Installed>>>,
    generation: AtomicU64,
}

impl Catalogs {
    /// Read before the catalogs themselves: a read set built from them is tagged with it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn installed(&self, database: &str) -> Option<Arc<Installed>> {
        // Generation 0: no database has ever had a catalog, so there is no lock to take.
        if self.generation() == 0 {
            return None;
        }
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(database).cloned()
    }

    /// The catalog of `database`, if it has one.
    pub(crate) fn of(&self, database: &str) -> Option<Arc<Catalog>> {
        Some(self.installed(database)?.catalog.clone())
    }

    /// Analyzes `sql` as `database`'s catalog says its functions behave, with `base`'s
    /// settings otherwise, if it knows one of `unknown` (the functions `base` did not know);
    /// `None` otherwise.
    pub(crate) fn analyze(
        &self,
        database: &str,
        base: &Analyzer,
        unknown: &[String],
        sql: &str,
    ) -> Option<Arc<Analysis>> {
        let installed = self.installed(database)?;
        if !unknown.iter().any(|f| installed.catalog.knows_function(f)) {
            return None;
        }
        let analyzer = installed
            .analyzers
            .get_or_init(base.dialect(), || installed.catalog.analyzer(base));
        Some(analyzer.analyze(sql))
    }

    /// Replaces the catalog of `database`; returns whether it changed.
    pub(crate) fn set(&self, database: &Arc<str>, catalog: Catalog) -> bool {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let changed = match map.get(database) {
            Some(old) => *old.catalog != catalog,
            None => !catalog.is_empty(),
        };
        if changed {
            if catalog.is_empty() {
                map.remove(database);
            } else {
                let installed = Installed {
                    catalog: Arc::new(catalog),
                    analyzers: PerDialect::default(),
                };
                map.insert(database.clone(), Arc::new(installed));
            }
            // Under the lock: whoever reads the new generation reads the new catalog.
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

    fn views(defs: &[(&str, &str)]) -> Catalog {
        let analyzer = Analyzer::new(Dialect::Postgres);
        let mut views = Catalog::new();
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
        let by_db = Catalogs::default();
        let db: Arc<str> = Arc::from("db");
        assert!(by_db.of("db").is_none());
        assert!(!by_db.set(&db, Catalog::new()));
        assert_eq!(by_db.generation(), 0);
        let v = views(&[("v", "SELECT * FROM t")]);
        assert!(by_db.set(&db, v.clone()));
        assert!(!by_db.set(&db, v));
        assert_eq!(by_db.generation(), 1);
        assert!(by_db.of("db").is_some_and(|v| v.contains("v")));
        assert!(by_db.of("other").is_none());
        assert!(by_db.set(&db, Catalog::new()));
        assert!(by_db.of("db").is_none());
    }
}
