//! `cached_query_as!` and `cached_query_scalar!`: parse, check, expand.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitStr, Token, Type};

use crate::check::{self, Context, Settings};

/// Which macro is expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `cached_query_as!(Type, source, "SQL", args...)`.
    As,
    /// `cached_query_scalar!(Type, source, "SQL", args...)`.
    Scalar,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::As => "cached_query_as!",
            Kind::Scalar => "cached_query_scalar!",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Kind::As => "cached_query_as!(RowType, &db, \"SELECT ...\", args...)",
            Kind::Scalar => "cached_query_scalar!(ValueType, &db, \"SELECT ...\", args...)",
        }
    }
}

/// Parses the leading `name = value,` options shared by the macros: `dialect = postgres`
/// and `cacheable_functions = ["f", ...]`.
pub(crate) fn parse_options(input: ParseStream<'_>) -> syn::Result<Settings> {
    let mut settings = Settings::default();
    let mut dialect_seen = false;
    while input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        parse_setting(&name, input, &mut settings, &mut dialect_seen)?;
        input.parse::<Token![,]>()?;
    }
    Ok(settings)
}

/// Parses the value of the analyzer option `name` into `settings`.
pub(crate) fn parse_setting(
    name: &Ident,
    input: ParseStream<'_>,
    settings: &mut Settings,
    dialect_seen: &mut bool,
) -> syn::Result<()> {
    if name == "dialect" {
        let value: Ident = input.parse()?;
        let Some(dialect) = check::parse_dialect(&value.to_string()) else {
            return Err(syn::Error::new_spanned(
                &value,
                format!("unknown dialect `{value}`: expected `postgres`, `mysql` or `sqlite`"),
            ));
        };
        if *dialect_seen {
            return Err(syn::Error::new_spanned(name, "`dialect` given twice"));
        }
        *dialect_seen = true;
        settings.dialects = vec![dialect];
        Ok(())
    } else if name == "cacheable_functions" {
        for function in parse_str_list(input)? {
            settings.functions.insert(function.value().to_lowercase());
        }
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            name,
            format!("unknown option `{name}`: expected `dialect` or `cacheable_functions`"),
        ))
    }
}

/// Parses `["a", "b"]`.
pub(crate) fn parse_str_list(input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let content;
    syn::bracketed!(content in input);
    let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
    Ok(list.into_iter().collect())
}

/// A parsed invocation.
struct Invocation {
    settings: Settings,
    row: Type,
    source: Expr,
    sql: LitStr,
    args: Vec<Expr>,
}

fn parse_invocation(kind: Kind, input: ParseStream<'_>) -> syn::Result<Invocation> {
    let settings = parse_options(input)?;
    let row: Type = input.parse()?;
    input.parse::<Token![,]>()?;
    let source: Expr = input.parse()?;
    input.parse::<Token![,]>()?;
    let sql_expr: Expr = input.parse()?;
    let sql = match sql_expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => lit,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format!(
                    "{} takes its SQL as a string literal, checked at compile time; for SQL built at run time use `db.query_as(...)`",
                    kind.name()
                ),
            ));
        }
    };
    let mut args = Vec::new();
    while !input.is_empty() {
        input.parse::<Token![,]>()?;
        if input.is_empty() {
            break;
        }
        args.push(input.parse::<Expr>()?);
    }
    Ok(Invocation {
        settings,
        row,
        source,
        sql,
        args,
    })
}

/// Expands one invocation, or returns the compile error.
pub(crate) fn expand(kind: Kind, input: TokenStream) -> syn::Result<TokenStream> {
    let parser = |stream: ParseStream<'_>| parse_invocation(kind, stream);
    let invocation = syn::parse::Parser::parse2(parser, input)
        .map_err(|e| syn::Error::new(e.span(), format!("{e}\nusage: {}", kind.usage())))?;
    let Invocation {
        settings,
        row,
        source,
        sql,
        args,
    } = invocation;

    let sql_text = sql.value();
    let checked = check::check(&sql_text, &settings)
        .map_err(|e| syn::Error::new_spanned(&sql, e.message(Context::Query)))?;
    if !checked.placeholders.is_empty() && !checked.placeholders.contains(&args.len()) {
        let expected = checked.placeholders.iter().max().copied().unwrap_or(0);
        return Err(syn::Error::new_spanned(
            &sql,
            format!(
                "this SQL expects {expected} value{} but {} {} bound",
                if expected == 1 { "" } else { "s" },
                args.len(),
                if args.len() == 1 { "is" } else { "are" },
            ),
        ));
    }

    let hash = cachalot_core::sql::sql_hash(&sql_text);
    let tables = checked.tables.iter();
    let checked_sql = quote_spanned! {sql.span()=>
        const { ::cachalot::__private::checked_sql(#sql, #hash, &[#(#tables),*]) }
    };
    let receiver = receiver(&source);
    let call = match kind {
        Kind::As => quote!(#receiver.query_as::<#row>(#checked_sql)),
        Kind::Scalar => quote!(#receiver.query_scalar::<#row>(#checked_sql)),
    };
    let binds = args
        .iter()
        .map(|arg| quote_spanned! {arg.span()=> .bind(#arg) });
    Ok(quote!(#call #(#binds)*))
}

/// The source of the query as a method-call receiver: parenthesized unless it binds tighter
/// than a method call already.
fn receiver(source: &Expr) -> TokenStream {
    match source {
        Expr::Path(_)
        | Expr::Field(_)
        | Expr::MethodCall(_)
        | Expr::Call(_)
        | Expr::Index(_)
        | Expr::Paren(_)
        | Expr::Await(_)
        | Expr::Try(_) => quote!(#source),
        _ => quote!((#source)),
    }
}
