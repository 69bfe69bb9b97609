//! The report stage of a run: writes into staging everything a refresh publishes (the
//! workbook with its Run info, every CSV report, both state files, the manifest with the
//! digests of what was written) and returns the moves that publish it (docs/rules.md §13).

use std::path::Path;

use chrono::{DateTime, Local};

use super::manifest::{Counts, DeliveryCounts, InputFile, Manifest, OutputFile, Window};
use super::workbook;
use super::{csv_out, Computed, Sheet, Value};
use crate::calendar::Month;
use crate::digest::sha256_file;
use crate::error::{Error, Result};
use crate::ledger::{self, partition_rel, Outcome};
use crate::publish::{Move, Staging};
use crate::state::{self, DirectoryRow, LevelRow};

/// What a run did besides computing: when it started, what it read, and what became of the
/// ledger's deliveries.
pub struct RunFacts<'a> {
    pub started_at: DateTime<Local>,
    /// Every input file read, with its digest.
    pub inputs: &'a [InputFile],
    /// The outcome of every delivery ≤ R-1, oldest first.
    pub outcomes: &'a [Outcome],
    /// Partitions to remove: deliveries no longer in the input.
    pub stale: &'a [Month],
    /// Gaps in the deliveries allowed by `--allow-missing`.
    pub allowed_missing: &'a [Month],
}

/// The relative paths of the two state files of a refresh.
struct StatePaths {
    levels: String,
    directory: String,
}

/// Writes every output of refresh R into `staging`; returns the moves that publish them.
pub fn stage(
    staging: &Staging,
    computed: &Computed,
    facts: &RunFacts,
    book: workbook::Started,
) -> Result<Vec<Move>> {
    let r = computed.refresh;
    let reports = format!("reports/{r}");
    let xlsx_rel = format!("{reports}/kpi-refresh-{r}.xlsx");
    let run_info = run_info(computed, facts);
    // The workbook is saved (deflating its sheets takes one core for seconds) while the CSV
    // and state files are written.
    let xlsx_path = staging.path(&xlsx_rel)?;
    let (mut written, state) = std::thread::scope(|scope| -> Result<_> {
        let saving = scope.spawn(|| workbook::write(book, &xlsx_path, computed, &run_info));
        let written = write_reports(staging, &reports, computed)?;
        let state = write_state(staging, computed)?;
        saving.join().expect("saving does not panic")?;
        Ok((written, state))
    })?;
    written.insert(0, xlsx_rel);
    let moves = moves(facts, &state, &reports);
    let outputs = output_files(staging, &written, &state, facts.outcomes)?;
    let manifest = manifest(computed, facts, outputs);
    manifest.write(&staging.path(&format!("{reports}/manifest.json"))?)?;
    Ok(moves)
}

/// The Run info sheet: the refresh, its window, the tool, the inputs and the deliveries.
fn run_info(c: &Computed, facts: &RunFacts) -> Sheet {
    let r = c.refresh;
    let (from, to) = r.window();
    let mut rows = vec![
        vec![Value::text("refresh"), Value::text(r.to_string())],
        vec![Value::text("window"), Value::text(format!("{from} … {to}"))],
        vec![
            Value::text("tool version"),
            Value::text(env!("CARGO_PKG_VERSION")),
        ],
        vec![
            Value::text("started at"),
            Value::text(facts.started_at.to_rfc3339()),
        ],
    ];
    for f in facts.inputs {
        rows.push(vec![
            Value::text(format!("input {}", f.path)),
            Value::text(&f.sha256),
        ]);
    }
    for o in facts.outcomes {
        rows.push(vec![
            Value::text(format!("delivery {}", o.month)),
            Value::text(format!(
                "read {}, accepted {}, rejected {}",
                o.meta.read,
                o.meta.accepted,
                o.meta.rejected_total()
            )),
        ]);
    }
    rows.push(vec![
        Value::text("allowed missing"),
        Value::text(crate::gaps::list(facts.allowed_missing)),
    ]);
    rows.push(vec![
        Value::text("partners"),
        Value::Int(c.decisions.len() as i64),
    ]);
    rows.push(vec![
        Value::text("lines in window"),
        Value::Int(c.lines_in_window as i64),
    ]);
    rows.push(vec![
        Value::text("finished at"),
        Value::text(Local::now().to_rfc3339()),
    ]);
    Sheet::titled("Run info", vec!["Key".into(), "Value".into()], rows)
}

/// Writes the CSV reports of refresh R; returns their relative paths, in the manifest's order.
fn write_reports(staging: &Staging, reports: &str, c: &Computed) -> Result<Vec<String>> {
    let r = c.refresh;
    let write_sheet_csv = |name: &str, sheet: Sheet| -> Result<String> {
        let rel = format!("{reports}/{name}");
        csv_out::write_sheet(&staging.path(&rel)?, &sheet)?;
        Ok(rel)
    };
    Ok(vec![
        write_sheet_csv(&format!("partners-{r}.csv"), c.partners())?,
        write_sheet_csv(
            &format!("directory-submission-{r}.csv"),
            c.directory_submission(),
        )?,
        write_sheet_csv(&format!("rejected-{r}.csv"), c.rejected_sheet()?)?,
        write_sheet_csv(&format!("watch-{r}.csv"), c.watch())?,
        write_sheet_csv(&format!("changes-{r}.csv"), c.changes.sheet())?,
        write_sheet_csv(&format!("quality-{r}.csv"), c.feeds.quality_sheet())?,
    ])
}

