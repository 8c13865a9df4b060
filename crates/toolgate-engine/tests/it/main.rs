//! The engine's integration tests, one binary (`cargo test -p
//! toolgate-engine --test it`), a module per concern. The language tests
//! decide through `support` (engine, cached engine and reference agree).

mod support;

mod argument_types;
mod compare;
mod dates;
mod language_v2;
mod properties;
mod provenance;
mod url_functions;
mod url_property;
