//! Bad input: whatever the SQL string, the analyzer returns an analysis; it never panics and
//! never overflows the stack. SQL that does not parse is neither cacheable nor read-only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cachalot_core::sql::{Analysis, Analyzer, Dialect, NotCacheable, StatementKind, sql_hash};
use proptest::prelude::*;

const DIALECTS: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

/// A normal thread stack: what a test thread or a tokio worker gets by default.
const STACK: usize = 2 << 20;

/// Runs `f` on a fresh thread with `stack` bytes of stack, so that the test does not depend on
/// `RUST_MIN_STACK`.
fn on_stack<T: Send + 'static>(stack: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// The properties every analysis has, whatever the input.
fn check_invariants(sql: &str, a: &Analysis) {
    let short: String = sql.chars().take(80).collect();
    if a.kind == StatementKind::Unparsed {
        assert!(
            matches!(a.not_cacheable, Some(NotCacheable::ParseError(_))),
            "{short:?}"
        );
        assert!(!a.is_cacheable(), "unparsed but cacheable: {short:?}");
        assert!(!a.is_read_only(), "unparsed but read-only: {short:?}");
    }
    if a.is_cacheable() {
        assert_eq!(a.kind, StatementKind::Query, "{short:?}");
        assert!(a.is_read_only(), "cacheable but writes: {short:?}");
    }
    if let Some(NotCacheable::ParseError(message)) = &a.not_cacheable {
        assert!(message.chars().count() <= 250, "long message for {short:?}");
    }
    assert!(a.reads.windows(2).all(|w| w[0] < w[1]), "{short:?}");
    assert!(a.writes.windows(2).all(|w| w[0] < w[1]), "{short:?}");
}

fn analyze_all(sql: &str) -> Vec<Analysis> {
    DIALECTS
        .iter()
        .map(|&d| {
            let a = Analyzer::new(d).analyze_uncached(sql);
            check_invariants(sql, &a);
            a
        })
        .collect()
}

#[test]
fn empty_and_trivial_input() {
    for sql in [
        "",
        " ",
        "\n\t  \r\n",
        ";",
        ";;;",
        " ; ; ",
        "-- only a comment",
        "/* only a comment */",
    ] {
        for a in analyze_all(sql) {
            assert_eq!(a.kind, StatementKind::Utility, "{sql:?}");
            assert!(!a.is_cacheable(), "{sql:?}");
            assert!(a.reads.is_empty() && a.writes.is_empty(), "{sql:?}");
        }
    }
}

#[test]
fn garbage_is_a_parse_error() {
    let garbage = [
        "garbage",
        "SELECT",
        "SELECT * FROM",
        "SELECT * FROM t WHERE",
        "FROM t SELECT *",
        "SELEC * FROM t",
        "))))",
        "((((",
        "SELECT (1",
        "SELECT 1)",
        "'",
        "\"",
        "`",
        "SELECT 'unterminated",
        "SELECT \"unterminated",
        "SELECT `unterminated",
        "SELECT $$unterminated",
        "SELECT 1 /* unterminated comment",
        "SELECT 1 /* /* nested */",
        "SELECT * FROM t WHERE a = 'it''s' AND b = '",
        "DELETE",
        "UPDATE SET",
        "INSERT INTO",
        "WITH a AS SELECT 1",
        "WITH RECURSIVE",
        "SELECT * FROM t FOR",
        "SELECT 1 UNION",
        "SELECT CASE WHEN",
        "SELECT ARRAY[[1]",
        "\u{0}",
        "SELECT \u{0} FROM t",
        "SELECT * FROM t\u{0}; DROP TABLE t",
        "\u{1}\u{2}\u{3}\u{7f}\u{1b}[31m",
        "SELECT * FROM \u{202e}t\u{202c}",
        "\u{feff}\u{fffe}\u{ffff}\u{10ffff}",
        "SELECT 😀 FROM 🐋",
        "SELECT * FROM t WHERE a = \u{200b}1",
        "SELECT\u{0}*\u{0}FROM\u{0}t",
        "\\",
        "?",
        "$1",
        "@",
        "#",
        "SELECT * FROM t WHERE a = ? ? ?",
        "SELECT ::",
        "SELECT a:::b FROM t",
        "}{][)(",
    ];
    for sql in garbage {
        for (d, a) in DIALECTS.iter().zip(analyze_all(sql)) {
            // Some of these are valid in some dialect (a BOM, a lone `?`...): only the
            // invariants must hold. Those that are clearly broken must be parse errors.
            if ["garbage", "SELECT * FROM", "DELETE", "'", "SELECT (1"].contains(&sql) {
                assert_eq!(a.kind, StatementKind::Unparsed, "{d:?} {sql:?}");
                let reason = a.not_cacheable.as_ref().unwrap().to_string();
                assert!(reason.starts_with("parse error: "), "{reason}");
            }
        }
    }
}

