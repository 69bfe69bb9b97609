//! The validated ledger: one Parquet partition per delivery, `ledger/delivery=YYYY-MM/`.
//!
//! A partition holds the delivery's parsed rows (`parsed.parquet`, kept so that judging again
//! is a join, not a re-parse), its judgement (`accepted.parquet`: normalised lines;
//! `rejected.parquet`: raw values with their reason), `_asks.json` (what its rows ask of the
//! roster, rates and program.toml: see [`Asks`]) and `_partition.json`: the SHA-256 of each
//! source file and of what the judgement depended on (roster, rates, program.toml and the
//! earlier partitions, through the previous partition's judgement hash), with digests of the
//! answers those files gave to the rows' questions and of the keys accepted so far.
//! [`update`] brings every delivery up to date, oldest first: an unchanged partition is reused;
//! one whose dependencies changed is judged again: when the answers and the earlier keys are
//! the same (a new month of rates, a renamed partner), by carrying its rows over, since judging
//! them would give the same; when only the roster's answers or the earlier keys changed (a
//! partner joined or left), by difference from its published judgement
//! ([`judge::rejudge`]); otherwise in full from its parsed rows. One whose files changed is
//! parsed again.
//! New partitions are staged and replace the old ones as a whole at commit.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::calendar::Month;
use crate::digest::sha256_bytes;
use crate::error::{Error, Result};
use crate::ingest::extract::{self, Parsed};
use crate::ingest::judge::{self, Asks, Lookups, PriorKeys};
use crate::publish::Staging;

/// Bumped when the partition layout, the parsing or the judging rules change, so old partitions
/// are parsed again. (3: a CR alone ends a CSV row, so kept row numbers may differ. 4: a row
/// with more fields than its header is rejected as `extra_fields`. 5: the metadata records
/// the digests of the partition's own files and is sealed; Excel numbers read to 15
/// significant digits, date-time cells as their date, dates in 1900 … 9999.)
pub const FORMAT: u32 = 5;

pub const PARSED: &str = "parsed.parquet";
pub const ACCEPTED: &str = "accepted.parquet";
pub const REJECTED: &str = "rejected.parquet";
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
    /// SHA-256 of the answers of roster, rates and program.toml to the rows' [`Asks`].
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
    /// SHA-256 of this metadata with the seal left empty.
    #[serde(default)]
    pub seal: String,
}

impl PartitionMeta {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
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

/// How one delivery stands after [`update`].
#[derive(Clone, Debug)]
pub struct Outcome {
    pub meta: PartitionMeta,
    pub month: Month,
    /// Judged by this run (new, changed, or with changed dependencies).
    pub judged: bool,
    /// Parsed from its files by this run.
    pub parsed: bool,
    /// Judged again with the same answers and earlier keys: the rows were carried over.
    pub carried_over: bool,
    /// Judged again by difference from its published judgement (see [`judge::rejudge`]).
    pub by_difference: bool,
    /// The partition folder to read: staged when judged, published otherwise.
    pub dir: PathBuf,
    /// Unknown columns per file, when parsed by this run.
    pub unknown_columns: Vec<(String, Vec<String>)>,
}

impl Outcome {
    pub fn accepted_path(&self) -> PathBuf {
        self.dir.join(ACCEPTED)
    }

    pub fn rejected_path(&self) -> PathBuf {
        self.dir.join(REJECTED)
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

/// Links an immutable partition file into a new partition (a copy where links cannot be made).
fn link(from: &Path, to: &Path) -> Result<()> {
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(|_| ()))
        .map_err(|e| Error::write(to, e))
}

/// Writes `value` as JSON to `dir/name`.
fn write_json(value: &impl Serialize, dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::internal(name, e))?;
    std::fs::write(&path, text).map_err(|e| Error::write(&path, e))
}

fn read_asks(dir: &Path) -> Option<Asks> {
    // (Regular files only: a FIFO planted in the ledger must not block the run.)
    serde_json::from_slice(&crate::source::read(&dir.join(ASKS)).ok()?.bytes).ok()
}

/// The keys digest after a partition that accepted `accepted`: SHA-256 of the previous digest
/// and each accepted (`invoice_number`, `invoice_line`) in order, the number preceded by its
/// length.
fn keys_digest(earlier: Option<&str>, accepted: &DataFrame) -> PolarsResult<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(earlier.unwrap_or("").as_bytes());
    let numbers = accepted.column("invoice_number")?.str()?;
    let lines = accepted.column("invoice_line")?.i64()?;
    for (number, line) in numbers.iter().zip(lines.iter()) {
        let number = number.unwrap_or("").as_bytes();
        hasher.update((number.len() as u64).to_le_bytes());
        hasher.update(number);
        hasher.update(line.unwrap_or(0).to_le_bytes());
    }
    Ok(crate::digest::hex(&hasher.finalize()))
}

