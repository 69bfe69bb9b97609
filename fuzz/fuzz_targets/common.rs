//! Shared by the fuzz targets.

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
