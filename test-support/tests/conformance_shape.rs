//! Every store conformance suite has the one shape of `test_support::conformance!`: its
//! cases are `pub async fn`s taking the store under test, and each is listed in a
//! `conformance!` invocation of its crate's tests, so that a new case cannot be left out
//! and no suite runs its cases from a hand-written runner.

use std::path::Path;

/// The cases of a suite: `pub async fn name(store: &…)` with that one parameter.
fn cases(suite: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = suite;
    while let Some(at) = rest.find("pub async fn ") {
        rest = &rest[at + "pub async fn ".len()..];
        let Some((name, after)) = rest.split_once('(') else {
            break;
        };
        let params = after.split_once(')').map_or("", |(p, _)| p);
        let one = params.trim().trim_end_matches(',');
        let single = !one.contains(',') && one.contains(": &");
        if single {
            found.push(name.trim().to_owned());
        }
    }
    found
}

/// The case names listed in the `tests: [...]` of every `conformance!` in `tests`.
fn listed(tests: &str) -> Vec<String> {
    tests
        .split("conformance! {")
        .skip(1)
        .filter_map(|invocation| invocation.split_once("tests: [")?.1.split_once(']'))
        .flat_map(|(list, _)| list.split(',').map(|name| name.trim().to_owned()))
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn every_case_of_every_suite_is_a_test_of_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut suites = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let krate = entry.unwrap().path();
        let suite = krate.join("src/store/conformance.rs");
        if !suite.is_file() {
            continue;
        }
        suites += 1;
        let text = std::fs::read_to_string(&suite).unwrap();
        assert!(
            !text.contains("pub async fn run_all"),
            "{}: cases run from a hand-written runner",
            suite.display()
        );
        let mut tests = String::new();
        for file in std::fs::read_dir(krate.join("tests")).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "rs") {
                tests.push_str(&std::fs::read_to_string(file).unwrap());
            }
        }
        let listed = listed(&tests);
        let cases = cases(&text);
        assert!(!cases.is_empty(), "{}: no cases found", suite.display());
        for case in cases {
            assert!(
                listed.contains(&case),
                "{}: the case `{case}` is in no conformance! invocation of its tests",
                suite.display()
            );
        }
    }
    assert_eq!(suites, 4, "auth, message, matching and ws-manager suites");
}

#[test]
fn cases_and_lists_are_read_as_written() {
    let suite = "pub async fn a_case(store: &dyn S) {}\n\
                 pub async fn helper(store: &dyn S, n: usize) {}\n\
                 pub async fn other(\n    store: &Arc<dyn S>,\n) {}";
    assert_eq!(cases(suite), ["a_case", "other"]);
    let tests =
        "test_support::conformance! { cases: c, backends: { m => m() }, tests: [a_case, other,], }";
    assert_eq!(listed(tests), ["a_case", "other"]);
}
