//! The analysis itself: one walk over the parsed statement with sqlparser's visitor.
//!
//! Reads are every relation the walk meets, minus CTE names in scope and table functions.
//! Writes are the targets of each DML statement met at any depth (writable CTEs included),
//! and for schema changes every table the statement names. Whatever cannot be attributed to
//! tables invalidates everything, and so does a call of a function the analyzer does not know,
//! since it may run any statement.
//!
//! Before parsing, [`nesting`] bounds the depth of the syntax tree from the tokens, and the
//! parser's recursion limit bounds the rest, so that no input overflows the stack; and
//! [`spellings`] gives the parser the lock clauses and `TABLE` statements it does not know in
//! words it does.

use std::collections::{BTreeSet, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    AlterTableOperation, CascadeOption, ContextModifier, CopySource, Delete, Expr, FromTable,
    Function, FunctionArg, FunctionArgExpr, FunctionArguments, InTarget, ObjectName, ObjectType,
    Query, RenameTableNameKind, Select, Set, SetExpr, Statement, TableFactor, TableObject,
    TableWithJoins, TransactionIsolationLevel, TransactionMode, Value, ValueWithSpan, Visit,
    Visitor,
};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::functions::{self, Verdict};
use super::names;
use super::nesting;
use super::spellings;
use super::{
    Analysis, AnalyzerConfig, Dialect, IsolationLevel, NotCacheable, StatementKind, Table,
    TransactionControl,
};

/// sqlparser's frames are large: at this limit, the deepest statements (nested joins and
/// derived tables) need about 1.1 MiB of stack in a debug build and 0.9 MiB in release,
/// which leaves room for the caller on a 2 MiB thread.
const DEFAULT_RECURSION_LIMIT: usize = 40;
/// Longest parse error message kept, in characters.
const MAX_ERROR_CHARS: usize = 200;
/// Views may be declared on top of views; a cycle in the user's map must not loop.
const MAX_VIEW_DEPTH: usize = 16;
/// Deepest syntax tree analyzed (see [`nesting`]): walking and dropping the tree recurse once per
/// level, and this many levels fit comfortably in a 2 MiB thread stack even in a debug build.
const MAX_TREE_DEPTH: usize = 256;

pub(crate) fn analyze(dialect: Dialect, config: &AnalyzerConfig, sql: &str) -> Analysis {
    analyze_parsed(dialect, config, parse_in(dialect, config, sql))
}

/// The analysis of what [`parse_in`] made of a string.
fn analyze_parsed(
    dialect: Dialect,
    config: &AnalyzerConfig,
    parsed: Result<(Vec<Statement>, Lexical), String>,
) -> Analysis {
    let (statements, lexical) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return Analysis::unparsed(message),
    };
    let mut analyses = statements
        .iter()
        .map(|statement| analyze_statement(dialect, config, &lexical, statement));
    match (analyses.next(), statements.len()) {
        (None, _) => Analysis {
            kind: StatementKind::Utility,
            reads: Vec::new(),
            writes: Vec::new(),
            writes_all: false,
            creates_temporary: Vec::new(),
            not_cacheable: Some(NotCacheable::NotAQuery),
            unknown_functions: Vec::new(),
        },
        (Some(only), 1) => only,
        (Some(first), _) => analyses.fold(multiple(first), |mut acc, next| {
            acc.reads.extend(next.reads);
            acc.writes.extend(next.writes);
            acc.creates_temporary.extend(next.creates_temporary);
            acc.unknown_functions.extend(next.unknown_functions);
            acc.unknown_functions.sort();
            acc.unknown_functions.dedup();
            acc.reads.sort();
            acc.reads.dedup();
            acc.writes.sort();
            acc.writes.dedup();
            acc
        }),
    }
}

/// The analysis of a view's definition as a catalog gives it: the query (PostgreSQL, MySQL)
/// or the whole `CREATE VIEW` statement (SQLite), of which the query alone is analyzed.
pub(crate) fn analyze_view(
    dialect: Dialect,
    config: &AnalyzerConfig,
    definition: &str,
) -> Analysis {
    let parsed =
        parse_in(dialect, config, definition).map(|(statements, lexical)| {
            match <[Statement; 1]>::try_from(statements) {
                Ok([Statement::CreateView(create)]) => {
                    (vec![Statement::Query(create.query)], lexical)
                }
                Ok([other]) => (vec![other], lexical),
                Err(statements) => (statements, lexical),
            }
        });
    analyze_parsed(dialect, config, parsed)
}

