//! `explain`: one partner's refresh in plain words — its window, KPIs per category and month,
//! the requirement block applied and why, the decision and its reason, and its directory
//! outcome, and what changed since the previous refresh. Reads the published ledger and
//! state; writes nothing.

use std::fmt::Write as _;

use polars::prelude::*;

use super::refresh;
use crate::calendar::Month;
use crate::cli::ExplainArgs;
use crate::config::program::{Level, Program};
use crate::config::{RunConfig, RunOptions};
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::ingest::roster::Partner;
use crate::kpi::round4;
use crate::publish::{self, Staging};
use crate::published;
use crate::renewal::{self, Decision, Status};
use crate::report::csv_out;
use crate::report::csv_out::number;
use crate::report::manifest::Manifest;

pub fn explain(args: &ExplainArgs) -> Result<()> {
    let asked = RunConfig::build(RunOptions {
        refresh: args.refresh,
        input: args.folders.input.clone(),
        output: args.folders.output.clone(),
        force: false,
        dry_run: false,
        // The published refresh passed the gate it ran with, whatever its limit was.
        max_reject_rate: 1.0,
        allowed_missing: Vec::new(),
    })?;
    // explain reads the published ledger and state: a commit that a killed run left half done
    // was already decided (every file staged), so it is completed first, as the next run would.
    let _lock = if publish::has_pending_commit(asked.output()) {
        let lock = publish::lock(asked.output(), true)?;
        publish::recover(asked.output())?;
        Some(lock)
    } else {
        None
    };
    // What R published is the answer: R must be published, from the same inputs.
    let manifest = published::manifest(&asked)?;
    // R is worked out again as it ran: with the gaps in the deliveries its manifest records.
    let cfg = asked.with_allowed_missing(
        manifest
            .allowed_missing
            .iter()
            .filter_map(|m| m.parse().ok())
            .collect(),
    );
    let (staging, _tmp) = Staging::detached(cfg.output())?;
    let mut inputs = refresh::load_inputs(&cfg)?;
    if inputs.roster.get(&args.partner).is_none() {
        return Err(Error::Usage(format!(
            "partner {:?} is not in the roster",
            args.partner
        )));
    }
    let ingested = refresh::ingest(&cfg, &mut inputs, &staging)?;
    published::check_inputs(&cfg, &manifest, &inputs.files)?;
    let previous = renewal::load_previous_levels(cfg.output(), cfg.refresh())?;
    let c = refresh::compute(&cfg, &inputs, &ingested, previous.as_ref())?;
    check_published(&cfg, &manifest, &inputs, &c, &staging)?;
    let d = c
        .decisions
        .iter()
        .find(|d| d.partner_id == args.partner)
        .expect("every roster partner is decided");
    let p = inputs.roster.get(&args.partner).expect("checked above");
    print!("{}", story(&cfg, p, d, &c)?);
    print!("\n{}", c.changes.story(&p.partner_id, cfg.refresh()));
    Ok(())
}

/// The decisions and directory changes worked out now must be those of the published
/// `partners-R.csv` and `directory-submission-R.csv`.
fn check_published(
    cfg: &RunConfig,
    manifest: &Manifest,
    inputs: &refresh::Inputs,
    c: &refresh::Computation,
    staging: &Staging,
) -> Result<()> {
    let r = cfg.refresh();
    let computed = c.report(cfg, &inputs.roster);
    let files = [
        (format!("partners-{r}.csv"), computed.partners()),
        (
            format!("directory-submission-{r}.csv"),
            computed.directory_submission(),
        ),
    ];
    for (name, sheet) in files {
        let rel = format!("reports/{r}/{name}");
        let path = staging.path(&rel)?;
        csv_out::write_sheet(&path, &sheet)?;
        published::check_output(cfg, manifest, &rel, &path)?;
    }
    Ok(())
}

