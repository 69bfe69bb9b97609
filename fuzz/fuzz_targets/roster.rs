//! Any bytes as the partner roster (CSV when the first byte is even, else XLSX): a roster, or
//! an input error (exit 65) naming the file; never a panic or an internal error.
#![no_main]

use kpi_refresh::ingest::roster::Roster;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::allow_caught_xlsx_panics();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let name = if mode & 1 == 0 {
        "partners.csv"
    } else {
        "partners.xlsx"
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, rest).unwrap();
    match Roster::load(&path) {
        Ok(roster) => {
            // Sorted by partner id, one entry each.
            assert!(roster
                .partners
                .windows(2)
                .all(|w| w[0].partner_id < w[1].partner_id));
        }
        Err(e) => {
            assert_eq!(e.exit_code(), 65, "{e}");
            assert!(e.to_string().contains(name), "{e}");
        }
    }
});
