//! The run's configuration, built and checked before any data is read.
//!
//! [`RunConfig`] turns the command line into a ready-to-use, checked set of facts: the refresh
//! month and its window, the folders, the flags and the program rules of `program.toml`
//! ([`program`]). A bad month, folder or rule fails here, in milliseconds, not after ingest.

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

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub refresh: Month,
    pub input: PathBuf,
    pub output: PathBuf,
    pub force: bool,
    pub dry_run: bool,
    pub max_reject_rate: f64,
    /// Months named with `--allow-missing`: gaps in the deliveries the run may do without.
    pub allowed_missing: Vec<Month>,
    pub program: Program,
    pub program_path: PathBuf,
    /// SHA-256 of the program.toml bytes `program` was parsed from.
    pub program_sha: String,
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
    /// Checks the folders and loads program.toml. `output` may not exist yet.
    pub fn build(refresh: Option<Month>, input: &Path, output: &Path) -> Result<RunConfig> {
        let refresh = match refresh {
            Some(m) => m,
            None => Month::of(today()?),
        };
        let refresh = crate::calendar::check_refresh(refresh).map_err(Error::Usage)?;
        if !input.is_dir() {
            return Err(Error::MissingInput {
                what: "input folder".into(),
                path: input.to_path_buf(),
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
            input: input.to_path_buf(),
            output: output.to_path_buf(),
            force: false,
            dry_run: false,
            max_reject_rate: 0.05,
            allowed_missing: Vec::new(),
            program,
            program_path,
            program_sha,
        })
    }

    /// A refresh is open from its refresh day on, in its own month; any other month needs
    /// `--force` (docs/rules.md §1 and §14.1).
    pub fn check_open(&self, today: NaiveDate) -> Result<()> {
        if self.force {
            return Ok(());
        }
        let r = self.refresh;
        let opens = r.day(self.program.calendar.refresh_day);
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
            max_reject_rate: 0.05,
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
