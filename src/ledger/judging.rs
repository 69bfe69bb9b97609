//! Carrying out the plan, oldest delivery first: reusing, carrying over or judging each
//! delivery (with the rows read ahead, or its published judgement for judging by difference),
//! and recording each judged partition's metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use polars::prelude::*;
use tracing::{debug, info, warn};

use super::partition::{
    kept_rows, keys_digest, link_sealed, parse_files, scan, write_json, JUDGED_FILES,
};
use super::plan::{self, Kind, Step};
use super::threads::{next_read, Ahead, Gate, Keeping, Permit, Writer};
use super::{
    partition_rel, Context, DeliveryInput, Handling, Outcome, PartitionMeta, SourceFile, ACCEPTED,
    ASKS, FORMAT, PARSED, REJECTED,
};
use crate::calendar::Month;
use crate::digest::Digests;
use crate::error::{Error, Result};
use crate::ingest::extract;
use crate::ingest::judge::{self, Earlier, Judged, LookupKeys, PriorKeys};
use crate::logging::frame_mib;
use crate::partition_check::recorded;
use crate::publish::Staging;

/// A delivery to judge, read and prepared ahead of the judging.
pub(super) enum ReadAhead {
    /// Its rows, parsed or kept, with their verdicts up to `duplicate_line`.
    Rows {
        parsed: DataFrame,
        /// Per file, when the files were parsed (rather than the kept rows read).
        reads: Option<Vec<extract::FileRead>>,
        /// What the rows ask, when they were parsed.
        asks: Option<LookupKeys>,
        verdicts: judge::Verdicts,
    },
    /// Its published judgement, to be judged again by difference.
    ByDifference(Box<judge::ByDifference>),
}

/// Reads a delivery ahead for the step planned as `kind`: as [`read_ahead`] does, and a
/// carry-over as to be judged again by difference, in case the earlier keys change. None for
/// a carry-over while carry-overs hold (`holding`), or when its read failed: the carry-over
/// needs none of it, and if it is judged again after all, the delivery is read then (where a
/// failure is the run's).
pub(super) fn read_planned(
    ctx: &Context,
    input: &DeliveryInput,
    kind: Kind,
    holding: &AtomicBool,
) -> Result<Option<ReadAhead>> {
    match kind {
        Kind::CarryOver if holding.load(Ordering::Relaxed) => Ok(None),
        Kind::CarryOver => match read_ahead(ctx, input, Kind::ByDifference) {
            Ok(read) => Ok(Some(read)),
            Err(e) => {
                debug!(delivery = %input.month, error = %e, "ledger: not read ahead");
                Ok(None)
            }
        },
        kind => read_ahead(ctx, input, kind).map(Some),
    }
}

/// Reads a delivery to judge (`kind`): its files, its kept rows, or its published judgement
/// and what changed since; and works out what needs no earlier key.
pub(super) fn read_ahead(ctx: &Context, input: &DeliveryInput, kind: Kind) -> Result<ReadAhead> {
    let started = Instant::now();
    let published = ctx.output.join(partition_rel(input.month));
    if kind != Kind::Parse && kind != Kind::JudgeKept {
        let earlier = judge::EarlierJudgement {
            accepted: scan(&published.join(ACCEPTED))?.collect()?,
            rejected: scan(&published.join(REJECTED))?.collect()?,
        };
        let again = judge::prepare_again(scan(&published.join(PARSED))?, earlier, ctx.lookups)?;
        debug!(delivery = %input.month, ms = started.elapsed().as_millis() as u64, "ledger: differences prepared");
        // (None: the rows cannot be placed by file and row; judged in full below.)
        if let Some(again) = again {
            return Ok(ReadAhead::ByDifference(Box::new(again)));
        }
    }
    let (parsed, reads, asks) = if kind == Kind::Parse {
        let (parsed, reads) = parse_files(input)?;
        let asks = LookupKeys::of(&parsed)?;
        (parsed, Some(reads), Some(asks))
    } else {
        (scan(&published.join(PARSED))?.collect()?, None, None)
    };
    debug!(delivery = %input.month, ms = started.elapsed().as_millis() as u64, mib = frame_mib(&parsed), "ledger: rows read");
    let verdicts = judge::prepare(&parsed, ctx.lookups)?;
    debug!(delivery = %input.month, ms = started.elapsed().as_millis() as u64, mib = verdicts.mib(), "ledger: verdicts prepared");
    Ok(ReadAhead::Rows {
        parsed,
        reads,
        asks,
        verdicts,
    })
}

