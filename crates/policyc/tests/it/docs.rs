//! `docs/formats.md` lists every audit record kind and field of
//! `crates/toolgate-runtime/src/record.rs` (the `Record` enum is the single source).

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::Path;

fn read(rel: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(rel)).expect("readable")
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[test]
fn every_record_kind_and_field_is_documented() {
    let src = read("crates/toolgate-runtime/src/record.rs");
    let docs = read("docs/formats.md");
    let body = src
        .split_once("pub enum Record {")
        .and_then(|(_, rest)| rest.split_once("\n}"))
        .expect("the Record enum")
        .0;
    let kinds: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.is_empty())
        .filter_map(|l| l.split('(').next())
        .map(snake)
        .collect();
    assert!(kinds.len() >= 20, "{kinds:?}");
    let mut missing: Vec<String> = kinds
        .iter()
        .filter(|k| !docs.contains(&format!("| `{k}` |")))
        .map(|k| format!("kind `{k}`"))
        .collect();
    // Every field of every record struct (a flattened `key` is the call key: `tenant`, `call`).
    for line in src.lines().map(str::trim) {
        if let Some(field) = line
            .strip_prefix("pub ")
            .and_then(|l| l.split_once(':'))
            .map(|(f, _)| f)
        {
            if field.contains(' ') || field == "key" || field == "scope" {
                continue;
            }
            if !docs.contains(&format!("`{field}`")) {
                missing.push(format!("field `{field}`"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/formats.md lacks: {missing:?}");
}