/// [`parse`] in `dialect`, with the configured recursion limit.
fn parse_in(
    dialect: Dialect,
    config: &AnalyzerConfig,
    sql: &str,
) -> Result<(Vec<Statement>, Lexical), String> {
    let limit = match config.recursion_limit {
        0 => DEFAULT_RECURSION_LIMIT,
        n => n,
    };
    match dialect {
        Dialect::Postgres => parse(&PostgreSqlDialect {}, dialect, limit, sql),
        Dialect::MySql => parse(&MySqlDialect {}, dialect, limit, sql),
        Dialect::Sqlite => parse(&SQLiteDialect {}, dialect, limit, sql),
    }
}

/// Several statements in one string are never cached and never provably read-only: the
/// adapter cannot follow transaction control or side effects between them.
fn multiple(first: Analysis) -> Analysis {
    Analysis {
        kind: StatementKind::Multiple,
        writes_all: true,
        not_cacheable: Some(NotCacheable::MultipleStatements),
        ..first
    }
}

/// What the parsed statement loses of the SQL text: the scope word of `SET SESSION
/// TRANSACTION` / `SET GLOBAL TRANSACTION` (MySQL), which sqlparser drops. Taken from the
/// first statement; a string of several statements is analyzed as [`StatementKind::Multiple`].
#[derive(Default)]
struct Lexical {
    set_scope: Option<Keyword>,
}

/// Tokenizes, bounds the nesting, respells, parses: with `parser`, the sqlparser dialect of
/// `dialect`.
fn parse(
    parser: &dyn sqlparser::dialect::Dialect,
    dialect: Dialect,
    limit: usize,
    sql: &str,
) -> Result<(Vec<Statement>, Lexical), String> {
    // MySQL's `&&` is its `AND`.
    let ampersands_are_and = dialect == Dialect::MySql;
    let tokens = Tokenizer::new(parser, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| shorten(e.to_string()))?;
    if nesting::too_deep(&tokens, MAX_TREE_DEPTH, ampersands_are_and) {
        return Err(format!(
            "the statement nests deeper than {MAX_TREE_DEPTH} levels"
        ));
    }
    let mut words = tokens.iter().filter_map(|t| match &t.token {
        Token::Whitespace(_) => None,
        Token::Word(word) => Some(Some(word.keyword)),
        _ => Some(None),
    });
    let lexical = Lexical {
        set_scope: match (words.next(), words.next()) {
            (
                Some(Some(Keyword::SET)),
                Some(Some(scope @ (Keyword::SESSION | Keyword::GLOBAL | Keyword::LOCAL))),
            ) => Some(scope),
            _ => None,
        },
    };
    let statements = Parser::new(parser)
        .with_recursion_limit(limit)
        .with_tokens_with_locations(spellings::respell(tokens, dialect))
        .parse_statements()
        .map_err(|e| shorten(e.to_string()))?;
    Ok((statements, lexical))
}

/// A parse error quotes the SQL it failed on; keep the reason short whatever the input size.
fn shorten(message: String) -> String {
    match message.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}...", &message[..cut]),
        None => message,
    }
}

fn analyze_statement(
    dialect: Dialect,
    config: &AnalyzerConfig,
    lexical: &Lexical,
    statement: &Statement,
) -> Analysis {
    if let Statement::Explain {
        analyze, statement, ..
    } = statement
    {
        // EXPLAIN ANALYZE runs the statement; plain EXPLAIN only plans it.
        let inner = analyze_statement(dialect, config, lexical, statement);
        let (writes, writes_all) = if *analyze {
            (inner.writes, inner.writes_all)
        } else {
            (Vec::new(), false)
        };
        return Analysis {
            kind: StatementKind::Utility,
            reads: inner.reads,
            writes,
            writes_all,
            creates_temporary: Vec::new(),
            not_cacheable: Some(NotCacheable::Explain),
            unknown_functions: inner.unknown_functions,
        };
    }

    let mut walk = Walk::new(dialect, config);
    let _ = statement.visit(&mut walk);
    let kind = walk.top_level(statement, lexical);

    let not_cacheable = match kind {
        StatementKind::Query if walk.nested_write => Some(NotCacheable::Write),
        StatementKind::Query => walk.reason.take(),
        StatementKind::Insert
        | StatementKind::Update
        | StatementKind::Delete
        | StatementKind::Merge
        | StatementKind::Truncate
        | StatementKind::Copy
        | StatementKind::Ddl
        | StatementKind::Procedure => Some(NotCacheable::Write),
        _ => Some(NotCacheable::NotAQuery),
    };
    if kind == StatementKind::Ddl && walk.writes.is_empty() && !walk.harmless_ddl {
        walk.writes_all = true;
    }
    let writes: Vec<Table> = walk.writes.into_iter().collect();
    let reads = walk
        .reads
        .into_iter()
        .filter(|t| !writes.contains(t))
        .collect();
    Analysis {
        kind,
        reads,
        writes,
        writes_all: walk.writes_all,
        creates_temporary: walk.creates_temporary,
        not_cacheable,
        unknown_functions: walk.unknown_functions.into_iter().collect(),
    }
}

