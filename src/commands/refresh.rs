//! The pipeline of one refresh, shared by every command: load and check the inputs, bring
//! the ledger up to date (staging what it judges), compute KPIs, decisions and the directory.
//! Nothing here publishes; [`super::run`] does.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use tracing::info;

use crate::calendar::Month;
use crate::config::RunConfig;
use crate::directory::{self, Directory};
use crate::error::{Error, Result};
use crate::ingest::fx::FxRates;
use crate::ingest::judge::Lookups;
use crate::ingest::roster::Roster;
use crate::kpi::{self, Kpis, PartnerKpis};
use crate::ledger::{self, Outcome};
use crate::publish::Staging;
use crate::renewal::{self, Decision, PreviousLevels};
use crate::report::manifest::InputFile;
use crate::report::Computed;
use crate::watch::{self, WatchRow};

/// The checked master data of a run.
pub struct Inputs {
    pub roster: Roster,
    pub fx: FxRates,
    pub files: Vec<InputFile>,
    pub roster_sha: String,
    pub fx_sha: String,
    pub program_sha: String,
}

fn rel(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Loads the roster and rates (program.toml is already in the config).
pub fn load_inputs(cfg: &RunConfig) -> Result<Inputs> {
    let started = Instant::now();
    let (roster_path, both) = Roster::locate(cfg.input())?;
    if both {
        info!("both partners.csv and partners.xlsx exist; partners.csv is used");
    }
    // Each file is read once: its digest is of the very bytes its rows come from.
    let roster_source = crate::source::read(&roster_path)?;
    let roster = Roster::from_source(&roster_source)?;
    if !roster.unknown_columns.is_empty() {
        info!(file = %roster_path.display(), columns = ?roster.unknown_columns, "unknown columns ignored");
    }
    let fx_path = cfg.input().join("fx_rates.csv");
    let fx_source = match std::fs::symlink_metadata(&fx_path) {
        Ok(_) => Some(crate::source::read(&fx_path)?),
        Err(_) => None,
    };
    let fx = match &fx_source {
        Some(source) => FxRates::from_source(source)?,
        None => FxRates::default(),
    };
    if !fx.unknown_columns.is_empty() {
        info!(file = %fx_path.display(), columns = ?fx.unknown_columns, "unknown columns ignored");
    }
    let program_sha = cfg.program_sha().to_string();
    let roster_sha = roster_source.sha256.clone();
    let mut files = vec![
        InputFile {
            path: rel(cfg.input(), cfg.program_path()),
            sha256: program_sha.clone(),
            rows: None,
        },
        InputFile {
            path: rel(cfg.input(), &roster_path),
            sha256: roster_sha.clone(),
            rows: Some(roster.partners.len() as u64),
        },
    ];
    let fx_sha = match &fx_source {
        Some(source) => {
            files.push(InputFile {
                path: rel(cfg.input(), &fx_path),
                sha256: source.sha256.clone(),
                rows: Some(fx.rows_read),
            });
            source.sha256.clone()
        }
        None => "absent".to_string(),
    };
    info!(
        partners = roster.partners.len(),
        rates = fx.rows().len(),
        ms = started.elapsed().as_millis() as u64,
        "inputs: roster and rates checked"
    );
    Ok(Inputs {
        roster,
        fx,
        files,
        roster_sha,
        fx_sha,
        program_sha,
    })
}

/// The ledger brought up to date for refresh R.
pub struct Ingested {
    pub outcomes: Vec<Outcome>,
    /// Partitions to remove: deliveries ≤ R-1 no longer in the input.
    pub stale: Vec<Month>,
    /// Gaps in the deliveries allowed by `--allow-missing` (see [`crate::gaps`]).
    pub allowed_missing: Vec<Month>,
}

impl Ingested {
    /// The outcome of delivery R-1.
    pub fn last(&self) -> &Outcome {
        self.outcomes.last().expect("delivery R-1 is present")
    }
}

/// Brings every delivery ≤ R-1 up to date, oldest first; checks the reject-rate gate.
pub fn ingest(cfg: &RunConfig, inputs: &mut Inputs, staging: &Staging) -> Result<Ingested> {
    let published = cfg.output();
    let started = Instant::now();
    let last = cfg.refresh().plus(-1);
    let (deliveries, allowed_missing) = deliveries_to_ingest(cfg, last)?;
    let lookups = Lookups::new(cfg.program(), &inputs.roster, &inputs.fx)?;
    let ctx = ledger::Context {
        output: published,
        lookups: &lookups,
        roster_sha: inputs.roster_sha.clone(),
        fx_sha: inputs.fx_sha.clone(),
        program_sha: inputs.program_sha.clone(),
    };
    let outcomes = ledger::update(&ctx, &deliveries, staging)?;
    for o in &outcomes {
        for (file, columns) in &o.unknown_columns {
            info!(delivery = %o.month, file = %file, columns = ?columns, "unknown columns ignored");
        }
        for f in &o.meta.files {
            inputs.files.push(InputFile {
                path: format!("extracts/{}/{}", o.month, f.name),
                sha256: f.sha256.clone(),
                rows: Some(f.rows),
            });
        }
    }
    check_reject_rates(cfg, &outcomes)?;
    let stale = ledger::stale_partitions(published, &deliveries, last);
    let (read, accepted): (u64, u64) = outcomes
        .iter()
        .fold((0, 0), |(r, a), o| (r + o.meta.read, a + o.meta.accepted));
    info!(
        deliveries = outcomes.len(),
        judged = outcomes.iter().filter(|o| o.judged()).count(),
        read,
        accepted,
        rejected = read - accepted,
        ms = started.elapsed().as_millis() as u64,
        "ingest: ledger up to date"
    );
    Ok(Ingested {
        outcomes,
        stale,
        allowed_missing,
    })
}

/// The deliveries up to `last`, which must be present and hold a file each, and the gaps
/// among them that `--allow-missing` allows (any other gap is an error).
fn deliveries_to_ingest(
    cfg: &RunConfig,
    last: Month,
) -> Result<(Vec<ledger::DeliveryInput>, Vec<Month>)> {
    let deliveries = ledger::deliveries(cfg.input(), last)?;
    if deliveries.last().map(|d| d.month) != Some(last) {
        return Err(Error::MissingInput {
            what: format!(
                "delivery {last} (needed by the refresh of {})",
                cfg.refresh()
            ),
            path: cfg.input().join("extracts").join(last.to_string()),
        });
    }
    let present: Vec<Month> = deliveries.iter().map(|d| d.month).collect();
    let allowed_missing = crate::gaps::check(&present, last, cfg.allowed_missing())?;
    if let Some(empty) = deliveries.iter().find(|d| d.files.is_empty()) {
        return Err(Error::MissingInput {
            what: format!("a .csv or .xlsx file in delivery {}", empty.month),
            path: empty.folder.clone(),
        });
    }
    Ok((deliveries, allowed_missing))
}

/// The reject-rate gate: a delivery judged in this run may reject at most the configured
/// share of its rows (docs/rules.md §4.6).
fn check_reject_rates(cfg: &RunConfig, outcomes: &[Outcome]) -> Result<()> {
    for o in outcomes.iter().filter(|o| o.judged()) {
        let share = o.meta.reject_share();
        if share > cfg.max_reject_rate() {
            return Err(Error::RejectRate {
                delivery: o.month,
                read: o.meta.read,
                rejected: o.meta.rejected_total(),
                share,
                max: cfg.max_reject_rate(),
            });
        }
    }
    Ok(())
}

/// KPIs, decisions and directory of refresh R.
pub struct Computation {
    pub decisions: Vec<Decision>,
    pub watch: Vec<WatchRow>,
    pub directory: Directory,
    pub monthly: DataFrame,
    pub rejected_last: DataFrame,
    pub reject_reasons_last: BTreeMap<String, u64>,
    /// Rows read from delivery R-1.
    pub read_last: u64,
    pub lines_in_window: u64,
    pub changes: crate::changes::Changes,
    pub feeds: crate::feeds::Feeds,
}

/// The deliveries whose accepted lines can lie in the window of R. Every line of a delivery
/// is dated in or before its month (later ones are future_date), so deliveries before the
/// window hold no window line and are not read.
fn in_reach(cfg: &RunConfig, ingested: &Ingested) -> Vec<Outcome> {
    let (window_from, _) = cfg.refresh().window();
    ingested
        .outcomes
        .iter()
        .filter(|o| o.month >= window_from)
        .cloned()
        .collect()
}

/// The accepted lines that can lie in the window of R, as one frame.
fn window_lines(cfg: &RunConfig, ingested: &Ingested) -> PolarsResult<LazyFrame> {
    ledger::scan_accepted(&in_reach(cfg, ingested))
}

/// The month sums of the deliveries that can hold a window line, one frame per delivery.
fn window_sums(cfg: &RunConfig, ingested: &Ingested) -> PolarsResult<Vec<LazyFrame>> {
    in_reach(cfg, ingested)
        .iter()
        .map(ledger::scan_sums)
        .collect()
}

/// Invoice detail of R, to be selected: the window's lines of the partners due in R. Who is
/// due follows from the roster and the previous levels alone, so this needs no KPI, and the
/// query holds all it needs (it runs on the workbook's detail thread).
pub struct DetailQuery {
    lines: LazyFrame,
    refresh: Month,
    due: Vec<String>,
}

pub fn invoice_detail(
    cfg: &RunConfig,
    inputs: &Inputs,
    ingested: &Ingested,
    previous: Option<&PreviousLevels>,
) -> Result<DetailQuery> {
    let due = renewal::due_partners(&inputs.roster, cfg.refresh(), previous);
    Ok(DetailQuery {
        lines: window_lines(cfg, ingested)?,
        refresh: cfg.refresh(),
        due: due.into_iter().map(str::to_string).collect(),
    })
}

impl DetailQuery {
    /// The due partners' window lines, sorted (see [`kpi::invoice_detail`]).
    pub fn run(self) -> Result<DataFrame> {
        let started = Instant::now();
        let due: Vec<&str> = self.due.iter().map(String::as_str).collect();
        let detail = kpi::invoice_detail(self.lines, self.refresh, &due)?;
        info!(
            due = due.len(),
            lines = detail.height(),
            ms = started.elapsed().as_millis() as u64,
            "invoice detail: lines of the partners due selected"
        );
        Ok(detail)
    }
}

/// The renewal decision of every partner of the roster, in roster order.
fn decide(
    cfg: &RunConfig,
    inputs: &Inputs,
    totals: &HashMap<String, PartnerKpis>,
    previous: Option<&PreviousLevels>,
) -> Vec<Decision> {
    let started = Instant::now();
    let decisions = renewal::decide(
        cfg.program(),
        &inputs.roster,
        cfg.refresh(),
        totals,
        previous,
    );
    info!(
        partners = decisions.len(),
        due = decisions.iter().filter(|d| d.due).count(),
        carried_forward = decisions.iter().filter(|d| d.carried_forward).count(),
        levels_from = previous
            .map(|(m, _)| m.to_string())
            .unwrap_or_else(|| "none".into()),
        ms = started.elapsed().as_millis() as u64,
        "renewal: decisions made"
    );
    decisions
}

/// The anniversary watch: the partners whose anniversary is within the lead months, with the
/// KPIs they have secured.
fn watch_ahead(
    cfg: &RunConfig,
    inputs: &Inputs,
    decisions: &[Decision],
    kpis: &mut Kpis,
) -> Result<Vec<WatchRow>> {
    let started = Instant::now();
    let lead_months = cfg.program().watch_lead_months;
    let secured = kpis.secured(&watch::watched(decisions, lead_months))?;
    let watch = watch::build(
        cfg.program(),
        &inputs.roster,
        decisions,
        lead_months,
        &secured,
    );
    info!(
        watched = watch.len(),
        lead_months,
        ms = started.elapsed().as_millis() as u64,
        "watch: anniversaries ahead measured"
    );
    Ok(watch)
}

/// The directory after R, with its changes since the last published state and exceptions.
fn build_directory(cfg: &RunConfig, inputs: &Inputs, decisions: &[Decision]) -> Result<Directory> {
    let started = Instant::now();
    let baseline = directory::load_baseline(cfg.output(), cfg.refresh())?;
    let directory = directory::build(
        cfg.program(),
        &inputs.roster,
        decisions,
        baseline,
        cfg.refresh(),
    );
    info!(
        changes = directory.changes.len(),
        exceptions = directory.exceptions.len(),
        listed = directory.state.len(),
        baseline = directory
            .baseline_month
            .map(|m| m.to_string())
            .unwrap_or_else(|| "none".into()),
        ms = started.elapsed().as_millis() as u64,
        "directory: submission built"
    );
    Ok(directory)
}

/// `previous` are the levels of the latest refresh before R (see
/// [`renewal::load_previous_levels`]).
pub fn compute(
    cfg: &RunConfig,
    inputs: &Inputs,
    ingested: &Ingested,
    previous: Option<&PreviousLevels>,
) -> Result<Computation> {
    let published = cfg.output();
    let started = Instant::now();
    let mut kpis = Kpis::new(window_sums(cfg, ingested)?, cfg.refresh(), cfg.program())?;
    let totals = kpis.totals()?;
    let lines_in_window = totals.values().map(|k| k.lines).sum();
    let monthly = kpis.monthly()?;
    info!(
        partners_with_lines = totals.len(),
        lines_in_window,
        ms = started.elapsed().as_millis() as u64,
        "kpi: window totals computed"
    );

    let decisions = decide(cfg, inputs, &totals, previous);
    let watch = watch_ahead(cfg, inputs, &decisions, &mut kpis)?;
    let directory = build_directory(cfg, inputs, &decisions)?;
    let last = ingested.last();
    let rejected_last = ledger::read_rejected(last)?;
    let changes = crate::changes::compute(
        published,
        cfg.refresh(),
        cfg.program(),
        &decisions,
        &ingested.outcomes,
    )?;
    let feeds = crate::feeds::compute(&ingested.outcomes, cfg.refresh(), cfg.program())?;
    Ok(Computation {
        decisions,
        watch,
        directory,
        monthly,
        rejected_last,
        reject_reasons_last: last.meta.rejected.clone(),
        read_last: last.meta.read,
        lines_in_window,
        changes,
        feeds,
    })
}

impl Computation {
    /// What the report stage writes of this computation.
    pub fn report<'a>(&'a self, cfg: &'a RunConfig, roster: &'a Roster) -> Computed<'a> {
        Computed {
            refresh: cfg.refresh(),
            program: cfg.program(),
            roster,
            decisions: &self.decisions,
            watch: &self.watch,
            directory: &self.directory,
            monthly: &self.monthly,
            rejected: &self.rejected_last,
            reject_reasons: &self.reject_reasons_last,
            read_last: self.read_last,
            changes: &self.changes,
            feeds: &self.feeds,
            lines_in_window: self.lines_in_window,
        }
    }
}
