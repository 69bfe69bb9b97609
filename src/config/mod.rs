//! The run's configuration, built and checked before any data is read.
//!
//! [`RunConfig`] turns what the command line asks ([`RunOptions`]) into a ready-to-use, checked
//! set of facts, built once and read through accessors: the refresh month, the folders, the
//! flags and the program rules of `program.toml` ([`program`]). A bad month, folder or rule
//! fails here, in milliseconds, not after ingest. Owns the default reject-rate limit.

pub mod keys;
pub mod program;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::calendar::Month;
use crate::error::{Error, Result};
use program::Program;

/// Setting this to a date `YYYY-MM-DD` makes the program take it as today (for rehearsing a
/// schedule and for tests).
pub const TODAY_ENV: &str = "KPI_REFRESH_TODAY";

/// A delivery judged by a run may reject at most this share of its rows unless
/// `--max-reject-rate` says otherwise (docs/rules.md §4.6).
pub const DEFAULT_MAX_REJECT_RATE: f64 = 0.05;

/// What the command line asks of one refresh, before anything is checked. A command fills it
/// in and hands it to [`RunConfig::build`].
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The refresh month; `None` is the current month.
    pub refresh: Option<Month>,
    pub input: PathBuf,
    /// The output folder; it may not exist yet.
    pub output: PathBuf,
    /// Run a month that is not open.
    pub force: bool,
    /// Do the work and write nothing.
    pub dry_run: bool,
    /// The largest share of rejected rows a delivery judged by the run may have.
    pub max_reject_rate: f64,
    /// Months named with `--allow-missing`: gaps in the deliveries the run may do without.
    pub allowed_missing: Vec<Month>,
}

/// The checked configuration of one refresh, built once by [`RunConfig::build`] and read
/// through its accessors.
#[derive(Clone, Debug)]
pub struct RunConfig {
    refresh: Month,
    input: PathBuf,
    output: PathBuf,
    force: bool,
    dry_run: bool,
    max_reject_rate: f64,
    allowed_missing: Vec<Month>,
    program: Program,
    program_path: PathBuf,
    /// SHA-256 of the program.toml bytes `program` was parsed from.
    program_sha: String,
}

/// Today, from the clock or from [`TODAY_ENV`].
pub fn today() -> Result<NaiveDate> {
    match std::env::var(TODAY_ENV) {
        Ok(s) => crate::calendar::parse_date(s.trim())
            .ok_or_else(|| Error::Usage(format!("{TODAY_ENV}={s:?} is not a date YYYY-MM-DD"))),
        Err(_) => Ok(chrono::Local::now().date_naive()),
    }
}

impl RunConfig {
    /// Checks the refresh month and the folders of `options` and loads program.toml.
    pub fn build(options: RunOptions) -> Result<RunConfig> {
        let RunOptions {
            refresh,
            input,
            output,
            force,
            dry_run,
            max_reject_rate,
            allowed_missing,
        } = options;
        let refresh = match refresh {
            Some(m) => m,
            None => Month::of(today()?),
        };
        let refresh = crate::calendar::check_refresh(refresh).map_err(Error::Usage)?;
        if !input.is_dir() {
            return Err(Error::MissingInput {
                what: "input folder".into(),
                path: input,
            });
        }
        if output.exists() && !output.is_dir() {
            return Err(Error::write(
                output,
                std::io::Error::other("exists and is not a folder"),
            ));
        }
        let program_path = input.join("program.toml");
        let (program, program_sha) = Program::load_with_digest(&program_path)?;
        Ok(RunConfig {
            refresh,
            input,
            output,
            force,
            dry_run,
            max_reject_rate,
            allowed_missing,
            program,
            program_path,
            program_sha,
        })
    }

    /// This configuration with `months` as the deliveries it may do without, in place of its
    /// own: for answering as a published refresh ran, with the gaps its manifest records.
    pub fn with_allowed_missing(&self, months: Vec<Month>) -> RunConfig {
        RunConfig {
            allowed_missing: months,
            ..self.clone()
        }
    }

    /// The refresh month R.
    pub fn refresh(&self) -> Month {
        self.refresh
    }

    pub fn input(&self) -> &Path {
        &self.input
    }

    pub fn output(&self) -> &Path {
        &self.output
    }

    /// Whether nothing is to be written.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The largest share of rejected rows a delivery judged by this run may have.
    pub fn max_reject_rate(&self) -> f64 {
        self.max_reject_rate
    }

    /// Gaps in the deliveries the run may do without (`--allow-missing`).
    pub fn allowed_missing(&self) -> &[Month] {
        &self.allowed_missing
    }

    /// The program rules of program.toml.
    pub fn program(&self) -> &Program {
        &self.program
    }

    pub fn program_path(&self) -> &Path {
        &self.program_path
    }

    /// SHA-256 of the program.toml bytes the program was parsed from.
    pub fn program_sha(&self) -> &str {
        &self.program_sha
    }

    /// The day the refresh opens: its month's refresh day (docs/rules.md §1).
    pub fn opens_on(&self) -> NaiveDate {
        self.refresh.day(self.program.calendar.refresh_day)
    }

    /// A refresh is open from its refresh day on, in its own month; any other month needs
    /// `--force` (docs/rules.md §1 and §14.1).
    pub fn check_open(&self, today: NaiveDate) -> Result<()> {
        if self.force {
            return Ok(());
        }
        let r = self.refresh;
        let opens = self.opens_on();
        let current = Month::of(today);
        if r == current && today >= opens {
            return Ok(());
        }
        let message = if r == current {
            format!(
                "the refresh of {r} opens on {opens} (refresh_day {}); today is {today}. Run it with \
                 --force to run it now, or rerun last month with --refresh {} --force",
                self.program.calendar.refresh_day,
                r.plus(-1)
            )
        } else if r > current {
            format!("the refresh of {r} opens on {opens}; today is {today}. Use --force to run it anyway")
        } else {
            format!(
                "the refresh of {r} is a past month (today is {today}, month {current}); rerun it \
                 with --force, or use `kpi-refresh backfill`"
            )
        };
        Err(Error::NotOpen(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(refresh: &str) -> RunConfig {
        RunConfig {
            refresh: refresh.parse().unwrap(),
            input: "input".into(),
            output: "output".into(),
            force: false,
            dry_run: false,
            max_reject_rate: DEFAULT_MAX_REJECT_RATE,
            allowed_missing: Vec::new(),
            program: Program::parse("[kpi_categories]\nc = [\"MOC\"]").unwrap(),
            program_path: "program.toml".into(),
            program_sha: String::new(),
        }
    }

    fn d(s: &str) -> NaiveDate {
        crate::calendar::parse_date(s).unwrap()
    }

    #[test]
    fn a_refresh_opens_on_its_refresh_day() {
        let c = config("2026-11");
        let e = c.check_open(d("2026-11-14")).unwrap_err();
        assert_eq!(e.exit_code(), 75);
        assert!(e.to_string().contains("opens on 2026-11-15"), "{e}");
        assert!(e.to_string().contains("--refresh 2026-10 --force"), "{e}");
        assert!(c.check_open(d("2026-11-15")).is_ok());
        assert!(c.check_open(d("2026-11-30")).is_ok());
        assert!(c.check_open(d("2026-12-01")).is_err());
        assert!(c.check_open(d("2026-10-20")).is_err());
        let forced = RunConfig { force: true, ..c };
        assert!(forced.check_open(d("2026-10-20")).is_ok());
    }
}