#[test]
fn control_characters_and_odd_unicode_in_literals_and_names() {
    for sql in [
        "SELECT * FROM t WHERE a = '\u{0}\u{1}\u{1f}\u{7f}'",
        "SELECT * FROM t WHERE a = 'line\nbreak\rcarriage\ttab'",
        "SELECT * FROM t WHERE a = '😀🐋\u{fffd}\u{10ffff}'",
        "SELECT * FROM \"weird\u{1}name\"",
        "SELECT * FROM t -- comment with \u{0} NUL\n WHERE a = 1",
        "SELECT * FROM t /* \u{202e} bidi */ WHERE a = 1",
    ] {
        analyze_all(sql);
    }
    let a = Analyzer::new(Dialect::Postgres).analyze("SELECT * FROM t WHERE a = '\u{0}😀'");
    assert!(a.is_cacheable());
    assert_eq!(a.read_names(), ["t"]);
}

#[test]
fn megabyte_statements_still_analyze() {
    on_stack(STACK, || {
        // A 1 MB IN list.
        let list: Vec<String> = (0..150_000).map(|i| i.to_string()).collect();
        let sql = format!("SELECT * FROM items WHERE id IN ({})", list.join(", "));
        assert!(sql.len() > 1_000_000);
        for a in analyze_all(&sql) {
            assert_eq!(a.kind, StatementKind::Query);
            assert_eq!(a.read_names(), ["items"]);
            assert!(a.is_cacheable());
        }
        // A 1 MB string literal.
        let sql = format!("SELECT * FROM items WHERE name = '{}'", "x".repeat(1 << 20));
        for a in analyze_all(&sql) {
            assert_eq!(a.read_names(), ["items"]);
            assert!(a.is_cacheable());
        }
        // A 1 MB multi-row INSERT.
        let rows: Vec<String> = (0..40_000).map(|i| format!("({i}, 'n{i}')")).collect();
        let sql = format!("INSERT INTO items (id, name) VALUES {}", rows.join(", "));
        assert!(sql.len() > 500_000);
        for a in analyze_all(&sql) {
            assert_eq!(a.kind, StatementKind::Insert);
            assert_eq!(a.write_names(), ["items"]);
        }
        // 100,000 statements in one string.
        let sql = "SELECT 1 FROM t;".repeat(100_000);
        for a in analyze_all(&sql) {
            assert_eq!(a.kind, StatementKind::Multiple);
            assert!(!a.is_read_only());
        }
        // A 1 MB unterminated string.
        for a in analyze_all(&format!("SELECT '{}", "x".repeat(1 << 20))) {
            assert_eq!(a.kind, StatementKind::Unparsed);
        }
        // 1 MB unterminated comments (SQLite accepts a comment running to the end).
        analyze_all(&format!("SELECT 1 /* {}", "x".repeat(1 << 20)));
        analyze_all(&format!("SELECT 1 {}", "/* ".repeat(300_000)));
    });
}

type Gen = fn(usize) -> String;

