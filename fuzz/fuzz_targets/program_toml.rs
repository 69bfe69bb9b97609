//! Any text as program.toml: a checked program, or an error that names a key or a line;
//! never a panic. A program that parses answers the questions a refresh asks of it.
#![no_main]

use chrono::NaiveDate;
use kpi_refresh::config::program::{Level, Program};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Program::parse(text) {
        Ok(program) => {
            let _ = program.omlp_table();
            let _ = program.omlp_type("Course");
            let market = program.market_of("US").to_string();
            let day = NaiveDate::from_ymd_opt(2026, 11, 15).unwrap();
            for level in Level::QUALIFYING {
                if let Some(r) = program.requirement(level, day, &market, "Azure") {
                    assert!(r.effective_from <= day);
                    let _ = r.describe();
                }
            }
            let _ = program.extension_for(day, "Azure");
        }
        Err((key, message)) => {
            assert!(!key.is_empty());
            assert!(!message.is_empty());
        }
    }
});
