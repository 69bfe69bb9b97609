//! Times the parsing of one delivery's files alone: each file read, hashed and parsed into
//! its rows, as a run does, seven times over; prints the best time.
//!
//! Usage: `cargo bench --bench parse -- DIR [YYYY-MM]` (DIR a delivery folder, such as
//! `/var/tmp/kpi-refresh-bench/g2-p20000-l500000/input/extracts/2026-10` after
//! `benches/bench.sh 1`; the month is the delivery's, 2026-10 unless given).

use std::time::Instant;

use kpi_refresh::calendar::Month;
use kpi_refresh::ingest::extract::Parsed;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(dir) = args.next() else {
        eprintln!("usage: cargo bench --bench parse -- DIR [YYYY-MM]");
        std::process::exit(64);
    };
    let delivery: Month = args
        .next()
        .unwrap_or_else(|| "2026-10".into())
        .parse()
        .expect("a month YYYY-MM");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("a delivery folder")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut best = f64::MAX;
    for _ in 0..7 {
        let started = Instant::now();
        let mut rows = 0;
        for file in &files {
            let (frame, _) = Parsed::read_file(file, delivery).expect("a readable extract");
            rows += frame.height();
        }
        let seconds = started.elapsed().as_secs_f64();
        best = best.min(seconds);
        eprintln!("{} files, {rows} rows: {seconds:.3} s", files.len());
    }
    println!("best of 7: {best:.3} s");
}
