//! `kpi-refresh`: parses the command line, runs the command, and turns the outcome into an
//! exit code. All work lives in the library.

use std::process::ExitCode;

use clap::Parser;
use kpi_refresh::cli::Cli;

// polars allocates and frees large buffers from several threads; jemalloc (the allocator
// polars recommends) does that faster than the system allocator and hands memory back sooner.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version go to stdout and succeed; any other usage error is exit 64.
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    // explain's answer is for people on stdout: its stage lines only with -v.
    let quiet = cli.quiet
        || (cli.verbose == 0 && matches!(cli.command, kpi_refresh::cli::Command::Explain(_)));
    kpi_refresh::logging::init(cli.log_format, cli.verbose, quiet);
    // A panic inside the XLSX reader is a malformed file, reported as such (exit 65): no
    // panic message for it. Any other panic is printed and ends as exit 70 below.
    let print_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !kpi_refresh::ingest::table::reading_xlsx() {
            print_panic(info)
        }
    }));
    match std::panic::catch_unwind(|| kpi_refresh::commands::execute(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        // Exit 75 (not open yet, or another run holds the lock) is "try again later", not a
        // failure: a warning.
        Ok(Err(e)) if e.exit_code() == 75 => {
            tracing::warn!(exit_code = 75, "{e:#}");
            ExitCode::from(75)
        }
        Ok(Err(e)) => {
            tracing::error!(exit_code = e.exit_code(), "{e:#}");
            ExitCode::from(e.exit_code())
        }
        Err(_) => {
            tracing::error!(
                exit_code = 70,
                "internal error: the program panicked (see the message above)"
            );
            ExitCode::from(70)
        }
    }
}
