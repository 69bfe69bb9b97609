//! The validated ledger: one Parquet partition per delivery, `ledger/delivery=YYYY-MM/`
//! (docs/rules.md §4).
//!
//! A partition holds the delivery's parsed rows (`parsed.parquet`, kept so that judging again
//! is a join, not a re-parse), its judgement (`accepted.parquet`: normalised lines;
//! `rejected.parquet`: raw values with their reason), its accepted lines' sums per partner,
//! category and month (`sums.parquet`, what the KPIs are computed from), `_asks.json` (what
//! its rows look up in the roster, rates and program.toml: see
//! [`crate::ingest::judge::LookupKeys`]) and
//! `_partition.json`: the SHA-256 of each source file and of what the judgement depended on
//! (roster, rates, program.toml and the earlier partitions, through the previous partition's
//! judgement hash), with digests of the answers those files gave to the rows' questions and of
//! the keys accepted so far.
//!
//! [`update`] brings every delivery up to date, oldest first: an unchanged partition is reused;
//! one whose dependencies changed is judged again: when the answers and the earlier keys are
//! the same (a new month of rates, a renamed partner), by carrying its rows over, since judging
//! them would give the same; when only the roster's answers or the earlier keys changed (a
//! partner joined or left), by difference from its published judgement
//! ([`crate::ingest::judge::rejudge`]); otherwise in full from its parsed rows. One whose files
//! changed is parsed again. New partitions are staged and replace the old ones as a whole at
//! commit.
//!
//! This module holds the partition's metadata and what the ledger answers to the rest of the
//! program; `plan` decides what each delivery calls for (a pure function), `judging` carries
//! the plan out, `threads` holds the read-ahead and writer threads, and `partition` the files
//! of one partition on disk.

mod judging;
mod pages;
mod partition;
mod plan;
mod threads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::calendar::Month;
use crate::digest::sha256_bytes;
use crate::error::{Error, Result};
use crate::ingest::extract;
use crate::ingest::judge::Lookups;
use crate::publish::Staging;
use partition::scan;
use plan::Kind;

/// Bumped when the partition layout, the parsing or the judging rules change, so old partitions
/// are parsed again. (3: a CR alone ends a CSV row, so kept row numbers may differ. 4: a row
/// with more fields than its header is rejected as `extra_fields`. 5: the metadata records
/// the digests of the partition's own files and is sealed; Excel numbers read to 15
/// significant digits, date-time cells as their date, dates in 1900 … 9999. 6: the
/// partition keeps its month sums, `sums.parquet`. 7: amounts are exact decimals.) Not
/// bumped when only the Parquet files' row groups change: a partition holds the same rows
/// either way and is reused as it is (docs/ledger.md).
pub const FORMAT: u32 = 7;

pub const PARSED: &str = "parsed.parquet";
pub const ACCEPTED: &str = "accepted.parquet";
pub const REJECTED: &str = "rejected.parquet";
pub const SUMS: &str = "sums.parquet";
pub const META: &str = "_partition.json";
pub const ASKS: &str = "_asks.json";

pub fn partition_rel(delivery: Month) -> String {
    format!("ledger/delivery={delivery}")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub sha256: String,
    pub rows: u64,
    /// The BLAKE3 of the same bytes, which a later run checks the file by (about four times
    /// faster than SHA-256): when it matches, the SHA-256 recorded here is the file's. Absent
    /// in partitions written before it was kept (their files are checked by SHA-256), and
    /// then not written, so that their seal holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

/// What a judgement depended on, by SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depends {
    pub roster: String,
    pub fx_rates: String,
    pub program: String,
    /// The judgement hash of the previous delivery's partition.
    pub previous: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub format: u32,
    pub delivery: String,
    pub files: Vec<SourceFile>,
    pub depends: Depends,
    /// SHA-256 of format, delivery, files and dependencies: equal means "same judgement".
    pub judgement: String,
    /// SHA-256 of the answers of roster, rates and program.toml to the rows'
    /// [`crate::ingest::judge::LookupKeys`].
    pub answers: String,
    /// SHA-256 of the answers of rates and program.toml alone (see
    /// [`Lookups::rules_digest`]): while they hold, the partition is judged again by
    /// difference. Absent in partitions written before it was kept.
    #[serde(default)]
    pub rules_answers: Option<String>,
    /// `keys` of the previous partition: the keys accepted before this one.
    pub earlier_keys: Option<String>,
    /// SHA-256 of the keys accepted by this and every earlier partition, in order.
    pub keys: String,
    pub read: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    /// SHA-256 of each of the partition's own files (see [`crate::partition_check`]).
    #[serde(default)]
    pub own_files: BTreeMap<String, String>,
    /// BLAKE3 of each of the partition's own files, which a later run checks them by. Absent
    /// in partitions written before it was kept (they are checked by `own_files`), and then
    /// not written, so that their seal holds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub own_checks: BTreeMap<String, String>,
    /// SHA-256 of this metadata with the seal left empty.
    #[serde(default)]
    pub seal: String,
}

