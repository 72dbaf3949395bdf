//! The compile-time check of one SQL literal, with the analyzer the run time uses.
//!
//! The rule: the SQL is analyzed in every dialect asked for (all three by default). At least
//! one must parse it, and every dialect that parses it must find a cacheable read; the tables
//! read are the union over those dialects.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use cachalot_core::sql::{Analysis, Analyzer, AnalyzerConfig, Dialect, NotCacheable};

/// Every dialect, the default.
pub(crate) const ALL_DIALECTS: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

/// How a dialect is named in messages.
pub(crate) fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "PostgreSQL",
        Dialect::MySql => "MySQL",
        Dialect::Sqlite => "SQLite",
    }
}

/// How a dialect is spelled in `dialect = ...`.
pub(crate) fn dialect_option(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "postgres",
        Dialect::MySql => "mysql",
        Dialect::Sqlite => "sqlite",
    }
}

/// Parses the value of `dialect = ...`.
pub(crate) fn parse_dialect(name: &str) -> Option<Dialect> {
    match name {
        "postgres" | "postgresql" | "pg" => Some(Dialect::Postgres),
        "mysql" | "mariadb" => Some(Dialect::MySql),
        "sqlite" => Some(Dialect::Sqlite),
        _ => None,
    }
}

/// What the compile-time analysis of a literal found.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The tables read, union over the dialects that parse the SQL.
    pub(crate) tables: BTreeSet<String>,
    /// The number of values the SQL expects, when its placeholders tell (`$1..$n` or `?`).
    pub(crate) placeholders: Vec<usize>,
}

/// The analyzer settings a macro invocation asks for.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The dialects to check in.
    pub(crate) dialects: Vec<Dialect>,
    /// Functions declared deterministic (`cacheable_functions = [...]`).
    pub(crate) functions: BTreeSet<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dialects: ALL_DIALECTS.to_vec(),
            functions: BTreeSet::new(),
        }
    }
}

/// Joins names as "A", "A and B", "A, B and C".
fn join(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Why a literal is refused.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// No dialect parses it.
    unparsed: bool,
    /// What the analyzer said, with the dialects it said it in.
    reason: String,
    /// What to do about it.
    help: Help,
}

/// What to do about a [`Refusal`].
#[derive(Debug)]
enum Help {
    /// Fix the SQL.
    None,
    /// It is a cacheable read in this dialect.
    OtherDialect(Dialect),
    /// An unknown function: declare it.
    DeclareFunction,
    /// A write.
    Write,
    /// A read that is never cacheable.
    Uncacheable,
}

/// Where a literal was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// Given to `cached_query_as!` / `cached_query_scalar!`.
    Query,
    /// In the body of a `#[cached_query]` function.
    Function,
}

impl Refusal {
    /// The compile error's message.
    pub(crate) fn message(&self, context: Context) -> String {
        let what = match (context, self.unparsed) {
            (Context::Query, true) => format!("this SQL does not parse {}", self.reason),
            (Context::Query, false) => format!("this SQL is never cached: {}", self.reason),
            (Context::Function, true) => format!(
                "a function that runs this SQL cannot be cached: it does not parse {}",
                self.reason
            ),
            (Context::Function, false) => format!(
                "a function that runs this SQL cannot be cached: {}",
                self.reason
            ),
        };
        let help = match (&self.help, context) {
            (Help::None, _) => return what,
            (Help::OtherDialect(dialect), _) => format!(
                "it is a cacheable read in {}: if that is your database, check it in that dialect only with `dialect = {}`",
                dialect_name(*dialect),
                dialect_option(*dialect)
            ),
            (Help::DeclareFunction, _) => "if the function is deterministic and reads no table, declare it with `cacheable_functions = [\"name\"]` here and with `Cachalot::builder().cacheable_functions([\"name\"])`".to_owned(),
            (Help::Write, Context::Query) => "send writes with `sqlx::query(...).execute(&db)`, which invalidates the tables they write".to_owned(),
            (Help::Write, Context::Function) => "a function that writes must not be cached: remove `#[cached_query]`".to_owned(),
            (Help::Uncacheable, Context::Query) => "run it uncached with `sqlx::query_as(...).fetch_all(&db)`".to_owned(),
            (Help::Uncacheable, Context::Function) => "remove `#[cached_query]`, or name the tables with `tables = [...]` (and a short `ttl`) if a value that changes without them is acceptable".to_owned(),
        };
        format!("{what}\nhelp: {help}")
    }
}

