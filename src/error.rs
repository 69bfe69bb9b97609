//! The error type of every stage and its exit code (sysexits, `docs/rules.md §14.2`).
//!
//! Each variant carries what an operator needs to act: the file, row, column, delivery or
//! month. `main` prints the error with its cause chain and exits with [`Error::exit_code`];
//! nothing else in the program decides exit codes.

use std::fmt;
use std::path::PathBuf;

use crate::calendar::Month;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem in one row of a master-data file (roster or fx rates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub row: usize,
    pub column: String,
    pub reason: String,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.column.is_empty() {
            return write!(f, "row {}: {}", self.row, self.reason);
        }
        write!(
            f,
            "row {}, column {}: {}",
            self.row, self.column, self.reason
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Exit 64: the command line does not make sense.
    #[error("{0}")]
    Usage(String),

    /// Exit 78: program.toml does not parse or breaks a rule.
    #[error("{file}: {key}: {message}")]
    Config {
        file: PathBuf,
        key: String,
        message: String,
    },

    /// Exit 65: a master-data file (roster, fx rates) has invalid rows; all are listed.
    #[error("{file}: {} invalid row(s); fix the file and run again:\n{}", problems.len(), list(problems))]
    InvalidRows {
        file: PathBuf,
        problems: Vec<RowProblem>,
    },

    /// Exit 65: a file lacks a required column; nothing was ingested.
    #[error("{file}: missing required column {column:?}")]
    MissingColumn { file: PathBuf, column: String },

    /// Exit 65: a file cannot be read as CSV or XLSX.
    #[error("{file}: cannot be read: {reason}")]
    Unreadable { file: PathBuf, reason: String },

    /// Exit 65: a delivery judged by this run rejects too large a share of its rows.
    #[error(
        "delivery {delivery}: {rejected} of {read} rows rejected ({:.2}%), above the allowed \
         {:.2}% (--max-reject-rate {max}); nothing was changed. See the reasons with \
         `kpi-refresh validate`",
        share * 100.0, max * 100.0
    )]
    RejectRate {
        delivery: Month,
        read: u64,
        rejected: u64,
        share: f64,
        max: f64,
    },

    /// Exit 66: an input the run needs is not there.
    #[error("{what} not found: {path}")]
    MissingInput { what: String, path: PathBuf },

    /// Exit 66: months between the earliest delivery and R-1 have no delivery folder.
    #[error(
        "no delivery folder for {} (between the earliest delivery {earliest} and {last}): the \
         window would miss those months' invoices. Add the deliveries under extracts/, or, if \
         a month truly has none, name it with {}",
        crate::gaps::list(months),
        months.iter().map(|m| format!("--allow-missing {m}")).collect::<Vec<_>>().join(" ")
    )]
    Gap {
        months: Vec<Month>,
        earliest: Month,
        last: Month,
    },

    /// Exit 66: a command that tells what a refresh published finds it not published (or no
    /// longer what the inputs give).
    #[error("{reason}; run `{command}` first")]
    NotPublished { reason: String, command: String },

    /// Exit 66: an input is not a regular file (a FIFO, a device, a folder): it is refused
    /// without being opened for reading, which could block the run for good.
    #[error("{path}: is {kind}, not a regular file; refused without reading it")]
    NotAFile { path: PathBuf, kind: String },

    /// Exit 75: the refresh is not open yet (or no longer the current month).
    #[error("{0}")]
    NotOpen(String),

    /// Exit 75: another run holds the output folder's lock.
    #[error(
        "another kpi-refresh run holds the lock {path} ({holder}); try again when it has finished"
    )]
    Locked { path: PathBuf, holder: String },

    /// Exit 73: the output folder cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Exit 70: a bug or an unexpected failure of a library.
    #[error("internal error: {0}")]
    Internal(String),
}

fn list(problems: &[RowProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 64,
            Error::InvalidRows { .. }
            | Error::MissingColumn { .. }
            | Error::Unreadable { .. }
            | Error::RejectRate { .. } => 65,
            Error::MissingInput { .. }
            | Error::Gap { .. }
            | Error::NotPublished { .. }
            | Error::NotAFile { .. } => 66,
            Error::Internal(_) => 70,
            Error::Write { .. } => 73,
            Error::NotOpen(_) | Error::Locked { .. } => 75,
            Error::Config { .. } => 78,
        }
    }

    pub fn config(
        file: impl Into<PathBuf>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Config {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Write {
            path: path.into(),
            source,
        }
    }

    pub fn internal(context: impl fmt::Display, cause: impl fmt::Display) -> Error {
        Error::Internal(format!("{context}: {cause}"))
    }
}

impl From<polars::error::PolarsError> for Error {
    fn from(e: polars::error::PolarsError) -> Error {
        Error::Internal(format!("polars: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_sysexits_code() {
        let io = || std::io::Error::other("x");
        assert_eq!(Error::Usage("x".into()).exit_code(), 64);
        assert_eq!(Error::config("p", "k", "m").exit_code(), 78);
        assert_eq!(
            Error::MissingColumn {
                file: "f".into(),
                column: "c".into()
            }
            .exit_code(),
            65
        );
        assert_eq!(
            Error::MissingInput {
                what: "w".into(),
                path: "p".into()
            }
            .exit_code(),
            66
        );
        assert_eq!(Error::write("p", io()).exit_code(), 73);
        assert_eq!(Error::NotOpen("x".into()).exit_code(), 75);
        assert_eq!(Error::Internal("x".into()).exit_code(), 70);
    }

    #[test]
    fn invalid_rows_are_all_listed() {
        let e = Error::InvalidRows {
            file: "partners.csv".into(),
            problems: vec![
                RowProblem {
                    row: 2,
                    column: "country".into(),
                    reason: "x".into(),
                },
                RowProblem {
                    row: 7,
                    column: "mct_count".into(),
                    reason: "y".into(),
                },
            ],
        };
        let text = e.to_string();
        assert!(
            text.contains("row 2, column country: x")
                && text.contains("row 7, column mct_count: y")
        );
        assert_eq!(e.exit_code(), 65);
    }
}
