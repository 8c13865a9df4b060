//! Errors of the syntax stage: what the parser could not read, and where.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

/// A syntax error. Each one points at the exact place where reading stopped.
#[derive(Clone, Debug, Error, Diagnostic, PartialEq, Eq)]
pub enum SyntaxError {
    /// The text does not follow the grammar at this point.
    #[error("expected {expected}, found {found}")]
    #[diagnostic(code(toolgate::syntax::unexpected))]
    Unexpected {
        /// What could have come here, in words.
        expected: String,
        /// What is here instead, in words.
        found: String,
        /// Where.
        #[label("{label}")]
        span: SourceSpan,
        /// The label text.
        label: String,
        /// What to write instead, when we can tell.
        #[help]
        help: Option<String>,
    },
    /// A `\` escape that the language does not define.
    #[error("unknown escape `{escape}` in string")]
    #[diagnostic(
        code(toolgate::syntax::invalid_escape),
        help("the escapes are `\\\"`, `\\\\`, `\\n`, `\\r`, `\\t` and `\\u{{HEX}}`; in a regex, write `\\\\.` for a literal dot")
    )]
    InvalidEscape {
        /// The escape as written.
        escape: String,
        /// Where.
        #[label("not a valid escape")]
        span: SourceSpan,
    },
    /// An integer that does not fit.
    #[error("number `{text}` is out of range")]
    #[diagnostic(
        code(toolgate::syntax::number_out_of_range),
        help("integers must lie between -9223372036854775808 and 9223372036854775807, decimal numbers within the range of a 64-bit float, and counts must be positive")
    )]
    NumberOutOfRange {
        /// The number as written.
        text: String,
        /// Where.
        #[label("out of range")]
        span: SourceSpan,
    },
    /// A duration in a condition with a unit other than `s`, `m`, `h`, `d`, `w`.
    #[error("unknown duration unit `{unit}` in `{text}`")]
    #[diagnostic(
        code(toolgate::syntax::unknown_duration_unit),
        help("a duration is digits followed by `s`, `m`, `h`, `d` or `w` (seconds, minutes, hours, days, weeks), e.g. `30d`")
    )]
    UnknownDurationUnit {
        /// The duration as written.
        text: String,
        /// The unit as written.
        unit: String,
        /// Where.
        #[label("not `s`, `m`, `h`, `d` or `w`")]
        span: SourceSpan,
    },
    /// Nesting beyond what the language allows.
    #[error("nesting is too deep (more than {limit} levels)")]
    #[diagnostic(
        code(toolgate::syntax::too_deep),
        help("split the condition or type into simpler parts, e.g. with `let` constants")
    )]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Where the limit was crossed.
        #[label("too deeply nested")]
        span: SourceSpan,
    },
    /// The file is not UTF-8.
    #[error("file is not valid UTF-8")]
    #[diagnostic(
        code(toolgate::syntax::invalid_utf8),
        help("policy files must be UTF-8 text; re-save the file as UTF-8")
    )]
    InvalidUtf8 {
        /// The first invalid byte.
        #[label("invalid byte here")]
        span: SourceSpan,
    },
    /// Too many syntax errors; the rest of the file was not read.
    #[error("too many syntax errors; stopped reading this file")]
    #[diagnostic(
        code(toolgate::syntax::too_many_errors),
        help("fix the errors above and check again")
    )]
    TooManyErrors {
        /// Where reading stopped.
        #[label("stopped here")]
        span: SourceSpan,
    },
    /// The parser and the grammar disagree: a bug in Toolgate, never the author's fault.
    #[error("internal error: {detail}")]
    #[diagnostic(
        code(toolgate::syntax::internal),
        help("this is a bug in toolgate; please report it with this file")
    )]
    Internal {
        /// What went wrong.
        detail: String,
        /// Where.
        #[label("here")]
        span: SourceSpan,
    },
}