/// The CTEs a query defines, and how many of them are visible at this point of the walk.
struct CteScope {
    names: Vec<String>,
    queries: Vec<usize>,
    recursive: bool,
    visible: usize,
}

struct Walk<'c> {
    dialect: Dialect,
    config: &'c AnalyzerConfig,
    scopes: Vec<CteScope>,
    /// Addresses of names that are not tables: table functions, aliases named as targets.
    not_tables: HashSet<usize>,
    reads: BTreeSet<Table>,
    writes: BTreeSet<Table>,
    writes_all: bool,
    creates_temporary: Vec<Table>,
    reason: Option<NotCacheable>,
    unknown_functions: BTreeSet<String>,
    depth: usize,
    nested_write: bool,
    /// A DDL statement that names no table and changes no row (`DROP INDEX name`).
    harmless_ddl: bool,
}

/// Identity of an AST node for the walk's bookkeeping; never dereferenced.
fn addr<T>(node: &T) -> usize {
    node as *const T as usize
}

impl<'c> Walk<'c> {
    fn new(dialect: Dialect, config: &'c AnalyzerConfig) -> Self {
        Walk {
            dialect,
            config,
            scopes: Vec::new(),
            not_tables: HashSet::new(),
            reads: BTreeSet::new(),
            writes: BTreeSet::new(),
            writes_all: false,
            creates_temporary: Vec::new(),
            reason: None,
            unknown_functions: BTreeSet::new(),
            depth: 0,
            nested_write: false,
            harmless_ddl: false,
        }
    }

    fn not_cacheable(&mut self, reason: NotCacheable) {
        self.reason.get_or_insert(reason);
    }

    fn table(&self, name: &ObjectName) -> Table {
        names::table(self.dialect, self.config, name)
    }

    fn is_cte(&self, name: &ObjectName) -> bool {
        let [_] = name.0.as_slice() else {
            return false;
        };
        let parts = names::parts(self.dialect, name);
        let Some(name) = parts.first() else {
            return false;
        };
        self.scopes
            .iter()
            .any(|scope| scope.names[..scope.visible].contains(name))
    }

    /// Adds a table and, for a declared view, the tables behind it.
    fn add(set: &mut BTreeSet<Table>, config: &AnalyzerConfig, table: Table, depth: usize) {
        if depth < MAX_VIEW_DEPTH
            && let Some(behind) = config.views.get(&table.name)
        {
            for name in behind {
                Self::add(set, config, Table::new(name.clone()), depth + 1);
            }
        }
        set.insert(table);
    }

    fn write(&mut self, name: &ObjectName) {
        let table = self.table(name);
        Self::add(&mut self.writes, self.config, table, 0);
    }

