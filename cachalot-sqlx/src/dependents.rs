//! Writes the SQL does not show: foreign-key cascades and triggers.
//!
//! `DELETE FROM owners` also deletes (or nulls) the rows of tables whose foreign keys say
//! `ON DELETE CASCADE / SET NULL / SET DEFAULT`, and a trigger may write anything. The adapter
//! reads these from the catalog and widens every write with them, so a cascade never leaves a
//! stale entry behind.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cachalot_core::engine::WriteSet;

/// Another process may change the schema; read the catalog again after this long.
const REFRESH: Duration = Duration::from_secs(60);

/// What the catalog says about one database.
#[derive(Debug, Default)]
pub(crate) struct Dependents {
    /// Table → every table a write to it may change through cascading foreign keys
    /// (transitively).
    cascades: HashMap<String, BTreeSet<String>>,
    /// Tables with triggers: a write to them may change any table.
    triggered: HashSet<String>,
    /// The catalog could not be read: every write may change anything.
    unknown: bool,
}

impl Dependents {
    /// From the catalog's `(parent, child)` cascading foreign keys and triggered tables.
    pub(crate) fn new(edges: Vec<(String, String)>, triggered: Vec<String>) -> Self {
        let mut direct: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (parent, child) in edges {
            direct.entry(parent).or_default().insert(child);
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
        // Most schemas have neither: nothing to look up or copy on every write.
        if self.cascades.is_empty() && self.triggered.is_empty() {
            return;
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

/// A catalog read and when it was made.
type Snapshot = Option<(Arc<Dependents>, Instant)>;

/// The dependents of one database, read lazily and refreshed after DDL or [`REFRESH`].
#[derive(Debug, Default)]
pub(crate) struct DependentsCell {
    current: RwLock<Snapshot>,
    stale: AtomicBool,
}

impl DependentsCell {
    /// The last catalog read, if any and still fresh.
    pub(crate) fn fresh(&self) -> Option<Arc<Dependents>> {
        if self.stale.load(Ordering::Acquire) {
            return None;
        }
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some((dependents, at)) if at.elapsed() < REFRESH => Some(dependents.clone()),
            _ => None,
        }
    }

    /// The last catalog read, fresh or not; `Unknown` if the catalog was never read.
    pub(crate) fn last(&self) -> Arc<Dependents> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some((dependents, _)) => dependents.clone(),
            None => Arc::new(Dependents::unknown()),
        }
    }

    /// Schema changed: read the catalog again before the next write.
    pub(crate) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Records a catalog read (or its failure, which makes every write invalidate everything
    /// until a read succeeds).
    pub(crate) fn set(
        &self,
        read: Result<crate::database::CatalogDependents, sqlx::Error>,
    ) -> Arc<Dependents> {
        let dependents = Arc::new(match read {
            Ok((edges, triggered)) => Dependents::new(edges, triggered),
            Err(e) => {
                tracing::warn!(error = %e, "cachalot: could not read foreign keys and triggers; every write invalidates the whole database until it can");
                Dependents::unknown()
            }
        });
        self.stale.store(false, Ordering::Release);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Some((dependents.clone(), Instant::now()));
        dependents
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        );
        let mut writes = WriteSet::tables(["a"]);
        deps.widen(&mut writes);
        assert_eq!(names(&writes), ["a", "b"]);
    }

    #[test]
    fn triggers_and_unknown_catalogs_invalidate_everything() {
        let deps = Dependents::new(vec![], vec!["audited".into()]);
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