/// Carries out `steps` (one per delivery of `inputs`), taking the deliveries read ahead from
/// `ahead`. A judged partition's files are written on a thread of their own while the next
/// delivery is judged; at most one partition is being written at a time.
pub(super) fn judge_in_order(
    ctx: &Context,
    inputs: &[DeliveryInput],
    steps: Vec<Step>,
    staging: &Staging,
    ahead: &Ahead<Option<ReadAhead>>,
    gate: &Arc<Gate>,
    holding: &AtomicBool,
) -> Result<Vec<Outcome>> {
    let progress = crate::logging::progress(inputs.len() as u64, "deliveries");
    // When a delivery is to be judged, the keys of the deliveries before it are gathered as
    // they are passed, while its rows are read ahead on the other thread.
    let judging = steps
        .iter()
        .any(|s| !matches!(s.kind, Kind::Reuse | Kind::CarryOver));
    // After the last delivery that may need them, the earlier keys are let go.
    let last_keyed = plan::last_keyed(steps.iter().map(|s| s.kind));
    std::thread::scope(|scope| -> Result<Vec<Outcome>> {
        let mut writer = Writer::new(scope);
        let mut ledger = InOrder {
            ctx,
            staging,
            outcomes: Vec::new(),
            earlier_keys: None,
            prior: judging.then(PriorKeys::default),
            last_keyed,
            being_written: None,
            holding,
            gate,
        };
        let judged = (|| -> Result<()> {
            for (input, step) in inputs.iter().zip(steps) {
                progress.set_message(input.month.to_string());
                ledger.next(input, step, ahead, &mut writer)?;
                progress.inc(1);
            }
            Ok(())
        })();
        if let Some((keys, bytes)) = ledger.prior.as_ref().map(PriorKeys::size) {
            debug!(
                keys,
                mib = bytes >> 20,
                "ledger: earlier keys held at the end"
            );
        }
        // The last partition's files; a write that failed is reported even when judging
        // failed first.
        let written = writer.finish().map(|sealed| ledger.sealed(sealed));
        progress.finish_and_clear();
        match (judged, written) {
            (Ok(()), Ok(())) => Ok(ledger.outcomes),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(e), Err(w)) => {
                warn!(error = %w, "writing the ledger partition judged before the failure");
                Err(e)
            }
        }
    })
}

/// The ledger as brought up to date so far.
struct InOrder<'a> {
    ctx: &'a Context<'a>,
    staging: &'a Staging,
    outcomes: Vec<Outcome>,
    /// The digest of the keys accepted by the deliveries so far.
    earlier_keys: Option<String>,
    /// Keys accepted by the deliveries so far: gathered from the start when the plan judges
    /// a delivery, else loaded when one turns out to need judging; taken by the last
    /// delivery that may need them, which lets them go once it has looked its keys up.
    prior: Option<PriorKeys>,
    /// Where in the plan the last delivery is that may look earlier keys up (every later one
    /// is reused; see [`plan::last_keyed`]): none after it may ask for them (loading them anew
    /// would read partitions still being written).
    last_keyed: Option<usize>,
    /// Which of `outcomes` is being written (its metadata is sealed once it is).
    being_written: Option<usize>,
    /// Whether the carry-overs read ahead hold (see [`read_planned`]).
    holding: &'a AtomicBool,
    /// Room for the deliveries held at once (see [`Gate`]).
    gate: &'a Arc<Gate>,
}

