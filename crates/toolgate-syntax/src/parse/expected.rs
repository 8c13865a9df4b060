//! Turns pest's "expected rules" into words a policy author understands.
//! Rule names never reach a user.

use super::Rule;
use crate::ast::Span;
use crate::err::SyntaxError;
use std::collections::BTreeSet;

/// A syntax error at byte `at` of `src` from a failed pest parse.
pub(super) fn describe(e: &pest::error::Error<Rule>, src: &str, at: usize) -> SyntaxError {
    let mut words = BTreeSet::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for rule in positives {
            words.insert(phrase(*rule));
        }
    }
    words.remove("");
    // At the start of an item, name the category rather than every keyword.
    const ITEM_WORDS: [&str; 10] = [
        "`policy`",
        "`envs`",
        "`tenants`",
        "`groups`",
        "`context`",
        "`tool`",
        "`let`",
        "`writes`",
        "`agent`",
        "a rule",
    ];
    if words.contains("`tool`") && words.contains("`agent`") {
        for w in ITEM_WORDS {
            words.remove(w);
        }
        words.insert("a declaration or rule");
    }
    // Where any value may come, list "a value" rather than every kind of value.
    if words.contains("a value") || words.contains("a condition") {
        for w in [
            "a name",
            "a number",
            "a string",
            "a list",
            "`(`",
            "`[`",
            "`true` or `false`",
            "`null`",
        ] {
            words.remove(w);
        }
    }
    let expected = join(&words);
    let (found, mut len) = found_at(src, at);
    let (before, rest) = (src.get(..at).unwrap_or(""), src.get(at..).unwrap_or(""));
    let help = mistake_help(&words, &found, before, rest)
        .map(String::from)
        .or_else(|| help_for(&words, &found));
    // A missing `;` is best shown right after the text it should follow.
    let mut at = at;
    let before = src.get(..at).unwrap_or("");
    let prev_end = before.trim_end().len();
    if words.contains("`;`") && before[prev_end..].contains('\n') {
        at = prev_end;
        len = 0;
    }
    SyntaxError::Unexpected {
        label: format!("expected {expected}"),
        expected,
        found,
        span: Span::new(at, at + len).into(),
        help,
    }
}

/// "a, b or c", with a stable order (alphabetical; words before punctuation).
fn join(words: &BTreeSet<&'static str>) -> String {
    let mut list: Vec<&str> = words.iter().copied().collect();
    list.sort_by_key(|w| (w.starts_with('`'), *w));
    match list.as_slice() {
        [] => "something else".to_string(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// What the text at `at` looks like, in words, and how many bytes to underline.
fn found_at(src: &str, at: usize) -> (String, usize) {
    let rest = src.get(at..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_string(), 0);
    };
    if rest.starts_with("/*") {
        return ("an unterminated comment".to_string(), 2);
    }
    if first == '"' {
        let closed = rest[1..]
            .find(['"', '\n'])
            .is_some_and(|i| rest.as_bytes()[1 + i] == b'"');
        if !closed {
            return ("an unterminated string".to_string(), 1);
        }
        return ("a string".to_string(), 1);
    }
    let word_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .unwrap_or(rest.len());
    if word_len > 0 {
        let word = &rest[..word_len.min(40)];
        return (format!("`{word}`"), word_len);
    }
    let shown = if first.is_control() {
        first.escape_default().to_string()
    } else {
        first.to_string()
    };
    (format!("`{shown}`"), first.len_utf8())
}

/// Help for the mistakes people make most, written from other languages'
/// habits: `'x'`, `&&`, `||`, `!`, `("a", "b")`, `};`, `writes enable;`,
/// `a matches "x" == false`.
fn mistake_help(
    words: &BTreeSet<&'static str>,
    found: &str,
    before: &str,
    rest: &str,
) -> Option<&'static str> {
    Some(match found {
        "`'`" => "strings are written in double quotes: `\"text\"`",
        "`&`" => "write `and` to require both conditions (`&&` is not an operator)",
        "`|`" => "write `or` when either condition will do (`||` is not an operator)",
        "`!`" => "write `not` to negate a condition: `not (a == b)`; `!=` compares",
        "`,`" if words.contains("`)`") => {
            "a list is written in brackets: `[\"a\", \"b\"]`; parentheses group one condition"
        }
        "`;`" if before.trim_end().ends_with('}') => {
            "an agent block ends with `}` alone: remove the `;`"
        }
        "`enable`" | "`disable`" if words.contains("`enabled` or `disabled`") => {
            "write `writes enabled;` or `writes disabled;`"
        }
        "`=`" if rest.starts_with("==") => {
            "comparisons do not chain: write `not (x matches \"…\")` for `... == false`, or parenthesise one side"
        }
        _ => return None,
    })
}

fn help_for(words: &BTreeSet<&'static str>, found: &str) -> Option<String> {
    if found == "an unterminated string" {
        return Some("close the string with `\"` on the same line".to_string());
    }
    if found == "an unterminated comment" {
        return Some("close the comment with `*/`".to_string());
    }
    if found == "`=`" {
        return Some("to compare, write `==`".to_string());
    }
    if words.contains("`;`") && words.len() <= 5 {
        return Some("every declaration and rule ends with `;`".to_string());
    }
    if words.contains("a declaration or rule") {
        return Some(
            "a policy holds `policy`, `envs`, `context`, `tool`, `let`, `writes`, `agent` \
             declarations and `allow`, `write`, `deny` rules"
                .to_string(),
        );
    }
    None
}

/// The words for one grammar rule; "" for rules that say nothing useful.
fn phrase(rule: Rule) -> &'static str {
    match rule {
        Rule::policy_decl
        | Rule::envs_decl
        | Rule::tenants_decl
        | Rule::groups_decl
        | Rule::context_decl
        | Rule::tool_decl
        | Rule::let_decl
        | Rule::writes_decl
        | Rule::agent_block
        | Rule::policy_rule
        | Rule::item_start => "a declaration or rule",
        Rule::EOI | Rule::file_end => "end of file",
        Rule::name => "a name",
        Rule::tool_name => "a tool name",
        Rule::tool_list | Rule::tool_pattern => "a tool name or pattern",
        Rule::tool_class => "`read` or `write`",
        Rule::irreversible | Rule::kw_irreversible => "`irreversible`",
        Rule::ident | Rule::field_name | Rule::func_name => "a name",
        Rule::field => "a field",
        Rule::type_name | Rule::list_type | Rule::record_type => "a type",
        Rule::writes_mode => "`enabled` or `disabled`",
        Rule::rule_kind => "a rule",
        Rule::rule_id | Rule::at_id => "`@id(\"...\")`",
        Rule::default_scope_decl => "`scope default`",
        Rule::kw_default => "`default`",
        Rule::accepted_risk | Rule::at_accepted_risk => "`@accepted_risk(\"...\")`",
        Rule::floor_head => "a rule",
        Rule::kw_on => "`on`",
        Rule::require_clause => "`require`",
        Rule::auto_clause => "`auto-approve`",
        Rule::scope_clause => "`scope`",
        Rule::when_clause => "`when`",
        Rule::reason_clause => "`reason`",
        Rule::budget => "`limit`",
        Rule::window => "`minute`, `hour` or `day`",
        Rule::budget_key => "`per tenant` or `per agent`",
        Rule::from_opt => "`from`",
        Rule::trust => "a label",
        Rule::output_labels => "`output`",
        Rule::output_label | Rule::output_path => "an output field",
        Rule::endorse_clause => "`endorse`",
        Rule::from_source => "`from`",
        Rule::session_calls => "a value",
        Rule::expires_opt => "`expires`",
        Rule::string => "a string",
        Rule::int | Rule::number => "a number",
        Rule::duration => "a duration such as `15m`",
        // Arithmetic is for dates only: not worth naming after every operand.
        Rule::arith_op => "",
        Rule::span_lit => "a number",
        Rule::bool => "`true` or `false`",
        Rule::list => "a list",
        Rule::expr
        | Rule::and_expr
        | Rule::not_expr
        | Rule::not_prefix
        | Rule::comparison
        | Rule::quantified
        | Rule::quantifier
        | Rule::has_expr => "a condition",
        Rule::paren | Rule::call | Rule::path | Rule::path_root => "a value",
        Rule::path_seg => "a field name",
        Rule::cmp_op
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_lt
        | Rule::op_ge
        | Rule::op_gt
        | Rule::op_in
        | Rule::op_not_in
        | Rule::op_matches_regex => "a comparison operator",
        Rule::optional => "`?`",
        Rule::redact | Rule::kw_redact => "`redact`",
        Rule::semi => "`;`",
        Rule::colon => "`:`",
        Rule::eq => "`=`",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::langle => "`<`",
        Rule::rangle => "`>`",
        Rule::pipe => "`|`",
        Rule::rest => "`..`",
        other => keyword(other),
    }
}

