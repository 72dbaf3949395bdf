//! The cache's settings and the builder of [`Cachalot`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::Cachalot;
use crate::backend::{CacheBackend, MemoryBackend};
use crate::error::BuildError;

/// What a [`Cachalot`] was built with. Read it with [`Cachalot::settings`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Whether reads use the cache when it is built (see [`Cachalot::set_enabled`]).
    pub enabled: bool,
    /// How long an entry may live. Correctness never depends on it: invalidation does.
    pub ttl: Duration,
    /// How long a write's lock lasts if the writer never finishes (a crash): bounds the
    /// staleness after a crash.
    pub lock_ttl: Duration,
    /// Results weighing more than this many bytes are not stored.
    pub max_entry_bytes: usize,
    /// If set, only reads whose every table is in it are cached (lower case).
    pub only_tables: Option<HashSet<String>>,
    /// Reads of any of these tables are never cached (lower case). Wins over `only_tables`.
    pub deny_tables: HashSet<String>,
    /// Functions declared deterministic, in addition to the built-in list (lower case).
    pub cacheable_functions: BTreeSet<String>,
    /// Views and the tables behind them.
    pub views: HashMap<String, Vec<String>>,
    /// The first part of every key: separates applications sharing a backend.
    pub key_prefix: String,
    /// Whether a statement whose cached entries keep being invalidated before anyone reads
    /// them stops asking the cache, probing it now and then (see
    /// [`CachalotBuilder::skip_churning_reads`]).
    pub skip_churning_reads: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            ttl: Duration::from_secs(3600),
            lock_ttl: Duration::from_secs(10),
            max_entry_bytes: 1024 * 1024,
            only_tables: None,
            deny_tables: HashSet::new(),
            cacheable_functions: BTreeSet::new(),
            views: HashMap::new(),
            key_prefix: "cachalot".to_owned(),
            skip_churning_reads: true,
        }
    }
}

impl Settings {
    /// Whether reads of `table` (a bare name) may be cached under the allow- and deny-lists.
    /// Names compare case-insensitively: a deny-list must never miss a table because of case.
    pub fn table_allowed(&self, table: &str) -> bool {
        if self.only_tables.is_none() && self.deny_tables.is_empty() {
            return true;
        }
        let lower;
        let name = if table.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = table.to_ascii_lowercase();
            lower.as_str()
        } else {
            table
        };
        if self.deny_tables.contains(name) {
            return false;
        }
        self.only_tables
            .as_ref()
            .is_none_or(|only| only.contains(name))
    }

    pub(crate) fn has_table_lists(&self) -> bool {
        self.only_tables.is_some() || !self.deny_tables.is_empty()
    }
}

/// Builds a [`Cachalot`].
///
/// ```
/// use std::time::Duration;
/// use cachalot_core::Cachalot;
///
/// let cachalot = Cachalot::builder()
///     .ttl(Duration::from_secs(600))
///     .deny_tables(["sessions"])
///     .cacheable_functions(["my_slugify"])
///     .view("active_users", ["users", "logins"])
///     .build()
///     .unwrap();
/// assert_eq!(cachalot.settings().ttl, Duration::from_secs(600));
/// assert!(!cachalot.settings().table_allowed("sessions"));
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct CachalotBuilder {
    settings: Settings,
    backend: Option<Arc<dyn CacheBackend>>,
}

fn lower_names<I, S>(names: I) -> impl Iterator<Item = String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    names.into_iter().map(|n| n.as_ref().to_ascii_lowercase())
}

