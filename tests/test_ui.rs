//! Compile errors of the macros: each `tests/ui/<mistake>.rs` must fail to
//! compile with the message in its `.stderr` file. Regenerate those with
//! `TRYBUILD=overwrite cargo test --test test_ui` and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