    fn write_relations(&mut self, tables: &[TableWithJoins]) {
        for twj in tables {
            let factors =
                std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation));
            for factor in factors {
                match factor {
                    TableFactor::Table { name, .. } => self.write(name),
                    _ => self.writes_all = true,
                }
            }
        }
    }

    fn function(&mut self, name: &ObjectName, args: usize) {
        let (schema, name) = names::function_name(name);
        let config = self.config;
        let verdict = match functions::classify(
            &name,
            schema.as_deref(),
            args,
            &config.cacheable_functions,
        ) {
            // What the database's catalog says, where the analyzer knows nothing.
            Verdict::Unknown if config.catalog_deterministic.contains(&name) => {
                Verdict::Deterministic
            }
            Verdict::Unknown if config.catalog_read_only.contains(&name) => Verdict::Volatile,
            verdict => verdict,
        };
        match verdict {
            Verdict::Deterministic => {}
            Verdict::Volatile => self.not_cacheable(NotCacheable::Volatile(name)),
            Verdict::Unknown => {
                // A function the analyzer does not know may also write tables
                // (a PostgreSQL or MySQL function can run any statement).
                self.writes_all = true;
                self.unknown_functions.insert(name.clone());
                self.not_cacheable(NotCacheable::UnknownFunction(name));
            }
        }
    }

    /// `nextval('seq')` / `setval('seq', n)` write the sequence, which `SELECT last_value
    /// FROM seq` reads; a sequence named by anything but a literal could be any one.
    fn sequence_write(&mut self, function: &Function) {
        let (_, name) = names::function_name(&function.name);
        if !functions::SEQUENCE_WRITERS.contains(&name.as_str()) {
            return;
        }
        let FunctionArguments::List(list) = &function.args else {
            self.writes_all = true;
            return;
        };
        match list.args.first() {
            Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))) => match literal(expr) {
                Some(text) => self.write_named(&text),
                None => self.writes_all = true,
            },
            _ => self.writes_all = true,
        }
    }

    /// Writes a table named by a string (`'public.Seq'` or `'"Seq"'`), parsed as the
    /// dialect would.
    fn write_named(&mut self, text: &str) {
        let parsed = match self.dialect {
            Dialect::Postgres => Parser::new(&PostgreSqlDialect {}).try_with_sql(text),
            Dialect::MySql => Parser::new(&MySqlDialect {}).try_with_sql(text),
            Dialect::Sqlite => Parser::new(&SQLiteDialect {}).try_with_sql(text),
        }
        .and_then(|mut parser| {
            let name = parser.parse_object_name(false)?;
            Ok((parser.peek_token_ref().token == Token::EOF).then_some(name))
        });
        match parsed {
            Ok(Some(name)) if !name.0.is_empty() => self.write(&name),
            _ => self.writes_all = true,
        }
    }

    fn delete_targets(&mut self, delete: &Delete) {
        let from = match &delete.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        if delete.tables.is_empty() && delete.using.is_none() {
            self.write_relations(from);
            return;
        }
        // MySQL `DELETE a FROM items AS a JOIN ...` and `DELETE FROM a USING items AS a ...`:
        // the targets may be aliases of tables named in FROM / USING.
        let sources: Vec<&TableFactor> = from
            .iter()
            .chain(delete.using.iter().flatten())
            .flat_map(|twj| {
                std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation))
            })
            .collect();
        let targets: Vec<&ObjectName> = if delete.tables.is_empty() {
            let mut targets = Vec::new();
            for twj in from {
                for factor in
                    std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation))
                {
                    match factor {
                        // With an alias, the name is the table itself (PostgreSQL).
                        TableFactor::Table {
                            name, alias: None, ..
                        } => targets.push(name),
                        TableFactor::Table { name, .. } => self.write(name),
                        _ => self.writes_all = true,
                    }
                }
            }
            targets
        } else {
            delete.tables.iter().collect()
        };
        for target in targets {
            let resolved = match target.0.as_slice() {
                [_] => {
                    let target_name = names::parts(self.dialect, target).concat();
                    sources.iter().find_map(|factor| match factor {
                        TableFactor::Table {
                            name,
                            alias: Some(alias),
                            ..
                        } if names::fold(self.dialect, &alias.name) == target_name => Some(name),
                        _ => None,
                    })
                }
                _ => None,
            };
            match resolved {
                Some(table) => {
                    self.not_tables.insert(addr(target));
                    self.write(table);
                }
                None => self.write(target),
            }
        }
    }

    /// The kind of the top-level statement, adding the writes that the walk alone does not see.
    fn top_level(&mut self, statement: &Statement, lexical: &Lexical) -> StatementKind {
        match statement {
            // `WITH ... INSERT / UPDATE / DELETE / MERGE` parse as a query around the statement.
            Statement::Query(query) => match &*query.body {
                SetExpr::Insert(_) => StatementKind::Insert,
                SetExpr::Update(_) => StatementKind::Update,
                SetExpr::Delete(_) => StatementKind::Delete,
                SetExpr::Merge(_) => StatementKind::Merge,
                _ => StatementKind::Query,
            },
            Statement::Insert(_) => StatementKind::Insert,
            Statement::Update(_) => StatementKind::Update,
            Statement::Delete(_) => StatementKind::Delete,
            Statement::Merge(_) => StatementKind::Merge,
            Statement::Truncate(truncate) => {
                for target in &truncate.table_names {
                    self.write(&target.name);
                }
                // PostgreSQL's CASCADE also empties every table with a foreign key to these.
                if truncate.cascade == Some(CascadeOption::Cascade) {
                    self.writes_all = true;
                }
                StatementKind::Truncate
            }
            Statement::Copy { source, to, .. } => {
                if !*to && let CopySource::Table { table_name, .. } = source {
                    self.write(table_name);
                }
                if *to {
                    StatementKind::Utility
                } else {
                    StatementKind::Copy
                }
            }
            Statement::LoadData { table_name, .. } => {
                self.write(table_name);
                StatementKind::Copy
            }
            Statement::CreateTable(create) => {
                self.write(&create.name);
                // A new partition is part of its parent table.
                if let Some(parent) = &create.partition_of {
                    self.write(parent);
                }
                if create.temporary {
                    self.creates_temporary.push(self.table(&create.name));
                }
                StatementKind::Ddl
            }
            Statement::CreateView(create) => {
                self.write(&create.name);
                // Private to one connection, as a temporary table.
                if create.temporary {
                    self.creates_temporary.push(self.table(&create.name));
                }
                StatementKind::Ddl
            }
            Statement::CreateIndex(create) => {
                self.write(&create.table_name);
                StatementKind::Ddl
            }
            Statement::CreateVirtualTable { name, .. } => {
                self.write(name);
                StatementKind::Ddl
            }
            Statement::AlterTable(alter) => {
                self.write(&alter.name);
                for op in &alter.operations {
                    if let AlterTableOperation::RenameTable { table_name } = op {
                        let (RenameTableNameKind::As(new) | RenameTableNameKind::To(new)) =
                            table_name;
                        self.write(new);
                    }
                }
                StatementKind::Ddl
            }
            Statement::AlterView(alter) => {
                self.write(&alter.name);
                StatementKind::Ddl
            }
            Statement::RenameTable(renames) => {
                for rename in renames {
                    self.write(&rename.old_name);
                    self.write(&rename.new_name);
                }
                StatementKind::Ddl
            }
            Statement::Drop {
                object_type,
                names: dropped,
                table,
                ..
            } => {
                match object_type {
                    ObjectType::Table
                    | ObjectType::View
                    | ObjectType::MaterializedView
                    | ObjectType::ForeignTable => {
                        for name in dropped {
                            self.write(name);
                        }
                    }
                    ObjectType::Index => match table {
                        Some(table) => self.write(table),
                        None => self.harmless_ddl = true,
                    },
                    // Schemas, types, sequences, ...: a cascade may reach any table.
                    _ => self.writes_all = true,
                }
                StatementKind::Ddl
            }
            Statement::Call(_) | Statement::Execute { .. } => {
                self.writes_all = true;
                StatementKind::Procedure
            }
            Statement::StartTransaction { modes, .. } => {
                StatementKind::Transaction(TransactionControl::Begin(isolation(modes)))
            }
            Statement::Commit { .. } => StatementKind::Transaction(TransactionControl::Commit),
            Statement::Rollback { savepoint, .. } => StatementKind::Transaction(match savepoint {
                Some(name) => TransactionControl::RollbackTo(names::fold(self.dialect, name)),
                None => TransactionControl::Rollback,
            }),
            Statement::Savepoint { name } => StatementKind::Transaction(
                TransactionControl::Savepoint(names::fold(self.dialect, name)),
            ),
            Statement::ReleaseSavepoint { name } => StatementKind::Transaction(
                TransactionControl::Release(names::fold(self.dialect, name)),
            ),
            Statement::Set(Set::SetTransaction { modes, session, .. }) => {
                match lexical.set_scope {
                    // MySQL's `SET GLOBAL TRANSACTION` only changes sessions opened later.
                    Some(Keyword::GLOBAL) => StatementKind::Utility,
                    scope => StatementKind::Transaction(TransactionControl::SetTransaction {
                        isolation: isolation(modes),
                        session: *session || scope == Some(Keyword::SESSION),
                    }),
                }
            }
            // Isolation set through a variable (`SET default_transaction_isolation = ...`,
            // `SET SESSION transaction_isolation = ...`); any other `SET` is a utility.
            Statement::Set(set) => isolation_variable(self.dialect, set),
            Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowObjects(_)
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowCollation { .. }
            | Statement::ShowProcessList { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ExplainTable { .. }
            | Statement::Pragma { .. }
            | Statement::Analyze(_)
            | Statement::Prepare { .. }
            | Statement::Deallocate { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. }
            | Statement::Kill { .. }
            | Statement::Lock(_)
            | Statement::LockTables { .. }
            | Statement::UnlockTables => {
                // Relations named here (SHOW COLUMNS FROM t, LOCK TABLES t) are not written.
                StatementKind::Utility
            }
            Statement::Use(_) | Statement::Discard { .. } | Statement::Reset(_) => {
                StatementKind::Session
            }
            _ => {
                // Any other statement: every table it names is written; none named means
                // it may reach any table (CREATE FUNCTION, GRANT, DROP SCHEMA, ...).
                let named: Vec<Table> = self.reads.iter().cloned().collect();
                self.writes.extend(named);
                if self.writes.is_empty() {
                    self.writes_all = true;
                }
                StatementKind::Ddl
            }
        }
    }
}