fn read_meta(dir: &Path) -> Option<PartitionMeta> {
    let text = crate::source::read(&dir.join(META)).ok()?.bytes;
    let meta: PartitionMeta = serde_json::from_slice(&text).ok()?;
    let complete = [PARSED, ACCEPTED, REJECTED]
        .iter()
        .all(|f| dir.join(f).is_file());
    complete.then_some(meta)
}

fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::write(path, e))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Lz4Raw)
        .finish(df)
        .map_err(|e| Error::write(path, std::io::Error::other(e.to_string())))?;
    Ok(())
}

fn scan(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(PlRefPath::try_from_path(path)?, ScanArgsParquet::default())
}

/// `work` applied to each file by a bounded pool of threads, results in the files' order.
fn per_file<T: Send>(
    paths: &[PathBuf],
    work: impl Fn(&PathBuf) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    crate::pool::map(paths, work)
}

/// SHA-256 of each file of a delivery.
fn hash_files(paths: &[PathBuf]) -> Result<Vec<SourceFile>> {
    per_file(paths, |path| {
        let sha256 = crate::source::digest_file(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(SourceFile {
            name,
            sha256,
            rows: 0,
        })
    })
}

/// Parses a delivery's files into one frame in file-name order.
fn parse_files(input: &DeliveryInput) -> Result<(DataFrame, Vec<extract::FileRead>)> {
    let (frames, reads) = per_file(&input.files, |path| Parsed::read_file(path, input.month))?
        .into_iter()
        .unzip();
    Ok((extract::concat_files(frames)?, reads))
}

/// The accepted keys of the given partitions.
fn accepted_keys(outcomes: &[Outcome]) -> PolarsResult<PriorKeys> {
    let mut keys = PriorKeys::default();
    for o in outcomes {
        keys.add(scan(&o.accepted_path())?)?;
    }
    Ok(keys)
}

/// Brings every delivery in `inputs` up to date, oldest first, staging what it judges.
pub fn update(ctx: &Context, inputs: &[DeliveryInput], staging: &Staging) -> Result<Vec<Outcome>> {
    // Every delivery's files are hashed first, so that what each delivery needs
    // is known before any is judged.
    // (One delivery after another; each one's files by a bounded pool of threads.)
    let found = inputs
        .iter()
        .map(|input| find(ctx.output, input))
        .collect::<Result<Vec<_>>>()?;
    let steps = plan(ctx, inputs, found);
    // The deliveries to judge are read (parsed from their files, or their kept rows) and their
    // verdicts worked out up to `duplicate_line` on a thread of their own, one delivery ahead
    // of the judging, which settles the duplicates against the keys accepted before (a
    // rendezvous channel: at most one prepared delivery waits).
    let ahead: Vec<(&DeliveryInput, Kind)> = inputs
        .iter()
        .zip(&steps)
        .filter(|(_, step)| matches!(step.kind, Kind::JudgeKept | Kind::Parse | Kind::Rejudge))
        .map(|(input, step)| (input, step.kind))
        .collect();
    std::thread::scope(|s| {
        let (ahead_tx, ahead_rx) = std::sync::mpsc::sync_channel(0);
        s.spawn(move || {
            for (input, kind) in ahead {
                let read = read_ahead(ctx, input, kind);
                let failed = read.is_err();
                // The judging stopped (an error of its own): nothing more to read.
                if ahead_tx.send(read).is_err() || failed {
                    break;
                }
            }
        });
        judge_in_order(ctx, inputs, steps, staging, &ahead_rx)
    })
}

/// A delivery's files as found: their SHA-256, and the published partition's metadata.
struct Found {
    files: Vec<SourceFile>,
    existing: Option<PartitionMeta>,
    /// The published partition was parsed from these very files.
    same_files: bool,
}

fn find(output: &Path, input: &DeliveryInput) -> Result<Found> {
    let files = hash_files(&input.files)?;
    let published = output.join(partition_rel(input.month));
    let meta = read_meta(&published);
    if meta.is_none() && std::fs::symlink_metadata(&published).is_ok() {
        warn!(delivery = %input.month, "ledger: the published partition is not trusted (its metadata or a file is missing, unreadable or not a regular file); it is judged again from its delivery");
    }
    let existing = meta
        .filter(|m| m.format == FORMAT)
        .filter(|m| match crate::partition_check::verify(&published, m) {
            None => true,
            Some(why) => {
                warn!(delivery = %input.month, "ledger: the published partition is not trusted ({why}); it is judged again from its delivery");
                false
            }
        });
    let same_files = existing.as_ref().is_some_and(|m| {
        m.files
            .iter()
            .map(|f| (&f.name, &f.sha256))
            .eq(files.iter().map(|f| (&f.name, &f.sha256)))
    });
    Ok(Found {
        files,
        existing,
        same_files,
    })
}

/// What a delivery needs, known before any delivery is judged.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// The published partition's judgement is this run's: reused as it is.
    Reuse,
    /// A dependency changed, but not in anything these rows ask about: carried over when the
    /// keys accepted before are the same, judged again by difference otherwise.
    CarryOrJudge,
    /// Judged again from the kept rows.
    JudgeKept,
    /// Judged again by difference from its earlier judgement: only the rules' answers are the
    /// same (the roster's, or the earlier keys, may differ).
    Rejudge,
    /// Parsed from its files and judged.
    Parse,
}

