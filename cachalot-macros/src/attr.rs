//! `#[cached_query(...)]` on an `async fn`: parse the options, find the pool, the key and the
//! tables, and expand to the cached function and its `_uncached` companion.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Attribute, Expr, FnArg, Ident, ItemFn, LitStr, Pat, PatIdent, ReturnType, Stmt, Token, Type,
};

use crate::check::{self, Context, Settings};
use crate::infer::Finder;
use crate::query::{parse_setting, parse_str_list};

/// The options of `#[cached_query(...)]`.
#[derive(Default)]
struct Args {
    tables: Option<Vec<LitStr>>,
    ttl_ms: Option<u64>,
    key: Option<Expr>,
    pool: Option<Ident>,
    settings: Settings,
}

fn parse_args(input: ParseStream<'_>) -> syn::Result<Args> {
    let mut args = Args::default();
    let mut dialect_seen = false;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    while !input.is_empty() {
        let name: Ident = input.parse()?;
        let eq = input.parse::<Token![=]>()?;
        if !seen.insert(name.to_string()) && name != "cacheable_functions" {
            return Err(syn::Error::new_spanned(
                &name,
                format!("`{name}` given twice"),
            ));
        }
        if name == "tables" {
            let span = input.span();
            let tables = parse_str_list(input)?;
            if tables.is_empty() {
                return Err(syn::Error::new(
                    span,
                    "name at least one table the function reads: `tables = [\"users\"]`",
                ));
            }
            args.tables = Some(tables);
        } else if name == "ttl" {
            let lit: LitStr = input.parse()?;
            let ms = parse_ttl(&lit.value()).map_err(|e| syn::Error::new_spanned(&lit, e))?;
            args.ttl_ms = Some(ms);
        } else if name == "key" {
            args.key = Some(input.parse()?);
        } else if name == "pool" {
            args.pool = Some(input.parse()?);
        } else if name == "dialect" || name == "cacheable_functions" {
            parse_setting(&name, input, &mut args.settings, &mut dialect_seen)?;
        } else {
            return Err(syn::Error::new(
                name.span().join(eq.span).unwrap_or(name.span()),
                format!(
                    "unknown option `{name}`: expected `tables`, `ttl`, `key`, `pool`, `dialect` or `cacheable_functions`"
                ),
            ));
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(args)
}

/// Parses a TTL such as `"60s"`, `"500ms"`, `"5m"`, `"1h30m"` or `"1d"` into milliseconds.
pub(crate) fn parse_ttl(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid ttl {text:?}: expected numbers with units ms, s, m, h or d, such as \"60s\", \"500ms\" or \"1h30m\""
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("ttl {text:?} is too long"))?;
    }
    if total == 0 {
        return Err(format!(
            "ttl {text:?} is zero: an entry that expires at once is never served"
        ));
    }
    Ok(total)
}

/// Whether `ty` is a reference to a path whose last segment is `CachedPool`.
fn is_pool_type(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "CachedPool"),
            Type::Group(g) => is_pool_type(&Type::Reference(syn::TypeReference {
                elem: g.elem.clone(),
                ..r.clone()
            })),
            _ => false,
        },
        Type::Group(g) => is_pool_type(&g.elem),
        Type::Paren(p) => is_pool_type(&p.elem),
        _ => false,
    }
}

/// A parameter as the expansion sees it.
struct Param {
    /// The name the cached function gives it.
    ident: Ident,
    /// The statement that restores the user's pattern inside the body, if needed.
    rebind: Option<TokenStream>,
    /// Whether it is the pool.
    is_pool: bool,
}

