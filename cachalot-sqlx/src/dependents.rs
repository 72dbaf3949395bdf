//! Writes the SQL does not show: foreign-key cascades, triggers and rules, views, and
//! inheritance.
//!
//! `DELETE FROM owners` also deletes (or nulls) the rows of tables whose foreign keys say
//! `ON DELETE CASCADE / SET NULL / SET DEFAULT`, a trigger (or a PostgreSQL rule) may write
//! anything, a write to a table changes the views on it, a write through an updatable view
//! changes the tables behind it, and a partition's rows (or an inheriting table's) are its
//! parent's. The adapter reads these from the catalog and widens every write with them, so
//! none of them leaves a stale entry behind. (Reads of a view also read the tables behind it:
//! see [`Catalog`].)

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cachalot_core::engine::{Catalog, WriteSet};

/// Another process may change the schema; read the catalog again after this long.
const REFRESH: Duration = Duration::from_secs(60);

/// What the catalog says about one database.
#[derive(Debug, Default)]
pub(crate) struct Dependents {
    /// Table → every table or view a write to it may change through cascading foreign keys
    /// and views on it (transitively).
    cascades: HashMap<String, BTreeSet<String>>,
    /// Tables with triggers: a write to them may change any table.
    triggered: HashSet<String>,
    /// View → the tables a write through it changes (`None`: not known, as the view is never
    /// cached or its definition could not be analyzed).
    through: HashMap<String, Option<Vec<String>>>,
    /// The catalog could not be read: every write may change anything.
    unknown: bool,
}

impl Dependents {
    /// From the catalog's `(parent, child)` cascading foreign keys, triggered tables and
    /// views.
    pub(crate) fn new(
        edges: Vec<(String, String)>,
        triggered: Vec<String>,
        views: &Catalog,
    ) -> Self {
        let mut direct: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (parent, child) in edges {
            direct.entry(parent).or_default().insert(child);
        }
        let mut through = HashMap::new();
        for view in views.names() {
            let behind = views.tables_behind(view);
            for table in behind.into_iter().flatten() {
                direct
                    .entry(table.clone())
                    .or_default()
                    .insert(view.to_owned());
            }
            // The tables behind it, views of views followed down to them.
            let tables = behind
                .and_then(|behind| views.expand(behind.iter().map(String::as_str)))
                .map(|all| all.into_iter().filter(|t| !views.contains(t)).collect());
            through.insert(view.to_owned(), tables);
        }
        let cascades = direct
            .keys()
            .map(|start| {
                let mut reached = BTreeSet::new();
                let mut todo = vec![start.clone()];
                while let Some(table) = todo.pop() {
                    for child in direct.get(&table).into_iter().flatten() {
                        if reached.insert(child.clone()) {
                            todo.push(child.clone());
                        }
                    }
                }
                (start.clone(), reached)
            })
            .collect();
        Dependents {
            cascades,
            triggered: triggered.into_iter().collect(),
            through,
            unknown: false,
        }
    }

    fn unknown() -> Self {
        Dependents {
            unknown: true,
            ..Dependents::default()
        }
    }

    /// Adds to `writes` what a write to its tables may also change.
    pub(crate) fn widen(&self, writes: &mut WriteSet) {
        if writes.is_all() || writes.is_empty() {
            return;
        }
        if self.unknown {
            writes.add_all();
            return;
        }
        // Most schemas have none of them: nothing to look up or copy on every write.
        if self.cascades.is_empty() && self.triggered.is_empty() && self.through.is_empty() {
            return;
        }
        let mut behind_views: Vec<&str> = Vec::new();
        let mut unknown_view = false;
        for table in writes.table_names() {
            match self.through.get(table) {
                None => {}
                Some(Some(tables)) => behind_views.extend(tables.iter().map(String::as_str)),
                // Whatever a view we cannot read stands on.
                Some(None) => unknown_view = true,
            }
        }
        if unknown_view {
            writes.add_all();
            return;
        }
        for table in behind_views {
            writes.add_table(table);
        }
        let children: Vec<&str> = writes
            .table_names()
            .filter_map(|table| self.cascades.get(table))
            .flatten()
            .map(String::as_str)
            .collect();
        // A cascade fires the child's triggers too on PostgreSQL; elsewhere this only
        // invalidates more.
        let triggers = |table: &str| self.triggered.contains(table);
        if writes.table_names().any(triggers) || children.iter().any(|c| triggers(c)) {
            writes.add_all();
            return;
        }
        for child in children {
            writes.add_table(child);
        }
    }
}