/// What `explain` says of one partner: one paragraph per step of the refresh
/// (docs/rules.md §5–§9).
fn story(
    cfg: &RunConfig,
    p: &crate::ingest::roster::Partner,
    d: &Decision,
    c: &refresh::Computation,
) -> Result<String> {
    let mut s = String::new();
    enrollment_paragraph(&mut s, cfg.refresh(), p, d);
    kpi_paragraph(&mut s, cfg, p, d, c)?;
    requirements_paragraph(&mut s, cfg.program(), d);
    decision_paragraph(&mut s, cfg, d);
    watch_paragraph(&mut s, cfg.program(), p, c);
    directory_paragraph(&mut s, p, &c.directory);
    Ok(s)
}

/// The partner, the window, its enrollment in R and its anniversary.
fn enrollment_paragraph(s: &mut String, r: Month, p: &Partner, d: &Decision) {
    let (from, to) = r.window();
    let _ = writeln!(
        s,
        "Partner {} — {} ({}, market {})",
        p.partner_id, p.partner_name, p.country, d.market
    );
    let _ = writeln!(s, "Refresh {r}: window {from} … {to} (invoices dated in those months, from deliveries up to {to}).");
    let roster_level = p.enrollment;
    let enrolled = p
        .enrolled_on
        .map(|x| x.to_string())
        .unwrap_or_else(|| "—".into());
    let _ = write!(
        s,
        "Enrollment in {r}: {} (roster: {roster_level}, enrolled on {enrolled}",
        d.enrollment
    );
    if d.carried_forward {
        let _ = write!(s, "; carried forward from an earlier refresh's decision that the roster does not show yet");
    } else if p.enrolled_on.is_some_and(|e| e > r.last_day()) && roster_level != Level::None {
        let _ = write!(s, "; enrolled after {r}, so not enrolled yet");
    }
    let _ = writeln!(s, ").");
    match (d.next_anniversary, d.months_to_anniversary) {
        (Some(a), Some(0)) => {
            let _ = writeln!(
                s,
                "Anniversary {a} falls in {r}: renewal is decided in this refresh."
            );
        }
        (Some(a), Some(m)) => {
            let _ = writeln!(
                s,
                "Next anniversary {a}, {m} month(s) from {r}: not due in this refresh."
            );
        }
        _ => {
            let _ = writeln!(s, "No anniversary: not enrolled in {r}.");
        }
    }
}

/// The KPIs in the window, with their months, and the revenue.
fn kpi_paragraph(
    s: &mut String,
    cfg: &RunConfig,
    p: &Partner,
    d: &Decision,
    c: &refresh::Computation,
) -> Result<()> {
    let program = cfg.program();
    let (from, _) = cfg.refresh().window();
    let _ = writeln!(
        s,
        "\nKPIs in the window (sum of kpi_value of accepted invoice lines and credit notes):"
    );
    let monthly = c
        .monthly
        .clone()
        .lazy()
        .filter(col("partner_id").eq(lit(p.partner_id.as_str())))
        .collect()?;
    let months: Vec<String> = (0..12).map(|i| from.plus(i).to_string()).collect();
    for (k, cat) in program.categories.iter().enumerate() {
        let _ = writeln!(s, "  {:<16} {}", cat.name, number(round4(d.kpis.kpi[k])));
        let row = monthly
            .clone()
            .lazy()
            .filter(col("category").eq(lit(cat.name.as_str())))
            .collect()?;
        if row.height() == 1 {
            let per_month: Vec<String> = (0..12)
                .filter_map(|i| {
                    let v = row.column(&format!("m{i:02}")).ok()?.f64().ok()?.get(0)?;
                    (v != 0.0).then(|| format!("{} {}", months[i], number(v)))
                })
                .collect();
            let _ = writeln!(s, "      by month: {}", per_month.join(", "));
        }
    }
    let _ = writeln!(
        s,
        "  revenue USD      {}",
        number(round4(d.kpis.revenue_usd))
    );
    Ok(())
}

