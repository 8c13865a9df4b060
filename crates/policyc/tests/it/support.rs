//! What several of policyc's test modules share: the runner of the real
//! `policyc` binary (`run`) and the npm test peers (`npm`). The server
//! harness is `serve::harness`, next to the tests that use all of it.

pub mod npm;
pub mod run;
