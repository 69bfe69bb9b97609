//! The commands of `docs/rules.md §14.1`: `run`, `backfill`, `validate`, `explain` and
//! `statement`.
//!
//! [`refresh`] holds the pipeline every command shares (inputs, ledger, KPIs, decisions,
//! directory); [`run`] publishes it, [`validate`] checks inputs only, [`explain`] tells one
//! partner's story in words, [`statement`] writes partners' statements of a published refresh.

pub mod explain;
pub mod refresh;
pub mod run;
pub mod statement;
pub mod validate;

use crate::cli::{Cli, Command};
use crate::error::Result;

pub fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Backfill(args) => run::backfill(&args),
        Command::Validate(args) => validate::validate(&args),
        Command::Explain(args) => explain::explain(&args),
        Command::Statement(args) => statement::statement(&args),
    }
}
