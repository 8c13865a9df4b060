//! The syntax crate's integration tests, one binary (`cargo test -p
//! toolgate-syntax --test it`), a module per concern.

mod fmt_layout;
mod fmt_roundtrip;
