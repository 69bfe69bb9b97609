//! Logs on stderr through `tracing`: text for people, one JSON object per line for log
//! collectors. `-v` adds detail, `-q` keeps warnings and errors only.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use polars::prelude::{Column, DataFrame, StringChunked};
use polars_arrow::array::Array;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

static PROGRESS: AtomicBool = AtomicBool::new(false);

/// The progress bar on screen, if any: log lines are written above it, so it stays at the
/// bottom of the terminal.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Standard error, with the progress bar on screen (if any) lifted while a log line is written
/// and drawn again below it.
struct AboveTheBar;

impl Write for AboveTheBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = SHOWN.lock().ok().and_then(|bar| bar.clone());
        match shown {
            Some(bar) if !bar.is_finished() => {
                bar.suspend(|| std::io::stderr().write_all(buf))?;
                Ok(buf.len())
            }
            _ => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The MiB a frame's columns hold, for the `-v` log: polars' estimate, except that a text
/// column counts the 16-byte view of every value and the text stored beside the views
/// (polars' estimate counts its text alone: a fifth of what a column of three-letter values
/// holds), and a column of one value repeated counts nothing (it holds the value once; it is
/// not expanded to be measured). A buffer shared with another frame counts in both.
pub fn frame_mib(df: &DataFrame) -> usize {
    let text = |c: &StringChunked| -> usize {
        (c.downcast_iter())
            .map(|a| {
                let validity = Array::validity(a).map_or(0, |v| v.len().div_ceil(8));
                a.views().len() * 16 + a.total_buffer_len() + validity
            })
            .sum()
    };
    let bytes: usize = (df.columns().iter())
        .map(|c| match c {
            Column::Scalar(_) => 0,
            Column::Series(s) => match s.str() {
                Ok(s) => text(s),
                Err(_) => s.estimated_size(),
            },
        })
        .sum();
    bytes >> 20
}

/// A progress bar on stderr, shown only when stderr is a terminal and the log is plain text
/// at its normal level; hidden (and free) otherwise. Log lines are written above it while it
/// is shown, and `finish_and_clear` leaves nothing of it behind.
pub fn progress(len: u64, unit: &str) -> ProgressBar {
    if !PROGRESS.load(Ordering::Relaxed) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!("{{bar:30}} {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    if let Ok(mut shown) = SHOWN.lock() {
        *shown = Some(bar.clone());
    }
    bar
}

pub fn init(format: LogFormat, verbose: u8, quiet: bool) {
    PROGRESS.store(
        format == LogFormat::Text && !quiet && std::io::stderr().is_terminal(),
        Ordering::Relaxed,
    );
    // -v is the refresh's own detail; -vv adds that of the libraries (polars' SQL parser
    // among them).
    let filter = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "info,kpi_refresh=debug",
        (false, _) => "trace",
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(|| AboveTheBar)
        .with_env_filter(EnvFilter::new(filter))
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::frame_mib;

    #[test]
    fn a_text_column_counts_its_views_and_the_text_beside_them() {
        const ROWS: usize = 1 << 20;
        let short = df!("t" => vec!["abc"; ROWS]).unwrap();
        let long = df!("t" => vec!["twenty bytes of text"; ROWS]).unwrap();
        let numbers = df!("n" => vec![1i64; ROWS]).unwrap();
        // 16 bytes of view a value; a value over 12 bytes is stored beside the views too.
        assert_eq!(frame_mib(&short), 16);
        assert_eq!(frame_mib(&long), 16 + 20);
        assert_eq!(frame_mib(&numbers), 8);
        let repeated = Column::new_scalar("d".into(), Scalar::from(7i64), ROWS);
        assert_eq!(frame_mib(&DataFrame::new(ROWS, vec![repeated]).unwrap()), 0);
        // (polars' own estimate counts the text alone.)
        assert_eq!(short.estimated_size() >> 20, 3);
    }
}
