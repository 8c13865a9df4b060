//! The server crate's integration tests, one binary (`cargo test -p
//! toolgate-server --test it`), a module per concern.

mod openapi;
mod store_equivalence;
