//! Any bytes a client can send, through the decoder both downstream transports use. The body is
//! a library function so that `cargo test` runs the same checks (src/jsonrpc/proptests.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| tollgate::jsonrpc::fuzz::check_decode(bytes));
