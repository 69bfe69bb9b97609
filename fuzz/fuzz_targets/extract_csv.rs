//! Any bytes as a CSV extract: the reader gives a frame with one row per data row it counted,
//! or an input error (exit 65) naming the file; never a panic or an internal error.
#![no_main]

use kpi_refresh::calendar::Month;
use kpi_refresh::ingest::extract::Parsed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extract.csv");
    std::fs::write(&path, data).unwrap();
    match Parsed::read_file(&path, Month::new(2026, 10).unwrap()) {
        Ok((frame, read)) => assert_eq!(frame.height() as u64, read.rows),
        Err(e) => {
            assert_eq!(e.exit_code(), 65, "{e}");
            assert!(e.to_string().contains("extract.csv"), "{e}");
        }
    }
});
