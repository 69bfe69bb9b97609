//! The health of the feeds: rejected rows per delivery and reason over every delivery in the
//! ledger (`quality-R.csv` and the Data quality sheet), and the partner ids that
//! `unknown_partner` rows name, with what they would bring in the window once the partner is
//! in the roster (the Unknown partners sheet). See docs/rules.md §12.2
//! and §12.3.

use std::collections::BTreeMap;
use std::time::Instant;

use polars::prelude::*;
use tracing::info;

use crate::calendar::{self, Month};
use crate::config::program::Program;
use crate::error::Result;
use crate::exact;
use crate::ingest::extract::parse_decimal;
use crate::kpi::round4;
use crate::ledger::{self, Outcome};
use crate::report::{Column, Sheet, Value};

/// The reason of rows whose partner is not in the roster.
pub const UNKNOWN_PARTNER: &str = "unknown_partner";

/// Rejected rows of one delivery for one reason.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityRow {
    pub delivery: Month,
    pub reason: String,
    pub rows: u64,
    /// rows / read, rounded to 4 decimals.
    pub share_of_read: f64,
}

/// A partner id named by `unknown_partner` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownPartner {
    pub partner_id: String,
    pub rows: u64,
    pub first_delivery: Month,
    pub last_delivery: Month,
    /// Per category (in `[kpi_categories]` order): the KPI value of the rows dated in the
    /// window, rounded to 4 decimals.
    pub kpi: Vec<f64>,
}

/// The feeds' health in refresh R.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Feeds {
    /// Sorted by delivery, then reason.
    pub quality: Vec<QualityRow>,
    /// Sorted by partner_id.
    pub unknown: Vec<UnknownPartner>,
}

/// Rejected rows per delivery and reason, from the partitions' counts.
pub fn quality(outcomes: &[Outcome]) -> Vec<QualityRow> {
    let mut rows = Vec::new();
    for o in outcomes {
        let read = o.meta.read;
        for (reason, n) in o.meta.rejected.iter().filter(|(_, n)| **n > 0) {
            rows.push(QualityRow {
                delivery: o.month,
                reason: reason.clone(),
                rows: *n,
                share_of_read: if read == 0 {
                    0.0
                } else {
                    round4(*n as f64 / read as f64)
                },
            });
        }
    }
    rows.sort_by(|a, b| (a.delivery, &a.reason).cmp(&(b.delivery, &b.reason)));
    rows
}

/// A KPI value as written in a rejected row, read leniently: a plain decimal, else any
/// finite number; nothing for text that is not a number.
fn lenient_number(raw: &str) -> Option<Amount> {
    let s = raw.trim();
    parse_decimal(s).map(Amount::Exact).or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Amount::Float)
    })
}

/// A KPI value read leniently: in ten-thousandths when it is a plain decimal (summed
/// exactly), else the nearest float.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Amount {
    Exact(i128),
    Float(f64),
}

/// A sum of [`Amount`]s: the exact part and the rest.
#[derive(Clone, Copy, Debug, Default)]
struct Sum {
    exact: i128,
    float: f64,
}

impl Sum {
    fn add(&mut self, amount: Amount) {
        match amount {
            Amount::Exact(units) => self.exact += units,
            Amount::Float(x) => self.float += x,
        }
    }

    /// Rounded to 4 decimals (exactly when every amount was a plain decimal).
    fn rounded(self) -> f64 {
        if self.float == 0.0 {
            exact::round4_f64(self.exact, exact::AMOUNT_SCALE)
        } else {
            round4(exact::f64_of_units4(self.exact) + self.float)
        }
    }
}

/// The invoice month of a rejected row's date (`YYYY-MM-DD`, as read), if it is one.
fn lenient_month(raw: &str) -> Option<Month> {
    calendar::parse_date(raw.trim()).map(Month::of)
}

