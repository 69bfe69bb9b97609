//! The command line (`docs/rules.md §14.1`), as clap derive types. Parsing only: what each command
//! does lives in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::calendar::Month;
use crate::config::DEFAULT_MAX_REJECT_RATE;

#[derive(Debug, Parser)]
#[command(
    name = "kpi-refresh",
    version,
    about = "Monthly KPI refresh of a Learning Partner Program"
)]
pub struct Cli {
    /// Log format on stderr: text for people, json for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More detail in the log (-v the refresh's debug detail, -vv the libraries' too).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the refresh of one month: ingest, compute, publish.
    Run(RunArgs),
    /// Run the refreshes of a range of months, oldest first.
    Backfill(BackfillArgs),
    /// Check program.toml, the roster, the rates and delivery R-1; write nothing.
    Validate(ValidateArgs),
    /// Explain one partner's KPIs and decision in the refresh of a month.
    Explain(ExplainArgs),
    /// Write partner statements: one workbook per partner with every figure of a refresh.
    Statement(StatementArgs),
}

#[derive(Clone, Debug, Args)]
pub struct Folders {
    /// The input folder (program.toml, partners.csv, fx_rates.csv, extracts/).
    #[arg(long, default_value = "input")]
    pub input: PathBuf,
    /// The output folder (ledger/, state/, reports/).
    #[arg(long, default_value = "output")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The refresh month YYYY-MM (default: the current month).
    #[arg(long, value_parser = parse_month)]
    pub refresh: Option<Month>,
    #[command(flatten)]
    pub folders: Folders,
    /// Run a month that is not open (before its refresh day, or not the current month).
    #[arg(long)]
    pub force: bool,
    /// Do all the work and say what would be written, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Fail when a delivery judged by this run rejects a larger share of its rows.
    #[arg(long, default_value_t = DEFAULT_MAX_REJECT_RATE, value_parser = parse_rate)]
    pub max_reject_rate: f64,
    /// A month with no delivery folder that the refresh may do without (repeatable).
    #[arg(long = "allow-missing", value_name = "YYYY-MM", value_parser = parse_delivery_month)]
    pub allow_missing: Vec<Month>,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The first refresh month YYYY-MM.
    #[arg(long, value_parser = parse_month)]
    pub from: Month,
    /// The last refresh month YYYY-MM.
    #[arg(long, value_parser = parse_month)]
    pub to: Month,
    #[command(flatten)]
    pub folders: Folders,
    /// A month with no delivery folder that the refresh may do without (repeatable).
    #[arg(long = "allow-missing", value_name = "YYYY-MM", value_parser = parse_delivery_month)]
    pub allow_missing: Vec<Month>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The refresh month YYYY-MM (default: the current month).
    #[arg(long, value_parser = parse_month)]
    pub refresh: Option<Month>,
    /// The input folder.
    #[arg(long, default_value = "input")]
    pub input: PathBuf,
    /// A month with no delivery folder that the refresh may do without (repeatable).
    #[arg(long = "allow-missing", value_name = "YYYY-MM", value_parser = parse_delivery_month)]
    pub allow_missing: Vec<Month>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The partner_id as in the roster.
    #[arg(long)]
    pub partner: String,
    /// The refresh month YYYY-MM (default: the current month).
    #[arg(long, value_parser = parse_month)]
    pub refresh: Option<Month>,
    #[command(flatten)]
    pub folders: Folders,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("partners").required(true))]
pub struct StatementArgs {
    /// A partner_id of `partners-R.csv` (repeatable).
    #[arg(long, group = "partners")]
    pub partner: Vec<String>,
    /// Every partner of `partners-R.csv`.
    #[arg(long, group = "partners")]
    pub all: bool,
    /// The published refresh month YYYY-MM (default: the current month).
    #[arg(long, value_parser = parse_month)]
    pub refresh: Option<Month>,
    #[command(flatten)]
    pub folders: Folders,
}

/// A refresh month: 1901-01 … 9998-12 (docs/rules.md §1).
fn parse_month(s: &str) -> Result<Month, String> {
    crate::calendar::check_refresh(s.parse()?)
}

/// A delivery month (`--allow-missing`): any month, since a refresh's deliveries may lie
/// before 1901-01.
fn parse_delivery_month(s: &str) -> Result<Month, String> {
    s.parse()
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a share between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn refresh_months_are_bounded_but_allowed_missing_deliveries_are_not() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["kpi-refresh"], args].concat());
        assert!(parse(&["run", "--refresh", "1901-01", "--allow-missing", "1900-11"]).is_ok());
        assert!(parse(&["run", "--refresh", "1900-12"]).is_err());
        assert!(parse(&["run", "--refresh", "9999-01"]).is_err());
        assert!(parse(&["validate", "--allow-missing", "1899-05"]).is_ok());
        assert!(parse(&["run", "--allow-missing", "1900-13"]).is_err());
    }
}