fn isolation(modes: &[TransactionMode]) -> Option<IsolationLevel> {
    modes.iter().rev().find_map(|mode| match mode {
        TransactionMode::IsolationLevel(level) => Some(match level {
            TransactionIsolationLevel::ReadUncommitted => IsolationLevel::ReadUncommitted,
            TransactionIsolationLevel::ReadCommitted => IsolationLevel::ReadCommitted,
            TransactionIsolationLevel::RepeatableRead => IsolationLevel::RepeatableRead,
            // SNAPSHOT (SQL Server) behaves like SERIALIZABLE for the cache: no publication.
            _ => IsolationLevel::Serializable,
        }),
        TransactionMode::AccessMode(_) => None,
    })
}

/// `SET` of a variable that holds the transaction isolation level: where the level applies,
/// following each database's rules. Any other `SET` is a [`StatementKind::Session`], or a
/// [`StatementKind::Utility`] when every setting it makes is [`harmless`].
fn isolation_variable(dialect: Dialect, set: &Set) -> StatementKind {
    let assignments: Vec<(Option<&ContextModifier>, &ObjectName, Option<&Expr>)> = match set {
        Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => vec![(scope.as_ref(), variable, values.first())],
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .map(|a| (a.scope.as_ref(), &a.name, Some(&a.value)))
            .collect(),
        // SET ROLE, SET SESSION AUTHORIZATION, SET TIME ZONE, SET NAMES, ...
        _ => return StatementKind::Session,
    };
    let mut kind = StatementKind::Utility;
    let mut changes_session = false;
    for (scope, variable, value) in assignments {
        let parts: Vec<String> = variable
            .0
            .iter()
            .map(|part| part.to_string().to_ascii_lowercase())
            .collect();
        let (prefix, name) = match parts.as_slice() {
            [name] => (None, name.as_str()),
            [prefix, name] => (Some(prefix.as_str()), name.as_str()),
            _ => {
                changes_session = true;
                continue;
            }
        };
        changes_session |= !harmless(prefix, name);
        let global = scope == Some(&ContextModifier::Global) || prefix == Some("@@global");
        let session = match (dialect, name.trim_start_matches("@@")) {
            // MySQL: `@@transaction_isolation` is the next transaction's level, any other
            // spelling without GLOBAL the session's.
            (Dialect::MySql, "transaction_isolation" | "tx_isolation") if !global => {
                !name.starts_with("@@")
            }
            // PostgreSQL: `transaction_isolation` is the current transaction's level, the
            // session's default is `default_transaction_isolation` (LOCAL: this transaction).
            (Dialect::Postgres, "transaction_isolation") => false,
            (Dialect::Postgres, "default_transaction_isolation")
                if scope != Some(&ContextModifier::Local) =>
            {
                true
            }
            _ => continue,
        };
        kind = StatementKind::Transaction(TransactionControl::SetTransaction {
            isolation: value.and_then(isolation_value),
            session,
        });
    }
    match kind {
        StatementKind::Utility if changes_session => StatementKind::Session,
        kind => kind,
    }
}

