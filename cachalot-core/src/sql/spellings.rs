//! Spellings sqlparser does not parse, told to it in words it does, before parsing.
//!
//! Only the analysis sees the new tokens: the database still receives the statement as
//! written. Each one means the same to the analysis as what it replaces: a locking clause stays
//! a locking clause (the read is not cached and writes nothing), and `TABLE name` is
//! `SELECT * FROM name`. Left unparseable, such a statement would be safe but would invalidate
//! the whole database each time it runs: a job queue's `SELECT ... FOR NO KEY UPDATE SKIP
//! LOCKED`, polled every few milliseconds, would leave nothing cached.
//!
//! - PostgreSQL's `FOR NO KEY UPDATE` and `FOR KEY SHARE`: `FOR UPDATE`, `FOR SHARE`.
//! - MySQL's `LOCK IN SHARE MODE`: `FOR SHARE`.
//! - MariaDB's `WAIT n` after a locking clause: `NOWAIT`.
//! - `TABLE name` as a statement (PostgreSQL, MySQL 8): `SELECT * FROM name`.
//! - MySQL's `DELETE QUICK / LOW_PRIORITY / IGNORE` and `UPDATE LOW_PRIORITY / IGNORE`: the
//!   same without the modifiers. These parse, wrongly: sqlparser takes the modifier for the
//!   table written (`DELETE IGNORE FROM items` would write a table `ignore`), which would
//!   leave `items`' entries cached after the write. MySQL reserves `IGNORE` and
//!   `LOW_PRIORITY`, and reads `QUICK` after `DELETE` as the modifier; in other dialects they
//!   may be table names, so the rule is MySQL's alone.
//!
//! Only unquoted words match: `"key"` is a name, never a keyword.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::Dialect;

/// What becomes of one token.
enum Edit {
    Keep,
    Drop,
    /// These tokens instead, at its place.
    Replace(&'static [&'static str]),
}

/// `tokens`, in `dialect`, with the spellings above replaced; the same tokens when none occurs.
pub(super) fn respell(tokens: Vec<TokenWithSpan>, dialect: Dialect) -> Vec<TokenWithSpan> {
    // The tokens the parser reads: whitespace and comments apart.
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let word = |n: usize| match significant.get(n).map(|&i| &tokens[i].token) {
        Some(Token::Word(word)) if word.quote_style.is_none() => Some(word),
        _ => None,
    };
    let keyword = |n: usize| word(n).map(|w| w.keyword);
    let is_number = |n: usize| {
        matches!(
            significant.get(n).map(|&i| &tokens[i].token),
            Some(Token::Number(..))
        )
    };

    let mut edits: Vec<(usize, Edit)> = Vec::new();
    if keyword(0) == Some(Keyword::TABLE) && word(1).is_some() {
        edits.push((0, Edit::Replace(&["SELECT", "*", "FROM"])));
    }
    let mut n = 0;
    while n < significant.len() {
        use Keyword::{FOR, IN, KEY, LOCK, MODE, NO, SHARE, UPDATE};
        let step = match (keyword(n), keyword(n + 1), keyword(n + 2), keyword(n + 3)) {
            (Some(FOR), Some(NO), Some(KEY), Some(UPDATE)) => {
                edits.extend([(n + 1, Edit::Drop), (n + 2, Edit::Drop)]);
                3
            }
            (Some(FOR), Some(KEY), Some(SHARE), _) => {
                edits.push((n + 1, Edit::Drop));
                2
            }
            (Some(LOCK), Some(IN), Some(SHARE), Some(MODE)) => {
                edits.extend([
                    (n, Edit::Replace(&["FOR"])),
                    (n + 1, Edit::Drop),
                    (n + 3, Edit::Drop),
                ]);
                3
            }
            (Some(UPDATE | SHARE | MODE), _, _, _)
                if word(n + 1).is_some_and(|w| w.value.eq_ignore_ascii_case("wait"))
                    && is_number(n + 2)
                    && locking(keyword(n), keyword(n.wrapping_sub(1))) =>
            {
                edits.extend([(n + 1, Edit::Replace(&["NOWAIT"])), (n + 2, Edit::Drop)]);
                3
            }
            (Some(verb @ (Keyword::DELETE | Keyword::UPDATE)), _, _, _)
                if dialect == Dialect::MySql
                    && !matches!(
                        keyword(n.wrapping_sub(1)),
                        Some(Keyword::FOR | Keyword::ON | Keyword::KEY)
                    ) =>
            {
                let mut m = n + 1;
                while word(m).is_some_and(|w| modifier(verb, w)) {
                    edits.push((m, Edit::Drop));
                    m += 1;
                }
                m - n
            }
            _ => 1,
        };
        // Onto the clause's last word, where `WAIT n` may follow.
        n += step;
    }
    if edits.is_empty() {
        return tokens;
    }

    let mut by_token: Vec<Edit> = (0..tokens.len()).map(|_| Edit::Keep).collect();
    for (n, edit) in edits {
        by_token[significant[n]] = edit;
    }
    let mut out = Vec::with_capacity(tokens.len() + 2);
    for (token, edit) in tokens.into_iter().zip(by_token) {
        match edit {
            Edit::Keep => out.push(token),
            Edit::Drop => {}
            Edit::Replace(words) => out.extend(words.iter().map(|&w| TokenWithSpan {
                token: match w {
                    "*" => Token::Mul,
                    w => Token::make_keyword(w),
                },
                span: token.span,
            })),
        }
    }
    out
}