/// Groups `(reason, dialect)` pairs by reason, in order: "r1 (in A and B); r2 (in C)", or
/// just the reasons when one dialect was asked for.
fn grouped(pairs: impl Iterator<Item = (String, Dialect)>, dialects: usize) -> String {
    let mut groups: Vec<(String, Vec<&'static str>)> = Vec::new();
    for (reason, dialect) in pairs {
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, names)) => names.push(dialect_name(dialect)),
            None => groups.push((reason, vec![dialect_name(dialect)])),
        }
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(reason, names)| {
            if dialects == 1 {
                reason
            } else {
                format!("{reason} (in {})", join(&names))
            }
        })
        .collect();
    parts.join("; ")
}

/// Checks that `sql` is a cacheable read; the error says why not.
pub(crate) fn check(sql: &str, settings: &Settings) -> Result<Checked, Refusal> {
    let config = AnalyzerConfig {
        cacheable_functions: settings.functions.clone(),
        ..AnalyzerConfig::default()
    };
    let analyses: Vec<(Dialect, Analysis)> = settings
        .dialects
        .iter()
        .map(|&d| {
            (
                d,
                Analyzer::with_config(d, config.clone()).analyze_uncached(sql),
            )
        })
        .collect();
    let parsed: Vec<&(Dialect, Analysis)> = analyses
        .iter()
        .filter(|(_, a)| !matches!(a.not_cacheable, Some(NotCacheable::ParseError(_))))
        .collect();
    if parsed.is_empty() {
        let errors = analyses.iter().filter_map(|(d, a)| match &a.not_cacheable {
            Some(NotCacheable::ParseError(e)) => Some((e.clone(), *d)),
            _ => None,
        });
        let reason = match &settings.dialects[..] {
            [dialect] => format!("as {}: {}", dialect_name(*dialect), grouped(errors, 1)),
            _ => format!("in any dialect: {}", grouped(errors, analyses.len())),
        };
        return Err(Refusal {
            unparsed: true,
            reason,
            help: Help::None,
        });
    }

    let mut refusals: Vec<(String, Dialect)> = Vec::new();
    let mut accepted: Vec<Dialect> = Vec::new();
    for (dialect, analysis) in &parsed {
        match &analysis.not_cacheable {
            Some(reason) => refusals.push((reason.to_string(), *dialect)),
            None if !analysis.is_read_only() => {
                refusals.push((NotCacheable::Write.to_string(), *dialect));
            }
            None => accepted.push(*dialect),
        }
    }
    if !refusals.is_empty() {
        let help = if let Some(dialect) = accepted.first() {
            Help::OtherDialect(*dialect)
        } else if parsed
            .iter()
            .any(|(_, a)| matches!(a.not_cacheable, Some(NotCacheable::UnknownFunction(_))))
        {
            Help::DeclareFunction
        } else if parsed.iter().all(|(_, a)| !a.is_read_only()) {
            Help::Write
        } else {
            Help::Uncacheable
        };
        return Err(Refusal {
            unparsed: false,
            reason: grouped(refusals.into_iter(), settings.dialects.len()),
            help,
        });
    }

    let tables = parsed
        .iter()
        .flat_map(|(_, a)| a.read_names())
        .map(str::to_owned)
        .collect();
    let placeholders = parsed
        .iter()
        .filter_map(|(d, _)| placeholder_count(*d, sql))
        .collect();
    Ok(Checked {
        tables,
        placeholders,
    })
}

