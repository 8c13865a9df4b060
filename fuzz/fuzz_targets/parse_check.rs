//! Fuzz target for the front end: arbitrary bytes -> decode -> parse -> check.
//!
//! Invariants, beyond "never panics": the parser never reports an internal
//! error; a file that parses is printed by `fmt` into text that parses to the
//! same items with the same number of comments, and printing that again
//! changes nothing; checking never panics and returns an IR only without errors.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = toolgate_syntax::decode(data) else { return };
    let parsed = toolgate_syntax::parse(src);
    for e in &parsed.errors {
        assert!(!matches!(e, toolgate_syntax::SyntaxError::Internal { .. }), "internal error: {e:?}");
    }
    if !parsed.errors.is_empty() {
        return;
    }
    let printed = toolgate_syntax::print(&parsed.file, src);
    let again = toolgate_syntax::parse(&printed);
    assert!(again.errors.is_empty(), "fmt output does not parse: {:?}\n{printed}", again.errors);
    assert_eq!(again.file.items, parsed.file.items, "fmt changed the meaning:\n{printed}");
    assert_eq!(again.file.comments.len(), parsed.file.comments.len(), "fmt lost a comment");
    assert_eq!(toolgate_syntax::print(&again.file, &printed), printed, "fmt is not idempotent");
    let checked = toolgate_check::check(&parsed.file, src);
    let has_error = checked.diagnostics.iter().any(|d| !d.is_warning());
    assert_eq!(checked.policy.is_some(), !has_error);
});