/// The `unknown_partner` rows of deliveries ≤ R-1, by trimmed partner_id.
pub fn unknown_partners(
    outcomes: &[Outcome],
    refresh: Month,
    program: &Program,
) -> Result<Vec<UnknownPartner>> {
    let (from, to) = refresh.window();
    let n = program.categories.len();
    let mut by_id: BTreeMap<String, (UnknownPartner, Vec<Sum>)> = BTreeMap::new();
    // Only partitions whose counts name the reason are read.
    for o in outcomes
        .iter()
        .filter(|o| o.meta.rejected.get(UNKNOWN_PARTNER).is_some_and(|n| *n > 0))
    {
        let df = ledger::read_rejected_where(o, UNKNOWN_PARTNER)?;
        let text = |name: &str| -> Result<StringChunked> {
            Ok(df.column(name)?.cast(&DataType::String)?.str()?.clone())
        };
        let (ids, dates, types, values) = (
            text("partner_id")?,
            text("invoice_date")?,
            text("omlp_type")?,
            text("kpi_value")?,
        );
        for i in 0..df.height() {
            let id = ids.get(i).unwrap_or("").trim();
            let (entry, sums) = by_id.entry(id.to_string()).or_insert_with(|| {
                let partner = UnknownPartner {
                    partner_id: id.to_string(),
                    rows: 0,
                    first_delivery: o.month,
                    last_delivery: o.month,
                    kpi: vec![0.0; n],
                };
                (partner, vec![Sum::default(); n])
            });
            entry.rows += 1;
            entry.first_delivery = entry.first_delivery.min(o.month);
            entry.last_delivery = entry.last_delivery.max(o.month);
            let in_window = dates
                .get(i)
                .and_then(lenient_month)
                .is_some_and(|m| m >= from && m <= to);
            let category = types.get(i).and_then(|t| program.omlp_type(t));
            let value = values.get(i).and_then(lenient_number);
            if let (true, Some((_, k)), Some(v)) = (in_window, category, value) {
                sums[k].add(v);
            }
        }
    }
    Ok(by_id
        .into_values()
        .map(|(mut u, sums)| {
            u.kpi = sums.into_iter().map(Sum::rounded).collect();
            u
        })
        .collect())
}

/// The feeds' health of refresh R, from the ledger as it stands in R.
pub fn compute(outcomes: &[Outcome], refresh: Month, program: &Program) -> Result<Feeds> {
    let started = Instant::now();
    let feeds = Feeds {
        quality: quality(outcomes),
        unknown: unknown_partners(outcomes, refresh, program)?,
    };
    info!(
        deliveries = outcomes.len(),
        quality_rows = feeds.quality.len(),
        unknown_partners = feeds.unknown.len(),
        unknown_partner_rows = feeds.unknown.iter().map(|u| u.rows).sum::<u64>(),
        ms = started.elapsed().as_millis() as u64,
        "feeds: rejected rows per delivery and unknown partners counted"
    );
    Ok(feeds)
}

impl Feeds {
    /// The Data quality sheet.
    pub fn quality_sheet(&self) -> Sheet {
        let columns = [
            ("delivery", "Delivery"),
            ("reason", "Reason"),
            ("rows", "Rows"),
            ("share_of_read", "Share of read"),
        ]
        .map(|(name, title)| Column::new(name, title))
        .to_vec();
        let rows = self
            .quality
            .iter()
            .map(|q| {
                vec![
                    Value::text(q.delivery.to_string()),
                    Value::text(&q.reason),
                    Value::Int(q.rows as i64),
                    Value::Number(q.share_of_read),
                ]
            })
            .collect();
        Sheet {
            name: "Data quality".into(),
            columns,
            rows,
        }
    }

    /// The Unknown partners sheet.
    pub fn unknown_sheet(&self, program: &Program) -> Sheet {
        let mut header: Vec<String> = ["Partner ID", "Rows", "First delivery", "Last delivery"]
            .map(String::from)
            .to_vec();
        header.extend(program.categories.iter().map(|c| format!("KPI {}", c.name)));
        let rows = self
            .unknown
            .iter()
            .map(|u| {
                let mut row = vec![
                    Value::text(&u.partner_id),
                    Value::Int(u.rows as i64),
                    Value::text(u.first_delivery.to_string()),
                    Value::text(u.last_delivery.to_string()),
                ];
                row.extend(u.kpi.iter().map(|k| Value::Number(*k)));
                row
            })
            .collect();
        Sheet::titled("Unknown partners", header, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_months_are_read_leniently() {
        assert_eq!(lenient_number(" 12.5 "), Some(Amount::Exact(125_000)));
        assert_eq!(lenient_number("1.23456"), Some(Amount::Float(1.23456)));
        assert_eq!(lenient_number("-3"), Some(Amount::Exact(-30_000)));
        assert_eq!(lenient_number("1,000"), None);
        assert_eq!(lenient_number("NaN"), None);
        assert_eq!(lenient_number("inf"), None);
        assert_eq!(lenient_number(""), None);
        assert_eq!(lenient_month("2026-03-31"), "2026-03".parse().ok());
        assert_eq!(lenient_month("2026-02-30"), None);
        assert_eq!(lenient_month("31/03/2026"), None);
    }
}