/// One delivery's step in [`update`].
struct Step {
    found: Found,
    depends: Depends,
    judgement: String,
    /// What the kept rows ask, for a partition whose files are the same.
    kept_asks: Option<Asks>,
    /// The answers to `kept_asks`.
    answers: Option<String>,
    /// The rules' answers to `kept_asks` (see [`Lookups::rules_digest`]).
    rules: Option<String>,
    kind: Kind,
}

/// The judgement each delivery calls for, and what it needs. A judgement hash depends on the
/// delivery's files and on the roster, rates, program.toml and the previous delivery's
/// judgement hash, so the whole chain is known from the files alone.
fn plan(ctx: &Context, inputs: &[DeliveryInput], found: Vec<Found>) -> Vec<Step> {
    let mut previous: Option<String> = None;
    inputs
        .iter()
        .zip(found)
        .map(|(input, found)| {
            let depends = Depends {
                roster: ctx.roster_sha.clone(),
                fx_rates: ctx.fx_sha.clone(),
                program: ctx.program_sha.clone(),
                previous: previous.clone(),
            };
            let identity: Vec<(&str, &str)> = found
                .files
                .iter()
                .map(|f| (f.name.as_str(), f.sha256.as_str()))
                .collect();
            let judgement = sha256_bytes(
                serde_json::to_string(&(FORMAT, input.month.to_string(), &identity, &depends))
                    .expect("serialisable")
                    .as_bytes(),
            );
            previous = Some(judgement.clone());
            // What the rows ask of the lookups is kept with the partition; it is learned again
            // only when the files are parsed again.
            let kept_asks = if found.same_files {
                read_asks(&ctx.output.join(partition_rel(input.month)))
            } else {
                None
            };
            let answers = kept_asks.as_ref().map(|a| ctx.lookups.answers_digest(a));
            let rules = kept_asks.as_ref().map(|a| ctx.lookups.rules_digest(a));
            let kind = match &found.existing {
                Some(meta) if meta.judgement == judgement => Kind::Reuse,
                // (`answers` is known only for a partition whose files are the same.)
                Some(meta) if answers.as_ref() == Some(&meta.answers) => Kind::CarryOrJudge,
                Some(meta) if rules.is_some() && meta.rules_answers == rules => Kind::Rejudge,
                _ if found.same_files => Kind::JudgeKept,
                _ => Kind::Parse,
            };
            Step {
                found,
                depends,
                judgement,
                kept_asks,
                answers,
                rules,
                kind,
            }
        })
        .collect()
}

