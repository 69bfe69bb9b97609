//! Ingestion: reading the roster, rates and invoice extracts, and judging every extract row.
//!
//! [`table`] reads CSV and XLSX files as text (a row's [`cells`] in one string); [`roster`]
//! and [`fx`] check master data; [`extract`] parses delivery files into rows with the reasons
//! a row earns by itself;
//! [`judge`] settles the rest of docs/rules.md §3 with joins against this run's lookups.

pub mod cells;
pub mod extract;
pub mod fx;
pub mod judge;
pub mod roster;
pub mod table;
