//! Check stage of Toolgate: [`toolgate_syntax::ast::File`] -> checked
//! [`ir::Policy`] plus [`CheckError`] diagnostics (errors and warnings).
//!
//! Names are resolved, tool patterns expanded, conditions typed against each
//! tool's argument schema, and lints run. The checker reports every problem it
//! finds in one pass; it returns the IR only when none of them is an error.

#![deny(missing_docs)]

mod check;
mod err;
pub mod ir;
mod suggest;
pub mod time;

pub use check::{check, Checked};
pub use err::CheckError;