/// The requirement block of every level at the decision date, and the qualified level.
fn requirements_paragraph(s: &mut String, program: &Program, d: &Decision) {
    let _ = writeln!(s, "\nRequirements at the decision date {} (the newest effective_from on or before it; a block naming the competency beats one without, then a named market beats \"*\"):", d.decision_date);
    for check in &d.checks {
        match check.requirement.map(|i| &program.requirements[i]) {
            None => {
                let _ = writeln!(
                    s,
                    "  {:<12} cannot qualify: {}",
                    check.level.as_str(),
                    check.unmet.join("; ")
                );
            }
            Some(block) => {
                let verdict = if check.met() {
                    "met".to_string()
                } else {
                    format!("not met: {}", check.unmet.join("; "))
                };
                let _ = writeln!(
                    s,
                    "  {:<12} {} — {verdict}",
                    check.level.as_str(),
                    block.describe()
                );
            }
        }
    }
    let _ = writeln!(s, "Qualified level: {}.", d.qualified_level);
}

/// The renewal status and why, the effective level, the outlook and the gaps.
fn decision_paragraph(s: &mut String, cfg: &RunConfig, d: &Decision) {
    let (program, r) = (cfg.program(), cfg.refresh());
    let reason = match d.status {
        Status::NotEnrolled => "the partner is not enrolled in this refresh".to_string(),
        Status::NotDue => "the anniversary is not in this refresh's month".to_string(),
        Status::Extended => format!(
            "the anniversary is covered by the {}",
            d.extension.as_deref().unwrap_or("extension")
        ),
        Status::UpgradeEligible => format!(
            "it qualifies for {}, above its enrollment {}",
            d.qualified_level, d.enrollment
        ),
        Status::Renew => format!("it qualifies for its enrollment level {}", d.enrollment),
        Status::Downgrade => format!(
            "it qualifies only for {}, below its enrollment {}",
            d.qualified_level, d.enrollment
        ),
        Status::Lapse => "it qualifies for no level at its anniversary".to_string(),
    };
    let _ = writeln!(
        s,
        "\nDecision: {} — {reason}. Effective level after {r}: {}. Outlook: {}.",
        d.status, d.effective_level, d.outlook
    );
    let why = crate::why::of(d);
    if !why.is_empty() {
        let _ = writeln!(s, "Why: {why}.");
    }
    if d.gap.iter().any(|g| *g > 0.0) {
        let gaps: Vec<String> = program
            .categories
            .iter()
            .zip(&d.gap)
            .filter(|(_, g)| **g > 0.0)
            .map(|(c, g)| format!("{} {}", c.name, number(*g)))
            .collect();
        let _ = writeln!(
            s,
            "Gap to the {} thresholds: {}.",
            d.enrollment,
            gaps.join(", ")
        );
    }
}

/// The anniversary watch, when the partner is on it.
fn watch_paragraph(s: &mut String, program: &Program, p: &Partner, c: &refresh::Computation) {
    if let Some(w) = c
        .watch
        .iter()
        .find(|w| c.decisions[w.index].partner_id == p.partner_id)
    {
        let _ = writeln!(
            s,
            "\nAnniversary watch: {}.",
            crate::watch::describe(w, program)
        );
    }
}

/// The partner's directory entry: an exception, a change, listed or not.
fn directory_paragraph(s: &mut String, p: &Partner, dir: &Directory) {
    let _ = write!(s, "\nDirectory: ");
    if let Some(x) = dir
        .exceptions
        .iter()
        .find(|x| x.entry.partner_id == p.partner_id)
    {
        let _ = writeln!(
            s,
            "exception {} — the entry cannot be listed until the roster is fixed.",
            x.reason
        );
    } else if let Some(ch) = dir
        .changes
        .iter()
        .find(|ch| ch.entry.partner_id == p.partner_id)
    {
        let _ = writeln!(
            s,
            "{} (submit {} … {}, visible by {}).",
            ch.action.as_str(),
            ch.submit_from,
            ch.submit_to,
            ch.visible_by
        );
    } else if dir.state.iter().any(|e| e.partner_id == p.partner_id) {
        let _ = writeln!(s, "listed, unchanged.");
    } else {
        let _ = writeln!(s, "not listed (effective level none).");
    }
}