/// A delivery to judge, read and prepared ahead of the judging.
enum Ahead {
    /// Its rows, parsed or kept, with their verdicts up to `duplicate_line`.
    Rows {
        parsed: DataFrame,
        /// Per file, when the files were parsed (rather than the kept rows read).
        reads: Option<Vec<extract::FileRead>>,
        /// What the rows ask, when they were parsed.
        asks: Option<Asks>,
        prepared: judge::Prepared,
    },
    /// Its published judgement, to be judged again by difference.
    Again(Box<judge::Again>),
}

/// Reads a delivery to judge (`kind`): its files, its kept rows, or its published judgement
/// and what changed since; and works out what needs no earlier key.
fn read_ahead(ctx: &Context, input: &DeliveryInput, kind: Kind) -> Result<Ahead> {
    let started = Instant::now();
    let published = ctx.output.join(partition_rel(input.month));
    if kind != Kind::Parse && kind != Kind::JudgeKept {
        let earlier = judge::Earlier {
            accepted: scan(&published.join(ACCEPTED))?.collect()?,
            rejected: scan(&published.join(REJECTED))?.collect()?,
        };
        let again = judge::prepare_again(scan(&published.join(PARSED))?, earlier, ctx.lookups)?;
        debug!(delivery = %input.month, ms = started.elapsed().as_millis() as u64, "ledger: differences prepared");
        // (None: the rows cannot be placed by file and row; judged in full below.)
        if let Some(again) = again {
            return Ok(Ahead::Again(Box::new(again)));
        }
    }
    let (parsed, reads, asks) = if kind == Kind::Parse {
        let (parsed, reads) = parse_files(input)?;
        let asks = Asks::of(&parsed)?;
        (parsed, Some(reads), Some(asks))
    } else {
        (scan(&published.join(PARSED))?.collect()?, None, None)
    };
    debug!(delivery = %input.month, ms = started.elapsed().as_millis() as u64, "ledger: rows read");
    let prepared = judge::prepare(&parsed, ctx.lookups)?;
    debug!(delivery = %input.month, ms = started.elapsed().as_millis() as u64, "ledger: verdicts prepared");
    Ok(Ahead::Rows {
        parsed,
        reads,
        asks,
        prepared,
    })
}

