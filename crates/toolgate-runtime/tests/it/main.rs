//! The runtime's integration tests, one binary (`cargo test -p
//! toolgate-runtime --test it`), a module per concern. The gateway tests open
//! their gateway through `support`.

mod support;

mod findings;
mod gateway;
mod journal;
mod sessions;
mod sidecar;
mod tamper;