/// Deeply nested or long-chained constructs, by depth.
const DEEP: &[(&str, Gen)] = &[
    ("parentheses", |n| {
        format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n))
    }),
    ("derived tables", |n| {
        format!(
            "SELECT * FROM {}t{}",
            "(SELECT * FROM ".repeat(n),
            ") x".repeat(n)
        )
    }),
    ("scalar subqueries", |n| {
        format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n))
    }),
    ("IN subqueries", |n| {
        format!(
            "SELECT * FROM t WHERE a IN {}(1){}",
            "(SELECT a FROM t WHERE a IN ".repeat(n),
            ")".repeat(n)
        )
    }),
    ("EXISTS", |n| {
        format!("SELECT {}1{}", "EXISTS (SELECT ".repeat(n), ")".repeat(n))
    }),
    ("CTEs", |n| {
        format!(
            "{}SELECT 1{}",
            "WITH c AS (".repeat(n),
            ") SELECT * FROM c".repeat(n)
        )
    }),
    ("NOT", |n| {
        format!("SELECT * FROM t WHERE {}a", "NOT ".repeat(n))
    }),
    ("unary minus", |n| format!("SELECT {}1", "- ".repeat(n))),
    ("bitwise not", |n| format!("SELECT {}1", "~ ".repeat(n))),
    ("CASE", |n| {
        format!(
            "SELECT {}1{}",
            "CASE WHEN a THEN ".repeat(n),
            " END".repeat(n)
        )
    }),
    ("function calls", |n| {
        format!("SELECT {}1{}", "f(".repeat(n), ")".repeat(n))
    }),
    ("known function calls", |n| {
        format!("SELECT {}1{}", "abs(".repeat(n), ")".repeat(n))
    }),
    ("CAST", |n| {
        format!("SELECT {}1{}", "CAST(".repeat(n), " AS int)".repeat(n))
    }),
    ("ARRAY brackets", |n| {
        format!("SELECT ARRAY{}1{}", "[".repeat(n), "]".repeat(n))
    }),
    ("bare brackets", |n| {
        format!("SELECT {}1{}", "[".repeat(n), "]".repeat(n))
    }),
    ("braces", |n| {
        format!("SELECT {}1{}", "{".repeat(n), "}".repeat(n))
    }),
    ("ROW", |n| {
        format!("SELECT {}1{}", "ROW(".repeat(n), ")".repeat(n))
    }),
    ("nested joins", |n| {
        format!(
            "SELECT * FROM {}t{}",
            "(t JOIN ".repeat(n),
            " ON true)".repeat(n)
        )
    }),
    ("AND chain", |n| {
        format!("SELECT * FROM t WHERE a {}", "AND a ".repeat(n))
    }),
    ("OR of ANDs", |n| {
        format!(
            "SELECT * FROM t WHERE {}",
            vec!["(a = 1 AND b = 2)"; n].join(" OR ")
        )
    }),
    ("+ chain", |n| format!("SELECT 1 {}", "+ 1 ".repeat(n))),
    ("|| chain", |n| {
        format!("SELECT a {}FROM t", "|| 'x' ".repeat(n))
    }),
    (":: chain", |n| format!("SELECT 1{}", "::int".repeat(n))),
    ("-> chain", |n| {
        format!("SELECT a{} FROM t", "->'k'".repeat(n))
    }),
    ("subscript chain", |n| {
        format!("SELECT a{} FROM t", "[1]".repeat(n))
    }),
    ("IS NULL chain", |n| {
        format!("SELECT a {}FROM t", "IS NULL ".repeat(n))
    }),
    ("COLLATE chain", |n| {
        format!("SELECT a {}FROM t", "COLLATE \"C\" ".repeat(n))
    }),
    ("AT TIME ZONE chain", |n| {
        format!("SELECT a {}FROM t", "AT TIME ZONE 'UTC' ".repeat(n))
    }),
    ("UNION chain", |n| {
        format!("SELECT 1 {}", "UNION SELECT 1 ".repeat(n))
    }),
    ("EXPLAIN chain", |n| {
        format!("{}SELECT 1", "EXPLAIN ".repeat(n))
    }),
    ("INSERT of nested SELECT", |n| {
        format!(
            "INSERT INTO t {}SELECT 1{}",
            "SELECT * FROM (".repeat(n),
            ") x".repeat(n)
        )
    }),
];

#[test]
fn deep_nesting_is_a_parse_error_not_a_stack_overflow() {
    on_stack(STACK, || {
        for (name, generate) in DEEP {
            for depth in [10_000, 100_000] {
                let sql = generate(depth);
                for (d, a) in DIALECTS.iter().zip(analyze_all(&sql)) {
                    assert_eq!(a.kind, StatementKind::Unparsed, "{name} x{depth} ({d:?})");
                }
            }
        }
    });
}