/// A delivery's rows judged by this run, before its partition is written.
struct Settled<'scope> {
    judged: Judged,
    asks: LookupKeys,
    /// The newly parsed rows being written.
    keeping: Option<Keeping<'scope>>,
    handling: Handling,
}

impl InOrder<'_> {
    /// Records the sealed metadata of the partition that was being written, once it is.
    fn sealed(&mut self, sealed: Option<PartitionMeta>) {
        if let (Some(meta), Some(at)) = (sealed, self.being_written.take()) {
            self.outcomes[at].meta = meta;
        }
    }

    /// Brings one delivery up to date.
    fn next<'scope>(
        &mut self,
        input: &DeliveryInput,
        step: Step,
        ahead: &Ahead<Option<ReadAhead>>,
        writer: &mut Writer<'scope, '_>,
    ) -> Result<()> {
        let started = Instant::now();
        let published = self.ctx.output.join(partition_rel(input.month));
        let outcome = match step.kind_after(self.earlier_keys.as_deref()) {
            Kind::Reuse => self.reuse(step, published)?,
            Kind::CarryOver => {
                if step.read_ahead {
                    // (Read ahead in case the earlier keys changed; they did not, so the
                    // carry-overs after it are not read ahead, until a delivery is judged.)
                    self.holding.store(true, Ordering::Relaxed);
                    next_read(ahead)?;
                }
                self.carry_over(step, &published)?
            }
            kind => {
                self.holding.store(false, Ordering::Relaxed);
                let (ahead, mut permit) = if step.read_ahead {
                    let (read, permit) = next_read(ahead)?;
                    (read, Some(permit))
                } else {
                    (None, None)
                };
                let read = match ahead {
                    Some(read) => Ok(read),
                    // The answers are the same but the earlier keys changed, and the delivery
                    // was not read ahead: judged again by difference, read here (taking room
                    // as a delivery read ahead does).
                    None => {
                        permit = self.gate.enter();
                        read_ahead(self.ctx, input, kind)
                    }
                };
                let judged = read.and_then(|read| {
                    let read = (read, &mut permit);
                    self.judge(input, step, &published, read, writer, started)
                });
                // (After a failure nothing more is read: the gate closes before the room is
                // freed.)
                if judged.is_err() {
                    self.gate.close();
                }
                drop(permit);
                judged?
            }
        };
        info!(
            delivery = %input.month,
            judged = outcome.judged(),
            parsed = outcome.parsed(),
            read = outcome.meta.read,
            accepted = outcome.meta.accepted,
            rejected = outcome.meta.rejected_total(),
            ms = started.elapsed().as_millis() as u64,
            "ledger: delivery {}",
            outcome.handling.describe()
        );
        debug!(delivery = %input.month, rejected = ?outcome.meta.rejected, "reject reasons");
        self.earlier_keys = Some(outcome.meta.keys.clone());
        self.outcomes.push(outcome);
        Ok(())
    }

    /// The published partition's judgement is this run's.
    fn reuse(&mut self, step: Step, published: PathBuf) -> Result<Outcome> {
        let outcome = Outcome {
            meta: step.existing.expect("a reused partition is published"),
            month: step.month,
            handling: Handling::Reused,
            dir: published,
            unknown_columns: Vec::new(),
        };
        if let Some(prior) = self.prior.as_mut() {
            prior.add(scan(&outcome.accepted_path())?)?;
        }
        Ok(outcome)
    }

    /// A dependency changed, but not in anything these rows ask about (a new month of rates, a
    /// renamed partner, another requirement), and the earlier keys are the same: judging again
    /// gives the same rows, so they are carried over.
    fn carry_over(&mut self, step: Step, published: &Path) -> Result<Outcome> {
        let mut meta = step
            .existing
            .expect("a carried-over partition is published");
        let dir = self.staging.path(&partition_rel(step.month))?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
        meta.depends = step.depends;
        meta.judgement = step.judgement;
        meta.rules_answers = step.kept.map(|k| k.rules);
        let own = recorded(&meta);
        let files = crate::partition_check::OWN_FILES;
        let meta = link_sealed(published, &dir, &files, &own, BTreeMap::new(), meta)?;
        let outcome = Outcome {
            meta,
            month: step.month,
            handling: Handling::CarriedOver,
            dir,
            unknown_columns: Vec::new(),
        };
        if let Some(prior) = self.prior.as_mut() {
            prior.add(scan(&outcome.accepted_path())?)?;
        }
        Ok(outcome)
    }

    /// The earlier keys (loaded unless held) for judging the delivery at hand: taken from the
    /// ledger when no later delivery may need them, so that judging it lets them go.
    fn earlier(&mut self) -> Result<Earlier<'_>> {
        let at = self.outcomes.len();
        if self.last_keyed.is_some_and(|last| at > last) {
            return Err(Error::internal(
                "judging the ledger",
                "the earlier keys were asked for after the last delivery to look them up",
            ));
        }
        if self.prior.is_none() {
            self.prior = Some(accepted_keys(&self.outcomes)?);
        }
        if self.last_keyed != Some(at) {
            return Ok(Earlier::Kept(self.prior.as_ref().expect("loaded above")));
        }
        let prior = self.prior.take().expect("loaded above");
        let (keys, bytes) = prior.size();
        debug!(
            keys,
            mib = bytes >> 20,
            "ledger: earlier keys let go once this delivery has looked its keys up"
        );
        Ok(Earlier::Last(prior))
    }

    /// Judges a delivery from what was `read` of it, and hands its partition to the writer
    /// with the delivery's room in the gate (taken from `permit` when it is written; left to the
    /// caller otherwise).
    fn judge<'scope>(
        &mut self,
        input: &DeliveryInput,
        step: Step,
        published: &Path,
        (mut read, permit): (ReadAhead, &mut Option<Permit>),
        writer: &mut Writer<'scope, '_>,
        started: Instant,
    ) -> Result<Outcome> {
        let ctx = self.ctx;
        let dir = self.staging.path(&partition_rel(input.month))?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
        let earlier = self.earlier()?;
        let Step {
            mut files,
            existing,
            depends,
            judgement,
            kept,
            ..
        } = step;
        let (kept_asks, kept_answers) = kept.map(|k| (k.asks, (k.answers, k.rules))).unzip();
        // The digests of the files written (or linked) here, for the seal.
        let (unknown_columns, mut known) = file_rows(
            input,
            published,
            &dir,
            &mut files,
            existing.as_ref(),
            &mut read,
        )?;
        let mut settled = settle(read, input.month, ctx, earlier, kept_asks, writer, &dir)?;
        judge::within_exact_range(settled.judged.accepted.column("revenue_usd")?, input.month)?;
        known.insert(ASKS.into(), write_json(&settled.asks, &dir, ASKS)?);
        log_judged(input.month, started, &settled.judged);
        let keys = keys_digest(self.earlier_keys.as_deref(), &settled.judged.accepted)?;
        if let Some(prior) = self.prior.as_mut() {
            prior.add_judged(std::mem::take(&mut settled.judged.keys))?;
        }
        let (answers, rules) = kept_answers.unwrap_or_else(|| {
            (
                ctx.lookups.answers_digest(&settled.asks),
                ctx.lookups.rules_digest(&settled.asks),
            )
        });
        let (read, accepted, rejected) = counts(&settled.judged)?;
        let meta = PartitionMeta {
            format: FORMAT,
            delivery: input.month.to_string(),
            read,
            accepted,
            rejected,
            files,
            depends,
            judgement,
            answers,
            rules_answers: Some(rules),
            earlier_keys: self.earlier_keys.clone(),
            keys,
            own_files: BTreeMap::new(),
            own_checks: BTreeMap::new(),
            seal: String::new(),
        };
        let handling = settled.handling;
        let meta = match handling {
            // The same rows as published: its files stand as they are.
            Handling::ByDifferenceUnchanged => {
                let own = existing.map(|e| recorded(&e)).unwrap_or_default();
                link_sealed(published, &dir, &JUDGED_FILES, &own, known, meta)?
            }
            _ => self.write(writer, settled, meta, &dir, known, permit)?,
        };
        Ok(Outcome {
            meta,
            month: input.month,
            handling,
            dir,
            unknown_columns,
        })
    }

    /// Hands a judged partition (`settled`, described by `meta`) to the writer, to be written
    /// into `dir` and sealed, with the digests `known` of the files written here.
    fn write<'scope>(
        &mut self,
        writer: &mut Writer<'scope, '_>,
        settled: Settled<'scope>,
        meta: PartitionMeta,
        dir: &Path,
        known: BTreeMap<String, Digests>,
        permit: &mut Option<Permit>,
    ) -> Result<PartitionMeta> {
        let (keeping, judged) = (settled.keeping, settled.judged);
        let dir = dir.to_path_buf();
        let previous = writer.write(keeping, judged, meta.clone(), dir, known, permit)?;
        self.sealed(previous);
        self.being_written = Some(self.outcomes.len());
        Ok(meta)
    }
}

