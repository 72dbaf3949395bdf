//! A cheap bound on how deep the syntax tree of a token stream can be, computed before parsing.
//!
//! sqlparser's recursion limit stops nested parentheses, subqueries and prefix operators, but a
//! flat chain of binary operators (`a AND b AND c ...`, `1 + 1 + 1 ...`, `x::int::int ...`,
//! `SELECT 1 UNION SELECT 1 ...`) is parsed in a loop into a left-deep tree whose depth is the
//! length of the chain. Walking or even dropping such a tree recurses once per level, so a long
//! enough chain overflows the stack after a successful parse. This scan rejects such input
//! before it is parsed.
//!
//! The bound: within one bracket level, an operator can only nest under operators that bind as
//! loosely or more loosely, up to the next operator that binds more loosely (or a comma or a
//! semicolon). Summing, over the precedence classes, the longest such run, plus the deepest
//! nested bracket level, bounds the depth of the tree. The classes must never order two
//! operators the other way round than the parser does, so only the separations that sqlparser
//! makes in every dialect are kept: set operations, then `OR`, then `AND` (and MySQL's `&&`),
//! then every other operator lumped together, which only over-estimates.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

/// Precedence classes, lowest first: set operations, `OR`, `AND`, everything else.
const CLASSES: usize = 4;