#[test]
fn long_but_reasonable_chains_still_analyze_with_room_to_spare() {
    // Within half a normal stack, even in a debug build.
    on_stack(STACK / 2, || {
        let cases: &[(&str, String)] = &[
            (
                "200 ORed conditions",
                format!(
                    "SELECT * FROM t WHERE {}",
                    (0..200)
                        .map(|i| format!("(a = {i} AND b = 'x')"))
                        .collect::<Vec<_>>()
                        .join(" OR ")
                ),
            ),
            (
                "250 ANDs",
                format!("SELECT * FROM t WHERE a {}", "AND a ".repeat(250)),
            ),
            (
                "250 UNIONs",
                format!("SELECT a FROM t {}", "UNION SELECT a FROM t ".repeat(250)),
            ),
            (
                "250 casts",
                format!("SELECT a{} FROM t", "::text".repeat(250)),
            ),
            (
                "15 nested subqueries around 200 ANDs",
                format!(
                    "SELECT * FROM {}t WHERE a {}{}",
                    "(SELECT * FROM ".repeat(15),
                    "AND a ".repeat(200),
                    ") x".repeat(15)
                ),
            ),
            (
                "30 nested CASEs around 200 ANDs",
                format!(
                    "SELECT {}a {}{} FROM t",
                    "CASE WHEN a THEN ".repeat(30),
                    "AND a ".repeat(200),
                    " END".repeat(30)
                ),
            ),
        ];
        for (name, sql) in cases {
            for (d, a) in DIALECTS.iter().zip(analyze_all(sql)) {
                assert_eq!(
                    a.kind,
                    StatementKind::Query,
                    "{name} ({d:?}): {:?}",
                    a.not_cacheable
                );
                assert_eq!(a.read_names(), ["t"], "{name} ({d:?})");
            }
        }
    });
}

#[test]
fn the_deepest_statements_the_parser_accepts_fit_in_a_normal_stack() {
    // Nested joins and derived tables have the largest parser frames; at the parser's
    // recursion limit they still leave room for the caller on a 2 MiB thread.
    on_stack(STACK - (STACK / 4), || {
        for d in DIALECTS {
            let analyzer = Analyzer::new(d);
            let deepest_accepted = |generate: Gen| {
                (1..100)
                    .take_while(|&n| {
                        analyzer.analyze_uncached(&generate(n)).kind != StatementKind::Unparsed
                    })
                    .last()
                    .unwrap_or(0)
            };
            for (name, generate) in DEEP {
                let depth = deepest_accepted(*generate);
                let a = analyzer.analyze_uncached(&generate(depth));
                check_invariants(name, &a);
            }
            let sql = format!("SELECT {}a{} FROM t", "(".repeat(30), ")".repeat(30));
            assert!(analyzer.analyze(&sql).is_cacheable(), "{d:?}");
            let sql = format!(
                "SELECT * FROM {}t{}",
                "(SELECT * FROM ".repeat(15),
                ") x".repeat(15)
            );
            assert_eq!(analyzer.analyze(&sql).read_names(), ["t"], "{d:?}");
        }
    });
}

#[test]
fn memo_returns_the_same_analysis() {
    for d in DIALECTS {
        let analyzer = Analyzer::new(d);
        let sql = "SELECT * FROM users WHERE id = 1";
        let first = analyzer.analyze(sql);
        let again = analyzer.analyze(sql);
        assert!(Arc::ptr_eq(&first, &again), "{d:?}");
        let hashed = analyzer.analyze_hashed(sql_hash(sql), sql);
        assert!(Arc::ptr_eq(&first, &hashed), "{d:?}");
        assert_eq!(*first, analyzer.analyze_uncached(sql));

        // Different strings, different analyses.
        let other = analyzer.analyze("SELECT * FROM orders WHERE id = 1");
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(first.read_names(), ["users"]);
        assert_eq!(other.read_names(), ["orders"]);
        // Strings that differ only in case or spacing are distinct memo entries.
        let spaced = analyzer.analyze("SELECT * FROM users WHERE id = 1 ");
        assert!(!Arc::ptr_eq(&first, &spaced));
        assert_eq!(*first, *spaced);
    }
}

#[test]
fn memo_compares_the_text_not_only_the_hash() {
    let analyzer = Analyzer::new(Dialect::Postgres);
    // Two strings under the same (forged) hash: the second must not get the first's analysis.
    let read = analyzer.analyze_hashed(42, "SELECT * FROM users");
    let write = analyzer.analyze_hashed(42, "DELETE FROM users");
    assert!(read.is_cacheable());
    assert!(!write.is_cacheable());
    assert_eq!(write.write_names(), ["users"]);
    let read_again = analyzer.analyze_hashed(42, "SELECT * FROM users");
    assert!(read_again.is_cacheable());
}

#[test]
fn memo_stays_correct_past_its_capacity() {
    let analyzer = Analyzer::new(Dialect::Sqlite);
    let first = analyzer.analyze("SELECT * FROM t0");
    for i in 0..40_000 {
        let sql = format!("SELECT * FROM t{i}");
        assert_eq!(analyzer.analyze(&sql).read_names(), [format!("t{i}")]);
    }
    assert_eq!(analyzer.analyze("SELECT * FROM t0").read_names(), ["t0"]);
    assert_eq!(*first, *analyzer.analyze("SELECT * FROM t0"));
}