/// Settles the verdicts of a delivery `read` ahead against the keys accepted before it
/// (`earlier`). Newly parsed rows are kept (written into `dir` on the other core) meanwhile.
fn settle<'scope>(
    read: ReadAhead,
    delivery: Month,
    ctx: &Context,
    earlier: Earlier,
    kept_asks: Option<LookupKeys>,
    writer: &Writer<'scope, '_>,
    dir: &Path,
) -> Result<Settled<'scope>> {
    match read {
        ReadAhead::Rows {
            parsed,
            reads: _,
            asks,
            verdicts,
        } => {
            // (Parsed rows come with their asks; kept rows do not.)
            let newly_parsed = asks.is_some();
            let keeping =
                newly_parsed.then(|| writer.keep_parsed(parsed.clone(), dir.join(PARSED)));
            let judged = judge::settle(&parsed, verdicts, delivery, earlier)?;
            // (Kept rows whose asks could not be read are asked again.)
            let asks = match asks.or(kept_asks) {
                Some(asks) => asks,
                None => LookupKeys::of(&parsed)?,
            };
            Ok(Settled {
                judged,
                asks,
                keeping,
                handling: if newly_parsed {
                    Handling::Parsed
                } else {
                    Handling::JudgedKept
                },
            })
        }
        // Only the roster's answers or the earlier keys changed: judged again by difference
        // from the published judgement.
        ReadAhead::ByDifference(again) => {
            let (judged, again) =
                judge::settle_again(*again, delivery, ctx.lookups, earlier.keys())?;
            Ok(Settled {
                judged,
                asks: kept_asks.expect("same files come with their asks"),
                keeping: None,
                handling: match again {
                    judge::Again::Unchanged => Handling::ByDifferenceUnchanged,
                    judge::Again::ByDifference => Handling::ByDifference,
                    judge::Again::InFull => Handling::JudgedKept,
                },
            })
        }
    }
}