#[cfg(test)]
impl PartitionMeta {
    /// The metadata of an empty 2026-09 partition of this format, depending on nothing in
    /// particular and not sealed: what the tests start from.
    pub(crate) fn example() -> PartitionMeta {
        PartitionMeta {
            format: FORMAT,
            delivery: "2026-09".into(),
            files: Vec::new(),
            depends: Depends {
                roster: "roster".into(),
                fx_rates: "fx".into(),
                program: "program".into(),
                previous: None,
            },
            judgement: "judgement".into(),
            answers: "answers".into(),
            rules_answers: None,
            earlier_keys: None,
            keys: "keys".into(),
            read: 0,
            accepted: 0,
            rejected: BTreeMap::new(),
            own_files: BTreeMap::new(),
            own_checks: BTreeMap::new(),
            seal: String::new(),
        }
    }
}

impl PartitionMeta {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// The share of the delivery's rows that were rejected, 0 when it has no row: what the
    /// reject-rate gate compares with its limit (docs/rules.md §4.6).
    pub fn reject_share(&self) -> f64 {
        if self.read == 0 {
            0.0
        } else {
            self.rejected_total() as f64 / self.read as f64
        }
    }

    /// SHA-256 of what decides the partition's rows: the format, the delivery, its files, the
    /// answers its rows got and the keys accepted before it. Judging the same files with the
    /// same answers after the same keys gives the same rows (what carrying rows over relies
    /// on), so an equal digest means the same accepted and rejected rows.
    pub fn rows_digest(&self) -> String {
        let files: Vec<(&str, &str)> = self
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.sha256.as_str()))
            .collect();
        let identity = (
            self.format,
            &self.delivery,
            files,
            &self.answers,
            &self.earlier_keys,
        );
        sha256_bytes(
            serde_json::to_string(&identity)
                .unwrap_or_default()
                .as_bytes(),
        )
    }
}

/// A delivery found in `input/extracts/`.
#[derive(Clone, Debug)]
pub struct DeliveryInput {
    pub month: Month,
    pub folder: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Lists the deliveries up to `last` (inclusive), oldest first, with their files. Folders not
/// named `YYYY-MM` and files other than CSV and XLSX are logged and ignored.
pub fn deliveries(input: &Path, last: Month) -> Result<Vec<DeliveryInput>> {
    let root = input.join("extracts");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(_) => return Ok(out),
    };
    for entry in entries {
        let path = entry
            .map_err(|e| Error::Unreadable {
                file: root.clone(),
                reason: e.to_string(),
            })?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let month = match name.parse::<Month>() {
            Ok(month) if path.is_dir() => month,
            _ => {
                info!(path = %path.display(), "ignored: not a delivery folder named YYYY-MM");
                continue;
            }
        };
        if month > last {
            continue;
        }
        let (files, ignored) = extract::list_files(&path)?;
        for f in ignored {
            info!(path = %f.display(), "ignored: only files ending in .csv or .xlsx are read");
        }
        out.push(DeliveryInput {
            month,
            folder: path,
            files,
        });
    }
    out.sort_by_key(|d| d.month);
    Ok(out)
}

/// How a delivery was brought up to date by [`update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Unchanged: the published partition is reused.
    Reused,
    /// Judged again with the same answers and earlier keys: the rows were carried over.
    CarriedOver,
    /// Judged again by difference from its published judgement (see [`crate::ingest::judge::rejudge`]).
    ByDifference,
    /// Judged again by difference, and no row's verdict could change: the published files were
    /// carried over.
    ByDifferenceUnchanged,
    /// Judged again in full from its kept rows.
    JudgedKept,
    /// Parsed from its files and judged.
    Parsed,
}

impl Handling {
    /// How the log says it.
    pub fn describe(self) -> &'static str {
        match self {
            Handling::Parsed => "parsed and judged",
            Handling::CarriedOver => "judged again, same answers: rows carried over",
            Handling::ByDifference => "judged again by difference",
            Handling::ByDifferenceUnchanged => {
                "judged again by difference, no row changed: files carried over"
            }
            Handling::JudgedKept => "judged again from kept rows",
            Handling::Reused => "unchanged, reused",
        }
    }
}

/// How one delivery stands after [`update`].
#[derive(Clone, Debug)]
pub struct Outcome {
    pub meta: PartitionMeta,
    pub month: Month,
    pub handling: Handling,
    /// The partition folder to read: staged when judged, published otherwise.
    pub dir: PathBuf,
    /// Unknown columns per file, when parsed by this run.
    pub unknown_columns: Vec<(String, Vec<String>)>,
}