/// Whether `word` is one of MySQL's modifiers of `verb` (`DELETE` or `UPDATE`).
fn modifier(verb: Keyword, word: &sqlparser::tokenizer::Word) -> bool {
    match word.keyword {
        Keyword::LOW_PRIORITY | Keyword::IGNORE => true,
        _ => verb == Keyword::DELETE && word.value.eq_ignore_ascii_case("quick"),
    }
}

/// Whether `word`, after `before`, ends a locking clause: `FOR UPDATE`, `FOR SHARE` or
/// `... SHARE MODE` (which `LOCK IN` starts).
fn locking(word: Option<Keyword>, before: Option<Keyword>) -> bool {
    matches!(
        (before, word),
        (Some(Keyword::FOR), Some(Keyword::UPDATE | Keyword::SHARE))
            | (Some(Keyword::SHARE), Some(Keyword::MODE))
    )
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn respelled(sql: &str) -> String {
        respelled_in(sql, Dialect::Postgres)
    }

    fn respelled_in(sql: &str, dialect: Dialect) -> String {
        words(respell(tokens(sql), dialect))
    }

    /// What the parser would read of `sql` without respelling.
    fn as_written(sql: &str) -> String {
        words(tokens(sql))
    }

    fn tokens(sql: &str) -> Vec<TokenWithSpan> {
        Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap_or_default()
    }

    fn words(tokens: Vec<TokenWithSpan>) -> String {
        let words: Vec<String> = tokens
            .into_iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .map(|t| t.token.to_string())
            .collect();
        words.join(" ")
    }

    #[test]
    fn locking_clauses_become_ones_sqlparser_knows() {
        let cases = [
            (
                "SELECT a FROM t FOR NO KEY UPDATE",
                "SELECT a FROM t FOR UPDATE",
            ),
            (
                "SELECT a FROM t for no key update skip locked",
                "SELECT a FROM t for update skip locked",
            ),
            (
                "SELECT a FROM t FOR KEY SHARE OF t",
                "SELECT a FROM t FOR SHARE OF t",
            ),
            (
                "SELECT a FROM t LOCK IN SHARE MODE",
                "SELECT a FROM t FOR SHARE",
            ),
            (
                "SELECT a FROM t FOR UPDATE WAIT 5",
                "SELECT a FROM t FOR UPDATE NOWAIT",
            ),
            (
                "SELECT a FROM t LOCK IN SHARE MODE WAIT 1",
                "SELECT a FROM t FOR SHARE NOWAIT",
            ),
            ("TABLE jobs", "SELECT * FROM jobs"),
            (
                "/* head */ TABLE s.jobs ORDER BY id",
                "SELECT * FROM s . jobs ORDER BY id",
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(respelled(sql), expected, "{sql}");
        }
    }

    #[test]
    fn mysql_modifiers_of_delete_and_update_go() {
        let cases = [
            ("DELETE QUICK FROM items", "DELETE FROM items"),
            (
                "DELETE low_priority quick IGNORE FROM items WHERE id = 1",
                "DELETE FROM items WHERE id = 1",
            ),
            ("UPDATE IGNORE items SET n = 1", "UPDATE items SET n = 1"),
            (
                "UPDATE LOW_PRIORITY IGNORE items SET n = 1",
                "UPDATE items SET n = 1",
            ),
            (
                "WITH x AS (SELECT 1) DELETE IGNORE FROM items",
                "WITH x AS ( SELECT 1 ) DELETE FROM items",
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(respelled_in(sql, Dialect::MySql), expected, "{sql}");
        }
        // Names elsewhere: PostgreSQL and SQLite reserve neither word.
        for sql in ["UPDATE ignore SET n = 1", "DELETE FROM quick"] {
            assert_eq!(respelled_in(sql, Dialect::Postgres), sql);
            assert_eq!(respelled_in(sql, Dialect::Sqlite), sql);
        }
        // Not a DELETE or an UPDATE statement, and quoted names.
        for sql in [
            "UPDATE `ignore` SET n = 1",
            "SELECT a FROM t FOR UPDATE SKIP LOCKED",
            "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE quick = 1",
            "UPDATE t SET quick = 1",
        ] {
            assert_eq!(respelled_in(sql, Dialect::MySql), as_written(sql), "{sql}");
        }
    }

    #[test]
    fn names_and_other_words_stay() {
        for sql in [
            r#"SELECT "for", "no", "key", "update" FROM t"#,
            r#"SELECT a FROM t FOR "no" KEY UPDATE"#,
            "SELECT a FROM t WHERE wait = 5",
            "SELECT a FROM t ORDER BY mode WAIT 5",
            "LOCK TABLE t IN SHARE MODE",
            "SELECT * FROM x WHERE y IN (TABLE z)",
            "TABLE",
        ] {
            assert_eq!(respelled(sql), as_written(sql), "{sql}");
        }
    }
}
