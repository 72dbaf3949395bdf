//! Table-name normalization: one spelling per table, the way the dialect resolves names.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::{AnalyzerConfig, Dialect, Table};

/// Folds one identifier as the dialect does: PostgreSQL folds unquoted names to lower case and
/// keeps quoted ones; MySQL and SQLite compare table names case-insensitively in the common
/// configurations, and folding there only ever merges names (extra misses, never a stale read).
pub(crate) fn fold(dialect: Dialect, ident: &Ident) -> String {
    match (dialect, ident.quote_style) {
        (Dialect::Postgres, Some(_)) => ident.value.clone(),
        _ => ident.value.to_lowercase(),
    }
}

/// The identifiers of an object name, folded. Function-style parts (rare, dialect-specific)
/// are rendered as written and folded.
pub(crate) fn parts(dialect: Dialect, name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => fold(dialect, ident),
            other => other.to_string().to_lowercase(),
        })
        .collect()
}

/// Normalizes a table name: catalog dropped, default schema stripped.
pub(crate) fn table(dialect: Dialect, config: &AnalyzerConfig, name: &ObjectName) -> Table {
    let mut parts = parts(dialect, name);
    let name = parts.pop().unwrap_or_default();
    let schema = parts.pop().filter(|schema| {
        let default = config
            .default_schema
            .as_deref()
            .or(dialect.default_schema());
        default.is_none_or(|d| !d.eq_ignore_ascii_case(schema))
    });
    Table { schema, name }
}

/// The last part of a (function) name, lower-cased: `pg_catalog.NOW` is `now`.
pub(crate) fn function_name(name: &ObjectName) -> (Option<String>, String) {
    let mut parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident.value.to_lowercase(),
            other => other.to_string().to_lowercase(),
        })
        .collect();
    let last = parts.pop().unwrap_or_default();
    (parts.pop(), last)
}

/// Whether the table is a system catalog whose content the database changes by itself.
pub(crate) fn system_catalog(dialect: Dialect, table: &Table) -> bool {
    const SCHEMAS: &[&str] = &[
        "pg_catalog",
        "information_schema",
        "pg_toast",
        "mysql",
        "performance_schema",
        "sys",
    ];
    if let Some(schema) = &table.schema
        && SCHEMAS.contains(&schema.to_ascii_lowercase().as_str())
    {
        return true;
    }
    let name = table.name.to_ascii_lowercase();
    match dialect {
        // Unqualified pg_* names resolve to pg_catalog first.
        Dialect::Postgres => name.starts_with("pg_"),
        Dialect::Sqlite => name.starts_with("sqlite_"),
        Dialect::MySql => false,
    }
}

/// Whether the table lives in a temporary schema.
pub(crate) fn temporary(table: &Table) -> bool {
    table.schema.as_deref().is_some_and(|schema| {
        let schema = schema.to_ascii_lowercase();
        schema == "temp" || schema.starts_with("pg_temp")
    })
}