/// Expands `#[cached_query(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let code_hash = {
        let mut text = args.to_string();
        text.push('\u{0}');
        text.push_str(&item.to_string());
        cachalot_core::sql::sql_hash(&text)
    };
    let args = parse_args.parse2(args)?;
    let item: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("#[cached_query] goes on an `async fn` with a body: {e}"),
        )
    })?;
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "#[cached_query] goes on an `async fn`",
        ));
    }
    let ret: &Type = match &sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new_spanned(
                &sig.ident,
                "a function that returns nothing has nothing to cache: #[cached_query] needs a return type",
            ));
        }
        ReturnType::Type(_, ty) => ty,
    };
    if let Type::ImplTrait(_) = ret {
        return Err(syn::Error::new_spanned(
            ret,
            "#[cached_query] cannot cache an `impl Trait`: name the type",
        ));
    }
    if let Some(receiver) = sig.receiver()
        && args.key.is_none()
    {
        return Err(syn::Error::new_spanned(
            receiver,
            "the value of a method may depend on `self`, which is not part of the key: give the key with `#[cached_query(key = ...)]`",
        ));
    }

    // The parameters: names for the cached function, the pool, the key.
    let mut params: Vec<Param> = Vec::new();
    let mut outer_inputs = sig.inputs.clone();
    let mut pool_found = false;
    let mut key_bindings: Vec<TokenStream> = Vec::new();
    for (i, input) in outer_inputs.iter_mut().enumerate() {
        let FnArg::Typed(typed) = input else {
            continue;
        };
        let named_pool = |ident: &Ident| args.pool.as_ref().is_some_and(|p| p == ident);
        let (ident, rebind, is_pool) = match &*typed.pat {
            Pat::Ident(PatIdent {
                by_ref: None,
                mutability,
                ident,
                subpat: None,
                ..
            }) => {
                let rebind = mutability.map(|m| quote!(let #m #ident = #ident;));
                let is_pool = match &args.pool {
                    Some(_) => named_pool(ident),
                    None => !pool_found && is_pool_type(&typed.ty),
                };
                (ident.clone(), rebind, is_pool)
            }
            pat => {
                let ident = Ident::new(&format!("__cachalot_arg{i}"), Span::mixed_site());
                let rebind = quote!(let #pat = #ident;);
                let is_pool = args.pool.is_none() && !pool_found && is_pool_type(&typed.ty);
                // For `key = ...`, the names the pattern binds, borrowed.
                let borrowed = by_ref(pat);
                key_bindings.push(quote! {
                    #[allow(unused_variables)]
                    let #borrowed = #ident;
                });
                (ident, Some(rebind), is_pool)
            }
        };
        pool_found |= is_pool;
        *typed.pat = Pat::Ident(PatIdent {
            attrs: Vec::new(),
            by_ref: None,
            mutability: None,
            ident: ident.clone(),
            subpat: None,
        });
        params.push(Param {
            ident,
            rebind,
            is_pool,
        });
    }
    let Some(pool) = params.iter().find(|p| p.is_pool) else {
        return Err(match &args.pool {
            Some(name) => syn::Error::new_spanned(
                name,
                format!(
                    "no parameter named `{name}`: `pool = ...` names the parameter that is the `&CachedPool`"
                ),
            ),
            None => syn::Error::new(
                sig.paren_token.span.join(),
                "#[cached_query] needs the pool it reads through: add a `&CachedPool<DB>` parameter, or name it with `pool = ...`",
            ),
        });
    };
    let pool_ident = &pool.ident;

    // The SQL whose tables the value depends on, analyzed again at run time.
    let sql: Vec<String> = match &args.tables {
        Some(tables) => tables
            .iter()
            .map(|table| table_sql(table, &args.settings))
            .collect::<syn::Result<_>>()?,
        None => infer_sql(&item, &args, pool_ident)?,
    };

    // The key: `key = ...` (a tuple gives several parameters) or every other parameter.
    if args.key.is_none() {
        key_bindings.clear();
    }
    let keys: Vec<TokenStream> = match &args.key {
        Some(Expr::Tuple(tuple)) => tuple.elems.iter().map(|e| quote!(#e)).collect(),
        Some(key) => vec![quote!(#key)],
        None => params
            .iter()
            .filter(|p| !p.is_pool)
            .map(|p| p.ident.to_token_stream())
            .collect(),
    };
    let call = Ident::new("__cachalot_call", Span::mixed_site());
    let mutability = (!keys.is_empty()).then(|| quote!(mut));
    let pushes = keys.iter().map(|k| {
        let span = k.span();
        quote_spanned!(span=> #call.param(&(#k));)
    });
    let ttl_ms = args.ttl_ms.unwrap_or(0);
    let rebinds = params.iter().filter_map(|p| p.rebind.as_ref());
    let stmts: &Vec<Stmt> = &item.block.stmts;

    let attrs = &item.attrs;
    let vis = &item.vis;
    let mut outer_sig = sig.clone();
    outer_sig.inputs = outer_inputs;

    let uncached_ident = format_ident!("{}_uncached", sig.ident);
    let mut uncached_sig = sig.clone();
    uncached_sig.ident = uncached_ident;
    let uncached_doc = format!(
        " [`{}`] without the cache: runs the body every time, and neither reads nor stores a cached value.",
        sig.ident
    );
    let uncached_attrs = attrs.iter().filter(|a| !is_doc(a));
    let block = &item.block;

    Ok(quote! {
        #(#attrs)*
        #vis #outer_sig {
            #[allow(unused_imports)]
            use ::cachalot::__private::{CachedResult as _, CachedValue as _};
            let #mutability #call = ::cachalot::__private::FnCall::new(
                #pool_ident,
                &|| {},
                #code_hash,
                &[#(#sql),*],
                #ttl_ms,
            );
            #(#key_bindings)*
            #(#pushes)*
            (&::cachalot::__private::Tag::<#ret>::new())
                .__cachalot_read(#call, move || async move {
                    #(#rebinds)*
                    #(#stmts)*
                })
                .await
        }

        #(#uncached_attrs)*
        #[doc = #uncached_doc]
        #[allow(dead_code)]
        #vis #uncached_sig #block
    })
}

/// `pat` with every binding made `ref` (and not `mut`): matching a value with it borrows the
/// parts the pattern names instead of moving them.
fn by_ref(pat: &Pat) -> Pat {
    let mut pat = pat.clone();
    make_ref(&mut pat);
    pat
}

fn make_ref(pat: &mut Pat) {
    match pat {
        Pat::Ident(p) => {
            p.by_ref = Some(Token![ref](p.ident.span()));
            p.mutability = None;
            if let Some((_, sub)) = &mut p.subpat {
                make_ref(sub);
            }
        }
        Pat::Tuple(p) => p.elems.iter_mut().for_each(make_ref),
        Pat::TupleStruct(p) => p.elems.iter_mut().for_each(make_ref),
        Pat::Slice(p) => p.elems.iter_mut().for_each(make_ref),
        Pat::Or(p) => p.cases.iter_mut().for_each(make_ref),
        Pat::Struct(p) => p.fields.iter_mut().for_each(|f| make_ref(&mut f.pat)),
        Pat::Paren(p) => make_ref(&mut p.pat),
        Pat::Reference(p) => make_ref(&mut p.pat),
        Pat::Type(p) => make_ref(&mut p.pat),
        _ => {}
    }
}

fn is_doc(attr: &Attribute) -> bool {
    attr.path().is_ident("doc")
}

/// The SQL that reads `table`, after checking that it names one table.
fn table_sql(table: &LitStr, settings: &Settings) -> syn::Result<String> {
    let name = table.value();
    let sql = format!("SELECT * FROM {name}");
    match check::check(&sql, settings) {
        Ok(checked) if checked.tables.len() == 1 => Ok(sql),
        Ok(_) => Err(syn::Error::new_spanned(
            table,
            format!("`{name}` is not one table name"),
        )),
        Err(e) => Err(syn::Error::new_spanned(
            table,
            format!(
                "`{name}` is not a table name that can be cached: {}",
                e.message(Context::Query)
            ),
        )),
    }
}

/// The SQL literals of the body, each checked to be a cacheable read.
fn infer_sql(item: &ItemFn, args: &Args, pool: &Ident) -> syn::Result<Vec<String>> {
    let mut finder = Finder::new(Some(pool));
    finder.visit_block(&item.block);
    let found = finder.finish();
    let mut errors = found.errors.into_iter();
    if let Some(mut error) = errors.next() {
        error.extend(errors);
        return Err(error);
    }
    if found.sql.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.sig.ident,
            "cannot infer the tables this function reads: no SQL string literal in its body; name them with `#[cached_query(tables = [...])]`",
        ));
    }
    let mut sql = Vec::new();
    let mut errors: Option<syn::Error> = None;
    for (lit, settings) in &found.sql {
        let text = lit.value();
        match check::check(&text, settings.as_ref().unwrap_or(&args.settings)) {
            Ok(_) => {
                if !sql.contains(&text) {
                    sql.push(text);
                }
            }
            Err(e) => {
                let error = syn::Error::new_spanned(lit, e.message(Context::Function));
                match &mut errors {
                    Some(errors) => errors.combine(error),
                    None => errors = Some(error),
                }
            }
        }
    }
    match errors {
        Some(errors) => Err(errors),
        None => Ok(sql),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(args: TokenStream, item: TokenStream) -> String {
        match expand(args, item) {
            Ok(tokens) => panic!("expanded: {tokens}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("60s"), Ok(60_000));
        assert_eq!(parse_ttl("500ms"), Ok(500));
        assert_eq!(parse_ttl("5m"), Ok(300_000));
        assert_eq!(parse_ttl("1h30m"), Ok(5_400_000));
        assert_eq!(parse_ttl(" 2d "), Ok(172_800_000));
        for bad in ["", "10", "s", "10 minutes", "1.5h", "-1s", "1h 30m"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert!(parse_ttl("0s").is_err_and(|e| e.contains("zero")));
        assert!(parse_ttl("99999999999999999999d").is_err());
        assert!(parse_ttl("9999999999999999d").is_err_and(|e| e.contains("too long")));
    }

    #[test]
    fn what_is_refused() {
        let pool = quote!(db: &CachedPool<Sqlite>);
        assert!(
            error(quote!(tables = ["t"]), quote!(fn f(#pool) -> i64 { 1 })).contains("async fn")
        );
        assert!(
            error(quote!(tables = ["t"]), quote!(async fn f(#pool) { }))
                .contains("nothing to cache")
        );
        assert!(
            error(
                quote!(tables = ["t"]),
                quote!(async fn f(#pool) -> impl Sized { 1 })
            )
            .contains("impl Trait")
        );
        assert!(
            error(quote!(tables = []), quote!(async fn f(#pool) -> i64 { 1 }))
                .contains("at least one table")
        );
        assert!(
            error(
                quote!(tables = ["users; DROP TABLE x"]),
                quote!(async fn f(#pool) -> i64 { 1 })
            )
            .contains("not a table name")
        );
        assert!(
            error(
                quote!(tables = ["t"], tables = ["u"]),
                quote!(async fn f(#pool) -> i64 { 1 })
            )
            .contains("twice")
        );
        assert!(
            error(
                quote!(dialect = oracle),
                quote!(async fn f(#pool) -> i64 { 1 })
            )
            .contains("unknown dialect")
        );
        assert!(
            error(
                quote!(),
                quote!(async fn f(#pool) -> i64 { sqlx::query_file!("q.sql").fetch_one(db).await })
            )
            .contains("query_file")
        );
    }

    #[test]
    fn inferred_sql_follows_the_macros_dialect() {
        let item = quote! {
            async fn f(db: &CachedPool<Postgres>) -> Result<i64, E> {
                cached_query_scalar!(dialect = postgres, i64, db, "SELECT count(*) FROM t WHERE d > now() - interval '1 day'")
                    .fetch_one().await
            }
        };
        // now() is volatile in PostgreSQL: refused whatever the dialect.
        assert!(error(quote!(), item).contains("now()"));
        let ok = quote! {
            async fn f(db: &CachedPool<Postgres>, id: i64) -> Result<String, E> {
                let a: String = cached_query_scalar!(dialect = postgres, String, db, "SELECT a::text FROM t WHERE id = $1", id).fetch_one().await?;
                let b: Vec<(i64,)> = sqlx::query_as("SELECT id FROM u").fetch_all(db).await?;
                Ok(format!("{a}{}", b.len()))
            }
        };
        let expanded = expand(quote!(), ok)
            .map(|t| t.to_string())
            .unwrap_or_else(|e| e.to_string());
        assert!(expanded.contains("\"SELECT id FROM u\""), "{expanded}");
        assert!(expanded.contains("fn f_uncached"), "{expanded}");
    }
}
