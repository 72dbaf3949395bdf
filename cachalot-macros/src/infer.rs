//! Finds the SQL a function body sends, to infer the tables its value depends on.
//!
//! Recognized: the first string-literal argument of a call to a function named like sqlx's
//! query constructors (`sqlx::query("...")`, `query_as`, `query_scalar`, their `_with` forms,
//! `raw_sql`), of a method named `query_as` / `query_scalar` (cachalot's builders) or like an
//! executor's (`fetch_all("...")`, `execute("...")`, ...), and of the sqlx and cachalot query
//! macros (`query!`, `query_as!`, `cached_query_as!`, ...). Other macros are looked into
//! when their arguments parse as expressions (`tokio::join!`, `vec!`, ...).
//!
//! Anything that would hide a read is an error, so that inference never leaves a table out:
//! a recognized query whose SQL is not a literal, `query_file!`, and the pool handed to a
//! function that is not a query constructor or an executor method.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, ExprCall, ExprMethodCall, Ident, Lit, LitStr, Macro, Token};

use crate::check::Settings;
use crate::query::parse_options;

/// Functions whose first argument is the SQL.
const QUERY_FUNCTIONS: &[&str] = &[
    "query",
    "query_as",
    "query_scalar",
    "query_with",
    "query_as_with",
    "query_scalar_with",
    "raw_sql",
];

/// Methods whose first argument is the SQL: cachalot's builders.
const QUERY_METHODS: &[&str] = &["query_as", "query_scalar"];

/// Executor methods: they take the SQL (a literal is recognized) or the pool (allowed).
const EXECUTOR_METHODS: &[&str] = &[
    "execute",
    "execute_many",
    "fetch",
    "fetch_all",
    "fetch_many",
    "fetch_one",
    "fetch_optional",
    "prepare",
    "prepare_with",
    "describe",
];

/// Macros whose first string-literal argument is the SQL.
const QUERY_MACROS: &[&str] = &[
    "query",
    "query_as",
    "query_scalar",
    "query_unchecked",
    "query_as_unchecked",
    "query_scalar_unchecked",
    "cached_query_as",
    "cached_query_scalar",
];

/// Macros that read their SQL from a file: not followed.
const FILE_MACROS: &[&str] = &[
    "query_file",
    "query_file_as",
    "query_file_scalar",
    "query_file_unchecked",
    "query_file_as_unchecked",
    "query_file_scalar_unchecked",
];

/// What a walk over a body found.
#[derive(Default)]
pub(crate) struct Found {
    /// The SQL literals, in the order they appear, with the analyzer settings of the
    /// cachalot macro they were given to, if any.
    pub(crate) sql: Vec<(LitStr, Option<Settings>)>,
    /// Why inference cannot be trusted, if it cannot.
    pub(crate) errors: Vec<syn::Error>,
}

/// Walks a function body.
pub(crate) struct Finder<'a> {
    /// The pool parameter, whose escape to an unknown function hides reads.
    pool: Option<&'a Ident>,
    found: Found,
}

impl<'a> Finder<'a> {
    pub(crate) fn new(pool: Option<&'a Ident>) -> Self {
        Finder {
            pool,
            found: Found::default(),
        }
    }

    pub(crate) fn finish(self) -> Found {
        self.found
    }

    fn error(&mut self, at: &dyn ToTokens, message: String) {
        self.found.errors.push(syn::Error::new_spanned(at, message));
    }

    /// Whether `expr` is the pool (`db`, `&db`, `db.clone()`, `(db)`).
    fn is_pool(&self, expr: &Expr) -> bool {
        let Some(pool) = self.pool else {
            return false;
        };
        match expr {
            Expr::Path(p) => p.qself.is_none() && p.path.is_ident(pool),
            Expr::Reference(r) => self.is_pool(&r.expr),
            Expr::Paren(p) => self.is_pool(&p.expr),
            Expr::Group(g) => self.is_pool(&g.expr),
            Expr::MethodCall(m) => m.method == "clone" && self.is_pool(&m.receiver),
            _ => false,
        }
    }

