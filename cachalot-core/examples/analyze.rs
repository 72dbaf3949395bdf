//! Prints the analysis of each argument (or of stdin lines): `cargo run -p cachalot-core --example analyze -- pg "SELECT 1"`.
use cachalot_core::sql::{Analyzer, Dialect};

fn main() {
    let mut args = std::env::args().skip(1);
    let dialect = match args.next().as_deref() {
        Some("mysql") => Dialect::MySql,
        Some("sqlite") => Dialect::Sqlite,
        _ => Dialect::Postgres,
    };
    let analyzer = Analyzer::new(dialect);
    for sql in args {
        let a = analyzer.analyze(&sql);
        println!(
            "{sql}\n  kind={:?} reads={:?} writes={:?} all={} cacheable={:?}",
            a.kind,
            a.reads.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            a.writes.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            a.writes_all,
            a.not_cacheable
        );
    }
}