fn judge_in_order(
    ctx: &Context,
    inputs: &[DeliveryInput],
    steps: Vec<Step>,
    staging: &Staging,
    ahead_rx: &std::sync::mpsc::Receiver<Result<Ahead>>,
) -> Result<Vec<Outcome>> {
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut earlier_keys: Option<String> = None;
    // Keys accepted by the deliveries so far, loaded when a delivery needs judging.
    let mut prior: Option<PriorKeys> = None;
    let progress = crate::logging::progress(inputs.len() as u64, "deliveries");
    // A judged partition's files are written on a thread of their own while the next delivery
    // is judged, which needs only the keys (kept in memory); at most one partition is being
    // written at a time.
    std::thread::scope(|scope| -> Result<Vec<Outcome>> {
        let mut writing: Option<Writing<'_>> = None;
        let judged = (|| -> Result<Vec<Outcome>> {
            for (input, step) in inputs.iter().zip(steps) {
                progress.set_message(input.month.to_string());
                let started = Instant::now();
                let Step {
                    found:
                        Found {
                            mut files,
                            existing,
                            same_files: _,
                        },
                    depends,
                    judgement,
                    kept_asks,
                    answers,
                    rules,
                    kind,
                } = step;
                let published = ctx.output.join(partition_rel(input.month));

                let outcome = match (kind, existing) {
                    (Kind::Reuse, Some(meta)) => {
                        let outcome = Outcome {
                            meta,
                            month: input.month,
                            judged: false,
                            parsed: false,
                            carried_over: false,
                            by_difference: false,
                            dir: published,
                            unknown_columns: Vec::new(),
                        };
                        if let Some(prior) = prior.as_mut() {
                            prior.add(scan(&outcome.accepted_path())?)?;
                        }
                        outcome
                    }
                    (Kind::CarryOrJudge, Some(mut meta)) if meta.earlier_keys == earlier_keys => {
                        // A dependency changed, but not in anything these rows ask about (a new month
                        // of rates, a renamed partner, another requirement), and the earlier keys are
                        // the same: judging again gives the same rows, so they are carried over.
                        let dir = staging.path(&partition_rel(input.month))?;
                        std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
                        for name in [PARSED, ACCEPTED, REJECTED, ASKS] {
                            link(&published.join(name), &dir.join(name))?;
                        }
                        meta.depends = depends;
                        meta.judgement = judgement.clone();
                        meta.rules_answers = rules;
                        // The same files as the published partition's, checked by `find`.
                        let own = Some(meta.own_files.clone());
                        crate::partition_check::seal(&dir, &mut meta, own)?;
                        write_json(&meta, &dir, META)?;
                        let outcome = Outcome {
                            meta,
                            month: input.month,
                            judged: true,
                            parsed: false,
                            carried_over: true,
                            by_difference: false,
                            dir,
                            unknown_columns: Vec::new(),
                        };
                        if let Some(prior) = prior.as_mut() {
                            prior.add(scan(&outcome.accepted_path())?)?;
                        }
                        outcome
                    }
                    (kind, existing) => {
                        let dir = staging.path(&partition_rel(input.month))?;
                        std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
                        if prior.is_none() {
                            prior = Some(accepted_keys(&outcomes)?);
                        }
                        let prior = prior.as_mut().expect("loaded above");
                        let mut unknown_columns = Vec::new();
                        let kept_rows = |files: &mut Vec<SourceFile>| -> Result<()> {
                            link(&published.join(PARSED), &dir.join(PARSED))?;
                            for (f, old) in files
                                .iter_mut()
                                .zip(&existing.as_ref().expect("same files").files)
                            {
                                f.rows = old.rows;
                            }
                            Ok(())
                        };
                        let ahead = match kind {
                            Kind::JudgeKept | Kind::Parse | Kind::Rejudge => ahead_rx
                                .recv()
                                .map_err(|e| Error::internal("reading deliveries", e))??,
                            // The answers are the same but the earlier keys changed: judged
                            // again by difference, here.
                            _ => read_ahead(ctx, input, Kind::Rejudge)?,
                        };
                        let mut by_difference = false;
                        let (mut judged, asks, keeping, newly_parsed) = match ahead {
                            Ahead::Rows {
                                parsed: parsed_df,
                                reads,
                                asks,
                                prepared,
                            } => {
                                let newly_parsed = match reads {
                                    Some(reads) => {
                                        for (f, read) in files.iter_mut().zip(reads) {
                                            f.rows = read.rows;
                                            // The digest recorded is of the bytes parsed.
                                            if f.sha256 != read.sha256 {
                                                warn!(delivery = %input.month, file = %f.name, "changed while this run read it: the digest of the rows parsed is kept, and the next run judges it again");
                                                f.sha256 = read.sha256.clone();
                                            }
                                            if !read.unknown_columns.is_empty() {
                                                unknown_columns
                                                    .push((read.name, read.unknown_columns));
                                            }
                                        }
                                        true
                                    }
                                    None => {
                                        kept_rows(&mut files)?;
                                        false
                                    }
                                };
                                // Newly parsed rows are kept (on the other core) while they
                                // are judged.
                                let keeping = newly_parsed.then(|| {
                                    let mut df = parsed_df.clone();
                                    let path = dir.join(PARSED);
                                    scope.spawn(move || write_parquet(&mut df, &path))
                                });
                                let judged =
                                    judge::settle(&parsed_df, prepared, input.month, prior)?;
                                // (Kept rows whose asks could not be read are asked again.)
                                let asks = match asks.or(kept_asks) {
                                    Some(asks) => asks,
                                    None => Asks::of(&parsed_df)?,
                                };
                                (judged, asks, keeping, newly_parsed)
                            }
                            // Only the roster's answers or the earlier keys changed: judged
                            // again by difference from the published judgement.
                            Ahead::Again(again) => {
                                kept_rows(&mut files)?;
                                let judged;
                                (judged, by_difference) =
                                    judge::settle_again(*again, input.month, ctx.lookups, prior)?;
                                let asks = kept_asks.expect("same files come with their asks");
                                (judged, asks, None, false)
                            }
                        };
                        write_json(&asks, &dir, ASKS)?;
                        debug!(delivery = %input.month, ms = started.elapsed().as_millis() as u64, "ledger: judged");
                        let keys = keys_digest(earlier_keys.as_deref(), &judged.accepted)?;
                        prior.add_judged(std::mem::take(&mut judged.keys))?;
                        let mut rejected = BTreeMap::new();
                        for reason in judged.rejected.column("reason")?.str()?.iter().flatten() {
                            *rejected.entry(reason.to_string()).or_insert(0u64) += 1;
                        }
                        let accepted = judged.accepted.height() as u64;
                        let meta = PartitionMeta {
                            format: FORMAT,
                            delivery: input.month.to_string(),
                            read: accepted + rejected.values().sum::<u64>(),
                            accepted,
                            rejected,
                            files,
                            depends,
                            judgement: judgement.clone(),
                            answers: answers.unwrap_or_else(|| ctx.lookups.answers_digest(&asks)),
                            rules_answers: Some(
                                rules.unwrap_or_else(|| ctx.lookups.rules_digest(&asks)),
                            ),
                            earlier_keys: earlier_keys.clone(),
                            keys,
                            own_files: BTreeMap::new(),
                            seal: String::new(),
                        };
                        if let Some(previous) = writing.take() {
                            finish(previous)?;
                        }
                        let to_write = (keeping, judged, meta.clone(), dir.clone());
                        writing = Some(scope.spawn(move || {
                            let (keeping, mut judged, mut meta, dir) = to_write;
                            if let Some(keeping) = keeping {
                                finish(keeping)?;
                            }
                            write_parquet(&mut judged.accepted, &dir.join(ACCEPTED))?;
                            write_parquet(&mut judged.rejected, &dir.join(REJECTED))?;
                            crate::partition_check::seal(&dir, &mut meta, None)?;
                            write_json(&meta, &dir, META)
                        }));
                        Outcome {
                            meta,
                            month: input.month,
                            judged: true,
                            parsed: newly_parsed,
                            carried_over: false,
                            by_difference,
                            dir,
                            unknown_columns,
                        }
                    }
                };
                info!(
                    delivery = %input.month,
                    judged = outcome.judged,
                    parsed = outcome.parsed,
                    read = outcome.meta.read,
                    accepted = outcome.meta.accepted,
                    rejected = outcome.meta.rejected_total(),
                    ms = started.elapsed().as_millis() as u64,
                    "ledger: delivery {}",
                    if outcome.parsed {
                        "parsed and judged"
                    } else if outcome.carried_over {
                        "judged again, same answers: rows carried over"
                    } else if outcome.by_difference {
                        "judged again by difference"
                    } else if outcome.judged {
                        "judged again from kept rows"
                    } else {
                        "unchanged, reused"
                    }
                );
                debug!(delivery = %input.month, rejected = ?outcome.meta.rejected, "reject reasons");
                earlier_keys = Some(outcome.meta.keys.clone());
                outcomes.push(outcome);
                progress.inc(1);
            }
            Ok(outcomes)
        })();
        // The last partition's files; a write that failed is reported even when judging
        // failed first.
        let written = writing.take().map_or(Ok(()), finish);
        progress.finish_and_clear();
        match (judged, written) {
            (Ok(outcomes), Ok(())) => Ok(outcomes),
            (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
            (Err(e), Err(w)) => {
                warn!(error = %w, "writing the ledger partition judged before the failure");
                Err(e)
            }
        }
    })
}

/// A partition's files being written on a thread of their own.
type Writing<'scope> = std::thread::ScopedJoinHandle<'scope, Result<()>>;

/// Waits for a write; a panic in it is an internal error, not a panic of the run.
fn finish(writing: Writing<'_>) -> Result<()> {
    writing
        .join()
        .map_err(|_| Error::internal("writing a ledger partition", "the writer panicked"))?
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