#[test]
fn memo_is_shared_between_threads() {
    let analyzer = Arc::new(Analyzer::new(Dialect::MySql));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let analyzer = analyzer.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let sql = format!("SELECT * FROM t{} WHERE id = ?", i % 50);
                    let a = analyzer.analyze(&sql);
                    assert_eq!(a.read_names(), [format!("t{}", i % 50)], "thread {t}");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

/// Valid statements that the mutations start from.
const SEEDS: &[&str] = &[
    "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u WHERE u.name ILIKE $1",
    "WITH RECURSIVE tree AS (SELECT id FROM cats WHERE id = ? UNION ALL SELECT c.id FROM cats c JOIN tree ON c.parent = tree.id) SELECT * FROM tree",
    "INSERT INTO counters (k, n) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET n = counters.n + 1 RETURNING n",
    "UPDATE orders o JOIN users u ON u.id = o.user_id SET o.region = u.region WHERE u.id = ?",
    "DELETE FROM sessions USING users WHERE sessions.user_id = users.id AND users.banned",
    "SELECT date(created_at), json_extract(data, '$.a') FROM events WHERE id IN (SELECT value FROM json_each(?))",
    "WITH moved AS (DELETE FROM inbox WHERE id = $1 RETURNING *) SELECT * FROM moved",
    "SELECT CASE WHEN a > 0 THEN 'p' ELSE 'n' END, COALESCE(b, 0)::numeric FROM t ORDER BY 1 LIMIT 10 OFFSET 5",
    "MERGE INTO stock s USING deliveries d ON s.id = d.id WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty",
    "BEGIN; UPDATE a SET x = 1; COMMIT",
];

/// Edits applied to a seed.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let fragment = prop_oneof![
        Just("(".to_string()),
        Just(")".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("`".to_string()),
        Just("$$".to_string()),
        Just("/*".to_string()),
        Just("--".to_string()),
        Just(";".to_string()),
        Just(" SELECT ".to_string()),
        Just(" FROM ".to_string()),
        Just(" WITH x AS (SELECT 1) ".to_string()),
        Just(" UNION ".to_string()),
        Just(" DELETE FROM t ".to_string()),
        Just(" FOR UPDATE ".to_string()),
        Just(" now() ".to_string()),
        Just("\u{0}".to_string()),
        Just("[".to_string()),
        Just("::".to_string()),
        "\\PC{0,8}",
        ".{0,4}",
    ];
    prop_oneof![
        (any::<usize>(), 0usize..20).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), fragment).prop_map(|(at, text)| Edit::Insert(at, text)),
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Edit::Duplicate(at, len)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// The char boundary at or before `at % (len + 1)`.
fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut s = seed.to_string();
    for edit in edits {
        match edit {
            Edit::Delete(at, len) => {
                let start = boundary(&s, *at);
                let end = boundary(&s, (start + len).min(s.len()));
                s.replace_range(start..end.max(start), "");
            }
            Edit::Insert(at, text) => {
                let at = boundary(&s, *at);
                s.insert_str(at, text);
            }
            Edit::Duplicate(at, len) => {
                let start = boundary(&s, *at);
                let end = boundary(&s, (start + len).min(s.len())).max(start);
                let copy = s[start..end].to_string();
                s.insert_str(end, &copy);
            }
            Edit::Truncate(at) => {
                let at = boundary(&s, *at);
                s.truncate(at);
            }
        }
    }
    s
}

fn check_random(sql: &str) {
    for d in DIALECTS {
        let analyzer = Analyzer::new(d);
        let a = analyzer.analyze(sql);
        check_invariants(sql, &a);
        assert_eq!(
            *a,
            analyzer.analyze_uncached(sql),
            "not deterministic: {sql:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(sql in "\\PC{0,200}") {
        check_random(&sql);
    }

    #[test]
    fn random_bytes_as_text_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check_random(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn sql_alphabet_soup_never_panics(sql in "[-a-zA-Z0-9_ ,.;:()\\[\\]{}'\"`$?@#*/+<>=!|&~^%\n]{0,200}") {
        check_random(&sql);
    }

    #[test]
    fn mutated_sql_never_panics(
        seed in proptest::sample::select(SEEDS),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        check_random(&apply(seed, &edits));
    }
}
