//! `unguarded_optional`: which reads of an omittable argument a deny guards.

use super::super::tests::codes;

fn deny(cond: &str) -> Vec<String> {
    codes(&format!(
        "tool m.send write {{ to: string, cc?: string, meta?: {{ tag: string }}, note: string | null }};\n\
         deny m.send when {cond};\n"
    ))
}

#[test]
fn a_deny_reading_an_omittable_argument_without_has_warns() {
    assert_eq!(deny("args.cc == \"x\""), ["unguarded_optional @ args.cc"]);
    assert_eq!(
        deny("args.meta.tag == \"x\""),
        ["unguarded_optional @ args.meta.tag"]
    );
    assert_eq!(
        deny("args.note contains \"x\""),
        ["unguarded_optional @ args.note"]
    );
    assert_eq!(
        deny("args.to == \"a\" or len(args.cc) > 3"),
        ["unguarded_optional @ args.cc"]
    );
    assert_eq!(
        codes("tool m.send write { cc?: string };\nrequire 2 approvals on m.send when args.cc == \"x\";\n"),
        ["unguarded_optional @ args.cc"]
    );
}

#[test]
fn guards_and_null_tests_silence_it() {
    let none: Vec<String> = Vec::new();
    assert_eq!(deny("has args.cc and args.cc == \"x\""), none);
    assert_eq!(deny("has args.meta and args.meta.tag == \"x\""), none);
    assert_eq!(deny("not has args.cc or args.cc == \"x\""), none);
    assert_eq!(deny("args.note != null and args.note contains \"x\""), none);
    assert_eq!(deny("args.cc == null or args.cc == \"x\""), none);
    assert_eq!(
        deny("has args.cc or args.cc == \"x\""),
        ["unguarded_optional @ args.cc"]
    );
    assert_eq!(deny("args.cc == null"), none);
    assert_eq!(deny("args.to == \"x\""), none);
    assert_eq!(
        codes("tool m.send write { cc?: string };\nwrites enabled;\nagent a {\n  write m.send when args.cc == \"x\";\n}\n"),
        none,
        "a grant that errs does not apply: no warning"
    );
}
