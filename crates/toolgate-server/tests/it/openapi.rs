//! The checked-in docs/openapi.json is the document the code generates
//! (`UPDATE_GOLDEN=1 cargo test -p toolgate-server --test it -- openapi::` rewrites it).

#[test]
fn checked_in_openapi_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = toolgate_server::openapi::document();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is stale: run `UPDATE_GOLDEN=1 cargo test -p toolgate-server --test it -- openapi::`"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/calls"]["post"].is_object());
    // Generators name a method per operation id (`sessions::show` beside
    // `approvals::show` broke the TypeScript types).
    let mut ids = std::collections::BTreeSet::new();
    for path in doc["paths"].as_object().unwrap().values() {
        for op in path.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operation id `{id}` twice");
        }
    }
}
