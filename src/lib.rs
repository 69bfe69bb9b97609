//! kpi-refresh: the monthly KPI refresh of a Learning Partner Program.
//!
//! Stages, in the order a refresh runs them: [`config`] (the checked run configuration and
//! program rules), [`ingest`] (roster, rates and extracts read and judged), [`ledger`] (the
//! Parquet ledger), [`kpi`] (window KPIs in SQL), [`renewal`] (eligibility and renewal
//! decisions), [`watch`] (the anniversary watch), [`directory`] (the directory submission),
//! [`changes`] (what changed since the previous refresh), [`feeds`] (the health of the
//! deliveries), [`report`] (CSV files, workbook,
//! manifest) and [`publish`] (lock, staging and atomic commit). [`commands`] wires them into
//! the command line of [`cli`]. Beneath the stages that use them: [`state`] (the state files a
//! refresh leaves for the next; it knows the levels of [`config`], nothing of the stages that
//! read or write its files), [`csv_file`] (CSV text and escaping), [`exact`] (exact decimal
//! amounts and their rounding), [`calendar`], [`source`] and [`error`].

pub mod calendar;
pub mod changes;
pub mod cli;
pub mod commands;
pub mod config;
pub mod csv_file;
pub mod digest;
pub mod directory;
pub mod error;
pub mod exact;
pub mod feeds;
pub mod gaps;
pub mod ingest;
pub mod kpi;
pub mod ledger;
pub mod logging;
pub mod partition_check;
pub mod pool;
pub mod publish;
pub mod publish_guard;
pub mod published;
pub mod renewal;
pub mod report;
pub mod source;
pub mod state;
pub mod watch;
pub mod why;
