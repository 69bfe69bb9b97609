//! `run` and `backfill`: compute a refresh and publish it atomically under the output lock.

use std::path::Path;
use std::time::Instant;

use tracing::info;

use super::refresh::{self, Computation, Ingested, Inputs};
use crate::calendar::Month;
use crate::cli::{BackfillArgs, RunArgs};
use crate::config::{today, RunConfig};
use crate::digest::sha256_file;
use crate::error::{Error, Result};
use crate::ledger::{self, partition_rel};
use crate::publish::{self, Move, Staging};
use crate::renewal::{self, LEVELS_HEADER};
use crate::report::manifest::{Counts, DeliveryCounts, Manifest, OutputFile, Window};
use crate::report::workbook::{self, EXCEL_MAX_ROWS};
use crate::report::{csv_out, Sheet, Value};

/// Rows per sheet, header included; a smaller value can be set for rehearsing the
/// continuation sheets (`KPI_REFRESH_SHEET_ROWS`).
fn sheet_rows() -> usize {
    std::env::var("KPI_REFRESH_SHEET_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 2)
        .unwrap_or(EXCEL_MAX_ROWS)
}

pub fn run(args: &RunArgs) -> Result<()> {
    let mut cfg = RunConfig::build(args.refresh, &args.folders.input, &args.folders.output)?;
    cfg.force = args.force;
    cfg.dry_run = args.dry_run;
    cfg.max_reject_rate = args.max_reject_rate;
    cfg.allowed_missing = args.allow_missing.clone();
    cfg.check_open(today()?)?;
    refresh_month(&cfg)
}

pub fn backfill(args: &BackfillArgs) -> Result<()> {
    if args.from > args.to {
        return Err(Error::Usage(format!(
            "--from {} is after --to {}",
            args.from, args.to
        )));
    }
    let current = Month::of(today()?);
    let mut month = args.from;
    while month <= args.to {
        let mut cfg = RunConfig::build(Some(month), &args.folders.input, &args.folders.output)?;
        // Past months are what backfill is for; the current and later months must be open.
        cfg.force = month < current;
        cfg.allowed_missing = args.allow_missing.clone();
        cfg.check_open(today()?)?;
        info!(refresh = %month, "backfill: refresh {} of {}", month.index() - args.from.index() + 1, args.to.index() - args.from.index() + 1);
        refresh_month(&cfg)?;
        month = month.plus(1);
    }
    Ok(())
}

/// One refresh: lock, recover, compute in staging, publish (or, with --dry-run, report).
pub fn refresh_month(cfg: &RunConfig) -> Result<()> {
    let started_at = chrono::Local::now();
    let clock = Instant::now();
    let out = &cfg.output;
    // A dry run writes nothing: it takes no lock when there is no output folder yet.
    let _lock = if cfg.dry_run && !out.exists() {
        None
    } else {
        Some(publish::lock(out, !cfg.dry_run)?)
    };
    // A dry run writes nothing of its own, but it reads the published files: a commit that a
    // killed run left half done is completed first, as any run would.
    if (!cfg.dry_run || publish::has_pending_commit(out)) && publish::recover(out)? {
        info!("completed the publishing of an interrupted earlier run");
    }
    let (staging, _tmp) = if cfg.dry_run {
        let (s, t) = Staging::detached(out)?;
        (s, Some(t))
    } else {
        (Staging::create(out)?, None)
    };
    let result = compute_and_stage(cfg, &staging, started_at, clock);
    let (moves, summary) = match result {
        Ok(done) => done,
        Err(e) => {
            if !cfg.dry_run {
                let _ = std::fs::remove_dir_all(&staging.root);
            }
            return Err(e);
        }
    };
    if cfg.dry_run {
        print!("{summary}");
        println!(
            "dry run of the refresh of {}: nothing was written. It would write:",
            cfg.refresh
        );
        for m in &moves {
            match m {
                Move::Put(rel) => {
                    for file in files_under(&staging.root.join(rel)) {
                        let file = file.strip_prefix(&staging.root).unwrap_or(&file);
                        println!("  write  {}", out.join(file).display());
                    }
                }
                Move::Remove(rel) => println!("  remove {}", out.join(rel).display()),
            }
        }
        return Ok(());
    }
    let t = Instant::now();
    if let Err(e) = publish::failpoint("before-commit") {
        let _ = std::fs::remove_dir_all(&staging.root);
        return Err(e);
    }
    if let Err(e) = publish::commit(&staging, &moves) {
        // Undone: the staged files go. (A journal left for the next run needs them.)
        if !publish::has_pending_commit(out) {
            let _ = std::fs::remove_dir_all(&staging.root);
        }
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&staging.root);
    info!(
        files = moves.len(),
        ms = t.elapsed().as_millis() as u64,
        "publish: committed"
    );
    info!(
        refresh = %cfg.refresh,
        reports = %out.join("reports").join(cfg.refresh.to_string()).display(),
        ms = clock.elapsed().as_millis() as u64,
        peak_rss_mib = peak_rss_mib(),
        "refresh done"
    );
    print!("{summary}");
    Ok(())
}

fn compute_and_stage(
    cfg: &RunConfig,
    staging: &Staging,
    started_at: chrono::DateTime<chrono::Local>,
    clock: Instant,
) -> Result<(Vec<Move>, String)> {
    let mut inputs = refresh::load_inputs(cfg)?;
    let ingested = refresh::ingest(cfg, &mut inputs, staging, &cfg.output)?;
    tracing::debug!(peak_rss_mib = peak_rss_mib(), "memory after ingest");
    // Invoice detail needs no KPI: its sheet is written on a thread of its own while the
    // KPIs, decisions and directory are computed.
    let previous = renewal::load_previous_levels(&cfg.output, cfg.refresh)?;
    let detail = refresh::invoice_detail(cfg, &inputs, &ingested, previous.as_ref())?;
    let book = workbook::start(cfg.refresh, detail, sheet_rows())?;
    let computation = refresh::compute(cfg, &inputs, &ingested, &cfg.output, previous.as_ref())?;
    tracing::debug!(peak_rss_mib = peak_rss_mib(), "memory after compute");
    let t = Instant::now();
    let moves = stage_outputs(
        cfg,
        staging,
        &inputs,
        &ingested,
        &computation,
        book,
        started_at,
    )?;
    info!(
        ms = t.elapsed().as_millis() as u64,
        total_ms = clock.elapsed().as_millis() as u64,
        "report: files staged"
    );
    let summary = summary(cfg, &computation, &ingested);
    Ok((moves, summary))
}

/// The one-paragraph summary a run ends with (a dry run prints it before what it would write).
fn summary(cfg: &RunConfig, c: &Computation, ingested: &Ingested) -> String {
    let mut s = format!(
        "refresh {}: {} partners, {} lines in the window, {} due, {} directory changes, {} exceptions",
        cfg.refresh,
        c.decisions.len(),
        c.lines_in_window,
        c.decisions.iter().filter(|d| d.due).count(),
        c.directory.changes.len(),
        c.directory.exceptions.len()
    );
    if !ingested.allowed_missing.is_empty() {
        s.push_str(&format!(
            "; deliveries missing, allowed: {}",
            crate::gaps::list(&ingested.allowed_missing)
        ));
    }
    s.push('\n');
    for change in &c.directory.changes {
        s.push_str(&format!(
            "  {:<6} {}  {}\n",
            change.action.as_str(),
            change.entry.partner_id,
            change.entry.directory_name
        ));
    }
    s
}

fn stage_outputs(
    cfg: &RunConfig,
    staging: &Staging,
    inputs: &Inputs,
    ingested: &Ingested,
    c: &Computation,
    book: workbook::Started,
    started_at: chrono::DateTime<chrono::Local>,
) -> Result<Vec<Move>> {
    let r = cfg.refresh;
    let reports = format!("reports/{r}");
    let computed = c.report(cfg, &inputs.roster);
    // The workbook, with the run facts.
    let (from, to) = r.window();
    let xlsx_rel = format!("{reports}/kpi-refresh-{r}.xlsx");
    let mut info_rows = vec![
        vec![Value::text("refresh"), Value::text(r.to_string())],
        vec![Value::text("window"), Value::text(format!("{from} … {to}"))],
        vec![
            Value::text("tool version"),
            Value::text(env!("CARGO_PKG_VERSION")),
        ],
        vec![
            Value::text("started at"),
            Value::text(started_at.to_rfc3339()),
        ],
    ];
    for f in &inputs.files {
        info_rows.push(vec![
            Value::text(format!("input {}", f.path)),
            Value::text(&f.sha256),
        ]);
    }
    for o in &ingested.outcomes {
        info_rows.push(vec![
            Value::text(format!("delivery {}", o.month)),
            Value::text(format!(
                "read {}, accepted {}, rejected {}",
                o.meta.read,
                o.meta.accepted,
                o.meta.rejected_total()
            )),
        ]);
    }
    info_rows.push(vec![
        Value::text("allowed missing"),
        Value::text(crate::gaps::list(&ingested.allowed_missing)),
    ]);
    info_rows.push(vec![
        Value::text("partners"),
        Value::Int(c.decisions.len() as i64),
    ]);
    info_rows.push(vec![
        Value::text("lines in window"),
        Value::Int(c.lines_in_window as i64),
    ]);
    info_rows.push(vec![
        Value::text("finished at"),
        Value::text(chrono::Local::now().to_rfc3339()),
    ]);
    let run_info = Sheet {
        name: "Run info".into(),
        header: vec!["Key".into(), "Value".into()],
        rows: info_rows,
    };
    // The workbook is saved (deflating its sheets takes one core for seconds) while the CSV
    // and state files are written.
    let xlsx_path = staging.path(&xlsx_rel)?;
    let (mut written, levels_rel, directory_rel) = std::thread::scope(|scope| -> Result<_> {
        let saving = scope.spawn(|| workbook::write(book, &xlsx_path, &computed, &run_info));
        let csv_rows = |s: Sheet| {
            s.rows
                .into_iter()
                .map(|row| row.iter().map(Value::csv).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let write_sheet_csv = |name: &str, sheet: Sheet| -> Result<String> {
            let rel = format!("{reports}/{name}");
            let header: Vec<String> = sheet.header.clone();
            let header: Vec<&str> = header.iter().map(|s| s.as_str()).collect();
            csv_out::write(&staging.path(&rel)?, &header, csv_rows(sheet))?;
            Ok(rel)
        };
        let written = vec![
            write_sheet_csv(&format!("partners-{r}.csv"), computed.partners(true))?,
            write_sheet_csv(
                &format!("directory-submission-{r}.csv"),
                computed.directory_submission(true),
            )?,
            write_sheet_csv(&format!("rejected-{r}.csv"), computed.rejected_sheet(true)?)?,
            write_sheet_csv(&format!("watch-{r}.csv"), computed.watch(true))?,
            write_sheet_csv(&format!("changes-{r}.csv"), c.changes.sheet(true))?,
            write_sheet_csv(&format!("quality-{r}.csv"), c.feeds.quality_sheet(true))?,
        ];

        // State after R.
        let levels_rel = format!("state/levels/{r}.csv");
        let levels = inputs
            .roster
            .partners
            .iter()
            .zip(&c.decisions)
            .map(|(p, d)| {
                vec![
                    p.partner_id.clone(),
                    p.enrollment.as_str().to_string(),
                    p.enrolled_on.map(|d| d.to_string()).unwrap_or_default(),
                    d.effective_level.as_str().to_string(),
                ]
            });
        csv_out::write_state(&staging.path(&levels_rel)?, &LEVELS_HEADER, levels)?;
        let directory_rel = format!("state/directory/{r}.csv");
        let entries = c.directory.state.iter().map(|e| {
            vec![
                e.partner_id.clone(),
                e.directory_name.clone(),
                e.country.clone(),
                e.landing_page_url.clone(),
            ]
        });
        csv_out::write_state(
            &staging.path(&directory_rel)?,
            &crate::directory::STATE_HEADER,
            entries,
        )?;
        saving.join().expect("saving does not panic")?;
        Ok((written, levels_rel, directory_rel))
    })?;
    written.insert(0, xlsx_rel);

    // Moves: ledger partitions judged by this run, stale ones, state files, the reports.
    let mut moves: Vec<Move> = ingested
        .outcomes
        .iter()
        .filter(|o| o.judged())
        .map(|o| Move::Put(partition_rel(o.month)))
        .collect();
    moves.extend(
        ingested
            .stale
            .iter()
            .map(|m| Move::Remove(partition_rel(*m))),
    );
    moves.push(Move::Put(levels_rel.clone()));
    moves.push(Move::Put(directory_rel.clone()));
    moves.push(Move::Put(reports.clone()));

    let mut outputs = Vec::new();
    for rel in written.iter().chain([&levels_rel, &directory_rel]) {
        outputs.push(OutputFile {
            path: rel.clone(),
            sha256: hash(&staging.root.join(rel))?,
        });
    }
    for o in ingested.outcomes.iter().filter(|o| o.judged()) {
        for name in [
            ledger::ACCEPTED,
            ledger::REJECTED,
            ledger::PARSED,
            ledger::META,
        ] {
            let rel = format!("{}/{name}", partition_rel(o.month));
            outputs.push(OutputFile {
                sha256: hash(&staging.root.join(&rel))?,
                path: rel,
            });
        }
    }
    let manifest = Manifest {
        refresh: r.to_string(),
        window: Window {
            from: from.to_string(),
            to: to.to_string(),
        },
        status: "ok".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: started_at.to_rfc3339(),
        finished_at: chrono::Local::now().to_rfc3339(),
        inputs: inputs.files.clone(),
        allowed_missing: ingested
            .allowed_missing
            .iter()
            .map(|m| m.to_string())
            .collect(),
        deliveries: ingested
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
            rejected_rows_of_last_delivery: c.rejected_last.height() as u64,
        },
        outputs,
    };
    manifest.write(&staging.path(&format!("{reports}/manifest.json"))?)?;
    Ok(moves)
}

/// The process's peak resident memory so far, in MiB (0 where the system does not say).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// The files at or under `path`, sorted.
fn files_under(path: &Path) -> Vec<std::path::PathBuf> {
    if !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .flat_map(|e| files_under(&e.path()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn hash(path: &Path) -> Result<String> {
    sha256_file(path).map_err(|e| Error::write(path, e))
}