/// The class of a token that is (or may be) an operator, `None` for operands and punctuation.
/// `ampersands_are_and`: whether `&&` binds like `AND` (MySQL) rather than tighter.
fn class(token: &Token, ampersands_are_and: bool) -> Option<usize> {
    match token {
        Token::Word(word) => match word.keyword {
            Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::MINUS => Some(0),
            Keyword::OR => Some(1),
            Keyword::AND => Some(2),
            Keyword::XOR
            | Keyword::NOT
            | Keyword::IS
            | Keyword::LIKE
            | Keyword::ILIKE
            | Keyword::SIMILAR
            | Keyword::REGEXP
            | Keyword::RLIKE
            | Keyword::GLOB
            | Keyword::MATCH
            | Keyword::IN
            | Keyword::BETWEEN
            | Keyword::OVERLAPS
            | Keyword::COLLATE
            | Keyword::AT
            | Keyword::DIV
            | Keyword::MOD => Some(CLASSES - 1),
            _ => None,
        },
        Token::Overlap if ampersands_are_and => Some(2),
        Token::EOF
        | Token::Number(..)
        | Token::Char(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::Placeholder(_)
        | Token::Whitespace(_)
        | Token::Period
        | Token::Comma
        | Token::SemiColon
        | Token::LParen
        | Token::RParen
        | Token::LBracket
        | Token::RBracket
        | Token::LBrace
        | Token::RBrace => None,
        // Any other symbol is an operator of some kind.
        _ => Some(CLASSES - 1),
    }
}

/// The operator runs of one bracket level.
#[derive(Default)]
struct Level {
    run: [usize; CLASSES],
    longest: [usize; CLASSES],
    deepest_child: usize,
}

impl Level {
    fn operator(&mut self, class: usize) {
        self.run[class] += 1;
        self.longest[class] = self.longest[class].max(self.run[class]);
        // A lower-precedence operator ends the runs of every higher class.
        for run in &mut self.run[class + 1..] {
            *run = 0;
        }
    }

    fn separator(&mut self) {
        self.run = [0; CLASSES];
    }

    fn depth(&self) -> usize {
        self.longest.iter().sum::<usize>() + self.deepest_child + 1
    }
}

/// Whether the syntax tree of `tokens` may be deeper than `limit`. Runs in one pass over the
/// tokens and in memory bounded by `limit`. `ampersands_are_and`: whether `&&` binds like `AND`
/// (MySQL) rather than like the other operators.
pub(crate) fn too_deep(tokens: &[TokenWithSpan], limit: usize, ampersands_are_and: bool) -> bool {
    let mut levels: Vec<Level> = vec![Level::default()];
    for token in tokens {
        match &token.token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                // `a[1][2]...` and `m{k}{k}...` chain like postfix operators as well.
                if token.token != Token::LParen
                    && let Some(level) = levels.last_mut()
                {
                    level.operator(CLASSES - 1);
                }
                if levels.len() >= limit {
                    return true;
                }
                levels.push(Level::default());
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                // An unbalanced closing bracket is the parser's error to report.
                if levels.len() > 1
                    && let Some(closed) = levels.pop()
                    && let Some(parent) = levels.last_mut()
                {
                    parent.deepest_child = parent.deepest_child.max(closed.depth());
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(level) = levels.last_mut() {
                    level.separator();
                }
            }
            other => {
                if let Some(class) = class(other, ampersands_are_and)
                    && let Some(level) = levels.last_mut()
                {
                    level.operator(class);
                }
            }
        }
        // Stop early on a long flat chain; nesting is checked when levels close.
        if levels.last().is_some_and(|level| level.depth() > limit) {
            return true;
        }
    }
    // Close the brackets left open; the outermost level then bounds the whole tree.
    while let Some(closed) = levels.pop() {
        match levels.last_mut() {
            Some(parent) => parent.deepest_child = parent.deepest_child.max(closed.depth()),
            None => return closed.depth() > limit,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use sqlparser::ast::{Expr, Visit, Visitor};
    use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
    use sqlparser::parser::Parser;
    use sqlparser::tokenizer::Tokenizer;

    use super::too_deep;

    /// The deepest nesting of expressions in a parsed statement.
    #[derive(Default)]
    struct Depth {
        current: usize,
        max: usize,
    }

    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.current += 1;
            self.max = self.max.max(self.current);
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.current -= 1;
            ControlFlow::Continue(())
        }
    }

    const OPERATORS: &[&str] = &[
        " AND ", " OR ", " XOR ", " = ", " < ", " <> ", " + ", " - ", " * ", " / ", " % ", " || ",
        " && ", " & ", " | ", " ^ ", " -> ", " ->> ", " @> ", " LIKE ", " IS ", " IN ", " DIV ",
        " :: ", " # ", " << ",
    ];
    const OPERANDS: &[&str] = &[
        "a", "1", "'x'", "NULL", "NOT a", "-1", "(a)", "a[1]", "(1 + a)",
    ];

    /// A small deterministic generator, so that the test needs no dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    fn expression(rng: &mut Lcg, depth: usize) -> String {
        let mut s = String::new();
        for i in 0..=rng.next(12) {
            if i > 0 {
                s.push_str(OPERATORS[rng.next(OPERATORS.len())]);
                if s.ends_with(":: ") {
                    s.push_str("int");
                    continue;
                }
            }
            if depth > 0 && rng.next(4) == 0 {
                s.push('(');
                s.push_str(&expression(rng, depth - 1));
                s.push(')');
            } else {
                s.push_str(OPERANDS[rng.next(OPERANDS.len())]);
            }
        }
        s
    }

    #[test]
    fn the_bound_is_never_below_the_parsed_depth() {
        let dialects: [(&dyn Dialect, bool); 3] = [
            (&PostgreSqlDialect {}, false),
            (&MySqlDialect {}, true),
            (&SQLiteDialect {}, false),
        ];
        let mut rng = Lcg(7);
        let mut parsed = 0;
        for _ in 0..6_000 {
            let sql = format!("SELECT {} FROM t", expression(&mut rng, 3));
            for (dialect, ampersands_are_and) in dialects {
                let Ok(statements) = Parser::parse_sql(dialect, &sql) else {
                    continue;
                };
                parsed += 1;
                let mut depth = Depth::default();
                let _ = statements.visit(&mut depth);
                let tokens = Tokenizer::new(dialect, &sql)
                    .tokenize_with_location()
                    .unwrap_or_default();
                assert!(
                    too_deep(&tokens, depth.max - 1, ampersands_are_and),
                    "expressions nest {} deep in {sql}, the bound says less",
                    depth.max
                );
            }
        }
        assert!(parsed > 3_000, "only {parsed} statements parsed");
    }
}