/// A catalog read: what it found, when, and how many schema changes had been seen when it
/// started.
#[derive(Debug)]
struct Snapshot {
    dependents: Arc<Dependents>,
    at: Instant,
    changes: u64,
}

/// The dependents of one database, read lazily and again after a schema change or
/// [`REFRESH`].
#[derive(Debug, Default)]
pub(crate) struct DependentsCell {
    current: RwLock<Option<Snapshot>>,
    /// Schema changes sent through the adapter so far.
    changes: AtomicU64,
    /// The `changes` the current snapshot started at, plus one (zero: never read).
    seen: AtomicU64,
    /// A refresh is on its way in a task of its own.
    refreshing: AtomicBool,
}

impl DependentsCell {
    /// Whether the catalog must be read before a read may be cached: it never was, or a
    /// schema change went through since (a view it created may call `now()`). Two atomic
    /// loads: every read asks.
    pub(crate) fn must_read_first(&self) -> bool {
        self.seen.load(Ordering::Acquire) != self.changes.load(Ordering::Acquire) + 1
    }

    /// Where a catalog read starts: give it to [`set`](Self::set).
    pub(crate) fn start(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The last catalog read, if any and still fresh.
    pub(crate) fn fresh(&self) -> Option<Arc<Dependents>> {
        if self.must_read_first() {
            return None;
        }
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some(snapshot) if snapshot.at.elapsed() < REFRESH => Some(snapshot.dependents.clone()),
            _ => None,
        }
    }

