//! Logs on stderr through `tracing`: text for people, one JSON object per line for log
//! collectors. `-v` adds detail, `-q` keeps warnings and errors only.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::filter::LevelFilter;

use crate::cli::LogFormat;

static PROGRESS: AtomicBool = AtomicBool::new(false);

/// A progress bar on stderr, shown only when stderr is a terminal and the log is plain text
/// at its normal level; hidden (and free) otherwise.
pub fn progress(len: u64, unit: &str) -> ProgressBar {
    if !PROGRESS.load(Ordering::Relaxed) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!("{{bar:30}} {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

pub fn init(format: LogFormat, verbose: u8, quiet: bool) {
    PROGRESS.store(
        format == LogFormat::Text && !quiet && std::io::stderr().is_terminal(),
        Ordering::Relaxed,
    );
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::WARN,
        (false, 0) => LevelFilter::INFO,
        (false, 1) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
