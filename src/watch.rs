//! The anniversary watch of refresh R (docs/rules.md §10).
//!
//! A renewal at anniversary A is decided on the months A-12 … A-1, not on today's window: by A
//! the months R-12 … A-13 will have left it and R … A-1 are still to come. For every partner
//! enrolled in R whose anniversary is at most `[watch] lead_months` away, the watch tells what
//! is already secured in that decision window, what will leave the window, what the
//! enrollment level requires at A, what is still needed (in all and per remaining month), the
//! requirements other than KPIs that the roster shows unmet, and the level and renewal status
//! the partner would get at A if it bought nothing more. The secured sums come from
//! `sql/watch_secured.sql` (see [`crate::kpi::Kpis::secured`]); the forecast is the renewal
//! rule itself ([`renewal::decide_one`]) applied at A to the secured KPIs.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::calendar::Month;
use crate::config::program::{Level, Program, Requirement};
use crate::ingest::roster::{Partner, Roster};
use crate::kpi::{round4, PartnerKpis};
use crate::renewal::{self, Decision, Status};
use crate::why::grouped_to;

/// One watched partner.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchRow {
    /// The partner's position in the roster (and in the decisions).
    pub index: usize,
    /// The next anniversary A.
    pub anniversary: NaiveDate,
    pub months_to_anniversary: i32,
    /// The decision window A-12 … A-1.
    pub window: (Month, Month),
    /// Per category, in `[kpi_categories]` order.
    pub secured: Vec<f64>,
    pub leaving: Vec<f64>,
    pub required: Vec<f64>,
    pub still_needed: Vec<f64>,
    /// `None` for a partner due in R (no month is left).
    pub per_month: Option<Vec<f64>>,
    /// `no_requirement`, or the unmet requirements other than KPIs, in the rule's order.
    pub blockers: Vec<&'static str>,
    pub forecast_level: Level,
    pub forecast_status: Status,
}

/// The months to the anniversary of a partner in the watch: enrolled in R, with the
/// anniversary at most `lead_months` months away.
fn lead(d: &Decision, lead_months: u32) -> Option<i32> {
    let months = d.months_to_anniversary?;
    (d.enrollment != Level::None && months <= lead_months as i32).then_some(months)
}

/// The partners to watch, as `(partner_id, months_to_anniversary)`.
pub fn watched(decisions: &[Decision], lead_months: u32) -> Vec<(&str, i32)> {
    decisions
        .iter()
        .filter_map(|d| Some((d.partner_id.as_str(), lead(d, lead_months)?)))
        .collect()
}

/// The watch of R, sorted by anniversary, then partner_id. `secured` holds the sums of
/// [`crate::kpi::Kpis::secured`] for the partners of [`watched`] (absent: nothing secured).
pub fn build(
    program: &Program,
    roster: &Roster,
    decisions: &[Decision],
    lead_months: u32,
    secured: &HashMap<String, Vec<f64>>,
) -> Vec<WatchRow> {
    let mut rows: Vec<WatchRow> = decisions
        .iter()
        .enumerate()
        .filter_map(|(index, d)| {
            let months = lead(d, lead_months)?;
            let anniversary = d.next_anniversary?;
            // For a partner due in R the decision window is today's: its KPIs are secured.
            let secured = if months == 0 {
                d.kpis.kpi.iter().map(|k| round4(*k)).collect()
            } else {
                secured
                    .get(&d.partner_id)
                    .cloned()
                    .unwrap_or_else(|| vec![0.0; program.categories.len()])
            };
            let p = &roster.partners[index];
            Some(watch_row(
                program,
                p,
                d,
                index,
                anniversary,
                months,
                secured,
            ))
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.anniversary, &decisions[a.index].partner_id)
            .cmp(&(b.anniversary, &decisions[b.index].partner_id))
    });
    rows
}