    /// Records the SQL argument of a recognized query, or why it cannot be read.
    fn sql_argument(&mut self, what: &str, arg: Option<&Expr>, call: &dyn ToTokens) {
        match arg.map(strip) {
            Some(Expr::Lit(lit)) if matches!(lit.lit, Lit::Str(_)) => {
                if let Lit::Str(s) = &lit.lit {
                    self.found.sql.push((s.clone(), None));
                }
            }
            Some(other) => self.error(
                other,
                format!(
                    "cannot infer the tables `{what}` reads: its SQL is not a string literal; name them with `#[cached_query(tables = [...])]`"
                ),
            ),
            None => self.error(
                call,
                format!(
                    "cannot infer the tables `{what}` reads: no SQL found; name them with `#[cached_query(tables = [...])]`"
                ),
            ),
        }
    }

    /// Looks into a macro whose arguments are expressions.
    fn visit_macro_arguments(&mut self, tokens: TokenStream) {
        let parser = Punctuated::<Expr, Token![,]>::parse_terminated;
        if let Ok(args) = parser.parse2(tokens) {
            for arg in &args {
                self.visit_expr(arg);
            }
        }
    }
}

/// An expression without the parentheses and invisible groups around it.
fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        other => other,
    }
}

fn last_segment(path: &syn::Path) -> Option<String> {
    path.segments.last().map(|s| s.ident.to_string())
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_expr_call(&mut self, call: &'ast ExprCall) {
        let name = match strip(&call.func) {
            Expr::Path(p) => last_segment(&p.path),
            _ => None,
        };
        match name {
            Some(name) if QUERY_FUNCTIONS.contains(&name.as_str()) => {
                self.sql_argument(&name, call.args.first(), call);
            }
            _ => {
                if let Some(arg) = call.args.iter().find(|a| self.is_pool(a)) {
                    let callee = call.func.to_token_stream().to_string();
                    self.error(
                        arg,
                        format!(
                            "cannot infer the tables read through `{callee}`, which is given the pool; name them with `#[cached_query(tables = [...])]`"
                        ),
                    );
                }
            }
        }
        visit::visit_expr_call(self, call);
    }

    fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
        let name = call.method.to_string();
        if QUERY_METHODS.contains(&name.as_str()) {
            self.sql_argument(&name, call.args.first(), call);
        } else if EXECUTOR_METHODS.contains(&name.as_str()) {
            if let Some(Expr::Lit(lit)) = call.args.first().map(strip)
                && let Lit::Str(s) = &lit.lit
            {
                self.found.sql.push((s.clone(), None));
            }
        } else if let Some(arg) = call.args.iter().find(|a| self.is_pool(a)) {
            self.error(
                arg,
                format!(
                    "cannot infer the tables read through `.{name}(..)`, which is given the pool; name them with `#[cached_query(tables = [...])]`"
                ),
            );
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        let Some(name) = last_segment(&mac.path) else {
            return;
        };
        if FILE_MACROS.contains(&name.as_str()) {
            self.error(
                mac,
                format!(
                    "cannot infer the tables `{name}!` reads from its file; name them with `#[cached_query(tables = [...])]`"
                ),
            );
        } else if QUERY_MACROS.contains(&name.as_str()) {
            let parser = Punctuated::<Expr, Token![,]>::parse_terminated;
            let args = parser.parse2(mac.tokens.clone());
            let literal = args.as_ref().ok().and_then(|args| {
                args.iter().find_map(|a| match strip(a) {
                    Expr::Lit(lit) => match &lit.lit {
                        Lit::Str(s) => Some(s.clone()),
                        _ => None,
                    },
                    _ => None,
                })
            });
            let settings = name.starts_with("cached_").then(|| {
                let parser = |input: ParseStream<'_>| {
                    let given = input.peek(Ident) && input.peek2(Token![=]);
                    let settings = parse_options(input)?;
                    input.parse::<TokenStream>()?;
                    Ok(given.then_some(settings))
                };
                parser.parse2(mac.tokens.clone()).ok()
            });
            match literal {
                Some(sql) => self.found.sql.push((sql, settings.flatten().flatten())),
                None => self.error(
                    mac,
                    format!(
                        "cannot infer the tables `{name}!` reads: no SQL string literal found; name them with `#[cached_query(tables = [...])]`"
                    ),
                ),
            }
            if let Ok(args) = args {
                for arg in &args {
                    self.visit_expr(arg);
                }
            }
        } else {
            self.visit_macro_arguments(mac.tokens.clone());
        }
    }
}