/// Writes the state after R: every partner's effective level and the directory as listed.
fn write_state(staging: &Staging, c: &Computed) -> Result<StatePaths> {
    let r = c.refresh;
    let paths = StatePaths {
        levels: state::levels_rel(r),
        directory: state::directory_rel(r),
    };
    let levels = c.roster.partners.iter().zip(c.decisions).map(|(p, d)| {
        let row = LevelRow {
            roster_enrollment: p.enrollment.as_str().to_string(),
            enrolled_on: p.enrolled_on.map(|d| d.to_string()).unwrap_or_default(),
            effective_level: d.effective_level.as_str().to_string(),
        };
        (p.partner_id.clone(), row)
    });
    state::write_levels(&staging.path(&paths.levels)?, levels)?;
    let entries = c.directory.state.iter().map(DirectoryRow::from);
    state::write_directory(&staging.path(&paths.directory)?, entries)?;
    Ok(paths)
}

/// The moves that publish a refresh: ledger partitions judged by this run, stale ones, the
/// state files, the reports.
fn moves(facts: &RunFacts, state: &StatePaths, reports: &str) -> Vec<Move> {
    let mut moves: Vec<Move> = facts
        .outcomes
        .iter()
        .filter(|o| o.judged())
        .map(|o| Move::Put(partition_rel(o.month)))
        .collect();
    moves.extend(facts.stale.iter().map(|m| Move::Remove(partition_rel(*m))));
    moves.push(Move::Put(state.levels.clone()));
    moves.push(Move::Put(state.directory.clone()));
    moves.push(Move::Put(reports.to_string()));
    moves
}

/// The digests of every staged file: reports, state files, then the judged partitions.
fn output_files(
    staging: &Staging,
    written: &[String],
    state: &StatePaths,
    outcomes: &[Outcome],
) -> Result<Vec<OutputFile>> {
    // (Hashed on the pool's threads: the workbook alone is tens of megabytes.)
    let files: Vec<&String> = written
        .iter()
        .chain([&state.levels, &state.directory])
        .collect();
    let mut outputs = crate::pool::map(&files, |rel| {
        Ok(OutputFile {
            path: rel.to_string(),
            sha256: hash(&staging.root.join(rel))?,
        })
    })?;
    // A judged partition's own files are listed with the digests its seal records, taken as
    // they were written; its metadata is hashed here.
    for o in outcomes.iter().filter(|o| o.judged()) {
        for name in crate::partition_check::OWN_FILES {
            let rel = format!("{}/{name}", partition_rel(o.month));
            let Some(sha256) = o.meta.own_files.get(name) else {
                return Err(Error::internal(&rel, "no digest is recorded for it"));
            };
            outputs.push(OutputFile {
                sha256: sha256.clone(),
                path: rel,
            });
        }
        let rel = format!("{}/{}", partition_rel(o.month), ledger::META);
        outputs.push(OutputFile {
            sha256: hash(&staging.root.join(&rel))?,
            path: rel,
        });
    }
    Ok(outputs)
}

/// The manifest of refresh R.
fn manifest(c: &Computed, facts: &RunFacts, outputs: Vec<OutputFile>) -> Manifest {
    let (from, to) = c.refresh.window();
    Manifest {
        refresh: c.refresh.to_string(),
        window: Window {
            from: from.to_string(),
            to: to.to_string(),
        },
        status: "ok".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: facts.started_at.to_rfc3339(),
        finished_at: Local::now().to_rfc3339(),
        inputs: facts.inputs.to_vec(),
        allowed_missing: facts
            .allowed_missing
            .iter()
            .map(|m| m.to_string())
            .collect(),
        deliveries: facts
            .outcomes
            .iter()
            .map(|o| DeliveryCounts {
                delivery: o.month.to_string(),
                judged_in_this_run: o.judged(),
                read: o.meta.read,
                accepted: o.meta.accepted,
                rejected: o.meta.rejected.clone(),
                rows_digest: Some(o.meta.rows_digest()),
            })
            .collect(),
        counts: Counts {
            partners: c.decisions.len() as u64,
            lines_in_window: c.lines_in_window,
            partners_due: c.decisions.iter().filter(|d| d.due).count() as u64,
            directory_changes: c.directory.changes.len() as u64,
            directory_exceptions: c.directory.exceptions.len() as u64,
            rejected_rows_of_last_delivery: c.rejected.height() as u64,
        },
        outputs,
    }
}

fn hash(path: &Path) -> Result<String> {
    sha256_file(path).map_err(|e| Error::write(path, e))
}