/// The number of values `sql` expects in `dialect`: the highest `$n` or `?n`, or the number
/// of `?`. `None` when the placeholders do not tell (named ones, a mix, or a parse error).
fn placeholder_count(dialect: Dialect, sql: &str) -> Option<usize> {
    use sqlparser::ast::{Expr, Value, visit_expressions};
    use sqlparser::parser::Parser;

    let statements = match dialect {
        Dialect::Postgres => Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql),
        Dialect::MySql => Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, sql),
        Dialect::Sqlite => Parser::parse_sql(&sqlparser::dialect::SQLiteDialect {}, sql),
    }
    .ok()?;
    let mut anonymous = 0_usize;
    let mut highest = 0_usize;
    let named = visit_expressions(&statements, |expr| {
        if let Expr::Value(v) = expr
            && let Value::Placeholder(p) = &v.value
        {
            if p == "?" {
                anonymous += 1;
            } else if let Some(n) = p
                .strip_prefix('$')
                .or_else(|| p.strip_prefix('?'))
                .and_then(|n| n.parse::<usize>().ok())
            {
                highest = highest.max(n);
            } else {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    match (named.is_break(), anonymous, highest) {
        (true, _, _) => None,
        (false, 0, n) | (false, n, 0) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Settings {
        Settings::default()
    }

    fn message(result: Result<Checked, Refusal>) -> String {
        result
            .err()
            .map(|e| e.message(Context::Query))
            .unwrap_or_default()
    }

    #[test]
    fn reads_are_accepted_with_their_tables() {
        let c = check(
            "SELECT u.name FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1",
            &all(),
        );
        let c = c.map_err(|e| e.message(Context::Query));
        assert_eq!(
            c.as_ref()
                .map(|c| c.tables.iter().cloned().collect::<Vec<_>>()),
            Ok(vec!["orders".to_owned(), "users".to_owned()])
        );
        assert!(c.as_ref().is_ok_and(|c| c.placeholders.contains(&1)));
    }

    #[test]
    fn refusals_say_why() {
        let write = message(check("DELETE FROM users", &all()));
        assert!(write.contains("writes data"), "{write}");
        assert!(write.contains("execute(&db)"), "{write}");
        let locking = message(check("SELECT * FROM users FOR UPDATE", &all()));
        assert!(locking.contains("FOR UPDATE"), "{locking}");
        let now = message(check("SELECT now()", &all()));
        assert!(now.contains("now()"), "{now}");
        let garbage = message(check("SELEKT * FROM", &all()));
        assert!(
            garbage.contains("does not parse in any dialect"),
            "{garbage}"
        );
    }

    #[test]
    fn one_dialect_when_asked() {
        let pg = Settings {
            dialects: vec![Dialect::Postgres],
            ..Settings::default()
        };
        let e = message(check("SELEKT", &pg));
        assert!(
            e.starts_with("this SQL does not parse as PostgreSQL: "),
            "{e}"
        );
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            placeholder_count(Dialect::Postgres, "SELECT $1, $2, $1"),
            Some(2)
        );
        assert_eq!(placeholder_count(Dialect::Sqlite, "SELECT ?, ?"), Some(2));
        assert_eq!(placeholder_count(Dialect::MySql, "SELECT '?', ?"), Some(1));
        assert_eq!(placeholder_count(Dialect::Sqlite, "SELECT 1"), Some(0));
        assert_eq!(placeholder_count(Dialect::Sqlite, "SELECT :name"), None);
    }

    #[test]
    fn unknown_functions_can_be_declared() {
        let e = message(check("SELECT my_fn(id) FROM users", &all()));
        assert!(e.contains("cacheable_functions"), "{e}");
        let declared = Settings {
            functions: ["my_fn".to_owned()].into(),
            ..Settings::default()
        };
        assert!(check("SELECT my_fn(id) FROM users", &declared).is_ok());
    }
}
