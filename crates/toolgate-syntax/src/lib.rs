//! Syntax stage of Toolgate: `.policy` source text -> [`ast::File`] (every node
//! spanned) plus [`SyntaxError`]s, and the canonical printer used by `policyc fmt`.
//!
//! This is the only crate that sees pest; it exports its own AST.

#![deny(missing_docs)]

pub mod ast;
mod err;
mod line_index;
mod parse;
mod print;

pub use line_index::LineIndex;

pub use err::SyntaxError;
pub use parse::{decode, parse, Parsed, MAX_DEPTH};
pub use print::{expr_text, literal_text, print, rule_identity, string_text, WIDTH};
