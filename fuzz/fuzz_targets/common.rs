//! Shared by the fuzz targets.
#![allow(dead_code)] // each target uses part of this module

/// libFuzzer's panic hook aborts on every panic, even one the program catches. The XLSX reader
/// catches calamine's panics on malformed files (and reports the file unreadable), so those
/// must not count as crashes; every other panic still does.
pub fn allow_caught_xlsx_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !kpi_refresh::ingest::table::reading_xlsx() {
                abort(info)
            }
        }));
    });
}

/// Reads `bytes` as the extract file `name`: a frame with one row per data row counted, or an
/// input error (exit 65) naming the file.
pub fn check_extract(name: &str, bytes: &[u8]) {
    use kpi_refresh::calendar::Month;
    use kpi_refresh::ingest::extract::Parsed;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    match Parsed::read_file(&path, Month::new(2026, 10).unwrap()) {
        Ok((frame, read)) => assert_eq!(frame.height() as u64, read.rows),
        Err(e) => {
            assert_eq!(e.exit_code(), 65, "{e}");
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
