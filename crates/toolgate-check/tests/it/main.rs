//! The checker's integration tests, one binary (`cargo test -p
//! toolgate-check --test it`), a module per concern.

mod lints_v2;