/// One partner's watch, given what it has secured in its decision window.
fn watch_row(
    program: &Program,
    p: &Partner,
    d: &Decision,
    index: usize,
    anniversary: NaiveDate,
    months: i32,
    secured: Vec<f64>,
) -> WatchRow {
    let leaving = d
        .kpis
        .kpi
        .iter()
        .zip(&secured)
        .map(|(k, s)| round4(round4(*k) - s))
        .collect();
    // The enrollment level's block at A: the renewal's decision date is A.
    let block = d
        .checks
        .iter()
        .find(|c| c.level == d.enrollment)
        .and_then(|c| c.requirement)
        .map(|i| &program.requirements[i]);
    let required: Vec<f64> = match block {
        Some(b) if d.enrollment.has_kpis() => b.kpi.clone(),
        _ => vec![0.0; secured.len()],
    };
    let still_needed: Vec<f64> = required
        .iter()
        .zip(&secured)
        .map(|(r, s)| round4((r - s).max(0.0)))
        .collect();
    let per_month = (months > 0).then(|| {
        still_needed
            .iter()
            .map(|s| round4(s / months as f64))
            .collect()
    });
    let blockers = match block {
        None => vec!["no_requirement"],
        Some(b) => blockers(p, d.enrollment, b),
    };
    // The renewal at A, with what is secured and today's roster facts.
    let a = Month::of(anniversary);
    let kpis = PartnerKpis {
        kpi: secured.clone(),
        ..Default::default()
    };
    let carried = d.carried_forward.then_some(d.enrollment);
    let at_a = renewal::decide_one(program, p, a, kpis, carried);
    WatchRow {
        index,
        anniversary,
        months_to_anniversary: months,
        window: (a.plus(-12), a.plus(-1)),
        secured,
        leaving,
        required,
        still_needed,
        per_month,
        blockers,
        forecast_level: at_a.qualified_level,
        forecast_status: at_a.status,
    }
}

/// The requirements of `block` other than KPIs that the roster shows unmet, in the rule's
/// order; `action_pack_active` counts for the action_pack level only.
fn blockers(p: &Partner, level: Level, block: &Requirement) -> Vec<&'static str> {
    let unmet = [
        ("min_mct", p.mct_count < block.min_mct),
        ("exams", block.exams_required && !p.exams_met),
        (
            "performance_commitment",
            block.performance_commitment_required && !p.performance_commitment,
        ),
        (
            "action_pack_active",
            level == Level::ActionPack && !p.action_pack_active,
        ),
    ];
    unmet
        .into_iter()
        .filter(|(_, unmet)| *unmet)
        .map(|(name, _)| name)
        .collect()
}

/// The watch of one partner in words, for `explain` (figures to 2 decimals, thousands
/// grouped).
pub fn describe(row: &WatchRow, program: &Program) -> String {
    let (from, to) = row.window;
    let mut parts = vec![
        format!("anniversary {}", row.anniversary),
        format!("decided on {from} … {to}"),
    ];
    for (k, category) in program.categories.iter().enumerate() {
        if row.required[k] == 0.0 && row.secured[k] == 0.0 && row.leaving[k] == 0.0 {
            continue;
        }
        let name = &category.name;
        parts.push(format!(
            "secured so far {} of {} {name}",
            grouped_to(row.secured[k], 2),
            grouped_to(row.required[k], 2)
        ));
        parts.push(format!(
            "{} will leave the window by then",
            grouped_to(row.leaving[k], 2)
        ));
        let per_month = row
            .per_month
            .as_ref()
            .map(|p| format!(", about {} a month", grouped_to(p[k], 2)))
            .unwrap_or_default();
        parts.push(format!(
            "still needed {}{per_month}",
            grouped_to(row.still_needed[k], 2)
        ));
    }
    let blockers = if row.blockers.is_empty() {
        "none".to_string()
    } else {
        row.blockers.join(", ")
    };
    parts.push(format!("blockers: {blockers}"));
    parts.push(format!(
        "if nothing more is bought: {} ({})",
        row.forecast_level, row.forecast_status
    ));
    parts.join("; ")
}