/// Whether the setting `name` (after `prefix`: `@@session`, `local`, a custom setting's
/// class, ...) leaves every query's rows as they were: a timeout, a name, a planner, memory
/// or logging knob, a MySQL user variable (whose reads are never cached). Anything else may
/// change what a query means or returns (`search_path`, `TimeZone`, `sql_mode`, a custom
/// setting a function reads, ...).
fn harmless(prefix: Option<&str>, name: &str) -> bool {
    const NAMES: &[&str] = &[
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "idle_session_timeout",
        "transaction_timeout",
        "application_name",
        "work_mem",
        "maintenance_work_mem",
        "temp_buffers",
        "hash_mem_multiplier",
        "synchronous_commit",
        "client_min_messages",
        "log_statement",
        "log_min_duration_statement",
        "log_min_messages",
        "jit",
        "random_page_cost",
        "seq_page_cost",
        "effective_cache_size",
        "max_parallel_workers_per_gather",
        "plan_cache_mode",
        "innodb_lock_wait_timeout",
        "lock_wait_timeout",
        "max_execution_time",
        "max_statement_time",
        "wait_timeout",
        "net_read_timeout",
        "net_write_timeout",
        "long_query_time",
        "optimizer_switch",
        "foreign_key_checks",
        "unique_checks",
    ];
    let user_variable = prefix.is_none() && name.starts_with('@') && !name.starts_with("@@");
    let name = name.trim_start_matches("@@");
    match prefix {
        None | Some("@@session" | "session" | "local") => {
            user_variable || name.starts_with("enable_") || NAMES.contains(&name)
        }
        _ => user_variable,
    }
}