/// Says in the `-v` log that a delivery is judged, and what its lines take.
fn log_judged(delivery: Month, started: Instant, judged: &Judged) {
    debug!(
        %delivery,
        ms = started.elapsed().as_millis() as u64,
        accepted_mib = frame_mib(&judged.accepted),
        rejected_mib = frame_mib(&judged.rejected),
        "ledger: judged"
    );
}

/// The rows read, accepted and rejected (by reason) of a judgement.
fn counts(judged: &Judged) -> PolarsResult<(u64, u64, BTreeMap<String, u64>)> {
    let mut rejected = BTreeMap::new();
    for reason in judged.rejected.column("reason")?.str()?.iter().flatten() {
        *rejected.entry(reason.to_string()).or_insert(0u64) += 1;
    }
    let accepted = judged.accepted.height() as u64;
    Ok((
        accepted + rejected.values().sum::<u64>(),
        accepted,
        rejected,
    ))
}

/// The rows of each file of a delivery `read` ahead: as parsed now, or as when the kept rows
/// were parsed (linked into `dir`). Returns the unknown columns per file, and the digests of
/// the kept rows' file when they were linked.
fn file_rows(
    input: &DeliveryInput,
    published: &Path,
    dir: &Path,
    files: &mut [SourceFile],
    existing: Option<&PartitionMeta>,
    read: &mut ReadAhead,
) -> Result<(UnknownColumns, BTreeMap<String, Digests>)> {
    let reads = match read {
        ReadAhead::Rows { reads, .. } => reads.take(),
        ReadAhead::ByDifference(_) => None,
    };
    let mut known = BTreeMap::new();
    let unknown_columns = match reads {
        Some(reads) => record_reads(input, files, reads),
        None => {
            let kept = kept_rows(published, dir, files, existing)?;
            known.extend(kept.map(|digest| (PARSED.to_string(), digest)));
            Vec::new()
        }
    };
    Ok((unknown_columns, known))
}