fn keyword(rule: Rule) -> &'static str {
    match rule {
        Rule::kw_policy => "`policy`",
        Rule::kw_envs => "`envs`",
        Rule::kw_tenants => "`tenants`",
        Rule::kw_groups => "`groups`",
        Rule::kw_context => "`context`",
        Rule::kw_tool => "`tool`",
        Rule::kw_read => "`read`",
        Rule::kw_write => "`write`",
        Rule::kw_let => "`let`",
        Rule::kw_writes => "`writes`",
        Rule::kw_enabled => "`enabled`",
        Rule::kw_disabled => "`disabled`",
        Rule::kw_agent => "`agent`",
        Rule::kw_list => "`list`",
        Rule::kw_allow => "a rule",
        Rule::kw_deny => "a rule",
        Rule::kw_require => "`require`",
        Rule::kw_approval => "`approval`",
        Rule::kw_approvals => "`approvals`",
        Rule::kw_from => "`from`",
        Rule::kw_expires => "`expires`",
        Rule::kw_auto_approve => "`auto-approve`",
        Rule::kw_limit => "`limit`",
        Rule::kw_per => "`per`",
        Rule::kw_minute => "`minute`",
        Rule::kw_hour => "`hour`",
        Rule::kw_day => "`day`",
        Rule::kw_tenant => "`tenant`",
        Rule::kw_scope => "`scope`",
        Rule::kw_when => "`when`",
        Rule::kw_reason => "`reason`",
        Rule::kw_or => "`or`",
        Rule::kw_and => "`and`",
        Rule::kw_not => "`not`",
        Rule::kw_in => "`in`",
        Rule::kw_all => "`all`",
        Rule::kw_any => "`any`",
        Rule::kw_has => "`has`",
        Rule::kw_starts_with | Rule::kw_ends_with | Rule::kw_contains | Rule::kw_matches => {
            "a comparison operator"
        }
        Rule::kw_regex => "`regex`",
        Rule::kw_true | Rule::kw_false => "`true` or `false`",
        Rule::null_lit | Rule::kw_null => "`null`",
        Rule::kw_trusted => "`trusted`",
        Rule::kw_untrusted => "`untrusted`",
        Rule::kw_output => "`output`",
        Rule::kw_endorse => "`endorse`",
        Rule::kw_user => "`user`",
        Rule::kw_ctx => "`ctx`",
        Rule::kw_session_calls => "a value",
        _ => "",
    }
}
