//! `docs/PROTOCOL.md` lists every error code the server can send, exactly: the table in
//! its section "Every error code" and `ErrorCode::ALL` name the same codes, and each row
//! says the same about retrying as `ErrorCode::is_transient`.

use wire::error::ErrorCode;

const DOC: &str = include_str!("../../docs/PROTOCOL.md");

/// The rows of the "Every error code" table: (code, retry?).
fn documented_codes() -> Vec<(String, bool)> {
    let section = DOC
        .split("## 11. Every error code")
        .nth(1)
        .expect("docs/PROTOCOL.md has the section \"11. Every error code\"");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .map(|row| {
            let (code, rest) = row.split_once('`').expect("a closed code span");
            let retry = rest.trim_start_matches(" |").trim_start();
            let transient = match retry.split('|').next().map(str::trim) {
                Some("yes") => true,
                Some("no") => false,
                other => panic!("the row of `{code}` says {other:?} under retry?"),
            };
            (code.to_owned(), transient)
        })
        .collect()
}

#[test]
fn the_error_code_table_is_the_enum() {
    let documented = documented_codes();
    for (code, transient) in &documented {
        let parsed = ErrorCode::parse(code);
        assert_ne!(
            parsed,
            ErrorCode::Unknown,
            "`{code}` is documented but unknown"
        );
        assert_eq!(
            parsed.is_transient(),
            *transient,
            "`{code}`: the table and is_transient() disagree"
        );
    }
    for code in ErrorCode::ALL {
        assert!(
            documented.iter().any(|(name, _)| name == code.as_str()),
            "`{code}` is missing from the table in docs/PROTOCOL.md"
        );
    }
    assert_eq!(
        documented.len(),
        ErrorCode::ALL.len(),
        "a code is listed twice"
    );
}