    /// The last catalog read, fresh or not; `Unknown` if the catalog was never read.
    pub(crate) fn last(&self) -> Arc<Dependents> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some(snapshot) => snapshot.dependents.clone(),
            None => Arc::new(Dependents::unknown()),
        }
    }

    /// Whether the catalog should be read again (older than [`REFRESH`]) and no refresh is
    /// on its way already; if so, the caller is the one to start it, and calls
    /// [`refreshed`](Self::refreshed) when done.
    pub(crate) fn begin_refresh(&self) -> bool {
        let old = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            matches!(&*current, Some(snapshot) if snapshot.at.elapsed() >= REFRESH)
        };
        old && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Ends what [`begin_refresh`](Self::begin_refresh) started.
    pub(crate) fn refreshed(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// Schema changed: read the catalog again before the next write, and before the next
    /// read is cached.
    pub(crate) fn mark_stale(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Records a catalog read begun at `start` (or its failure, which makes every write
    /// invalidate everything until a read succeeds). A read that began before the current
    /// one's does not replace it: it may predate a schema change the other one saw.
    ///
    /// `publish` hands the views on (to the cache) when the read is kept, before reads stop
    /// waiting for it.
    pub(crate) fn set(
        &self,
        start: u64,
        read: Result<(crate::database::CatalogDependents, &Catalog), sqlx::Error>,
        publish: impl FnOnce(&Catalog),
    ) -> Arc<Dependents> {
        let views = read.as_ref().ok().map(|(_, views)| *views);
        let dependents = Arc::new(match read {
            Ok((catalog, views)) => {
                let mut edges = catalog.cascades;
                for (parent, child) in catalog.inherits {
                    edges.push((child.clone(), parent.clone()));
                    edges.push((parent, child));
                }
                Dependents::new(edges, catalog.triggered, views)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cachalot: could not read foreign keys, triggers and views; every write invalidates the whole database until it can");
                Dependents::unknown()
            }
        });
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_none_or(|c| c.changes <= start) {
            // A failed read keeps the views known before: better than none.
            if let Some(views) = views {
                publish(views);
            }
            *current = Some(Snapshot {
                dependents: dependents.clone(),
                at: Instant::now(),
                changes: start,
            });
            self.seen.store(start + 1, Ordering::Release);
        }
        dependents
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachalot_core::sql::{Analyzer, Dialect};

    fn names(writes: &WriteSet) -> Vec<&str> {
        let mut v: Vec<&str> = writes.table_names().collect();
        v.sort();
        v
    }

    #[test]
    fn cascades_are_followed_transitively() {
        let deps = Dependents::new(
            vec![
                ("owners".into(), "items".into()),
                ("items".into(), "tags".into()),
                ("other".into(), "x".into()),
            ],
            vec![],
            &Catalog::new(),
        );
        let mut writes = WriteSet::tables(["owners"]);
        deps.widen(&mut writes);
        assert_eq!(names(&writes), ["items", "owners", "tags"]);
    }

    #[test]
    fn cycles_terminate() {
        let deps = Dependents::new(
            vec![("a".into(), "b".into()), ("b".into(), "a".into())],
            vec![],
            &Catalog::new(),
        );
        let mut writes = WriteSet::tables(["a"]);
        deps.widen(&mut writes);
        assert_eq!(names(&writes), ["a", "b"]);
    }

    #[test]
    fn views_change_with_their_tables_and_writes_through_them_change_the_tables() {
        let analyzer = Analyzer::new(Dialect::Postgres);
        let mut views = Catalog::new();
        views.define(&analyzer, "busy", "SELECT * FROM owners JOIN items ON true");
        views.define(&analyzer, "busiest", "SELECT * FROM busy WHERE n > 3");
        views.define(&analyzer, "recent", "SELECT * FROM items WHERE at > now()");
        views.define(&analyzer, "opaque", "SELECT (* FROM");
        let deps = Dependents::new(vec![("owners".into(), "pets".into())], vec![], &views);
        // The views on a table, and the views on them.
        let mut writes = WriteSet::tables(["items"]);
        deps.widen(&mut writes);
        assert_eq!(names(&writes), ["busiest", "busy", "items"]);
        // The cascade's child and the views on the parent; nothing else.
        let mut writes = WriteSet::tables(["owners"]);
        deps.widen(&mut writes);
        assert_eq!(names(&writes), ["busiest", "busy", "owners", "pets"]);
        // Through a view: its tables, followed as if written directly.
        let mut writes = WriteSet::tables(["busiest"]);
        deps.widen(&mut writes);
        assert_eq!(
            names(&writes),
            ["busiest", "busy", "items", "owners", "pets"]
        );
        // A view that is never cached (`now()`), or whose definition is unknown, may stand on
        // anything as far as the cache knows.
        for view in ["recent", "opaque"] {
            let mut writes = WriteSet::tables([view]);
            deps.widen(&mut writes);
            assert!(writes.is_all(), "{view}");
        }
    }

    #[test]
    fn triggers_and_unknown_catalogs_invalidate_everything() {
        let deps = Dependents::new(vec![], vec!["audited".into()], &Catalog::new());
        let mut writes = WriteSet::tables(["audited"]);
        deps.widen(&mut writes);
        assert!(writes.is_all());
        let mut writes = WriteSet::tables(["plain"]);
        deps.widen(&mut writes);
        assert!(!writes.is_all());
        let mut writes = WriteSet::tables(["plain"]);
        Dependents::unknown().widen(&mut writes);
        assert!(writes.is_all());
        // A trigger on a table a cascade reaches fires as well.
        let deps = Dependents::new(
            vec![("owners".into(), "items".into())],
            vec!["items".into()],
            &Catalog::new(),
        );
        let mut writes = WriteSet::tables(["owners"]);
        deps.widen(&mut writes);
        assert!(writes.is_all());
        // Nothing written stays nothing written.
        let mut none = WriteSet::new();
        Dependents::unknown().widen(&mut none);
        assert!(none.is_empty());
    }
}