impl Outcome {
    /// Judged by this run (new, changed, or with changed dependencies).
    pub fn judged(&self) -> bool {
        self.handling != Handling::Reused
    }

    /// Parsed from its files by this run.
    pub fn parsed(&self) -> bool {
        self.handling == Handling::Parsed
    }

    pub fn accepted_path(&self) -> PathBuf {
        self.dir.join(ACCEPTED)
    }

    pub fn rejected_path(&self) -> PathBuf {
        self.dir.join(REJECTED)
    }

    /// The partition's sums per partner, category and month ([`crate::kpi::month_sums`]).
    pub fn sums_path(&self) -> PathBuf {
        self.dir.join(SUMS)
    }
}

/// The inputs every judgement depends on.
pub struct Context<'a> {
    pub output: &'a Path,
    pub lookups: &'a Lookups,
    pub roster_sha: String,
    pub fx_sha: String,
    pub program_sha: String,
}

/// Brings every delivery in `inputs` up to date, oldest first, staging what it judges.
pub fn update(ctx: &Context, inputs: &[DeliveryInput], staging: &Staging) -> Result<Vec<Outcome>> {
    // Every delivery's files are hashed first, so that what each delivery needs
    // is known before any is judged. (The deliveries by a bounded pool of threads, each one's
    // files by another: hashing is most of a monthly run's listing.)
    let started = std::time::Instant::now();
    let found = crate::pool::map(inputs, |input| {
        let found = partition::find(ctx.output, input)?;
        let kept = partition::kept_asks(ctx, input.month, &found);
        Ok((input.month, found, kept))
    })?;
    debug!(
        deliveries = inputs.len(),
        ms = started.elapsed().as_millis() as u64,
        "ledger: deliveries listed and partitions checked"
    );
    // Where an input may change between its listing and its parsing (the tests stop here).
    crate::publish::failpoint("stop-after-listing")?;
    let sources = Depends {
        roster: ctx.roster_sha.clone(),
        fx_rates: ctx.fx_sha.clone(),
        program: ctx.program_sha.clone(),
        previous: None,
    };
    let mut steps = plan::plan(&sources, found);
    plan::read_ahead_carry_overs(&mut steps);
    // The deliveries to judge are read (parsed from their files, or their kept rows, or their
    // published judgement to judge again by difference) and their verdicts worked out up to
    // `duplicate_line` on a thread of their own, one delivery ahead of the judging, which
    // settles the duplicates against the keys accepted before.
    let ahead: Vec<(&DeliveryInput, Kind)> = inputs
        .iter()
        .zip(&steps)
        .filter(|(_, step)| step.read_ahead)
        .map(|(input, step)| (input, step.kind))
        .collect();
    // Set while the carry-overs read ahead hold after all (the keys before them are the same):
    // the carry-overs after them are not read ahead then, until a delivery is judged.
    let holding = std::sync::atomic::AtomicBool::new(false);
    threads::with_read_ahead(
        ahead,
        |(input, kind)| judging::read_planned(ctx, input, kind, &holding),
        |ahead, gate| judging::judge_in_order(ctx, inputs, steps, staging, ahead, gate, &holding),
    )
}

/// Partitions in the published ledger up to `last` whose delivery is no longer in the input.
pub fn stale_partitions(output: &Path, inputs: &[DeliveryInput], last: Month) -> Vec<Month> {
    let Ok(entries) = std::fs::read_dir(output.join("ledger")) else {
        return Vec::new();
    };
    let mut stale: Vec<Month> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("delivery=")
                .and_then(|m| m.parse::<Month>().ok())
        })
        .filter(|m| *m <= last && !inputs.iter().any(|d| d.month == *m))
        .collect();
    stale.sort();
    stale
}

/// All accepted lines of the given partitions, lazily.
pub fn scan_accepted(outcomes: &[Outcome]) -> PolarsResult<LazyFrame> {
    let frames = outcomes
        .iter()
        .map(|o| scan(&o.accepted_path()))
        .collect::<PolarsResult<Vec<_>>>()?;
    concat(frames, UnionArgs::default())
}

/// The month sums of one partition.
pub fn scan_sums(outcome: &Outcome) -> PolarsResult<LazyFrame> {
    scan(&outcome.sums_path())
}

/// The rejected rows of one partition.
pub fn read_rejected(outcome: &Outcome) -> PolarsResult<DataFrame> {
    scan(&outcome.rejected_path())?.collect()
}

/// The rejected rows of one partition with the given reason.
pub fn read_rejected_where(outcome: &Outcome, reason: &str) -> PolarsResult<DataFrame> {
    scan(&outcome.rejected_path())?
        .filter(col("reason").eq(lit(reason)))
        .collect()
}