/// An isolation level spelled as a value: `'READ-COMMITTED'`, `'read committed'`, ...
fn isolation_value(value: &Expr) -> Option<IsolationLevel> {
    let text = match value {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text) | Value::DoubleQuotedString(text),
            ..
        }) => text.clone(),
        Expr::Identifier(ident) => ident.value.clone(),
        _ => return None,
    };
    let words: Vec<String> = text
        .split(['-', '_', ' '])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    match words.join(" ").as_str() {
        "read uncommitted" => Some(IsolationLevel::ReadUncommitted),
        "read committed" => Some(IsolationLevel::ReadCommitted),
        "repeatable read" => Some(IsolationLevel::RepeatableRead),
        "serializable" => Some(IsolationLevel::Serializable),
        _ => None,
    }
}

/// The text of a string literal, through casts (`'seq'::regclass`).
fn literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text),
            ..
        }) => Some(text.clone()),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => literal(expr),
        _ => None,
    }
}

fn argument_count(args: &FunctionArguments) -> usize {
    match args {
        FunctionArguments::None => 0,
        FunctionArguments::Subquery(_) => 1,
        FunctionArguments::List(list) => list.args.len(),
    }
}

impl Visitor for Walk<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        self.depth += 1;
        let is_write = match statement {
            Statement::Insert(insert) => {
                match &insert.table {
                    TableObject::TableName(name) => self.write(name),
                    _ => self.writes_all = true,
                }
                true
            }
            Statement::Update(update) => {
                self.write_relations(std::slice::from_ref(&update.table));
                true
            }
            Statement::Delete(delete) => {
                self.delete_targets(delete);
                true
            }
            Statement::Merge(merge) => {
                match &merge.table {
                    TableFactor::Table { name, .. } => self.write(name),
                    _ => self.writes_all = true,
                }
                true
            }
            _ => false,
        };
        if is_write && self.depth > 1 {
            self.nested_write = true;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _: &Statement) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let me = addr(query);
        if let Some(scope) = self.scopes.last_mut()
            && let Some(i) = scope.queries.iter().position(|&q| q == me)
        {
            // A non-recursive CTE sees the CTEs before it; its own name still means the table.
            scope.visible = if scope.recursive {
                scope.names.len()
            } else {
                i
            };
        }
        let (names, queries, recursive) = match &query.with {
            Some(with) => (
                with.cte_tables
                    .iter()
                    .map(|cte| names::fold(self.dialect, &cte.alias.name))
                    .collect(),
                with.cte_tables
                    .iter()
                    .map(|cte| addr(&*cte.query))
                    .collect(),
                with.recursive,
            ),
            None => (Vec::new(), Vec::new(), false),
        };
        self.scopes.push(CteScope {
            names,
            queries,
            recursive,
            visible: 0,
        });
        if !query.locks.is_empty() {
            self.not_cacheable(NotCacheable::Locking);
        }
        self.table_commands(&query.body);
        if let SetExpr::Select(select) = &*query.body
            && select.into.is_some()
        {
            self.select_into(select);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.scopes.pop();
        let me = addr(query);
        if let Some(scope) = self.scopes.last_mut()
            && let Some(i) = scope.queries.iter().position(|&q| q == me)
        {
            scope.visible = if scope.recursive {
                scope.names.len()
            } else {
                i + 1
            };
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => {
                self.not_tables.insert(addr(name));
                self.function(name, args.args.len());
            }
            TableFactor::Function { name, args, .. } => self.function(name, args.len()),
            // A random sample of the rows, different at every run; even REPEATABLE's seed
            // picks other rows once the table is rewritten (VACUUM FULL, CLUSTER), which no
            // write to it announces.
            TableFactor::Table {
                sample: Some(_), ..
            } => self.not_cacheable(NotCacheable::Volatile("TABLESAMPLE".into())),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !self.not_tables.contains(&addr(relation)) {
            self.read(relation);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => {
                let args = argument_count(&function.args);
                self.function(&function.name, args);
                self.sequence_write(function);
            }
            Expr::In {
                target:
                    InTarget::Table {
                        name,
                        args: Some(args),
                    },
                ..
            } => {
                self.not_tables.insert(addr(name));
                self.function(name, args.len());
            }
            // MySQL user variables and system variables depend on the session.
            Expr::Identifier(ident) if ident.value.starts_with('@') => {
                self.not_cacheable(NotCacheable::Volatile(ident.value.clone()));
            }
            Expr::CompoundIdentifier(parts)
                if parts.first().is_some_and(|p| p.value.starts_with('@')) =>
            {
                let name = parts.iter().map(|p| p.value.as_str()).collect::<Vec<_>>();
                self.not_cacheable(NotCacheable::Volatile(name.join(".")));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        if let Value::SingleQuotedString(text) | Value::DoubleQuotedString(text) = &value.value
            && functions::volatile_literal(text)
        {
            self.not_cacheable(NotCacheable::Volatile(format!("'{text}'")));
        }
        ControlFlow::Continue(())
    }
}

impl Walk<'_> {
    /// A read of `relation`, unless it names a CTE in scope.
    fn read(&mut self, relation: &ObjectName) {
        if self.is_cte(relation) {
            return;
        }
        let table = self.table(relation);
        if names::system_catalog(self.dialect, &table) {
            self.not_cacheable(NotCacheable::SystemCatalog(table.to_string()));
        } else if names::temporary(&table) {
            self.not_cacheable(NotCacheable::TemporaryTable(table.to_string()));
        }
        Self::add(&mut self.reads, self.config, table, 0);
    }

    /// `TABLE name`, alone or in a set operation: `SELECT * FROM name`. Its name is no
    /// relation to sqlparser's visitor, so the walk would not see the read otherwise.
    fn table_commands(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Table(table) => match (&table.schema_name, &table.table_name) {
                (schema, Some(name)) => {
                    let parts = schema.iter().chain([name]).cloned().collect::<Vec<_>>();
                    self.read(&ObjectName::from(parts));
                }
                // No name (sqlparser makes none, but its type allows it): unanalyzable.
                (_, None) => {
                    self.writes_all = true;
                    self.not_cacheable(NotCacheable::ParseError("TABLE without a name".into()));
                }
            },
            SetExpr::SetOperation { left, right, .. } => {
                self.table_commands(left);
                self.table_commands(right);
            }
            _ => {}
        }
    }

    /// `SELECT ... INTO`: PostgreSQL creates a table, MySQL assigns variables or writes a file.
    fn select_into(&mut self, select: &Select) {
        self.not_cacheable(NotCacheable::SelectInto);
        let Some(into) = &select.into else { return };
        if self.dialect != Dialect::Postgres {
            return;
        }
        for target in &into.targets {
            match target {
                Expr::Identifier(ident) => {
                    self.write(&ObjectName::from(vec![ident.clone()]));
                }
                Expr::CompoundIdentifier(parts) => {
                    self.write(&ObjectName::from(parts.clone()));
                }
                _ => self.writes_all = true,
            }
        }
        if into.temporary {
            self.creates_temporary
                .extend(self.writes.iter().cloned().collect::<Vec<_>>());
        }
    }
}
