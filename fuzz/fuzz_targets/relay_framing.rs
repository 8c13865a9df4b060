//! Fuzz target for the MCP relay's framing (security review 2026-12, C1).
//!
//! The input is split on `\n` into messages, each going to the relay from
//! the client (first byte even) or from the upstream (odd), over a fake
//! gateway. Invariant (`toolgate_mcp::fake::check_framing`): whatever bytes
//! arrive, every line the relay writes either way is one JSON object in
//! printable ASCII (no CR, LF or other line separator a transport could
//! split on), and every `tools/call` that reached the upstream was decided
//! `Allowed` (journaled, in the real gateway) with the same tool and
//! arguments, once per decision. Never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = toolgate_mcp::fake::check_framing(data) {
        panic!("{why}");
    }
});
