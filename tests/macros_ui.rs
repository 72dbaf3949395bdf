//! Compile errors of the macros, each message checked (tests/ui/*.stderr; regenerate with
//! `TRYBUILD=overwrite cargo test -p cachalot --test macros_ui`, then review the diff).

#[test]
fn compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
