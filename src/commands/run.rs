//! `run` and `backfill`: compute a refresh and publish it atomically under the output lock.

use std::path::Path;
use std::time::Instant;

use tracing::info;

use super::refresh::{self, Computation, Ingested};
use crate::calendar::Month;
use crate::cli::{BackfillArgs, RunArgs};
use crate::config::{today, RunConfig, RunOptions, DEFAULT_MAX_REJECT_RATE};
use crate::error::{Error, Result};
use crate::publish::{self, Move, Staging};
use crate::renewal;
use crate::report::stage::{self, RunFacts};
use crate::report::workbook::{self, sheet_rows};

pub fn run(args: &RunArgs) -> Result<()> {
    let cfg = RunConfig::build(RunOptions {
        refresh: args.refresh,
        input: args.folders.input.clone(),
        output: args.folders.output.clone(),
        force: args.force,
        dry_run: args.dry_run,
        max_reject_rate: args.max_reject_rate,
        allowed_missing: args.allow_missing.clone(),
    })?;
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
        let cfg = RunConfig::build(RunOptions {
            refresh: Some(month),
            input: args.folders.input.clone(),
            output: args.folders.output.clone(),
            // Past months are what backfill is for; the current and later months must be open.
            force: month < current,
            dry_run: false,
            max_reject_rate: DEFAULT_MAX_REJECT_RATE,
            allowed_missing: args.allow_missing.clone(),
        })?;
        // Backfill has no --force: its own words for a month that is not open yet.
        match cfg.check_open(today()?) {
            Err(Error::NotOpen(_)) => {
                return Err(Error::NotOpen(format!(
                "backfill reached {month}, whose refresh opens on {}. Backfill runs the months \
                 before the current one, and the current month once its refresh is open: end \
                 the range with --to {}, or run this month when it opens",
                cfg.opens_on(),
                month.plus(-1)
            )))
            }
            other => other?,
        }
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
    let out = cfg.output();
    // A dry run writes nothing: it takes no lock when there is no output folder yet.
    let _lock = if cfg.dry_run() && !out.exists() {
        None
    } else {
        Some(publish::lock(out, !cfg.dry_run())?)
    };
    // A dry run writes nothing of its own, but it reads the published files: a commit that a
    // killed run left half done is completed first, as any run would.
    if (!cfg.dry_run() || publish::has_pending_commit(out)) && publish::recover(out)? {
        info!("completed the publishing of an interrupted earlier run");
    }
    let (staging, _tmp) = if cfg.dry_run() {
        let (s, t) = Staging::detached(out)?;
        (s, Some(t))
    } else {
        (Staging::create(out)?, None)
    };
    let result = compute_and_stage(cfg, &staging, started_at, clock);
    let (moves, summary) = match result {
        Ok(done) => done,
        Err(e) => {
            if !cfg.dry_run() {
                let _ = std::fs::remove_dir_all(&staging.root);
            }
            return Err(e);
        }
    };
    if cfg.dry_run() {
        print!("{summary}");
        println!(
            "dry run of the refresh of {}: nothing was written. It would write:",
            cfg.refresh()
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
    // Where an input may change after it was parsed (the tests stop here).
    publish::failpoint("stop-before-commit")?;
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
        refresh = %cfg.refresh(),
        reports = %out.join("reports").join(cfg.refresh().to_string()).display(),
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
    let ingested = refresh::ingest(cfg, &mut inputs, staging)?;
    tracing::debug!(peak_rss_mib = peak_rss_mib(), "memory after ingest");
    // Invoice detail needs no KPI: its lines are selected and its sheet written on a thread of
    // its own while the KPIs, decisions and directory are computed.
    let previous = renewal::load_previous_levels(cfg.output(), cfg.refresh())?;
    let detail = refresh::invoice_detail(cfg, &inputs, &ingested, previous.as_ref())?;
    let book = workbook::start(cfg.refresh(), Box::new(move || detail.run()), sheet_rows())?;
    let computation = refresh::compute(cfg, &inputs, &ingested, previous.as_ref())?;
    tracing::debug!(peak_rss_mib = peak_rss_mib(), "memory after compute");
    let t = Instant::now();
    let facts = RunFacts {
        started_at,
        inputs: &inputs.files,
        outcomes: &ingested.outcomes,
        stale: &ingested.stale,
        allowed_missing: &ingested.allowed_missing,
    };
    let computed = computation.report(cfg, &inputs.roster);
    let moves = stage::stage(staging, &computed, &facts, book)?;
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
        cfg.refresh(),
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