/// The columns of each file that the program does not know, by file name.
type UnknownColumns = Vec<(String, Vec<String>)>;

/// Records the rows of each newly parsed file; returns the unknown columns per file.
fn record_reads(
    input: &DeliveryInput,
    files: &mut [SourceFile],
    reads: Vec<extract::FileRead>,
) -> UnknownColumns {
    let mut unknown_columns = Vec::new();
    for (f, read) in files.iter_mut().zip(reads) {
        f.rows = read.rows;
        // The digests recorded are of the bytes parsed.
        if f.sha256 != read.sha256 {
            warn!(delivery = %input.month, file = %f.name, "changed while this run read it: the digest of the rows parsed is kept, and the next run judges it again");
            f.sha256 = read.sha256.clone();
        }
        f.blake3 = Some(read.blake3.clone());
        if !read.unknown_columns.is_empty() {
            unknown_columns.push((read.name, read.unknown_columns));
        }
    }
    unknown_columns
}

/// The accepted keys of the given partitions.
fn accepted_keys(outcomes: &[Outcome]) -> PolarsResult<PriorKeys> {
    let mut keys = PriorKeys::default();
    for o in outcomes {
        keys.add(scan(&o.accepted_path())?)?;
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digests_recorded_are_those_of_the_bytes_parsed() {
        let input = DeliveryInput {
            month: "2026-10".parse().unwrap(),
            folder: PathBuf::from("extracts/2026-10"),
            files: vec![PathBuf::from("extracts/2026-10/a.csv")],
        };
        // As listed: a file since changed, whose listed digests are no longer its bytes'.
        let mut files = vec![SourceFile {
            name: "a.csv".into(),
            sha256: "listed".into(),
            rows: 0,
            blake3: Some("listed".into()),
        }];
        let read = extract::FileRead {
            name: "a.csv".into(),
            sha256: "parsed".into(),
            blake3: "parsed, BLAKE3".into(),
            rows: 7,
            unknown_columns: vec!["note".into()],
        };
        let unknown = record_reads(&input, &mut files, vec![read]);
        assert_eq!(
            (files[0].sha256.as_str(), files[0].blake3.as_deref()),
            ("parsed", Some("parsed, BLAKE3"))
        );
        assert_eq!(files[0].rows, 7);
        assert_eq!(unknown, [("a.csv".to_string(), vec!["note".to_string()])]);
    }
}