impl CachalotBuilder {
    /// Whether reads use the cache from the start (default `true`). Writes always invalidate.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.settings.enabled = enabled;
        self
    }

    /// How long an entry may live (default 1 hour).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// How long a write's lock lasts if the writer never finishes (default 10 seconds). It
    /// must be longer than the slowest write statement or commit: a lock that expires while
    /// its write still runs lets readers cache data that write is changing.
    ///
    /// A write whose caller gives up on it (a cancelled future, a stream dropped early) keeps
    /// its lock this long too, since the server may still commit it: until then its tables
    /// are read from the database, uncached.
    ///
    /// With a remote backend (Redis), a lock lasts an eighth longer: writes of this process
    /// that start within that eighth share it, and each is still covered for `lock_ttl`.
    pub fn lock_ttl(mut self, lock_ttl: Duration) -> Self {
        self.settings.lock_ttl = lock_ttl;
        self
    }

    /// Whether reads skip the cache where it does not pay (default on).
    ///
    /// A statement whose lookups miss again and again because its tables changed since it
    /// was last stored (a table written about as often as it is read) pays a lookup and a
    /// store for nothing on every read. After 32 such misses in a row, only one read of it
    /// in 16 asks the cache (counted as [`BypassReason::Churn`](crate::stats::BypassReason)
    /// otherwise); the first hit makes every read ask again. Misses of entries never stored
    /// (a cold cache, many distinct parameters) do not count. Correctness is the same
    /// either way: a skipped read goes to the database.
    ///
    /// ```
    /// let cache = cachalot_core::Cachalot::builder().skip_churning_reads(false).build().unwrap();
    /// assert!(!cache.settings().skip_churning_reads);
    /// ```
    pub fn skip_churning_reads(mut self, on: bool) -> Self {
        self.settings.skip_churning_reads = on;
        self
    }

    /// Results weighing more than this are not stored (default 1 MiB).
    pub fn max_entry_bytes(mut self, max_entry_bytes: usize) -> Self {
        self.settings.max_entry_bytes = max_entry_bytes;
        self
    }

    /// Caches only reads whose every table is one of these (bare names; added to any given
    /// before).
    pub fn only_tables<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.settings
            .only_tables
            .get_or_insert_with(HashSet::new)
            .extend(lower_names(tables));
        self
    }

    /// Never caches reads of these tables (bare names; wins over [`only_tables`](Self::only_tables)).
    /// Deny every table that something other than this application's SQL changes (another
    /// application, a trigger, a scheduled job).
    pub fn deny_tables<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.settings.deny_tables.extend(lower_names(tables));
        self
    }

    /// Declares functions deterministic, so that queries calling them may be cached. Only for
    /// functions that read no table and whose result depends on their arguments alone.
    pub fn cacheable_functions<I, S>(mut self, functions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.settings
            .cacheable_functions
            .extend(lower_names(functions));
        self
    }

    /// Declares a view and the tables behind it: reads of the view are invalidated by writes
    /// to those tables.
    pub fn view<I, S>(mut self, name: impl Into<String>, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tables = tables.into_iter().map(|t| t.as_ref().to_owned()).collect();
        self.settings.views.insert(name.into(), tables);
        self
    }

    /// The first part of every key (default `"cachalot"`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.key_prefix = prefix.into();
        self
    }

    /// Where tokens and entries live (default: a [`MemoryBackend`] of 64 MiB).
    pub fn backend(mut self, backend: impl CacheBackend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// Like [`backend`](Self::backend), for a backend already shared.
    pub fn shared_backend(mut self, backend: Arc<dyn CacheBackend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The cache, or why the settings are invalid.
    pub fn build(self) -> Result<Cachalot, BuildError> {
        let s = &self.settings;
        if s.ttl.is_zero() {
            return Err(BuildError::ZeroDuration("ttl"));
        }
        if s.lock_ttl.is_zero() {
            return Err(BuildError::ZeroDuration("lock_ttl"));
        }
        let empty = |set: &HashSet<String>| set.iter().any(String::is_empty);
        if s.only_tables.as_ref().is_some_and(empty) {
            return Err(BuildError::EmptyName("only_tables"));
        }
        if empty(&s.deny_tables) {
            return Err(BuildError::EmptyName("deny_tables"));
        }
        if s.cacheable_functions.iter().any(String::is_empty) {
            return Err(BuildError::EmptyName("cacheable_functions"));
        }
        for (view, tables) in &s.views {
            if view.is_empty() || tables.iter().any(String::is_empty) {
                return Err(BuildError::EmptyName("view"));
            }
            if tables.is_empty() {
                return Err(BuildError::EmptyView(view.clone()));
            }
        }
        let backend = self
            .backend
            .unwrap_or_else(|| Arc::new(MemoryBackend::default()));
        Ok(Cachalot::from_parts(self.settings, backend))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_invalid_settings() {
        let err = |b: CachalotBuilder| b.build().err();
        assert_eq!(
            err(Cachalot::builder().ttl(Duration::ZERO)),
            Some(BuildError::ZeroDuration("ttl"))
        );
        assert_eq!(
            err(Cachalot::builder().lock_ttl(Duration::ZERO)),
            Some(BuildError::ZeroDuration("lock_ttl"))
        );
        assert_eq!(
            err(Cachalot::builder().view("v", Vec::<String>::new())),
            Some(BuildError::EmptyView("v".into()))
        );
        assert_eq!(
            err(Cachalot::builder().deny_tables([""])),
            Some(BuildError::EmptyName("deny_tables"))
        );
        assert!(Cachalot::builder().build().is_ok());
    }

    #[test]
    fn deny_wins_and_case_is_ignored() {
        let s = Settings {
            only_tables: Some(["a", "b"].map(String::from).into()),
            deny_tables: ["b"].map(String::from).into(),
            ..Settings::default()
        };
        assert!(s.table_allowed("a"));
        assert!(s.table_allowed("A"));
        assert!(!s.table_allowed("b"));
        assert!(!s.table_allowed("B"));
        assert!(!s.table_allowed("c"));
        assert!(Settings::default().table_allowed("anything"));
    }
}
