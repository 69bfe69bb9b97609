//! Any bytes as a CSV extract: the reader gives a frame with one row per data row it counted,
//! or an input error (exit 65) naming the file; never a panic or an internal error.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| common::check_extract("extract.csv", data));
